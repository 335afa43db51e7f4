//! Server discovery, as the spec's "Resolving server names" describes it: where to connect to
//! reach a server name, which name its certificate must carry, and which `Host` header to send.
//!
//! In order: an IP literal (with its port or 8448); a hostname with an explicit port; the
//! hostname's `/.well-known/matrix/server` delegation (cached, and resolved again the same way
//! without its own well-known); the SRV records `_matrix-fed._tcp` then the deprecated
//! `_matrix._tcp`; finally the hostname on port 8448.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use hickory_resolver::TokioResolver;
use parking_lot::Mutex;
use ruma::{OwnedServerName, ServerName};

/// The default federation port.
pub const DEFAULT_PORT: u16 = 8448;
/// How long a successful well-known answer is kept when it says nothing.
const WELL_KNOWN_DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest a well-known answer is kept.
const WELL_KNOWN_MAX_TTL: Duration = Duration::from_secs(48 * 3600);
/// How long a failed well-known lookup is remembered.
const WELL_KNOWN_FAILURE_TTL: Duration = Duration::from_secs(3600);
/// How long a resolution through SRV or the default port is kept.
const RESOLUTION_TTL: Duration = Duration::from_secs(3600);
/// The largest well-known body read.
const WELL_KNOWN_MAX_BYTES: usize = 50 * 1024;

/// Where and how to reach a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The host in the URL, which the certificate must match (SNI): a hostname or an IP literal
    /// (IPv6 in brackets).
    pub tls_name: String,
    /// The port connected to.
    pub port: u16,
    /// The host whose addresses are connected to when it is not `tls_name` (an SRV target).
    pub connect_host: Option<String>,
    /// The `Host` header of the requests.
    pub host_header: String,
}

impl Destination {
    /// The base URL of requests: `https://<tls_name>:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://{}:{}", self.tls_name, self.port)
    }

    fn direct(host: &str, port: u16, host_header: String) -> Self {
        Self { tls_name: host.to_owned(), port, connect_host: None, host_header }
    }
}

/// Errors of server discovery.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The DNS resolver could not be set up from the system's configuration.
    #[error("DNS resolver unavailable: {0}")]
    Dns(String),
}

/// Resolves server names, with caches of the well-known answers and of the results.
pub struct Resolver {
    /// Fetches `/.well-known/matrix/server` (ordinary DNS, port 443, redirects followed).
    http: reqwest::Client,
    dns: Option<TokioResolver>,
    well_known: Mutex<HashMap<String, (Option<String>, Instant)>>,
    resolved: Mutex<HashMap<OwnedServerName, (Destination, Instant)>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver fetching well-known answers with `http`. Without a usable system DNS
    /// configuration, SRV records are skipped (logged once).
    pub fn new(http: reqwest::Client) -> Self {
        let dns = match TokioResolver::builder_tokio() {
            Ok(builder) => Some(builder.build()),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS configuration: SRV lookups are skipped");
                None
            }
        };
        Self { http, dns, well_known: Mutex::default(), resolved: Mutex::default() }
    }

    /// Where to reach `server`.
    pub async fn resolve(&self, server: &ServerName) -> Destination {
        if let Some(destination) = without_lookup(server) {
            return destination;
        }
        let now = Instant::now();
        if let Some((destination, until)) = self.resolved.lock().get(server)
            && *until > now
        {
            return destination.clone();
        }
        let host = server.host().to_owned();
        let (destination, ttl) = match self.well_known(&host).await {
            Some((delegated, ttl)) => (self.resolve_delegated(&delegated).await, ttl),
            None => (self.resolve_hostname(&host, host.clone()).await, RESOLUTION_TTL),
        };
        self.resolved.lock().insert(server.to_owned(), (destination.clone(), now + ttl));
        destination
    }

    /// Forgets what is cached about `server` (after a connection failure).
    pub fn forget(&self, server: &ServerName) {
        self.resolved.lock().remove(server);
        self.well_known.lock().remove(server.host());
    }

    /// Step 3's delegated name, resolved like a server name without a well-known of its own.
    async fn resolve_delegated(&self, delegated: &str) -> Destination {
        match <&ServerName>::try_from(delegated) {
            Ok(name) => match without_lookup(name) {
                Some(destination) => destination,
                None => self.resolve_hostname(name.host(), name.host().to_owned()).await,
            },
            // `parse_well_known` only keeps valid server names.
            Err(_) => Destination::direct(delegated, DEFAULT_PORT, delegated.to_owned()),
        }
    }

    /// Steps 4 to 6 for a hostname without a port: SRV records, then port 8448.
    async fn resolve_hostname(&self, host: &str, host_header: String) -> Destination {
        for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
            if let Some((target, port)) = self.srv(&format!("{service}.{host}.")).await {
                let connect_host = (target != host).then_some(target);
                return Destination { tls_name: host.to_owned(), port, connect_host, host_header };
            }
        }
        Destination::direct(host, DEFAULT_PORT, host_header)
    }

    async fn srv(&self, name: &str) -> Option<(String, u16)> {
        let dns = self.dns.as_ref()?;
        match dns.srv_lookup(name).await {
            Ok(lookup) => pick_srv(
                lookup.iter().map(|r| (r.priority(), r.weight(), r.port(), r.target().to_ascii())),
            ),
            Err(e) => {
                if !e.is_no_records_found() {
                    tracing::debug!(error = %e, name, "SRV lookup failed");
                }
                None
            }
        }
    }

    /// The well-known delegation of `host` and how long it holds, cached.
    async fn well_known(&self, host: &str) -> Option<(String, Duration)> {
        let now = Instant::now();
        if let Some((answer, until)) = self.well_known.lock().get(host)
            && *until > now
        {
            return answer.clone().map(|a| (a, until.saturating_duration_since(now)));
        }
        let (answer, ttl) = match self.fetch_well_known(host).await {
            Some((answer, ttl)) => (Some(answer), ttl),
            None => (None, WELL_KNOWN_FAILURE_TTL),
        };
        self.well_known.lock().insert(host.to_owned(), (answer.clone(), now + ttl));
        answer.map(|a| (a, ttl))
    }

    async fn fetch_well_known(&self, host: &str) -> Option<(String, Duration)> {
        let url = format!("https://{host}/.well-known/matrix/server");
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e, host, "no well-known delegation");
                return None;
            }
        };
        if !response.status().is_success() {
            return None;
        }
        let ttl = cache_duration(
            response.headers().get(http::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
        );
        if response.content_length().is_some_and(|n| n > WELL_KNOWN_MAX_BYTES as u64) {
            return None;
        }
        let body = response.bytes().await.ok()?;
        if body.len() > WELL_KNOWN_MAX_BYTES {
            return None;
        }
        parse_well_known(&body).map(|server| (server, ttl))
    }
}

/// Steps 1 and 2: an IP literal, or a hostname with an explicit port, need no lookup.
pub fn without_lookup(server: &ServerName) -> Option<Destination> {
    let host = server.host();
    let header = server.as_str().to_owned();
    if is_ip_literal(host) {
        return Some(Destination::direct(host, server.port().unwrap_or(DEFAULT_PORT), header));
    }
    server.port().map(|port| Destination::direct(host, port, header))
}

/// Whether `host` is an IPv4 address or a bracketed IPv6 address.
pub fn is_ip_literal(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().is_ok()
}

/// The `m.server` of a well-known answer, when it is a valid server name.
pub fn parse_well_known(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let server = value.get("m.server")?.as_str()?;
    <&ServerName>::try_from(server).ok()?;
    Some(server.to_owned())
}

/// How long a well-known answer is kept: its `Cache-Control` `max-age` (none for `no-store` or
/// `no-cache`), else 24 hours; at most 48 hours.
pub fn cache_duration(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else { return WELL_KNOWN_DEFAULT_TTL };
    let mut ttl = WELL_KNOWN_DEFAULT_TTL;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=")
            && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
        {
            ttl = Duration::from_secs(seconds);
        }
    }
    ttl.min(WELL_KNOWN_MAX_TTL)
}

/// The SRV record to use among `(priority, weight, port, target)`: the lowest priority, then the
/// highest weight; none when the target is `.` (the service is explicitly unavailable).
pub fn pick_srv(
    records: impl IntoIterator<Item = (u16, u16, u16, String)>,
) -> Option<(String, u16)> {
    let (_, _, port, target) = records
        .into_iter()
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)).then_with(|| a.3.cmp(&b.3)))?;
    let target = target.trim_end_matches('.');
    if target.is_empty() {
        return None;
    }
    Some((target.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use ruma::server_name;

    use super::*;

    #[test]
    fn ip_literals_connect_directly() {
        let d = without_lookup(server_name!("1.2.3.4")).expect("no lookup");
        assert_eq!(d.base_url(), "https://1.2.3.4:8448");
        assert_eq!(d.host_header, "1.2.3.4");
        let d = without_lookup(server_name!("[::1]:9000")).expect("no lookup");
        assert_eq!(d.base_url(), "https://[::1]:9000");
        assert_eq!(d.host_header, "[::1]:9000");
    }

    #[test]
    fn an_explicit_port_skips_the_lookups() {
        let d = without_lookup(server_name!("example.org:8449")).expect("no lookup");
        assert_eq!(d.base_url(), "https://example.org:8449");
        assert_eq!(d.host_header, "example.org:8449");
        assert_eq!(d.connect_host, None);
        assert!(without_lookup(server_name!("example.org")).is_none());
    }

    #[test]
    fn well_known_answers_are_checked() {
        assert_eq!(
            parse_well_known(br#"{"m.server": "matrix.example.org:443"}"#).as_deref(),
            Some("matrix.example.org:443")
        );
        assert_eq!(parse_well_known(br#"{"m.server": "not a name"}"#), None);
        assert_eq!(parse_well_known(br#"{"m.server": 1}"#), None);
        assert_eq!(parse_well_known(b"<html>"), None);
    }

    #[test]
    fn well_known_cache_follows_cache_control() {
        assert_eq!(cache_duration(None), Duration::from_secs(86_400));
        assert_eq!(cache_duration(Some("public, max-age=600")), Duration::from_secs(600));
        assert_eq!(cache_duration(Some("max-age=999999999")), Duration::from_secs(48 * 3600));
        assert_eq!(cache_duration(Some("no-store")), Duration::ZERO);
    }

    #[test]
    fn srv_picks_the_lowest_priority_and_refuses_dot() {
        let records = vec![
            (20, 0, 1, "b.example.org.".to_owned()),
            (10, 5, 8448, "a.example.org.".to_owned()),
            (10, 1, 9, "c.example.org.".to_owned()),
        ];
        assert_eq!(pick_srv(records), Some(("a.example.org".to_owned(), 8448)));
        assert_eq!(pick_srv(vec![(0, 0, 0, ".".to_owned())]), None);
        assert_eq!(pick_srv(Vec::new()), None);
    }
}
