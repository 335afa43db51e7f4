//! Relais: a Matrix homeserver for public administrations and their partners.
//!
//! Layout: [`api`] (HTTP: parse, authorise, call a service, map errors), [`service`] (domain
//! logic), [`storage`] (RocksDB behind typed tables). See `ARCHITECTURE.md`.

pub mod api;
pub mod config;
pub mod server;
pub mod service;
pub mod storage;
