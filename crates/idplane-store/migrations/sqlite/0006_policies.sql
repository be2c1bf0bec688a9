-- Authorization policy: each change is a new immutable version (the whole
-- bundle of schemas, policies and tests as JSON text); one version per
-- tenant is active. Rolling back moves the pointer; no version is rewritten.

CREATE TABLE policy_versions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    bundle TEXT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE policy_active (
    tenant_id TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    activated_at BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, version) REFERENCES policy_versions (tenant_id, version)
);
