//! SCIM `Group` resources ↔ directory groups and their direct members.

use idplane_core::directory::{
    Principal, PrincipalKind, normalize_external_id, normalize_group_name,
};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::{Conn, principals};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{ResourceType, check_resource};
use super::{GROUP, meta};
use crate::AppError;

/// What a SCIM `Group` body says.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<PrincipalId>,
}

impl GroupFields {
    pub fn from_body(body: &Value) -> Result<Self, ScimError> {
        let checked = check_resource(ResourceType::Group, body)?;
        let core = &checked.core;
        let display_name = core
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ScimError::invalid_value("`displayName` is required"))?
            .to_owned();
        Ok(Self {
            display_name,
            external_id: core
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            members: member_ids(core.get("members"))?,
        })
    }

    pub fn to_new_group(&self, ctx: &Ctx) -> Result<Principal, ScimError> {
        let group = super::blank(ctx, PrincipalKind::Group);
        self.apply_to(&group)
    }

    pub fn apply_to(&self, current: &Principal) -> Result<Principal, ScimError> {
        let invalid = |e: idplane_core::ValidationError| ScimError::invalid_value(e.to_string());
        Ok(Principal {
            name: normalize_group_name("displayName", &self.display_name).map_err(invalid)?,
            external_id: normalize_external_id(self.external_id.as_deref()).map_err(invalid)?,
            ..current.clone()
        })
    }
}

/// The ids in a `members` value (`[{"value": id}, ...]`).
pub(crate) fn member_ids(members: Option<&Value>) -> Result<Vec<PrincipalId>, ScimError> {
    let Some(members) = members else {
        return Ok(Vec::new());
    };
    let items = members
        .as_array()
        .ok_or_else(|| ScimError::invalid_value("`members` must be a list"))?;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = item
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_value("each member needs a `value`"))?;
        let id = id
            .parse()
            .map_err(|_| ScimError::invalid_value(format!("no member with id `{id}`")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The SCIM representation of a group with its direct, unexpired members
/// (`display` is accepted in requests, as Okta sends it, but not returned:
/// RFC 7643 §8.7.1 gives members a value, a `$ref` and a type).
pub(crate) async fn to_resource(
    conn: &mut impl Conn,
    ctx: &Ctx,
    base: &str,
    group: &Principal,
) -> Result<Value, ScimError> {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP]));
    out.insert("id".into(), json!(group.id.to_string()));
    if let Some(x) = &group.external_id {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("displayName".into(), json!(group.name));
    let mut members = Vec::new();
    for m in principals::members(conn, group.id)
        .await
        .map_err(AppError::from)?
        .iter()
        .filter(|m| idplane_core::time::in_force(m.expires_at, ctx.now))
    {
        let Some(p) = principals::by_id(conn, ctx.tenant, m.member_id)
            .await
            .map_err(AppError::from)?
        else {
            continue;
        };
        let rt = if p.kind == PrincipalKind::Group {
            ResourceType::Group
        } else {
            ResourceType::User
        };
        members.push(json!({
            "value": p.id.to_string(),
            "$ref": format!("{base}{}/{}", rt.endpoint(), p.id),
            "type": rt.name(),
        }));
    }
    out.insert("members".into(), Value::Array(members));
    out.insert("meta".into(), meta(base, ResourceType::Group, group));
    Ok(Value::Object(out))
}

/// The principal a member id names, in this tenant: a user or a group.
pub(crate) async fn load_member(
    conn: &mut impl Conn,
    ctx: &Ctx,
    id: PrincipalId,
) -> Result<Principal, ScimError> {
    principals::by_id(conn, ctx.tenant, id)
        .await
        .map_err(AppError::from)?
        .filter(|p| matches!(p.kind, PrincipalKind::User | PrincipalKind::Group))
        .ok_or_else(|| ScimError::invalid_value(format!("no member with id `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_deduplicated_and_checked() {
        let id = PrincipalId::generate();
        let body = json!({
            "schemas": [GROUP],
            "displayName": "Sales Team",
            "members": [{"value": id.to_string()}, {"value": id.to_string(), "display": "x"}],
        });
        let f = GroupFields::from_body(&body).unwrap();
        assert_eq!(f.members, vec![id]);
        assert_eq!(f.display_name, "Sales Team");
        let bad = json!({"schemas": [GROUP], "displayName": "x", "members": [{"value": "nope"}]});
        assert_eq!(
            GroupFields::from_body(&bad).unwrap_err().scim_type,
            Some("invalidValue")
        );
        let nameless = json!({"schemas": [GROUP], "members": []});
        assert!(GroupFields::from_body(&nameless).is_err());
    }
}
