//! What every page needs: a CSP nonce, the CSRF token, cookies, and the
//! response headers that keep pages out of frames and scripts off them.

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_app::keyring::random_bytes;
use subtle::ConstantTimeEq;

use crate::http::AppState;

/// The session cookie (with the `__Host-` prefix when served over https).
pub const SESSION: &str = "idplane_session";
/// The cookie carrying the handle of an unfinished sign-in step.
pub const STEP: &str = "idplane_step";
/// The CSRF double-submit cookie.
pub const CSRF: &str = "idplane_csrf";
/// Where to go after signing in (a local path), kept across the steps.
pub const RETURN: &str = "idplane_return";

/// A local path to return to after sign-in: absolute, on this origin (no
/// scheme, no `//` host, no backslash tricks), or `None`.
pub fn local_path(candidate: &str) -> Option<&str> {
    let safe = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.contains('\\')
        && !candidate.chars().any(char::is_control)
        && candidate.len() <= 2048;
    safe.then_some(candidate)
}

/// Per-response values for rendering a page.
#[derive(Debug, Clone)]
pub struct PageKit {
    pub nonce: String,
    pub csrf: String,
    /// Whether the CSRF cookie must be (re)set on this response.
    new_csrf: bool,
    https: bool,
}

impl PageKit {
    /// A fresh nonce, and the caller's CSRF token or a new one.
    pub fn new(state: &AppState, headers: &HeaderMap) -> Self {
        let https = is_https(state);
        let existing = read_cookie(headers, &cookie_name(CSRF, https)).filter(|t| t.len() == 43);
        let new_csrf = existing.is_none();
        Self {
            nonce: random_token(),
            csrf: existing.unwrap_or_else(random_token),
            new_csrf,
            https,
        }
    }

    /// An HTML page with the security headers, plus any cookies to set.
    pub fn html(&self, status: StatusCode, body: String, cookies: Vec<String>) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        let csp = format!(
            "default-src 'none'; script-src 'nonce-{}'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            self.nonce
        );
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        );
        headers.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        );
        self.add_cookies(headers, cookies);
        response
    }

    /// A 303 redirect to `to` (a path of ours), setting cookies.
    pub fn redirect(&self, to: &str, cookies: Vec<String>) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(value) = HeaderValue::from_str(to) {
            response.headers_mut().insert(LOCATION, value);
        }
        self.add_cookies(response.headers_mut(), cookies);
        response
    }

    fn add_cookies(&self, headers: &mut HeaderMap, mut cookies: Vec<String>) {
        if self.new_csrf {
            cookies.push(self.cookie(CSRF, &self.csrf, None));
        }
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, and Secure with
    /// the `__Host-` prefix over https. `max_age` of `Some(0)` deletes.
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            cookie_name(name, self.https)
        );
        if self.https {
            cookie.push_str("; Secure");
        }
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        cookie
    }

    /// A cookie deletion.
    pub fn clear(&self, name: &str) -> String {
        self.cookie(name, "", Some(0))
    }

    /// The value of one of our cookies.
    pub fn read(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        read_cookie(headers, &cookie_name(name, self.https))
    }

    /// Checks a form's (or header's) CSRF token against the cookie, in
    /// constant time, and that a cross-site browser did not send the request.
    pub fn check_csrf(&self, headers: &HeaderMap, presented: &str) -> bool {
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "cross-site");
        !self.new_csrf
            && !cross_site
            && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

fn is_https(state: &AppState) -> bool {
    state.app.settings().issuer.starts_with("https://")
}

fn cookie_name(name: &str, https: bool) -> String {
    if https {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[expect(
    clippy::expect_used,
    reason = "without the OS CSPRNG no nonce or CSRF token is safe; there is no fallback"
)]
fn random_token() -> String {
    B64.encode(random_bytes::<32>().expect("the OS CSPRNG is available"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_targets() {
        assert_eq!(local_path("/account"), Some("/account"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "account",
            "/a\nb",
        ] {
            assert_eq!(local_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; idplane_session=xyz; idplane_sessionx=no"),
        );
        assert_eq!(
            read_cookie(&headers, "idplane_session").as_deref(),
            Some("xyz")
        );
        assert_eq!(read_cookie(&headers, "b"), None);
    }
}
