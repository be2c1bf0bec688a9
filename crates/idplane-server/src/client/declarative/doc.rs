//! The YAML document `idplane apply` reads and `idplane export` writes.
//!
//! ```yaml
//! version: 1
//! tenants:
//!   - name: default
//!     users:
//!       - username: alice
//!         email: alice@example.com
//!       - username: carol
//!         user_type: contractor
//!         end_date: 2027-06-30T00:00:00Z
//!         sponsor: alice
//!     groups:
//!       - name: eng
//!         members: [alice, "group:sre", {member: carol, expires_at: 2027-01-01T00:00:00Z}]
//!       - name: sre
//!     roles:
//!       - name: payroll-reader
//!         entitlements: [{resource: payroll, permission: read}]   # or "payroll:read"
//!     assignments:
//!       - {role: payroll-reader, principal: "group:eng"}
//!     service_accounts:
//!       - {name: ci, owner: alice, purpose: deploys}
//!     agents: []
//!     clients:
//!       - client_id: portal
//!         name: Employee portal
//!         type: confidential          # or public
//!         redirect_uris: [https://portal.example.com/callback]
//!         grant_types: [authorization_code, refresh_token]
//!         scopes: [openid, profile, email]
//!         first_party: true
//!     policy:
//!       directory: ./policy            # schemas/, policies/, tests/ (see `idplane policy`)
//! ```
//!
//! Clients are matched by `client_id`, which the document must give. Their
//! secrets are never exported: `apply` prints the secret it generates for a
//! new confidential client once, and `idplane client rotate-secret` makes a
//! new one.
//!
//! What the document does not mention is not managed: an absent optional
//! field keeps its live value (`null` clears it), an absent list (`users`,
//! `members`, `assignments`, ...) leaves those objects alone. Objects are
//! matched by name, case-insensitively; principals are referred to as a bare
//! username or `kind:name` (`group:eng`, `service_account:ci`, `agent:bot`).
//! Fields the server fills in (ids, versions, timestamps) are not part of it.

use idplane_core::Timestamp;
use idplane_core::directory::{Status, UserType};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The document's format version.
pub const VERSION: u32 = 1;

/// A description of tenants and their directories.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The format version: 1.
    #[serde(default = "version")]
    pub version: u32,
    #[serde(default)]
    pub tenants: Vec<Tenant>,
}

fn version() -> u32 {
    VERSION
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub display_name: Field<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<User>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<Assignment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<Vec<NonHuman>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<NonHuman>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<OAuthClient>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// The tenant's authorization policy: a policy directory (`schemas/`,
/// `policies/`, `tests/`) relative to the document, or the bundle inline
/// (as `export` writes it). A different bundle becomes the next version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<idplane_app::policy::bundle::PolicyBundle>,
}

/// An OAuth 2.0 / OpenID Connect client. Absent settings keep their live
/// value (or the server's default when created); lists replace.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// `confidential` (the default when created) or `public`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub client_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub jwks: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub jwks_uri: Field<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_party: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_pushed_authorization_requests: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime_secs: Option<i64>,
    /// Where logout tokens are sent (OpenID Connect Back-Channel Logout).
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub backchannel_logout_uri: Field<String>,
    /// Whether the client's access tokens must be DPoP-bound (RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens: Option<bool>,
    #[serde(skip)]
    pub meta: Meta,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub display_name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub email: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub external_id: Field<String>,
    /// `employee` (the default when created) or `contractor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserType>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub end_date: Field<Timestamp>,
    /// The accountable user (username).
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub sponsor: Field<String>,
    /// `active` (the default when created), `suspended` or `deprovisioned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Replaces all attributes when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(skip)]
    pub meta: Meta,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub display_name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub external_id: Field<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// Direct members: references, or `{member, expires_at}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    #[serde(skip)]
    pub meta: Meta,
}

/// A member of a group: `alice`, `group:sre`, or
/// `{member: alice, expires_at: 2027-01-01T00:00:00Z}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "MemberRepr", into = "MemberRepr")]
pub struct Member {
    pub member: String,
    pub expires_at: Option<Timestamp>,
    pub meta: Meta,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum MemberRepr {
    Short(String),
    Full(MemberFull),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFull {
    member: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
}

impl From<MemberRepr> for Member {
    fn from(repr: MemberRepr) -> Self {
        match repr {
            MemberRepr::Short(member) => Member {
                member,
                ..Member::default()
            },
            MemberRepr::Full(MemberFull { member, expires_at }) => Member {
                member,
                expires_at,
                meta: Meta::default(),
            },
        }
    }
}

impl From<Member> for MemberRepr {
    fn from(m: Member) -> Self {
        match m.expires_at {
            None => MemberRepr::Short(m.member),
            Some(at) => MemberRepr::Full(MemberFull {
                member: m.member,
                expires_at: Some(at),
            }),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub description: Field<String>,
    /// Replaces all entitlements when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Vec<Entitlement>>,
    #[serde(skip)]
    pub meta: Meta,
}

/// `{resource: payroll, permission: read}`, or `payroll:read`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "EntitlementRepr")]
pub struct Entitlement {
    pub resource: String,
    pub permission: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EntitlementRepr {
    Short(String),
    Full(EntitlementFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitlementFull {
    resource: String,
    permission: String,
}

impl TryFrom<EntitlementRepr> for Entitlement {
    type Error = String;

    fn try_from(repr: EntitlementRepr) -> Result<Self, String> {
        match repr {
            EntitlementRepr::Full(EntitlementFull {
                resource,
                permission,
            }) => Ok(Entitlement {
                resource,
                permission,
            }),
            EntitlementRepr::Short(text) => text
                .rsplit_once(':')
                .map(|(r, p)| Entitlement {
                    resource: r.to_owned(),
                    permission: p.to_owned(),
                })
                .ok_or_else(|| format!("entitlement `{text}` is not resource:permission")),
        }
    }
}

/// A role granted to a principal, optionally until `expires_at`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub role: String,
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(skip)]
    pub meta: Meta,
}

/// A service account or an agent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonHuman {
    pub name: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub display_name: Field<String>,
    /// The accountable user (username).
    pub owner: String,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub expires_at: Field<Timestamp>,
    #[serde(default, skip_serializing_if = "Field::is_unset")]
    pub external_id: Field<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(skip)]
    pub meta: Meta,
}

/// What the server says about a live object; never in the YAML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// The object's id (for members: the member's id).
    pub id: Option<String>,
    /// For `If-Match`.
    pub version: Option<i64>,
    /// A membership or assignment whose expiry has passed.
    pub expired: bool,
}

/// An optional field: absent (not managed), `null` (none), or a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    #[default]
    Unset,
    Null,
    Set(T),
}

impl<T> Field<T> {
    pub fn is_unset(&self) -> bool {
        matches!(self, Field::Unset)
    }

    /// A live value: `Set` if there is one, else `Unset`.
    pub fn live(value: Option<T>) -> Self {
        value.map_or(Field::Unset, Field::Set)
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            Field::Unset | Field::Null => None,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            Field::Unset | Field::Null => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Field::Null, Field::Set))
    }
}

/// Parses a document.
pub fn parse(text: &str) -> anyhow::Result<Document> {
    let doc: Document = serde_yaml_ng::from_str(text)?;
    anyhow::ensure!(
        doc.version == VERSION,
        "this document is version {}; this idplane reads version {VERSION}",
        doc.version
    );
    Ok(doc)
}

/// Writes a document.
pub fn to_yaml(doc: &Document) -> anyhow::Result<String> {
    Ok(serde_yaml_ng::to_string(doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms_read_alike() {
        let doc = parse(
            r#"
tenants:
  - name: default
    display_name: null
    users: [{username: alice, email: alice@example.com}]
    groups:
      - name: eng
        members: [alice, {member: "group:sre", expires_at: "2030-01-01T00:00:00Z"}]
    roles:
      - name: r
        entitlements: ["payroll:read", {resource: hr, permission: write}]
"#,
        )
        .unwrap();
        let t = &doc.tenants[0];
        assert_eq!(t.display_name, Field::Null);
        let members = t.groups.as_ref().unwrap()[0].members.as_ref().unwrap();
        assert_eq!(members[0].member, "alice");
        assert!(members[0].expires_at.is_none());
        assert_eq!(members[1].member, "group:sre");
        assert!(members[1].expires_at.is_some());
        let e = t.roles.as_ref().unwrap()[0].entitlements.as_ref().unwrap();
        assert_eq!(e[0].resource, "payroll");
        assert_eq!(e[1].permission, "write");
        assert!(t.users.as_ref().unwrap()[0].display_name.is_unset());
        assert!(t.assignments.is_none());
    }

    #[test]
    fn typos_and_unknown_versions_are_errors() {
        assert!(parse("tenants: [{name: x, user: []}]").is_err());
        assert!(parse("version: 2\ntenants: []").is_err());
        assert!(parse("tenants: [{name: x, users: [{username: a, emial: b}]}]").is_err());
    }

    #[test]
    fn clients_read_and_refuse_typos() {
        let doc = parse(
            r#"
tenants:
  - name: default
    clients:
      - {client_id: cli, name: CLI, type: public, redirect_uris: ["http://127.0.0.1/cb"], jwks_uri: null,
         backchannel_logout_uri: "http://127.0.0.1:9000/logout", dpop_bound_access_tokens: true}
"#,
        )
        .unwrap();
        let c = &doc.tenants[0].clients.as_ref().unwrap()[0];
        assert_eq!(c.client_type.as_deref(), Some("public"));
        assert_eq!(c.jwks_uri, Field::Null);
        assert_eq!(
            c.backchannel_logout_uri,
            Field::Set("http://127.0.0.1:9000/logout".into())
        );
        assert_eq!(c.dpop_bound_access_tokens, Some(true));
        assert!(c.jwks.is_unset());
        assert!(
            parse("tenants: [{name: x, clients: [{client_id: a, name: b, secret: c}]}]").is_err()
        );
        assert!(!to_yaml(&doc).unwrap().contains("jwks:"));
    }

    #[test]
    fn round_trips() {
        let text = r#"
version: 1
tenants:
  - name: default
    groups:
      - name: eng
        members: [alice, {member: bob, expires_at: "2030-01-01T00:00:00Z"}]
"#;
        let doc = parse(text).unwrap();
        let again = parse(&to_yaml(&doc).unwrap()).unwrap();
        let members = again.tenants[0].groups.as_ref().unwrap()[0]
            .members
            .as_ref()
            .unwrap();
        assert_eq!(members[1].member, "bob");
        assert_eq!(
            members[1].expires_at,
            Some("2030-01-01T00:00:00Z".parse().unwrap())
        );
        assert!(to_yaml(&doc).unwrap().contains("- alice\n"));
    }
}
