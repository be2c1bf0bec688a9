//! The directory: tenants, principals (users, groups, service accounts,
//! agents), roles and their entitlements, and the rules each must satisfy.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

use crate::time::in_force;
use crate::{PrincipalId, RoleId, TenantId, Timestamp, ValidationError};

/// Longest accepted name (username, group, role, tenant).
pub const MAX_NAME_LEN: usize = 128;
/// Longest accepted free text (display names, purposes, descriptions).
pub const MAX_TEXT_LEN: usize = 1024;
/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A tenant: an isolated directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// URL-safe, unique, lowercase.
    pub name: String,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// The four kinds of principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Group,
    ServiceAccount,
    Agent,
}

impl PrincipalKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::ServiceAccount => "service_account",
            Self::Agent => "agent",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Self::User,
            "group" => Self::Group,
            "service_account" => Self::ServiceAccount,
            "agent" => Self::Agent,
            _ => return None,
        })
    }

    /// Non-human principals need an accountable human owner.
    pub fn needs_owner(self) -> bool {
        matches!(self, Self::ServiceAccount | Self::Agent)
    }
}

/// Employment relationship of a workforce user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    Employee,
    Contractor,
}

impl UserType {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Employee => "employee",
            Self::Contractor => "contractor",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "employee" => Some(Self::Employee),
            "contractor" => Some(Self::Contractor),
            _ => None,
        }
    }
}

/// Lifecycle status of a principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Deprovisioned,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deprovisioned => "deprovisioned",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "deprovisioned" => Some(Self::Deprovisioned),
            _ => None,
        }
    }
}

/// A user, group, service account or agent. Fields that do not apply to a
/// kind are `None`; [`Principal::check`] enforces which apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub id: PrincipalId,
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
    /// Username, group name, or account name; unique per tenant and kind,
    /// case-insensitively.
    pub name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// Correlation id from the HR system or a SCIM client.
    pub external_id: Option<String>,
    pub status: Status,
    pub user_type: Option<UserType>,
    /// Users: the first instant of employment or engagement. The account
    /// exists before it (joiners are prepared ahead) but grants nothing.
    pub start_date: Option<Timestamp>,
    /// Users: the end of employment or engagement (contractors always have
    /// one; employees get one from an HR termination date). Exclusive.
    pub end_date: Option<Timestamp>,
    /// Contractors: the employee accountable for them.
    pub sponsor_id: Option<PrincipalId>,
    /// Service accounts and agents: the accountable human.
    pub owner_id: Option<PrincipalId>,
    /// Service accounts and agents: what they are for.
    pub purpose: Option<String>,
    /// Service accounts and agents: when they stop existing.
    pub expires_at: Option<Timestamp>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

impl Principal {
    /// Checks the rules that hold for every principal of its kind, apart from
    /// those that need other rows (sponsor and owner existence).
    pub fn check(&self) -> Result<(), ValidationError> {
        let user = self.kind == PrincipalKind::User;
        if !user
            && (self.user_type.is_some() || self.end_date.is_some() || self.start_date.is_some())
        {
            return Err(ValidationError::new(
                "user_type",
                "only users have a user type, start date or end date",
            ));
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date)
            && start >= end
        {
            return Err(ValidationError::new(
                "start_date",
                "the start date must be before the end date",
            ));
        }
        if user && self.user_type == Some(UserType::Contractor) {
            if self.end_date.is_none() {
                return Err(ValidationError::new(
                    "end_date",
                    "a contractor always has an end date",
                ));
            }
            if self.sponsor_id.is_none() {
                return Err(ValidationError::new(
                    "sponsor_id",
                    "a contractor always has a sponsor",
                ));
            }
        }
        if self.sponsor_id == Some(self.id) {
            return Err(ValidationError::new(
                "sponsor_id",
                "a user cannot sponsor themselves",
            ));
        }
        if self.kind.needs_owner() {
            if self.owner_id.is_none() {
                return Err(ValidationError::new(
                    "owner_id",
                    "a non-human principal always has an accountable owner",
                ));
            }
            if self.purpose.as_deref().is_none_or(|p| p.trim().is_empty()) {
                return Err(ValidationError::new(
                    "purpose",
                    "a non-human principal always has a purpose",
                ));
            }
        } else if self.owner_id.is_some() || self.purpose.is_some() || self.expires_at.is_some() {
            return Err(ValidationError::new(
                "owner_id",
                "only service accounts and agents have an owner, purpose or expiry",
            ));
        }
        Ok(())
    }

    /// Whether the principal may act at `now`: active, on or after its
    /// start date, before its end date and its expiry. Evaluated on read,
    /// so no job needs to run.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.status == Status::Active
            && self.start_date.is_none_or(|start| start <= now)
            && in_force(self.end_date, now)
            && in_force(self.expires_at, now)
    }
}

/// A permission on a resource, e.g. `{"resource": "payroll", "permission": "read"}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    pub resource: String,
    pub permission: String,
}

/// A named bundle of entitlements.
#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    pub id: RoleId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub entitlements: Vec<Entitlement>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// A principal's membership in a group, possibly temporary.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    pub group_id: PrincipalId,
    pub member_id: PrincipalId,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A role granted to a principal or group, possibly temporary.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleAssignment {
    pub id: crate::AssignmentId,
    pub tenant_id: TenantId,
    pub role_id: RoleId,
    pub principal_id: PrincipalId,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Normalises a name (username, group, role, account): trimmed, Unicode NFC,
/// no control characters or white space inside, at most [`MAX_NAME_LEN`].
/// Returns the display form; compare with [`name_key`].
pub fn normalize_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    check_name(field, raw.trim().nfc().collect(), false)
}

fn check_name(field: &'static str, name: String, spaces: bool) -> Result<String, ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    let bad = |c: char| c.is_control() || (c.is_whitespace() && !(spaces && c == ' '));
    if name.chars().any(bad) {
        return Err(ValidationError::new(
            field,
            if spaces {
                "must not contain control characters or white space other than single spaces"
            } else {
                "must not contain white space or control characters"
            },
        ));
    }
    Ok(name)
}

/// Normalises a group name: like [`normalize_name`], but words may be
/// separated by single spaces ("Sales Team"), as every directory that
/// pushes groups names them so.
pub fn normalize_group_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    let words: Vec<&str> = raw.split_whitespace().collect();
    check_name(field, words.join(" ").nfc().collect(), true)
}

/// The case-insensitive key under which names are unique.
pub fn name_key(name: &str) -> String {
    name.nfkc().flat_map(char::to_lowercase).collect()
}

/// Normalises a tenant name: lowercase ASCII letters, digits and `-`,
/// starting with a letter, so it is safe in URLs and issuers.
pub fn normalize_tenant_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim().to_ascii_lowercase();
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ValidationError::new(
            "name",
            "a tenant name is 1 to 63 lowercase letters, digits or `-`, starting with a letter",
        ));
    }
    Ok(name)
}

/// Normalises free text: trimmed, NFC, no control characters except none,
/// at most [`MAX_TEXT_LEN`]. Empty text becomes `None`.
pub fn normalize_text(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<String>, ValidationError> {
    let Some(raw) = raw else { return Ok(None) };
    let text: String = raw.trim().nfc().collect();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_TEXT_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(text))
}

/// Normalises an email address: trimmed, NFC, lowercase, exactly one `@`
/// with a non-empty local part and a dotted domain, no white space.
pub fn normalize_email(raw: &str) -> Result<String, ValidationError> {
    let email: String = raw.trim().nfc().flat_map(char::to_lowercase).collect();
    let invalid =
        || ValidationError::new("email", format!("`{}` is not an email address", raw.trim()));
    if email.len() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// Normalises an external id: trimmed, non-empty, no control characters.
pub fn normalize_external_id(raw: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(raw) = raw else { return Ok(None) };
    let id = raw.trim();
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_NAME_LEN * 2 || id.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "external_id",
            "must be at most 256 bytes without control characters",
        ));
    }
    Ok(Some(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(start: Option<&str>, end: Option<&str>) -> Principal {
        Principal {
            id: PrincipalId::generate(),
            tenant_id: TenantId::generate(),
            kind: PrincipalKind::User,
            name: "joiner".into(),
            display_name: None,
            email: None,
            external_id: None,
            status: Status::Active,
            user_type: Some(UserType::Employee),
            start_date: start.map(|s| s.parse().unwrap()),
            end_date: end.map(|s| s.parse().unwrap()),
            sponsor_id: None,
            owner_id: None,
            purpose: None,
            expires_at: None,
            attributes: serde_json::Map::new(),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            version: 1,
        }
    }

    #[test]
    fn a_joiner_grants_nothing_before_the_start_date() {
        let u = user(Some("2026-03-01T00:00:00Z"), None);
        u.check().unwrap();
        let before: Timestamp = "2026-02-28T23:59:59.999Z".parse().unwrap();
        let start: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        assert!(!u.is_active_at(before));
        // The start is inclusive, the end exclusive.
        assert!(u.is_active_at(start));
    }

    #[test]
    fn the_start_date_is_before_the_end_date_and_only_for_users() {
        let same = user(Some("2026-03-01T00:00:00Z"), Some("2026-03-01T00:00:00Z"));
        assert_eq!(same.check().unwrap_err().field, "start_date");
        user(Some("2026-03-01T00:00:00Z"), Some("2026-03-02T00:00:00Z"))
            .check()
            .unwrap();
        let mut group = user(Some("2026-03-01T00:00:00Z"), None);
        group.kind = PrincipalKind::Group;
        group.user_type = None;
        assert!(group.check().is_err());
    }

    #[test]
    fn names_are_unique_case_insensitively() {
        assert_eq!(name_key("Alice"), name_key("aLICE"));
        assert_eq!(normalize_name("username", "  bob ").unwrap(), "bob");
        assert!(normalize_name("username", "a b").is_err());
        assert!(normalize_name("username", "").is_err());
        assert!(normalize_name("username", "x\u{0}y").is_err());
        assert!(normalize_name("username", &"a".repeat(129)).is_err());
    }

    #[test]
    fn composed_and_decomposed_names_collide() {
        // "é" precomposed and as e + combining acute accent.
        let composed = normalize_name("username", "jos\u{e9}").unwrap();
        let decomposed = normalize_name("username", "jose\u{301}").unwrap();
        assert_eq!(name_key(&composed), name_key(&decomposed));
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalize_email(" Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "alice",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@c..com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tenant_names_are_url_safe() {
        assert_eq!(normalize_tenant_name("Acme-1").unwrap(), "acme-1");
        for bad in ["", "1acme", "ac me", "acme/../x", "a;drop"] {
            assert!(normalize_tenant_name(bad).is_err(), "{bad} accepted");
        }
    }
}
