-- Authentication: credentials, second factors, sessions, throttling.
-- Secrets are never stored in the clear: password hashes (Argon2id PHC
-- strings), TOTP secrets sealed under the root key, recovery and email codes
-- and session ids as SHA-256.

CREATE TABLE password_credentials (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    must_change BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One TOTP enrollment per user; `id` changes with every enrollment and
-- binds the sealed secret, so codes of an earlier enrollment never verify.
CREATE TABLE totp_credentials (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    confirmed_at BIGINT,
    last_used_step BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal_id, code_hash)
);

CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    counter BIGINT NOT NULL,
    backup_eligible BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_principal ON passkeys (principal_id);

-- Short-lived state of a multi-step ceremony (a WebAuthn challenge, a sign-in
-- waiting for its second factor), looked up by the hash of a random handle.
CREATE TABLE ceremonies (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    principal_id TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ceremonies_expiry ON ceremonies (expires_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    id_hash TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    amr TEXT NOT NULL,
    acr TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    source_ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_principal ON sessions (principal_id);

-- Failed sign-ins per account and per source address, for back-off.
CREATE TABLE auth_throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

CREATE TABLE tenant_auth_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE email_codes (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL
);

-- Dev mode and tests: mail is written here instead of being sent.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
