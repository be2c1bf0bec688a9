//! What the SCIM service supports, as data: the schemas (RFC 7643 §7), the
//! resource types (§6) and the service provider configuration (§5). The
//! same definitions drive request validation, `attributes` projection and
//! the discovery endpoints, so what is advertised is what is enforced.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::{ENTERPRISE_USER, GROUP, LIFECYCLE_USER, USER};

/// The most operations one `/Bulk` request may carry.
pub const BULK_MAX_OPERATIONS: usize = 1000;
/// The largest `/Bulk` body.
pub const BULK_MAX_PAYLOAD: usize = 1024 * 1024;
/// The most resources one list response returns.
pub const MAX_RESULTS: u64 = 1000;

/// One attribute's definition (RFC 7643 §7).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttrDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrType,
    pub multi_valued: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    #[serde(default)]
    pub sub_attributes: Vec<AttrDef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// A schema: its URN and attributes.
#[derive(Clone, Debug, Deserialize)]
pub struct SchemaDef {
    pub id: String,
    pub attributes: Vec<AttrDef>,
}

impl SchemaDef {
    /// The attribute called `name` (case-insensitively, RFC 7643 §2.1).
    pub fn attribute(&self, name: &str) -> Option<&AttrDef> {
        find(&self.attributes, name)
    }
}

impl AttrDef {
    /// The sub-attribute called `name`.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttrDef> {
        find(&self.sub_attributes, name)
    }
}

fn find<'a>(attrs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

const SCHEMAS_JSON: &str = include_str!("schemas.json");

static SCHEMAS: LazyLock<Vec<SchemaDef>> = LazyLock::new(|| compiled_in(SCHEMAS_JSON));
static SCHEMA_DOCS: LazyLock<Vec<Value>> = LazyLock::new(|| compiled_in(SCHEMAS_JSON));

#[expect(
    clippy::expect_used,
    reason = "compiled-in data, parsed by a unit test: it cannot fail at run time"
)]
fn compiled_in<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("schemas.json is valid")
}

/// The schema with URN `id`.
pub fn schema(id: &str) -> Option<&'static SchemaDef> {
    SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

/// A schema this module names by its URN constant.
#[expect(
    clippy::expect_used,
    reason = "every URN constant has its schema in schemas.json, as a unit test checks"
)]
fn known(id: &str) -> &'static SchemaDef {
    schema(id).expect("a compiled-in schema")
}

/// A SCIM resource type and the schemas its resources carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    /// The endpoint under the SCIM base.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "/Users",
            Self::Group => "/Groups",
        }
    }

    pub fn core(self) -> &'static SchemaDef {
        known(match self {
            Self::User => USER,
            Self::Group => GROUP,
        })
    }

    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::User => &[ENTERPRISE_USER, LIFECYCLE_USER],
            Self::Group => &[],
        }
    }

    /// The resource type of a `$ref`-style path segment (`Users`, `Groups`).
    pub fn from_endpoint(segment: &str) -> Option<Self> {
        match segment {
            "Users" => Some(Self::User),
            "Groups" => Some(Self::Group),
            _ => None,
        }
    }
}

/// A resource body checked against its schemas: attribute names in their
/// canonical case, values of the declared types, read-only attributes
/// dropped (RFC 7643 §7: "SHALL be ignored").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checked {
    /// Core attributes, plus the common `externalId`.
    pub core: Map<String, Value>,
    /// Extension URN → its attributes.
    pub extensions: Vec<(&'static str, Map<String, Value>)>,
}

impl Checked {
    /// The attributes of extension `urn`, if the body carried it.
    pub fn extension(&self, urn: &str) -> Option<&Map<String, Value>> {
        self.extensions
            .iter()
            .find(|(u, _)| *u == urn)
            .map(|(_, attrs)| attrs)
    }
}

/// Checks a resource body of type `rt` (a create or replace request).
pub fn check_resource(rt: ResourceType, body: &Value) -> Result<Checked, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    let declared = body
        .get("schemas")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("`schemas` is required"))?;
    let core = rt.core();
    if !declared
        .iter()
        .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&core.id)))
    {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must include {}",
            core.id
        )));
    }
    let mut checked = Checked::default();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas")
            || key.eq_ignore_ascii_case("id")
            || key.eq_ignore_ascii_case("meta")
        {
            continue;
        }
        if key.eq_ignore_ascii_case("externalId") {
            checked
                .core
                .insert("externalId".into(), check_external_id(value)?);
            continue;
        }
        if let Some(urn) = rt
            .extensions()
            .iter()
            .find(|urn| urn.eq_ignore_ascii_case(key))
        {
            let Value::Object(attrs) = value else {
                return Err(ScimError::invalid_syntax(format!(
                    "`{key}` must be an object"
                )));
            };
            let def = known(urn);
            let mut out = Map::new();
            for (name, v) in attrs {
                check_into(def, name, v, &mut out)?;
            }
            checked.extensions.push((urn, out));
            continue;
        }
        check_into(core, key, value, &mut checked.core)?;
    }
    Ok(checked)
}

fn check_external_id(value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::String(_) | Value::Null => Ok(value.clone()),
        _ => Err(ScimError::invalid_value("`externalId` must be a string")),
    }
}

/// Checks `name: value` against `schema`, inserting it under its canonical
/// name unless it is read-only.
fn check_into(
    schema: &SchemaDef,
    name: &str,
    value: &Value,
    out: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    // Null and an empty list are "no value" (RFC 7643 §2.5), whatever the name.
    if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
        return Ok(());
    }
    let def = schema.attribute(name).ok_or_else(|| {
        ScimError::invalid_syntax(format!("unknown attribute `{name}` in {}", schema.id))
    })?;
    if def.mutability == Mutability::ReadOnly || value.is_null() {
        return Ok(());
    }
    out.insert(def.name.clone(), check_value(def, value)?);
    Ok(())
}

/// A value of `def`'s type, in canonical form.
pub fn check_value(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    if def.multi_valued {
        let items = match value {
            Value::Array(items) => items.as_slice(),
            // Some clients send a lone value where a list is declared.
            other => std::slice::from_ref(other),
        };
        let checked = items
            .iter()
            .map(|item| check_single(def, item))
            .collect::<Result<Vec<_>, _>>()?;
        check_one_primary(def, &checked)?;
        return Ok(Value::Array(checked));
    }
    check_single(def, value)
}

fn check_single(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    let wrong =
        || ScimError::invalid_value(format!("`{}` must be a {}", def.name, type_name(def.kind)));
    match def.kind {
        AttrType::String | AttrType::Reference => match value {
            Value::String(_) => Ok(value.clone()),
            _ => Err(wrong()),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            // Microsoft Entra sends booleans as "True"/"False" in PATCH.
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        AttrType::DateTime => match value {
            Value::String(s) if s.parse::<idplane_core::Timestamp>().is_ok() => Ok(value.clone()),
            _ => Err(wrong()),
        },
        AttrType::Complex => {
            let attrs = match value {
                Value::Object(attrs) => attrs.clone(),
                // Microsoft Entra sends a reference (the manager) as its bare id.
                Value::String(_) if def.sub_attribute("value").is_some() => {
                    Map::from_iter([("value".to_owned(), value.clone())])
                }
                _ => return Err(wrong()),
            };
            let mut out = Map::new();
            for (name, v) in &attrs {
                let sub = def.sub_attribute(name).ok_or_else(|| {
                    ScimError::invalid_syntax(format!(
                        "unknown sub-attribute `{name}` of `{}`",
                        def.name
                    ))
                })?;
                if sub.mutability == Mutability::ReadOnly || v.is_null() {
                    continue;
                }
                out.insert(sub.name.clone(), check_single(sub, v)?);
            }
            Ok(Value::Object(out))
        }
    }
}

/// RFC 7643 §2.4: `primary: true` appears at most once.
fn check_one_primary(def: &AttrDef, items: &[Value]) -> Result<(), ScimError> {
    let primaries = items
        .iter()
        .filter(|item| item.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "at most one of `{}` may be primary",
            def.name
        )));
    }
    Ok(())
}

fn type_name(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::DateTime => "dateTime (RFC 3339)",
        AttrType::Reference => "reference (string)",
        AttrType::Complex => "complex object",
    }
}

/// The `Schemas` resources (RFC 7644 §4), each with its `meta`.
pub fn schema_resources(base: &str) -> Vec<Value> {
    SCHEMA_DOCS
        .iter()
        .cloned()
        .map(|mut s| {
            let id = s["id"].as_str().unwrap_or_default().to_owned();
            s["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
            s["meta"] =
                json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
            s
        })
        .collect()
}

/// The `ResourceTypes` resources.
pub fn resource_type_resources(base: &str) -> Vec<Value> {
    [ResourceType::User, ResourceType::Group]
        .into_iter()
        .map(|rt| {
            let extensions: Vec<Value> = rt
                .extensions()
                .iter()
                .map(|urn| json!({"schema": urn, "required": false}))
                .collect();
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": rt.name(),
                "name": rt.name(),
                "description": format!("{} resources", rt.name()),
                "endpoint": rt.endpoint(),
                "schema": rt.core().id,
                "schemaExtensions": extensions,
                "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name())},
            })
        })
        .collect()
}

/// The `ServiceProviderConfig`: exactly the features that work.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/idplane/idplane/blob/main/docs/lifecycle.md",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": BULK_MAX_OPERATIONS, "maxPayloadSize": BULK_MAX_PAYLOAD},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "An idplane token with the `scim` (or `admin`) scope, sent as `Authorization: Bearer TOKEN`",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_schema_is_compiled_in() {
        for urn in [USER, GROUP, ENTERPRISE_USER, LIFECYCLE_USER] {
            assert!(schema(urn).is_some(), "{urn}");
        }
        assert_eq!(SCHEMA_DOCS.len(), SCHEMAS.len());
        for rt in [ResourceType::User, ResourceType::Group] {
            assert!(rt.extensions().iter().all(|u| schema(u).is_some()));
        }
    }
}
