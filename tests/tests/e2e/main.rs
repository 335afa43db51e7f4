//! End-to-end tests: each starts the real `relais` binary and drives it over HTTP, with raw
//! requests where the detail matters and with the `matrix-sdk` client library.
//! One test binary for all of them keeps linking cheap.

mod accounts;
mod bad_input;
mod crash;
mod rooms;
mod sdk;
mod sync;
