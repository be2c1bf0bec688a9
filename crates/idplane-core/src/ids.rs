//! Opaque, stable, time-ordered identifiers (UUIDv7).
//!
//! Each kind of object has its own id type so that a role id cannot be passed
//! where a principal id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id, ordered by creation time.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant (an isolated directory with its own audit chain).
    TenantId
);
id_type!(
    /// Identifies a user, group, service account or agent.
    PrincipalId
);
id_type!(
    /// Identifies a role.
    RoleId
);
id_type!(
    /// Identifies a role assignment.
    AssignmentId
);
id_type!(
    /// Identifies an administrator token.
    TokenId
);
