-- 0001: the whole first schema of nanohook.
--
-- Times are INTEGER Unix microseconds, UTC: they sort and compare as plain
-- integers, and the Go side converts at the boundary. Tables are STRICT so a
-- wrongly typed bind (a string payload, a time.Time) fails loudly instead of
-- being stored in whatever type SQLite's affinity picks.

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Only the SHA-256 of a key is stored; the UNIQUE index is the lookup path of
-- every authenticated request.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_account ON api_keys (account_id);

-- Endpoint ids are public integers: AUTOINCREMENT guarantees an id is never
-- handed out again, even after the highest one is deleted. Deletion is soft
-- (deleted_at) so that delivery history keeps pointing at a real row.
-- events is the comma-separated list of subscribed event types.
CREATE TABLE endpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      INTEGER NOT NULL REFERENCES accounts (id),
    url             TEXT    NOT NULL,
    events          TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    description     TEXT    NOT NULL DEFAULT '',
    disabled_reason TEXT    NOT NULL DEFAULT '',
    secret          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
) STRICT;

-- Listing an account's endpoints and fanning an event out to them both read
-- only live endpoints of one account.
CREATE INDEX endpoints_account_live ON endpoints (account_id, id) WHERE deleted_at IS NULL;

-- pk is internal (deliveries point at it); id is the public "evt_…" id.
-- An empty idempotency key is stored as NULL, which UNIQUE never folds.
CREATE TABLE events (
    pk              INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    account_id      INTEGER NOT NULL REFERENCES accounts (id),
    type            TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    task_type       TEXT    NOT NULL,
    idempotency_key TEXT,
    payload         BLOB    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (account_id, idempotency_key)
) STRICT;

-- Delivery ids are public too, hence AUTOINCREMENT. account_id and event_type
-- are copies (of the endpoint's and the event's) so tenant checks and
-- listings need no join. account_id carries no foreign key: it is always
-- copied from a row that has one, and each constraint costs a lookup on the
-- hottest insert path.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      INTEGER NOT NULL,
    endpoint_id     INTEGER NOT NULL REFERENCES endpoints (id),
    event_pk        INTEGER NOT NULL REFERENCES events (pk) ON DELETE CASCADE,
    event_type      TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    lease_token     INTEGER,
    lease_owner     TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- The claim path: one range scan over pending rows in due order. Partial, so
-- finished deliveries (the vast majority over time) cost the claim nothing.
-- Claims only touch the lease columns, which are not indexed, so leasing a
-- row never rewrites an index.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
-- An endpoint's deliveries: its history listing, and cancelling or failing
-- its pending ones when it is deleted or disabled.
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
-- An event's deliveries: the count returned for duplicate publishes, and the
-- ON DELETE CASCADE when old events are pruned.
CREATE INDEX deliveries_event ON deliveries (event_pk);

-- Every attempt ever made. No UNIQUE (delivery_id, number): a worker whose
-- lease expired still records the attempt it made, with the same number as
-- the attempt of the worker that took over.
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    delivery_id     INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_us     INTEGER NOT NULL,
    response_status INTEGER NOT NULL DEFAULT 0,
    response_body   TEXT    NOT NULL DEFAULT '',
    location        TEXT    NOT NULL DEFAULT '',
    error           TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
