-- The decision log's events leave the index by target: a deny's target is
-- its subject, in random order, so each event dirtied an index page of its
-- own (on SQLite, half the cost of writing the log). A search by target
-- reads them through the index by action instead (`audit::query`). The
-- literal must match `idplane_core::audit::DECISION_ACTION`.
DROP INDEX audit_events_target;
CREATE INDEX audit_events_target ON audit_events (tenant_id, target)
    WHERE action <> 'authz.decision';
