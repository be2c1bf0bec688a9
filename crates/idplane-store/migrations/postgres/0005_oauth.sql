-- OAuth 2.0 / OpenID Connect grants. Every bearer secret (authorization
-- code, refresh token, device code, pushed request handle, opaque access
-- token) is kept only as its SHA-256 hash: they are 256-bit random values,
-- so a fast hash is enough and a database copy yields nothing usable.

-- Registration (RFC 7591/7592), back-channel logout and DPoP settings.
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oauth_clients ADD COLUMN dpop_bound_access_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN registration_token_hash TEXT;

-- Resource servers (RFC 8707 resource indicators) and the scopes they own.
CREATE TABLE oauth_resources (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, identifier)
);

-- Validated authorization requests: pushed (RFC 9126) or waiting for the
-- person to sign in or consent. Single use.
CREATE TABLE oauth_requests (
    handle_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    params TEXT NOT NULL,
    pushed BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_requests_expiry ON oauth_requests (expires_at);

-- Authorization codes: single use; `family_id` names what the exchange
-- produced, so that a replayed code can revoke it.
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    grant_data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    family_id TEXT
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);

-- Refresh tokens, rotated on every use; all tokens of one grant share a
-- family, revoked whole when a spent token is presented again.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    principal_id TEXT,
    session_id TEXT,
    grant_data TEXT NOT NULL,
    access_jti TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_principal ON oauth_refresh_tokens (principal_id);
CREATE INDEX oauth_refresh_tokens_session ON oauth_refresh_tokens (session_id);
CREATE INDEX oauth_refresh_tokens_expiry ON oauth_refresh_tokens (expires_at);

-- Opaque access tokens (per client) and their claims.
CREATE TABLE oauth_access_tokens (
    token_hash TEXT PRIMARY KEY,
    jti TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    claims TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_access_tokens_expiry ON oauth_access_tokens (expires_at);

-- JWT access tokens revoked before their expiry (RFC 7009, family
-- revocation); kept until they would have expired anyway.
CREATE TABLE oauth_revoked_jtis (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX oauth_revoked_jtis_expiry ON oauth_revoked_jtis (expires_at);

-- Consent a person gave a third-party client, revocable in /account.
CREATE TABLE oauth_consents (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL,
    client_id TEXT COLLATE "C" NOT NULL,
    scopes TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, client_id)
);

-- Device authorization (RFC 8628).
CREATE TABLE oauth_device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    grant_data TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    interval_secs BIGINT NOT NULL,
    last_polled_at BIGINT,
    source_ip TEXT,
    user_agent TEXT
);
CREATE INDEX oauth_device_codes_expiry ON oauth_device_codes (expires_at);

-- One-time JWT ids seen (private_key_jwt assertions, DPoP proofs), kept
-- until the JWT they came from expires, so a replay is refused on every node.
CREATE TABLE oauth_seen_jtis (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX oauth_seen_jtis_expiry ON oauth_seen_jtis (expires_at);
