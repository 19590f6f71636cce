-- Secret rotation: the secret a rotation replaced keeps signing (as
-- X-Nano-Signature-Previous) until previous_secret_until (NULL: none).
ALTER TABLE endpoints
    ADD COLUMN previous_secret text NOT NULL DEFAULT '',
    ADD COLUMN previous_secret_until timestamptz;
