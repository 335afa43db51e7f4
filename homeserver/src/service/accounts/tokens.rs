//! Access tokens with a lifetime, and refresh tokens (spec: "Refreshing access tokens").
//!
//! Both kinds are stored in `tokenhash_session` under the SHA-256 of the token, told apart by
//! `refresh`, so a refresh token never authenticates a request. A device holds at most one of
//! each. An expired access token stays stored until its device refreshes or is removed, so that
//! it is answered as expired (`soft_logout`) rather than unknown.
//!
//! Refresh tokens are single-use: `/refresh` revokes the refresh token it was given and the
//! access token issued with it in the same batch as it writes the new pair. The spec lets the old
//! refresh token live until the new pair is first used; we do not, so a client that loses the
//! answer to `/refresh` has to log in again (matrix-sdk retries a lost answer as a new login).

use std::time::Duration;

use rand::{Rng, distributions::Alphanumeric};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use super::{AccountError, Accounts, Device, Session, hash_token, new_token};
use crate::{
    config::TokensConfig,
    storage::{Batch, Json, StorageError},
};

/// What `tokenhash_session` holds for a token. Records written before token lifetimes existed
/// have only the user and device: they never expire and are access tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StoredToken {
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    /// When the token stops working, in milliseconds since the epoch; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_ts: Option<u64>,
    /// A refresh token, usable only with `/refresh`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    refresh: bool,
}

impl StoredToken {
    fn expired(&self, now: u64) -> bool {
        self.expires_ts.is_some_and(|expiry| expiry <= now)
    }

    fn session(&self) -> Session {
        Session {
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            appservice: None,
        }
    }
}

/// How long the tokens of a new session live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewTokens {
    /// Lifetime of the access token; `None`: it never expires.
    pub access_lifetime: Option<Duration>,
    /// `Some` to issue a refresh token too, with its lifetime (`None` inside: never expires).
    pub refresh: Option<Option<Duration>>,
}

impl NewTokens {
    /// The lifetimes `config` gives a session whose client asked for a refresh token or not.
    pub fn from_config(config: &TokensConfig, refresh: bool) -> Self {
        let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        if refresh {
            Self {
                access_lifetime: seconds(config.refreshable_access_token_lifetime_secs),
                refresh: Some(seconds(config.refresh_token_lifetime_secs)),
            }
        } else {
            Self {
                access_lifetime: seconds(config.nonrefreshable_access_token_lifetime_secs),
                refresh: None,
            }
        }
    }
}

/// The tokens handed to a client at login, registration or refresh.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    /// The device.
    pub device_id: OwnedDeviceId,
    /// The new access token.
    pub access_token: String,
    /// How long the access token lives, if it expires.
    pub expires_in: Option<Duration>,
    /// The new refresh token, if one was asked for.
    pub refresh_token: Option<String>,
}

/// What an access token is worth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// A live access token, of this session.
    Valid(Session),
    /// An access token past its lifetime: the client should refresh it (`soft_logout`).
    Expired,
    /// No such access token (never issued, revoked, or a refresh token).
    Unknown,
}

/// Why `/refresh` refused a refresh token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Never issued, already used, or revoked with its device.
    #[error("unknown or already used refresh token")]
    Unknown,
    /// Past its lifetime.
    #[error("the refresh token has expired")]
    Expired,
}

fn now_ms() -> u64 {
    MilliSecondsSinceUnixEpoch::now().0.into()
}

fn expiry(now: u64, lifetime: Option<Duration>) -> Option<u64> {
    lifetime.map(|l| now.saturating_add(u64::try_from(l.as_millis()).unwrap_or(u64::MAX)))
}

impl Accounts {
    /// Creates (or replaces) a device and returns it with fresh tokens of the given lifetimes;
    /// a replaced device's tokens are revoked.
    pub fn create_session(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        ip: Option<String>,
        lifetimes: &NewTokens,
    ) -> Result<IssuedTokens, AccountError> {
        let device_id = device_id.unwrap_or_else(|| {
            let id: String =
                rand::thread_rng().sample_iter(&Alphanumeric).take(10).map(char::from).collect();
            id.to_uppercase().into()
        });
        let _issuing = self.token_lock.lock();
        let key = (user_id.to_owned(), device_id.to_string());
        let previous = self.devices.get(&key)?.map(|Json(d)| d);
        let display_name =
            display_name.or_else(|| previous.as_ref().and_then(|d| d.display_name.clone()));
        let device = Device {
            device_id: device_id.clone(),
            display_name,
            last_seen_ts: Some(now_ms()),
            last_seen_ip: ip,
            token_hash: String::new(),
            refresh_token_hash: None,
        };
        Ok(self.issue(user_id, device, previous.as_ref(), lifetimes)?)
    }

    /// Swaps a refresh token for a new access token and refresh token of the same device; the
    /// given refresh token and the access token issued with it stop working.
    pub fn refresh(
        &self,
        refresh_token: &str,
        config: &TokensConfig,
    ) -> Result<IssuedTokens, RefreshError> {
        let hash = hash_token(refresh_token);
        let _issuing = self.token_lock.lock();
        let Some(Json(stored)) = self.sessions.get(&hash)?.filter(|Json(t)| t.refresh) else {
            return Err(RefreshError::Unknown);
        };
        if stored.expired(now_ms()) {
            return Err(RefreshError::Expired);
        }
        let key = (stored.user_id.clone(), stored.device_id.to_string());
        let Some(Json(device)) = self.devices.get(&key)? else { return Err(RefreshError::Unknown) };
        if device.refresh_token_hash.as_deref() != Some(hash.as_str()) {
            return Err(RefreshError::Unknown);
        }
        let lifetimes = NewTokens::from_config(config, true);
        Ok(self.issue(&stored.user_id, device.clone(), Some(&device), &lifetimes)?)
    }

    /// The session of an access token, or why there is none.
    pub fn check_token(&self, token: &str) -> Result<TokenCheck, StorageError> {
        let hash = hash_token(token);
        let cached = self.session_cache.read().get(&hash).cloned();
        let stored = match cached {
            Some(stored) => stored,
            None => {
                let Some(Json(stored)) = self.sessions.get(&hash)? else {
                    return Ok(TokenCheck::Unknown);
                };
                self.session_cache.write().insert(hash, stored.clone());
                stored
            }
        };
        Ok(if stored.refresh {
            TokenCheck::Unknown
        } else if stored.expired(now_ms()) {
            TokenCheck::Expired
        } else {
            TokenCheck::Valid(stored.session())
        })
    }

    /// Writes `device` with new tokens, revoking those of `previous` (the device as stored).
    fn issue(
        &self,
        user_id: &UserId,
        mut device: Device,
        previous: Option<&Device>,
        lifetimes: &NewTokens,
    ) -> Result<IssuedTokens, StorageError> {
        let now = now_ms();
        let record = |expires_ts, refresh| StoredToken {
            user_id: user_id.to_owned(),
            device_id: device.device_id.clone(),
            expires_ts,
            refresh,
        };
        let access_token = new_token();
        let access = record(expiry(now, lifetimes.access_lifetime), false);
        let refresh_token = lifetimes.refresh.map(|lifetime| (new_token(), lifetime));
        let refresh =
            refresh_token.as_ref().map(|(_, lifetime)| record(expiry(now, *lifetime), true));
        let mut batch = Batch::default();
        let revoked = revoked_hashes(previous);
        for hash in &revoked {
            batch.delete(&self.sessions, hash);
        }
        device.token_hash = hash_token(&access_token);
        batch.put(&self.sessions, &device.token_hash, &Json(access.clone()));
        device.refresh_token_hash = refresh_token.as_ref().map(|(token, _)| hash_token(token));
        if let (Some(hash), Some(refresh)) = (&device.refresh_token_hash, &refresh) {
            batch.put(&self.sessions, hash, &Json(refresh.clone()));
        }
        let key = (user_id.to_owned(), device.device_id.to_string());
        batch.put(&self.devices, &key, &Json(device.clone()));
        self.devices.db().write(batch)?;
        let mut cache = self.session_cache.write();
        for hash in &revoked {
            cache.remove(hash);
        }
        cache.insert(device.token_hash.clone(), access);
        Ok(IssuedTokens {
            device_id: device.device_id,
            access_token,
            expires_in: lifetimes.access_lifetime,
            refresh_token: refresh_token.map(|(token, _)| token),
        })
    }
}

/// The token hashes of a device: its access token and its refresh token, if any.
pub(super) fn revoked_hashes(device: Option<&Device>) -> Vec<String> {
    device
        .map(|d| {
            std::iter::once(d.token_hash.clone()).chain(d.refresh_token_hash.clone()).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{config::Config, storage::Db};

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::storage::OpenOptions { sync_writes: false, cache_bytes: 1 << 20 };
        let db: Arc<Db> = Db::open(dir.path(), super::super::COLUMN_FAMILIES, &options).unwrap();
        let accounts = Accounts::new(&db, ruma::server_name!("localhost").to_owned()).unwrap();
        (dir, accounts)
    }

    fn alice() -> OwnedUserId {
        ruma::user_id!("@alice:localhost").to_owned()
    }

    #[test]
    fn refresh_is_single_use_and_revokes_the_old_access_token() {
        let (_dir, accounts) = accounts();
        let config = Config::default().tokens;
        let lifetimes = NewTokens::from_config(&config, true);
        let first = accounts.create_session(&alice(), None, None, None, &lifetimes).unwrap();
        assert_eq!(first.expires_in, Some(Duration::from_secs(300)));
        let refresh = first.refresh_token.clone().unwrap();
        // A refresh token is no access token.
        assert_eq!(accounts.check_token(&refresh).unwrap(), TokenCheck::Unknown);
        let second = accounts.refresh(&refresh, &config).unwrap();
        assert_eq!(second.device_id, first.device_id);
        assert!(matches!(
            accounts.check_token(&second.access_token).unwrap(),
            TokenCheck::Valid(_)
        ));
        assert_eq!(accounts.check_token(&first.access_token).unwrap(), TokenCheck::Unknown);
        assert!(matches!(accounts.refresh(&refresh, &config), Err(RefreshError::Unknown)));
        accounts.refresh(second.refresh_token.as_ref().unwrap(), &config).unwrap();
    }

    #[test]
    fn expired_access_tokens_are_told_apart_from_unknown_ones() {
        let (_dir, accounts) = accounts();
        let lifetimes =
            NewTokens { access_lifetime: Some(Duration::from_millis(1)), refresh: Some(None) };
        let issued = accounts.create_session(&alice(), None, None, None, &lifetimes).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(accounts.check_token(&issued.access_token).unwrap(), TokenCheck::Expired);
        assert_eq!(accounts.check_token("never issued").unwrap(), TokenCheck::Unknown);
        // Deleting the device revokes both tokens.
        accounts.delete_device(&alice(), &issued.device_id).unwrap();
        assert_eq!(accounts.check_token(&issued.access_token).unwrap(), TokenCheck::Unknown);
        let config = Config::default().tokens;
        let refresh = issued.refresh_token.unwrap();
        assert!(matches!(accounts.refresh(&refresh, &config), Err(RefreshError::Unknown)));
    }

    #[test]
    fn tokens_without_refresh_never_expire_by_default() {
        let lifetimes = NewTokens::from_config(&Config::default().tokens, false);
        assert_eq!(lifetimes, NewTokens::default());
    }
}
