-- 0002: leader election for background maintenance, and history pruning.

-- One row per named leadership. A node holds it while until (Unix
-- microseconds, like every time here) lies ahead of the caller's Now; the
-- holder renews by pushing until forward, and any node may take the row over
-- once until has passed. There is no history: the row is the term.
CREATE TABLE leaderships (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) STRICT;

-- PruneHistory's scan: finished deliveries, oldest update first. Partial, so
-- pending deliveries (the claim's working set) are never in it, and written
-- with exactly the IN list the pruning query uses so the planner matches it.
-- A row enters it once, when it finishes, and leaves when it is pruned.
CREATE INDEX deliveries_finished ON deliveries (updated_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
