//! Reading client credentials off a request (RFC 6749 §2.3.1: HTTP Basic
//! with form-encoded id and secret, or form fields; RFC 7523 assertions;
//! a bare `client_id` for public clients). More than one method is refused.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use idplane_app::oidc::OAuthError;
use idplane_app::oidc::authorize::Params;
use idplane_app::oidc::client_auth::ClientCredentials;

/// The credentials a request presents.
pub fn credentials(headers: &HeaderMap, form: &Params) -> Result<ClientCredentials, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let methods = [basic.is_some(), secret.is_some(), assertion.is_some()]
        .iter()
        .filter(|m| **m)
        .count();
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    let client_id = form.get("client_id").map(str::to_owned);
    if let Some(encoded) = basic {
        let (id, secret) = decode_basic(encoded)
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        if client_id.as_deref().is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        return Ok(ClientCredentials::Basic {
            client_id: id,
            secret,
        });
    }
    if let Some(assertion) = assertion {
        return Ok(ClientCredentials::Assertion {
            client_id,
            assertion_type: form
                .get("client_assertion_type")
                .unwrap_or_default()
                .to_owned(),
            assertion: assertion.to_owned(),
        });
    }
    let client_id =
        client_id.ok_or_else(|| OAuthError::invalid_client("no client authentication"))?;
    Ok(match secret {
        Some(secret) => ClientCredentials::Post {
            client_id,
            secret: secret.to_owned(),
        },
        None => ClientCredentials::None { client_id },
    })
}

/// `base64(urlencode(id) ":" urlencode(secret))`.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(value)).parse().unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let creds = credentials(&basic("my%20app:s%3Acret"), &form(&[])).unwrap();
        assert_eq!(
            creds,
            ClientCredentials::Basic {
                client_id: "my app".into(),
                secret: "s:cret".into()
            }
        );
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        assert!(credentials(&basic("a:b"), &form(&[("client_secret", "b")])).is_err());
        assert!(
            credentials(
                &HeaderMap::new(),
                &form(&[
                    ("client_id", "a"),
                    ("client_secret", "b"),
                    ("client_assertion", "x")
                ])
            )
            .is_err()
        );
    }

    #[test]
    fn a_bare_client_id_is_a_public_client() {
        assert_eq!(
            credentials(&HeaderMap::new(), &form(&[("client_id", "cli")])).unwrap(),
            ClientCredentials::None {
                client_id: "cli".into()
            }
        );
        assert!(credentials(&HeaderMap::new(), &form(&[])).is_err());
    }
}
