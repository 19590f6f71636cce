-- 0010 (the twin of store/sqlite/migrations/0011_leases_leave_queue.sql): a
-- leased delivery leaves its endpoint's queue instead of moving to its
-- tail.
--
-- Since 0008 a lease moved next_attempt_at to the lease's expiry, so each
-- claim wrote a new deliveries_queue entry that its completion made dead
-- again. Now the queue holds only unleased pending deliveries (lease_token
-- IS NULL); leased ones sit in deliveries_leased, ordered by when their
-- lease expires, so that RescueExpiredLeases finds the leases of a crashed
-- node with one probe and puts them back in the queue. It holds only the
-- deliveries in flight, so it stays small; endpoint_id lets disabling or
-- deleting an endpoint find its leased deliveries from the index alone.
--
-- Built with a plain CREATE INDEX in the migration's transaction, as every
-- index before it: both are partial, over the pending rows only.
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending' AND lease_token IS NULL;
CREATE INDEX deliveries_leased ON deliveries (leased_until, endpoint_id)
    WHERE status = 'pending' AND lease_token IS NOT NULL;
