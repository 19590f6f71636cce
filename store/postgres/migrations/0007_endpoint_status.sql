-- 0007: counting live endpoints by status (Store.Stats, behind the
-- nanohook_endpoints gauge) from an index alone, instead of reading every
-- endpoint row with its URL and secret at each metrics scrape. Endpoints
-- change status rarely, so the index costs their writes almost nothing.
CREATE INDEX endpoints_live_status ON endpoints (status) WHERE deleted_at IS NULL;
