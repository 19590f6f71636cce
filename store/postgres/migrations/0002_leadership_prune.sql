-- 0002: leader election for background maintenance, and history pruning
-- (the twin of store/sqlite/migrations/0002_leadership_prune.sql).

-- One row per named leadership. A node holds it while until lies ahead of
-- the caller's Now; the holder renews by pushing until forward, and any node
-- may take the row over once until has passed. There is no history: the row
-- is the term.
CREATE TABLE leaderships (
    name   text        PRIMARY KEY,
    holder text        NOT NULL,
    until  timestamptz NOT NULL
);

-- PruneHistory's scan: finished deliveries, oldest update first, with id as
-- the tie-break the query orders by, so that a step reads exactly Limit
-- index entries and sorts nothing. Partial, so pending deliveries (the
-- claim's working set) are never in it; the IN list is written exactly as
-- the pruning query writes it so that the planner matches the predicate.
CREATE INDEX deliveries_finished ON deliveries (updated_at, id)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
