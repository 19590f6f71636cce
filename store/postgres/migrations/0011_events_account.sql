-- 0011 (twin: store/sqlite/migrations/0012_events_account.sql): the
-- events API lists an account's events newest first, a walk of this index
-- backwards from the cursor. Without it a page would read every account's
-- events back to the first of this one.
--
-- A plain CREATE INDEX in the migration's transaction, as every index
-- before it: it holds off publishes while it is built, once.
CREATE INDEX events_account ON events (account_id, pk);
