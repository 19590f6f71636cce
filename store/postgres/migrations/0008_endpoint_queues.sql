-- 0008 (the twin of store/sqlite/migrations/0009_endpoint_queues.sql):
-- pending deliveries queued per endpoint, so that the engine can share due
-- work fairly across accounts and endpoints instead of taking the globally
-- oldest rows, behind which one endpoint's backlog held up every other
-- customer's deliveries.
--
-- deliveries_queue keeps each endpoint's pending deliveries in due order:
-- a claim of so many of one endpoint's due deliveries is one range of it
-- (however deep any queue is), and QueueHeads finds each endpoint's head
-- with one probe. Partial, so finished deliveries cost neither anything;
-- status = 'pending' is written exactly as the queries write it so the
-- planner matches the predicate. Deleting or disabling an endpoint finds
-- its pending deliveries through it too. deliveries_due, ordered across
-- endpoints, has nothing left to serve.
--
-- From now on a lease moves next_attempt_at to the lease's expiry, so that
-- leased deliveries leave the due range and claims need not read
-- leased_until. Leases taken before this migration did not: they get the
-- same treatment here (found through deliveries_due, before it goes), else
-- a claim would take a delivery still in flight. Leases that had expired
-- are left alone: such deliveries are due anyway. Nodes running the
-- previous version do not keep this rule, so every node must run this one
-- before any claims again.
--
-- The index is built with a plain CREATE INDEX, like every index before
-- it: the migration runs in one transaction (CONCURRENTLY cannot), so a
-- failure leaves the old schema whole. The build holds off writes to
-- deliveries while it reads the table once; it sorts only the pending
-- rows, a small part of the table.
UPDATE deliveries SET next_attempt_at = leased_until
    WHERE status = 'pending' AND leased_until > next_attempt_at;

DROP INDEX deliveries_due;
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, next_attempt_at, id) WHERE status = 'pending';
