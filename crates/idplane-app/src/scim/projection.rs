//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which
//! attributes of a resource a response carries.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::ResourceType;

/// The attributes a caller asked for or excluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    attributes: Vec<Path>,
    excluded: Vec<Path>,
}

/// `[urn:]attr[.sub]`, case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Path {
    urn: Option<String>,
    attr: String,
    sub: Option<String>,
}

impl Projection {
    /// From the comma-separated query parameters.
    pub fn parse(
        rt: ResourceType,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Self, ScimError> {
        Ok(Self {
            attributes: parse_list(rt, attributes)?,
            excluded: parse_list(rt, excluded)?,
        })
    }

    /// Applies the projection to a full resource representation.
    pub fn apply(&self, rt: ResourceType, resource: Value) -> Value {
        let Value::Object(full) = resource else {
            return resource;
        };
        let mut out = Map::new();
        for (key, value) in full {
            if let Some(urn) = rt
                .extensions()
                .iter()
                .find(|urn| urn.eq_ignore_ascii_case(&key))
            {
                let Value::Object(attrs) = value else {
                    continue;
                };
                let kept = self.filter_attrs(Some(urn), attrs);
                if !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
                continue;
            }
            if matches!(key.as_str(), "id" | "schemas") {
                out.insert(key, value);
                continue;
            }
            if let Some(v) = self.filter_one(None, &key, value) {
                out.insert(key, v);
            }
        }
        Value::Object(out)
    }

    fn filter_attrs(&self, urn: Option<&str>, attrs: Map<String, Value>) -> Map<String, Value> {
        attrs
            .into_iter()
            .filter_map(|(k, v)| self.filter_one(urn, &k, v).map(|v| (k, v)))
            .collect()
    }

    /// `value` of attribute `attr` as projected, or `None` if dropped.
    fn filter_one(&self, urn: Option<&str>, attr: &str, value: Value) -> Option<Value> {
        let matches = |p: &Path| {
            p.attr.eq_ignore_ascii_case(attr)
                && match (&p.urn, urn) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        };
        if !self.attributes.is_empty() {
            let wanted: Vec<&Path> = self.attributes.iter().filter(|p| matches(p)).collect();
            if wanted.is_empty() {
                return None;
            }
            if wanted.iter().any(|p| p.sub.is_none()) {
                return Some(value);
            }
            let subs: Vec<&str> = wanted.iter().filter_map(|p| p.sub.as_deref()).collect();
            return Some(keep_subs(value, &subs));
        }
        let excluded: Vec<&Path> = self.excluded.iter().filter(|p| matches(p)).collect();
        if excluded.iter().any(|p| p.sub.is_none()) {
            return None;
        }
        let subs: Vec<&str> = excluded.iter().filter_map(|p| p.sub.as_deref()).collect();
        if subs.is_empty() {
            return Some(value);
        }
        Some(drop_subs(value, &subs))
    }
}

fn keep_subs(value: Value, subs: &[&str]) -> Value {
    map_objects(value, &|obj| {
        obj.into_iter()
            .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .collect()
    })
}

fn drop_subs(value: Value, subs: &[&str]) -> Value {
    map_objects(value, &|obj| {
        obj.into_iter()
            .filter(|(k, _)| !subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .collect()
    })
}

/// Applies `f` to a complex value, or to each element of a multi-valued one.
fn map_objects(value: Value, f: &dyn Fn(Map<String, Value>) -> Map<String, Value>) -> Value {
    match value {
        Value::Object(obj) => Value::Object(f(obj)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| map_objects(v, f)).collect()),
        other => other,
    }
}

fn parse_list(rt: ResourceType, list: Option<&str>) -> Result<Vec<Path>, ScimError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_path(rt, s))
        .collect()
}

fn parse_path(rt: ResourceType, text: &str) -> Result<Path, ScimError> {
    if text.len() > 256 {
        return Err(ScimError::invalid_value("attribute name too long"));
    }
    let schemas = std::iter::once(rt.core().id.as_str()).chain(rt.extensions().iter().copied());
    let (urn, rest) = match schemas
        .filter(|urn| text.len() > urn.len() + 1)
        .find(|urn| {
            text[..urn.len()].eq_ignore_ascii_case(urn) && text.as_bytes()[urn.len()] == b':'
        }) {
        Some(urn) => (Some(urn), &text[urn.len() + 1..]),
        None => (None, text),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s.to_owned())),
        None => (rest, None),
    };
    if attr.is_empty() || sub.as_deref().is_some_and(str::is_empty) {
        return Err(ScimError::invalid_value(format!(
            "bad attribute name `{text}`"
        )));
    }
    // The core URN prefix adds nothing to a core attribute's name.
    let urn = urn.filter(|u| !u.eq_ignore_ascii_case(&rt.core().id));
    Ok(Path {
        urn: urn.map(str::to_owned),
        attr: attr.to_owned(),
        sub,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1",
            "userName": "ada",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "costCenter": "7"},
            "meta": {"resourceType": "User"},
        })
    }

    #[test]
    fn attributes_keep_only_what_was_asked_and_id() {
        let p = Projection::parse(
            ResourceType::User,
            Some("userName,name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        )
        .unwrap();
        let out = p.apply(ResourceType::User, user());
        assert_eq!(
            out,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "1",
                "userName": "ada",
                "name": {"givenName": "Ada"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
            })
        );
    }

    #[test]
    fn excluded_attributes_drop_whole_and_sub_attributes() {
        let p = Projection::parse(
            ResourceType::User,
            None,
            Some("emails.type,meta,urn:ietf:params:scim:schemas:core:2.0:User:name"),
        )
        .unwrap();
        let out = p.apply(ResourceType::User, user());
        assert_eq!(
            out["emails"],
            json!([{"value": "ada@example.com", "primary": true}])
        );
        assert!(out.get("meta").is_none());
        assert!(out.get("name").is_none());
        assert_eq!(out["userName"], "ada");
    }

    #[test]
    fn id_cannot_be_excluded_and_bad_names_are_refused() {
        let p = Projection::parse(ResourceType::User, None, Some("id")).unwrap();
        assert_eq!(p.apply(ResourceType::User, user())["id"], "1");
        assert!(Projection::parse(ResourceType::User, Some("name."), None).is_err());
        assert!(Projection::parse(ResourceType::User, Some(&"a".repeat(300)), None).is_err());
    }
}
