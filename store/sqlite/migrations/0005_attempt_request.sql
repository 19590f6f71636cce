-- 0005: what an attempt sent and where. request_headers is a JSON array of
-- [name, value] pairs in the order the headers were set (store.EncodeHeaders);
-- remote_addr is the "ip:port" connected to, '' when no connection was made.
-- Rows from before this migration show neither.
ALTER TABLE attempts ADD COLUMN request_headers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE attempts ADD COLUMN remote_addr TEXT NOT NULL DEFAULT '';
