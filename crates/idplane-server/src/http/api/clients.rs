//! OAuth 2.0 / OpenID Connect clients registered by administrators (and,
//! read here too, those registered dynamically at `/oauth2/register`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use idplane_app::oidc::clients::{
    AccessTokenFormat, AuthMethod, Client, ClientType, CreateClient, RegisteredClient, SigningAlg,
    UpdateClient,
};
use idplane_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, etag_header};
use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{IfMatch, JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::List;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, update_client, delete_client))
        .routes(routes!(rotate_secret))
}

#[derive(Debug, Deserialize)]
struct ClientParam {
    client_id: String,
}

/// A registered client (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub first_party: bool,
    pub access_token_format: AccessTokenFormat,
    pub id_token_signed_response_alg: SigningAlg,
    pub require_pushed_authorization_requests: bool,
    pub access_token_lifetime_secs: i64,
    pub refresh_token_lifetime_secs: i64,
    /// Where logout tokens are sent (OpenID Connect Back-Channel Logout).
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client's access tokens must be DPoP-bound (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// Whether the client has a secret, and since when.
    pub has_secret: bool,
    #[schema(value_type = Option<String>)]
    pub secret_rotated_at: Option<Timestamp>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    pub version: i64,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            has_secret: c.secret_rotated_at.is_some(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            client_id: c.client_id,
            name: c.name,
            client_type: c.client_type,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            scopes: c.scopes,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            jwks: c.jwks,
            jwks_uri: c.jwks_uri,
            first_party: c.first_party,
            access_token_format: c.access_token_format,
            id_token_signed_response_alg: c.id_token_signed_response_alg,
            require_pushed_authorization_requests: c.require_pushed_authorization_requests,
            access_token_lifetime_secs: c.access_token_lifetime_secs,
            refresh_token_lifetime_secs: c.refresh_token_lifetime_secs,
            backchannel_logout_uri: c.backchannel_logout_uri,
            dpop_bound_access_tokens: c.dpop_bound_access_tokens,
            secret_rotated_at: c.secret_rotated_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

/// A client with a secret just issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredClientView {
    #[serde(flatten)]
    pub client: ClientView,
    /// The client secret, when one was just issued. Store it now: it
    /// cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<RegisteredClient> for RegisteredClientView {
    fn from(r: RegisteredClient) -> Self {
        Self {
            client: r.client.into(),
            client_secret: r.secret,
        }
    }
}

/// List clients, in `client_id` order.
#[utoipa::path(get, path = "/clients", tag = "clients", params(("tenant" = String, Path), PageParams),
    responses((status = 200, body = List<ClientView>)))]
async fn list_clients(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<ClientView>>> {
    let page = state.app.clients(&auth.ctx, &q.page()).await?;
    Ok(Json(List::from_page(
        page,
        |c| c.client_id.clone(),
        ClientView::from,
    )))
}

/// Register a client. A confidential client that authenticates with a
/// secret gets one, in this response only.
#[utoipa::path(post, path = "/clients", tag = "clients", params(("tenant" = String, Path)), request_body = CreateClient,
    responses((status = 201, body = RegisteredClientView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_client(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<CreateClient>,
) -> ApiResult<(StatusCode, HeaderMap, Json<RegisteredClientView>)> {
    let registered = state.app.create_client(&auth.ctx, cmd).await?;
    Ok((
        StatusCode::CREATED,
        etag_header(registered.client.version),
        Json(registered.into()),
    ))
}

/// Read a client.
#[utoipa::path(get, path = "/clients/{client_id}", tag = "clients", params(("tenant" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 404, body = Problem)))]
async fn get_client(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<ClientParam>,
) -> ApiResult<(HeaderMap, Json<ClientView>)> {
    let client = state.app.client(&auth.ctx, &p.client_id).await?;
    Ok((etag_header(client.version), Json(client.into())))
}

/// Change a client. A client that starts to need a secret gets one, in
/// this response only; one that stops needing it loses it.
#[utoipa::path(patch, path = "/clients/{client_id}", tag = "clients", params(("tenant" = String, Path), ("client_id" = String, Path)),
    request_body = UpdateClient, responses((status = 200, body = RegisteredClientView), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_client(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<ClientParam>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateClient>,
) -> ApiResult<(HeaderMap, Json<RegisteredClientView>)> {
    let updated = state
        .app
        .update_client(&auth.ctx, &p.client_id, cmd, if_match)
        .await?;
    Ok((etag_header(updated.client.version), Json(updated.into())))
}

/// Delete a client.
#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients", params(("tenant" = String, Path), ("client_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem)))]
async fn delete_client(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<ClientParam>,
    IfMatch(m): IfMatch,
) -> ApiResult<StatusCode> {
    state.app.delete_client(&auth.ctx, &p.client_id, m).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a client's secret: the old one stops working at once; the new
/// one is in this response only.
#[utoipa::path(post, path = "/clients/{client_id}/secret", tag = "clients", params(("tenant" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = RegisteredClientView), (status = 404, body = Problem), (status = 409, body = Problem, description = "the client uses no secret")))]
async fn rotate_secret(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<ClientParam>,
    IfMatch(m): IfMatch,
) -> ApiResult<(HeaderMap, Json<RegisteredClientView>)> {
    let rotated = state
        .app
        .rotate_client_secret(&auth.ctx, &p.client_id, m)
        .await?;
    Ok((etag_header(rotated.client.version), Json(rotated.into())))
}
