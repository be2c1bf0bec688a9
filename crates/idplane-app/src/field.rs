//! A field of a partial update: absent (keep), null (clear) or a new value.

use serde::{Deserialize, Deserializer};

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
