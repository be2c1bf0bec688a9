//! HR as the source of truth: a CSV snapshot of the whole workforce, read
//! through a declared column mapping, planned (see `hr_plan`) and applied in
//! one transaction, all or nothing; and the leavers report that shows how
//! soon each leaver lost access.

use std::collections::BTreeMap;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, UserType};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::lifecycle::{self as store, HrChange};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Conn, Page};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::birthright::Birthright;
use super::hr_plan::{Directory, ImportPlan, RowError, Step, plan};
use super::{LeaverCause, LeaverReason, stage_leaver};
use crate::directory::principals::stage_principals;
use crate::{App, Result};

/// Leavers whose account took longer than this to close are flagged.
pub const SAME_DAY: SignedDuration = SignedDuration::from_hours(24);

/// Which CSV column holds each field. Only `employee_id` and `username`
/// are required; a field whose column is not mapped is left as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HrMapping {
    pub employee_id: String,
    pub username: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub manager_employee_id: Option<String>,
    pub user_type: Option<String>,
    /// `YYYY-MM-DD` (the day access starts, 00:00 UTC) or RFC 3339.
    pub start_date: Option<String>,
    /// Contractors: `YYYY-MM-DD` (the last day of the engagement) or RFC 3339.
    pub end_date: Option<String>,
    /// `YYYY-MM-DD` (from that day, 00:00 UTC, the person no longer works
    /// here) or RFC 3339.
    pub termination_date: Option<String>,
    pub sponsor_employee_id: Option<String>,
    pub cost_center: Option<String>,
    pub division: Option<String>,
    pub organization: Option<String>,
    /// More attributes: attribute name to column.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The file's user type values (case-insensitive) to `employee` or
    /// `contractor`; without it the file must say `employee` or `contractor`.
    #[serde(default)]
    pub user_types: BTreeMap<String, UserType>,
}

/// Which optional columns a row's mapping has.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mapped {
    pub names: bool,
    pub display_name: bool,
    pub email: bool,
    pub manager: bool,
    pub sponsor: bool,
    pub end_date: bool,
}

/// One data row, its cells read and typed (empty cells are `None`).
#[derive(Clone, Debug)]
pub(crate) struct HrRow {
    pub line: u64,
    pub employee_id: String,
    pub username: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub manager: Option<String>,
    pub sponsor: Option<String>,
    pub user_type: Option<UserType>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub termination: Option<Timestamp>,
    /// SCIM attribute name to value (`None`: the cell is empty).
    pub attributes: Vec<(String, Option<String>)>,
    pub mapped: Mapped,
}

impl HrRow {
    pub(crate) fn error(&self, message: String) -> RowError {
        RowError {
            line: self.line,
            employee_id: Some(self.employee_id.clone()).filter(|e| !e.is_empty()),
            message,
        }
    }
}

/// Reads the CSV: rows, and the errors of rows that could not be read.
/// A file that is not UTF-8, or whose header lacks a mapped column, is
/// refused outright.
pub(crate) fn read_csv(
    data: &[u8],
    mapping: &HrMapping,
) -> Result<(Vec<HrRow>, Vec<RowError>), ValidationError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let header = reader
        .byte_headers()
        .map_err(|e| ValidationError::new("csv", format!("the header cannot be read: {e}")))?
        .clone();
    let header: Vec<String> = header
        .iter()
        .map(|cell| {
            std::str::from_utf8(cell)
                .map(|c| c.trim().to_owned())
                .map_err(|_| not_utf8(1))
        })
        .collect::<Result<_, _>>()?;
    let columns = Columns::new(mapping, &header)?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            ValidationError::new("csv", format!("line {line}: {e}"))
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let mut cells = Vec::with_capacity(record.len());
        for cell in &record {
            cells.push(std::str::from_utf8(cell).map_err(|_| not_utf8(line))?);
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if cells.len() != header.len() {
            errors.push(RowError {
                line,
                employee_id: None,
                message: format!(
                    "{} fields, but the header has {}",
                    cells.len(),
                    header.len()
                ),
            });
            continue;
        }
        match columns.row(line, &cells, mapping) {
            Ok(row) => rows.push(row),
            Err(e) => errors.extend(e),
        }
    }
    Ok((rows, errors))
}

fn not_utf8(line: u64) -> ValidationError {
    ValidationError::new(
        "csv",
        format!("not UTF-8 at line {line}: export the file as UTF-8"),
    )
}

/// Column positions of the mapped fields.
struct Columns {
    employee_id: usize,
    username: usize,
    optional: BTreeMap<&'static str, usize>,
    attributes: Vec<(String, usize)>,
}

impl Columns {
    fn new(mapping: &HrMapping, header: &[String]) -> Result<Self, ValidationError> {
        let mut missing = Vec::new();
        let mut find = |column: &str| {
            let at = header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(column.trim()));
            if at.is_none() {
                missing.push(format!("`{column}`"));
            }
            at.unwrap_or(0)
        };
        let employee_id = find(&mapping.employee_id);
        let username = find(&mapping.username);
        let mut optional = BTreeMap::new();
        for (field, column) in [
            ("email", &mapping.email),
            ("given_name", &mapping.given_name),
            ("family_name", &mapping.family_name),
            ("display_name", &mapping.display_name),
            ("department", &mapping.department),
            ("title", &mapping.title),
            ("manager_employee_id", &mapping.manager_employee_id),
            ("user_type", &mapping.user_type),
            ("start_date", &mapping.start_date),
            ("end_date", &mapping.end_date),
            ("termination_date", &mapping.termination_date),
            ("sponsor_employee_id", &mapping.sponsor_employee_id),
            ("cost_center", &mapping.cost_center),
            ("division", &mapping.division),
            ("organization", &mapping.organization),
        ] {
            if let Some(column) = column {
                optional.insert(field, find(column));
            }
        }
        let attributes = mapping
            .attributes
            .iter()
            .map(|(name, column)| (name.clone(), find(column)))
            .collect();
        if !missing.is_empty() {
            return Err(ValidationError::new(
                "csv",
                format!(
                    "the header lacks column(s) the mapping names: {}; the file has {}",
                    missing.join(", "),
                    header
                        .iter()
                        .map(|h| format!("`{h}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(Self {
            employee_id,
            username,
            optional,
            attributes,
        })
    }

    fn row(&self, line: u64, cells: &[&str], mapping: &HrMapping) -> Result<HrRow, Vec<RowError>> {
        let cell = |i: usize| {
            Some(cells[i].trim())
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
        };
        let field = |name: &str| self.optional.get(name).and_then(|&i| cell(i));
        let mut row = HrRow {
            line,
            employee_id: cell(self.employee_id).unwrap_or_default(),
            username: cell(self.username).unwrap_or_default(),
            email: field("email"),
            given_name: field("given_name"),
            family_name: field("family_name"),
            display_name: field("display_name"),
            manager: field("manager_employee_id"),
            sponsor: field("sponsor_employee_id"),
            user_type: None,
            start: None,
            end: None,
            termination: None,
            attributes: Vec::new(),
            mapped: Mapped {
                names: self.optional.contains_key("given_name")
                    || self.optional.contains_key("family_name"),
                display_name: ["display_name", "given_name", "family_name"]
                    .iter()
                    .any(|f| self.optional.contains_key(f)),
                email: self.optional.contains_key("email"),
                manager: self.optional.contains_key("manager_employee_id"),
                sponsor: self.optional.contains_key("sponsor_employee_id"),
                end_date: self.optional.contains_key("end_date"),
            },
        };
        let mut errors = Vec::new();
        if row.employee_id.is_empty() {
            errors.push(row.error("the employee id is empty".to_owned()));
        }
        if row.username.is_empty() {
            errors.push(row.error("the username is empty".to_owned()));
        }
        if let Some(value) = field("user_type") {
            row.user_type = user_type(&value, mapping);
            if row.user_type.is_none() {
                errors.push(row.error(format!(
                    "user type `{value}` is not mapped to employee or contractor"
                )));
            }
        }
        for (name, slot, end_of_day) in [
            ("start_date", &mut row.start, false),
            ("end_date", &mut row.end, true),
            ("termination_date", &mut row.termination, false),
        ] {
            if let Some(value) = field(name) {
                match date(&value, end_of_day) {
                    Some(t) => *slot = Some(t),
                    None => errors.push(RowError {
                        line,
                        employee_id: Some(row.employee_id.clone()).filter(|e| !e.is_empty()),
                        message: format!("{name} `{value}` is not a date (YYYY-MM-DD or RFC 3339)"),
                    }),
                }
            }
        }
        for (field_name, attribute) in [
            ("department", "department"),
            ("title", "title"),
            ("cost_center", "costCenter"),
            ("division", "division"),
            ("organization", "organization"),
        ] {
            if self.optional.contains_key(field_name) {
                row.attributes
                    .push((attribute.to_owned(), field(field_name)));
            }
        }
        for (name, i) in &self.attributes {
            row.attributes.push((name.clone(), cell(*i)));
        }
        if errors.is_empty() {
            Ok(row)
        } else {
            Err(errors)
        }
    }
}

fn user_type(value: &str, mapping: &HrMapping) -> Option<UserType> {
    mapping
        .user_types
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(value))
        .map(|(_, t)| *t)
        .or_else(|| UserType::parse(&value.to_ascii_lowercase()))
}

/// A calendar day (UTC) or an RFC 3339 instant. A day that ends something
/// (`end_of_day`) is exclusive of the next day's start.
fn date(value: &str, end_of_day: bool) -> Option<Timestamp> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Some(t);
    }
    let day: jiff::civil::Date = value.parse().ok()?;
    let day = if end_of_day {
        day.tomorrow().ok()?
    } else {
        day
    };
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// What an import did or would do.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ImportOutcome {
    /// Set when the import was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
    pub applied: bool,
    pub plan: ImportPlan,
}

/// A leaver and how soon their account closed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LeaverReport {
    pub employee_id: String,
    #[schema(value_type = String)]
    pub user_id: PrincipalId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub hr_change: String,
    /// When HR says they left (the termination date), if it said.
    #[schema(value_type = Option<String>)]
    pub terminated_at: Option<Timestamp>,
    /// When idplane received the HR data.
    #[schema(value_type = String)]
    pub received_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub deprovisioned_at: Option<Timestamp>,
    /// From termination (or receipt, if HR gave no date) to deprovisioned.
    pub elapsed_seconds: Option<i64>,
    /// Took longer than 24 hours, or is not deprovisioned yet.
    pub over_24h: bool,
}

impl App {
    /// Plans an HR snapshot and, unless `dry_run`, applies it in one
    /// transaction. Nothing is written when any row is wrong, or when the
    /// leavers exceed the tenant's share and `force` is not given: the
    /// outcome's plan says why.
    pub async fn hr_import(
        &self,
        ctx: &Ctx,
        csv: &[u8],
        mapping: &HrMapping,
        dry_run: bool,
        force: bool,
    ) -> Result<ImportOutcome> {
        let (rows, read_errors) = read_csv(csv, mapping)?;
        if dry_run {
            let mut conn = self.store().read().await?;
            let rules = Birthright::load(&mut conn, ctx.tenant).await?;
            let (plan, _) = plan_in(&mut conn, ctx, &rules, &rows, read_errors, force).await?;
            return Ok(ImportOutcome {
                import_id: None,
                applied: false,
                plan,
            });
        }
        let mut tx = self.store().write().await?;
        let rules = Birthright::load(&mut tx, ctx.tenant).await?;
        let (plan, steps) = plan_in(&mut tx, ctx, &rules, &rows, read_errors, force).await?;
        if plan.refused.is_some() {
            return Ok(ImportOutcome {
                import_id: None,
                applied: false,
                plan,
            });
        }
        let import_id = uuid::Uuid::now_v7().to_string();
        let mut events = Vec::new();
        let mut notices = Vec::new();
        let mut changes = Vec::new();
        let mut record =
            |change_id: String, employee_id, principal_id, kind: &str, effective_at| {
                let leaver = kind == "leaver";
                changes.push(HrChange {
                    id: change_id,
                    tenant_id: ctx.tenant,
                    import_id: import_id.clone(),
                    employee_id,
                    principal_id,
                    kind: kind.to_owned(),
                    effective_at,
                    received_at: ctx.now,
                    applied_at: Some(ctx.now),
                    deprovisioned_at: leaver.then_some(ctx.now),
                });
            };
        let mut steps = steps.into_iter().peekable();
        while let Some(step) = steps.next() {
            let (change_id, employee_id, user_id, kind, effective_at, mut staged) = match step {
                Step::Join { user, employee_id } => {
                    // A run of joiners goes in together: a few statements
                    // for all of them rather than several for each.
                    let mut joiners = vec![(user, employee_id)];
                    while let Some(Step::Join { user, employee_id }) =
                        steps.next_if(|s| matches!(s, Step::Join { .. }))
                    {
                        joiners.push((user, employee_id));
                    }
                    let (users, employee_ids): (Vec<Principal>, Vec<String>) =
                        joiners.into_iter().unzip();
                    let staged = stage_principals(&mut tx, ctx, &users, Some(&rules)).await?;
                    for ((user, employee_id), mut staged) in
                        users.iter().zip(employee_ids).zip(staged)
                    {
                        let change_id = uuid::Uuid::now_v7().to_string();
                        tag(&mut staged, &change_id);
                        events.extend(staged);
                        record(change_id, employee_id, user.id, "joiner", None);
                    }
                    continue;
                }
                Step::Replace {
                    current,
                    next,
                    employee_id,
                    kind,
                } => {
                    let id = current.id;
                    let staged = self
                        .stage_replace(&mut tx, ctx, &current, *next, Some(&rules))
                        .await?;
                    notices.extend(staged.notices);
                    let change_id = uuid::Uuid::now_v7().to_string();
                    (change_id, employee_id, id, kind, None, staged.events)
                }
                Step::Leave {
                    current,
                    employee_id,
                    termination,
                } => {
                    // The whole leaver pipeline, linked to this HR change.
                    let change_id = uuid::Uuid::now_v7().to_string();
                    let cause = LeaverCause {
                        reason: LeaverReason::HrTermination,
                        hr_change_id: Some(change_id.clone()),
                    };
                    let left = stage_leaver(self, &mut tx, ctx, &current, &cause).await?;
                    notices.extend(left.notices);
                    (
                        change_id,
                        employee_id,
                        current.id,
                        "leaver",
                        termination,
                        left.events,
                    )
                }
            };
            tag(&mut staged, &change_id);
            events.extend(staged);
            record(change_id, employee_id, user_id, kind, effective_at);
        }
        store::insert_changes(&mut tx, &changes).await?;
        events.push(
            AuditEvent::new(ctx, "hr.import", Some(format!("tenant:{}", ctx.tenant))).with_details(
                json!({
                    "import": import_id,
                    "rows": plan.rows,
                    "joiners": plan.joiners.len(),
                    "movers": plan.movers.len(),
                    "leavers": plan.leavers.len(),
                    "rehires": plan.rehires.len(),
                    "unchanged": plan.unchanged,
                    "forced": force && plan.leaver_share > plan.max_leaver_share,
                }),
            ),
        );
        tx.commit_all(events).await?;
        self.directory_changed();
        self.notify_logout(ctx, notices);
        Ok(ImportOutcome {
            import_id: Some(import_id),
            applied: true,
            plan,
        })
    }

    /// Leavers received since `since`, with how soon each account closed.
    pub async fn leavers_report(&self, ctx: &Ctx, since: Timestamp) -> Result<Vec<LeaverReport>> {
        let mut conn = self.store().read().await?;
        let changes = store::changes(&mut conn, ctx.tenant, "leaver", since).await?;
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let username = principals::by_id(&mut conn, ctx.tenant, c.principal_id)
                .await?
                .map(|p| p.name);
            let from = c.effective_at.unwrap_or(c.received_at);
            let elapsed = c
                .deprovisioned_at
                .map(|d| d.duration_since(from).as_secs().max(0));
            out.push(LeaverReport {
                employee_id: c.employee_id,
                user_id: c.principal_id,
                username,
                hr_change: c.id,
                terminated_at: c.effective_at,
                received_at: c.received_at,
                deprovisioned_at: c.deprovisioned_at,
                elapsed_seconds: elapsed,
                over_24h: elapsed.is_none_or(|s| s > SAME_DAY.as_secs()),
            });
        }
        Ok(out)
    }
}

/// Plans against the directory as `conn` sees it, and decides whether the
/// plan may be applied.
async fn plan_in(
    conn: &mut impl Conn,
    ctx: &Ctx,
    rules: &Birthright,
    rows: &[HrRow],
    read_errors: Vec<RowError>,
    force: bool,
) -> Result<(ImportPlan, Vec<Step>)> {
    let dir = Directory::new(all_users(conn, ctx).await?);
    let (mut plan, steps) = plan(ctx.tenant, rows, &dir, rules, ctx.now);
    plan.errors.extend(read_errors);
    plan.errors.sort_by_key(|e| e.line);
    plan.rows += plan
        .errors
        .iter()
        .filter(|e| e.employee_id.is_none())
        .count();
    if !plan.errors.is_empty() {
        plan.refused = Some(format!(
            "{} row error(s): fix the file and import it again; nothing was written",
            plan.errors.len()
        ));
    } else if plan.leaver_share > plan.max_leaver_share && !force {
        plan.refused = Some(format!(
            "{} leavers are {:.1} % of the HR-managed workforce of {}, over the limit of {:.1} %: \
             check the file, or force the import",
            plan.leavers.len(),
            plan.leaver_share * 100.0,
            plan.workforce,
            plan.max_leaver_share * 100.0
        ));
    }
    Ok((plan, steps))
}

/// Every user of the tenant, page by page.
async fn all_users(conn: &mut impl Conn, ctx: &Ctx) -> Result<Vec<Principal>> {
    let filter = PrincipalFilter {
        kind: Some(PrincipalKind::User),
        ..PrincipalFilter::default()
    };
    let mut users = Vec::new();
    let mut page = Page {
        after: None,
        limit: 1000,
    };
    loop {
        let got = principals::list(conn, ctx.tenant, &filter, &page).await?;
        page.after = got.items.last().map(|p| p.id.to_string());
        users.extend(got.items);
        if !got.more {
            return Ok(users);
        }
    }
}

/// Marks each event of one lifecycle step with its HR change id.
fn tag(events: &mut [AuditEvent], change_id: &str) {
    for event in events {
        match &mut event.details {
            Value::Object(map) => {
                map.insert("hr_change".to_owned(), Value::from(change_id));
            }
            other => *other = json!({"hr_change": change_id}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> HrMapping {
        HrMapping {
            employee_id: "Employee ID".into(),
            username: "Login".into(),
            department: Some("Dept".into()),
            ..HrMapping::default()
        }
    }

    #[test]
    fn a_bom_is_accepted_and_cells_are_trimmed() {
        let csv = b"\xEF\xBB\xBFEmployee ID,Login,Dept\nE1, ada ,Sales\n";
        let (rows, errors) = read_csv(csv, &mapping()).unwrap();
        assert!(errors.is_empty());
        assert_eq!(rows[0].username, "ada");
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn non_utf8_is_refused_with_its_line() {
        let csv = b"Employee ID,Login,Dept\nE1,ada,Sales\nE2,b\xe9a,Sales\n";
        let err = read_csv(csv, &mapping()).unwrap_err();
        assert_eq!(err.message, "not UTF-8 at line 3: export the file as UTF-8");
    }

    #[test]
    fn missing_columns_are_named() {
        let err = read_csv(b"Employee ID,Name\nE1,ada\n", &mapping()).unwrap_err();
        assert!(err.message.contains("`Login`"), "{}", err.message);
        assert!(err.message.contains("`Dept`"), "{}", err.message);
    }

    #[test]
    fn dates_are_days_or_instants() {
        let day = date("2026-03-10", false).unwrap();
        assert_eq!(day.to_string(), "2026-03-10T00:00:00Z");
        assert_eq!(
            date("2026-03-10", true).unwrap().to_string(),
            "2026-03-11T00:00:00Z"
        );
        assert!(date("10/03/2026", false).is_none());
        assert!(date("2026-03-10T12:00:00Z", false).is_some());
    }
}
