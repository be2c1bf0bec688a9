-- A counter every change to what the decision engine projects from the
-- directory (principals, memberships, roles, role assignments) moves, in
-- the changing transaction itself: another node polls it and drops its
-- cached projections when it moved, so a change is seen everywhere within
-- a poll, not a cache lifetime. Triggers, so no write path can forget it;
-- once per statement, so a bulk import moves it once per statement.
CREATE TABLE directory_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION move_directory_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_generation SET generation = generation + 1;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    directory_table TEXT;
BEGIN
    FOREACH directory_table IN ARRAY ARRAY['principals', 'memberships', 'roles', 'role_assignments'] LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION move_directory_generation()',
            directory_table || '_move_generation', directory_table);
    END LOOP;
END;
$$;
