//! SCIM filters and `sortBy` for Users and Groups, translated into the
//! store's [`Predicate`] and [`Sort`] over a fixed attribute mapping.
//!
//! SCIM attributes live in principal columns (`userName` is the name key,
//! `active` the status) or in `attributes` under their canonical SCIM names
//! (`name.givenName`, `department`, `emails` as an array of objects,
//! `manager` as the manager's principal id). Memberships are the
//! `members`/`groups` attributes. Anything else is refused with a message
//! fit for SCIM's `invalidFilter`.

use idplane_core::Timestamp;
use idplane_core::directory::{UserType, name_key};
use idplane_core::scim::filter::{AttrPath, CompareOp, Filter, FilterError, parse_attr_path};
use idplane_store::principal_query::{
    ElementField, ElementPredicate, Field, Op, Operand, Predicate, Sort,
};
use serde_json::Value;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The SCIM resource type a filter is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

/// A filter or sort the mapping cannot express; the message is for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScimQueryError(String);

impl From<FilterError> for ScimQueryError {
    fn from(e: FilterError) -> Self {
        Self(e.to_string())
    }
}

fn error<T>(message: String) -> Result<T, ScimQueryError> {
    Err(ScimQueryError(message))
}

/// Translates a parsed filter on `kind` resources into a store predicate.
pub fn to_predicate(kind: ResourceKind, filter: &Filter) -> Result<Predicate, ScimQueryError> {
    Ok(match filter {
        Filter::And(a, b) => Predicate::And(vec![to_predicate(kind, a)?, to_predicate(kind, b)?]),
        Filter::Or(a, b) => Predicate::Or(vec![to_predicate(kind, a)?, to_predicate(kind, b)?]),
        Filter::Not(inner) => Predicate::Not(Box::new(to_predicate(kind, inner)?)),
        Filter::Present(path) => match resolve(kind, path)? {
            Resolved::Target(target) => present(target, path)?,
            Resolved::Whole(attr) => match (attr.whole, attr.compares) {
                (Some(field), _) => Predicate::Present(field),
                (None, Some(target)) => present(target, path)?,
                (None, None) => return error(format!("`{path} pr` is not supported")),
            },
        },
        Filter::Compare { path, op, value } => match resolve(kind, path)? {
            Resolved::Target(target) => compare(target, path, *op, value)?,
            Resolved::Whole(attr) => match attr.compares {
                Some(target) => compare(target, path, *op, value)?,
                None => {
                    return error(format!(
                        "`{path}` is complex: compare one of its sub-attributes ({})",
                        sub_names(attr)
                    ));
                }
            },
        },
        Filter::ValuePath { attr, filter } => value_path(kind, attr, filter)?,
    })
}

/// Translates `sortBy` (an attribute path) and the sort order.
pub fn to_sort(
    kind: ResourceKind,
    sort_by: &str,
    descending: bool,
) -> Result<Sort, ScimQueryError> {
    let path = parse_attr_path(sort_by)?;
    let target = match resolve(kind, &path)? {
        Resolved::Target(target) => Some(target),
        Resolved::Whole(attr) => attr.compares,
    };
    let field = match target {
        Some(Target::Scalar(field, _)) => field,
        Some(Target::Active) => Field::Status,
        Some(Target::UserType) => Field::UserType,
        Some(Target::Element { .. } | Target::Members | Target::Groups) => {
            return error(format!("cannot sort by the multi-valued `{path}`"));
        }
        None => return error(format!("cannot sort by the complex `{path}`")),
    };
    Ok(Sort { field, descending })
}

/// How a stored value compares.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text {
        exact: bool,
    },
    /// The case-insensitive name key: values are normalised the same way.
    NameKey,
    DateTime,
    Bool,
}

/// Where one SCIM (sub-)attribute is stored.
#[derive(Clone, Copy, Debug)]
enum Target {
    Scalar(Field, Kind),
    /// `active`: whether the status is `active`.
    Active,
    /// `userType`: "Employee" or "Contractor".
    UserType,
    /// A key of the elements of the array `attributes.<array>`.
    Element {
        array: &'static str,
        key: &'static str,
        kind: Kind,
    },
    /// A group's direct members, by id.
    Members,
    /// The groups a user is a direct member of, by id.
    Groups,
}

/// A SCIM attribute: its own target or its sub-attributes'.
#[derive(Debug)]
struct Attr {
    name: &'static str,
    /// What a comparison without sub-attribute compares (`emails eq` compares `value`).
    compares: Option<Target>,
    /// What `pr` without sub-attribute looks at.
    whole: Option<Field>,
    subs: &'static [(&'static str, Target)],
    /// Multi-valued attributes stored as an array of objects: value filters
    /// select one element.
    array: Option<&'static str>,
}

const fn simple(name: &'static str, target: Target) -> Attr {
    Attr {
        name,
        compares: Some(target),
        whole: None,
        subs: &[],
        array: None,
    }
}

const CI: Kind = Kind::Text { exact: false };
const EXACT: Kind = Kind::Text { exact: true };

const fn attr(keys: &'static [&'static str]) -> Target {
    Target::Scalar(Field::Attr(keys), CI)
}

const fn element(array: &'static str, key: &'static str, kind: Kind) -> Target {
    Target::Element { array, key, kind }
}

const fn multi(
    name: &'static str,
    path: &'static [&'static str],
    subs: &'static [(&'static str, Target)],
    value: Option<Target>,
) -> Attr {
    Attr {
        name,
        compares: value,
        whole: Some(Field::Attr(path)),
        subs,
        array: Some(name),
    }
}

const META: Attr = Attr {
    name: "meta",
    compares: None,
    whole: None,
    subs: &[
        ("created", Target::Scalar(Field::CreatedAt, Kind::DateTime)),
        (
            "lastModified",
            Target::Scalar(Field::UpdatedAt, Kind::DateTime),
        ),
    ],
    array: None,
};

const ID: Attr = simple("id", Target::Scalar(Field::Id, EXACT));
const EXTERNAL_ID: Attr = simple("externalId", Target::Scalar(Field::ExternalId, EXACT));

const EMAILS: &[(&str, Target)] = &[
    ("value", element("emails", "value", CI)),
    ("display", element("emails", "display", CI)),
    ("type", element("emails", "type", CI)),
    ("primary", element("emails", "primary", Kind::Bool)),
];
const PHONES: &[(&str, Target)] = &[
    ("value", element("phoneNumbers", "value", CI)),
    ("display", element("phoneNumbers", "display", CI)),
    ("type", element("phoneNumbers", "type", CI)),
    ("primary", element("phoneNumbers", "primary", Kind::Bool)),
];
const ADDRESSES: &[(&str, Target)] = &[
    ("formatted", element("addresses", "formatted", CI)),
    ("streetAddress", element("addresses", "streetAddress", CI)),
    ("locality", element("addresses", "locality", CI)),
    ("region", element("addresses", "region", CI)),
    ("postalCode", element("addresses", "postalCode", CI)),
    ("country", element("addresses", "country", CI)),
    ("type", element("addresses", "type", CI)),
    ("primary", element("addresses", "primary", Kind::Bool)),
];

const USER_CORE: &[Attr] = &[
    ID,
    EXTERNAL_ID,
    META,
    simple("userName", Target::Scalar(Field::NameKey, Kind::NameKey)),
    simple("displayName", Target::Scalar(Field::DisplayName, CI)),
    simple("active", Target::Active),
    simple("userType", Target::UserType),
    Attr {
        name: "name",
        compares: None,
        whole: Some(Field::Attr(&["name"])),
        subs: &[
            ("givenName", attr(&["name", "givenName"])),
            ("familyName", attr(&["name", "familyName"])),
            ("middleName", attr(&["name", "middleName"])),
            ("formatted", attr(&["name", "formatted"])),
            ("honorificPrefix", attr(&["name", "honorificPrefix"])),
            ("honorificSuffix", attr(&["name", "honorificSuffix"])),
        ],
        array: None,
    },
    simple("nickName", attr(&["nickName"])),
    simple("profileUrl", attr(&["profileUrl"])),
    simple("title", attr(&["title"])),
    simple("preferredLanguage", attr(&["preferredLanguage"])),
    simple("locale", attr(&["locale"])),
    simple("timezone", attr(&["timezone"])),
    multi(
        "emails",
        &["emails"],
        EMAILS,
        Some(element("emails", "value", CI)),
    ),
    multi(
        "phoneNumbers",
        &["phoneNumbers"],
        PHONES,
        Some(element("phoneNumbers", "value", CI)),
    ),
    multi("addresses", &["addresses"], ADDRESSES, None),
    Attr {
        name: "groups",
        compares: Some(Target::Groups),
        whole: None,
        subs: &[("value", Target::Groups)],
        array: None,
    },
];

const MANAGER: Target = Target::Scalar(Field::Attr(&["manager"]), EXACT);

const USER_ENTERPRISE: &[Attr] = &[
    simple("employeeNumber", attr(&["employeeNumber"])),
    simple("costCenter", attr(&["costCenter"])),
    simple("organization", attr(&["organization"])),
    simple("division", attr(&["division"])),
    simple("department", attr(&["department"])),
    Attr {
        name: "manager",
        compares: Some(MANAGER),
        whole: Some(Field::Attr(&["manager"])),
        subs: &[("value", MANAGER)],
        array: None,
    },
];

const GROUP_CORE: &[Attr] = &[
    ID,
    EXTERNAL_ID,
    META,
    simple("displayName", Target::Scalar(Field::NameKey, Kind::NameKey)),
    Attr {
        name: "members",
        compares: Some(Target::Members),
        whole: None,
        subs: &[("value", Target::Members)],
        array: None,
    },
];

/// A path resolved: to a stored value, or to a whole attribute.
enum Resolved {
    Target(Target),
    Whole(&'static Attr),
}

fn find(schemas: &[&'static [Attr]], name: &str) -> Option<&'static Attr> {
    schemas
        .iter()
        .flat_map(|attrs| attrs.iter())
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attribute(kind: ResourceKind, path: &AttrPath) -> Result<&'static Attr, ScimQueryError> {
    let is = |schema: &str| {
        path.urn
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(schema))
    };
    let schemas: &[&'static [Attr]] = match kind {
        ResourceKind::User if path.urn.is_none() => &[USER_CORE, USER_ENTERPRISE],
        ResourceKind::User if is(USER_SCHEMA) => &[USER_CORE],
        ResourceKind::User if is(ENTERPRISE_USER_SCHEMA) => &[USER_ENTERPRISE],
        ResourceKind::Group if path.urn.is_none() || is(GROUP_SCHEMA) => &[GROUP_CORE],
        _ => {
            return error(format!(
                "`{}` is not a schema of this resource type",
                path.urn.as_deref().unwrap_or_default()
            ));
        }
    };
    match find(schemas, &path.attr) {
        Some(attr) => Ok(attr),
        None => error(format!("`{path}` is not a filterable attribute")),
    }
}

fn resolve(kind: ResourceKind, path: &AttrPath) -> Result<Resolved, ScimQueryError> {
    let attr = attribute(kind, path)?;
    let Some(sub) = &path.sub_attr else {
        return Ok(Resolved::Whole(attr));
    };
    match attr
        .subs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(sub))
    {
        Some(&(_, target)) => Ok(Resolved::Target(target)),
        None if attr.subs.is_empty() => error(format!("`{}` has no sub-attributes", attr.name)),
        None => error(format!(
            "`{path}` is not a filterable sub-attribute of `{}` ({})",
            attr.name,
            sub_names(attr)
        )),
    }
}

fn sub_names(attr: &Attr) -> String {
    let names: Vec<String> = attr
        .subs
        .iter()
        .map(|(name, _)| format!("{}.{name}", attr.name))
        .collect();
    names.join(", ")
}

fn present(target: Target, path: &AttrPath) -> Result<Predicate, ScimQueryError> {
    Ok(match target {
        Target::Scalar(field, _) => Predicate::Present(field),
        // Every principal has a status.
        Target::Active => Predicate::True,
        Target::UserType => Predicate::Present(Field::UserType),
        Target::Element { array, key, .. } => Predicate::AnyElement {
            array,
            element: Box::new(ElementPredicate::Present(ElementField(key))),
        },
        Target::Members | Target::Groups => {
            return error(format!("`{path} pr` is not supported"));
        }
    })
}

fn store_op(op: CompareOp) -> Op {
    match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Co,
        CompareOp::Sw => Op::Sw,
        CompareOp::Ew => Op::Ew,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    }
}

/// `eq`/`ne` only, as a flag: whether the operator is `ne`.
fn equality(path: &AttrPath, op: CompareOp) -> Result<bool, ScimQueryError> {
    match op {
        CompareOp::Eq => Ok(false),
        CompareOp::Ne => Ok(true),
        _ => error(format!(
            "`{path}` supports only eq and ne, not {}",
            op.as_str()
        )),
    }
}

fn negated_if(ne: bool, p: Predicate) -> Predicate {
    if ne { Predicate::Not(Box::new(p)) } else { p }
}

fn string<'v>(path: &AttrPath, value: &'v Value) -> Result<&'v str, ScimQueryError> {
    match value {
        Value::String(s) => Ok(s),
        _ => error(format!(
            "`{path}` is a string: compare it with a quoted string, not {value}"
        )),
    }
}

/// A value as the operand of a comparison of `kind`, after checking the operator.
fn operand(
    path: &AttrPath,
    kind: Kind,
    op: CompareOp,
    value: &Value,
) -> Result<(Operand, bool), ScimQueryError> {
    Ok(match kind {
        Kind::Text { exact } => (Operand::Text(string(path, value)?.to_owned()), exact),
        Kind::NameKey => (Operand::Text(name_key(string(path, value)?)), true),
        Kind::DateTime => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return error(format!(
                    "`{path}` is a date-time: {} does not apply",
                    op.as_str()
                ));
            }
            let text = string(path, value)?;
            let Ok(time) = text.parse::<Timestamp>() else {
                return error(format!(
                    "`{path}` needs an RFC 3339 date-time such as \"2011-05-13T04:42:34Z\", not \"{text}\""
                ));
            };
            (Operand::Time(time), true)
        }
        Kind::Bool => {
            equality(path, op)?;
            match value {
                Value::Bool(b) => (Operand::Bool(*b), true),
                _ => {
                    return error(format!(
                        "`{path}` is a boolean: compare it with true or false"
                    ));
                }
            }
        }
    })
}

fn compare(
    target: Target,
    path: &AttrPath,
    op: CompareOp,
    value: &Value,
) -> Result<Predicate, ScimQueryError> {
    if value.is_null() {
        // RFC 7644: a null value means "not present".
        let ne = equality(path, op)?;
        return Ok(negated_if(!ne, present(target, path)?));
    }
    Ok(match target {
        Target::Scalar(field, kind) => {
            let (value, case_exact) = operand(path, kind, op, value)?;
            Predicate::Compare {
                field,
                op: store_op(op),
                value,
                case_exact,
            }
        }
        Target::Active => {
            let ne = equality(path, op)?;
            let Value::Bool(active) = value else {
                return error(format!(
                    "`{path}` is a boolean: compare it with true or false"
                ));
            };
            let is_active = Predicate::Compare {
                field: Field::Status,
                op: Op::Eq,
                value: Operand::Text("active".into()),
                case_exact: true,
            };
            negated_if(ne == *active, is_active)
        }
        Target::UserType => {
            let ne = equality(path, op)?;
            let wanted = string(path, value)?.to_lowercase();
            let is = match UserType::parse(&wanted) {
                Some(t) => Predicate::Compare {
                    field: Field::UserType,
                    op: Op::Eq,
                    value: Operand::Text(t.as_str().into()),
                    case_exact: true,
                },
                None => Predicate::False,
            };
            negated_if(ne, is)
        }
        Target::Element { array, key, kind } => {
            // "Some element is not x" is not "no element is x": `ne` negates the whole.
            let ne = op == CompareOp::Ne;
            let op = if ne { CompareOp::Eq } else { op };
            let (value, case_exact) = operand(path, kind, op, value)?;
            let any = Predicate::AnyElement {
                array,
                element: Box::new(ElementPredicate::Compare {
                    field: ElementField(key),
                    op: store_op(op),
                    value,
                    case_exact,
                }),
            };
            negated_if(ne, any)
        }
        Target::Members | Target::Groups => {
            let ne = equality(path, op)?;
            let id = string(path, value)?.to_owned();
            let has = if matches!(target, Target::Members) {
                Predicate::HasMember(id)
            } else {
                Predicate::MemberOf(id)
            };
            negated_if(ne, has)
        }
    })
}

fn value_path(
    kind: ResourceKind,
    path: &AttrPath,
    filter: &Filter,
) -> Result<Predicate, ScimQueryError> {
    let attr = attribute(kind, path)?;
    if let Some(array) = attr.array {
        return Ok(Predicate::AnyElement {
            array,
            element: Box::new(element_predicate(attr, path, filter)?),
        });
    }
    let membership = matches!(attr.compares, Some(Target::Members | Target::Groups));
    match filter {
        _ if attr.subs.is_empty() => error(format!(
            "`{}` has no sub-attributes to filter on",
            attr.name
        )),
        // One element's value: `members[value eq "id"]`.
        Filter::Compare { .. } if membership => to_predicate(kind, &prefixed(path, filter)),
        _ if membership => error(format!(
            "`{0}[...]` takes one comparison, e.g. `{0}[value eq \"id\"]`",
            attr.name
        )),
        // A singular complex attribute: `name[givenName eq "x"]` is `name.givenName eq "x"`.
        _ => to_predicate(kind, &prefixed(path, filter)),
    }
}

/// The filter with its relative paths made sub-attributes of `parent`.
fn prefixed(parent: &AttrPath, filter: &Filter) -> Filter {
    let path = |p: &AttrPath| AttrPath {
        urn: parent.urn.clone(),
        attr: parent.attr.clone(),
        sub_attr: Some(p.attr.clone()),
    };
    match filter {
        Filter::Compare { path: p, op, value } => Filter::Compare {
            path: path(p),
            op: *op,
            value: value.clone(),
        },
        Filter::Present(p) => Filter::Present(path(p)),
        Filter::And(a, b) => {
            Filter::And(Box::new(prefixed(parent, a)), Box::new(prefixed(parent, b)))
        }
        Filter::Or(a, b) => {
            Filter::Or(Box::new(prefixed(parent, a)), Box::new(prefixed(parent, b)))
        }
        Filter::Not(inner) => Filter::Not(Box::new(prefixed(parent, inner))),
        // The parser refuses nested value filters.
        nested @ Filter::ValuePath { .. } => nested.clone(),
    }
}

/// The inner filter of `emails[...]`, over one element's keys.
fn element_predicate(
    attr: &Attr,
    parent: &AttrPath,
    filter: &Filter,
) -> Result<ElementPredicate, ScimQueryError> {
    let key = |p: &AttrPath| -> Result<(&'static str, Kind, AttrPath), ScimQueryError> {
        let full = AttrPath {
            urn: parent.urn.clone(),
            attr: parent.attr.clone(),
            sub_attr: Some(p.attr.clone()),
        };
        if p.urn.is_some() || p.sub_attr.is_some() {
            return error(format!(
                "`{p}` inside `{}[...]` is not a sub-attribute",
                attr.name
            ));
        }
        match attr
            .subs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&p.attr))
        {
            Some(&(_, Target::Element { key, kind, .. })) => Ok((key, kind, full)),
            _ => error(format!(
                "`{full}` is not a filterable sub-attribute of `{}` ({})",
                attr.name,
                sub_names(attr)
            )),
        }
    };
    let recurse = |f: &Filter| element_predicate(attr, parent, f);
    Ok(match filter {
        Filter::And(a, b) => ElementPredicate::And(vec![recurse(a)?, recurse(b)?]),
        Filter::Or(a, b) => ElementPredicate::Or(vec![recurse(a)?, recurse(b)?]),
        Filter::Not(inner) => ElementPredicate::Not(Box::new(recurse(inner)?)),
        Filter::Present(p) => ElementPredicate::Present(ElementField(key(p)?.0)),
        Filter::Compare { path, op, value } => {
            let (key, kind, full) = key(path)?;
            let field = ElementField(key);
            if value.is_null() {
                let ne = equality(&full, *op)?;
                let present = ElementPredicate::Present(field);
                return Ok(if ne {
                    present
                } else {
                    ElementPredicate::Not(Box::new(present))
                });
            }
            let (value, case_exact) = operand(&full, kind, *op, value)?;
            ElementPredicate::Compare {
                field,
                op: store_op(*op),
                value,
                case_exact,
            }
        }
        Filter::ValuePath { .. } => return error("value filters cannot be nested".into()),
    })
}

#[cfg(test)]
mod tests;
