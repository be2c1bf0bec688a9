-- HR as the source of truth: the tenant's lifecycle rules (birthright as
-- code), which access each birthright rule gave (so recomputing removes only
-- that, never access granted by hand), and the HR changes an import applied
-- (what the leavers report reads).

CREATE TABLE tenant_lifecycle_rules (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    rules TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Exactly one of group_id and role_id is set. remove_after: a mover's
-- grace, after which the grant goes (the membership or assignment expires
-- at the same instant, so access ends on time without any job).
CREATE TABLE birthright_grants (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    group_id TEXT REFERENCES principals (id) ON DELETE CASCADE,
    role_id TEXT REFERENCES roles (id) ON DELETE CASCADE,
    granted_at BIGINT NOT NULL,
    remove_after BIGINT,
    CHECK ((group_id IS NULL) <> (role_id IS NULL))
);
CREATE UNIQUE INDEX birthright_grants_group ON birthright_grants (principal_id, rule_id, group_id) WHERE group_id IS NOT NULL;
CREATE UNIQUE INDEX birthright_grants_role ON birthright_grants (principal_id, rule_id, role_id) WHERE role_id IS NOT NULL;
-- A user's grants are read at every recomputation.
CREATE INDEX birthright_grants_principal ON birthright_grants (tenant_id, principal_id);
CREATE INDEX birthright_grants_remove_after ON birthright_grants (tenant_id, remove_after) WHERE remove_after IS NOT NULL;

-- principal_id has no foreign key: the record outlives a deleted account.
CREATE TABLE hr_changes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    import_id TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    effective_at BIGINT,
    received_at BIGINT NOT NULL,
    applied_at BIGINT,
    deprovisioned_at BIGINT
);
CREATE INDEX hr_changes_kind ON hr_changes (tenant_id, kind, received_at);
CREATE INDEX hr_changes_principal ON hr_changes (tenant_id, principal_id);
