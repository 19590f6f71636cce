-- 0001: the whole first schema of nanohook, the PostgreSQL twin of
-- store/sqlite/migrations/0001_init.sql: the same tables, columns and
-- indexes, in PostgreSQL's own types.
--
-- Times are timestamptz, not Unix microseconds as in SQLite: the same 8 bytes
-- and the same microsecond precision, but operators can read them in psql and
-- write `now() - interval '30 days'` against them. The driver binds times
-- already truncated to the microsecond, so both drivers store the same
-- instant.
--
-- Ids are BIGINT GENERATED ALWAYS AS IDENTITY: a sequence never hands a value
-- out twice, even after the highest row is deleted or a transaction rolls
-- back, which is what AUTOINCREMENT promises in SQLite. Public ids (endpoints,
-- deliveries) are therefore never reused.

CREATE TABLE accounts (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- Only the SHA-256 of a key is stored; the UNIQUE index is the lookup path of
-- every authenticated request.
CREATE TABLE api_keys (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint      NOT NULL REFERENCES accounts (id),
    hash       bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX api_keys_account ON api_keys (account_id);

-- Deletion is soft (deleted_at) so that delivery history keeps pointing at a
-- real row. events is the list of subscribed event types, in the order the
-- customer gave them; the fan-out matches it with = ANY.
CREATE TABLE endpoints (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint      NOT NULL REFERENCES accounts (id),
    url             text        NOT NULL,
    events          text[]      NOT NULL,
    status          text        NOT NULL CHECK (status IN ('active', 'disabled')),
    description     text        NOT NULL DEFAULT '',
    disabled_reason text        NOT NULL DEFAULT '',
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);

-- Listing an account's endpoints and fanning an event out to them both read
-- only live endpoints of one account.
CREATE INDEX endpoints_account_live ON endpoints (account_id, id) WHERE deleted_at IS NULL;

-- pk is internal (deliveries point at it); id is the public "evt_…" id.
-- payload is bytea: the exact bytes every endpoint receives, never
-- re-encoded (json would keep the text but jsonb would not, and neither
-- takes arbitrary bytes). An empty idempotency key is stored as NULL, and
-- UNIQUE treats NULLs as distinct, so such events never deduplicate. The
-- constraint itself decides between concurrent publishers of one key
-- (INSERT … ON CONFLICT), never a check-then-insert.
CREATE TABLE events (
    pk              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text        NOT NULL UNIQUE,
    account_id      bigint      NOT NULL CONSTRAINT events_account_fk REFERENCES accounts (id),
    type            text        NOT NULL,
    task_id         text        NOT NULL,
    task_type       text        NOT NULL,
    idempotency_key text,
    payload         bytea       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT events_idempotency UNIQUE (account_id, idempotency_key)
);

-- account_id and event_type are copies (of the endpoint's and the event's)
-- so tenant checks and listings need no join. account_id carries no foreign
-- key: it is always copied from a row that has one, and each constraint
-- costs a lookup on the hottest insert path.
CREATE TABLE deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint      NOT NULL,
    endpoint_id     bigint      NOT NULL REFERENCES endpoints (id),
    event_pk        bigint      NOT NULL REFERENCES events (pk) ON DELETE CASCADE,
    event_type      text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    leased_until    timestamptz,
    lease_token     bigint,
    lease_owner     text,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL

);

-- The claim path: one range scan over pending rows in due order. Partial, so
-- finished deliveries (the vast majority over time) cost the claim nothing.
-- Claims only touch the lease columns, which no index covers, so leasing a
-- row can be a HOT update that rewrites no index at all.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
-- An endpoint's deliveries: its history listing, and cancelling or failing
-- its pending ones when it is deleted or disabled.
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
-- An event's deliveries: the count returned for duplicate publishes, and the
-- ON DELETE CASCADE when old events are pruned.
CREATE INDEX deliveries_event ON deliveries (event_pk);

-- Every attempt ever made. No UNIQUE (delivery_id, number): a worker whose
-- lease expired still records the attempt it made, with the same number as
-- the attempt of the worker that took over. response_body is bytea because
-- it is whatever the endpoint sent, cut at 4 KiB (possibly inside a UTF-8
-- sequence, possibly binary), and PostgreSQL text refuses NUL bytes and
-- invalid UTF-8; SQLite keeps such bytes as they are, and so does this.
CREATE TABLE attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     bigint      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number          integer     NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_us     bigint      NOT NULL,
    response_status integer     NOT NULL DEFAULT 0,
    response_body   bytea       NOT NULL DEFAULT '',
    location        text        NOT NULL DEFAULT '',
    error           text        NOT NULL DEFAULT ''
);

CREATE INDEX attempts_delivery ON attempts (delivery_id, number);

-- Lease tokens: one per claim, unique across every node sharing the
-- database. SQLite's single process can count in memory; here the sequence
-- is the shared counter.
CREATE SEQUENCE lease_tokens AS bigint;
