-- 0008: the claim's index also holds endpoint_id, so that a claim skipping
-- an endpoint (at its in-flight cap, or with an open circuit breaker) tests
-- each due row from the index alone instead of reading the row. A dead
-- endpoint's backlog sits at the head of the due order; without this every
-- claim read all of it (BenchmarkClaimSkipping: 20,000 skipped rows cost a
-- 64-delivery claim 16 ms). Claims still write only the unindexed lease
-- columns.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id, endpoint_id) WHERE status = 'pending';
