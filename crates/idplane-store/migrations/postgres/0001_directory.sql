-- The directory, administrator tokens, keys and the audit log.
-- Portable types: ids and JSON as TEXT, times as BIGINT milliseconds since the epoch.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    display_name TEXT,
    email TEXT,
    external_id TEXT,
    status TEXT NOT NULL,
    user_type TEXT,
    end_date BIGINT,
    sponsor_id TEXT REFERENCES principals (id),
    owner_id TEXT REFERENCES principals (id),
    purpose TEXT,
    expires_at BIGINT,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX principals_name ON principals (tenant_id, kind, name_key);
CREATE UNIQUE INDEX principals_external_id ON principals (tenant_id, kind, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX principals_email ON principals (tenant_id, email);
CREATE INDEX principals_sponsor ON principals (sponsor_id);
CREATE INDEX principals_owner ON principals (owner_id);

CREATE TABLE memberships (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX memberships_member ON memberships (member_id);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    description TEXT,
    entitlements TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (tenant_id, name_key);

-- Deleting an assigned role is refused by the application; the cascade only
-- serves deleting a whole tenant.
CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (role_id, principal_id)
);
CREATE INDEX role_assignments_principal ON role_assignments (principal_id);

-- Only a SHA-256 of each token is kept.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    principal_id TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

-- Private keys are sealed (AES-256-GCM) under the root key, never stored plain.
CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Audit events outlive the tenant they describe: no foreign key.
CREATE TABLE audit_events (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    on_behalf_of TEXT,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    source_ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_time ON audit_events (tenant_id, time);
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor);
CREATE INDEX audit_events_target ON audit_events (tenant_id, target);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action);

CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
