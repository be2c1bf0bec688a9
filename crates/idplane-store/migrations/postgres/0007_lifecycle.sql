-- Lifecycle: joiners' start dates, durable jobs (end dates, reminders,
-- start dates) and what a leaver lost.

ALTER TABLE principals ADD COLUMN start_date BIGINT;

-- Time-driven work. `key` deduplicates: scheduling the same (tenant, kind,
-- key) again moves the one job instead of adding a second. A runner leases
-- a due job until `lease_until`; a crashed runner's lease expires and
-- another runner takes the job over. `state`: pending, done or dead.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, kind, key)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_key ON jobs (tenant_id, key);

-- What deprovisioning removed from a user (memberships, role assignments,
-- consents, transfers), so that a rehire can be reviewed against it.
CREATE TABLE leaver_records (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    cause TEXT NOT NULL,
    hr_change_id TEXT,
    removed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX leaver_records_principal ON leaver_records (principal_id, created_at);

-- Per-tenant lifecycle settings (JSON), e.g. the webhook told of reminders.
CREATE TABLE tenant_lifecycle_settings (
    tenant_id TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
