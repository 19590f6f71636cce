-- 0010: the rows that ProbeWrite (/readyz's write probe) rewrites.
--
-- Two slots, exactly one of which holds a pad after each probe: a probe
-- writes the pad into the empty slot first and clears the other one after,
-- in one transaction. So every probe needs a free page (from the free list,
-- or by growing the file) as a publish does, and fails with SQLITE_FULL
-- where a publish would, while the file stays the size the first two probes
-- left it (one pad, and the free pages of the other): the pages a probe
-- frees are the ones the next probe (or a publish) takes.
-- Rewriting one row in place would need no new page and could succeed on a
-- database that refuses every publish.
CREATE TABLE write_probe (
    slot      INTEGER PRIMARY KEY CHECK (slot IN (0, 1)),
    probed_at INTEGER NOT NULL, -- Unix microseconds of the last probe that wrote this slot
    pad       BLOB
) STRICT;

INSERT INTO write_probe (slot, probed_at) VALUES (0, 0), (1, 0);
