//! The applications' entity types whose attributes are all strings, longs
//! or booleans, read from their schemas, so that a request's resource with
//! such properties becomes a Cedar entity without Cedar's JSON parser.
//! That parser tries each of its escape forms on every value and builds a
//! serde error for each miss, which was a tenth of a decision's CPU.
//! Anything else (sets, records, entity references, extension types,
//! common types, enumerated types, a value of the wrong type, a missing
//! attribute) still goes through Cedar's parser, which also words the
//! errors.

use std::collections::{BTreeMap, HashMap, HashSet};

use cedar_policy::{
    Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression, SchemaFragment,
};
use serde_json::{Map, Value};

/// The attribute types the fast path builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Primitive {
    String,
    Long,
    Bool,
}

#[derive(Clone, Copy, Debug)]
struct Attribute {
    kind: Primitive,
    required: bool,
}

/// Primitive-only entity types by qualified name (`Namespace::Type`).
#[derive(Clone, Debug, Default)]
pub struct Shapes(HashMap<String, HashMap<String, Attribute>>);

impl Shapes {
    /// The primitive-only entity types of `schemas` (application namespace
    /// to Cedar schema text). A namespace with common types, or with an
    /// entity type named like a primitive, is left out whole: its type
    /// names would need Cedar's resolution rules.
    pub fn from_schemas(schemas: &BTreeMap<String, String>) -> Self {
        let mut shapes = HashMap::new();
        for (namespace, text) in schemas {
            let Ok((fragment, _)) = SchemaFragment::from_cedarschema_str(text) else {
                continue;
            };
            let Ok(json) = fragment.to_json_value() else {
                continue;
            };
            let Some(declared) = json.get(namespace) else {
                continue;
            };
            if declared
                .get("commonTypes")
                .and_then(Value::as_object)
                .is_some_and(|common| !common.is_empty())
            {
                continue;
            }
            let Some(types) = declared.get("entityTypes").and_then(Value::as_object) else {
                continue;
            };
            if types.keys().any(|name| primitive_named(name).is_some()) {
                continue;
            }
            for (name, definition) in types {
                if let Some(attributes) = primitive_attributes(definition) {
                    shapes.insert(format!("{namespace}::{name}"), attributes);
                }
            }
        }
        Self(shapes)
    }

    /// The entity `type_name::"id"` with `properties` as its attributes, if
    /// its type is primitive-only and the properties conform exactly;
    /// `None` sends the caller to Cedar's parser.
    pub fn entity(
        &self,
        type_name: &EntityTypeName,
        id: &str,
        properties: &Map<String, Value>,
    ) -> Option<Entity> {
        let shape = self.0.get(&type_name.to_string())?;
        let mut attrs = HashMap::with_capacity(properties.len());
        for (name, value) in properties {
            let expression = match (shape.get(name)?.kind, value) {
                (Primitive::String, Value::String(s)) => {
                    RestrictedExpression::new_string(s.clone())
                }
                (Primitive::Long, Value::Number(n)) => RestrictedExpression::new_long(n.as_i64()?),
                (Primitive::Bool, Value::Bool(b)) => RestrictedExpression::new_bool(*b),
                _ => return None,
            };
            attrs.insert(name.clone(), expression);
        }
        if shape
            .iter()
            .any(|(name, attribute)| attribute.required && !properties.contains_key(name))
        {
            return None;
        }
        let uid = EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id));
        Entity::new(uid, attrs, HashSet::new()).ok()
    }
}

/// An entity type definition's attributes, if all are primitives and the
/// type is neither enumerated nor open to undeclared attributes.
fn primitive_attributes(definition: &Value) -> Option<HashMap<String, Attribute>> {
    if definition.get("enum").is_some() || definition.get("tags").is_some() {
        return None;
    }
    let Some(shape) = definition.get("shape") else {
        return Some(HashMap::new());
    };
    if shape.get("type")?.as_str()? != "Record"
        || shape
            .get("additionalAttributes")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return None;
    }
    let Some(attributes) = shape.get("attributes") else {
        return Some(HashMap::new());
    };
    attributes
        .as_object()?
        .iter()
        .map(|(name, attribute)| {
            let kind = match attribute.get("type")?.as_str()? {
                "String" => Primitive::String,
                "Long" => Primitive::Long,
                "Boolean" => Primitive::Bool,
                "EntityOrCommon" => primitive_named(attribute.get("name")?.as_str()?)?,
                _ => return None,
            };
            let required = attribute
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            Some((name.clone(), Attribute { kind, required }))
        })
        .collect()
}

/// The primitive an unqualified type name denotes when nothing in the
/// namespace shadows it.
fn primitive_named(name: &str) -> Option<Primitive> {
    match name {
        "String" | "__cedar::String" => Some(Primitive::String),
        "Long" | "__cedar::Long" => Some(Primitive::Long),
        "Bool" | "Boolean" | "__cedar::Bool" => Some(Primitive::Bool),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::Schema;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const APP: &str = r#"namespace App {
        entity Doc = { owner: String, level: Long, draft?: Bool };
        entity Tag;
        entity Folder = { path: String, parent?: Folder };
        entity Host = { ip: ipaddr };
        entity Color enum ["red", "blue"];
    }"#;
    const COMMON: &str = r#"namespace Shared {
        type Name = String;
        entity Page = { title: Name };
    }"#;

    fn schemas() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("App".to_owned(), APP.to_owned()),
            ("Shared".to_owned(), COMMON.to_owned()),
        ])
    }

    fn schema() -> Schema {
        let fragments = schemas()
            .values()
            .map(|text| {
                SchemaFragment::from_cedarschema_str(text)
                    .expect("fragment")
                    .0
            })
            .collect::<Vec<_>>();
        Schema::from_schema_fragments(fragments).expect("schema")
    }

    fn type_name(name: &str) -> EntityTypeName {
        EntityTypeName::from_str(name).expect("type name")
    }

    /// What Cedar's own parser makes of the same entity.
    fn parsed(schema: &Schema, kind: &str, id: &str, properties: &Value) -> Option<Entity> {
        let json = json!({"uid": {"type": kind, "id": id}, "attrs": properties, "parents": []});
        Entity::from_json_value(json, Some(schema)).ok()
    }

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn only_primitive_only_types_have_shapes() {
        let shapes = Shapes::from_schemas(&schemas());
        let mut kinds: Vec<&str> = shapes.0.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        // Folder refers to an entity, Host to an extension type, Color is
        // enumerated, Shared has a common type.
        assert_eq!(kinds, ["App::Doc", "App::Tag"]);
    }

    #[test]
    fn conforming_properties_build_what_cedar_parses() {
        let (shapes, schema) = (Shapes::from_schemas(&schemas()), schema());
        for properties in [
            json!({"owner": "alice", "level": 3}),
            json!({"owner": "", "level": -9, "draft": true}),
            json!({"owner": "bob", "level": i64::MAX, "draft": false}),
        ] {
            let fast = shapes.entity(&type_name("App::Doc"), "d1", &props(properties.clone()));
            assert_eq!(fast, parsed(&schema, "App::Doc", "d1", &properties));
            assert!(fast.is_some(), "{properties}");
        }
        let tag = shapes.entity(&type_name("App::Tag"), "t", &Map::new());
        assert_eq!(tag, parsed(&schema, "App::Tag", "t", &json!({})));
    }

    #[test]
    fn anything_else_is_left_to_cedar() {
        let shapes = Shapes::from_schemas(&schemas());
        for properties in [
            json!({"owner": "alice"}),
            json!({"owner": "alice", "level": "3"}),
            json!({"owner": "alice", "level": 3.5}),
            json!({"owner": "alice", "level": u64::MAX}),
            json!({"owner": "alice", "level": 3, "extra": 1}),
            json!({"owner": {"__entity": {"type": "App::Tag", "id": "t"}}, "level": 3}),
        ] {
            assert_eq!(
                shapes.entity(&type_name("App::Doc"), "d1", &props(properties.clone())),
                None,
                "{properties}"
            );
        }
        let folder = props(json!({"path": "/"}));
        assert_eq!(shapes.entity(&type_name("App::Folder"), "f", &folder), None);
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    proptest! {
        /// Whenever the fast path builds an entity, Cedar's parser accepts
        /// the same properties and builds the same entity.
        #[test]
        fn the_fast_path_agrees_with_cedar(
            entries in proptest::collection::vec(
                (prop_oneof![Just("owner"), Just("level"), Just("draft"), Just("x")], value()),
                0..4,
            ),
        ) {
            let (shapes, schema) = (Shapes::from_schemas(&schemas()), schema());
            let properties: Map<String, Value> =
                entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(fast) = shapes.entity(&type_name("App::Doc"), "d", &properties) {
                let slow = parsed(&schema, "App::Doc", "d", &Value::Object(properties));
                prop_assert_eq!(Some(fast), slow);
            }
        }
    }
}
