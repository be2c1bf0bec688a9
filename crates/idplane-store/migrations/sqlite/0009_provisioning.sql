-- Outbound provisioning: connected applications that receive users and
-- groups over SCIM, and what idplane knows it pushed to each.

-- One connected application per row. `token_sealed` is the bearer token
-- sealed under the root key (bound to the target id); `scope_group` is the
-- group whose transitive members it receives (NULL: every user);
-- `mapping` is a JSON object: target SCIM attribute path -> idplane source.
CREATE TABLE provisioning_targets (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    base_url TEXT NOT NULL,
    token_sealed TEXT NOT NULL,
    scope_group TEXT REFERENCES principals (id),
    push_groups BIGINT NOT NULL,
    mapping TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    UNIQUE (tenant_id, name_key)
);

-- The remote id of a principal at a target. No foreign key to principals:
-- a deleted principal's link is what its remote deletion needs, and the
-- push that deletes remotely removes the link.
CREATE TABLE provisioning_links (
    target_id TEXT NOT NULL REFERENCES provisioning_targets (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    last_pushed_version BIGINT NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (target_id, principal_id)
);
