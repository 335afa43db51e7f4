//! `relais-policy`: the Relais rule engine.
//!
//! It implements `/work/shared/POLICY.md` (tiers, room access classes, the decision table and
//! delegated administration) as one function, [`decide`], whose answer is [`Decision::Allow`] or
//! [`Decision::Deny`] naming the table row ([`Rule`]) and a reason a person can act on.
//!
//! Invariants:
//! - pure: no I/O, no async, no clock (the caller passes `now_ms`), no global state;
//! - the caller passes facts it computed ([`RoomFacts`], flags in [`Action`]); the engine
//!   never looks anything up beyond the [`Directory`] snapshot it is given;
//! - fail closed: missing facts, unknown users, unknown servers, unknown units and malformed
//!   IDs all land on the restrictive side;
//! - every `fr.relais.*` name lives in [`names`].
//!
//! Where POLICY.md is silent, the choice that protects the administration's data is taken and
//! explained on the function that makes it.

mod access;
mod action;
mod decide;
mod decision;
mod directory;
mod facts;
mod ids;
pub mod names;
mod tier;
mod time;

pub use access::AccessClass;
pub use action::{Action, Invitation, WorkspaceRef};
pub use decide::{
    RegistrationGrant, decide, max_power_level, registration_grant, registration_refusal,
};
pub use decision::{Decision, Rule};
pub use directory::{
    AccountStatus, DEFAULT_GUEST_MAX_TERM_MS, Directory, DirectoryError, DirectoryParts,
    DomainMatch, DomainPattern, EmailRule, Unit, UnitTree, UserRecord, email_domain, match_email,
};
pub use facts::{ADMIN_POWER, Actor, MODERATOR_POWER, RoomFacts, WorkspaceFacts, WorkspaceStatus};
pub use ids::{RoomId, ServerName, UnitId, UserId};
pub use tier::{Tier, UnknownTier};
