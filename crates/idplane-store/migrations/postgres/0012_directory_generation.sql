-- A counter every change to what the decision engine projects from the
-- directory (principals, memberships, roles, role assignments) moves, in
-- the changing transaction itself: another node polls it and drops its
-- cached projections when it moved, so a change is seen everywhere within
-- a poll, not a cache lifetime. Triggers, so no write path can forget it.
CREATE TABLE directory_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 0);

-- Deferred to the commit and run once per transaction, however many rows
-- it changed: the counter's row lock is then the last one a transaction
-- takes, so it cannot close a deadlock with the rows other directory
-- writers hold, and a bulk import moves it once.
CREATE FUNCTION move_directory_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('idplane.directory_moved', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('idplane.directory_moved', 'yes', true);
        UPDATE directory_generation SET generation = generation + 1;
    END IF;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    directory_table TEXT;
BEGIN
    FOREACH directory_table IN ARRAY ARRAY['principals', 'memberships', 'roles', 'role_assignments'] LOOP
        EXECUTE format(
            'CREATE CONSTRAINT TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I '
            'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION move_directory_generation()',
            directory_table || '_move_generation', directory_table);
    END LOOP;
END;
$$;
