//! SCIM `User` resources ↔ directory users.
//!
//! The columns of a user carry `userName`, `displayName`, `externalId`,
//! `active`, the primary email and the lifecycle dates; every other SCIM
//! attribute (name, emails, phone numbers, addresses, the enterprise
//! extension, ...) is kept in the user's attributes under its SCIM name, so
//! birthright rules and policies read `department` or `title` directly.

use idplane_core::directory::{
    Principal, PrincipalKind, Status, UserType, normalize_email, normalize_external_id,
    normalize_name, normalize_text,
};
use idplane_core::{Ctx, PrincipalId, Timestamp};
use idplane_store::{Conn, principals};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{Checked, ResourceType, check_resource};
use super::{ENTERPRISE_USER, LIFECYCLE_USER, USER, meta, parse_id};
use crate::directory::principals::check_attributes;

/// The attribute keys SCIM manages: a replace rewrites exactly these and
/// leaves any other attribute of the user alone.
pub(crate) const MANAGED_KEYS: &[&str] = &[
    "name",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "emails",
    "phoneNumbers",
    "addresses",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
];

/// Core attributes stored as user attributes verbatim.
const CORE_KEPT: &[&str] = &[
    "name",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "emails",
    "phoneNumbers",
    "addresses",
];

/// Enterprise attributes stored as user attributes verbatim (`manager` is
/// kept as the manager's id).
const ENTERPRISE_KEPT: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

/// What a SCIM `User` body says, in directory terms.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UserFields {
    pub user_name: String,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub active: Option<bool>,
    pub password: Option<String>,
    pub user_type: UserType,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub sponsor: Option<PrincipalId>,
    /// The SCIM-managed attributes (see [`MANAGED_KEYS`]).
    pub attributes: Map<String, Value>,
}

impl UserFields {
    /// Reads a create or replace body.
    pub fn from_body(body: &Value) -> Result<Self, ScimError> {
        Self::from_checked(check_resource(ResourceType::User, body)?)
    }

    pub fn from_checked(checked: Checked) -> Result<Self, ScimError> {
        let core = &checked.core;
        let text = |key: &str| core.get(key).and_then(Value::as_str).map(str::to_owned);
        let user_name = text("userName")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ScimError::invalid_value("`userName` is required"))?;
        let mut attributes = Map::new();
        for key in CORE_KEPT {
            if let Some(v) = core.get(*key) {
                attributes.insert((*key).to_owned(), v.clone());
            }
        }
        if let Some(ent) = checked.extension(ENTERPRISE_USER) {
            for key in ENTERPRISE_KEPT {
                if let Some(v) = ent.get(*key) {
                    attributes.insert((*key).to_owned(), v.clone());
                }
            }
            if let Some(manager) = ent.get("manager").and_then(reference_id) {
                attributes.insert("manager".into(), Value::String(manager.to_string()));
            }
        }
        let life = checked.extension(LIFECYCLE_USER);
        let date = |key: &str| {
            life.and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(|s| s.parse::<Timestamp>())
                .transpose()
                .map_err(|_| ScimError::invalid_value(format!("`{key}` must be an RFC 3339 time")))
        };
        let sponsor = life.and_then(|l| l.get("sponsor")).and_then(reference_id);
        // A random or free-form userType is kept as given; only "Contractor"
        // makes a contractor.
        let user_type = match text("userType") {
            Some(t) if t.eq_ignore_ascii_case("contractor") => UserType::Contractor,
            _ => UserType::Employee,
        };
        Ok(Self {
            email: primary_email(core.get("emails")),
            display_name: text("displayName"),
            external_id: text("externalId"),
            active: core.get("active").and_then(Value::as_bool),
            password: text("password"),
            user_type,
            start_date: date("startDate")?,
            end_date: date("endDate")?,
            sponsor,
            attributes: check_attributes(attributes)
                .map_err(|e| ScimError::invalid_value(e.to_string()))?,
            user_name,
        })
    }

    /// A new user from these fields.
    pub fn to_new_user(&self, ctx: &Ctx) -> Result<Principal, ScimError> {
        let base = super::blank(ctx, PrincipalKind::User);
        let mut user = self.apply_to(&base)?;
        // A user provisioned inactive has nothing to revoke yet: suspended.
        if self.active == Some(false) {
            user.status = Status::Suspended;
        }
        Ok(user)
    }

    /// `current` with these fields replacing everything SCIM manages.
    pub fn apply_to(&self, current: &Principal) -> Result<Principal, ScimError> {
        let invalid = |e: idplane_core::ValidationError| ScimError::invalid_value(e.to_string());
        let mut attributes = current.attributes.clone();
        attributes.retain(|k, _| !MANAGED_KEYS.contains(&k.as_str()));
        attributes.extend(self.attributes.clone());
        let status = match (self.active, current.status) {
            (Some(false), Status::Active) => Status::Deprovisioned,
            (Some(true), _) => Status::Active,
            (_, status) => status,
        };
        Ok(Principal {
            name: normalize_name("userName", &self.user_name).map_err(invalid)?,
            display_name: normalize_text("displayName", self.display_name.as_deref())
                .map_err(invalid)?,
            email: self
                .email
                .as_deref()
                .map(normalize_email)
                .transpose()
                .map_err(invalid)?,
            external_id: normalize_external_id(self.external_id.as_deref()).map_err(invalid)?,
            status,
            user_type: Some(self.user_type),
            start_date: self.start_date,
            end_date: self.end_date,
            sponsor_id: self.sponsor,
            attributes: check_attributes(attributes).map_err(invalid)?,
            ..current.clone()
        })
    }
}

/// The id in a `{"value": id}` reference, or a bare id string (Microsoft
/// Entra sends the manager as a string in PATCH).
fn reference_id(v: &Value) -> Option<PrincipalId> {
    let id = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("value").and_then(Value::as_str)?,
        _ => return None,
    };
    id.parse().ok()
}

/// The primary email, else the first work email, else the first.
fn primary_email(emails: Option<&Value>) -> Option<String> {
    let emails = emails?.as_array()?;
    let value = |e: &Value| e.get("value").and_then(Value::as_str).map(str::to_owned);
    emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            emails
                .iter()
                .find(|e| e.get("type") == Some(&json!("work")))
        })
        .or_else(|| emails.first())
        .and_then(value)
}

/// The SCIM representation of a user (every attribute returned by default).
pub(crate) async fn to_resource(
    conn: &mut impl Conn,
    ctx: &Ctx,
    base: &str,
    user: &Principal,
) -> Result<Value, ScimError> {
    let mut out = Map::new();
    let mut schemas = vec![json!(USER)];
    out.insert("id".into(), json!(user.id.to_string()));
    if let Some(x) = &user.external_id {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("userName".into(), json!(user.name));
    if let Some(d) = &user.display_name {
        out.insert("displayName".into(), json!(d));
    }
    for key in CORE_KEPT {
        if let Some(v) = user.attributes.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    if !out.contains_key("emails")
        && let Some(email) = &user.email
    {
        out.insert(
            "emails".into(),
            json!([{"value": email, "type": "work", "primary": true}]),
        );
    }
    if !out.contains_key("userType") && user.user_type == Some(UserType::Contractor) {
        out.insert("userType".into(), json!("Contractor"));
    }
    out.insert("active".into(), json!(user.status == Status::Active));
    let groups = groups_of(conn, ctx, base, user.id).await?;
    if !groups.is_empty() {
        out.insert("groups".into(), Value::Array(groups));
    }

    let mut enterprise = Map::new();
    for key in ENTERPRISE_KEPT {
        if let Some(v) = user.attributes.get(*key) {
            enterprise.insert((*key).to_owned(), v.clone());
        }
    }
    if let Some(manager) = user
        .attributes
        .get("manager")
        .and_then(Value::as_str)
        .and_then(|s| parse_id(s).ok())
    {
        enterprise.insert("manager".into(), user_reference(base, manager));
    }
    if !enterprise.is_empty() {
        schemas.push(json!(ENTERPRISE_USER));
        out.insert(ENTERPRISE_USER.into(), Value::Object(enterprise));
    }

    let mut lifecycle = Map::new();
    if let Some(start) = user.start_date {
        lifecycle.insert("startDate".into(), json!(start.to_string()));
    }
    if let Some(end) = user.end_date {
        lifecycle.insert("endDate".into(), json!(end.to_string()));
    }
    if let Some(sponsor) = user.sponsor_id {
        lifecycle.insert("sponsor".into(), user_reference(base, sponsor));
    }
    if !lifecycle.is_empty() {
        schemas.push(json!(LIFECYCLE_USER));
        out.insert(LIFECYCLE_USER.into(), Value::Object(lifecycle));
    }

    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("meta".into(), meta(base, ResourceType::User, user));
    Ok(Value::Object(out))
}

/// `{"value", "$ref"}` for another user. The read-only `displayName` is
/// accepted in requests but not returned, so a client that writes a
/// reference reads back what it wrote.
fn user_reference(base: &str, id: PrincipalId) -> Value {
    json!({
        "value": id.to_string(),
        "$ref": format!("{base}/Users/{id}"),
    })
}

/// The groups a user is a direct member of, with unexpired memberships.
async fn groups_of(
    conn: &mut impl Conn,
    ctx: &Ctx,
    base: &str,
    user: PrincipalId,
) -> Result<Vec<Value>, ScimError> {
    let memberships = principals::memberships_of(conn, user)
        .await
        .map_err(crate::AppError::from)?;
    let mut groups = Vec::new();
    for m in memberships
        .iter()
        .filter(|m| idplane_core::time::in_force(m.expires_at, ctx.now))
    {
        if let Some(g) = principals::by_id(conn, ctx.tenant, m.group_id)
            .await
            .map_err(crate::AppError::from)?
        {
            groups.push(json!({
                "value": g.id.to_string(),
                "$ref": format!("{base}/Groups/{}", g.id),
                "display": g.name,
                "type": "direct",
            }));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "Ada.Lovelace@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [
                {"value": "home@example.com", "type": "home"},
                {"value": "ada@example.com", "type": "work", "primary": true}
            ],
            "active": true,
            "userType": "Contractor",
            "id": "ignored",
            "groups": [{"value": "ignored because read-only"}],
            ENTERPRISE_USER: {"department": "Sales", "manager": {"value": "0195f8d4-0000-7000-8000-000000000001"}},
        })
    }

    #[test]
    fn a_body_maps_to_columns_and_scim_named_attributes() {
        let f = UserFields::from_body(&body()).unwrap();
        assert_eq!(f.user_name, "Ada.Lovelace@example.com");
        assert_eq!(f.email.as_deref(), Some("ada@example.com"));
        assert_eq!(f.user_type, UserType::Contractor);
        assert_eq!(f.attributes["department"], "Sales");
        assert_eq!(
            f.attributes["manager"],
            "0195f8d4-0000-7000-8000-000000000001"
        );
        assert!(!f.attributes.contains_key("groups"));
    }

    #[test]
    fn unknown_attributes_and_wrong_types_are_refused() {
        let mut b = body();
        b["favouriteColour"] = json!("blue");
        assert_eq!(
            UserFields::from_body(&b).unwrap_err().scim_type,
            Some("invalidSyntax")
        );
        let mut b = body();
        b["active"] = json!(3);
        assert_eq!(
            UserFields::from_body(&b).unwrap_err().scim_type,
            Some("invalidValue")
        );
        let mut b = body();
        b.as_object_mut().unwrap().remove("userName");
        assert!(UserFields::from_body(&b).is_err());
        let mut b = body();
        b["emails"][0]["primary"] = json!(true);
        assert!(UserFields::from_body(&b).is_err(), "two primaries");
    }

    #[test]
    fn deactivating_an_active_user_deprovisions_and_reactivating_restores() {
        let ctx = Ctx {
            tenant: idplane_core::TenantId::generate(),
            actor: idplane_core::Actor::Root,
            now: Timestamp::UNIX_EPOCH,
            request: Default::default(),
        };
        let mut f = UserFields::from_body(&body()).unwrap();
        f.user_type = UserType::Employee;
        let user = f.to_new_user(&ctx).unwrap();
        assert_eq!(user.status, Status::Active);
        f.active = Some(false);
        let off = f.apply_to(&user).unwrap();
        assert_eq!(off.status, Status::Deprovisioned);
        f.active = Some(true);
        assert_eq!(f.apply_to(&off).unwrap().status, Status::Active);
        f.active = Some(false);
        assert_eq!(f.to_new_user(&ctx).unwrap().status, Status::Suspended);
    }
}
