//! The Relais policy service: it answers the homeserver's policy checks from an in-memory index of
//! the directory, and keeps that directory in Matrix rooms (see DESIGN.md, "The policy layer").
//!
//! This crate is the part that does not depend on how it reaches the homeserver:
//! - [`PolicyConfig`]: the `[policy]` section (organisation tree bootstrap, partner servers,
//!   email rules, server admins, guest terms);
//! - [`records`]: the content of the `fr.relais.*` state events that hold users and delegations,
//!   and of the audit events;
//! - [`PolicyService`]: the index (a [`relais_policy::Directory`] rebuilt from the bootstrap and the
//!   state events) and the decisions taken on it;
//! - [`checks`]: the policy check protocol (Synapse's spam-checker callbacks), each check turned
//!   into an action and decided.
//!
//! The homeserver embeds it (`relais serve`): it computes room facts from room state, asks
//! [`PolicyService::decide`], and writes the state events that change the directory.
//! [`standalone`] runs it as a process of its own, `relais-policy-service`, beside a homeserver.

pub mod checks;
mod config;
pub mod records;
mod service;
pub mod standalone;

pub use config::{ChecksBy, PolicyConfig, TemplateRoom, UnitConfig, WorkspaceTemplate};
pub use service::{PolicyService, ServiceError};
