//! `idplane user`, `group`, `service-account` and `agent`.

use crate::client::output::outln;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use idplane_core::directory::PrincipalKind;
use serde_json::{Map, Value, json};

use super::api::{Api, Names, collection, noun, parse_attributes};
use super::http::{encode, etag};
use super::output::{print_fields, print_json, print_table, str_field, text};
use super::{ExpiryArgs, StatusArg};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create(Box<UserCreate>),
    /// List users (all of them unless `--limit`).
    List(ListArgs),
    /// Show a user (by username or id).
    Get { user: String },
    /// Change a user; only the options given change.
    Update(Box<UserUpdate>),
    /// Delete a user with their memberships and role assignments.
    Delete { user: String },
    /// Deprovision a leaver: end their sessions, tokens, consents,
    /// memberships and roles (recorded), and hand what they own or sponsor
    /// to their manager for review.
    Deprovision { user: String },
    /// What a user may do now: groups, roles and entitlements.
    Access { user: String },
    /// Set a password (temporary unless --permanent; random unless --password-stdin).
    SetPassword(super::authn::SetPasswordArgs),
    /// Remove a user's authenticator app, recovery codes and passkeys, and end their sessions.
    ResetFactors { user: String },
    /// Lift the sign-in back-off of a user's account.
    Unlock { user: String },
    /// A user's running sessions; `--end` ends them all.
    Sessions {
        user: String,
        #[arg(long)]
        end: bool,
    },
}

#[derive(Debug, Args)]
pub struct UserCreate {
    pub username: String,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Correlation id from the HR system.
    #[arg(long)]
    pub external_id: Option<String>,
    /// A contractor (needs `--end-date` and `--sponsor`).
    #[arg(long)]
    pub contractor: bool,
    /// A joiner: the account grants nothing before this instant (RFC 3339).
    #[arg(long)]
    pub start_date: Option<jiff::Timestamp>,
    /// End of the engagement (RFC 3339).
    #[arg(long)]
    pub end_date: Option<jiff::Timestamp>,
    /// The accountable user (username or id).
    #[arg(long)]
    pub sponsor: Option<String>,
    #[arg(long)]
    pub status: Option<StatusArg>,
    /// An attribute, `key=value` (repeatable).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UserTypeArg {
    Employee,
    Contractor,
}

/// Fields `user update --clear` can empty.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClearableUserField {
    DisplayName,
    Email,
    ExternalId,
    StartDate,
    EndDate,
    Sponsor,
}

impl ClearableUserField {
    fn key(self) -> &'static str {
        match self {
            Self::DisplayName => "display_name",
            Self::Email => "email",
            Self::ExternalId => "external_id",
            Self::StartDate => "start_date",
            Self::EndDate => "end_date",
            Self::Sponsor => "sponsor",
        }
    }
}

#[derive(Debug, Args)]
pub struct UserUpdate {
    pub user: String,
    /// Rename the user.
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    #[arg(long)]
    pub external_id: Option<String>,
    #[arg(long)]
    pub user_type: Option<UserTypeArg>,
    #[arg(long)]
    pub start_date: Option<jiff::Timestamp>,
    #[arg(long)]
    pub end_date: Option<jiff::Timestamp>,
    #[arg(long)]
    pub sponsor: Option<String>,
    #[arg(long)]
    pub status: Option<StatusArg>,
    /// Set an attribute, `key=value` (repeatable; others are kept).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
    /// Remove an attribute (repeatable).
    #[arg(long = "unset-attr", value_name = "KEY")]
    pub unset_attributes: Vec<String>,
    /// Empty a field (repeatable).
    #[arg(long, value_name = "FIELD")]
    pub clear: Vec<ClearableUserField>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only names starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long)]
    pub status: Option<StatusArg>,
    /// At most this many.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group.
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List groups.
    List(ListArgs),
    /// Show a group and its members.
    Get { group: String },
    /// Delete a group with its memberships and role assignments.
    Delete { group: String },
    /// Add a member (username, `kind:name` such as `group:sre`, or id), or
    /// change its expiry.
    AddMember {
        /// The group (name or id).
        group: String,
        /// The member: a username, `kind:name` (`group:sre`,
        /// `service_account:ci`, `agent:bot`), or an id.
        member: String,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Remove a member.
    RemoveMember {
        /// The group (name or id).
        group: String,
        /// The member, as for `add-member`.
        member: String,
    },
    /// List a group's direct members.
    Members { group: String },
}

#[derive(Debug, Subcommand)]
pub enum NonHumanCommand {
    /// Create one, with an accountable owner and a purpose.
    Create {
        name: String,
        /// The accountable user (username or id).
        #[arg(long)]
        owner: String,
        /// What it is for.
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        display_name: Option<String>,
        /// When it stops existing (RFC 3339).
        #[arg(long)]
        expires_at: Option<jiff::Timestamp>,
    },
    /// List them.
    List(ListArgs),
    /// Show one (by name or id).
    Get { name: String },
    /// Change one; only the options given change.
    Update {
        name: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        expires_at: Option<jiff::Timestamp>,
        #[arg(long)]
        status: Option<StatusArg>,
    },
    /// Delete one with its memberships and role assignments.
    Delete { name: String },
}

/// The fields shown for one principal.
const PRINCIPAL_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("KIND", "kind"),
    ("NAME", "name"),
    ("DISPLAY NAME", "display_name"),
    ("EMAIL", "email"),
    ("EXTERNAL ID", "external_id"),
    ("TYPE", "user_type"),
    ("STATUS", "status"),
    ("ACTIVE", "active"),
    ("START DATE", "start_date"),
    ("END DATE", "end_date"),
    ("SPONSOR", "sponsor"),
    ("OWNER", "owner"),
    ("PURPOSE", "purpose"),
    ("EXPIRES AT", "expires_at"),
    ("ATTRIBUTES", "attributes"),
    ("CREATED", "created_at"),
    ("UPDATED", "updated_at"),
    ("VERSION", "version"),
];

pub async fn user(api: &Api, command: UserCommand) -> anyhow::Result<()> {
    let kind = PrincipalKind::User;
    match command {
        UserCommand::Create(args) => {
            let mut body = json!({"username": args.username});
            let map = object(&mut body)?;
            insert_opt(map, "email", args.email);
            insert_opt(map, "display_name", args.display_name);
            insert_opt(map, "external_id", args.external_id);
            insert_opt(map, "start_date", args.start_date.map(|t| t.to_string()));
            insert_opt(map, "end_date", args.end_date.map(|t| t.to_string()));
            insert_opt(map, "sponsor", args.sponsor);
            insert_opt(map, "status", args.status.map(|s| s.as_str().to_owned()));
            if args.contractor {
                map.insert("user_type".into(), "contractor".into());
            }
            if !args.attributes.is_empty() {
                map.insert(
                    "attributes".into(),
                    Value::Object(parse_attributes(&args.attributes)?),
                );
            }
            let created = api.client.post(&api.path("/users"), &body).await?;
            show_principal(api, &created, "Created").await
        }
        UserCommand::List(args) => list(api, kind, args).await,
        UserCommand::Get { user } => {
            show_principal(api, &api.principal(kind, &user).await?, "").await
        }
        UserCommand::Update(args) => {
            let current = api.principal(kind, &args.user).await?;
            let mut body = json!({});
            let map = object(&mut body)?;
            insert_opt(map, "username", args.username);
            insert_opt(map, "email", args.email);
            insert_opt(map, "display_name", args.display_name);
            insert_opt(map, "external_id", args.external_id);
            insert_opt(
                map,
                "user_type",
                args.user_type.map(|t| match t {
                    UserTypeArg::Employee => "employee".to_owned(),
                    UserTypeArg::Contractor => "contractor".to_owned(),
                }),
            );
            insert_opt(map, "start_date", args.start_date.map(|t| t.to_string()));
            insert_opt(map, "end_date", args.end_date.map(|t| t.to_string()));
            insert_opt(map, "sponsor", args.sponsor);
            insert_opt(map, "status", args.status.map(|s| s.as_str().to_owned()));
            for field in &args.clear {
                map.insert(field.key().into(), Value::Null);
            }
            if !args.attributes.is_empty() || !args.unset_attributes.is_empty() {
                // A merge patch (RFC 7396): set keys, `null` removes one.
                let mut attributes = parse_attributes(&args.attributes)?;
                for key in &args.unset_attributes {
                    attributes.insert(key.clone(), Value::Null);
                }
                map.insert("attributes".into(), Value::Object(attributes));
            }
            update(api, kind, &current, &body).await
        }
        UserCommand::Delete { user } => delete(api, kind, &user).await,
        UserCommand::Deprovision { user } => {
            let id = api.principal_id(kind, &user).await?;
            let gone = api
                .client
                .post(&api.path(&format!("/users/{id}/deprovision")), &json!({}))
                .await?;
            show_principal(api, &gone, "Deprovisioned").await
        }
        UserCommand::Access { user } => access(api, &user).await,
        UserCommand::SetPassword(args) => super::authn::set_password(api, args).await,
        UserCommand::ResetFactors { user } => super::authn::reset_factors(api, &user).await,
        UserCommand::Unlock { user } => super::authn::unlock(api, &user).await,
        UserCommand::Sessions { user, end } => super::authn::sessions(api, &user, end).await,
    }
}

pub async fn group(api: &Api, command: GroupCommand) -> anyhow::Result<()> {
    let kind = PrincipalKind::Group;
    match command {
        GroupCommand::Create {
            name,
            display_name,
            external_id,
        } => {
            let mut body = json!({"name": name});
            let map = object(&mut body)?;
            insert_opt(map, "display_name", display_name);
            insert_opt(map, "external_id", external_id);
            let created = api.client.post(&api.path("/groups"), &body).await?;
            show_principal(api, &created, "Created").await
        }
        GroupCommand::List(args) => list(api, kind, args).await,
        GroupCommand::Get { group } => {
            let found = api.principal(kind, &group).await?;
            show_principal(api, &found, "").await?;
            if !api.json {
                outln!();
                let id = str_field(&found, "id").unwrap_or_default();
                let members = api
                    .client
                    .get(&api.path(&format!("/groups/{id}/members")))
                    .await?;
                print_members(&members);
            }
            Ok(())
        }
        GroupCommand::Delete { group } => delete(api, kind, &group).await,
        GroupCommand::AddMember {
            group,
            member,
            expiry,
        } => {
            let id = api.principal_id(kind, &group).await?;
            let mut body = json!({"member": member});
            expiry.add_to(&mut body);
            let added = api
                .client
                .post(&api.path(&format!("/groups/{id}/members")), &body)
                .await?;
            if api.json {
                return print_json(&added);
            }
            let until = match str_field(&added, "expires_at") {
                Some(at) => format!(" until {at}"),
                None => String::new(),
            };
            outln!(
                "Added {} `{}` to group `{group}`{until}.",
                text(&added, "kind"),
                text(&added, "name")
            );
            Ok(())
        }
        GroupCommand::RemoveMember { group, member } => {
            let id = api.principal_id(kind, &group).await?;
            api.client
                .delete(&api.path(&format!("/groups/{id}/members/{}", encode(&member))))
                .await?;
            if !api.json {
                outln!("Removed `{member}` from group `{group}`.");
            }
            Ok(())
        }
        GroupCommand::Members { group } => {
            let id = api.principal_id(kind, &group).await?;
            let members = api
                .client
                .get(&api.path(&format!("/groups/{id}/members")))
                .await?;
            if api.json {
                return print_json(&members);
            }
            print_members(&members);
            Ok(())
        }
    }
}

pub async fn non_human(
    api: &Api,
    kind: PrincipalKind,
    command: NonHumanCommand,
) -> anyhow::Result<()> {
    match command {
        NonHumanCommand::Create {
            name,
            owner,
            purpose,
            display_name,
            expires_at,
        } => {
            let mut body = json!({"name": name, "owner": owner, "purpose": purpose});
            let map = object(&mut body)?;
            insert_opt(map, "display_name", display_name);
            insert_opt(map, "expires_at", expires_at.map(|t| t.to_string()));
            let created = api
                .client
                .post(&api.path(&format!("/{}", collection(kind))), &body)
                .await?;
            show_principal(api, &created, "Created").await
        }
        NonHumanCommand::List(args) => list(api, kind, args).await,
        NonHumanCommand::Get { name } => {
            show_principal(api, &api.principal(kind, &name).await?, "").await
        }
        NonHumanCommand::Update {
            name,
            owner,
            purpose,
            display_name,
            expires_at,
            status,
        } => {
            let current = api.principal(kind, &name).await?;
            let mut body = json!({});
            let map = object(&mut body)?;
            insert_opt(map, "owner", owner);
            insert_opt(map, "purpose", purpose);
            insert_opt(map, "display_name", display_name);
            insert_opt(map, "expires_at", expires_at.map(|t| t.to_string()));
            insert_opt(map, "status", status.map(|s| s.as_str().to_owned()));
            update(api, kind, &current, &body).await
        }
        NonHumanCommand::Delete { name } => delete(api, kind, &name).await,
    }
}

async fn list(api: &Api, kind: PrincipalKind, args: ListArgs) -> anyhow::Result<()> {
    let filters = [
        ("prefix", args.prefix),
        ("status", args.status.map(|s| s.as_str().to_owned())),
    ];
    let items = api
        .client
        .list(
            &api.path(&format!("/{}", collection(kind))),
            &filters,
            args.limit,
        )
        .await?;
    if api.json {
        return print_json(&Value::Array(items));
    }
    let mut names = Names::default();
    let mut rows = Vec::new();
    for item in &items {
        rows.push(match kind {
            PrincipalKind::User => vec![
                text(item, "name"),
                text(item, "email"),
                text(item, "user_type"),
                text(item, "status"),
                text(item, "active"),
                text(item, "id"),
            ],
            PrincipalKind::Group => vec![
                text(item, "name"),
                text(item, "display_name"),
                text(item, "id"),
            ],
            PrincipalKind::ServiceAccount | PrincipalKind::Agent => {
                let owner = match str_field(item, "owner_id") {
                    Some(id) => names.user(api, id).await,
                    None => "-".to_owned(),
                };
                vec![
                    text(item, "name"),
                    owner,
                    text(item, "purpose"),
                    text(item, "expires_at"),
                    text(item, "status"),
                    text(item, "id"),
                ]
            }
        });
    }
    let header: &[&str] = match kind {
        PrincipalKind::User => &["USERNAME", "EMAIL", "TYPE", "STATUS", "ACTIVE", "ID"],
        PrincipalKind::Group => &["NAME", "DISPLAY NAME", "ID"],
        PrincipalKind::ServiceAccount | PrincipalKind::Agent => {
            &["NAME", "OWNER", "PURPOSE", "EXPIRES AT", "STATUS", "ID"]
        }
    };
    if rows.is_empty() {
        eprintln!("No {}s in tenant `{}`.", noun(kind), api.tenant);
    } else {
        print_table(header, rows);
    }
    Ok(())
}

/// Prints a principal: its JSON, or its fields with sponsor and owner by name.
async fn show_principal(api: &Api, view: &Value, verb: &str) -> anyhow::Result<()> {
    if api.json {
        return print_json(view);
    }
    let kind = str_field(view, "kind").and_then(PrincipalKind::parse);
    if !verb.is_empty() {
        let what = kind.map_or("principal", noun);
        outln!("{verb} {what} `{}`.\n", text(view, "name"));
    }
    let mut shown = view.clone();
    let mut names = Names::default();
    for (id_key, key) in [("sponsor_id", "sponsor"), ("owner_id", "owner")] {
        if let Some(id) = str_field(view, id_key) {
            let name = names.user(api, id).await;
            if let Some(map) = shown.as_object_mut() {
                map.insert(key.into(), name.into());
            }
        }
    }
    print_fields(&shown, PRINCIPAL_FIELDS);
    Ok(())
}

async fn update(
    api: &Api,
    kind: PrincipalKind,
    current: &Value,
    body: &Value,
) -> anyhow::Result<()> {
    if body.as_object().is_none_or(Map::is_empty) {
        anyhow::bail!("nothing to change: give at least one option (see --help)");
    }
    let id = str_field(current, "id").context("the server sent a principal without an id")?;
    let version = current.get("version").and_then(Value::as_i64);
    let tag = version.map(etag);
    let path = api.path(&format!("/{}/{id}", collection(kind)));
    let updated = api.client.patch(&path, body, tag.as_deref()).await?;
    show_principal(api, &updated, "Updated").await
}

async fn delete(api: &Api, kind: PrincipalKind, reference: &str) -> anyhow::Result<()> {
    let found = api.principal(kind, reference).await?;
    let id = str_field(&found, "id").context("the server sent a principal without an id")?;
    api.client
        .delete(&api.path(&format!("/{}/{id}", collection(kind))))
        .await?;
    if !api.json {
        outln!("Deleted {} `{}`.", noun(kind), text(&found, "name"));
    }
    Ok(())
}

fn print_members(members: &Value) {
    let items = members.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No members.");
        return;
    }
    let rows = items
        .iter()
        .map(|m| {
            vec![
                text(m, "name"),
                text(m, "kind"),
                text(m, "expires_at"),
                text(m, "active"),
                text(m, "member_id"),
            ]
        })
        .collect();
    print_table(&["MEMBER", "KIND", "EXPIRES AT", "ACTIVE", "ID"], rows);
}

async fn access(api: &Api, reference: &str) -> anyhow::Result<()> {
    let found = api.principal(PrincipalKind::User, reference).await?;
    let id = str_field(&found, "id").context("the server sent a principal without an id")?;
    let access = api
        .client
        .get(&api.path(&format!("/principals/{id}/access")))
        .await?;
    if api.json {
        return print_json(&access);
    }
    let mut names = Names::default();
    names.learn([&found]);
    let name = text(&found, "name");
    let state = if access
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        "active"
    } else {
        "NOT active (holds nothing)"
    };
    outln!(
        "User `{name}`: {state}; evaluated at {}.",
        text(&access, "evaluated_at")
    );
    let mut groups = Vec::new();
    for group in access
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(gid) = group.as_str() {
            groups.push(names.principal(api, gid).await);
        }
    }
    outln!(
        "Groups: {}\n",
        if groups.is_empty() {
            "-".to_owned()
        } else {
            groups.join(", ")
        }
    );
    let mut rows = Vec::new();
    for role in access
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let via = match str_field(role, "via") {
            Some(v) if v == id => "direct".to_owned(),
            Some(v) => names.principal(api, v).await,
            None => "-".to_owned(),
        };
        rows.push(vec![text(role, "role_name"), via, text(role, "expires_at")]);
    }
    if rows.is_empty() {
        outln!("Roles: -");
    } else {
        print_table(&["ROLE", "VIA", "EXPIRES AT"], rows);
    }
    outln!();
    let entitlements: Vec<Vec<String>> = access
        .get("entitlements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| vec![text(e, "resource"), text(e, "permission")])
        .collect();
    if entitlements.is_empty() {
        outln!("Entitlements: -");
    } else {
        print_table(&["RESOURCE", "PERMISSION"], entitlements);
    }
    Ok(())
}

/// The object of a JSON body built with `json!({...})`.
pub fn object(body: &mut Value) -> anyhow::Result<&mut Map<String, Value>> {
    body.as_object_mut()
        .context("a request body must be an object")
}

/// Inserts `key` if `value` is given.
pub fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), Value::String(value));
    }
}
