-- Secret rotation: the secret a rotation replaced keeps signing (as
-- X-Nano-Signature-Previous) until previous_secret_until (Unix µs; 0: none).
ALTER TABLE endpoints ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN previous_secret_until INTEGER NOT NULL DEFAULT 0;
