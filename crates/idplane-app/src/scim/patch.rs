//! SCIM PATCH (RFC 7644 §3.5.2): operations applied to a resource's
//! writable JSON, which is then checked and written like a replace. One
//! request is one transaction: every operation applies, or none.

use idplane_core::scim::filter::{CompareOp, Filter, parse_attr_path};
use idplane_core::scim::path::{PatchPath, parse_patch_path};
use serde_json::{Map, Value};

use super::PATCH_OP;
use super::error::ScimError;
use super::schema::{AttrDef, AttrType, Mutability, ResourceType, schema};

/// The most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// One operation, parsed.
#[derive(Clone, Debug)]
pub struct Operation {
    op: Op,
    path: Option<PatchPath>,
    value: Option<Value>,
}

/// Parses a `PatchOp` request body.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let schemas = body.get("schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| s.iter().any(|s| s == PATCH_OP)) {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must be [\"{PATCH_OP}\"]"
        )));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| ScimError::invalid_syntax("`Operations` must be a non-empty list"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "at most {MAX_OPERATIONS} operations per request"
        )));
    }
    ops.iter().map(parse_operation).collect()
}

fn parse_operation(op: &Value) -> Result<Operation, ScimError> {
    let kind = match op.get("op").and_then(Value::as_str) {
        // Microsoft Entra capitalises the operation names.
        Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(
                "each operation's `op` must be add, replace or remove",
            ));
        }
    };
    let path = match op.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            Some(parse_patch_path(p).map_err(|e| ScimError::invalid_path(e.message()))?)
        }
        Some(_) => return Err(ScimError::invalid_path("`path` must be a string")),
    };
    let value = op.get("value").filter(|v| !v.is_null()).cloned();
    match (kind, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::no_target("remove needs a `path`")),
        (Op::Add | Op::Replace, _, None) => {
            Err(ScimError::invalid_value("add and replace need a `value`"))
        }
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::invalid_value(
            "without a `path`, the `value` must be an object",
        )),
        _ => Ok(Operation {
            op: kind,
            path,
            value,
        }),
    }
}

/// Applies `ops` in order to `resource` (its writable attributes, as JSON).
pub fn apply(
    rt: ResourceType,
    resource: &mut Map<String, Value>,
    ops: &[Operation],
) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(path) => apply_at(rt, resource, op.op, path, op.value.as_ref())?,
            None => {
                let Some(Value::Object(attrs)) = &op.value else {
                    unreachable!("checked when parsed");
                };
                // Okta repeats the read-only `id` (and some clients `schemas`
                // or `meta`) in the value: ignored, as in a replace body.
                let writable = attrs.iter().filter(|(k, _)| {
                    !["id", "meta", "schemas"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(k))
                });
                for (key, value) in writable {
                    for (path, value) in pathless_targets(rt, key, value)? {
                        apply_at(rt, resource, op.op, &path, Some(&value))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The entries of a value object other than `id`, `meta` and `schemas`:
/// Okta repeats the read-only `id`, and some clients the others, in a
/// PATCH value; they are ignored, as in a replace body.
fn writable(attrs: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    attrs.iter().filter(|(k, _)| {
        !["id", "meta", "schemas"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(k))
    })
}

/// The paths and values a path-less operation's `value` object names: its
/// keys are attribute paths, or extension URNs whose objects hold more.
fn pathless_targets(
    rt: ResourceType,
    key: &str,
    value: &Value,
) -> Result<Vec<(PatchPath, Value)>, ScimError> {
    let plain = |text: &str, value: &Value| {
        parse_attr_path(text)
            .map(|attr| {
                (
                    PatchPath {
                        attr,
                        filter: None,
                        sub_attr: None,
                    },
                    value.clone(),
                )
            })
            .map_err(|e| ScimError::invalid_path(e.message()))
    };
    match rt.extensions().iter().find(|u| u.eq_ignore_ascii_case(key)) {
        Some(urn) => {
            let Value::Object(attrs) = value else {
                return Err(ScimError::invalid_value(format!(
                    "`{key}` must be an object"
                )));
            };
            writable(attrs)
                .map(|(k, v)| plain(&format!("{urn}:{k}"), v))
                .collect()
        }
        None => Ok(vec![plain(key, value)?]),
    }
}

fn apply_at(
    rt: ResourceType,
    resource: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if let Some(urn) = whole_extension(rt, path) {
        return apply_to_extension(rt, resource, urn, op, value);
    }
    let (container, def) = locate(rt, resource, path)?;
    if op == Op::Remove && def.name == "active" {
        return Err(ScimError::mutability(
            "`active` always has a value: replace it with false to deprovision",
        ));
    }
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "`{}` is read-only",
            def.name
        )));
    }
    let key = existing_key(container, &def.name);
    match (&path.filter, &path.attr.sub_attr) {
        (Some(filter), _) => apply_filtered(container, &key, def, op, filter, path, value),
        (None, Some(sub)) => {
            let sub_def = def.sub_attribute(sub).ok_or_else(|| {
                ScimError::invalid_path(format!("`{}` has no sub-attribute `{sub}`", def.name))
            })?;
            if def.multi_valued {
                return Err(ScimError::invalid_path(format!(
                    "`{}.{sub}` names a sub-attribute of every `{}`; use a value filter",
                    def.name, def.name
                )));
            }
            let entry = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(obj) = entry else {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is not complex",
                    def.name
                )));
            };
            let sub_key = existing_key(obj, &sub_def.name);
            match op {
                Op::Remove => {
                    obj.remove(&sub_key);
                }
                Op::Add | Op::Replace => {
                    obj.insert(sub_key, value.cloned().unwrap_or(Value::Null));
                }
            }
            Ok(())
        }
        (None, None) => {
            apply_whole(container, &key, def, op, value);
            Ok(())
        }
    }
}

/// The extension URN a path names as a whole (`urn:...:enterprise:2.0:User`
/// parses as attribute `User` of schema `urn:...:enterprise:2.0`).
fn whole_extension(rt: ResourceType, path: &PatchPath) -> Option<&'static str> {
    let urn = path.attr.urn.as_deref()?;
    if path.attr.sub_attr.is_some() || path.filter.is_some() {
        return None;
    }
    let full = format!("{urn}:{}", path.attr.attr);
    rt.extensions()
        .iter()
        .find(|u| u.eq_ignore_ascii_case(&full))
        .copied()
}

/// An operation on a whole extension object: remove drops it; add and
/// replace apply to each attribute the value names.
fn apply_to_extension(
    rt: ResourceType,
    resource: &mut Map<String, Value>,
    urn: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match (op, value) {
        (Op::Remove, _) => {
            let key = existing_key(resource, urn);
            resource.remove(&key);
            Ok(())
        }
        (_, Some(value)) => {
            for (path, value) in pathless_targets(rt, urn, value)? {
                apply_at(rt, resource, op, &path, Some(&value))?;
            }
            Ok(())
        }
        (_, None) => unreachable!("checked when parsed"),
    }
}

/// An operation on a whole attribute.
fn apply_whole(
    container: &mut Map<String, Value>,
    key: &str,
    def: &AttrDef,
    op: Op,
    value: Option<&Value>,
) {
    match (op, value) {
        (Op::Remove, None) => {
            container.remove(key);
        }
        // Microsoft Entra removes members by naming them in `value`.
        (Op::Remove, Some(value)) if def.multi_valued => {
            let gone: Vec<Value> = as_list(value)
                .into_iter()
                .filter_map(|v| v.get("value").cloned().or(Some(v)))
                .collect();
            if let Some(Value::Array(items)) = container.get_mut(key) {
                items.retain(|item| {
                    let id = item.get("value").unwrap_or(item);
                    !gone.contains(id)
                });
            }
        }
        (Op::Remove, Some(_)) => {
            container.remove(key);
        }
        (Op::Add, Some(value)) if def.multi_valued => {
            let entry = container
                .entry(key.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !entry.is_array() {
                *entry = Value::Array(Vec::new());
            }
            let Value::Array(items) = entry else {
                unreachable!("made an array above");
            };
            for v in as_list(value) {
                if !items.contains(&v) {
                    items.push(v);
                }
            }
        }
        (Op::Replace, Some(value)) if def.multi_valued => {
            container.insert(key.to_owned(), Value::Array(as_list(value)));
        }
        (Op::Add | Op::Replace, Some(Value::Object(sub))) if def.kind == AttrType::Complex => {
            // Sub-attributes not named are left as they are (§3.5.2.1, §3.5.2.3).
            let entry = container
                .entry(key.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(obj) => obj.extend(sub.clone()),
                other => *other = Value::Object(sub.clone()),
            }
        }
        (Op::Add | Op::Replace, Some(value)) => {
            container.insert(key.to_owned(), value.clone());
        }
        (Op::Add | Op::Replace, None) => unreachable!("checked when parsed"),
    }
}

/// An operation on the elements of a multi-valued attribute that match a
/// value filter.
fn apply_filtered(
    container: &mut Map<String, Value>,
    key: &str,
    def: &AttrDef,
    op: Op,
    filter: &Filter,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if !def.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "`{}` is not multi-valued; a value filter does not apply",
            def.name
        )));
    }
    if let Some(sub) = &path.sub_attr
        && def.sub_attribute(sub).is_none()
    {
        return Err(ScimError::invalid_path(format!(
            "`{}` has no sub-attribute `{sub}`",
            def.name
        )));
    }
    let case_exact = |p: &idplane_core::scim::filter::AttrPath| {
        def.sub_attribute(&p.attr).is_some_and(|s| s.case_exact)
    };
    let entry = container
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(items) = entry else {
        return Err(ScimError::invalid_value(format!(
            "`{}` is not a list",
            def.name
        )));
    };
    let matched: Vec<usize> = (0..items.len())
        .filter(|&i| filter.matches(&items[i], &case_exact))
        .collect();
    match op {
        Op::Remove => {
            let mut i = 0;
            items.retain_mut(|item| {
                let hit = matched.contains(&i);
                i += 1;
                match (&path.sub_attr, hit) {
                    (_, false) => true,
                    (None, true) => false,
                    (Some(sub), true) => {
                        if let Value::Object(obj) = item {
                            obj.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        }
                        true
                    }
                }
            });
        }
        Op::Add | Op::Replace if matched.is_empty() => {
            // Microsoft Entra adds `emails[type eq "work"].value` when there is
            // no work email yet: an element made from the filter's equalities.
            let seed = seed_from(filter).ok_or_else(|| {
                ScimError::no_target(format!("no `{}` matches the filter", def.name))
            })?;
            items.push(with_value(Value::Object(seed), path, value));
        }
        Op::Add | Op::Replace => {
            for i in matched {
                let item = std::mem::take(&mut items[i]);
                items[i] = match (&path.sub_attr, op) {
                    (None, Op::Replace) => value.cloned().unwrap_or(Value::Null),
                    _ => with_value(item, path, value),
                };
            }
        }
    }
    Ok(())
}

/// `item` with the operation's value merged in (or set at the sub-attribute).
fn with_value(item: Value, path: &PatchPath, value: Option<&Value>) -> Value {
    let Value::Object(mut obj) = item else {
        return value.cloned().unwrap_or(item);
    };
    match (&path.sub_attr, value) {
        (Some(sub), Some(v)) => {
            obj.insert(sub.clone(), v.clone());
        }
        (None, Some(Value::Object(sub))) => obj.extend(sub.clone()),
        _ => {}
    }
    Value::Object(obj)
}

/// The attribute values an `eq`-only filter pins down, as a new element.
fn seed_from(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub_attr.is_none() => {
            Some(Map::from_iter([(path.attr.clone(), value.clone())]))
        }
        Filter::And(a, b) => {
            let mut seed = seed_from(a)?;
            seed.extend(seed_from(b)?);
            Some(seed)
        }
        _ => None,
    }
}

/// The object holding the attribute `path` names, and its definition.
fn locate<'a>(
    rt: ResourceType,
    resource: &'a mut Map<String, Value>,
    path: &PatchPath,
) -> Result<(&'a mut Map<String, Value>, &'static AttrDef), ScimError> {
    let core = rt.core();
    let unknown = || ScimError::invalid_path(format!("unknown attribute `{}`", path.attr));
    let extension = match &path.attr.urn {
        None => None,
        Some(urn) if urn.eq_ignore_ascii_case(&core.id) => None,
        Some(urn) => Some(
            rt.extensions()
                .iter()
                .find(|u| u.eq_ignore_ascii_case(urn))
                .copied()
                .ok_or_else(unknown)?,
        ),
    };
    if path.attr.urn.is_none() && path.attr.attr.eq_ignore_ascii_case("externalId") {
        return Ok((resource, &EXTERNAL_ID));
    }
    match extension {
        None => {
            let def = core.attribute(&path.attr.attr).ok_or_else(unknown)?;
            Ok((resource, def))
        }
        Some(urn) => {
            let def = schema(urn)
                .and_then(|s| s.attribute(&path.attr.attr))
                .ok_or_else(unknown)?;
            let key = existing_key(resource, urn);
            let entry = resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(obj) = entry else {
                unreachable!("made an object above");
            };
            Ok((obj, def))
        }
    }
}

/// `externalId` is common to every resource (RFC 7643 §3.1), not in a schema.
static EXTERNAL_ID: std::sync::LazyLock<AttrDef> = std::sync::LazyLock::new(|| AttrDef {
    name: "externalId".into(),
    kind: AttrType::String,
    multi_valued: false,
    case_exact: true,
    mutability: Mutability::ReadWrite,
    returned: super::schema::Returned::Default,
    sub_attributes: Vec::new(),
});

/// The key under which `map` holds `name` (attribute names are
/// case-insensitive), or `name` itself.
fn existing_key(map: &Map<String, Value>, name: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::ENTERPRISE_USER;

    fn run(rt: ResourceType, resource: Value, ops: Value) -> Result<Value, ScimError> {
        let ops = parse(&json!({"schemas": [PATCH_OP], "Operations": ops}))?;
        let Value::Object(mut map) = resource else {
            panic!("object")
        };
        apply(rt, &mut map, &ops)?;
        Ok(Value::Object(map))
    }

    fn user() -> Value {
        json!({
            "userName": "ada",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [
                {"value": "ada@work.example", "type": "work", "primary": true},
                {"value": "ada@home.example", "type": "home"}
            ],
            "active": true,
        })
    }

    #[test]
    fn replace_with_a_value_filter_and_sub_attribute() {
        let out = run(
            ResourceType::User,
            user(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.example"}]),
        )
        .unwrap();
        assert_eq!(out["emails"][0]["value"], "new@work.example");
        assert_eq!(out["emails"][1]["value"], "ada@home.example");
    }

    #[test]
    fn entra_shapes_capitalised_ops_string_booleans_and_urn_paths() {
        let out = run(
            ResourceType::User,
            user(),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": format!("{ENTERPRISE_USER}:manager"), "value": "0195f8d4-0000-7000-8000-000000000001"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out["active"], "False",
            "normalised later, by the schema check"
        );
        assert_eq!(
            out[ENTERPRISE_USER]["manager"],
            "0195f8d4-0000-7000-8000-000000000001"
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555 0100"}])
        );
    }

    #[test]
    fn pathless_add_merges_complex_and_extension_attributes() {
        let out = run(
            ResourceType::User,
            user(),
            json!([{"op": "add", "value": {
                "name": {"givenName": "Augusta"},
                "title": "Analyst",
                ENTERPRISE_USER: {"department": "R&D"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "7",
            }}]),
        )
        .unwrap();
        assert_eq!(
            out["name"],
            json!({"givenName": "Augusta", "familyName": "Lovelace"})
        );
        assert_eq!(out["title"], "Analyst");
        assert_eq!(
            out[ENTERPRISE_USER],
            json!({"department": "R&D", "costCenter": "7"})
        );
    }

    #[test]
    fn group_members_added_once_and_removed_by_filter_or_by_value() {
        let group = json!({"displayName": "eng", "members": [{"value": "a"}]});
        let out = run(
            ResourceType::Group,
            group,
            json!([
                {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}, {"value": "c"}]},
                {"op": "remove", "path": "members[value eq \"b\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "c"}]},
            ]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "a"}]));
    }

    #[test]
    fn hostile_and_wrong_operations_are_refused_with_scim_types() {
        let err = |ops: Value| run(ResourceType::User, user(), ops).unwrap_err().scim_type;
        assert_eq!(err(json!([{"op": "remove"}])), Some("noTarget"));
        assert_eq!(
            err(json!([{"op": "replace", "path": "groups", "value": []}])),
            Some("mutability")
        );
        assert_eq!(
            err(json!([{"op": "replace", "path": "shoeSize", "value": 9}])),
            Some("invalidPath")
        );
        assert_eq!(
            err(
                json!([{"op": "replace", "path": "emails[type eq \"fax\" or primary eq false].value", "value": "x"}])
            ),
            Some("noTarget")
        );
        assert_eq!(
            err(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
            Some("invalidPath")
        );
        assert_eq!(
            err(json!([{"op": "move", "path": "title"}])),
            Some("invalidSyntax")
        );
        assert_eq!(
            err(json!([{"op": "add", "path": "title"}])),
            Some("invalidValue")
        );
        let too_many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
            .collect();
        assert_eq!(err(Value::Array(too_many)), Some("tooMany"));
        assert!(
            parse(&json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]})).is_err()
        );
    }
}
