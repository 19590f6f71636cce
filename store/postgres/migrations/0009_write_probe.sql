-- 0009: the row that ProbeWrite (/readyz's write probe) rewrites (the twin
-- of store/sqlite/migrations/0010_write_probe.sql, without the pad: a
-- PostgreSQL update writes a new row version and WAL on every commit, so
-- a full disk or a read-only database fails it as it fails a publish).
--
-- One row shared by every node: each probe is a single autocommitted
-- UPDATE, which holds the row's lock only while it runs, so nodes probing
-- at once wait microseconds for each other; and the table stays one row
-- however many nodes come and go, where a row per node would pile up.
CREATE TABLE write_probe (
    id        smallint    PRIMARY KEY CHECK (id = 1),
    probed_at timestamptz NOT NULL
);

INSERT INTO write_probe (id, probed_at) VALUES (1, 'epoch');
