//! SCIM 2.0 (RFC 7644) at `/scim/v2`: a translator between SCIM's HTTP
//! and the `idplane_app::scim` calls. Callers are provisioning clients with
//! a `scim` (or `admin`) token acting in their tenant; every error, from a
//! bad token to a bad filter, is a SCIM `Error` message.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idplane_app::scim::error::ScimError;
use idplane_app::scim::list::ListQuery;
use idplane_app::scim::projection::Projection;
use idplane_app::scim::schema::{
    self, BULK_MAX_PAYLOAD, ResourceType, resource_type_resources, schema_resources,
};
use idplane_app::scim::{ERROR, LIST_RESPONSE, parse_if_match};
use idplane_core::Ctx;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::auth::AnyCaller;

pub const BASE: &str = "/scim/v2";
const MEDIA_TYPE: &str = "application/scim+json";

pub fn routes() -> Router<AppState> {
    let scim = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/Bulk", post(bulk))
        .route("/.search", post(search_all))
        .route("/{resource}", get(list).post(create))
        .route("/{resource}/.search", post(search))
        .route(
            "/{resource}/{id}",
            get(read).put(write).patch(write).delete(delete),
        )
        .fallback(not_found);
    Router::new().nest(BASE, scim)
}

/// A SCIM error response.
pub struct Failure(ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut body = json!({
            "schemas": [ERROR],
            "status": e.status.to_string(),
            "detail": e.detail,
        });
        if let Some(t) = e.scim_type {
            body["scimType"] = json!(t);
        }
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = scim_json(status, body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"idplane\""),
            );
        }
        response
    }
}

type ScimResponse = Result<Response, Failure>;

fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

/// A resource response with its `ETag` (and `Location` when created).
fn resource_response(status: StatusCode, resource: Value) -> Response {
    let etag = resource["meta"]["version"].as_str().map(str::to_owned);
    let location = resource["meta"]["location"].as_str().map(str::to_owned);
    let mut response = scim_json(status, resource);
    let headers = response.headers_mut();
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok())
    {
        headers.insert(header::LOCATION, loc);
    }
    response
}

/// A provisioning client acting in its tenant (the default one for a
/// token bound to none).
pub struct ScimCaller {
    ctx: Ctx,
}

impl<S> FromRequestParts<S> for ScimCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        let AnyCaller { caller, meta } = AnyCaller::from_request_parts(parts, state)
            .await
            .map_err(|p| ScimError::new(p.status, None, p.detail))?;
        let state = AppState::from_ref(state);
        let tenant = match caller.tenant {
            Some(bound) => bound,
            None => state
                .tenant_id(idplane_app::DEFAULT_TENANT)
                .await
                .map_err(|p| ScimError::new(p.status, None, p.detail))?,
        };
        let write = !matches!(parts.method, Method::GET | Method::HEAD);
        if !caller.may_provision(tenant, write) {
            return Err(ScimError::new(
                403,
                None,
                format!(
                    "this token ({:?} scope) may not do this over SCIM",
                    caller.scope
                )
                .to_lowercase(),
            )
            .into());
        }
        let ctx = state.app.ctx(tenant, caller.actor.clone(), meta);
        Ok(ScimCaller { ctx })
    }
}

/// A JSON body sent as `application/scim+json` or `application/json`.
pub struct ScimBody(Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if !matches!(media.as_deref(), Some(MEDIA_TYPE | "application/json")) {
            return Err(ScimError::new(
                415,
                None,
                "the body must be application/scim+json or application/json",
            )
            .into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    413,
                    None,
                    format!("the body is larger than {BULK_MAX_PAYLOAD} bytes"),
                )
            } else {
                ScimError::invalid_syntax("the body could not be read")
            }
        })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))?;
        Ok(Self(value))
    }
}

fn resource_type(segment: &str) -> Result<ResourceType, Failure> {
    ResourceType::from_endpoint(segment).ok_or_else(|| {
        ScimError::not_found(format!("no resource type at `{BASE}/{segment}`")).into()
    })
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Failure> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(v) => Ok(parse_if_match(v)?),
        None => Ok(None),
    }
}

/// `attributes` and `excludedAttributes` of a request's query.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectionParams {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ProjectionParams {
    fn projection(&self, rt: ResourceType) -> Result<Projection, Failure> {
        Ok(Projection::parse(
            rt,
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )?)
    }
}

async fn not_found() -> Failure {
    ScimError::not_found("no SCIM endpoint here").into()
}

async fn service_provider_config(State(state): State<AppState>, _: ScimCaller) -> Response {
    scim_json(
        StatusCode::OK,
        schema::service_provider_config(&state.app.scim_base()),
    )
}

fn list_response(resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": resources.len(),
            "startIndex": 1,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

async fn schemas(State(state): State<AppState>, _: ScimCaller) -> Response {
    list_response(schema_resources(&state.app.scim_base()))
}

async fn schema_by_id(
    State(state): State<AppState>,
    _: ScimCaller,
    Path(id): Path<String>,
) -> ScimResponse {
    one_of(schema_resources(&state.app.scim_base()), &id)
}

async fn resource_types(State(state): State<AppState>, _: ScimCaller) -> Response {
    list_response(resource_type_resources(&state.app.scim_base()))
}

async fn resource_type_by_id(
    State(state): State<AppState>,
    _: ScimCaller,
    Path(id): Path<String>,
) -> ScimResponse {
    one_of(resource_type_resources(&state.app.scim_base()), &id)
}

fn one_of(resources: Vec<Value>, id: &str) -> ScimResponse {
    resources
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id))
        .map(|r| scim_json(StatusCode::OK, r))
        .ok_or_else(|| ScimError::not_found(format!("`{id}` not found")).into())
}

/// The query of a list request (RFC 7644 §3.4.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    #[serde(flatten)]
    projection: ProjectionParams,
}

/// A number parameter; RFC 7644 §3.4.2.4 says out-of-range values are
/// clamped, not refused, but a non-number is a client bug.
fn number(name: &str, value: Option<&str>) -> Result<Option<i64>, Failure> {
    value
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("`{name}` must be an integer")).into()
            })
        })
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path(resource): Path<String>,
    Query(params): Query<ListParams>,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let query = ListQuery {
        filter: params.filter.clone(),
        sort_by: params.sort_by.clone(),
        descending: params
            .sort_order
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending")),
        start_index: number("startIndex", params.start_index.as_deref())?,
        count: number("count", params.count.as_deref())?,
    };
    run_list(
        &state,
        &caller.ctx,
        rt,
        &query,
        &params.projection.projection(rt)?,
    )
    .await
}

/// `POST /.search` (RFC 7644 §3.4.3): the list query in a body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    schemas: Vec<String>,
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<Vec<String>>,
    excluded_attributes: Option<Vec<String>>,
}

impl SearchRequest {
    fn parse(body: Value) -> Result<Self, Failure> {
        let req: Self = serde_json::from_value(body)
            .map_err(|e| ScimError::invalid_syntax(format!("bad SearchRequest: {e}")))?;
        if !req
            .schemas
            .iter()
            .any(|s| s == "urn:ietf:params:scim:api:messages:2.0:SearchRequest")
        {
            return Err(
                ScimError::invalid_syntax("`schemas` must name the SearchRequest schema").into(),
            );
        }
        Ok(req)
    }

    fn projection(&self, rt: ResourceType) -> Result<Projection, Failure> {
        Ok(Projection::parse(
            rt,
            self.attributes.as_ref().map(|a| a.join(",")).as_deref(),
            self.excluded_attributes
                .as_ref()
                .map(|a| a.join(","))
                .as_deref(),
        )?)
    }

    fn query(self) -> ListQuery {
        ListQuery {
            filter: self.filter,
            sort_by: self.sort_by,
            descending: self
                .sort_order
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("descending")),
            start_index: self.start_index,
            count: self.count,
        }
    }
}

async fn search(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path(resource): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let req = SearchRequest::parse(body)?;
    let projection = req.projection(rt)?;
    run_list(&state, &caller.ctx, rt, &req.query(), &projection).await
}

/// `POST /.search` at the root: every resource type.
async fn search_all(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimBody(body): ScimBody,
) -> ScimResponse {
    let req = SearchRequest::parse(body)?;
    let users = req.projection(ResourceType::User)?;
    let groups = req.projection(ResourceType::Group)?;
    let mut page = state.app.scim_search_all(&caller.ctx, &req.query()).await?;
    if let Some(Value::Array(items)) = page.get_mut("Resources") {
        for item in items.iter_mut() {
            let (rt, projection) = match item["meta"]["resourceType"].as_str() {
                Some("Group") => (ResourceType::Group, &groups),
                _ => (ResourceType::User, &users),
            };
            *item = projection.apply(rt, std::mem::take(item));
        }
    }
    Ok(scim_json(StatusCode::OK, page))
}

async fn run_list(
    state: &AppState,
    ctx: &Ctx,
    rt: ResourceType,
    query: &ListQuery,
    projection: &Projection,
) -> ScimResponse {
    let mut page = state.app.scim_list(ctx, rt, query).await?;
    if let Some(Value::Array(items)) = page.get_mut("Resources") {
        for item in items.iter_mut() {
            *item = projection.apply(rt, std::mem::take(item));
        }
    }
    Ok(scim_json(StatusCode::OK, page))
}

async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path(resource): Path<String>,
    Query(params): Query<ProjectionParams>,
    ScimBody(body): ScimBody,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let projection = params.projection(rt)?;
    let created = state.app.scim_create(&caller.ctx, rt, &body).await?;
    Ok(resource_response(
        StatusCode::CREATED,
        projection.apply(rt, created),
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((resource, id)): Path<(String, String)>,
    Query(params): Query<ProjectionParams>,
    headers: HeaderMap,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let projection = params.projection(rt)?;
    let found = state.app.scim_get(&caller.ctx, rt, &id).await?;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .zip(found["meta"]["version"].as_str())
        .is_some_and(|(wanted, current)| wanted.split(',').any(|t| t.trim() == current));
    if unchanged {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Some(tag) = found["meta"]["version"]
            .as_str()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            response.headers_mut().insert(header::ETAG, tag);
        }
        return Ok(response);
    }
    Ok(resource_response(
        StatusCode::OK,
        projection.apply(rt, found),
    ))
}

/// PUT replaces a resource, PATCH applies operations to it.
async fn write(
    State(state): State<AppState>,
    caller: ScimCaller,
    method: Method,
    Path((resource, id)): Path<(String, String)>,
    Query(params): Query<ProjectionParams>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let projection = params.projection(rt)?;
    let version = if_match(&headers)?;
    let app = &state.app;
    let written = if method == Method::PATCH {
        app.scim_patch(&caller.ctx, rt, &id, &body, version).await?
    } else {
        app.scim_replace(&caller.ctx, rt, &id, &body, version)
            .await?
    };
    Ok(resource_response(
        StatusCode::OK,
        projection.apply(rt, written),
    ))
}

async fn delete(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResponse {
    let rt = resource_type(&resource)?;
    let version = if_match(&headers)?;
    state.app.scim_delete(&caller.ctx, rt, &id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn bulk(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimBody(body): ScimBody,
) -> ScimResponse {
    let answer = state.app.scim_bulk(&caller.ctx, &body).await?;
    Ok(scim_json(StatusCode::OK, answer))
}
