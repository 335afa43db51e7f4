//! Accounts: users, passwords, devices, access and refresh tokens, profiles.
//!
//! Passwords are hashed with Argon2id. Access tokens are 32 bytes from the OS CSPRNG; only their
//! SHA-256 is stored and looked up, so a copy of the database holds no usable token and no
//! comparison of secret bytes happens in request handling.

use std::{collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use parking_lot::RwLock;
use rand::RngCore;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedServerName, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{Batch, Db, Json, StorageError, Table};

mod password;
mod tokens;

use tokens::StoredToken;
pub use tokens::{IssuedTokens, NewTokens, RefreshError, TokenCheck};

/// Column families owned by the account service.
pub const COLUMN_FAMILIES: &[&str] =
    &["userid_password", "userid_account", "tokenhash_session", "userdeviceid_device"];

/// Errors of account operations.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The user ID is taken.
    #[error("the user ID is already taken")]
    UserInUse,
    /// The localpart is not allowed.
    #[error("invalid username: {0}")]
    InvalidUsername(String),
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
    /// No such user or device.
    #[error("not found")]
    NotFound,
}

/// Per-user account record, including the profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Account {
    /// When the account was created.
    pub created_ts: u64,
    /// Server administrator.
    pub admin: bool,
    /// Deactivated accounts cannot log in and their ID cannot be taken again.
    pub deactivated: bool,
    /// Display name.
    pub displayname: Option<String>,
    /// Avatar MXC URI.
    pub avatar_url: Option<String>,
}

/// A device of a user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Device {
    /// The device ID.
    pub device_id: OwnedDeviceId,
    /// Human-readable name.
    pub display_name: Option<String>,
    /// Last time the device made a request.
    pub last_seen_ts: Option<u64>,
    /// Last IP the device was seen from.
    pub last_seen_ip: Option<String>,
    /// SHA-256 of its access token.
    token_hash: String,
    /// SHA-256 of its refresh token, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_hash: Option<String>,
    /// SHA-256 of the refresh token that the current tokens replaced, valid until they are first
    /// used (so that a client that lost the answer to `/refresh` can ask again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_refresh_hash: Option<String>,
}

/// Who an access token belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user_id: OwnedUserId,
    /// The device.
    pub device_id: OwnedDeviceId,
    /// Set when an application service makes the request with its `as_token`, acting as
    /// `user_id`. Never stored: it is derived from the token of each request.
    #[serde(skip)]
    pub appservice: Option<AppserviceCaller>,
}

/// The application service behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppserviceCaller {
    /// The service's ID.
    pub id: String,
    /// Whether its requests are rate-limited (`rate_limited` in its registration).
    pub rate_limited: bool,
    /// Whether the request named a real device of the user (`device_id`, MSC4326); otherwise
    /// `device_id` is [`APPSERVICE_DEVICE`], which is no device of the user's.
    pub device: bool,
}

/// The device ID of requests an application service makes as a user without naming a device.
pub const APPSERVICE_DEVICE: &str = "_APPSERVICE";

/// The account service.
pub struct Accounts {
    server_name: OwnedServerName,
    passwords: Table<OwnedUserId, String>,
    accounts: Table<OwnedUserId, Json<Account>>,
    sessions: Table<String, Json<StoredToken>>,
    devices: Table<(OwnedUserId, String), Json<Device>>,
    session_cache: RwLock<HashMap<String, StoredToken>>,
    /// Serialises registrations: the "is the ID free" check and the write must not interleave.
    register_lock: parking_lot::Mutex<()>,
    /// Serialises token issuing: a refresh token must not be swapped twice concurrently.
    token_lock: parking_lot::Mutex<()>,
}

impl Accounts {
    /// Opens the service.
    pub fn new(db: &Arc<Db>, server_name: OwnedServerName) -> Result<Self, StorageError> {
        Ok(Self {
            server_name,
            passwords: db.table("userid_password")?,
            accounts: db.table("userid_account")?,
            sessions: db.table("tokenhash_session")?,
            devices: db.table("userdeviceid_device")?,
            session_cache: RwLock::new(HashMap::new()),
            register_lock: parking_lot::Mutex::new(()),
            token_lock: parking_lot::Mutex::new(()),
        })
    }

    /// The full user ID for a localpart on this server, if the localpart is valid.
    pub fn user_id(&self, localpart: &str) -> Result<OwnedUserId, AccountError> {
        if localpart.is_empty()
            || !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'))
        {
            return Err(AccountError::InvalidUsername(
                "user names may contain only a-z, 0-9, '.', '_', '=', '-', '/' and '+'".into(),
            ));
        }
        let id = format!("@{localpart}:{}", self.server_name);
        if id.len() > 255 {
            return Err(AccountError::InvalidUsername("user ID longer than 255 bytes".into()));
        }
        OwnedUserId::try_from(id).map_err(|e| AccountError::InvalidUsername(e.to_string()))
    }

    /// Whether the user exists (deactivated users included).
    pub fn exists(&self, user_id: &UserId) -> Result<bool, StorageError> {
        self.accounts.contains(&user_id.to_owned())
    }

    /// The account record.
    pub fn account(&self, user_id: &UserId) -> Result<Option<Account>, StorageError> {
        Ok(self.accounts.get(&user_id.to_owned())?.map(|Json(a)| a))
    }

    /// Registers a local user. `password` is `None` for accounts that log in otherwise.
    pub fn register(
        &self,
        user_id: &UserId,
        password: Option<&str>,
        admin: bool,
    ) -> Result<(), AccountError> {
        // Hash outside the lock: it is the slow part, by design.
        let hash = password.map(hash_password).transpose()?;
        let _registering = self.register_lock.lock();
        if self.exists(user_id)? {
            return Err(AccountError::UserInUse);
        }
        let mut batch = Batch::default();
        if let Some(hash) = &hash {
            batch.put(&self.passwords, &user_id.to_owned(), hash);
        }
        let account = Account {
            created_ts: MilliSecondsSinceUnixEpoch::now().0.into(),
            admin,
            deactivated: false,
            displayname: Some(user_id.localpart().to_owned()),
            avatar_url: None,
        };
        batch.put(&self.accounts, &user_id.to_owned(), &Json(account));
        self.accounts.db().write(batch)?;
        Ok(())
    }

    /// Checks a password; `false` for unknown or deactivated users. Argon2's verification compares
    /// in constant time.
    pub fn check_password(&self, user_id: &UserId, password: &str) -> Result<bool, StorageError> {
        match self.account(user_id)? {
            Some(account) if !account.deactivated => {}
            _ => return Ok(false),
        }
        let Some(hash) = self.passwords.get(&user_id.to_owned())? else { return Ok(false) };
        let password = password.to_owned();
        Ok(on_hash_thread(move || password::verify(password.as_bytes(), &hash)).unwrap_or(false))
    }

    /// Sets a new password.
    pub fn set_password(&self, user_id: &UserId, password: &str) -> Result<(), AccountError> {
        self.passwords.put(&user_id.to_owned(), &hash_password(password)?)?;
        Ok(())
    }

    /// Creates (or replaces) a device and returns it with a fresh access token that never
    /// expires and no refresh token.
    pub fn create_device(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        ip: Option<String>,
    ) -> Result<(OwnedDeviceId, String), AccountError> {
        let issued =
            self.create_session(user_id, device_id, display_name, ip, &NewTokens::default())?;
        Ok((issued.device_id, issued.access_token))
    }

    /// The session of a live access token; `None` for an unknown or expired one.
    pub fn authenticate(&self, token: &str) -> Result<Option<Session>, StorageError> {
        Ok(match self.check_token(token)? {
            TokenCheck::Valid(session) => Some(session),
            TokenCheck::Expired | TokenCheck::Unknown => None,
        })
    }

    /// A user's devices.
    pub fn devices(&self, user_id: &UserId) -> Result<Vec<Device>, StorageError> {
        self.devices
            .scan_prefix(&user_id.to_owned())?
            .map(|res| res.map(|(_, Json(d))| d))
            .collect()
    }

    /// One device.
    pub fn device(
        &self,
        user_id: &UserId,
        device_id: &ruma::DeviceId,
    ) -> Result<Option<Device>, StorageError> {
        Ok(self.devices.get(&(user_id.to_owned(), device_id.to_string()))?.map(|Json(d)| d))
    }

    /// Renames a device.
    pub fn rename_device(
        &self,
        user_id: &UserId,
        device_id: &ruma::DeviceId,
        display_name: Option<String>,
    ) -> Result<(), AccountError> {
        let key = (user_id.to_owned(), device_id.to_string());
        let Some(Json(mut device)) = self.devices.get(&key)? else {
            return Err(AccountError::NotFound);
        };
        device.display_name = display_name;
        self.devices.put(&key, &Json(device))?;
        Ok(())
    }

    /// Deletes a device and revokes its access token.
    pub fn delete_device(
        &self,
        user_id: &UserId,
        device_id: &ruma::DeviceId,
    ) -> Result<(), StorageError> {
        let key = (user_id.to_owned(), device_id.to_string());
        let Some(Json(device)) = self.devices.get(&key)? else { return Ok(()) };
        let revoked = tokens::revoked_hashes(Some(&device));
        let mut batch = Batch::default();
        batch.delete(&self.devices, &key);
        for hash in &revoked {
            batch.delete(&self.sessions, hash);
        }
        self.devices.db().write(batch)?;
        let mut cache = self.session_cache.write();
        for hash in &revoked {
            cache.remove(hash);
        }
        Ok(())
    }

    /// Deletes every device of a user, except `keep`.
    pub fn delete_all_devices(
        &self,
        user_id: &UserId,
        keep: Option<&ruma::DeviceId>,
    ) -> Result<(), StorageError> {
        for device in self.devices(user_id)? {
            if Some(&*device.device_id) != keep {
                self.delete_device(user_id, &device.device_id)?;
            }
        }
        Ok(())
    }

    /// Deactivates an account: no password, no devices; the ID stays reserved.
    pub fn deactivate(&self, user_id: &UserId) -> Result<(), AccountError> {
        self.delete_all_devices(user_id, None)?;
        let Some(mut account) = self.account(user_id)? else { return Err(AccountError::NotFound) };
        account.deactivated = true;
        account.displayname = None;
        account.avatar_url = None;
        let mut batch = Batch::default();
        batch.delete(&self.passwords, &user_id.to_owned());
        batch.put(&self.accounts, &user_id.to_owned(), &Json(account));
        self.accounts.db().write(batch)?;
        Ok(())
    }

    /// Updates the profile; returns the new account record.
    pub fn set_profile(
        &self,
        user_id: &UserId,
        displayname: Option<Option<String>>,
        avatar_url: Option<Option<String>>,
    ) -> Result<Account, AccountError> {
        let Some(mut account) = self.account(user_id)? else { return Err(AccountError::NotFound) };
        if let Some(name) = displayname {
            account.displayname = name;
        }
        if let Some(url) = avatar_url {
            account.avatar_url = url;
        }
        self.accounts.put(&user_id.to_owned(), &Json(account.clone()))?;
        Ok(account)
    }

    /// Grants or withdraws server administration (the admin API's `admin` flag).
    pub fn set_admin(&self, user_id: &UserId, admin: bool) -> Result<(), AccountError> {
        let Some(mut account) = self.account(user_id)? else { return Err(AccountError::NotFound) };
        account.admin = admin;
        self.accounts.put(&user_id.to_owned(), &Json(account))?;
        Ok(())
    }

    /// Every local account, for the user directory.
    pub fn all(&self) -> Result<Vec<(OwnedUserId, Account)>, StorageError> {
        self.accounts.scan_all()?.map(|res| res.map(|(id, Json(a))| (id, a))).collect()
    }
}

/// Argon2 needs 19 MiB per hash by design. Run on whatever thread asks, a burst of logins or
/// registrations would allocate it in many threads' malloc arenas, which keep the memory long
/// after: all hashing runs on two dedicated threads instead (the work is CPU-bound; more threads
/// would not finish sooner), so that memory stays bounded.
fn on_hash_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static JOBS: std::sync::LazyLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::LazyLock::new(|| {
            let (sender, receiver) = std::sync::mpsc::channel::<Job>();
            let receiver = Arc::new(std::sync::Mutex::new(receiver));
            for i in 0..2 {
                let receiver = receiver.clone();
                let spawned =
                    std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                        loop {
                            let job = match receiver.lock() {
                                Ok(receiver) => receiver.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a password hashing thread");
                }
            }
            std::sync::Mutex::new(sender)
        });
    let (reply, result) = std::sync::mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    JOBS.lock().ok()?.send(job).ok()?;
    result.recv().ok()
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_owned();
    on_hash_thread(move || password::hash(password.as_bytes())).flatten().ok_or(AccountError::Hash)
}

/// A new random secret (access tokens, session IDs) from the OS CSPRNG.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a token, base64url: how tokens are stored and looked up.
pub fn hash_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}
