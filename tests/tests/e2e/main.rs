//! End-to-end tests: each starts the real `relais` binary and drives it over HTTP, with raw
//! requests where the detail matters and with the `matrix-sdk` client library.
//! One test binary for all of them keeps linking cheap.

// matrix-sdk's futures are deeply nested types.
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod accounts;
mod appservice;
mod authorization;
mod bad_input;
mod crash;
mod e2ee;
mod email;
mod federation;
mod federation_dag;
mod federation_e2ee;
mod federation_reads;
mod federation_transport;
mod limits;
mod media;
mod ops;
mod policy;
mod policy_admin;
mod policy_checks;
mod policy_service;
mod push;
mod refresh_tokens;
mod registration_tokens;
mod request_limits;
mod rooms;
mod sdk;
mod sliding_sync;
mod soak;
mod spaces;
mod sync;
