//! Reading the live state over the admin API into a [`Document`].

use std::collections::HashMap;

use anyhow::Context;
use idplane_core::Timestamp;
use idplane_core::directory::{PrincipalKind, Status, UserType, name_key};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::doc::{
    Assignment, Entitlement, Field, Group, Member, Meta, NonHuman, OAuthClient, Policy, Role,
    Tenant, User,
};
use crate::client::api::{collection, reference, tenant_path};
use crate::client::http::{Client, status_of};

#[derive(Debug, Deserialize)]
struct TenantView {
    name: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PrincipalView {
    id: String,
    kind: PrincipalKind,
    name: String,
    display_name: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    status: Status,
    user_type: Option<UserType>,
    end_date: Option<Timestamp>,
    sponsor_id: Option<String>,
    owner_id: Option<String>,
    purpose: Option<String>,
    expires_at: Option<Timestamp>,
    #[serde(default)]
    attributes: Map<String, Value>,
    version: i64,
}

#[derive(Debug, Deserialize)]
struct MemberView {
    member_id: String,
    kind: PrincipalKind,
    name: String,
    expires_at: Option<Timestamp>,
    active: bool,
}

#[derive(Debug, Deserialize)]
struct RoleView {
    id: String,
    name: String,
    description: Option<String>,
    #[serde(default)]
    entitlements: Vec<Entitlement>,
    version: i64,
}

#[derive(Debug, Deserialize)]
struct ClientView {
    client_id: String,
    name: String,
    #[serde(rename = "type")]
    client_type: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    token_endpoint_auth_method: String,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    first_party: bool,
    access_token_format: String,
    id_token_signed_response_alg: String,
    require_pushed_authorization_requests: bool,
    access_token_lifetime_secs: i64,
    refresh_token_lifetime_secs: i64,
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    version: i64,
}

impl From<ClientView> for OAuthClient {
    fn from(c: ClientView) -> Self {
        OAuthClient {
            meta: Meta {
                id: Some(c.client_id.clone()),
                version: Some(c.version),
                expired: false,
            },
            client_id: c.client_id,
            name: c.name,
            client_type: Some(c.client_type),
            redirect_uris: Some(c.redirect_uris),
            post_logout_redirect_uris: Some(c.post_logout_redirect_uris),
            grant_types: Some(c.grant_types),
            scopes: Some(c.scopes),
            token_endpoint_auth_method: Some(c.token_endpoint_auth_method),
            jwks: Field::live(c.jwks),
            jwks_uri: Field::live(c.jwks_uri),
            first_party: Some(c.first_party),
            access_token_format: Some(c.access_token_format),
            id_token_signed_response_alg: Some(c.id_token_signed_response_alg),
            require_pushed_authorization_requests: Some(c.require_pushed_authorization_requests),
            access_token_lifetime_secs: Some(c.access_token_lifetime_secs),
            refresh_token_lifetime_secs: Some(c.refresh_token_lifetime_secs),
            backchannel_logout_uri: Field::live(c.backchannel_logout_uri),
            dpop_bound_access_tokens: Some(c.dpop_bound_access_tokens),
        }
    }
}

#[derive(Debug, Deserialize)]
struct AssignmentView {
    id: String,
    role_id: String,
    principal_id: String,
    expires_at: Option<Timestamp>,
    active: bool,
}

/// The tenants (name, display name), or `None` if the token may not list
/// them (it is bound to one tenant).
pub async fn tenants(client: &Client) -> anyhow::Result<Option<Vec<(String, Option<String>)>>> {
    match client.list("/api/v1/tenants", &[], None).await {
        Ok(items) => {
            let views: Vec<TenantView> = decode(items, "tenants")?;
            Ok(Some(
                views
                    .into_iter()
                    .map(|t| (t.name, t.display_name))
                    .collect(),
            ))
        }
        Err(e) if status_of(&e).is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Everything in one tenant. Expired memberships and assignments are
/// included, marked in their [`Meta`].
pub async fn tenant(
    client: &Client,
    name: &str,
    display_name: Field<String>,
) -> anyhow::Result<Tenant> {
    let principals = |kind| async move {
        let items = client
            .list(
                &tenant_path(name, &format!("/{}", collection(kind))),
                &[],
                None,
            )
            .await?;
        decode::<PrincipalView>(items, collection(kind))
    };
    let users = principals(PrincipalKind::User).await?;
    let groups = principals(PrincipalKind::Group).await?;
    let service_accounts = principals(PrincipalKind::ServiceAccount).await?;
    let agents = principals(PrincipalKind::Agent).await?;
    let roles: Vec<RoleView> = decode(
        client.list(&tenant_path(name, "/roles"), &[], None).await?,
        "roles",
    )?;
    let assignments: Vec<AssignmentView> = decode(
        client
            .list(&tenant_path(name, "/role-assignments"), &[], None)
            .await?,
        "role assignments",
    )?;
    let clients: Vec<ClientView> = decode(
        client
            .list(&tenant_path(name, "/clients"), &[], None)
            .await?,
        "clients",
    )?;

    let refs: HashMap<&str, String> = users
        .iter()
        .chain(&groups)
        .chain(&service_accounts)
        .chain(&agents)
        .map(|p| (p.id.as_str(), reference(p.kind, &p.name)))
        .collect();
    let ref_of = |id: &str| refs.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let role_names: HashMap<&str, &str> = roles
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();

    let mut live_groups = Vec::new();
    for g in &groups {
        let path = tenant_path(name, &format!("/groups/{}/members", g.id));
        let members: Vec<MemberView> = serde_json::from_value(client.get(&path).await?)
            .with_context(|| format!("GET {path}: unexpected response"))?;
        let mut members: Vec<Member> = members
            .into_iter()
            .map(|m| Member {
                member: reference(m.kind, &m.name),
                expires_at: m.expires_at,
                meta: Meta {
                    id: Some(m.member_id),
                    version: None,
                    expired: !m.active,
                },
            })
            .collect();
        members.sort_by_key(|m| name_key(&m.member));
        live_groups.push(Group {
            name: g.name.clone(),
            display_name: Field::live(g.display_name.clone()),
            external_id: Field::live(g.external_id.clone()),
            attributes: attributes(&g.attributes),
            members: Some(members),
            meta: meta(g),
        });
    }

    let mut live_assignments: Vec<Assignment> = assignments
        .iter()
        .map(|a| Assignment {
            role: role_names
                .get(a.role_id.as_str())
                .map_or_else(|| a.role_id.clone(), |n| (*n).to_owned()),
            principal: ref_of(&a.principal_id),
            expires_at: a.expires_at,
            meta: Meta {
                id: Some(a.id.clone()),
                version: None,
                expired: !a.active,
            },
        })
        .collect();
    live_assignments.sort_by_key(|a| (name_key(&a.role), name_key(&a.principal)));

    let non_human = |list: &[PrincipalView]| {
        let mut out: Vec<NonHuman> = list
            .iter()
            .map(|p| NonHuman {
                name: p.name.clone(),
                display_name: Field::live(p.display_name.clone()),
                owner: p.owner_id.as_deref().map(&ref_of).unwrap_or_default(),
                purpose: p.purpose.clone().unwrap_or_default(),
                expires_at: Field::live(p.expires_at),
                external_id: Field::live(p.external_id.clone()),
                status: Some(p.status),
                attributes: attributes(&p.attributes),
                meta: meta(p),
            })
            .collect();
        out.sort_by_key(|n| name_key(&n.name));
        out
    };

    let mut live_users: Vec<User> = users
        .iter()
        .map(|u| User {
            username: u.name.clone(),
            display_name: Field::live(u.display_name.clone()),
            email: Field::live(u.email.clone()),
            external_id: Field::live(u.external_id.clone()),
            user_type: u.user_type,
            end_date: Field::live(u.end_date),
            sponsor: Field::live(u.sponsor_id.as_deref().map(&ref_of)),
            status: Some(u.status),
            attributes: attributes(&u.attributes),
            meta: meta(u),
        })
        .collect();
    live_users.sort_by_key(|u| name_key(&u.username));
    live_groups.sort_by_key(|g| name_key(&g.name));
    let mut live_roles: Vec<Role> = roles
        .iter()
        .map(|r| Role {
            name: r.name.clone(),
            description: Field::live(r.description.clone()),
            entitlements: Some(r.entitlements.clone()),
            meta: Meta {
                id: Some(r.id.clone()),
                version: Some(r.version),
                expired: false,
            },
        })
        .collect();
    live_roles.sort_by_key(|r| name_key(&r.name));

    Ok(Tenant {
        name: name.to_owned(),
        display_name,
        users: Some(live_users),
        groups: Some(live_groups),
        roles: Some(live_roles),
        assignments: Some(live_assignments),
        service_accounts: Some(non_human(&service_accounts)),
        agents: Some(non_human(&agents)),
        clients: Some(clients.into_iter().map(OAuthClient::from).collect()),
        policy: active_policy(client, name).await?,
    })
}

/// The active policy version's bundle, if any version was ever pushed.
async fn active_policy(client: &Client, tenant: &str) -> anyhow::Result<Option<Policy>> {
    let path = tenant_path(tenant, "/policy");
    match client.get(&path).await {
        Ok(active) => Ok(Some(Policy {
            directory: None,
            bundle: Some(
                serde_json::from_value(active["bundle"].clone())
                    .with_context(|| format!("GET {path}: unexpected response"))?,
            ),
        })),
        Err(e) if status_of(&e).is_some_and(|s| s.as_u16() == 404) => Ok(None),
        Err(e) => Err(e),
    }
}

fn meta(p: &PrincipalView) -> Meta {
    Meta {
        id: Some(p.id.clone()),
        version: Some(p.version),
        expired: false,
    }
}

/// Attributes as written: omitted when there are none.
fn attributes(map: &Map<String, Value>) -> Option<Map<String, Value>> {
    (!map.is_empty()).then(|| map.clone())
}

fn decode<T: DeserializeOwned>(items: Vec<Value>, what: &str) -> anyhow::Result<Vec<T>> {
    items
        .into_iter()
        .map(|item| {
            serde_json::from_value(item)
                .with_context(|| format!("unexpected {what} from the server"))
        })
        .collect()
}
