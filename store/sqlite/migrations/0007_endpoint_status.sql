-- 0007: counting live endpoints by status (Store.Stats, behind the
-- nanohook_endpoints gauge) from an index alone, instead of reading every
-- endpoint row with its URL and secret at each metrics scrape. Endpoints
-- change status rarely, so the index costs their writes almost nothing.
-- deleted_at is an index column although it is always NULL here: SQLite
-- counts from the index alone only when it holds every column the query
-- names, predicate included (PostgreSQL's twin needs only status).
CREATE INDEX endpoints_live_status ON endpoints (status, deleted_at) WHERE deleted_at IS NULL;
