//! A policy's guard: the first test its conditions make, when that test
//! compares an attribute of the principal or the resource with a literal or
//! with another such attribute (`resource.level > 8`, `unless {
//! principal.status == "suspended" }`, `resource.owner == principal.name`).
//!
//! Cedar joins a policy's clauses with `&&` in the order written (an
//! `unless` clause as its negation) and evaluates them left to right,
//! short-circuiting, after the scope, which cannot error. So when the first
//! test evaluates to false without error, nothing after it is evaluated and
//! the policy is not satisfied: it adds neither a reason nor an error, and
//! leaving it out yields the same Response. A guard is only ever decided
//! where Cedar's own result is certain (the entity exists, the attribute is
//! there, the operands are of the types the operator takes without error);
//! anything else leaves the policy to Cedar.

use cedar_policy::{Entities, EvalResult, Policy, Request};
use serde_json::Value;

/// The first test of a policy's conditions, and whether it must hold
/// (`when`) or fail (`unless`) for the policy to go on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Guard {
    left: Operand,
    op: Comparison,
    right: Operand,
    /// `false` for an `unless` clause: the policy goes on when the
    /// comparison is false.
    expected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Operand {
    Attribute(Variable, String),
    Literal(Primitive),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variable {
    Principal,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Primitive {
    Long(i64),
    String(String),
    Bool(bool),
}

impl Guard {
    /// The guard of `policy`, if its first test has a form this module can
    /// decide.
    pub(super) fn of(policy: &Policy) -> Option<Self> {
        let json = policy.to_json().ok()?;
        let first = json.get("conditions")?.as_array()?.first()?;
        let body = first.get("body")?;
        match first.get("kind")?.as_str()? {
            // `when { a && b }`: `a` is evaluated first.
            "when" => Self::comparison(leftmost_conjunct(body), true),
            // `unless { c }` is `!c`; with `&&` inside, `!(a && b)` needs
            // both sides, so only a lone comparison qualifies.
            "unless" => Self::comparison(body, false),
            _ => None,
        }
    }

    fn comparison(expr: &Value, expected: bool) -> Option<Self> {
        let (name, operands) = single_entry(expr)?;
        let op = match name {
            "==" => Comparison::Eq,
            "!=" => Comparison::Ne,
            "<" => Comparison::Lt,
            "<=" => Comparison::Le,
            ">" => Comparison::Gt,
            ">=" => Comparison::Ge,
            _ => return None,
        };
        let left = Operand::of(operands.get("left")?)?;
        let right = Operand::of(operands.get("right")?)?;
        // Two literals: nothing about the request to decide on.
        if matches!((&left, &right), (Operand::Literal(_), Operand::Literal(_))) {
            return None;
        }
        Some(Self {
            left,
            op,
            right,
            expected,
        })
    }

    /// `true` unless Cedar would certainly evaluate this test so that the
    /// policy stops here, unsatisfied and without error.
    pub(super) fn may_pass(&self, request: &Request, entities: &Entities) -> bool {
        let (Some(left), Some(right)) = (
            self.left.value(request, entities),
            self.right.value(request, entities),
        ) else {
            return true;
        };
        self.op
            .apply(&left, &right)
            .is_none_or(|outcome| outcome == self.expected)
    }
}

impl Comparison {
    /// Cedar's result where it is certain and error-free: equality of any
    /// two primitives (values of different types are unequal), order only
    /// between longs (anything else is an error or an extension type).
    fn apply(self, left: &Primitive, right: &Primitive) -> Option<bool> {
        match self {
            Self::Eq => Some(left == right),
            Self::Ne => Some(left != right),
            Self::Lt | Self::Le | Self::Gt | Self::Ge => {
                let (Primitive::Long(l), Primitive::Long(r)) = (left, right) else {
                    return None;
                };
                Some(match self {
                    Self::Lt => l < r,
                    Self::Le => l <= r,
                    Self::Gt => l > r,
                    _ => l >= r,
                })
            }
        }
    }
}

impl Operand {
    fn of(expr: &Value) -> Option<Self> {
        let (name, inner) = single_entry(expr)?;
        match name {
            "Value" => Primitive::of_json(inner).map(Self::Literal),
            "." => {
                let variable = match single_entry(inner.get("left")?)? {
                    ("Var", Value::String(var)) if var == "principal" => Variable::Principal,
                    ("Var", Value::String(var)) if var == "resource" => Variable::Resource,
                    _ => return None,
                };
                Some(Self::Attribute(
                    variable,
                    inner.get("attr")?.as_str()?.to_owned(),
                ))
            }
            _ => None,
        }
    }

    /// The operand's value in this request, when it is a primitive Cedar
    /// would read without error.
    fn value(&self, request: &Request, entities: &Entities) -> Option<Primitive> {
        match self {
            Self::Literal(value) => Some(value.clone()),
            Self::Attribute(variable, attribute) => {
                let uid = match variable {
                    Variable::Principal => request.principal()?,
                    Variable::Resource => request.resource()?,
                };
                match entities.get(uid)?.attr(attribute)?.ok()? {
                    EvalResult::Long(value) => Some(Primitive::Long(value)),
                    EvalResult::String(value) => Some(Primitive::String(value)),
                    EvalResult::Bool(value) => Some(Primitive::Bool(value)),
                    _ => None,
                }
            }
        }
    }
}

impl Primitive {
    fn of_json(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(value) => Some(Self::Bool(*value)),
            Value::String(value) => Some(Self::String(value.clone())),
            Value::Number(value) => value.as_i64().map(Self::Long),
            _ => None,
        }
    }
}

/// The first operand of a chain of `&&`s (the expression itself otherwise).
fn leftmost_conjunct(mut expr: &Value) -> &Value {
    while let Some(("&&", operands)) = single_entry(expr)
        && let Some(left) = operands.get("left")
    {
        expr = left;
    }
    expr
}

/// The one key and value of an EST node such as `{"==": {...}}`.
fn single_entry(expr: &Value) -> Option<(&str, &Value)> {
    let object = expr.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object
        .iter()
        .next()
        .map(|(key, value)| (key.as_str(), value))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Context, Entity, EntityUid, PolicyId, RestrictedExpression};

    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(Some(PolicyId::new("p")), text).expect("policy")
    }

    fn guard(text: &str) -> Option<Guard> {
        Guard::of(&policy(text))
    }

    fn uid(text: &str) -> EntityUid {
        EntityUid::from_str(text).expect("uid")
    }

    /// alice (level 3, name "alice") reads doc d (level 9, owner "bob");
    /// doc e has no attributes; doc f is not in the entities.
    fn may_pass(text: &str, resource: &str) -> bool {
        let entity = |id: &str, attrs: Vec<(&str, RestrictedExpression)>| {
            let attrs = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            Entity::new(uid(id), attrs, Default::default()).expect("entity")
        };
        let entities = Entities::from_entities(
            [
                entity(
                    r#"User::"alice""#,
                    vec![
                        ("level", RestrictedExpression::new_long(3)),
                        ("name", RestrictedExpression::new_string("alice".into())),
                    ],
                ),
                entity(
                    r#"Doc::"d""#,
                    vec![
                        ("level", RestrictedExpression::new_long(9)),
                        ("owner", RestrictedExpression::new_string("bob".into())),
                        ("public", RestrictedExpression::new_bool(false)),
                    ],
                ),
                entity(r#"Doc::"e""#, vec![]),
            ],
            None,
        )
        .expect("entities");
        let request = Request::new(
            uid(r#"User::"alice""#),
            uid(r#"Action::"read""#),
            uid(resource),
            Context::empty(),
            None,
        )
        .expect("request");
        guard(text).expect("a guard").may_pass(&request, &entities)
    }

    const D: &str = r#"Doc::"d""#;

    #[test]
    fn the_first_test_of_the_first_clause_is_the_guard() {
        assert!(guard("permit(principal, action, resource);").is_none());
        assert!(guard("permit(principal, action, resource) when { true };").is_none());
        assert!(guard("permit(principal, action, resource) when { 1 < 2 };").is_none());
        assert!(guard("permit(principal, action, resource) when { context.level > 1 };").is_none());
        assert!(
            guard("permit(principal, action, resource) when { resource has level && resource.level > 1 };")
                .is_none()
        );
        assert!(
            guard("permit(principal, action, resource) unless { resource.level > 1 && true };")
                .is_none()
        );
        assert_eq!(
            guard(
                "permit(principal, action, resource) when { resource.level > 1 && resource.owner == principal.name } when { false };"
            ),
            guard(
                "forbid(principal, action == Action::\"x\", resource) when { resource.level > 1 };"
            ),
            "equal guards group together whatever follows them and whatever the head",
        );
    }

    #[test]
    fn a_false_first_test_stops_the_policy() {
        assert!(!may_pass(
            "permit(principal, action, resource) when { resource.level < 9 && resource.nope };",
            D
        ));
        assert!(may_pass(
            "permit(principal, action, resource) when { resource.level <= 9 };",
            D
        ));
        assert!(!may_pass(
            "permit(principal, action, resource) when { principal.level >= resource.level };",
            D
        ));
        assert!(!may_pass(
            "permit(principal, action, resource) when { 10 <= resource.level };",
            D
        ));
        assert!(!may_pass(
            "permit(principal, action, resource) when { resource.owner == principal.name };",
            D
        ));
        assert!(may_pass(
            "permit(principal, action, resource) when { resource.owner != principal.name };",
            D
        ));
        assert!(!may_pass(
            "permit(principal, action, resource) when { resource.public == true };",
            D
        ));
        assert!(!may_pass(
            "permit(principal, action, resource) unless { resource.level > 8 };",
            D
        ));
        assert!(may_pass(
            "permit(principal, action, resource) unless { resource.level > 9 };",
            D
        ));
    }

    #[test]
    fn equality_across_types_is_false_but_order_across_types_is_left_to_cedar() {
        assert!(!may_pass(
            r#"permit(principal, action, resource) when { resource.level == "9" };"#,
            D
        ));
        assert!(may_pass(
            r#"permit(principal, action, resource) when { resource.owner < 3 };"#,
            D
        ));
        assert!(may_pass(
            r#"permit(principal, action, resource) when { resource.public > 3 };"#,
            D
        ));
    }

    #[test]
    fn what_would_error_is_left_to_cedar() {
        let missing = r#"permit(principal, action, resource) when { resource.level > 100 };"#;
        assert!(!may_pass(missing, D));
        assert!(may_pass(missing, r#"Doc::"e""#), "no such attribute");
        assert!(may_pass(missing, r#"Doc::"f""#), "no such entity");
    }
}
