//! The directory use cases: tenants, principals, group memberships, roles,
//! role assignments, and the effective access they add up to.
//!
//! The command types here are also the native admin API's request bodies:
//! they refuse unknown fields, so a typo is an error rather than a no-op.

pub mod access;
pub mod groups;
pub mod principals;
pub mod roles;
pub mod tenants;

use std::str::FromStr;

use idplane_core::directory::{PrincipalKind, name_key};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::{Conn, principals as store_principals};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{AppError, Result};

/// When something stops being in force: an instant, or a span from now.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Expiry {
    /// An RFC 3339 instant, e.g. `2026-12-31T17:00:00Z`.
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// A span from now, e.g. `4h`, `30m`, `7d`, `PT4H`.
    pub expires_in: Option<String>,
}

impl Expiry {
    /// The instant, resolved against `now`; must lie in the future.
    pub fn resolve(&self, now: Timestamp) -> Result<Option<Timestamp>, ValidationError> {
        let at = match (self.expires_at, self.expires_in.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "expires_in",
                    "give expires_at or expires_in, not both",
                ));
            }
            (Some(at), None) => at,
            (None, Some(span)) => now
                .checked_add(parse_span(span)?)
                .map_err(|_| ValidationError::new("expires_in", "too far in the future"))?,
            (None, None) => return Ok(None),
        };
        if at <= now {
            return Err(ValidationError::new("expires_at", "must be in the future"));
        }
        Ok(Some(at))
    }
}

/// Parses a positive span: `4h`, `90m`, `7d`, `1 day`, or ISO 8601 `PT4H`.
pub fn parse_span(text: &str) -> Result<jiff::SignedDuration, ValidationError> {
    let invalid = || {
        ValidationError::new(
            "expires_in",
            format!("`{text}` is not a duration such as 4h, 30m or 7d"),
        )
    };
    let text = text.trim();
    // Days are calendar-free here: a day is 24 hours.
    let span = match text.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        Some(days) => jiff::SignedDuration::from_hours(days.checked_mul(24).ok_or_else(invalid)?),
        None => jiff::SignedDuration::from_str(text).map_err(|_| invalid())?,
    };
    if span.is_positive() {
        Ok(span)
    } else {
        Err(invalid())
    }
}

/// Normalises optional free text (see [`normalize_text`]).
pub(crate) fn normalize_optional(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<String>, ValidationError> {
    idplane_core::directory::normalize_text(field, raw)
}

/// A reference to a principal: its id, `kind:name` (e.g. `group:eng`,
/// `service_account:ci`), or a bare name of the default kind.
pub(crate) async fn resolve_principal(
    conn: &mut impl Conn,
    ctx: &Ctx,
    reference: &str,
    default_kind: PrincipalKind,
) -> Result<idplane_core::directory::Principal> {
    let not_found = || AppError::NotFound(format!("principal `{reference}`"));
    let found = if let Ok(id) = PrincipalId::from_str(reference) {
        store_principals::by_id(conn, ctx.tenant, id).await?
    } else {
        let (kind, name) = match reference.split_once(':') {
            Some((kind, name)) => (PrincipalKind::parse(kind).ok_or_else(not_found)?, name),
            None => (default_kind, reference),
        };
        store_principals::by_name(conn, ctx.tenant, kind, &name_key(name.trim())).await?
    };
    found.ok_or_else(not_found)
}

/// Checks an `If-Match` version against the stored one.
pub(crate) fn check_version(if_match: Option<i64>, current: i64) -> Result<()> {
    match if_match {
        Some(expected) if expected != current => Err(AppError::VersionMismatch { current }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_in_common_forms() {
        assert_eq!(parse_span("4h").unwrap().as_secs(), 4 * 3600);
        assert_eq!(parse_span("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_span("7d").unwrap().as_secs(), 7 * 86400);
        assert_eq!(parse_span("PT4H").unwrap().as_secs(), 4 * 3600);
        for bad in ["", "-4h", "0s", "soon", "4x"] {
            assert!(parse_span(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let past = Expiry {
            expires_at: Some("2025-01-01T00:00:00Z".parse().unwrap()),
            expires_in: None,
        };
        assert!(past.resolve(now).is_err());
        let span = Expiry {
            expires_at: None,
            expires_in: Some("4h".into()),
        };
        assert_eq!(
            span.resolve(now).unwrap().unwrap().as_second() - now.as_second(),
            4 * 3600
        );
    }
}
