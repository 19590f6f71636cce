-- 0006: when an endpoint began failing. CompleteDeliveries sets it to the
-- start of the first failed attempt after a success (0: healthy, the last
-- attempt succeeded or none was made) and a success resets it; the
-- maintenance leader disables endpoints failing for longer than
-- --disable-after. Re-enabling an endpoint resets it.
ALTER TABLE endpoints ADD COLUMN failing_since INTEGER NOT NULL DEFAULT 0;

-- DisableFailingEndpoints reads only failing, active, live endpoints.
CREATE INDEX endpoints_failing ON endpoints (failing_since)
    WHERE failing_since > 0 AND status = 'active' AND deleted_at IS NULL;
