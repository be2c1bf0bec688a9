//! Evaluating a [`Filter`] against a SCIM resource in its JSON form.
//!
//! Semantics (RFC 7644 §3.4.2.2, RFC 7643 §2): attribute names match
//! case-insensitively; a multi-valued attribute matches when any element
//! does, and a multi-valued complex attribute compared without sub-attribute
//! compares its elements' `value` (a singular one, like `manager`, its own);
//! strings compare case-insensitively unless
//! the caller says the attribute is case-exact, and chronologically when both
//! sides are RFC 3339 date-times; a comparison between values of different
//! JSON types matches nothing. `ne` is the negation of `eq`, so a resource
//! without the attribute matches `ne`; `eq null` means "not present".

use std::cmp::Ordering;

use serde_json::Value;

use super::filter::{AttrPath, CompareOp, Filter};
use crate::Timestamp;

impl Filter {
    /// Whether `resource` satisfies the filter. `case_exact` says which
    /// string attributes compare case-sensitively; inside a value filter it
    /// is asked about `attr.sub` (e.g. `emails.type`).
    pub fn matches(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource, case_exact) && b.matches(resource, case_exact),
            Filter::Or(a, b) => a.matches(resource, case_exact) || b.matches(resource, case_exact),
            Filter::Not(inner) => !inner.matches(resource, case_exact),
            Filter::Present(path) => match &path.sub_attr {
                None => attribute(resource, path).is_some_and(present),
                Some(_) => operands(resource, path).iter().any(|v| present(v)),
            },
            Filter::Compare { path, op, value } => {
                let exact = case_exact(path);
                let eq = |v: &&Value| compare(v, CompareOp::Eq, value, exact);
                match (op, value) {
                    (CompareOp::Eq, Value::Null) => !present_path(resource, path),
                    (CompareOp::Ne, Value::Null) => present_path(resource, path),
                    (_, Value::Null) => false,
                    (CompareOp::Ne, _) => !operands(resource, path).iter().any(eq),
                    (op, _) => operands(resource, path)
                        .iter()
                        .any(|v| compare(v, *op, value, exact)),
                }
            }
            Filter::ValuePath { attr, filter } => {
                let relative = |p: &AttrPath| {
                    case_exact(&AttrPath {
                        urn: attr.urn.clone(),
                        attr: attr.attr.clone(),
                        sub_attr: Some(p.attr.clone()),
                    })
                };
                match attribute(resource, attr) {
                    Some(Value::Array(items)) => {
                        items.iter().any(|el| filter.matches(el, &relative))
                    }
                    Some(el @ Value::Object(_)) => filter.matches(el, &relative),
                    _ => false,
                }
            }
        }
    }
}

fn get<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The attribute named by `path` (sub-attribute ignored). Extension
/// attributes live under their schema URN, core ones at the top level; an
/// extension attribute named without its URN is found in its extension.
fn attribute<'v>(resource: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let Some(urn) = &path.urn else {
        let mut extensions = resource.as_object().into_iter().flatten().filter(|(k, v)| {
            k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) && v.is_object()
        });
        return get(resource, &path.attr)
            .or_else(|| extensions.find_map(|(_, ext)| get(ext, &path.attr)));
    };
    let scope = get(resource, urn)
        .filter(|v| v.is_object())
        .unwrap_or(resource);
    get(scope, &path.attr)
}

/// The values a comparison on `path` looks at.
fn operands<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(value) = attribute(resource, path) else {
        return Vec::new();
    };
    let key = path.sub_attr.as_deref();
    let element = |el: &'v Value| match (el, key) {
        (Value::Object(_), Some(key)) => get(el, key),
        (Value::Object(_), None) => get(el, "value"),
        (_, Some(_)) => None,
        (scalar, None) => Some(scalar),
    };
    match value {
        Value::Array(items) => items.iter().filter_map(element).collect(),
        Value::Object(_) => element(value).into_iter().collect(),
        scalar if key.is_none() => vec![scalar],
        _ => Vec::new(),
    }
}

fn present_path(resource: &Value, path: &AttrPath) -> bool {
    Filter::Present(path.clone()).matches(resource, &|_| false)
}

/// RFC 7644: "has a non-empty value, or ... a non-empty node for complex attributes".
fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, exact: bool) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            let times = a.parse::<Timestamp>().ok().zip(b.parse::<Timestamp>().ok());
            match times {
                Some((a, b)) if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
                    ordered(a.cmp(&b), op)
                }
                _ if exact => text(a, b, op),
                _ => text(&a.to_lowercase(), &b.to_lowercase(), op),
            }
        }
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordered(o, op)),
            _ => false,
        },
        (Value::Bool(a), Value::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

fn text(a: &str, b: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        _ => ordered(a.cmp(b), op),
    }
}

/// Whether `ordering` (actual against expected) satisfies `op`; never for
/// the substring operators.
fn ordered(ordering: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}
