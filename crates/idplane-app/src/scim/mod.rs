//! SCIM 2.0 (RFC 7643, RFC 7644): the directory as SCIM `User` and `Group`
//! resources, translated into the same use cases as the native API, so a
//! SCIM change is checked, audited and committed like any other.

pub mod bulk;
pub mod error;
pub mod groups;
pub mod list;
pub mod patch;
pub mod projection;
pub mod query;
pub mod schema;
pub mod service;
pub mod users;

use idplane_core::PrincipalId;
use idplane_core::directory::Principal;
use serde_json::{Value, json};

use self::error::ScimError;
use self::schema::ResourceType;

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// idplane's extension: start and end dates, and a contractor's sponsor.
pub const LIFECYCLE_USER: &str = "urn:idplane:params:scim:schemas:extension:lifecycle:1.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A resource id from a URL or a reference; anything else names nothing.
pub fn parse_id(id: &str) -> Result<PrincipalId, ScimError> {
    id.parse()
        .map_err(|_| ScimError::not_found(format!("resource `{id}` not found")))
}

/// The weak entity tag of a resource version (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` value names; `*` (any) is `None`.
pub fn parse_if_match(value: &str) -> Result<Option<i64>, ScimError> {
    let value = value.trim();
    if value == "*" {
        return Ok(None);
    }
    value
        .strip_prefix("W/")
        .unwrap_or(value)
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ScimError::new(412, None, format!("unknown entity tag `{value}`")))
}

/// A principal of `kind` with nothing set yet, for a SCIM body to fill.
fn blank(ctx: &idplane_core::Ctx, kind: idplane_core::directory::PrincipalKind) -> Principal {
    Principal {
        id: PrincipalId::generate(),
        tenant_id: ctx.tenant,
        kind,
        name: String::new(),
        display_name: None,
        email: None,
        external_id: None,
        status: idplane_core::directory::Status::Active,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor_id: None,
        owner_id: None,
        purpose: None,
        expires_at: None,
        attributes: serde_json::Map::new(),
        created_at: ctx.now,
        updated_at: ctx.now,
        version: 1,
    }
}

/// The `meta` of a resource.
fn meta(base: &str, rt: ResourceType, p: &Principal) -> Value {
    json!({
        "resourceType": rt.name(),
        "created": p.created_at.to_string(),
        "lastModified": p.updated_at.to_string(),
        "location": format!("{base}{}/{}", rt.endpoint(), p.id),
        "version": etag(p.version),
    })
}
