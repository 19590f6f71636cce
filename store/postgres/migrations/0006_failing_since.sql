-- 0006: when an endpoint began failing. CompleteDeliveries sets it to the
-- start of the first failed attempt after a success (NULL: healthy, the last
-- attempt succeeded or none was made) and a success resets it; the
-- maintenance leader disables endpoints failing for longer than
-- --disable-after. Re-enabling an endpoint resets it. A nullable column
-- without default rewrites no rows.
ALTER TABLE endpoints ADD COLUMN failing_since timestamptz;

-- DisableFailingEndpoints reads only failing, active, live endpoints.
CREATE INDEX endpoints_failing ON endpoints (failing_since)
    WHERE failing_since IS NOT NULL AND status = 'active' AND deleted_at IS NULL;
