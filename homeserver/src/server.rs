//! Running the server: bind, serve, background tasks, graceful shutdown.
//!
//! Shutdown: on SIGTERM or Ctrl-C the listener stops accepting, in-flight requests finish (long
//! polls are cut by their own timeouts), then the write-ahead log is flushed before exit.

mod connections;
pub mod tls;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::{api, config::Config, service::Services};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The services could not start.
    #[error(transparent)]
    Start(#[from] crate::service::StartError),
    /// The listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The federation listener's certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Opens the services and serves until a shutdown signal.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let services = Services::open(config.clone())?;
    let addr = SocketAddr::new(config.listen.address, config.listen.port);
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr, source })?;
    let local = listener.local_addr()?;
    let _ = services.bound_addr.set(local);
    // Bound before the line below, so that whoever reads it can already connect to both.
    let tls_listener = federation_listener(&config).await?;
    // Tests and scripts read this line to find the port when `listen.port` is 0.
    println!("relais listening on http://{local}");
    tracing::info!(server_name = %config.server_name, %local, "relais started");

    let typing = tokio::spawn(expire_typing(services.clone()));
    services.register_appservice_users().map_err(crate::service::StartError::from)?;
    services.start_appservice_senders();
    services.start_federation_sender();
    services.start_policy().map_err(crate::service::StartError::from)?;
    services.start_policy_reminders();
    let app = api::app(services.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.changed().await;
        }
    };
    let federation = match tls_listener {
        Some((listener, acceptor)) => {
            let (app, limits, stopped) = (app.clone(), config.limits.clone(), stopped());
            Some(tokio::spawn(async move {
                connections::serve(listener, app, &limits, Some(acceptor), stopped).await;
            }))
        }
        None => None,
    };
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(());
    });
    connections::serve(listener, app, &config.limits, None, stopped()).await;
    if let Some(federation) = federation {
        let _ = federation.await;
    }
    signal.abort();
    typing.abort();
    if let Err(e) = services.db.flush() {
        tracing::error!(error = %e, "flushing the database at shutdown failed");
    }
    tracing::info!("relais stopped");
    Ok(())
}

/// The federation TLS listener, bound, when `federation.tls.port` is set. Prints
/// `relais federation listening on https://ADDR` for tests and scripts.
async fn federation_listener(
    config: &Config,
) -> Result<Option<(TcpListener, tokio_rustls::TlsAcceptor)>, ServeError> {
    let tls = &config.federation.tls;
    if tls.port == 0 {
        return Ok(None);
    }
    let acceptor = tls::acceptor(tls)?;
    let addr = SocketAddr::new(tls.address, tls.port);
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr, source })?;
    let local = listener.local_addr()?;
    println!("relais federation listening on https://{local}");
    tracing::info!(%local, "federation TLS listener started");
    Ok(Some((listener, acceptor)))
}

/// Ends typing notifications whose timeout passed, and wakes the rooms' members.
async fn expire_typing(services: Arc<Services>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match services.ephemeral.expire_typing() {
            Ok(changed) => {
                for (room, count) in changed {
                    if let Ok(members) = services.rooms.joined_members(&room) {
                        services.notifier.notify(members.iter().map(|u| &**u), count);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "typing expiry failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
