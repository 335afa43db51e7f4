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
    /// More homeservers served by this process (`[[homeservers]]`), each with its own tokens,
    /// unit rooms and directory; the fields above describe the first one.
    pub homeservers: Vec<HomeserverConfig>,
}

/// One homeserver the service guards.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HomeserverConfig {
    /// Its client API.
    pub homeserver_url: String,
    /// Its name.
    pub server_name: String,
    /// The application service's ID in its registration file.
    #[serde(default = "default_id")]
    pub id: String,
    /// The token the service uses with it.
    pub as_token: String,
    /// The token it uses with the service.
    pub hs_token: String,
    /// The token it sends with each policy check: how the service tells homeservers apart.
    pub checks_token: String,
}

fn default_id() -> String {
    "relais-policy".to_owned()
}

// By hand, so that no token reaches a log line.
impl fmt::Debug for HomeserverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeserverConfig")
            .field("homeserver_url", &self.homeserver_url)
            .field("server_name", &self.server_name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
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
            homeservers: Vec::new(),
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

    /// Every homeserver served: the first one (the top-level fields), then `[[homeservers]]`.
    pub fn all_homeservers(&self) -> Vec<HomeserverConfig> {
        let first = HomeserverConfig {
            homeserver_url: self.homeserver_url.clone(),
            server_name: self.server_name.clone(),
            id: self.id.clone(),
            as_token: self.as_token.clone(),
            hs_token: self.hs_token.clone(),
            checks_token: self.checks_token.clone(),
        };
        std::iter::once(first).chain(self.homeservers.iter().cloned()).collect()
    }

    /// The policy of the homeserver `server_name`: the `[policy]` section, with the server
    /// admins of that server only (each homeserver's directory holds its own users).
    pub fn policy_for(&self, server_name: &str) -> PolicyConfig {
        let suffix = format!(":{server_name}");
        let mut policy = self.policy.clone();
        policy.server_admins.retain(|admin| admin.ends_with(&suffix));
        policy
    }

    /// The homeserver named `server_name`.
    pub fn homeserver(&self, server_name: &str) -> Option<HomeserverConfig> {
        self.all_homeservers().into_iter().find(|h| h.server_name == server_name)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rule = |key, reason: &str| Err(ConfigError::Rule { key, reason: reason.to_owned() });
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return rule("url", "expected an http:// or https:// URL");
        }
        let homeservers = self.all_homeservers();
        let mut tokens = Vec::new();
        let mut names = Vec::new();
        for homeserver in &homeservers {
            let url = &homeserver.homeserver_url;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return rule("homeserver_url", "expected an http:// or https:// URL");
            }
            if ruma::ServerName::parse(&homeserver.server_name).is_err() {
                return rule("server_name", "not a valid server name");
            }
            if names.contains(&homeserver.server_name) {
                return rule("server_name", "each homeserver is listed once");
            }
            names.push(homeserver.server_name.clone());
            // Tokens are secrets: short ones can be guessed, and a shared one would let a
            // homeserver and the service impersonate each other, or one homeserver another.
            for (key, token) in [
                ("as_token", &homeserver.as_token),
                ("hs_token", &homeserver.hs_token),
                ("checks_token", &homeserver.checks_token),
            ] {
                if token.len() < 16 {
                    return rule(
                        key,
                        "must be set, at least 16 characters (e.g. `openssl rand -hex 32`)",
                    );
                }
                if tokens.contains(token) {
                    return rule(key, "every token must differ from every other");
                }
                tokens.push(token.clone());
            }
        }
        if let Some(admin) = self
            .policy
            .server_admins
            .iter()
            .find(|admin| !names.iter().any(|name| admin.ends_with(&format!(":{name}"))))
        {
            return Err(ConfigError::Rule {
                key: "policy.server_admins",
                reason: format!("{admin} is not a user of a homeserver this service guards"),
            });
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
        if self.request_timeout_ms == 0 {
            return rule("request_timeout_ms", "must be positive");
        }
        Ok(())
    }

    /// The policy bot's user ID on `server_name`: the service's `sender_localpart`.
    pub fn bot(&self, server_name: &str) -> String {
        format!("@{}:{server_name}", self.policy.bot_localpart)
    }

    /// The application service registration file (YAML) for `homeserver`'s
    /// `[appservices] registration_files` (or Synapse's `app_service_config_files`).
    pub fn registration_yaml(&self, homeserver: &HomeserverConfig) -> String {
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
            id = yaml_scalar(&homeserver.id),
            url = yaml_scalar(&self.url),
            as_token = yaml_scalar(&homeserver.as_token),
            hs_token = yaml_scalar(&homeserver.hs_token),
            bot = yaml_scalar(&self.policy.bot_localpart),
            bot_re = escape(&self.policy.bot_localpart),
            server_re = escape(&homeserver.server_name),
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
        let second = HomeserverConfig {
            homeserver_url: "http://127.0.0.1:8009".into(),
            server_name: "culture.gouv.fr".into(),
            id: default_id(),
            as_token: "b".repeat(32),
            hs_token: "i".repeat(32),
            checks_token: "c".repeat(32),
        };
        let shared = ServiceConfig { homeservers: vec![second.clone()], ..valid() };
        assert!(shared.validate().unwrap_err().to_string().contains("differ"), "tokens are shared");
        let named_twice =
            HomeserverConfig { server_name: "example.gouv.fr".into(), ..second.clone() };
        let named_twice = ServiceConfig { homeservers: vec![named_twice], ..valid() };
        assert!(named_twice.validate().is_err());
        let two = ServiceConfig {
            homeservers: vec![HomeserverConfig { checks_token: "d".repeat(32), ..second }],
            ..valid()
        };
        assert!(two.validate().is_ok());
        assert_eq!(two.all_homeservers().len(), 2);
        assert!(two.homeserver("culture.gouv.fr").is_some());
    }

    #[test]
    fn the_registration_claims_the_bot_and_follows_the_unit_rooms() {
        let config = valid();
        let yaml = config.registration_yaml(&config.all_homeservers()[0]);
        assert!(yaml.contains("sender_localpart: 'relais-policy'"), "{yaml}");
        assert!(yaml.contains(r"regex: '@relais\-policy:example\.gouv\.fr'"), "{yaml}");
        assert!(yaml.contains(r"regex: '#relais-unit-.*:example\.gouv\.fr'"), "{yaml}");
        assert!(yaml.contains(&format!("as_token: '{}'", "a".repeat(32))));
    }
}
