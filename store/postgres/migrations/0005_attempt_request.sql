-- 0005: what an attempt sent and where. request_headers is a JSON array of
-- [name, value] pairs in the order the headers were set (store.EncodeHeaders);
-- remote_addr is the "ip:port" connected to, '' when no connection was made.
--
-- request_headers is text, not jsonb: it is written on every attempt and
-- only ever read back whole for GET /api/v1/deliveries/{id}, never queried
-- inside, so jsonb's parse and conversion on the hot insert would buy
-- nothing (and jsonb refuses \u0000, which header values could in principle
-- carry). Both drivers store the same text. With constant defaults, adding
-- the columns rewrites no rows.
ALTER TABLE attempts
    ADD COLUMN request_headers text NOT NULL DEFAULT '[]',
    ADD COLUMN remote_addr text NOT NULL DEFAULT '';
