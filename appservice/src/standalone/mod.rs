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
    config::ServiceConfig,
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

/// What the request handlers share.
pub struct Shared {
    config: ServiceConfig,
    homeserver: Homeserver,
    follower: Follower,
    /// Whether the directory is loaded: until then requests wait.
    ready: watch::Receiver<bool>,
    metrics: metrics::Metrics,
}

/// Longest wait between two attempts to read the directory at start-up.
const MAX_LOAD_RETRY: Duration = Duration::from_secs(30);

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(config: ServiceConfig) -> Result<(), StandaloneError> {
    let homeserver = Homeserver::new(&config)?;
    let follower = Follower::new(PolicyService::new(config.policy.clone(), &config.server_name)?);
    let (loaded, ready) = watch::channel(false);
    let address = config.listen;
    let metrics = metrics::Metrics::default();
    let shared = Arc::new(Shared { config, homeserver, follower, ready, metrics });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| StandaloneError::Listen { address, error })?;
    tracing::info!(%address, "relais-policy-service listening");
    // Listening first: the homeserver's transactions wait for the directory instead of failing.
    tokio::spawn(load_directory(shared.clone(), loaded));
    axum::serve(listener, http::router(shared))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|error| StandaloneError::Listen { address, error })
}

/// Reads the directory, retrying until the homeserver has the unit rooms, then tells the
/// homeserver the service is up (a ping), so that events queued meanwhile come at once.
async fn load_directory(shared: Arc<Shared>, loaded: watch::Sender<bool>) {
    let mut wait = Duration::from_secs(1);
    loop {
        match shared.follower.load(&shared.homeserver, &shared.config.server_name).await {
            Ok(records) => {
                tracing::info!(records, "policy directory loaded");
                loaded.send_replace(true);
                break;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_secs = wait.as_secs(), "directory not loaded");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_LOAD_RETRY);
            }
        }
    }
    if let Err(error) = shared.homeserver.ping().await {
        tracing::warn!(%error, "the homeserver could not ping this service");
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
