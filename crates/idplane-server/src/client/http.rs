//! A small JSON client for the admin API that turns problem documents into
//! one-line errors.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An authenticated connection to the admin API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
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
        let token = std::env::var("IDPLANE_TOKEN").ok().filter(|t| !t.is_empty());
        if token.is_none() {
            bail!("set IDPLANE_TOKEN to an admin token (see `idplane bootstrap`)");
        }
        Self::new(base, token)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, None).await.map(|(v, _)| v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), None).await.map(|(v, _)| v)
    }

    pub async fn patch(&self, path: &str, body: &Value, if_match: Option<&str>) -> anyhow::Result<Value> {
        self.send(Method::PATCH, path, Some(body), if_match).await.map(|(v, _)| v)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(Method::DELETE, path, None, None).await.map(|_| ())
    }

    /// Sends a request; returns the JSON body (or `null`) and the status.
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
        if !status.is_success() {
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: {} {detail}", status.as_u16());
        }
        Ok((value, status))
    }
}
