//! A scripted browser for the black-box tests: keeps cookies by name,
//! never follows redirects, submits forms with the CSRF token.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::support::TestServer;

/// A browser: keeps cookies by name, never follows redirects.
pub struct Browser<'a> {
    server: &'a TestServer,
    pub client: Client,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        let client = Client::builder().redirect(Policy::none()).build().unwrap();
        Self {
            server,
            client,
            cookies: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.into(), value.into()));
    }

    fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !text.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        let r = self
            .client
            .get(self.server.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        self.absorb(&headers);
        (status, headers, r.text().await.unwrap())
    }

    pub async fn form(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let r = self
            .client
            .post(self.server.url(path))
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        self.absorb(&headers);
        (status, headers, r.text().await.unwrap())
    }

    pub async fn json(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        let csrf = self.cookie("idplane_csrf").unwrap_or_default();
        let r = self
            .client
            .post(self.server.url(path))
            .header("cookie", self.cookie_header())
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        self.absorb(&headers);
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The CSRF token, fetching the sign-in page for it if needed.
    pub async fn csrf(&mut self) -> String {
        if self.cookie("idplane_csrf").is_none() {
            self.get("/login").await;
        }
        self.cookie("idplane_csrf").unwrap()
    }

    pub async fn sign_in(
        &mut self,
        username: &str,
        password: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let csrf = self.csrf().await;
        self.form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}
