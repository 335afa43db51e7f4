//! The federation test harness: a private certificate authority with a certificate for
//! `localhost` and `127.0.0.1` (made once per test process), real `relais` servers federating
//! over TLS under the names `localhost:<port>`, and a [`ScriptedServer`]: a server played by the
//! test, with its own signing key served over TLS, whose signed (or forged) requests the test
//! writes itself.

use std::{
    net::TcpListener as StdListener,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use ruma::{
    CanonicalJsonObject, OwnedServerName,
    api::federation::authentication::{ServerSignaturesInput, XMatrix},
    signatures::Ed25519KeyPair,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use crate::{Reply, TestServer};

/// The test PKI: a CA and a leaf certificate for `localhost` and `127.0.0.1`, as PEM files.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA certificate, trusted by every server (`federation.tls.ca_file`).
    pub ca: PathBuf,
    /// The leaf certificate every server presents.
    pub certificate: PathBuf,
    /// The leaf's private key.
    pub private_key: PathBuf,
}

/// The PKI of this test process, made at first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("PKI directory");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Relais test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf certificate");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        Pki {
            ca: write("ca.pem", ca.pem()),
            certificate: write("server.pem", leaf.pem()),
            private_key: write("server.key", leaf_key.serialize_pem()),
            _dir: dir,
        }
    })
}

/// The ports [`free_port`] hands out: below the kernel's ephemeral range (32768 and up on
/// Linux), so that no listener on port 0 and no outgoing connection takes one between the pick
/// and the server's bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port on 127.0.0.1, never the same twice in a test process. The walk starts at a
/// point drawn from the process ID and the clock, so concurrent test processes rarely meet.
pub fn free_port() -> u16 {
    static NEXT: OnceLock<std::sync::atomic::AtomicU32> = OnceLock::new();
    let span = u32::from(PORTS.end - PORTS.start);
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        std::sync::atomic::AtomicU32::new(std::process::id().wrapping_mul(7919) ^ nanos)
    });
    for _ in 0..span {
        let offset = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % span;
        let port = PORTS.start + u16::try_from(offset).expect("offset below the span");
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

/// The environment of a federating server named `<host>:<port>` listening for federation on
/// `port`.
pub fn federation_env(host: &str, port: u16) -> Vec<(String, String)> {
    let pki = pki();
    let path = |p: &PathBuf| p.display().to_string();
    vec![
        ("RELAIS_SERVER_NAME".into(), format!("{host}:{port}")),
        ("RELAIS_FEDERATION__ENABLED".into(), "true".into()),
        ("RELAIS_FEDERATION__TLS__PORT".into(), port.to_string()),
        ("RELAIS_FEDERATION__TLS__ADDRESS".into(), "127.0.0.1".into()),
        ("RELAIS_FEDERATION__TLS__CERTIFICATE".into(), path(&pki.certificate)),
        ("RELAIS_FEDERATION__TLS__PRIVATE_KEY".into(), path(&pki.private_key)),
        ("RELAIS_FEDERATION__TLS__CA_FILE".into(), path(&pki.ca)),
        ("RELAIS_FEDERATION__REQUEST_TIMEOUT_SECS".into(), "10".into()),
    ]
}

/// A `relais` server federating over TLS.
pub struct FederatedServer {
    /// The server (its plaintext client API as usual).
    pub server: TestServer,
    /// Its server name, `localhost:<federation port>` (or `127.0.0.1:<port>`).
    pub server_name: String,
    /// Its federation base URL, `https://<server name>`.
    pub federation_url: String,
}

impl std::ops::Deref for FederatedServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl FederatedServer {
    /// Starts a federating server on a free port, with extra `RELAIS_*` settings (which override
    /// the federation ones).
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), env)
    }

    /// Starts a federating server whose federation listener (and name) uses `port`: pick ports
    /// first with [`free_port`] when servers must know each other's names before they start
    /// (`federation.allowed_servers`).
    pub fn start_on(port: u16, env: &[(&str, &str)]) -> Self {
        Self::start_named("localhost", port, env)
    }

    /// Starts a federating server named `<host>:<port>`: `localhost` or `127.0.0.1` (an IP
    /// literal), the names the test certificate carries.
    pub fn start_named(host: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let mut all = federation_env(host, port);
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = TestServer::start_with(&all);
        Self {
            server,
            server_name: format!("{host}:{port}"),
            federation_url: format!("https://{host}:{port}"),
        }
    }
}

/// Starts `n` servers federating with each other (open federation).
pub fn start_federation(n: usize) -> Vec<FederatedServer> {
    start_federation_with(n, &[])
}

/// Starts `n` federating servers with the same extra settings.
pub fn start_federation_with(n: usize, env: &[(&str, &str)]) -> Vec<FederatedServer> {
    (0..n).map(|_| FederatedServer::start(env)).collect()
}

/// An HTTPS client trusting the test CA.
pub fn https_client() -> reqwest::Client {
    let ca = std::fs::read(&pki().ca).expect("CA file");
    reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).expect("CA PEM"))
        .build()
        .expect("HTTPS client")
}

/// Sends a request to a federation base URL with the given `Authorization` header, if any.
pub async fn send_raw(
    base_url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    authorization: Option<&str>,
) -> Reply {
    let mut request = https_client().request(method, format!("{base_url}{path}"));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("HTTPS request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

/// A server played by the test: a signing key, `/_matrix/key/v2/server` served over TLS on
/// `localhost:<port>` (so real servers can fetch the key and check its requests), and requests
/// signed by the test.
pub struct ScriptedServer {
    /// Its server name, `localhost:<port>`.
    pub server_name: String,
    keypair: Ed25519KeyPair,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    /// Starts serving its keys on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server_name = format!("localhost:{port}");
        let keypair = new_keypair("scripted");
        let keys = Arc::new(signed_key_object(&server_name, &keypair).to_string());
        let acceptor = acceptor();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, keys) = (acceptor.clone(), keys.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else { return };
                    let head = read_head(&mut stream).await;
                    let (status, body) = if head.starts_with("GET /_matrix/key/v2/server") {
                        ("200 OK", (*keys).clone())
                    } else {
                        ("404 Not Found", json!({"errcode": "M_UNRECOGNIZED"}).to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { server_name, keypair, task }
    }

    /// Stops serving its keys (the port then refuses connections): other servers must get them
    /// from what they stored, or from a notary.
    pub fn stop_serving_keys(&self) {
        self.task.abort();
    }

    /// The `X-Matrix` header of a request to `destination`, signed with this server's key.
    pub fn x_matrix(
        &self,
        destination: &str,
        method: &reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> String {
        sign_request(&self.server_name, &self.keypair, destination, method, path, body)
    }

    /// The same request signed with a key that is not this server's.
    pub fn forged_x_matrix(
        &self,
        destination: &str,
        method: &reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> String {
        let impostor = new_keypair("scripted");
        sign_request(&self.server_name, &impostor, destination, method, path, body)
    }

    /// Sends a signed request to `server`'s federation listener.
    pub async fn request(
        &self,
        server: &FederatedServer,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let header = self.x_matrix(&server.server_name, &method, path, body.as_ref());
        send_raw(&server.federation_url, method, path, body.as_ref(), Some(&header)).await
    }
}

fn new_keypair(version: &str) -> Ed25519KeyPair {
    Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), version.to_owned()).expect("key pair")
}

/// The key object of `server_name`, signed by itself, valid for a day.
fn signed_key_object(server_name: &str, keypair: &Ed25519KeyPair) -> Value {
    let public =
        ruma::serde::Base64::<ruma::serde::base64::Standard, _>::new(keypair.public_key().to_vec())
            .encode();
    let valid_until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 86_400_000;
    let object = json!({
        "server_name": server_name,
        "valid_until_ts": u64::try_from(valid_until).expect("time"),
        "verify_keys": { format!("ed25519:{}", keypair.version()): { "key": public } },
        "old_verify_keys": {},
    });
    let mut object: CanonicalJsonObject = serde_json::from_value(object).expect("canonical");
    ruma::signatures::sign_json(server_name, keypair, &mut object).expect("sign");
    serde_json::to_value(object).expect("json")
}

fn sign_request(
    origin: &str,
    keypair: &Ed25519KeyPair,
    destination: &str,
    method: &reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> String {
    let body = body.map(|b| serde_json::to_vec(b).expect("body")).unwrap_or_default();
    let request =
        http::Request::builder().method(method.as_str()).uri(path).body(body).expect("request");
    let origin = OwnedServerName::try_from(origin).expect("origin");
    let destination = OwnedServerName::try_from(destination).expect("destination");
    let input = ServerSignaturesInput::new(origin, destination, keypair);
    XMatrix::try_from_http_request(&request, input).expect("X-Matrix").to_string()
}

/// The TLS acceptor of scripted servers: the test PKI's leaf certificate, HTTP/1.1.
fn acceptor() -> TlsAcceptor {
    let pki = pki();
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&pki.certificate)
            .expect("certificate")
            .collect::<Result<_, _>>()
            .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(&pki.private_key).expect("key");
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .expect("TLS config");
    TlsAcceptor::from(Arc::new(config))
}

/// Reads a request head (the request line and headers), at most 64 KiB.
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
