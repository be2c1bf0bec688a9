//! Searching principals with a backend-neutral [`Predicate`], rendered into
//! parameterised SQL for SQLite or PostgreSQL, with sorting and offset
//! pagination (as SCIM lists need; the predicate knows nothing of SCIM).
//!
//! Every value is bound, never written into the statement. JSON keys come
//! only from `&'static` tables and are checked to be plain names, because
//! they are written into the statement as JSON paths.
//!
//! The logic is two-valued: each comparison is guarded so that a missing or
//! mistyped value makes it false, never SQL `NULL`; `Not` is therefore plain
//! negation, and `Op::Ne` matches principals without the value.

use idplane_core::directory::{Principal, PrincipalKind};
use idplane_core::{TenantId, Timestamp};
use sqlx::Row;

use crate::codec::{Sql, millis};
use crate::principals::{columns, from_row};
use crate::{Backend, Conn, Result, StoreError};

/// The most principals one [`query`] returns.
pub const MAX_LIMIT: u64 = 1000;

/// A value of a principal that predicates compare and sorts order by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Id,
    NameKey,
    DisplayName,
    Email,
    ExternalId,
    Status,
    UserType,
    CreatedAt,
    UpdatedAt,
    /// A scalar inside `attributes`, e.g. &["name", "givenName"] or &["department"].
    Attr(&'static [&'static str]),
}

/// A key of one element of a JSON array in `attributes` (`value`, `type`,
/// `primary`, `display`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementField(pub &'static str);

/// Comparison operators. Text compares by code point; `Co`, `Sw`, `Ew` are
/// for text only; `Bool` supports `Eq` and `Ne` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The value compared against. A comparison between a field and an operand
/// of another type (text against a time column, a number against a JSON
/// string) matches nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Text(String),
    Number(f64),
    Bool(bool),
    Time(Timestamp),
}

/// A condition on principals.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    True,
    False,
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    /// `case_exact == false` compares lower-cased (both sides).
    Compare {
        field: Field,
        op: Op,
        value: Operand,
        case_exact: bool,
    },
    /// The field has a value: not null, not an empty string, array or object.
    Present(Field),
    /// Some element of the JSON array at `attributes.<array>` satisfies `element`, whose
    /// `ElementField`s are relative to the element (`value`, `type`, `primary`, `display`).
    AnyElement {
        array: &'static str,
        element: Box<ElementPredicate>,
    },
    /// Groups: has a member with this id (membership not expired at `now`).
    HasMember(String),
    /// Users: is a direct member of the group with this id (not expired at `now`).
    MemberOf(String),
}

/// A condition on one element of a JSON array; the same semantics as
/// [`Predicate`], over the element's keys.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementPredicate {
    True,
    False,
    And(Vec<ElementPredicate>),
    Or(Vec<ElementPredicate>),
    Not(Box<ElementPredicate>),
    Compare {
        field: ElementField,
        op: Op,
        value: Operand,
        case_exact: bool,
    },
    Present(ElementField),
}

/// An ordering; NULLs (and values of another type) sort last, ties by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub field: Field,
    pub descending: bool,
}

/// SCIM-style offset pagination with the total count of matches: the
/// principals of `kind` in `tenant` that satisfy `predicate`, ordered by
/// `sort` (id when `None`), from the `offset`-th (0-based), at most `limit`
/// of them (capped at [`MAX_LIMIT`]). Memberships count when in force at `now`.
#[allow(
    clippy::too_many_arguments,
    reason = "the signature other layers call; each argument is one plain concern"
)]
pub async fn query(
    conn: &mut impl Conn,
    tenant: TenantId,
    kind: PrincipalKind,
    predicate: &Predicate,
    sort: Option<&Sort>,
    offset: u64,
    limit: u64,
    now: Timestamp,
) -> Result<(u64, Vec<Principal>)> {
    let backend = conn.backend();
    let render = Render { backend, now };

    let mut count = Sql::new(backend, "SELECT COUNT(*) AS n FROM principals WHERE ");
    render.scope(&mut count, tenant, kind, predicate)?;
    let total: i64 = count.query()?.fetch_one(conn.conn()).await?.try_get("n")?;
    let total = u64::try_from(total).unwrap_or(0);
    let limit = limit.min(MAX_LIMIT);
    if limit == 0 || offset >= total {
        return Ok((total, Vec::new()));
    }

    let mut page = Sql::new(
        backend,
        concat!("SELECT ", columns!(), " FROM principals WHERE "),
    );
    render.scope(&mut page, tenant, kind, predicate)?;
    page.push(" ORDER BY ");
    if let Some(sort) = sort {
        let source = render.sort_key(sort.field)?;
        let direction = if sort.descending { " DESC" } else { " ASC" };
        page.push(&format!("({source}) IS NULL, {source}{direction}, "));
    }
    page.push("principals.id LIMIT ")
        .bind(to_i64(limit))
        .push(" OFFSET ")
        .bind(to_i64(offset));
    let rows = page.query()?.fetch_all(conn.conn()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok((total, items))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A field resolved to SQL text without binds.
enum Source {
    Column {
        expr: String,
        millis: bool,
    },
    /// A JSON value: the document and the path expression, per backend.
    Json {
        doc: &'static str,
        path: String,
    },
}

/// Renders predicates for one backend.
#[derive(Clone, Copy)]
struct Render {
    backend: Backend,
    now: Timestamp,
}

/// A JSON key written into a path: plain names only.
fn checked(key: &'static str) -> Result<&'static str> {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(key)
    } else {
        Err(StoreError::InvalidQuery(format!(
            "`{key}` is not a plain JSON key"
        )))
    }
}

impl Render {
    fn scope(
        &self,
        q: &mut Sql,
        tenant: TenantId,
        kind: PrincipalKind,
        predicate: &Predicate,
    ) -> Result<()> {
        q.push("principals.tenant_id = ").bind(tenant.to_string());
        q.push(" AND principals.kind = ").bind(kind.as_str());
        q.push(" AND ");
        self.predicate(q, predicate)
    }

    fn predicate(&self, q: &mut Sql, p: &Predicate) -> Result<()> {
        match p {
            Predicate::True => {
                q.push("1 = 1");
            }
            Predicate::False => {
                q.push("1 = 0");
            }
            Predicate::And(items) => self.join(q, items, " AND ", "1 = 1", Self::predicate)?,
            Predicate::Or(items) => self.join(q, items, " OR ", "1 = 0", Self::predicate)?,
            Predicate::Not(inner) => {
                q.push("NOT (");
                self.predicate(q, inner)?;
                q.push(")");
            }
            Predicate::Compare {
                field,
                op,
                value,
                case_exact,
            } => self.compare(q, &self.field(*field)?, *op, value, *case_exact),
            Predicate::Present(field) => self.present(q, &self.field(*field)?),
            Predicate::AnyElement { array, element } => {
                let array = checked(array)?;
                match self.backend {
                    Backend::Sqlite => q.push(&format!(
                        "EXISTS (SELECT 1 FROM json_each(principals.attributes, '$.{array}') AS e \
                         WHERE json_type(principals.attributes, '$.{array}') = 'array' AND ("
                    )),
                    Backend::Postgres => q.push(&format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN \
                         jsonb_typeof(principals.attributes::jsonb -> '{array}') = 'array' \
                         THEN principals.attributes::jsonb -> '{array}' ELSE '[]'::jsonb END) AS e (value) \
                         WHERE ("
                    )),
                };
                self.element(q, element)?;
                q.push("))");
            }
            Predicate::HasMember(member) => self.membership(q, "group_id", "member_id", member),
            Predicate::MemberOf(group) => self.membership(q, "member_id", "group_id", group),
        }
        Ok(())
    }

    fn element(&self, q: &mut Sql, p: &ElementPredicate) -> Result<()> {
        match p {
            ElementPredicate::True => {
                q.push("1 = 1");
            }
            ElementPredicate::False => {
                q.push("1 = 0");
            }
            ElementPredicate::And(items) => self.join(q, items, " AND ", "1 = 1", Self::element)?,
            ElementPredicate::Or(items) => self.join(q, items, " OR ", "1 = 0", Self::element)?,
            ElementPredicate::Not(inner) => {
                q.push("NOT (");
                self.element(q, inner)?;
                q.push(")");
            }
            ElementPredicate::Compare {
                field,
                op,
                value,
                case_exact,
            } => self.compare(q, &self.element_field(*field)?, *op, value, *case_exact),
            ElementPredicate::Present(field) => self.present(q, &self.element_field(*field)?),
        }
        Ok(())
    }

    fn join<T>(
        &self,
        q: &mut Sql,
        items: &[T],
        separator: &str,
        empty: &str,
        each: fn(&Self, &mut Sql, &T) -> Result<()>,
    ) -> Result<()> {
        if items.is_empty() {
            q.push(empty);
            return Ok(());
        }
        q.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                q.push(separator);
            }
            each(self, q, item)?;
        }
        q.push(")");
        Ok(())
    }

    fn membership(&self, q: &mut Sql, own: &str, other: &str, id: &str) {
        q.push(&format!(
            "EXISTS (SELECT 1 FROM memberships m WHERE m.{own} = principals.id AND m.{other} = "
        ))
        .bind(id.to_owned())
        .push(" AND (m.expires_at IS NULL OR m.expires_at > ")
        .bind(millis(self.now))
        .push("))");
    }

    fn field(&self, field: Field) -> Result<Source> {
        let column = |name: &str, millis| Source::Column {
            expr: format!("principals.{name}"),
            millis,
        };
        Ok(match field {
            Field::Id => column("id", false),
            Field::NameKey => column("name_key", false),
            Field::DisplayName => column("display_name", false),
            Field::Email => column("email", false),
            Field::ExternalId => column("external_id", false),
            Field::Status => column("status", false),
            Field::UserType => column("user_type", false),
            Field::CreatedAt => column("created_at", true),
            Field::UpdatedAt => column("updated_at", true),
            Field::Attr(keys) => {
                if keys.is_empty() {
                    return Err(StoreError::InvalidQuery("an empty attribute path".into()));
                }
                let keys = keys
                    .iter()
                    .map(|k| checked(k))
                    .collect::<Result<Vec<_>>>()?;
                let (doc, path) = match self.backend {
                    Backend::Sqlite => ("principals.attributes", format!("'$.{}'", keys.join("."))),
                    Backend::Postgres => (
                        "principals.attributes::jsonb",
                        format!("'{{{}}}'", keys.join(",")),
                    ),
                };
                Source::Json { doc, path }
            }
        })
    }

    /// A key of the current element `e` of an `AnyElement`.
    fn element_field(&self, field: ElementField) -> Result<Source> {
        let key = checked(field.0)?;
        Ok(match self.backend {
            // `e.value` of a scalar element is not JSON text: address the
            // element through the document instead.
            Backend::Sqlite => Source::Json {
                doc: "principals.attributes",
                path: format!("e.fullkey || '.{key}'"),
            },
            Backend::Postgres => Source::Json {
                doc: "e.value",
                path: format!("'{{{key}}}'"),
            },
        })
    }

    /// The expression of a JSON value when it has the type of `operand`,
    /// else NULL.
    fn typed(&self, doc: &str, path: &str, operand: &Operand) -> Option<String> {
        Some(match (self.backend, operand) {
            (_, Operand::Text(_)) => self.json_text(doc, path),
            (Backend::Sqlite, Operand::Number(_)) => format!(
                "CASE WHEN json_type({doc}, {path}) IN ('integer', 'real') \
                 THEN json_extract({doc}, {path}) END"
            ),
            (Backend::Sqlite, Operand::Bool(_)) => {
                format!("CASE json_type({doc}, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END")
            }
            (Backend::Postgres, Operand::Number(_)) => format!(
                "CASE WHEN jsonb_typeof({doc} #> {path}) = 'number' \
                 THEN ({doc} #>> {path})::float8 END"
            ),
            (Backend::Postgres, Operand::Bool(_)) => format!(
                "CASE WHEN jsonb_typeof({doc} #> {path}) = 'boolean' \
                 THEN ({doc} #>> {path})::boolean END"
            ),
            (_, Operand::Time(_)) => return None,
        })
    }

    /// A JSON value when it is a string, else NULL.
    fn json_text(&self, doc: &str, path: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!(
                "CASE WHEN json_type({doc}, {path}) = 'text' THEN json_extract({doc}, {path}) END"
            ),
            Backend::Postgres => format!(
                "CASE WHEN jsonb_typeof({doc} #> {path}) = 'string' THEN {doc} #>> {path} END"
            ),
        }
    }

    /// The expression to order by: text lower-cased (by code point on
    /// PostgreSQL too, as on SQLite), JSON values only when they are strings.
    fn sort_key(&self, field: Field) -> Result<String> {
        let text = match self.field(field)? {
            Source::Column { expr, millis: true } => return Ok(expr),
            Source::Column { expr, .. } => expr,
            Source::Json { doc, path } => self.json_text(doc, &path),
        };
        Ok(match self.backend {
            Backend::Sqlite => format!("lower({text})"),
            Backend::Postgres => format!("lower({text}) COLLATE \"C\""),
        })
    }

    fn compare(&self, q: &mut Sql, source: &Source, op: Op, value: &Operand, exact: bool) {
        let expr = match (source, value) {
            (
                Source::Column {
                    expr,
                    millis: false,
                },
                Operand::Text(_),
            )
            | (Source::Column { expr, millis: true }, Operand::Time(_)) => Some(expr.clone()),
            (Source::Json { doc, path }, _) => self.typed(doc, path, value),
            (Source::Column { .. }, _) => None,
        };
        let Some(expr) = expr else {
            // A type mismatch: never equal, so always "not equal".
            q.push(if op == Op::Ne { "1 = 1" } else { "1 = 0" });
            return;
        };
        if op == Op::Ne {
            q.push("NOT ");
            self.compare_with(q, &expr, Op::Eq, value, exact);
        } else {
            self.compare_with(q, &expr, op, value, exact);
        }
    }

    /// `(expr IS NOT NULL AND expr op value)`: false, not NULL, when the
    /// value is missing.
    fn compare_with(&self, q: &mut Sql, expr: &str, op: Op, value: &Operand, exact: bool) {
        q.push(&format!("({expr} IS NOT NULL AND "));
        match value {
            Operand::Text(text) => self.compare_text(q, expr, op, text, exact),
            Operand::Number(n) => {
                if let Some(sql_op) = ordering(op) {
                    q.push(&format!("{expr} {sql_op} ")).bind(*n);
                } else {
                    q.push("1 = 0");
                }
            }
            Operand::Time(t) => {
                if let Some(sql_op) = ordering(op) {
                    q.push(&format!("{expr} {sql_op} ")).bind(millis(*t));
                } else {
                    q.push("1 = 0");
                }
            }
            Operand::Bool(b) => {
                if op == Op::Eq {
                    q.push(&format!("{expr} = ")).bind(*b);
                } else {
                    q.push("1 = 0");
                }
            }
        }
        q.push(")");
    }

    fn compare_text(&self, q: &mut Sql, expr: &str, op: Op, text: &str, exact: bool) {
        let (x, v) = if exact {
            (expr.to_owned(), "")
        } else {
            (format!("lower({expr})"), "lower")
        };
        // The value's placeholder, pushed as many times as the form needs.
        let bind = |q: &mut Sql| {
            q.push(v).push("(").bind(text.to_owned()).push(")");
        };
        let sqlite = self.backend == Backend::Sqlite;
        match op {
            Op::Co | Op::Sw => {
                q.push(if sqlite { "instr(" } else { "strpos(" })
                    .push(&x)
                    .push(", ");
                bind(q);
                q.push(if op == Op::Co { ") > 0" } else { ") = 1" });
            }
            Op::Ew => {
                if sqlite {
                    q.push(&format!("substr({x}, length({x}) - length("));
                    bind(q);
                    q.push(") + 1) = ");
                } else {
                    q.push(&format!("right({x}, length("));
                    bind(q);
                    q.push(")) = ");
                }
                bind(q);
            }
            _ => {
                let Some(sql_op) = ordering(op) else {
                    q.push("1 = 0");
                    return;
                };
                // PostgreSQL orders by the database's collation: use code points.
                let collate = if sqlite || matches!(op, Op::Eq | Op::Ne) {
                    ""
                } else {
                    " COLLATE \"C\""
                };
                q.push(&format!("{x}{collate} {sql_op} "));
                bind(q);
            }
        }
    }

    fn present(&self, q: &mut Sql, source: &Source) {
        let sql = match (source, self.backend) {
            (
                Source::Column {
                    expr,
                    millis: false,
                },
                _,
            ) => {
                format!("({expr} IS NOT NULL AND {expr} <> '')")
            }
            (Source::Column { expr, millis: true }, _) => format!("{expr} IS NOT NULL"),
            (Source::Json { doc: d, path: p }, Backend::Sqlite) => format!(
                "(json_type({d}, {p}) IS NOT NULL AND CASE json_type({d}, {p}) \
                 WHEN 'null' THEN 0 WHEN 'text' THEN json_extract({d}, {p}) <> '' \
                 WHEN 'array' THEN json_array_length({d}, {p}) > 0 \
                 WHEN 'object' THEN json_extract({d}, {p}) <> '{{}}' ELSE 1 END)"
            ),
            (Source::Json { doc: d, path: p }, Backend::Postgres) => format!(
                "(({d} #> {p}) IS NOT NULL AND CASE jsonb_typeof({d} #> {p}) \
                 WHEN 'null' THEN FALSE WHEN 'string' THEN ({d} #>> {p}) <> '' \
                 WHEN 'array' THEN jsonb_array_length({d} #> {p}) > 0 \
                 WHEN 'object' THEN ({d} #> {p}) <> '{{}}'::jsonb ELSE TRUE END)"
            ),
        };
        q.push(&sql);
    }
}

/// The SQL operator of an ordering comparison; `None` for substring ones.
fn ordering(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co | Op::Sw | Op::Ew => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planners use an expression index only for the very expression
    /// indexed, so the department filter must render the migrations' one.
    #[test]
    fn department_filter_renders_the_indexed_expression() {
        let migrations = [
            (
                Backend::Sqlite,
                include_str!("../migrations/sqlite/0010_attribute_indexes.sql"),
            ),
            (
                Backend::Postgres,
                include_str!("../migrations/postgres/0010_attribute_indexes.sql"),
            ),
        ];
        for (backend, migration) in migrations {
            let indexed = migration
                .split_once("kind,")
                .and_then(|(_, rest)| rest.trim().strip_suffix(");"))
                .unwrap();
            let render = Render {
                backend,
                now: Timestamp::UNIX_EPOCH,
            };
            let mut q = Sql::new(backend, "");
            let department = Predicate::Compare {
                field: Field::Attr(&["department"]),
                op: Op::Eq,
                value: Operand::Text("R&D".into()),
                case_exact: false,
            };
            render.predicate(&mut q, &department).unwrap();
            let rendered = q.text().replace("principals.", "");
            assert!(
                rendered.contains(&format!("{indexed} = lower(")),
                "{backend:?}: `{rendered}` does not compare `{indexed}`"
            );
        }
    }
}
