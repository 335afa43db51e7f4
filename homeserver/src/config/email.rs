//! The `[email]` section: the SMTP server Relais sends verification links through.

use serde::{Deserialize, Serialize};

use super::{ConfigError, redacted};

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain SMTP, then `STARTTLS`, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or in tests.
    None,
}

/// E-mail: verification of the addresses people register with or add to their account.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server. Empty (the default): Relais sends no e-mail, and registering or adding
    /// an address by e-mail answers `M_THREEPID_MEDIUM_NOT_SUPPORTED`.
    pub smtp_host: String,
    /// Its port.
    pub smtp_port: u16,
    /// How the connection is secured.
    pub smtp_security: SmtpSecurity,
    /// The SMTP login; empty: no authentication.
    pub smtp_username: String,
    /// The SMTP password; better set through `RELAIS_EMAIL__SMTP_PASSWORD`. Never logged.
    #[serde(serialize_with = "redacted")]
    pub smtp_password: String,
    /// The sender of the messages, e.g. `Relais <noreply@example.gouv.fr>`.
    pub from: String,
    /// How long a verification link stays valid, in seconds.
    pub token_lifetime_secs: u64,
    /// Longest wait for the SMTP server, in seconds.
    pub timeout_secs: u64,
}

// By hand, so that the password never reaches a log line.
impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_security", &self.smtp_security)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &if self.smtp_password.is_empty() { "" } else { "<redacted>" })
            .field("from", &self.from)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: String::new(),
            smtp_password: String::new(),
            from: "Relais <noreply@localhost>".to_owned(),
            token_lifetime_secs: 24 * 60 * 60,
            timeout_secs: 30,
        }
    }
}

impl EmailConfig {
    /// Whether Relais sends e-mail.
    pub fn enabled(&self) -> bool {
        !self.smtp_host.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::Rule {
                key: "email.from",
                reason: format!("not an e-mail address with an optional name: {:?}", self.from),
            });
        }
        if self.token_lifetime_secs == 0 || self.timeout_secs == 0 {
            return Err(ConfigError::Rule {
                key: "email.token_lifetime_secs",
                reason: "the token lifetime and the timeout must be positive".to_owned(),
            });
        }
        if self.smtp_username.is_empty() != self.smtp_password.is_empty() {
            return Err(ConfigError::Rule {
                key: "email.smtp_username",
                reason: "give both the SMTP username and password, or neither".to_owned(),
            });
        }
        Ok(())
    }
}
