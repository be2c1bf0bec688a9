//! A small JSON client for the admin API that turns problem documents into
//! one-line errors.

use std::fmt;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Largest page the API serves.
const MAX_PAGE: usize = 1000;

/// An authenticated connection to the admin API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A request the server refused: its status and the problem's detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} {}",
            self.method,
            self.path,
            self.status.as_u16(),
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

/// The status of a refused request, if `error` is one.
pub fn status_of(error: &anyhow::Error) -> Option<StatusCode> {
    error.downcast_ref::<ApiError>().map(|e| e.status)
}

impl Client {
    /// A client for `base`, authenticating with `token`.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("idplane-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// A client from `IDPLANE_TOKEN`.
    pub fn from_env(base: &str) -> anyhow::Result<Self> {
        let token = std::env::var("IDPLANE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        if token.is_none() {
            bail!("set IDPLANE_TOKEN to an admin token (see `idplane bootstrap`)");
        }
        Self::new(base, token)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, None)
            .await
            .map(|(v, _)| v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), None)
            .await
            .map(|(v, _)| v)
    }

    pub async fn patch(
        &self,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.send(Method::PATCH, path, Some(body), if_match)
            .await
            .map(|(v, _)| v)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(Method::DELETE, path, None, None)
            .await
            .map(|_| ())
    }

    /// Deletes, failing if the resource changed since `version`.
    pub async fn delete_if_match(&self, path: &str, if_match: Option<&str>) -> anyhow::Result<()> {
        self.send(Method::DELETE, path, None, if_match)
            .await
            .map(|_| ())
    }

    /// The items of a list endpoint, following `next_cursor` until there are
    /// no more or `limit` items are collected. `query` is appended to every
    /// page request.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
        limit: Option<usize>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut previous: Option<String> = None;
        loop {
            let want = limit.map_or(MAX_PAGE, |l| {
                l.saturating_sub(items.len()).clamp(1, MAX_PAGE)
            });
            let mut params: Vec<(&str, Option<String>)> = query.to_vec();
            params.push(("limit", Some(want.to_string())));
            params.push(("cursor", cursor.take()));
            let page = self.get(&with_query(path, &params)).await?;
            let page_items = page
                .get("items")
                .and_then(Value::as_array)
                .with_context(|| format!("GET {path}: the response is not a list"))?;
            items.extend(page_items.iter().cloned());
            if limit.is_some_and(|l| items.len() >= l) {
                items.truncate(limit.unwrap_or(usize::MAX));
                break;
            }
            let next = match page.get("next_cursor") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            // A cursor that does not move would loop forever.
            if next.is_none() || next == previous || page_items.is_empty() {
                break;
            }
            previous.clone_from(&next);
            cursor = next;
        }
        Ok(items)
    }

    /// Sends a request; returns the JSON body (or `null`) and the status.
    /// A refusal is an [`ApiError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<(Value, StatusCode)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(tag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, tag);
        }
        self.finish(method, path, request, &[]).await
    }

    /// POSTs a raw body; a status in `also_ok` is answered like a success
    /// (e.g. a refused HR import's 422, whose body is the plan).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        also_ok: &[StatusCode],
    ) -> anyhow::Result<(Value, StatusCode)> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.finish(Method::POST, path, request, also_ok).await
    }

    async fn finish(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
        also_ok: &[StatusCode],
    ) -> anyhow::Result<(Value, StatusCode)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("cannot read the response")?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() && !also_ok.contains(&status) {
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| match &value {
                    Value::String(s) => s.clone(),
                    Value::Null => status.canonical_reason().unwrap_or_default().to_owned(),
                    other => other.to_string(),
                });
            return Err(ApiError {
                method,
                path: path.to_owned(),
                status,
                detail,
            }
            .into());
        }
        Ok((value, status))
    }
}

/// `path` with the given query parameters (those with a value), encoded.
pub fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let mut out = path.to_owned();
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (key, value) in params {
        if let Some(value) = value {
            out.push(sep);
            out.push_str(&encode(key));
            out.push('=');
            out.push_str(&encode(value));
            sep = '&';
        }
    }
    out
}

/// Percent-encodes a path segment or query value: everything but the
/// unreserved characters of RFC 3986 (and `:` and `@`, allowed in segments).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The strong ETag naming `version`, for `If-Match`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_and_skip_absent_values() {
        let q = with_query(
            "/users",
            &[
                ("name", Some("a b&c".into())),
                ("prefix", None),
                ("limit", Some("5".into())),
            ],
        );
        assert_eq!(q, "/users?name=a%20b%26c&limit=5");
        assert_eq!(
            with_query("/x?a=1", &[("b", Some("2".into()))]),
            "/x?a=1&b=2"
        );
        assert_eq!(encode("group:eng/ops"), "group:eng%2Fops");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
