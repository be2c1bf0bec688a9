//! idplane as a SCIM 2.0 client (RFC 7644) of one connected application,
//! through the shared outbound HTTP client (bounded, no redirects). Errors
//! are sorted for the outbox: what a retry may fix (unreachable, 5xx, 408,
//! 409, 429) from what it cannot (any other refusal, a malformed answer),
//! with the target's own SCIM error message kept for the administrator.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::outbound;
use crate::scim::PATCH_OP;

/// Largest response body read from a target.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Why a call to a target failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Worth retrying later: the target is down, overloaded or busy.
    Transient(String),
    /// The target refused the request; retrying the same request cannot help.
    Rejected(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(e) | Self::Rejected(e) => f.write_str(e),
        }
    }
}

/// The SCIM resource endpoints idplane pushes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Users,
    Groups,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Users => "/Users",
            Self::Groups => "/Groups",
        }
    }
}

/// A connected application's SCIM endpoint and bearer token. Debug output
/// never shows the token.
pub struct ScimClient {
    base: String,
    token: String,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

type Answer = Result<(StatusCode, Option<Value>), CallError>;

impl ScimClient {
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Answer {
        let client =
            outbound::client().map_err(|e| CallError::Transient(format!("no HTTP client: {e}")))?;
        let mut req = client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/scim+json")
            .query(query);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/scim+json")
                .body(body.to_string());
        }
        let what = format!("{method} {path}");
        let mut resp = req.send().await.map_err(|e| {
            CallError::Transient(format!(
                "{what}: the target could not be reached: {}",
                e.without_url()
            ))
        })?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            CallError::Transient(format!("{what}: reading the answer: {}", e.without_url()))
        })? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(CallError::Rejected(format!(
                    "{what}: the answer is larger than {MAX_BODY} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let json = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice::<Value>(&bytes).ok()
        };
        if status.is_success() {
            if json.is_none() && !bytes.is_empty() && status != StatusCode::NO_CONTENT {
                return Err(CallError::Rejected(format!(
                    "{what}: {status} with a body that is not JSON"
                )));
            }
            return Ok((status, json));
        }
        if status == StatusCode::NOT_FOUND {
            return Ok((status, json));
        }
        Err(refusal(&what, status, json.as_ref()))
    }

    /// The resource whose `externalId` is `external_id`, if the target has one.
    pub async fn find(
        &self,
        endpoint: Endpoint,
        external_id: &str,
    ) -> Result<Option<Value>, CallError> {
        // RFC 7644 §3.4.2.2: a string literal in double quotes, JSON-escaped.
        let filter = format!("externalId eq {}", json!(external_id));
        let (status, body) = self
            .call(Method::GET, endpoint.path(), &[("filter", filter)], None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CallError::Rejected(format!(
                "GET {}: 404: the target has no such endpoint",
                endpoint.path()
            )));
        }
        // Only a resource that really carries the id: a target that ignores
        // the filter must not have some other user overwritten.
        Ok(list_resources(body.as_ref())?
            .into_iter()
            .find(|r| r.get("externalId").and_then(Value::as_str) == Some(external_id)))
    }

    /// Creates a resource; returns the target's id for it.
    pub async fn create(&self, endpoint: Endpoint, body: &Value) -> Result<String, CallError> {
        let (status, answer) = self
            .call(Method::POST, endpoint.path(), &[], Some(body))
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CallError::Rejected(format!(
                "POST {}: 404: the target has no such endpoint",
                endpoint.path()
            )));
        }
        resource_id(answer.as_ref(), "POST")
    }

    /// Replaces a resource; `None` when the target no longer has it.
    pub async fn replace(
        &self,
        endpoint: Endpoint,
        id: &str,
        body: &Value,
    ) -> Result<Option<String>, CallError> {
        let path = member_path(endpoint, id)?;
        let (status, answer) = self.call(Method::PUT, &path, &[], Some(body)).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // Some servers answer 204 without the resource: the id is unchanged.
        match answer {
            Some(a) => resource_id(Some(&a), "PUT").map(Some),
            None => Ok(Some(id.to_owned())),
        }
    }

    /// Sets `active` to false; returns whether the target had the user.
    pub async fn deactivate(&self, id: &str) -> Result<bool, CallError> {
        let path = member_path(Endpoint::Users, id)?;
        let body = json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "value": {"active": false}}],
        });
        let (status, _) = self.call(Method::PATCH, &path, &[], Some(&body)).await?;
        Ok(status != StatusCode::NOT_FOUND)
    }

    /// Deletes a resource; a resource already gone counts as deleted.
    pub async fn delete(&self, endpoint: Endpoint, id: &str) -> Result<(), CallError> {
        let path = member_path(endpoint, id)?;
        self.call(Method::DELETE, &path, &[], None).await?;
        Ok(())
    }

    /// One page of users: the resources and the target's `totalResults`.
    pub async fn list_users(
        &self,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<Value>, u64), CallError> {
        let (status, body) = self
            .call(
                Method::GET,
                Endpoint::Users.path(),
                &[
                    ("startIndex", start_index.to_string()),
                    ("count", count.to_string()),
                ],
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CallError::Rejected(
                "GET /Users: 404: the target has no such endpoint".into(),
            ));
        }
        let total = body
            .as_ref()
            .and_then(|b| b.get("totalResults"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                CallError::Rejected("GET /Users: the answer has no totalResults".into())
            })?;
        Ok((list_resources(body.as_ref())?, total))
    }
}

/// `/Users/{id}` with the id checked: a remote id is the target's data, and
/// must not be able to steer the request elsewhere.
fn member_path(endpoint: Endpoint, id: &str) -> Result<String, CallError> {
    let safe = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~@+=".contains(c));
    if !safe {
        return Err(CallError::Rejected(format!(
            "the target's resource id {id:?} is not usable in a URL path"
        )));
    }
    Ok(format!("{}/{id}", endpoint.path()))
}

fn list_resources(body: Option<&Value>) -> Result<Vec<Value>, CallError> {
    match body.and_then(|b| b.get("Resources")) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(CallError::Rejected(
            "the list answer's Resources is not an array".into(),
        )),
    }
}

fn resource_id(body: Option<&Value>, what: &str) -> Result<String, CallError> {
    body.and_then(|b| b.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| CallError::Rejected(format!("{what}: the answer carries no resource id")))
}

/// The error for a refusal, with the target's SCIM error (RFC 7644 §3.12)
/// when it sent one.
fn refusal(what: &str, status: StatusCode, body: Option<&Value>) -> CallError {
    let scim_type = body.and_then(|b| b.get("scimType")).and_then(Value::as_str);
    let detail = body.and_then(|b| b.get("detail")).and_then(Value::as_str);
    let mut text = format!("{what}: {status}");
    if let Some(t) = scim_type {
        text.push_str(&format!(" ({t})"));
    }
    if let Some(d) = detail {
        let d: String = d.chars().take(500).collect();
        text.push_str(&format!(": {d}"));
    }
    let retry = status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
        );
    if retry {
        CallError::Transient(text)
    } else {
        CallError::Rejected(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_sorted_by_what_a_retry_can_fix() {
        let scim =
            json!({"scimType": "invalidValue", "detail": "userName is required", "status": "400"});
        assert_eq!(
            refusal("POST /Users", StatusCode::BAD_REQUEST, Some(&scim)),
            CallError::Rejected(
                "POST /Users: 400 Bad Request (invalidValue): userName is required".into()
            )
        );
        for status in [500, 502, 503, 408, 409, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(refusal("x", status, None), CallError::Transient(_)),
                "{status}"
            );
        }
        for status in [400, 401, 403, 405, 412, 413] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(refusal("x", status, None), CallError::Rejected(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn remote_ids_cannot_steer_the_path() {
        assert_eq!(member_path(Endpoint::Users, "a-1").unwrap(), "/Users/a-1");
        for bad in [
            "",
            "../Groups",
            "a/b",
            "a?x=1",
            "a#b",
            "a b",
            &"x".repeat(300),
        ] {
            assert!(member_path(Endpoint::Users, bad).is_err(), "{bad}");
        }
    }
}
