//! Domain logic. Each service owns its column families and takes only what it needs.

pub mod account_data;
pub mod accounts;
pub mod appservice;
pub mod client_format;
pub mod devices;
pub mod ephemeral;
pub mod federation;
pub mod filters;
pub mod globals;
pub mod keys;
pub mod media;
pub mod membership;
pub mod notifier;
pub mod policy;
pub mod policy_check;
pub mod presence;
pub mod push;
pub mod rate_limit;
pub mod relations;
pub mod reports;
pub mod room_summary;
pub mod rooms;
pub mod search;
pub mod sliding_sync;
pub mod spaces;
pub mod sync;
pub mod threepids;
pub mod uiaa;
pub mod upgrade;
pub mod visibility;

use std::sync::Arc;

use self::{globals::Globals, notifier::Notifier};

use crate::{
    config::Config,
    storage::{Db, OpenOptions, StorageError},
};

/// Every column family of the database, from every service.
pub fn column_families() -> Vec<&'static str> {
    let mut cfs = Vec::new();
    cfs.extend_from_slice(globals::COLUMN_FAMILIES);
    cfs.extend_from_slice(accounts::COLUMN_FAMILIES);
    cfs.extend_from_slice(account_data::COLUMN_FAMILIES);
    cfs.extend_from_slice(ephemeral::COLUMN_FAMILIES);
    cfs.extend_from_slice(filters::COLUMN_FAMILIES);
    cfs.extend_from_slice(threepids::COLUMN_FAMILIES);
    cfs.extend_from_slice(reports::COLUMN_FAMILIES);
    cfs.extend_from_slice(media::COLUMN_FAMILIES);
    cfs.extend_from_slice(keys::COLUMN_FAMILIES);
    cfs.extend_from_slice(push::COLUMN_FAMILIES);
    cfs.extend_from_slice(appservice::COLUMN_FAMILIES);
    cfs.extend(rooms::column_families());
    cfs.extend_from_slice(sliding_sync::COLUMN_FAMILIES);
    cfs.extend_from_slice(federation::COLUMN_FAMILIES);
    cfs.extend_from_slice(federation::sender::COLUMN_FAMILIES);
    cfs.extend_from_slice(federation::transactions::COLUMN_FAMILIES);
    cfs
}

/// Errors opening the services.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The database cannot be used by this build.
    #[error(transparent)]
    Migration(#[from] relais_migrations::MigrationError),
    /// Server keys failed.
    #[error(transparent)]
    Globals(#[from] globals::GlobalsError),
    /// The media repository could not open.
    #[error(transparent)]
    Media(#[from] media::MediaError),
    /// The push service could not open.
    #[error(transparent)]
    Push(#[from] push::PushError),
    /// An application service registration is invalid.
    #[error(transparent)]
    Appservice(#[from] appservice::AppserviceError),
    /// The policy layer could not start.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// The policy checks could not be set up.
    #[error(transparent)]
    PolicyCheck(#[from] policy_check::PolicyCheckError),
    /// Federation could not be set up (TLS roots, key store).
    #[error(transparent)]
    Federation(#[from] federation::FederationError),
}

/// All services, wired together.
pub struct Services {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub db: Arc<Db>,
    /// Server-wide state.
    pub globals: Arc<Globals>,
    /// Sync wake-ups.
    pub notifier: Arc<Notifier>,
    /// Accounts.
    pub accounts: accounts::Accounts,
    /// Rooms.
    pub rooms: rooms::Rooms,
    /// Account data.
    pub account_data: Arc<account_data::AccountData>,
    /// Typing and receipts.
    pub ephemeral: ephemeral::Ephemeral,
    /// Stored filters.
    pub filters: filters::Filters,
    /// E-mail addresses: verification and the addresses bound to accounts.
    pub threepids: threepids::Threepids,
    /// Presence.
    pub presence: presence::PresenceService,
    /// Content reports.
    pub reports: reports::Reports,
    /// The address the listener is bound to, once it is (for `listen.port = 0`).
    pub bound_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// UIA sessions.
    pub uiaa: uiaa::Uiaa,
    /// The media repository.
    pub media: Arc<media::Media>,
    /// End-to-end encryption keys, to-device messages and key backups.
    pub keys: keys::Keys,
    /// Push rules, notification counts and pushers.
    pub push: Arc<push::Push>,
    /// Rate limits and the login back-off.
    pub rate_limits: rate_limit::RateLimiter,
    /// The policy service asked before gated actions.
    pub policy_checks: policy_check::PolicyChecks,
    /// Sliding sync connections: what each client connection already has.
    pub sliding_sync: sliding_sync::Connections,
    /// Registered application services and their transaction queues.
    pub appservices: appservice::Appservices,
    /// The embedded policy service: tiers, access classes, delegated administration.
    pub policy: policy::Policy,
    /// Federation: other servers' keys, the signed client, the allow-list.
    pub federation: Arc<federation::Federation>,
    /// Transactions to other servers: one queue per destination.
    pub federation_sender: Arc<federation::sender::Sender>,
    /// Transactions other servers sent that were processed.
    pub federation_transactions: federation::transactions::IncomingTransactions,
}

impl Services {
    /// The base URL clients reach this server at: `public_base_url`, else the address the
    /// listener is actually bound to.
    pub fn base_url(&self) -> String {
        match (self.config.public_base_url.is_empty(), self.bound_addr.get()) {
            (true, Some(addr)) => format!("http://{addr}"),
            _ => self.config.base_url(),
        }
    }

    /// Opens the database, runs migrations and builds the services.
    pub fn open(config: Arc<Config>) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(&config.database.path)
            .map_err(|e| StorageError::Io(config.database.path.display().to_string(), e))?;
        let db = Db::open(
            &config.database.path,
            &column_families(),
            &OpenOptions {
                sync_writes: config.database.sync_writes,
                cache_bytes: (config.database.cache_capacity_mb as usize) << 20,
            },
        )?;
        let outcome = relais_migrations::migrate(&mut db.migration_store())?;
        if outcome.from != outcome.to {
            tracing::info!(from = outcome.from, to = outcome.to, "database migrated");
        }
        let globals = Arc::new(Globals::new(&db, config.server_name.clone())?);
        let notifier = Arc::new(Notifier::default());
        let rooms = rooms::Rooms::new(
            &db,
            globals.clone(),
            notifier.clone(),
            config.database.state_cache_entries,
            config.database.pdu_cache_entries,
        )?;
        let account_data =
            Arc::new(account_data::AccountData::new(&db, globals.clone(), notifier.clone())?);
        let push = Arc::new(push::Push::new(&db, account_data.clone())?);
        rooms.add_event_hook(push.clone());
        Ok(Arc::new(Self {
            accounts: accounts::Accounts::new(&db, config.server_name.clone())?,
            rooms,
            account_data,
            push,
            ephemeral: ephemeral::Ephemeral::new(&db, globals.clone(), notifier.clone())?,
            filters: filters::Filters::new(&db, globals.clone())?,
            threepids: threepids::Threepids::new(&db, &config)?,
            presence: presence::PresenceService::new(globals.clone(), notifier.clone()),
            reports: reports::Reports::new(&db, globals.clone())?,
            bound_addr: std::sync::OnceLock::new(),
            uiaa: uiaa::Uiaa::default(),
            media: media::Media::open(
                &db,
                config.server_name.clone(),
                config.media.clone(),
                config.media_path(),
            )?,
            keys: keys::Keys::new(&db, globals.clone(), notifier.clone())?,
            rate_limits: rate_limit::RateLimiter::new(config.rate_limits.clone()),
            policy_checks: policy_check::PolicyChecks::new(&config.policy_checks)?,
            sliding_sync: sliding_sync::Connections::new(&db)?,
            appservices: appservice::Appservices::new(
                &db,
                &config.appservices,
                &config.server_name,
            )?,
            policy: policy::Policy::new(&config.policy, config.server_name.as_str())?,
            federation: Arc::new(federation::Federation::new(&db, &config, globals.clone())?),
            federation_transactions: federation::transactions::IncomingTransactions::new(&db)?,
            federation_sender: Arc::new(federation::sender::Sender::new(
                &db,
                globals.clone(),
                config.federation.enabled,
                std::time::Duration::from_secs(config.federation.max_retry_interval_secs),
            )?),
            config,
            db,
            globals,
            notifier,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use relais_migrations::Store as _;

    use super::*;

    fn config(dir: &std::path::Path) -> Arc<Config> {
        let mut config = Config::default();
        config.database.path = dir.join("db");
        config.database.cache_capacity_mb = 8;
        Arc::new(config)
    }

    #[test]
    fn database_of_another_product_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path());
        drop(Services::open(config.clone()).expect("fresh database opens"));
        {
            let db = Db::open(
                &config.database.path,
                &column_families(),
                &OpenOptions { sync_writes: true, cache_bytes: 1 << 20 },
            )
            .expect("open");
            db.migration_store()
                .put(relais_migrations::GLOBAL_TABLE, relais_migrations::PRODUCT_KEY, b"conduit")
                .expect("stamp");
        }
        let error = Services::open(config).err().expect("refused").to_string();
        assert!(error.contains("another product"), "{error}");
    }

    #[test]
    fn no_column_family_is_claimed_twice() {
        let mut cfs = super::column_families();
        let total = cfs.len();
        cfs.sort_unstable();
        cfs.dedup();
        assert_eq!(cfs.len(), total, "a column family name is claimed by two services");
    }
}
