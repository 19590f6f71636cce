-- 0011: a leased delivery leaves its endpoint's queue instead of moving to
-- its tail.
--
-- Since 0009 a lease moved next_attempt_at to the lease's expiry, so every
-- delivery's entry in deliveries_queue was deleted and inserted again at
-- its claim, and deleted once more at its completion: twice the index work
-- of a global due index, spread over the tails of every endpoint's queue,
-- which cost the plain fan-out about 8 % of its throughput. Now the queue
-- holds only unleased pending deliveries (lease_token IS NULL): a claim
-- deletes each entry once and a completion finds nothing left to delete.
--
-- Leased deliveries sit in deliveries_leased instead, ordered by when their
-- lease expires, so that RescueExpiredLeases finds the leases of a crashed
-- node with one seek and puts them back in the queue. It holds only the
-- deliveries in flight (a few thousand at most per node), so its pages are
-- few and stay in the cache; endpoint_id lets disabling or deleting an
-- endpoint find its leased deliveries from the index alone.
--
-- Both predicates are written exactly as the queries write them, so the
-- planner matches them. Each index carries lease_token as its last column
-- although its value is implied: SQLite takes a column tested by IS NULL
-- or IS NOT NULL from the row unless the index holds it, and the claim,
-- QueueHeads and Stats are meant to read the index alone.
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, next_attempt_at, id, lease_token)
    WHERE status = 'pending' AND lease_token IS NULL;
CREATE INDEX deliveries_leased ON deliveries (leased_until, endpoint_id, lease_token)
    WHERE status = 'pending' AND lease_token IS NOT NULL;
