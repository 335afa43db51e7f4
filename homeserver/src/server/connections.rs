//! The HTTP connections: hyper's server with the header size and slow-client limits of
//! `[limits]` (which `axum::serve` does not expose), and `axum::serve`'s graceful shutdown: on
//! the signal the listener stops accepting, each connection finishes its in-flight requests, and
//! `serve` returns when every connection has closed (or after `request_timeout_secs`, for peers
//! that do not take part). The federation listener serves the same way over TLS (the handshake
//! runs in the connection's task, within the header read timeout).

use std::{future::Future, pin::pin, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo};
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::watch,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::LimitsConfig;

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` completes, then drains the
/// open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitsConfig,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let handshake_timeout = Duration::from_secs(limits.header_read_timeout_secs);
    let builder = builder(limits);
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let service = app.clone().map_request(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request.map(Body::new)
        });
        let builder = builder.clone();
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(service);
            match tls {
                None => serve_connection(&builder, stream, service, &signal_tx, remote).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&builder, stream, service, &signal_tx, remote).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %remote, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    // No request outlives `request_timeout_secs`; a connection still open after it is a peer that
    // does not take part in the shutdown (an HTTP/2 client that never acknowledges the GOAWAY).
    let drain = Duration::from_secs(limits.request_timeout_secs);
    if tokio::time::timeout(drain, close_tx.closed()).await.is_err() {
        tracing::warn!("connections still open after the drain time are closed");
    }
}

/// Serves one connection until it closes; on the shutdown signal it finishes its in-flight
/// requests first.
async fn serve_connection<IO, S>(
    builder: &Builder<TokioExecutor>,
    stream: IO,
    service: S,
    signal_tx: &watch::Sender<()>,
    remote: std::net::SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection =
        pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    let mut signal = pin!(signal_tx.closed().fuse());
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            () = &mut signal => connection.as_mut().graceful_shutdown(),
        }
    }
}

/// hyper's connection builder with the limits: HTTP/1 heads larger than `max_header_bytes` get
/// 431 (hyper's read buffer is that large, so nothing larger is ever buffered), HTTP/2 header
/// lists larger than it are refused, and a client that does not send a whole head within
/// `header_read_timeout_secs` is disconnected.
fn builder(limits: &LimitsConfig) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}
