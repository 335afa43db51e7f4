//! Access tokens with a lifetime, and refresh tokens (spec: "Refreshing access tokens").
//!
//! Both kinds are stored in `tokenhash_session` under the SHA-256 of the token, told apart by
//! `refresh`, so a refresh token never authenticates a request. A device holds at most one of
//! each. An expired access token stays stored until its device refreshes or is removed, so that
//! it is answered as expired (`soft_logout`) rather than unknown.
//!
//! `/refresh` revokes the access token issued with the refresh token it was given, in the same
//! batch as it writes the new pair. As the spec asks, the refresh token given stays valid until
//! the new pair is first used (a client that lost the answer can ask again, which revokes the
//! unused pair); that first use revokes it. So at most one refresh token of a device is usable
//! once its current tokens have been used.

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
    /// The refresh token this token's pair replaced, revoked when either is first used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supersedes: Option<String>,
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
            previous_refresh_hash: None,
        };
        Ok(self.issue(user_id, device, previous.as_ref(), lifetimes, None)?)
    }

    /// Swaps a refresh token for a new access token and refresh token of the same device; the
    /// device's other tokens stop working, the given refresh token when the new ones are used.
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
        let current = device.refresh_token_hash.as_deref() == Some(hash.as_str());
        let retried = device.previous_refresh_hash.as_deref() == Some(hash.as_str());
        if !current && !retried {
            return Err(RefreshError::Unknown);
        }
        let lifetimes = NewTokens::from_config(config, true);
        Ok(self.issue(&stored.user_id, device.clone(), Some(&device), &lifetimes, Some(&hash))?)
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
                self.session_cache.write().insert(hash.clone(), stored.clone());
                stored
            }
        };
        Ok(if stored.refresh {
            TokenCheck::Unknown
        } else if stored.expired(now_ms()) {
            TokenCheck::Expired
        } else if stored.supersedes.is_some() {
            self.first_use(&hash)?
        } else {
            TokenCheck::Valid(stored.session())
        })
    }

    /// The first use of an access token from `/refresh`: revokes the refresh token it replaced.
    /// Read again under the lock: a retried `/refresh` may have revoked this token meanwhile.
    fn first_use(&self, hash: &str) -> Result<TokenCheck, StorageError> {
        let _issuing = self.token_lock.lock();
        let Some(Json(mut stored)) = self.sessions.get(&hash.to_owned())? else {
            self.session_cache.write().remove(hash);
            return Ok(TokenCheck::Unknown);
        };
        let Some(replaced) = stored.supersedes.take() else {
            return Ok(TokenCheck::Valid(stored.session()));
        };
        let mut batch = Batch::default();
        batch.delete(&self.sessions, &replaced);
        batch.put(&self.sessions, &hash.to_owned(), &Json(stored.clone()));
        let key = (stored.user_id.clone(), stored.device_id.to_string());
        if let Some(Json(mut device)) = self.devices.get(&key)?
            && device.previous_refresh_hash.as_deref() == Some(replaced.as_str())
        {
            device.previous_refresh_hash = None;
            batch.put(&self.devices, &key, &Json(device));
        }
        self.devices.db().write(batch)?;
        let mut cache = self.session_cache.write();
        cache.remove(&replaced);
        cache.insert(hash.to_owned(), stored.clone());
        Ok(TokenCheck::Valid(stored.session()))
    }

    /// Writes `device` with new tokens, revoking those of `previous` (the device as stored)
    /// except the refresh token `kept`, which the new tokens supersede on their first use.
    fn issue(
        &self,
        user_id: &UserId,
        mut device: Device,
        previous: Option<&Device>,
        lifetimes: &NewTokens,
        kept: Option<&str>,
    ) -> Result<IssuedTokens, StorageError> {
        let now = now_ms();
        let record = |expires_ts, refresh| StoredToken {
            user_id: user_id.to_owned(),
            device_id: device.device_id.clone(),
            expires_ts,
            refresh,
            supersedes: kept.map(str::to_owned),
        };
        let access_token = new_token();
        let access = record(expiry(now, lifetimes.access_lifetime), false);
        let refresh_token = lifetimes.refresh.map(|lifetime| (new_token(), lifetime));
        let refresh =
            refresh_token.as_ref().map(|(_, lifetime)| record(expiry(now, *lifetime), true));
        let mut batch = Batch::default();
        let mut revoked = revoked_hashes(previous);
        revoked.retain(|hash| Some(hash.as_str()) != kept);
        device.previous_refresh_hash = kept.map(str::to_owned);
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

/// The token hashes of a device: its access token and its refresh tokens, if any.
pub(super) fn revoked_hashes(device: Option<&Device>) -> Vec<String> {
    let Some(device) = device else { return Vec::new() };
    std::iter::once(device.token_hash.clone())
        .chain(device.refresh_token_hash.clone())
        .chain(device.previous_refresh_hash.clone())
        .collect()
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
    fn a_lost_refresh_answer_can_be_retried_until_the_new_tokens_are_used() {
        let (_dir, accounts) = accounts();
        let config = Config::default().tokens;
        let lifetimes = NewTokens::from_config(&config, true);
        let first = accounts.create_session(&alice(), None, None, None, &lifetimes).unwrap();
        let refresh = first.refresh_token.unwrap();
        let lost = accounts.refresh(&refresh, &config).unwrap();
        let retried = accounts.refresh(&refresh, &config).unwrap();
        // The retry revoked the pair whose answer was lost.
        assert_eq!(accounts.check_token(&lost.access_token).unwrap(), TokenCheck::Unknown);
        let lost_refresh = lost.refresh_token.unwrap();
        assert!(matches!(accounts.refresh(&lost_refresh, &config), Err(RefreshError::Unknown)));
        // Using the new access token retires the old refresh token, in storage too.
        assert!(matches!(
            accounts.check_token(&retried.access_token).unwrap(),
            TokenCheck::Valid(_)
        ));
        assert!(matches!(accounts.refresh(&refresh, &config), Err(RefreshError::Unknown)));
        accounts.session_cache.write().clear();
        assert!(matches!(
            accounts.check_token(&retried.access_token).unwrap(),
            TokenCheck::Valid(_)
        ));
        assert!(matches!(accounts.refresh(&refresh, &config), Err(RefreshError::Unknown)));
        // Using the new refresh token retires it too.
        let next = accounts.refresh(retried.refresh_token.as_ref().unwrap(), &config).unwrap();
        assert!(accounts.refresh(next.refresh_token.as_ref().unwrap(), &config).is_ok());
        assert!(matches!(
            accounts.refresh(retried.refresh_token.as_ref().unwrap(), &config),
            Err(RefreshError::Unknown)
        ));
    }

    #[test]
    fn refresh_revokes_the_old_access_token_and_in_time_the_old_refresh_token() {
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
