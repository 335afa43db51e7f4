//! The Relais policy application service: it will answer the homeserver's policy checks, keep
//! the organisation directory, provision workspaces and write the audit log (see DESIGN.md).
//!
//! Nothing is exposed yet: the rule engine it will serve lives in `relais-policy`, and the
//! homeserver's check interface is built together with this crate (issues 6 and 7).
