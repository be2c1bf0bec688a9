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

CREATE TRIGGER principals_insert_moves_generation AFTER INSERT ON principals
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER principals_update_moves_generation AFTER UPDATE ON principals
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER principals_delete_moves_generation AFTER DELETE ON principals
BEGIN UPDATE directory_generation SET generation = generation + 1; END;

CREATE TRIGGER memberships_insert_moves_generation AFTER INSERT ON memberships
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER memberships_update_moves_generation AFTER UPDATE ON memberships
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER memberships_delete_moves_generation AFTER DELETE ON memberships
BEGIN UPDATE directory_generation SET generation = generation + 1; END;

CREATE TRIGGER roles_insert_moves_generation AFTER INSERT ON roles
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER roles_update_moves_generation AFTER UPDATE ON roles
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER roles_delete_moves_generation AFTER DELETE ON roles
BEGIN UPDATE directory_generation SET generation = generation + 1; END;

CREATE TRIGGER role_assignments_insert_moves_generation AFTER INSERT ON role_assignments
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER role_assignments_update_moves_generation AFTER UPDATE ON role_assignments
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
CREATE TRIGGER role_assignments_delete_moves_generation AFTER DELETE ON role_assignments
BEGIN UPDATE directory_generation SET generation = generation + 1; END;
