//! E-mail addresses of accounts (third-party identifiers): verification sessions, with a link
//! sent by e-mail, and the addresses bound to accounts.
//!
//! A session is keyed by its `sid`, derived from the client's secret and the address, so that a
//! client asking again (a higher `send_attempt`) finds its session and a repeated request sends
//! nothing. Tokens and client secrets are stored as SHA-256 hashes. Each address belongs to one
//! account at most.

mod mailer;

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedUserId, UInt, UserId,
    thirdparty::{Medium, ThirdPartyIdentifier, ThirdPartyIdentifierInit},
};
use serde::{Deserialize, Serialize};

use self::mailer::Mailer;
use super::{
    accounts::{hash_token, new_token},
    ephemeral::now_ms,
};
use crate::{
    config::Config,
    storage::{Batch, Db, Json, StorageError, Table},
};

/// Column families owned by the e-mail addresses service.
pub const COLUMN_FAMILIES: &[&str] =
    &["sid_emailsession", "threepid_userid", "userthreepid_binding"];

/// Longest client secret accepted (the spec's limit).
const MAX_CLIENT_SECRET: usize = 255;

/// What a verification is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Registering an account with the address.
    Registration,
    /// Adding the address to an existing account.
    AddToAccount,
    /// Setting a new password on the account the address belongs to (a forgotten password).
    PasswordReset,
}

/// A verification session.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    email: String,
    purpose: Purpose,
    token_hash: String,
    send_attempt: u64,
    expires_ms: u64,
    validated_ms: Option<u64>,
    next_link: Option<String>,
}

/// An address bound to an account.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Binding {
    added_ms: u64,
    validated_ms: u64,
}

/// Errors of the e-mail addresses service.
#[derive(Debug, thiserror::Error)]
pub enum ThreepidError {
    /// No SMTP server is configured.
    #[error("this server sends no e-mail (`[email] smtp_host` is not set)")]
    NotConfigured,
    /// The address is malformed.
    #[error("{0:?} is not an e-mail address")]
    InvalidEmail(String),
    /// The client secret is malformed.
    #[error("client_secret must be 1 to 255 of the characters 0-9, a-z, A-Z, '.', '=', '_', '-'")]
    InvalidClientSecret,
    /// The address belongs to an account already.
    #[error("{0} is already used by an account")]
    InUse(String),
    /// The address belongs to no account (where one was expected).
    #[error("{0} belongs to no account")]
    NotBound(String),
    /// No session has this ID and client secret.
    #[error("no verification session matches this sid and client_secret")]
    NoSession,
    /// The link or token is wrong or expired.
    #[error("this verification link is wrong or has expired; ask for a new one")]
    BadToken,
    /// The address is not verified yet.
    #[error("the e-mail address is not verified yet: open the link sent to it")]
    NotValidated,
    /// The message could not be sent.
    #[error("the verification e-mail could not be sent")]
    Send(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The e-mail addresses service.
pub struct Threepids {
    sessions: Table<String, Json<Session>>,
    owners: Table<String, OwnedUserId>,
    bindings: Table<(OwnedUserId, String), Json<Binding>>,
    mailer: Option<Mailer>,
    lifetime_ms: u64,
    server_name: String,
    /// Serialises binding, so that two accounts never take the same address.
    bind_lock: parking_lot::Mutex<()>,
}

/// The sessions' and addresses' normal form: e-mail addresses compare without case.
fn normalize(email: &str) -> Result<String, ThreepidError> {
    let email = email.trim();
    email
        .parse::<lettre::Address>()
        .map(|_| email.to_lowercase())
        .map_err(|_| ThreepidError::InvalidEmail(email.to_owned()))
}

fn check_client_secret(secret: &str) -> Result<(), ThreepidError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".=_-".contains(c);
    if secret.is_empty() || secret.len() > MAX_CLIENT_SECRET || !secret.chars().all(allowed) {
        return Err(ThreepidError::InvalidClientSecret);
    }
    Ok(())
}

/// The session ID of `client_secret` and `email`.
fn session_id(client_secret: &str, email: &str) -> String {
    hash_token(&format!("{client_secret}\u{0}{email}"))[..24].to_owned()
}

fn ts(ms: u64) -> MilliSecondsSinceUnixEpoch {
    MilliSecondsSinceUnixEpoch(UInt::new_saturating(ms))
}

impl Threepids {
    /// Opens the service.
    pub fn new(db: &Arc<Db>, config: &Config) -> Result<Self, StorageError> {
        let mailer = if config.email.enabled() {
            match Mailer::new(&config.email) {
                Ok(mailer) => Some(mailer),
                Err(error) => {
                    // The configuration was validated; a transport that cannot be built is
                    // reported and e-mail stays off rather than stopping the server.
                    tracing::error!(%error, "e-mail disabled: the SMTP client cannot be built");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            sessions: db.table("sid_emailsession")?,
            owners: db.table("threepid_userid")?,
            bindings: db.table("userthreepid_binding")?,
            mailer,
            lifetime_ms: config.email.token_lifetime_secs.saturating_mul(1000),
            server_name: config.server_name.to_string(),
            bind_lock: parking_lot::Mutex::new(()),
        })
    }

    /// Whether this server verifies e-mail addresses.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Starts (or continues) the verification of `email` and sends the link (to this server at
    /// `base_url`), unless this `send_attempt` was sent already. Returns the session ID.
    pub async fn request_email_token(
        &self,
        base_url: &str,
        email: &str,
        client_secret: &str,
        send_attempt: u64,
        next_link: Option<&str>,
        purpose: Purpose,
    ) -> Result<String, ThreepidError> {
        let Some(mailer) = &self.mailer else { return Err(ThreepidError::NotConfigured) };
        check_client_secret(client_secret)?;
        let email = normalize(email)?;
        let sid = session_id(client_secret, &email);
        let now = now_ms();
        let previous = self.sessions.get(&sid)?.map(|Json(s)| s);
        let known = previous.clone().filter(|s| s.expires_ms > now);
        if known.as_ref().is_some_and(|s| s.send_attempt >= send_attempt) {
            return Ok(sid);
        }
        let token = new_token();
        let session = Session {
            email: email.clone(),
            purpose,
            token_hash: hash_token(&token),
            send_attempt,
            expires_ms: now.saturating_add(self.lifetime_ms),
            validated_ms: known.and_then(|s| s.validated_ms),
            next_link: next_link.map(str::to_owned),
        };
        self.sessions.put(&sid, &Json(session))?;
        let link = format!(
            "{base_url}/_relais/email/validate?sid={}&client_secret={}&token={}",
            percent(&sid),
            percent(client_secret),
            percent(&token)
        );
        let hours = self.lifetime_ms / 3_600_000;
        let (subject, action) = match purpose {
            Purpose::Registration => ("Confirm your e-mail address", "create an account"),
            Purpose::AddToAccount => ("Confirm your e-mail address", "add it to an account"),
            Purpose::PasswordReset => ("Reset your password", "set a new password"),
        };
        let body = format!(
            "Someone, probably you, asked to use this address to {action} on the Matrix server \
             {server}.\n\nTo confirm, open this link:\n\n{link}\n\nThe link is valid for {hours} \
             hours. If it was not you, ignore this message: nothing happens without the link.\n",
            server = self.server_name,
        );
        let sent = mailer.send(&email, &format!("{subject} ({})", self.server_name), body).await;
        if let Err(error) = sent {
            tracing::warn!(%error, "verification e-mail not sent");
            // The attempt did not happen: asking again with the same attempt must send.
            match previous {
                Some(session) => self.sessions.put(&sid, &Json(session))?,
                None => self.sessions.remove(&sid)?,
            }
            return Err(ThreepidError::Send(error));
        }
        tracing::info!(%sid, ?purpose, "verification e-mail sent");
        Ok(sid)
    }

    /// Sends a plain-text message to a verified address (notices that must reach people who
    /// seldom open their Matrix app).
    pub async fn send_email(
        &self,
        to: &str,
        subject: &str,
        body: String,
    ) -> Result<(), ThreepidError> {
        let Some(mailer) = &self.mailer else { return Err(ThreepidError::NotConfigured) };
        let subject = format!("{subject} ({})", self.server_name);
        mailer.send(to, &subject, body).await.map_err(ThreepidError::Send)
    }

    /// Checks a link's token: the address of the session is then verified. Returns where to
    /// send the person next (the client's `next_link`), if anywhere.
    pub fn validate(
        &self,
        sid: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Option<String>, ThreepidError> {
        let mut session = self.session(sid, client_secret)?;
        if session.expires_ms <= now_ms() || session.token_hash != hash_token(token) {
            return Err(ThreepidError::BadToken);
        }
        session.validated_ms.get_or_insert_with(now_ms);
        let next = session.next_link.clone();
        self.sessions.put(&sid.to_owned(), &Json(session))?;
        Ok(next)
    }

    /// The verified address of a session, and when it was verified.
    pub fn validated_email(
        &self,
        sid: &str,
        client_secret: &str,
        purpose: Purpose,
    ) -> Result<(String, u64), ThreepidError> {
        let session = self.session(sid, client_secret)?;
        if session.purpose != purpose {
            return Err(ThreepidError::NoSession);
        }
        match session.validated_ms {
            Some(at) => Ok((session.email, at)),
            None => Err(ThreepidError::NotValidated),
        }
    }

    fn session(&self, sid: &str, client_secret: &str) -> Result<Session, ThreepidError> {
        let Some(Json(session)) = self.sessions.get(&sid.to_owned())? else {
            return Err(ThreepidError::NoSession);
        };
        // The sid is derived from the secret: a wrong secret names another session.
        if session_id(client_secret, &session.email) != sid {
            return Err(ThreepidError::NoSession);
        }
        Ok(session)
    }

    /// Forgets a session once its address is bound.
    pub fn finish(&self, sid: &str) -> Result<(), ThreepidError> {
        Ok(self.sessions.remove(&sid.to_owned())?)
    }

    /// The account an address belongs to.
    pub fn owner(&self, email: &str) -> Result<Option<OwnedUserId>, ThreepidError> {
        Ok(self.owners.get(&normalize(email)?)?)
    }

    /// Binds a verified address to `user`; refused if another account holds it.
    pub fn bind(&self, user: &UserId, email: &str, validated_ms: u64) -> Result<(), ThreepidError> {
        let email = normalize(email)?;
        let _binding = self.bind_lock.lock();
        match self.owners.get(&email)? {
            Some(owner) if owner != user => return Err(ThreepidError::InUse(email)),
            Some(_) => return Ok(()),
            None => {}
        }
        let binding = Binding { added_ms: now_ms(), validated_ms };
        let mut batch = Batch::default();
        batch.put(&self.owners, &email, &user.to_owned());
        batch.put(&self.bindings, &(user.to_owned(), email), &Json(binding));
        Ok(self.owners.db().write(batch)?)
    }

    /// Unbinds an address from `user`; whether it was bound to them.
    pub fn unbind(&self, user: &UserId, email: &str) -> Result<bool, ThreepidError> {
        let email = normalize(email)?;
        let _binding = self.bind_lock.lock();
        if self.owners.get(&email)?.as_deref() != Some(user) {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.delete(&self.owners, &email);
        batch.delete(&self.bindings, &(user.to_owned(), email));
        self.owners.db().write(batch)?;
        Ok(true)
    }

    /// Makes `addresses` the addresses of `user`, as an admin sets them (counted as verified
    /// now). Refused, changing nothing, if another account holds one of them.
    pub fn replace(&self, user: &UserId, addresses: &[String]) -> Result<(), ThreepidError> {
        let wanted = addresses.iter().map(|a| normalize(a)).collect::<Result<Vec<_>, _>>()?;
        for address in &wanted {
            if self.owners.get(address)?.is_some_and(|owner| owner != user) {
                return Err(ThreepidError::InUse(address.clone()));
            }
        }
        for current in self.of_user(user)? {
            if !wanted.contains(&current.address) {
                self.unbind(user, &current.address)?;
            }
        }
        for address in &wanted {
            self.bind(user, address, now_ms())?;
        }
        Ok(())
    }

    /// Unbinds every address of `user` (a deactivated account frees its addresses).
    pub fn unbind_all(&self, user: &UserId) -> Result<(), ThreepidError> {
        for address in self.of_user(user)?.into_iter().map(|t| t.address) {
            self.unbind(user, &address)?;
        }
        Ok(())
    }

    /// The addresses bound to `user`.
    pub fn of_user(&self, user: &UserId) -> Result<Vec<ThirdPartyIdentifier>, ThreepidError> {
        let mut found = Vec::new();
        for entry in self.bindings.scan_prefix(&user.to_owned())? {
            let ((_, address), Json(binding)) = entry?;
            found.push(
                ThirdPartyIdentifierInit {
                    address,
                    medium: Medium::Email,
                    validated_at: ts(binding.validated_ms),
                    added_at: ts(binding.added_ms),
                }
                .into(),
            );
        }
        Ok(found)
    }
}

/// A query parameter value, percent-encoded.
fn percent(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_secrets_are_checked() {
        assert_eq!(
            normalize(" Alice@Interieur.Gouv.FR ").expect("an address"),
            "alice@interieur.gouv.fr"
        );
        assert!(normalize("not an address").is_err());
        assert!(check_client_secret("abc.DEF=_-123").is_ok());
        assert!(check_client_secret("").is_err());
        assert!(check_client_secret("spaces are bad").is_err());
        assert!(check_client_secret(&"x".repeat(256)).is_err());
    }

    #[test]
    fn a_session_is_named_by_its_secret_and_address() {
        let a = session_id("secret", "a@x.fr");
        assert_eq!(a, session_id("secret", "a@x.fr"));
        assert_ne!(a, session_id("other", "a@x.fr"));
        assert_ne!(a, session_id("secret", "b@x.fr"));
        assert_eq!(percent("a b/c"), "a%20b%2Fc");
    }
}
