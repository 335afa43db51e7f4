//! Plain string identifiers: user IDs, server names, room IDs and organisation units.
//!
//! The policy engine stays free of ruma so that it builds fast and can be embedded anywhere
//! (homeserver, appservice, tools). The homeserver converts its ruma types with `as_str()`.
//! The newtypes exist so that a unit can never be passed where a user is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a transparent string newtype with the conversions every identifier needs.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string without checking it; checks happen where the value is used.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The identifier as it appears on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// A Matrix user ID, `@localpart:server.name`.
    UserId
);
string_id!(
    /// A Matrix server name, the part of a user ID after the first `:`.
    ServerName
);
string_id!(
    /// A Matrix room ID; carried in actions so that refusals and the audit log can name the room.
    RoomId
);
string_id!(
    /// An organisation unit, e.g. `prefecture-creuse`; units form the delegation tree.
    UnitId
);

impl UserId {
    /// The server part of the ID, or `None` if the ID is malformed.
    ///
    /// A malformed ID has no server, so it is never local and never in the server table:
    /// it falls to the `guest` tier, which is the safe side.
    pub fn server_name(&self) -> Option<&str> {
        let rest = self.0.strip_prefix('@')?;
        let (localpart, server) = rest.split_once(':')?;
        (!localpart.is_empty() && !server.is_empty()).then_some(server)
    }

    /// Whether the ID has the `@localpart:server` shape.
    pub fn is_well_formed(&self) -> bool {
        self.server_name().is_some()
    }

    /// Whether the user belongs to `server`.
    pub fn is_on(&self, server: &ServerName) -> bool {
        self.server_name() == Some(server.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_after_the_first_colon() {
        assert_eq!(UserId::from("@a:relais.test").server_name(), Some("relais.test"));
        assert_eq!(UserId::from("@a:host:8448").server_name(), Some("host:8448"));
    }

    #[test]
    fn malformed_ids_have_no_server() {
        for id in ["a:relais.test", "@:relais.test", "@a:", "@a", ""] {
            assert_eq!(UserId::from(id).server_name(), None, "{id}");
        }
    }
}
