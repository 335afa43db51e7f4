//! Server configuration: one TOML file, every key overridable by a `RELAIS_` environment variable.
//!
//! Defaults are embedded so that `relais serve` works with no file at all. Every option is
//! documented in `config.example.toml`; a test keeps the two in step.

use std::{net::IpAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use ruma::{OwnedServerName, RoomVersionId};
use serde::{Deserialize, Serialize};

pub use self::email::{EmailConfig, SmtpSecurity};
use crate::service::policy_check::Callback;

mod email;

/// Errors raised while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value of the wrong kind, or an unknown key was given.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A value parsed but breaks a rule (e.g. an unsupported room version).
    #[error("invalid configuration: `{key}`: {reason}")]
    Rule {
        /// The dotted key path.
        key: &'static str,
        /// What is expected.
        reason: String,
    },
}

/// The whole configuration of a Relais homeserver.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Matrix server name: the part after `:` in user IDs.
    pub server_name: OwnedServerName,
    /// Where the HTTP listener binds.
    pub listen: ListenConfig,
    /// Storage settings.
    pub database: DatabaseConfig,
    /// Account registration.
    pub registration: RegistrationConfig,
    /// Room defaults.
    pub rooms: RoomsConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Access and refresh token lifetimes.
    pub tokens: TokensConfig,
    /// Sync behaviour.
    pub sync: SyncConfig,
    /// The media repository.
    pub media: MediaConfig,
    /// Rate limits and the login back-off.
    pub rate_limits: RateLimitsConfig,
    /// Application services (bridges, bots, the policy service).
    pub appservices: AppservicesConfig,
    /// This server's identity towards other servers.
    pub federation: FederationConfig,
    /// The policy layer: tiers, access classes, organisation tree, delegated administration.
    pub policy: relais_appservice::PolicyConfig,
    /// The policy service asked before gated actions (`docs/policy-checks.md`).
    pub policy_checks: PolicyChecksConfig,
    /// E-mail: the SMTP server verification links are sent through.
    pub email: EmailConfig,
    /// The base URL clients should use, announced in `/.well-known/matrix/client`.
    /// Empty means `http://<listen.address>:<listen.port>`.
    pub public_base_url: String,
    /// Log filter in `tracing` syntax (`info`, `relais=debug,info`, ...).
    pub log: String,
    /// Threads and memory allocation of the process.
    pub runtime: RuntimeConfig,
}

/// Threads and memory allocation of the process.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads running requests; 0: one per CPU core.
    pub worker_threads: usize,
    /// Most threads running blocking work (storage reads and writes) at once; more work waits.
    /// Each thread costs its stack and, with glibc, possibly a malloc arena.
    pub blocking_threads: usize,
}

/// HTTP listener settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The IP address to bind.
    pub address: IpAddr,
    /// The TCP port; 0 picks a free port (printed at start-up).
    pub port: u16,
}

/// Storage settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Directory of the RocksDB database.
    pub path: PathBuf,
    /// Whether each acknowledged write waits for the write-ahead log to reach the disk (fsync).
    /// With `false`, writes survive a process crash but not a power loss.
    pub sync_writes: bool,
    /// Size of RocksDB's shared block cache, in MiB.
    pub cache_capacity_mb: u64,
    /// Number of full room states kept in memory.
    pub state_cache_entries: usize,
    /// Number of PDUs kept in memory.
    pub pdu_cache_entries: usize,
}

/// Registration settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether anyone may register an account without a token.
    pub open: bool,
    /// Tokens that allow registration (`m.login.registration_token`). Empty: no token flow.
    pub tokens: Vec<String>,
}

/// Room defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsConfig {
    /// Room version of new rooms when the client does not ask for one.
    #[serde(deserialize_with = "room_version_from_string_or_number")]
    pub default_version: RoomVersionId,
}

/// Federation (the Server-Server API): this server's identity towards other servers, which servers
/// it talks to, and its TLS listener (`docs/federation.md`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Whether this server federates. When false, signed federation requests are refused and
    /// nothing is sent to other servers; the keys and version endpoints still answer.
    pub enabled: bool,
    /// The servers this one federates with (a closed federation of partners); empty: any server.
    pub allowed_servers: Vec<OwnedServerName>,
    /// Notary servers asked for other servers' keys when a server cannot be asked directly.
    pub trusted_key_servers: Vec<OwnedServerName>,
    /// Longest wait for another server to answer one request, in seconds.
    pub request_timeout_secs: u64,
    /// Longest wait between two attempts to deliver a transaction to a server that is down, in
    /// seconds (the wait doubles from one second up to this).
    pub max_retry_interval_secs: u64,
    /// How long other servers may cache this server's signing keys, in hours.
    pub key_validity_hours: u64,
    /// Where other servers reach this one (`host:port`), announced in
    /// `/.well-known/matrix/server`; empty: no delegation (404).
    pub well_known_server: String,
    /// The TLS listener other servers connect to, and the trust of outgoing connections.
    pub tls: FederationTlsConfig,
}

/// The federation TLS listener and the certificates trusted when connecting to other servers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationTlsConfig {
    /// The TCP port of the TLS listener (8448 by convention); 0: no TLS listener.
    pub port: u16,
    /// The IP address the TLS listener binds.
    pub address: IpAddr,
    /// The certificate chain of the listener (PEM file).
    pub certificate: PathBuf,
    /// The private key of the listener (PEM file).
    pub private_key: PathBuf,
    /// Extra certificate authorities trusted for outgoing connections (PEM file), for private
    /// PKIs and tests; empty: only the system's roots.
    pub ca_file: PathBuf,
    /// Whether other servers' certificates are checked. Turn off only in tests.
    pub verify_certificates: bool,
}

/// Application services.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppservicesConfig {
    /// Registration files (YAML, the format Synapse reads) of the application services.
    pub registration_files: Vec<PathBuf>,
    /// Longest wait for an application service to answer a transaction or a query, in seconds.
    pub request_timeout_secs: u64,
    /// Most events in one transaction; more wait for the next one.
    pub max_events_per_transaction: usize,
    /// Longest wait between two attempts to deliver a transaction that failed, in seconds (the
    /// wait starts at one second and doubles).
    pub max_retry_interval_secs: u64,
}

/// The policy service asked before gated actions, with the protocol of Synapse's HTTP antispam
/// module (`docs/policy-checks.md`).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChecksConfig {
    /// Base URL of the service; each check is a POST to `<url>/<callback>`. Empty: no checks.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; empty sends no header. Never logged, and
    /// printed as `<redacted>` by `relais check-config`.
    #[serde(serialize_with = "redacted")]
    pub token: String,
    /// Longest wait for an answer, in milliseconds; no answer in time refuses the action.
    pub timeout_ms: u64,
    /// The callbacks asked; the others allow without a request.
    pub callbacks: Vec<Callback>,
    /// Callbacks whose action goes ahead when the service gives no usable answer (fail open).
    pub fail_open: Vec<Callback>,
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for PolicyChecksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyChecksConfig")
            .field("url", &self.url)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("timeout_ms", &self.timeout_ms)
            .field("callbacks", &self.callbacks)
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

impl Default for PolicyChecksConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: String::new(),
            timeout_ms: 2000,
            callbacks: Callback::ALL.to_vec(),
            fail_open: Vec::new(),
        }
    }
}

/// Request limits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Longest a request may take before it is cut (408), in seconds. Must exceed the longest
    /// `/sync` long-poll.
    pub request_timeout_secs: u64,
    /// Most state events accepted in one `createRoom` (`initial_state`).
    pub max_initial_state: usize,
    /// Most users invited in one `createRoom`.
    pub max_invites: usize,
    /// Deepest nesting of arrays and objects in a JSON request body.
    pub max_json_depth: usize,
    /// Longest string (or object key) in a JSON request body, in bytes.
    pub max_json_string_bytes: usize,
    /// Most elements of one array, or members of one object, in a JSON request body.
    pub max_json_items: usize,
    /// Most users in one `/keys/query`.
    pub max_keys_query_users: usize,
    /// Most devices (summed over users) in one `/keys/claim`.
    pub max_keys_claim_devices: usize,
    /// Most messages (summed over users, `*` counting as one) in one `/sendToDevice`.
    pub max_to_device_messages: usize,
    /// Most devices in one `/delete_devices`.
    pub max_delete_devices: usize,
    /// Largest request head (request line and headers) accepted, in bytes; HTTP/1 answers 431
    /// beyond it, HTTP/2 refuses the stream.
    pub max_header_bytes: usize,
    /// Longest a client may take to send a request's head, in seconds, before the connection is
    /// closed (slow-client protection; also closes idle keep-alive connections).
    pub header_read_timeout_secs: u64,
}

/// Access and refresh token lifetimes (Synapse's defaults).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime of an access token issued with a refresh token, in seconds.
    pub refreshable_access_token_lifetime_secs: u64,
    /// Lifetime of an access token issued without a refresh token, in seconds; 0: no expiry.
    pub nonrefreshable_access_token_lifetime_secs: u64,
    /// Lifetime of a refresh token, in seconds; 0: no expiry.
    pub refresh_token_lifetime_secs: u64,
}

/// Sync behaviour.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Longest a `/sync` long-poll is held, in milliseconds, whatever the client asks.
    pub max_timeout_ms: u64,
    /// Timeline events per room in an initial sync when the filter gives no limit.
    pub default_timeline_limit: usize,
}

/// The media repository: uploads, downloads, thumbnails.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Directory of the media files. Empty: `<database.path>-media`, next to the database.
    pub path: PathBuf,
    /// Largest file accepted by an upload, in bytes.
    pub max_upload_bytes: u64,
    /// Most bytes one user may have uploaded in total; 0 means no quota.
    pub user_quota_bytes: u64,
    /// Whether media uploaded while this is on are refused by the legacy unauthenticated
    /// `/_matrix/media/v3/download|thumbnail` endpoints (the spec's media "freeze").
    pub freeze_unauthenticated: bool,
    /// Most `/media/v1/create` URIs a user may hold without having uploaded to them.
    pub max_pending_uploads: usize,
    /// How long a URI from `/media/v1/create` waits for its upload, in seconds.
    pub pending_upload_expiry_secs: u64,
    /// Largest image (width x height, in pixels) the server decodes to make a thumbnail.
    pub max_image_pixels: u64,
}

/// Rate limits: token buckets per user (or device) and per IP address, and the back-off after
/// failed logins.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Whether any rate limit or login back-off applies.
    pub enabled: bool,
    /// For the actions of logged-in users, an IP address gets this many times a user's bucket
    /// (several users may share an address).
    pub ip_factor: u32,
    /// `/login` attempts per IP address.
    pub login: RateConfig,
    /// `/register` requests per IP address.
    pub registration: RateConfig,
    /// Events sent with `/send` per device.
    pub send: RateConfig,
    /// Joins and knocks per user.
    pub join: RateConfig,
    /// Invites per user.
    pub invite: RateConfig,
    /// Media uploads (and `/media/v1/create`) per user.
    pub media_upload: RateConfig,
    /// The back-off after failed logins.
    pub login_backoff: LoginBackoffConfig,
}

/// One token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests regained per second; 0 disables this limit.
    pub per_second: f64,
    /// Most requests accepted in a burst; 0 disables this limit.
    pub burst: u32,
}

/// The back-off after failed logins, per account and per IP address.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBackoffConfig {
    /// Failed logins to one account (from any address) before the back-off starts.
    pub free_failures_per_account: u32,
    /// Failed logins from one IP address (to any account) before the back-off starts.
    pub free_failures_per_ip: u32,
    /// The first wait, in milliseconds; it doubles with each further failure.
    pub base_delay_ms: u64,
    /// The longest wait, in seconds: the most a real user can be kept out.
    pub max_delay_secs: u64,
    /// Failures older than this, in seconds, are forgotten.
    pub forget_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: ruma::server_name!("localhost").to_owned(),
            listen: ListenConfig { address: IpAddr::from([127, 0, 0, 1]), port: 8008 },
            database: DatabaseConfig {
                path: PathBuf::from("./data"),
                sync_writes: true,
                cache_capacity_mb: 256,
                state_cache_entries: 1000,
                pdu_cache_entries: 20_000,
            },
            registration: RegistrationConfig { open: false, tokens: Vec::new() },
            rooms: RoomsConfig { default_version: RoomVersionId::V12 },
            limits: LimitsConfig {
                max_request_bytes: 50 * 1024 * 1024,
                request_timeout_secs: 90,
                max_initial_state: 100,
                max_invites: 100,
                max_json_depth: 64,
                max_json_string_bytes: 65_536,
                max_json_items: 10_000,
                max_keys_query_users: 1000,
                max_keys_claim_devices: 10_000,
                max_to_device_messages: 10_000,
                max_delete_devices: 1000,
                max_header_bytes: 32 * 1024,
                header_read_timeout_secs: 30,
            },
            tokens: TokensConfig {
                refreshable_access_token_lifetime_secs: 300,
                nonrefreshable_access_token_lifetime_secs: 0,
                refresh_token_lifetime_secs: 0,
            },
            sync: SyncConfig { max_timeout_ms: 60_000, default_timeline_limit: 10 },
            media: MediaConfig {
                path: PathBuf::new(),
                max_upload_bytes: 50 * 1024 * 1024,
                user_quota_bytes: 0,
                freeze_unauthenticated: true,
                max_pending_uploads: 5,
                pending_upload_expiry_secs: 86_400,
                max_image_pixels: 32 * 1024 * 1024,
            },
            policy: relais_appservice::PolicyConfig::default(),
            federation: FederationConfig {
                enabled: false,
                allowed_servers: Vec::new(),
                trusted_key_servers: Vec::new(),
                request_timeout_secs: 30,
                max_retry_interval_secs: 600,
                key_validity_hours: 168,
                well_known_server: String::new(),
                tls: FederationTlsConfig {
                    port: 0,
                    address: IpAddr::from([0, 0, 0, 0]),
                    certificate: PathBuf::new(),
                    private_key: PathBuf::new(),
                    ca_file: PathBuf::new(),
                    verify_certificates: true,
                },
            },
            appservices: AppservicesConfig {
                registration_files: Vec::new(),
                request_timeout_secs: 30,
                max_events_per_transaction: 100,
                max_retry_interval_secs: 300,
            },
            policy_checks: PolicyChecksConfig::default(),
            email: EmailConfig::default(),
            rate_limits: RateLimitsConfig {
                enabled: true,
                ip_factor: 10,
                login: RateConfig { per_second: 0.5, burst: 10 },
                registration: RateConfig { per_second: 0.2, burst: 5 },
                send: RateConfig { per_second: 2.0, burst: 30 },
                join: RateConfig { per_second: 0.2, burst: 10 },
                invite: RateConfig { per_second: 0.5, burst: 20 },
                media_upload: RateConfig { per_second: 1.0, burst: 10 },
                login_backoff: LoginBackoffConfig {
                    free_failures_per_account: 5,
                    free_failures_per_ip: 20,
                    base_delay_ms: 1000,
                    max_delay_secs: 60,
                    forget_after_secs: 900,
                },
            },
            public_base_url: String::new(),
            log: "info".to_owned(),
            runtime: RuntimeConfig { worker_threads: 0, blocking_threads: 64 },
        }
    }
}

/// The room versions this server creates and joins.
/// From 7, knocking; from 8, restricted joins: clients still ask for these when they create such
/// rooms. Earlier versions lack canonical JSON and are refused.
pub const SUPPORTED_ROOM_VERSIONS: [RoomVersionId; 7] = [
    RoomVersionId::V6,
    RoomVersionId::V7,
    RoomVersionId::V8,
    RoomVersionId::V9,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

impl Config {
    /// Loads the embedded defaults, then `file` if given, then `RELAIS_*` environment variables.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // RELAIS_PASSWORD feeds `relais create-user`, not the configuration; the others are the
        // test harness's (`scripts/test.sh`, `relais-tests`), set while unit tests load defaults.
        let not_config = ["PASSWORD", "TEST_PYTHON", "TEST_LOG", "BIN"];
        // `RELAIS_POLICY_SERVICE_*` configures `relais-policy-service`, which may share the
        // environment.
        let env = Env::prefixed("RELAIS_")
            .ignore(&not_config)
            .filter(|key| !key.as_str().to_ascii_uppercase().starts_with("POLICY_SERVICE_"));
        figment = figment.merge(env.split("__"));
        let config: Config =
            figment.extract().map_err(|e| ConfigError::Invalid(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !SUPPORTED_ROOM_VERSIONS.contains(&self.rooms.default_version) {
            return Err(ConfigError::Rule {
                key: "rooms.default_version",
                reason: format!(
                    "room version {} is not supported; expected one of 6 to 12",
                    self.rooms.default_version
                ),
            });
        }
        if self.limits.max_request_bytes < 65_536 {
            return Err(ConfigError::Rule {
                key: "limits.max_request_bytes",
                reason: "must be at least 65536 so that a full-size event fits".to_owned(),
            });
        }
        if self.limits.request_timeout_secs * 1000 < self.sync.max_timeout_ms + 5_000 {
            return Err(ConfigError::Rule {
                key: "limits.request_timeout_secs",
                reason: format!(
                    "must be at least 5 seconds longer than sync.max_timeout_ms ({} ms)",
                    self.sync.max_timeout_ms
                ),
            });
        }
        self.validate_limits()?;
        if self.media.max_upload_bytes == 0 || self.media.max_image_pixels == 0 {
            return Err(ConfigError::Rule {
                key: "media.max_upload_bytes",
                reason: "media.max_upload_bytes and media.max_image_pixels must be positive"
                    .to_owned(),
            });
        }
        self.validate_policy_checks()?;
        self.email.validate()?;
        self.validate_federation()?;
        if self.registration.tokens.iter().any(|t| t.is_empty()) {
            return Err(ConfigError::Rule {
                key: "registration.tokens",
                reason: "a registration token cannot be empty".to_owned(),
            });
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.max_json_depth < 8 || limits.max_json_depth > 128 {
            return Err(ConfigError::Rule {
                key: "limits.max_json_depth",
                // Below 8, ordinary requests fail; above 128 the JSON parser refuses first.
                reason: "must be between 8 and 128".to_owned(),
            });
        }
        if limits.max_json_string_bytes < 65_536 {
            return Err(ConfigError::Rule {
                key: "limits.max_json_string_bytes",
                reason: "must be at least 65536 so that a full-size event body fits".to_owned(),
            });
        }
        if limits.max_header_bytes < 8192 {
            return Err(ConfigError::Rule {
                key: "limits.max_header_bytes",
                reason: "must be at least 8192 (the HTTP library's smallest buffer)".to_owned(),
            });
        }
        if self.tokens.refreshable_access_token_lifetime_secs == 0 {
            return Err(ConfigError::Rule {
                key: "tokens.refreshable_access_token_lifetime_secs",
                reason: "must be positive".to_owned(),
            });
        }
        Ok(())
    }

    fn validate_federation(&self) -> Result<(), ConfigError> {
        let federation = &self.federation;
        if federation.request_timeout_secs == 0 {
            return Err(ConfigError::Rule {
                key: "federation.request_timeout_secs",
                reason: "must be positive".to_owned(),
            });
        }
        let tls = &federation.tls;
        if tls.port != 0
            && (tls.certificate.as_os_str().is_empty() || tls.private_key.as_os_str().is_empty())
        {
            return Err(ConfigError::Rule {
                key: "federation.tls.certificate",
                reason: "the TLS listener (federation.tls.port) needs federation.tls.certificate \
                         and federation.tls.private_key"
                    .to_owned(),
            });
        }
        Ok(())
    }

    fn validate_policy_checks(&self) -> Result<(), ConfigError> {
        let policy = &self.policy_checks;
        let is_http = policy.url.starts_with("http://") || policy.url.starts_with("https://");
        if !policy.url.is_empty() && !is_http {
            return Err(ConfigError::Rule {
                key: "policy_checks.url",
                reason: format!("expected an http:// or https:// URL, got {:?}", policy.url),
            });
        }
        let external =
            self.policy.enabled && self.policy.checks == relais_appservice::ChecksBy::External;
        if external && policy.url.is_empty() {
            return Err(ConfigError::Rule {
                key: "policy_checks.url",
                reason: "`policy.checks = \"external\"` needs the URL of the policy service"
                    .to_owned(),
            });
        }
        if policy.timeout_ms == 0 {
            return Err(ConfigError::Rule {
                key: "policy_checks.timeout_ms",
                reason: "must be positive".to_owned(),
            });
        }
        Ok(())
    }

    /// The directory of the media files: `media.path`, or `<database.path>-media` when empty.
    pub fn media_path(&self) -> PathBuf {
        if !self.media.path.as_os_str().is_empty() {
            return self.media.path.clone();
        }
        let mut name = self.database.path.file_name().unwrap_or_default().to_os_string();
        name.push(if name.is_empty() { "media" } else { "-media" });
        self.database.path.with_file_name(name)
    }

    /// The base URL clients reach this server at.
    pub fn base_url(&self) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{}:{}", self.listen.address, self.listen.port)
        } else {
            self.public_base_url.trim_end_matches('/').to_owned()
        }
    }
}

/// Serialises a secret as `<redacted>` (empty stays empty, so the defaults still round-trip).
fn redacted<S: serde::Serializer>(secret: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if secret.is_empty() { "" } else { "<redacted>" })
}

/// Accepts `"11"` and `11`: environment variables give numbers for unquoted digits.
fn room_version_from_string_or_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<RoomVersionId, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Number(u64),
    }
    let text = match Version::deserialize(deserializer)? {
        Version::Text(text) => text,
        Version::Number(number) => number.to_string(),
    };
    RoomVersionId::try_from(text).map_err(serde::de::Error::custom)
}

/// Figment's errors name the key and the source (file or environment variable); keep all of them.
fn describe_figment_error(error: figment::Error) -> String {
    error.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::load(None).expect("defaults load");
        assert_eq!(config.server_name.as_str(), "localhost");
        assert_eq!(config.listen.port, 8008);
        assert!(!config.registration.open);
    }

    #[test]
    fn example_file_matches_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
        let example = Config::load(Some(&path)).expect("config.example.toml loads");
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&example).expect("serialise"),
            serde_json::to_value(&defaults).expect("serialise"),
            "config.example.toml must list every option with its default"
        );
    }

    #[test]
    fn the_smtp_settings_are_checked_and_the_password_is_not_shown() {
        let load = |toml: &str| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("c.toml");
            std::fs::write(&path, toml).expect("write");
            Config::load(Some(&path)).map_err(|e| e.to_string())
        };
        let err = load("[email]\nsmtp_host = \"smtp.x\"\nfrom = \"not an address\"\n")
            .expect_err("bad sender");
        assert!(err.contains("email.from"), "{err}");
        let err = load("[email]\nsmtp_host = \"smtp.x\"\nsmtp_username = \"relais\"\n")
            .expect_err("a username without a password");
        assert!(err.contains("email.smtp_username"), "{err}");
        let config = load(
            "[email]\nsmtp_host = \"smtp.x\"\nsmtp_username = \"relais\"\nsmtp_password = \"s3cr3t-pw\"\n",
        )
        .expect("valid");
        assert!(config.email.enabled());
        assert!(!format!("{config:?}").contains("s3cr3t-pw"));
        assert!(!toml::to_string(&config).expect("serialise").contains("s3cr3t-pw"));
    }

    #[test]
    fn media_path_defaults_next_to_the_database() {
        let mut config = Config::default();
        config.database.path = PathBuf::from("/var/lib/relais");
        assert_eq!(config.media_path(), PathBuf::from("/var/lib/relais-media"));
        config.database.path = PathBuf::from("./data/");
        assert_eq!(config.media_path(), PathBuf::from("./data-media"));
        config.media.path = PathBuf::from("/srv/media");
        assert_eq!(config.media_path(), PathBuf::from("/srv/media"));
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[listen]\nprot = 1\n").expect("write");
        let err = Config::load(Some(&path)).expect_err("unknown key refused").to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[listen]\nport = \"eighty\"\n").expect("write");
        let err = Config::load(Some(&path)).expect_err("bad type refused").to_string();
        assert!(err.contains("port"), "{err}");
    }
}
