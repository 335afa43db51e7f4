//! Why a set of directory parts was refused.

use crate::ids::{UnitId, UserId};
use crate::tier::Tier;

/// Inconsistent directory data. The directory is refused as a whole rather than patched up,
/// because a guessed org tree would hand out administration rights nobody granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Two units share an ID.
    #[error("organisation unit `{unit}` is defined twice")]
    DuplicateUnit {
        /// The repeated ID.
        unit: UnitId,
    },
    /// A unit names a parent that does not exist.
    #[error("organisation unit `{unit}` has unknown parent `{parent}`")]
    UnknownParent {
        /// The unit.
        unit: UnitId,
        /// Its missing parent.
        parent: UnitId,
    },
    /// Following parents from a unit comes back to it.
    #[error("organisation unit `{unit}` is its own ancestor (cycle in the unit tree)")]
    Cycle {
        /// A unit on the cycle.
        unit: UnitId,
    },
    /// A user belongs to a unit that does not exist.
    #[error("user `{user}` belongs to unknown organisation unit `{unit}`")]
    UserInUnknownUnit {
        /// The user.
        user: UserId,
        /// The missing unit.
        unit: UnitId,
    },
    /// A user ID is not `@localpart:server`.
    #[error("`{user}` is not a valid user ID (expected @localpart:server)")]
    InvalidUserId {
        /// The malformed ID.
        user: UserId,
    },
    /// A delegation names a user the directory does not know.
    #[error("delegated admin `{user}` is not in the directory")]
    UnknownAdmin {
        /// The admin.
        user: UserId,
    },
    /// A delegation names a unit that does not exist.
    #[error("delegated admin `{user}` administers unknown organisation unit `{unit}`")]
    DelegationToUnknownUnit {
        /// The admin.
        user: UserId,
        /// The missing unit.
        unit: UnitId,
    },
    /// A guest, or a remote user, holds a delegation.
    #[error("`{user}` cannot be a delegated admin: only local agents and public agents can")]
    IneligibleAdmin {
        /// The user.
        user: UserId,
    },
    /// A server admin or the policy bot is not a user of this server.
    #[error("{role} `{user}` must be a user of this server")]
    NotLocal {
        /// The user.
        user: UserId,
        /// "server admin" or "policy bot".
        role: &'static str,
    },
    /// An email-domain pattern is malformed.
    #[error(
        "invalid email-domain pattern `{pattern}`: expected `domain.tld`, `*.domain.tld` or `*`"
    )]
    InvalidDomainPattern {
        /// The pattern as written.
        pattern: String,
    },
    /// An `agent` or `public` email rule names no unit.
    #[error("email rule `{pattern}` gives tier `{tier}` but no organisation unit")]
    EmailRuleWithoutUnit {
        /// The rule's pattern.
        pattern: String,
        /// The rule's tier.
        tier: Tier,
    },
    /// An email rule names a unit that does not exist.
    #[error("email rule `{pattern}` names unknown organisation unit `{unit}`")]
    EmailRuleToUnknownUnit {
        /// The rule's pattern.
        pattern: String,
        /// The missing unit.
        unit: UnitId,
    },
}
