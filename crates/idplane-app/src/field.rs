//! A field of a partial update: absent (keep), null (clear) or a new value.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One field of a partial update, as JSON Merge Patch (RFC 7396) reads it.
/// Use with `#[serde(default)]` so that an absent field stays `Keep`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not mentioned: keep the current value.
    #[default]
    Keep,
    /// `null`: clear the value.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Field<T> {
    /// Applies the update to `current`.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Field::Keep => current,
            Field::Clear => None,
            Field::Set(v) => Some(v),
        }
    }

    /// Applies the update to a field that cannot be cleared: `null` is refused.
    pub fn require(
        self,
        field: &'static str,
        current: T,
    ) -> Result<T, idplane_core::ValidationError> {
        match self {
            Field::Keep => Ok(current),
            Field::Set(v) => Ok(v),
            Field::Clear => Err(idplane_core::ValidationError::new(field, "cannot be null")),
        }
    }

    /// Transforms the new value, keeping `Keep` and `Clear`.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Field<U>, E> {
        Ok(match self {
            Field::Keep => Field::Keep,
            Field::Clear => Field::Clear,
            Field::Set(v) => Field::Set(f(v)?),
        })
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Field::Clear,
            Some(v) => Field::Set(v),
        })
    }
}

/// Applies a JSON Merge Patch (RFC 7396) object to `target`: `null` removes
/// a key, objects merge recursively, anything else replaces.
pub fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge_patch(existing, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The example of RFC 7396, section 3.
        let mut target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null}, "tags": ["example"]});
        let (Value::Object(t), Value::Object(p)) = (&mut target, patch) else {
            unreachable!()
        };
        merge_patch(t, p);
        assert_eq!(
            target,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
            "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }

    #[test]
    fn null_is_refused_where_a_value_is_required() {
        assert!(
            Field::<String>::Clear
                .require("username", "a".into())
                .is_err()
        );
        assert_eq!(
            Field::Keep.require("username", "a".to_owned()).unwrap(),
            "a"
        );
    }
}
