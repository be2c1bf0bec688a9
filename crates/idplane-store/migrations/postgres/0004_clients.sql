-- OAuth 2.0 / OpenID Connect clients registered by administrators.
-- Only a keyed hash (HMAC-SHA256 under a key derived from the root key) of
-- each client secret is kept. Lists and JWKS are JSON text; flags are 0/1.

CREATE TABLE oauth_clients (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    client_type TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    jwks TEXT,
    jwks_uri TEXT,
    first_party BIGINT NOT NULL,
    access_token_format TEXT NOT NULL,
    id_token_signed_response_alg TEXT NOT NULL,
    require_par BIGINT NOT NULL,
    access_token_lifetime_secs BIGINT NOT NULL,
    refresh_token_lifetime_secs BIGINT NOT NULL,
    secret_hash TEXT,
    secret_rotated_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
