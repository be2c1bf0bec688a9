//! The directory as Cedar sees it: the reserved `Idplane` namespace, whose
//! entity types every application's policies may name (`principal in
//! Idplane::Role::"admin"`). Entity ids are the directory's names.

use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{EntityTypeName, SchemaFragment};

/// The namespace of the directory's entity types.
pub const DIRECTORY_NAMESPACE: &str = "Idplane";

/// The directory's types. A principal's parents are every group it belongs
/// to (directly or through nested groups) and every role it holds at the
/// moment of the decision (directly or through a group).
pub const DIRECTORY_SCHEMA: &str = r#"namespace Idplane {
  entity Role = { name: String };
  entity Group in [Group, Role] = { name: String, displayName?: String, externalId?: String };
  entity User in [Group, Role] = {
    name: String,
    email?: String,
    displayName?: String,
    externalId?: String,
    userType?: String,
    status: String,
  };
  entity ServiceAccount in [Group, Role] = {
    name: String,
    owner?: String,
    purpose?: String,
    status: String,
  };
  entity Agent in [Group, Role] = {
    name: String,
    owner?: String,
    purpose?: String,
    status: String,
  };
}
"#;

static FRAGMENT: LazyLock<Result<SchemaFragment, String>> = LazyLock::new(|| {
    SchemaFragment::from_cedarschema_str(DIRECTORY_SCHEMA)
        .map(|(fragment, _)| fragment)
        .map_err(|e| e.to_string())
});

/// The directory's schema fragment.
pub fn directory_fragment() -> SchemaFragment {
    match &*FRAGMENT {
        Ok(fragment) => fragment.clone(),
        // The text is a constant the unit test below parses.
        Err(e) => unreachable_schema(e),
    }
}

#[expect(clippy::panic, reason = "a constant that a unit test proves parses")]
fn unreachable_schema(e: &str) -> ! {
    panic!("the directory schema does not parse: {e}")
}

/// The directory's entity kinds, named as Cedar types and as AuthZEN
/// subject types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectoryType {
    User,
    Group,
    ServiceAccount,
    Agent,
    Role,
}

impl DirectoryType {
    const ALL: [Self; 5] = [
        Self::User,
        Self::Group,
        Self::ServiceAccount,
        Self::Agent,
        Self::Role,
    ];

    /// The unqualified Cedar type name.
    pub fn cedar_name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::ServiceAccount => "ServiceAccount",
            Self::Agent => "Agent",
            Self::Role => "Role",
        }
    }

    /// The AuthZEN type (`user`, `group`, `service_account`, `agent`, `role`).
    pub fn authzen_name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::ServiceAccount => "service_account",
            Self::Agent => "agent",
            Self::Role => "role",
        }
    }

    /// Reads `user` or `Idplane::User` (and so on).
    pub fn parse(name: &str) -> Option<Self> {
        let qualified = name.strip_prefix("Idplane::");
        Self::ALL.into_iter().find(|t| match qualified {
            Some(bare) => bare == t.cedar_name(),
            None => name == t.authzen_name(),
        })
    }

    /// The directory principal kind, for all but roles.
    pub fn principal_kind(self) -> Option<idplane_core::directory::PrincipalKind> {
        use idplane_core::directory::PrincipalKind;
        match self {
            Self::User => Some(PrincipalKind::User),
            Self::Group => Some(PrincipalKind::Group),
            Self::ServiceAccount => Some(PrincipalKind::ServiceAccount),
            Self::Agent => Some(PrincipalKind::Agent),
            Self::Role => None,
        }
    }

    pub fn type_name(self) -> EntityTypeName {
        // Both parts are constants that the unit test below parses.
        EntityTypeName::from_str(&format!("{DIRECTORY_NAMESPACE}::{}", self.cedar_name()))
            .unwrap_or_else(|_| unreachable_schema(self.cedar_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_schema_parses_and_names_every_type() {
        let fragment = FRAGMENT.as_ref().expect("parses");
        let schema = cedar_policy::Schema::from_schema_fragments([fragment.clone()]).unwrap();
        let declared: Vec<String> = schema.entity_types().map(ToString::to_string).collect();
        for t in DirectoryType::ALL {
            assert!(declared.contains(&t.type_name().to_string()), "{t:?}");
            assert_eq!(DirectoryType::parse(t.authzen_name()), Some(t));
            assert_eq!(
                DirectoryType::parse(&format!("Idplane::{}", t.cedar_name())),
                Some(t)
            );
        }
        assert_eq!(DirectoryType::parse("User"), None);
        assert_eq!(DirectoryType::parse("Idplane::user"), None);
    }
}
