//! The Server-Server API's transport (`docs/federation.md`): this server's signed keys, other
//! servers' keys ([`keys::ServerKeyStore`]), server discovery ([`resolve`]), the signed HTTP client
//! ([`client::FederationClient`]) and the closed-federation allow-list ([`Partners`]).
//!
//! The PDU pipeline, joins, the transaction sender and the read endpoints build on these.

pub mod backfill;
pub mod client;
pub mod edu;
pub mod keys;
pub mod knock;
pub mod membership;
pub mod notary;
pub mod pdu;
pub mod reads;
pub mod reads_rooms;
pub mod reads_users;
pub mod remote;
pub mod resolve;
pub mod sender;
pub mod server_keys;
pub mod transactions;

use std::{collections::BTreeSet, sync::Arc};

use ruma::{OwnedServerName, ServerName};

pub use self::{client::FederationClient, keys::ServerKeyStore};
use crate::{
    config::Config,
    service::globals::Globals,
    storage::{Db, StorageError},
};

/// Column families owned by federation.
pub const COLUMN_FAMILIES: &[&str] = keys::COLUMN_FAMILIES;

/// Errors of federation: reaching another server, its answers, its keys.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// `federation.enabled` is false.
    #[error("federation is disabled on this server")]
    Disabled,
    /// The server is not in `federation.allowed_servers`.
    #[error("server {0} is not a partner of this server")]
    NotAllowed(OwnedServerName),
    /// A request to this server itself, which is answered locally, never over the network.
    #[error("{0} is this server: it is not asked over federation")]
    OwnServer(OwnedServerName),
    /// The request could not be built or signed.
    #[error("could not build the request to {server}: {reason}")]
    Build {
        /// The destination.
        server: OwnedServerName,
        /// Why.
        reason: String,
    },
    /// The server could not be reached, or the connection broke.
    #[error("could not reach {server}: {reason}")]
    Unreachable {
        /// The destination.
        server: OwnedServerName,
        /// Why.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("{server} did not answer in time")]
    Timeout {
        /// The destination.
        server: OwnedServerName,
    },
    /// The server answered a Matrix error, relayed as it is.
    #[error("{server} answered {status} {errcode}: {error}")]
    Remote {
        /// The server that answered.
        server: OwnedServerName,
        /// The HTTP status.
        status: u16,
        /// The Matrix error code (`M_UNKNOWN` when the body had none).
        errcode: String,
        /// The message.
        error: String,
    },
    /// The server's answer is not what the endpoint defines.
    #[error("invalid answer from {server}: {reason}")]
    InvalidResponse {
        /// The server that answered.
        server: OwnedServerName,
        /// Why.
        reason: String,
    },
    /// No valid signing key of the server could be obtained.
    #[error("no valid signing keys of {server}: {reason}")]
    Keys {
        /// The server whose keys are missing.
        server: OwnedServerName,
        /// Why.
        reason: String,
    },
    /// A signature or hash does not verify.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// The HTTP client could not be set up (TLS roots).
    #[error("federation client setup: {0}")]
    Setup(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Which servers this one federates with: `federation.enabled` and `federation.allowed_servers`.
#[derive(Clone, Debug)]
pub struct Partners {
    enabled: bool,
    own: OwnedServerName,
    allowed: BTreeSet<OwnedServerName>,
}

impl Partners {
    /// The partners of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.federation.enabled,
            own: config.server_name.clone(),
            allowed: config.federation.allowed_servers.iter().cloned().collect(),
        }
    }

    /// Whether federation is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `server` may talk to this one (any server when the allow-list is empty).
    pub fn is_allowed(&self, server: &ServerName) -> bool {
        self.allowed.is_empty() || self.allowed.contains(server) || server == self.own
    }

    /// Refuses when federation is disabled or `server` is not a partner.
    pub fn check(&self, server: &ServerName) -> Result<(), FederationError> {
        if !self.enabled {
            return Err(FederationError::Disabled);
        }
        if !self.is_allowed(server) {
            return Err(FederationError::NotAllowed(server.to_owned()));
        }
        Ok(())
    }
}

/// Federation's transport services.
pub struct Federation {
    /// The signed HTTP client to other servers.
    pub client: FederationClient,
    /// Other servers' signing keys (and this server's own).
    pub keys: ServerKeyStore,
    /// The allow-list.
    pub partners: Partners,
    globals: Arc<Globals>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation").field("partners", &self.partners).finish_non_exhaustive()
    }
}

impl Federation {
    /// Sets up the client (TLS trust, timeouts) and opens the key store.
    pub fn new(
        db: &Arc<Db>,
        config: &Config,
        globals: Arc<Globals>,
    ) -> Result<Self, FederationError> {
        let partners = Partners::new(config);
        let client = FederationClient::new(&config.federation, partners.clone(), globals.clone())?;
        let keys =
            ServerKeyStore::new(db, config, partners.clone(), client.clone(), globals.clone())?;
        Ok(Self { client, keys, partners, globals })
    }
}

/// Runs storage work of the federation pipeline (an event's authorization, state resolution, its
/// write and fsync) without holding up the async executor: the worker thread hands its other
/// tasks to another thread while it blocks. Runs it in place on a single-threaded runtime.
pub(crate) fn off_the_executor<T>(work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded { tokio::task::block_in_place(work) } else { work() }
}

#[cfg(test)]
mod tests {
    use ruma::server_name;

    use super::*;

    #[test]
    fn the_allow_list_refuses_strangers() {
        let mut config = Config::default();
        config.federation.enabled = true;
        let open = Partners::new(&config);
        assert!(open.check(server_name!("anyone.example")).is_ok());
        config.federation.allowed_servers = vec![server_name!("partner.example").to_owned()];
        let closed = Partners::new(&config);
        assert!(closed.check(server_name!("partner.example")).is_ok());
        let error = closed.check(server_name!("stranger.example")).expect_err("refused");
        assert_eq!(error.to_string(), "server stranger.example is not a partner of this server");
        config.federation.enabled = false;
        assert!(matches!(
            Partners::new(&config).check(server_name!("partner.example")),
            Err(FederationError::Disabled)
        ));
    }
}
