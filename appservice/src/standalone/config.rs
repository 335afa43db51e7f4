//! The configuration of `relais-policy-service`: a TOML file, then `RELAIS_POLICY_SERVICE_*`
//! environment variables (`__` between levels), so that tokens need not be written in the file.

use std::{fmt, net::SocketAddr, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::PolicyConfig;

/// The service's configuration.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The homeserver's client API, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The homeserver's name: the part of user IDs after the `:`.
    pub server_name: String,
    /// Where this service listens.
    pub listen: SocketAddr,
    /// The URL the homeserver reaches this service at (written in the registration file).
    pub url: String,
    /// The application service's ID in the registration file.
    pub id: String,
    /// The token the service uses with the homeserver (`as_token` of the registration).
    pub as_token: String,
    /// The token the homeserver uses with the service (`hs_token` of the registration).
    pub hs_token: String,
    /// The token the homeserver sends with each policy check (`[policy_checks] token`).
    pub checks_token: String,
    /// How long a call to the homeserver may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// The policy: the same `[policy]` section as the homeserver's.
    pub policy: PolicyConfig,
}

// By hand, so that no token reaches a log line.
impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("homeserver_url", &self.homeserver_url)
            .field("server_name", &self.server_name)
            .field("listen", &self.listen)
            .field("url", &self.url)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            homeserver_url: "http://127.0.0.1:8008".to_owned(),
            server_name: "localhost".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            url: "http://127.0.0.1:9000".to_owned(),
            id: "relais-policy".to_owned(),
            as_token: String::new(),
            hs_token: String::new(),
            checks_token: String::new(),
            request_timeout_ms: 5000,
            policy: PolicyConfig { enabled: true, ..PolicyConfig::default() },
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read.
    #[error("{0}")]
    Invalid(String),
    /// A value breaks a rule.
    #[error("`{key}`: {reason}")]
    Rule {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The path prefix of the policy checks: the homeserver's `[policy_checks] url` is this
/// service's URL followed by it.
pub const CHECKS_PATH: &str = "/_relais/policy/v1/check";

impl ServiceConfig {
    /// Loads the defaults, then `file`, then the environment.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        if !file.exists() {
            return Err(ConfigError::Invalid(format!(
                "configuration file {} does not exist",
                file.display()
            )));
        }
        let config: Self = Figment::from(Serialized::defaults(Self::default()))
            .merge(Toml::file(file))
            // `RELAIS_POLICY_SERVICE_CONFIG` names the file itself (the command line's `--config`).
            .merge(Env::prefixed("RELAIS_POLICY_SERVICE_").ignore(&["CONFIG"]).split("__"))
            .extract()
            .map_err(|e| {
                ConfigError::Invalid(
                    e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rule = |key, reason: &str| Err(ConfigError::Rule { key, reason: reason.to_owned() });
        for (key, url) in [("homeserver_url", &self.homeserver_url), ("url", &self.url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return rule(key, "expected an http:// or https:// URL");
            }
        }
        // Tokens are secrets: short ones can be guessed, and a shared one would let the
        // homeserver and the service impersonate each other.
        for (key, token) in [
            ("as_token", &self.as_token),
            ("hs_token", &self.hs_token),
            ("checks_token", &self.checks_token),
        ] {
            if token.len() < 16 {
                return rule(
                    key,
                    "must be set, at least 16 characters (e.g. `openssl rand -hex 32`)",
                );
            }
        }
        if self.as_token == self.hs_token {
            return rule("hs_token", "must differ from `as_token`");
        }
        if !self.policy.enabled {
            return rule(
                "policy.enabled",
                "the policy service enforces the policy: set it to true",
            );
        }
        if self.policy.units.is_empty() {
            return rule("policy.units", "must name at least the root unit");
        }
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return rule("server_name", "not a valid server name");
        }
        if self.request_timeout_ms == 0 {
            return rule("request_timeout_ms", "must be positive");
        }
        Ok(())
    }

    /// The policy bot's user ID: the service's `sender_localpart`.
    pub fn bot(&self) -> String {
        format!("@{}:{}", self.policy.bot_localpart, self.server_name)
    }

    /// The application service registration file (YAML) for the homeserver's
    /// `[appservices] registration_files` (or Synapse's `app_service_config_files`).
    pub fn registration_yaml(&self) -> String {
        let escape = |s: &str| regex_escape(s);
        format!(
            "# The Relais policy service, generated by `relais-policy-service registration`.\n\
             id: {id}\n\
             url: {url}\n\
             as_token: {as_token}\n\
             hs_token: {hs_token}\n\
             sender_localpart: {bot}\n\
             rate_limited: false\n\
             namespaces:\n\
            \x20 users:\n\
            \x20   - exclusive: true\n\
            \x20     regex: '@{bot_re}:{server_re}'\n\
            \x20 aliases:\n\
            \x20   - exclusive: false\n\
            \x20     regex: '#relais-unit-.*:{server_re}'\n\
            \x20 rooms: []\n",
            id = yaml_scalar(&self.id),
            url = yaml_scalar(&self.url),
            as_token = yaml_scalar(&self.as_token),
            hs_token = yaml_scalar(&self.hs_token),
            bot = yaml_scalar(&self.policy.bot_localpart),
            bot_re = escape(&self.policy.bot_localpart),
            server_re = escape(&self.server_name),
        )
    }
}

/// A regex matching `s` literally.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect::<String>()
        .replace('\'', "''")
}

/// `s` as a YAML scalar: quoted, so that no value is read as a number, a boolean or a comment.
fn yaml_scalar(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ServiceConfig {
        ServiceConfig {
            as_token: "a".repeat(32),
            hs_token: "h".repeat(32),
            checks_token: "c".repeat(32),
            server_name: "example.gouv.fr".into(),
            policy: PolicyConfig::enabled_with(vec![crate::UnitConfig::new("state", None)]),
            ..ServiceConfig::default()
        }
    }

    #[test]
    fn tokens_are_required_distinct_and_never_shown() {
        assert!(valid().validate().is_ok());
        let short = ServiceConfig { checks_token: "x".into(), ..valid() };
        assert!(short.validate().unwrap_err().to_string().contains("checks_token"));
        let same = ServiceConfig { hs_token: "a".repeat(32), ..valid() };
        assert!(same.validate().unwrap_err().to_string().contains("hs_token"));
        assert!(!format!("{:?}", valid()).contains("aaaa"));
    }

    #[test]
    fn the_registration_claims_the_bot_and_follows_the_unit_rooms() {
        let yaml = valid().registration_yaml();
        assert!(yaml.contains("sender_localpart: 'relais-policy'"), "{yaml}");
        assert!(yaml.contains(r"regex: '@relais\-policy:example\.gouv\.fr'"), "{yaml}");
        assert!(yaml.contains(r"regex: '#relais-unit-.*:example\.gouv\.fr'"), "{yaml}");
        assert!(yaml.contains(&format!("as_token: '{}'", "a".repeat(32))));
    }
}
