//! A policy's guard: the leading tests of its conditions that compare an
//! attribute of the principal or the resource with a literal or with
//! another such attribute (`resource.level > 8`, `unless {
//! principal.status == "suspended" }`, `resource.owner == principal.name`).
//!
//! Cedar joins a policy's clauses with `&&` in the order written (an
//! `unless` clause as its negation) and evaluates them left to right,
//! short-circuiting, after the scope, which cannot error. So when the
//! leading tests are certainly true up to one that is certainly false,
//! nothing after it is evaluated and the policy is not satisfied: it adds
//! neither a reason nor an error, and leaving it out yields the same
//! Response. A test is only ever decided where Cedar's own result is
//! certain (the entity exists, the attribute is there, the operands are of
//! the types the operator takes without error); anything else leaves the
//! policy to Cedar.

use std::borrow::Cow;

use cedar_policy::{Entities, EvalResult, Policy, Request};
use serde_json::Value;

/// The leading decidable tests of a policy's conditions, in evaluation
/// order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Guard(Vec<Test>);

/// One comparison, and whether it must hold (`when`) or fail (`unless`)
/// for the policy to go on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Test {
    left: Operand,
    op: Comparison,
    right: Operand,
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
    /// The guard of `policy`, if its leading test has a form this module
    /// can decide.
    pub(super) fn of(policy: &Policy) -> Option<Self> {
        let json = policy.to_json().ok()?;
        let mut conjuncts = Vec::new();
        for clause in json.get("conditions")?.as_array()? {
            let body = clause.get("body")?;
            match clause.get("kind")?.as_str()? {
                // `when { a && b }`: `a`, then `b`.
                "when" => conjuncts_of(body, &mut conjuncts),
                // `unless { c }` is `!c`: one test, and only a lone
                // comparison (`!(a && b)` needs both sides).
                "unless" => conjuncts.push((body, false)),
                _ => return None,
            }
        }
        let tests: Vec<Test> = conjuncts
            .into_iter()
            .map_while(|(expr, expected)| Test::of(expr, expected))
            .collect();
        (!tests.is_empty()).then_some(Self(tests))
    }

    /// `true` unless Cedar would certainly evaluate these tests so that the
    /// policy stops, unsatisfied and without error.
    pub(super) fn may_pass(&self, request: &Request, entities: &Entities) -> bool {
        for test in &self.0 {
            match test.outcome(request, entities) {
                // Certainly true: Cedar goes on to the next test.
                Some(true) => {}
                Some(false) => return false,
                None => return true,
            }
        }
        true
    }
}

impl Test {
    fn of(expr: &Value, expected: bool) -> Option<Self> {
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

    /// Whether the policy goes on past this test, where Cedar's answer is
    /// certain and error-free.
    fn outcome(&self, request: &Request, entities: &Entities) -> Option<bool> {
        let left = self.left.value(request, entities)?;
        let right = self.right.value(request, entities)?;
        Some(self.op.apply(&left, &right)? == self.expected)
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
    /// would read without error (a literal is borrowed: this runs per
    /// candidate group on every decision).
    fn value(&self, request: &Request, entities: &Entities) -> Option<Cow<'_, Primitive>> {
        match self {
            Self::Literal(value) => Some(Cow::Borrowed(value)),
            Self::Attribute(variable, attribute) => {
                let uid = match variable {
                    Variable::Principal => request.principal()?,
                    Variable::Resource => request.resource()?,
                };
                let value = match entities.get(uid)?.attr(attribute)?.ok()? {
                    EvalResult::Long(value) => Primitive::Long(value),
                    EvalResult::String(value) => Primitive::String(value),
                    EvalResult::Bool(value) => Primitive::Bool(value),
                    _ => return None,
                };
                Some(Cow::Owned(value))
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

/// Deepest nesting of parenthesised `&&`s followed on the right: a guard
/// needs only the first few tests, and the walk must not recurse as deep
/// as a hostile policy nests.
const MAX_CONJUNCTION_DEPTH: usize = 32;

/// The operands of a tree of `&&`s in Cedar's evaluation order (left to
/// right), each expected to hold. `a && b && c` nests to the left, so the
/// left spine is walked in a loop; past [`MAX_CONJUNCTION_DEPTH`] a nested
/// right-hand conjunction stays whole, which no test matches.
fn conjuncts_of<'a>(expr: &'a Value, into: &mut Vec<(&'a Value, bool)>) {
    conjuncts_within(expr, MAX_CONJUNCTION_DEPTH, into);
}

fn conjuncts_within<'a>(expr: &'a Value, depth: usize, into: &mut Vec<(&'a Value, bool)>) {
    let mut rights = Vec::new();
    let mut leftmost = expr;
    while let Some(("&&", operands)) = single_entry(leftmost)
        && let (Some(left), Some(right)) = (operands.get("left"), operands.get("right"))
    {
        rights.push(right);
        leftmost = left;
    }
    into.push((leftmost, true));
    for right in rights.into_iter().rev() {
        if depth > 0 {
            conjuncts_within(right, depth - 1, into);
        } else {
            into.push((right, true));
        }
    }
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
    fn the_guard_is_the_leading_run_of_comparisons() {
        for no_guard in [
            "permit(principal, action, resource);",
            "permit(principal, action, resource) when { true };",
            "permit(principal, action, resource) when { 1 < 2 && resource.level > 1 };",
            "permit(principal, action, resource) when { context.level > 1 };",
            "permit(principal, action, resource) when { resource has level && resource.level > 1 };",
            "permit(principal, action, resource) unless { resource.level > 1 && true };",
        ] {
            assert!(guard(no_guard).is_none(), "{no_guard}");
        }
        let two = guard(
            "permit(principal, action, resource) when { resource.level > 1 && resource.owner == principal.name } when { false };",
        );
        assert_eq!(two.as_ref().map(|g| g.0.len()), Some(2));
        assert_eq!(
            two,
            guard(
                r#"forbid(principal, action == Action::"x", resource) when { (resource.level > 1 && resource.owner == principal.name) && principal.nope };"#
            ),
            "equal guards group together whatever follows them and whatever the head",
        );
        let across_clauses = guard(
            "permit(principal, action, resource) when { resource.level > 1 } unless { principal.level == 3 } when { resource.nope };",
        );
        assert_eq!(across_clauses.map(|g| g.0.len()), Some(2));
    }

    #[test]
    fn long_and_deeply_nested_conjunctions_are_walked_within_bounds() {
        let chain = vec!["resource.level > 1"; 60].join(" && ");
        let text = format!("permit(principal, action, resource) when {{ {chain} }};");
        assert_eq!(guard(&text).expect("a guard").0.len(), 60);
        let nested = (0..34).fold("resource.level > 1".to_owned(), |inner, _| {
            format!("resource.level > 1 && ({inner})")
        });
        let text = format!("permit(principal, action, resource) when {{ {nested} }};");
        let tests = guard(&text).expect("a guard").0.len();
        assert_eq!(tests, MAX_CONJUNCTION_DEPTH + 1, "the walk stops nesting");
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
    fn a_test_is_reached_only_past_certainly_true_ones() {
        let stops = [
            r#"permit(principal, action, resource) when { resource.level > 1 && resource.owner == "carol" };"#,
            "permit(principal, action, resource) when { resource.level > 1 } unless { principal.level == 3 };",
            "permit(principal, action, resource) when { resource.owner == principal.name && resource.nope };",
        ];
        for text in stops {
            assert!(!may_pass(text, D), "{text}");
        }
        let goes_on = [
            r#"permit(principal, action, resource) when { resource.level > 1 && resource.owner == "bob" };"#,
            r#"permit(principal, action, resource) when { resource.level > 1 && resource.nope == "carol" };"#,
            r#"permit(principal, action, resource) when { resource.nope > 1 && resource.owner == "carol" };"#,
        ];
        for text in goes_on {
            assert!(may_pass(text, D), "{text}");
        }
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
