//! `relais-policy-service`: the policy service on its own, beside a homeserver (Relais, or
//! Synapse with the `synapse-http-antispam` module).
//!
//! It is registered with the homeserver as an application service whose sender is the policy
//! bot. At start-up it reads the directory from the unit rooms (the homeserver writes them), then
//! follows it from the events the homeserver pushes; it answers the homeserver's policy checks
//! from that index, reading the rooms a check is about through the homeserver's admin API.
//!
//! - [`config`]: the configuration file and the registration file it generates;
//! - [`homeserver`]: the calls to the homeserver;
//! - [`directory`]: the directory, loaded and followed;
//! - [`lookup`]: rooms and memberships for a decision;
//! - [`http`]: the check and application service endpoints;
//! - [`metrics`]: `GET /metrics`;
//! - [`operator`]: the command line's `member`, which records a user in the directory.

pub mod config;
pub mod directory;
pub mod homeserver;
mod http;
mod lookup;
pub mod metrics;
pub mod operator;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use self::{
    config::{HomeserverConfig, ServiceConfig},
    directory::Follower,
    homeserver::{Homeserver, HomeserverError},
};
use crate::{PolicyService, ServiceError};

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The policy configuration is inconsistent.
    #[error(transparent)]
    Policy(#[from] ServiceError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    /// The operator's request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The listener failed.
    #[error("listener on {address}: {error}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// What failed.
        error: std::io::Error,
    },
}

/// One homeserver the service guards: its client, its directory, and whether that is loaded.
pub struct Instance {
    server: HomeserverConfig,
    homeserver: Homeserver,
    follower: Follower,
    /// Whether the directory is loaded: until then its requests wait.
    ready: watch::Receiver<bool>,
}

/// What the request handlers share.
pub struct Shared {
    config: ServiceConfig,
    /// The homeservers, in the configuration's order.
    instances: Vec<Instance>,
    metrics: metrics::Metrics,
}

/// Longest wait between two attempts to read the directory at start-up.
const MAX_LOAD_RETRY: Duration = Duration::from_secs(30);

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(config: ServiceConfig) -> Result<(), StandaloneError> {
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let mut instances = Vec::new();
    let mut loaders = Vec::new();
    for server in config.all_homeservers() {
        let homeserver = Homeserver::new(&server, timeout)?;
        let service =
            PolicyService::new(config.policy_for(&server.server_name), &server.server_name)?;
        let (loaded, ready) = watch::channel(false);
        loaders.push(loaded);
        instances.push(Instance { server, homeserver, follower: Follower::new(service), ready });
    }
    let address = config.listen;
    let metrics = metrics::Metrics::default();
    let shared = Arc::new(Shared { config, instances, metrics });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| StandaloneError::Listen { address, error })?;
    tracing::info!(%address, homeservers = shared.instances.len(), "relais-policy-service listening");
    // Listening first: the homeservers' transactions wait for their directory instead of failing.
    for (index, loaded) in loaders.into_iter().enumerate() {
        tokio::spawn(load_directory(shared.clone(), index, loaded));
    }
    axum::serve(listener, http::router(shared))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|error| StandaloneError::Listen { address, error })
}

/// Registers the bot and reads the directory of the `index`th homeserver (creating the unit
/// rooms it does not have yet), retrying until both work, then tells the homeserver the service
/// is up (a ping), so that events queued meanwhile come at once.
async fn load_directory(shared: Arc<Shared>, index: usize, loaded: watch::Sender<bool>) {
    let Some(instance) = shared.instances.get(index) else { return };
    let server = instance.server.server_name.as_str();
    let mut wait = Duration::from_secs(1);
    let bot = &shared.config.policy.bot_localpart;
    loop {
        if let Err(error) = instance.homeserver.register_bot(bot).await {
            tracing::warn!(server, %error, retry_in_secs = wait.as_secs(), "the bot is not registered");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_LOAD_RETRY);
            continue;
        }
        match instance.follower.load(&instance.homeserver, server).await {
            Ok(records) => {
                tracing::info!(server, records, "policy directory loaded");
                loaded.send_replace(true);
                break;
            }
            Err(error) => {
                tracing::warn!(server, %error, retry_in_secs = wait.as_secs(), "directory not loaded");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_LOAD_RETRY);
            }
        }
    }
    if let Err(error) = instance.homeserver.ping().await {
        tracing::warn!(server, %error, "the homeserver could not ping this service");
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
