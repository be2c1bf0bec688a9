//! Per-application attribute mapping: which idplane value each SCIM
//! attribute of a pushed user carries. A mapping is a JSON object from a
//! target attribute path (`title`, `name.givenName`, or an extension's
//! `urn:...:User:department`) to a source (`userName`, `displayName`,
//! `email`, `externalId`, `active`, or `attributes.<key>[.<key>...]`).
//!
//! The pushed user's `externalId` is always the idplane id: it is how the
//! target's copy is found again, so no mapping may claim it.

use std::collections::BTreeMap;
use std::fmt;

use idplane_core::directory::Principal;
use idplane_core::{Timestamp, ValidationError};
use serde_json::{Map, Value, json};

use crate::scim::{ENTERPRISE_USER, USER};

/// Most entries a mapping may have.
const MAX_ENTRIES: usize = 64;
/// Longest accepted path or source.
const MAX_PATH_LEN: usize = 256;
/// Attributes idplane controls or the target assigns.
const RESERVED: &[&str] = &["id", "externalId", "meta", "schemas", "groups"];
/// Multi-valued core attributes: a mapped string becomes the primary work value.
const MULTI_VALUED: &[&str] = &["emails", "phoneNumbers", "ims", "photos"];

/// Where a pushed attribute's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    UserName,
    DisplayName,
    Email,
    /// The HR or upstream correlation id (not the idplane id).
    ExternalId,
    /// Whether the user is active at the time of the push (status, start
    /// and end dates).
    Active,
    /// A value under the principal's attributes, by key path.
    Attribute(Vec<String>),
}

impl Source {
    /// Parses a source such as `email` or `attributes.department`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "userName" => Self::UserName,
            "displayName" => Self::DisplayName,
            "email" => Self::Email,
            "externalId" => Self::ExternalId,
            "active" => Self::Active,
            other => {
                let keys = other
                    .strip_prefix("attributes.")
                    .ok_or_else(|| {
                        format!(
                            "unknown source `{other}`: use userName, displayName, email, \
                             externalId, active or attributes.<key>"
                        )
                    })?
                    .split('.')
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                if keys.iter().any(String::is_empty) {
                    return Err(format!("`{other}` has an empty attribute key"));
                }
                Self::Attribute(keys)
            }
        })
    }

    /// The value for `p` at `now`, if it has one.
    pub fn value(&self, p: &Principal, now: Timestamp) -> Option<Value> {
        match self {
            Self::UserName => Some(json!(p.name)),
            Self::DisplayName => p.display_name.as_ref().map(|v| json!(v)),
            Self::Email => p.email.as_ref().map(|v| json!(v)),
            Self::ExternalId => p.external_id.as_ref().map(|v| json!(v)),
            Self::Active => Some(json!(p.is_active_at(now))),
            Self::Attribute(keys) => {
                let (first, rest) = keys.split_first()?;
                let mut at = p.attributes.get(first)?;
                for key in rest {
                    at = at.get(key)?;
                }
                (!at.is_null()).then(|| at.clone())
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserName => f.write_str("userName"),
            Self::DisplayName => f.write_str("displayName"),
            Self::Email => f.write_str("email"),
            Self::ExternalId => f.write_str("externalId"),
            Self::Active => f.write_str("active"),
            Self::Attribute(keys) => write!(f, "attributes.{}", keys.join(".")),
        }
    }
}

/// A target attribute: an optional extension schema URN, an attribute
/// name and an optional sub-attribute (RFC 7644 §3.10 `attrPath`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetPath {
    /// An extension's URN; `None` for the core User schema.
    pub schema: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl TargetPath {
    /// Parses `attr`, `attr.sub` or `URN:attr[.sub]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (schema, rest) = match text.rfind(':') {
            Some(i) if text.starts_with("urn:") => {
                let (urn, rest) = text.split_at(i);
                let urn_ok = urn
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c));
                if !urn_ok {
                    return Err(format!("`{urn}` is not a schema URN"));
                }
                // The core schema's attributes are written without a prefix.
                let schema = (!urn.eq_ignore_ascii_case(USER)).then(|| urn.to_owned());
                (schema, &rest[1..])
            }
            Some(_) => return Err(format!("`{text}`: a schema prefix must be a `urn:` URN")),
            None => (None, text),
        };
        let mut parts = rest.split('.');
        let attr = parts.next().unwrap_or_default();
        let sub = parts.next();
        if parts.next().is_some() {
            return Err(format!("`{text}` nests deeper than attribute.subAttribute"));
        }
        for name in std::iter::once(attr).chain(sub) {
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(format!(
                    "`{name}` in `{text}` is not a SCIM attribute name (RFC 7643 §2.1)"
                ));
            }
        }
        if schema.is_none() && RESERVED.iter().any(|r| r.eq_ignore_ascii_case(attr)) {
            return Err(format!(
                "`{attr}` is set by idplane or the target, not mapped"
            ));
        }
        Ok(Self {
            schema,
            attr: attr.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// Where this attribute lives in `resource`, created on the way.
    fn container<'a>(&self, resource: &'a mut Map<String, Value>) -> &'a mut Map<String, Value> {
        let mut at = resource;
        if let Some(schema) = &self.schema {
            at = object_at(at, schema);
        }
        if self.sub.is_some() {
            at = object_at(at, &self.attr);
        }
        at
    }

    /// The value at this path in a resource read from a target (names are
    /// case-insensitive, RFC 7643 §2.1); a multi-valued attribute read as
    /// its primary (or first) value when `as_string`.
    fn read<'a>(&self, resource: &'a Value, as_string: bool) -> Option<&'a Value> {
        let mut at = resource;
        if let Some(schema) = &self.schema {
            at = get_ci(at, schema)?;
        }
        at = get_ci(at, &self.attr)?;
        if let Some(sub) = &self.sub {
            at = get_ci(at, sub)?;
        }
        match at {
            Value::Array(items) if as_string && self.is_multi_valued() => {
                let primary = items
                    .iter()
                    .find(|i| i.get("primary") == Some(&Value::Bool(true)))
                    .or_else(|| items.first())?;
                primary.get("value")
            }
            Value::Null => None,
            other => Some(other),
        }
    }

    fn is_multi_valued(&self) -> bool {
        self.schema.is_none() && self.sub.is_none() && MULTI_VALUED.contains(&self.attr.as_str())
    }
}

impl fmt::Display for TargetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A checked mapping, ordered by target path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    entries: BTreeMap<TargetPath, Source>,
}

impl Mapping {
    /// What a target gets when none is given: the core attributes idplane
    /// keeps, and the enterprise extension's department and employee number.
    pub fn default_json() -> Value {
        json!({
            "userName": "userName",
            "displayName": "displayName",
            "emails": "email",
            "active": "active",
            "name": "attributes.name",
            "title": "attributes.title",
            format!("{ENTERPRISE_USER}:department"): "attributes.department",
            format!("{ENTERPRISE_USER}:employeeNumber"): "attributes.employeeNumber",
        })
    }

    /// Parses and checks a mapping (the stored and the API form).
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let invalid = |m: String| ValidationError::new("mapping", m);
        let map = value
            .as_object()
            .ok_or_else(|| invalid("must be an object: target attribute -> source".into()))?;
        if map.len() > MAX_ENTRIES {
            return Err(invalid(format!("has more than {MAX_ENTRIES} entries")));
        }
        let mut entries = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (path, source) in map {
            let source = source
                .as_str()
                .ok_or_else(|| invalid(format!("the source of `{path}` must be a string")))?;
            if path.len() > MAX_PATH_LEN || source.len() > MAX_PATH_LEN {
                return Err(invalid(format!(
                    "`{path}` is longer than {MAX_PATH_LEN} bytes"
                )));
            }
            let target = TargetPath::parse(path).map_err(invalid)?;
            let source = Source::parse(source).map_err(invalid)?;
            if !seen.insert(target.to_string().to_ascii_lowercase()) {
                return Err(invalid(format!("`{path}` is mapped twice")));
            }
            entries.insert(target, source);
        }
        if !seen.contains("username") {
            return Err(invalid("must map `userName` (SCIM requires it)".into()));
        }
        Ok(Self { entries })
    }

    /// The stored form (paths normalised).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.entries
                .iter()
                .map(|(path, source)| (path.to_string(), json!(source.to_string())))
                .collect(),
        )
    }

    /// The SCIM User that `user` is at a target with this mapping, at `now`.
    pub fn render_user(&self, user: &Principal, now: Timestamp) -> Value {
        let mut out = Map::new();
        out.insert("externalId".into(), json!(user.id.to_string()));
        let mut schemas = vec![USER.to_owned()];
        for (path, source) in &self.entries {
            let Some(value) = source.value(user, now) else {
                continue;
            };
            let value = match value {
                Value::String(s) if path.is_multi_valued() => {
                    json!([{"value": s, "type": "work", "primary": true}])
                }
                other => other,
            };
            if let Some(schema) = &path.schema
                && !schemas.contains(schema)
            {
                schemas.push(schema.clone());
            }
            path.container(&mut out).insert(path.attr_or_sub(), value);
        }
        out.insert("schemas".into(), json!(schemas));
        Value::Object(out)
    }

    /// The mapped attributes where `remote` differs from what `user` would
    /// be pushed as (an absent value equals `null`).
    pub fn differences(&self, user: &Principal, remote: &Value, now: Timestamp) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(path, source)| {
                let want = source.value(user, now);
                let as_string = want.as_ref().is_some_and(Value::is_string);
                path.read(remote, as_string) != want.as_ref()
            })
            .map(|(path, _)| path.to_string())
            .collect()
    }
}

impl TargetPath {
    /// The key written in this path's container.
    fn attr_or_sub(&self) -> String {
        self.sub.clone().unwrap_or_else(|| self.attr.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idplane_core::directory::{PrincipalKind, Status};
    use idplane_core::{PrincipalId, TenantId};

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn user() -> Principal {
        let at = "2026-01-01T00:00:00Z".parse().unwrap();
        Principal {
            id: PrincipalId::generate(),
            tenant_id: TenantId::generate(),
            kind: PrincipalKind::User,
            name: "ada".into(),
            display_name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            external_id: Some("HR-7".into()),
            status: Status::Active,
            user_type: None,
            start_date: None,
            end_date: None,
            sponsor_id: None,
            owner_id: None,
            purpose: None,
            expires_at: None,
            attributes: json!({"department": "R&D", "name": {"givenName": "Ada"}})
                .as_object()
                .cloned()
                .unwrap(),
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn the_default_mapping_renders_core_and_enterprise_attributes() {
        let m = Mapping::from_json(&Mapping::default_json()).unwrap();
        let u = user();
        let r = m.render_user(&u, now());
        assert_eq!(r["externalId"], json!(u.id.to_string()));
        assert_eq!(r["userName"], "ada");
        assert_eq!(r["displayName"], "Ada Lovelace");
        assert_eq!(
            r["emails"],
            json!([{"value": "ada@example.com", "type": "work", "primary": true}])
        );
        assert_eq!(r["active"], true);
        assert_eq!(r["name"], json!({"givenName": "Ada"}));
        assert_eq!(r[ENTERPRISE_USER], json!({"department": "R&D"}));
        assert_eq!(r["schemas"], json!([USER, ENTERPRISE_USER]));
        // Absent values are left out rather than sent as null.
        assert!(r.get("title").is_none());
        assert!(m.differences(&u, &r, now()).is_empty());
    }

    #[test]
    fn active_follows_status_and_dates() {
        let m = Mapping::from_json(&json!({"userName": "userName", "active": "active"})).unwrap();
        let mut u = user();
        assert_eq!(m.render_user(&u, now())["active"], true);
        u.start_date = Some("2026-07-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            m.render_user(&u, now())["active"],
            false,
            "a joiner before the start date"
        );
        u.start_date = None;
        u.status = Status::Suspended;
        assert_eq!(m.render_user(&u, now())["active"], false);
    }

    #[test]
    fn custom_paths_and_sources() {
        let m = Mapping::from_json(&json!({
            "userName": "email",
            "name.givenName": "attributes.name.givenName",
            "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "externalId",
            "urn:example:ext:1.0:User:dept": "attributes.department",
        }))
        .unwrap();
        let r = m.render_user(&user(), now());
        assert_eq!(r["userName"], "ada@example.com");
        assert_eq!(r["name"]["givenName"], "Ada");
        assert_eq!(r["nickName"], "HR-7", "the core URN prefix is dropped");
        assert_eq!(r["urn:example:ext:1.0:User"]["dept"], "R&D");
        assert_eq!(m.to_json()["nickName"], "externalId", "stored normalised");
    }

    #[test]
    fn differences_name_the_drifted_attributes() {
        let m = Mapping::from_json(&Mapping::default_json()).unwrap();
        let u = user();
        let mut remote = m.render_user(&u, now());
        remote["DISPLAYNAME"] = json!("Ada L.");
        remote.as_object_mut().unwrap().remove("displayName");
        remote["emails"] = json!([
            {"value": "other@example.com", "type": "home"},
            {"value": "ada@example.com", "primary": true},
        ]);
        remote[ENTERPRISE_USER]["department"] = json!("Sales");
        remote["title"] = json!(null);
        remote["active"] = json!(false);
        let diff = m.differences(&u, &remote, now());
        assert_eq!(
            diff,
            vec![
                "active".to_owned(),
                "displayName".to_owned(),
                format!("{ENTERPRISE_USER}:department"),
            ]
        );
    }

    #[test]
    fn hostile_mappings_are_refused() {
        for (bad, needle) in [
            (json!([]), "must be an object"),
            (json!({"displayName": "displayName"}), "must map `userName`"),
            (json!({"userName": "password"}), "unknown source"),
            (
                json!({"userName": "userName", "externalId": "email"}),
                "set by idplane",
            ),
            (
                json!({"userName": "userName", "id": "email"}),
                "set by idplane",
            ),
            (json!({"userName": "userName", "a.b.c": "email"}), "deeper"),
            (
                json!({"userName": "userName", "1x": "email"}),
                "not a SCIM attribute",
            ),
            (
                json!({"userName": "userName", "x": "attributes."}),
                "empty attribute key",
            ),
            (json!({"userName": "userName", "x": 3}), "must be a string"),
            (
                json!({"userName": "userName", "bad urn:x": "email"}),
                "must be a `urn:`",
            ),
            (
                json!({"userName": "userName", "urn:a b:x": "email"}),
                "not a schema URN",
            ),
            // Attribute names are case-insensitive (RFC 7643 §2.1).
            (
                json!({"userName": "userName", "title": "email", "Title": "email"}),
                "mapped twice",
            ),
        ] {
            let err = Mapping::from_json(&bad).expect_err(&bad.to_string());
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
        let huge: Map<String, Value> = (0..65)
            .map(|i| (format!("a{i}"), json!("email")))
            .chain([("userName".to_owned(), json!("userName"))])
            .collect();
        assert!(Mapping::from_json(&Value::Object(huge)).is_err());
    }
}
