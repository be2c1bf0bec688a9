-- A counter every change to the registrations the server caches in memory
-- on its request paths moves, in the changing transaction itself: API
-- tokens (the `pdp` tokens decisions are asked with), OAuth clients,
-- resource servers and signing keys. Another node polls it and drops those
-- caches (reloads its keys) when it moved, so a revoked token or a rotated
-- client secret stops working everywhere within a poll, not a cache
-- lifetime, and a key rotated on one node signs and is published on all.
-- Triggers, so no write path can forget it.
CREATE TABLE registry_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO registry_generation (id, generation) VALUES (1, 0);

-- Deferred to the commit and run once per transaction, as the directory
-- generation's trigger is (migration 0012), for the same reasons. One
-- function for both counters of this migration: its argument names the
-- counter's table.
CREATE FUNCTION move_generation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved TEXT := 'idplane.moved_' || TG_ARGV[0];
BEGIN
    IF current_setting(moved, true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config(moved, 'yes', true);
        EXECUTE format('UPDATE %I SET generation = generation + 1', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    registry_table TEXT;
BEGIN
    FOREACH registry_table IN ARRAY ARRAY['admin_tokens', 'oauth_clients', 'oauth_resources', 'signing_keys'] LOOP
        EXECUTE format(
            'CREATE CONSTRAINT TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I '
            'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION move_generation(''registry_generation'')',
            registry_table || '_move_registry', registry_table);
    END LOOP;
END;
$$;

-- Moved by every revoked access token id, so other nodes reload their
-- in-memory list of revoked ids within a poll rather than at the next
-- housekeeping. Its own counter: revocations are frequent, and must not
-- empty the registry caches each time.
CREATE TABLE revocation_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);

CREATE CONSTRAINT TRIGGER oauth_revoked_jtis_move_revocations AFTER INSERT ON oauth_revoked_jtis
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION move_generation('revocation_generation');
