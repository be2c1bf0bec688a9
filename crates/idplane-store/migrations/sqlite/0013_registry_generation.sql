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

CREATE TRIGGER admin_tokens_insert_moves_registry AFTER INSERT ON admin_tokens
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER admin_tokens_update_moves_registry AFTER UPDATE ON admin_tokens
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER admin_tokens_delete_moves_registry AFTER DELETE ON admin_tokens
BEGIN UPDATE registry_generation SET generation = generation + 1; END;

CREATE TRIGGER oauth_clients_insert_moves_registry AFTER INSERT ON oauth_clients
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER oauth_clients_update_moves_registry AFTER UPDATE ON oauth_clients
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER oauth_clients_delete_moves_registry AFTER DELETE ON oauth_clients
BEGIN UPDATE registry_generation SET generation = generation + 1; END;

CREATE TRIGGER oauth_resources_insert_moves_registry AFTER INSERT ON oauth_resources
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER oauth_resources_update_moves_registry AFTER UPDATE ON oauth_resources
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER oauth_resources_delete_moves_registry AFTER DELETE ON oauth_resources
BEGIN UPDATE registry_generation SET generation = generation + 1; END;

CREATE TRIGGER signing_keys_insert_moves_registry AFTER INSERT ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER signing_keys_update_moves_registry AFTER UPDATE ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER signing_keys_delete_moves_registry AFTER DELETE ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1; END;

-- Moved by every revoked access token id, so other nodes reload their
-- in-memory list of revoked ids within a poll rather than at the next
-- housekeeping. Its own counter: revocations are frequent, and must not
-- empty the registry caches each time.
CREATE TABLE revocation_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER oauth_revoked_jtis_insert_moves_revocations AFTER INSERT ON oauth_revoked_jtis
BEGIN UPDATE revocation_generation SET generation = generation + 1; END;
