-- 0012 (twin: store/postgres/migrations/0011_events_account.sql): the
-- events API lists an account's events newest first, a walk of this index
-- backwards from the cursor. Without it a page would read every account's
-- events back to the first of this one.
CREATE INDEX events_account ON events (account_id, pk);
