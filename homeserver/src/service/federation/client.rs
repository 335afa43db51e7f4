//! The federation HTTP client: resolves the destination, builds the request from its ruma type,
//! signs it (`X-Matrix`), sends it over HTTPS and parses the answer into the ruma response or
//! the remote server's Matrix error.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use ruma::{
    ServerName,
    api::{
        IncomingResponse, Metadata, OutgoingRequest,
        auth_scheme::{AuthScheme, NoAuthentication},
        federation::authentication::{ServerSignatures, ServerSignaturesInput},
        path_builder::SinglePath,
    },
    signatures::Ed25519KeyPair,
};

use super::{
    FederationError, Partners,
    resolve::{Destination, Resolver},
};
use crate::{config::FederationConfig, service::globals::Globals};

/// The largest answer read from another server (a `send_join` of a large room is big).
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// Longest wait to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The authentication input of the schemes the client sends: X-Matrix signatures, or nothing.
pub trait OutgoingAuth: AuthScheme {
    /// The input for a request from `origin` to `destination` signed with `keypair`.
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        keypair: &'a Ed25519KeyPair,
    ) -> Self::Input<'a>;
}

impl OutgoingAuth for ServerSignatures {
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        keypair: &'a Ed25519KeyPair,
    ) -> ServerSignaturesInput<'a> {
        ServerSignaturesInput::new(origin.to_owned(), destination.to_owned(), keypair)
    }
}

impl OutgoingAuth for NoAuthentication {
    fn input(_: &ServerName, _: &ServerName, _: &Ed25519KeyPair) {}
}

/// Maps the TLS names of resolved destinations to the host actually connected to (an SRV
/// target), so that the certificate and `Host` stay the server's while the connection goes to
/// the target. Other names go to the system resolver.
#[derive(Default)]
struct ConnectOverrides(Mutex<HashMap<String, String>>);

impl reqwest::dns::Resolve for ConnectOverrides {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host =
            self.0.lock().get(name.as_str()).cloned().unwrap_or_else(|| name.as_str().into());
        Box::pin(async move {
            let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The signed HTTP client to other servers. Cheap to clone.
#[derive(Clone)]
pub struct FederationClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    resolver: Resolver,
    overrides: Arc<ConnectOverrides>,
    partners: Partners,
    globals: Arc<Globals>,
    timeout: Duration,
}

impl std::fmt::Debug for FederationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationClient").finish_non_exhaustive()
    }
}

impl FederationClient {
    /// A client trusting the system's roots and `tls.ca_file`, with `request_timeout_secs`.
    pub fn new(
        config: &FederationConfig,
        partners: Partners,
        globals: Arc<Globals>,
    ) -> Result<Self, FederationError> {
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let overrides = Arc::new(ConnectOverrides::default());
        let http = http_client(config, timeout)?
            .dns_resolver(overrides.clone())
            // A redirect would leave the resolved destination and its signature.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FederationError::Setup(e.to_string()))?;
        let well_known = http_client(config, timeout)?
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| FederationError::Setup(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                resolver: Resolver::new(well_known),
                overrides,
                partners,
                globals,
                timeout,
            }),
        })
    }

    /// This server's name: the origin of every request.
    pub fn origin(&self) -> &ServerName {
        &self.inner.globals.server_name
    }

    /// Where `server` is reached (server discovery).
    pub async fn resolve(&self, server: &ServerName) -> Destination {
        self.inner.resolver.resolve(server).await
    }

    /// Sends `request` to `destination` and returns its answer, within `request_timeout_secs`.
    ///
    /// Refused without a request when federation is disabled, `destination` is not a partner or
    /// is this server. A Matrix error answered by the destination comes back as
    /// [`FederationError::Remote`].
    pub async fn send<R>(
        &self,
        destination: &ServerName,
        request: R,
    ) -> Result<R::IncomingResponse, FederationError>
    where
        R: OutgoingRequest + Metadata<PathBuilder = SinglePath>,
        R::Authentication: OutgoingAuth,
    {
        self.send_with_timeout(destination, request, self.inner.timeout).await
    }

    /// Like [`FederationClient::send`] with its own timeout (a slow `send_join`).
    pub async fn send_with_timeout<R>(
        &self,
        destination: &ServerName,
        request: R,
        timeout: Duration,
    ) -> Result<R::IncomingResponse, FederationError>
    where
        R: OutgoingRequest + Metadata<PathBuilder = SinglePath>,
        R::Authentication: OutgoingAuth,
    {
        let inner = &self.inner;
        inner.partners.check(destination)?;
        if destination == self.origin() {
            return Err(FederationError::OwnServer(destination.to_owned()));
        }
        let server = || destination.to_owned();
        let target = inner.resolver.resolve(destination).await;
        match &target.connect_host {
            Some(host) => inner.overrides.0.lock().insert(target.tls_name.clone(), host.clone()),
            None => inner.overrides.0.lock().remove(&target.tls_name),
        };
        let auth = R::Authentication::input(self.origin(), destination, inner.globals.keypair());
        let http_request: http::Request<Vec<u8>> = request
            .try_into_http_request(&target.base_url(), auth, ())
            .map_err(|e| FederationError::Build { server: server(), reason: e.to_string() })?;
        let (parts, body) = http_request.into_parts();
        let url = parts.uri.to_string();
        let mut builder =
            inner.http.request(parts.method, &url).headers(parts.headers).timeout(timeout);
        builder = builder.header(http::header::HOST, target.host_header.as_str());
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                inner.resolver.forget(destination);
                if e.is_timeout() {
                    return Err(FederationError::Timeout { server: server() });
                }
                return Err(FederationError::Unreachable {
                    server: server(),
                    reason: error_chain(&e),
                });
            }
        };
        let response = read_response(destination, response).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(remote_error(destination, status.as_u16(), response.body()));
        }
        R::IncomingResponse::try_from_http_response(response).map_err(|e| {
            FederationError::InvalidResponse { server: server(), reason: e.to_string() }
        })
    }
}

/// A reqwest builder with the TLS trust and timeouts of `config`.
fn http_client(
    config: &FederationConfig,
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, FederationError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("Relais/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout));
    let ca_file = &config.tls.ca_file;
    if !ca_file.as_os_str().is_empty() {
        let pem = std::fs::read(ca_file).map_err(|e| {
            FederationError::Setup(format!("federation.tls.ca_file {}: {e}", ca_file.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            FederationError::Setup(format!("federation.tls.ca_file {}: {e}", ca_file.display()))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    if !config.tls.verify_certificates {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// The answer with its body read, at most [`MAX_RESPONSE_BYTES`].
async fn read_response(
    server: &ServerName,
    response: reqwest::Response,
) -> Result<http::Response<Bytes>, FederationError> {
    let too_large = || FederationError::InvalidResponse {
        server: server.to_owned(),
        reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
    };
    if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut builder = http::Response::builder().status(response.status());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(response.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut response = response;
    let mut body = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(FederationError::Timeout { server: server.to_owned() });
            }
            Err(e) => {
                return Err(FederationError::Unreachable {
                    server: server.to_owned(),
                    reason: error_chain(&e),
                });
            }
        }
    }
    builder.body(body.freeze()).map_err(|e| FederationError::InvalidResponse {
        server: server.to_owned(),
        reason: e.to_string(),
    })
}

/// The Matrix error of an error answer (`M_UNKNOWN` with the status when the body has none).
pub fn remote_error(server: &ServerName, status: u16, body: &[u8]) -> FederationError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    FederationError::Remote {
        server: server.to_owned(),
        status,
        errcode: text("errcode").unwrap_or_else(|| "M_UNKNOWN".to_owned()),
        error: text("error").unwrap_or_else(|| format!("HTTP {status}")),
    }
}

/// An error with its causes (reqwest's own message hides the TLS or connection reason).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use ruma::server_name;

    use super::*;

    #[test]
    fn remote_errors_keep_the_errcode() {
        let error = remote_error(
            server_name!("b.example"),
            403,
            br#"{"errcode":"M_FORBIDDEN","error":"no"}"#,
        );
        assert!(matches!(
            error,
            FederationError::Remote { status: 403, ref errcode, ref error, .. }
                if errcode == "M_FORBIDDEN" && error == "no"
        ));
        let error = remote_error(server_name!("b.example"), 502, b"<html>");
        assert!(matches!(
            error,
            FederationError::Remote { status: 502, ref errcode, .. } if errcode == "M_UNKNOWN"
        ));
    }
}
