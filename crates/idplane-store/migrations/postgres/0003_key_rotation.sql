-- Signing key rotation: a key is active until retired; a retired key stays
-- published (JWKS) for a grace period so tokens it signed still verify.

ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;

-- Should a race ever have created two current keys of one purpose and
-- algorithm, keep the newest current and retire the others.
UPDATE signing_keys SET retired_at = created_at
WHERE EXISTS (
    SELECT 1 FROM signing_keys newer
    WHERE newer.purpose = signing_keys.purpose
      AND newer.algorithm = signing_keys.algorithm
      AND (newer.created_at > signing_keys.created_at
           OR (newer.created_at = signing_keys.created_at AND newer.id > signing_keys.id))
);

-- At most one active key per purpose and algorithm: concurrent first starts
-- or rotations on several nodes cannot both win.
CREATE UNIQUE INDEX signing_keys_one_active
    ON signing_keys (purpose, algorithm) WHERE retired_at IS NULL;
