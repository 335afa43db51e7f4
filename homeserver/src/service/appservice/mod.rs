//! Application services (the Application Service API): bridges, bots and the policy service.
//!
//! - [`registration`]: the registration files, validated at start-up.
//! - Requests from a service carry its `as_token` and act as any user of its namespaces
//!   ([`Appservices::masquerade`]); IDs in an exclusive namespace are refused to everyone else.
//! - [`sender`]: every event of a room a service is interested in ([`interest`]) reaches it in
//!   transactions, from a queue kept on disk so that nothing is lost or sent twice across restarts.
//! - [`outgoing`]: the requests the homeserver makes to a service (transactions, user and alias
//!   queries, ping).

pub mod interest;
pub mod outgoing;
pub mod overlap;
pub mod registration;
pub mod sender;

use std::{collections::HashMap, sync::Arc};

use ruma::{OwnedUserId, RoomAliasId, ServerName, UserId};
use subtle::ConstantTimeEq;

pub use self::registration::{Appservice, RegistrationError};
use self::{
    registration::token_hash,
    sender::{QueueState, SenderHandle},
};
use crate::{
    config::AppservicesConfig,
    storage::{Db, Json, StorageError, Table},
};

/// Column families of the application service queues.
pub const COLUMN_FAMILIES: &[&str] = &["appserviceid_queue"];

/// Errors of application service operations.
#[derive(Debug, thiserror::Error)]
pub enum AppserviceError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A registration is invalid.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// Reading events failed.
    #[error(transparent)]
    Room(#[from] crate::service::rooms::RoomError),
    /// The ID belongs to an application service's exclusive namespace.
    #[error("{0}")]
    Exclusive(String),
    /// The service may not act as this user.
    #[error("{0}")]
    Forbidden(String),
    /// The service has no URL, so the homeserver cannot reach it.
    #[error("the application service has no URL configured")]
    UrlNotSet,
    /// The service did not answer in time.
    #[error("the application service did not answer in time")]
    Timeout,
    /// The service could not be reached.
    #[error("could not reach the application service: {0}")]
    ConnectionFailed(String),
    /// The service answered with an error status.
    #[error("the application service answered HTTP {status}")]
    BadStatus {
        /// The HTTP status.
        status: u16,
        /// The body of the answer.
        body: String,
    },
}

/// The registered application services.
pub struct Appservices {
    services: Vec<Arc<Appservice>>,
    queue: Table<String, Json<QueueState>>,
    http: reqwest::Client,
    handles: HashMap<String, Arc<SenderHandle>>,
}

impl Appservices {
    /// Loads the registration files named in the configuration.
    pub fn new(
        db: &Arc<Db>,
        config: &AppservicesConfig,
        server_name: &ServerName,
    ) -> Result<Self, AppserviceError> {
        let services = registration::load(&config.registration_files, server_name)?;
        for service in &services {
            tracing::info!(
                id = service.id(),
                sender = %service.sender,
                url = service.registration.url.as_deref().unwrap_or("none"),
                "application service registered"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(config.request_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AppserviceError::ConnectionFailed(e.to_string()))?;
        let handles = services.iter().map(|s| (s.id().to_owned(), Arc::default())).collect();
        Ok(Self {
            services: services.into_iter().map(Arc::new).collect(),
            queue: db.table("appserviceid_queue")?,
            http,
            handles,
        })
    }

    /// Every registered service.
    pub fn all(&self) -> &[Arc<Appservice>] {
        &self.services
    }

    /// What the sender task of a service shares with request handlers.
    pub fn handle(&self, id: &str) -> Option<&Arc<SenderHandle>> {
        self.handles.get(id)
    }

    /// The service with this ID.
    pub fn by_id(&self, id: &str) -> Option<&Arc<Appservice>> {
        self.services.iter().find(|s| s.id() == id)
    }

    /// The service whose `as_token` this is. Every registration is compared, in constant time,
    /// so the answer's timing says nothing about the token.
    pub fn by_as_token(&self, token: &str) -> Option<Arc<Appservice>> {
        if self.services.is_empty() {
            return None;
        }
        let hash = token_hash(token);
        let mut found = None;
        for service in &self.services {
            if bool::from(service.as_token_hash.ct_eq(&hash)) {
                found = Some(service.clone());
            }
        }
        found
    }

    /// The user a request made with `service`'s token acts as: `user_id` if given (which must be
    /// in the service's namespace), else the service's own user.
    pub fn masquerade(
        &self,
        service: &Appservice,
        user_id: Option<&str>,
    ) -> Result<OwnedUserId, AppserviceError> {
        let Some(user_id) = user_id else { return Ok(service.sender.clone()) };
        let user = OwnedUserId::try_from(user_id).map_err(|e| {
            AppserviceError::Forbidden(format!("`user_id` {user_id:?} is not a user ID: {e}"))
        })?;
        if !service.is_user_in_namespace(&user) {
            return Err(AppserviceError::Forbidden(format!(
                "application service {} cannot act as {user}: the user is not in its namespace",
                service.id()
            )));
        }
        Ok(user)
    }

    /// Refuses a user ID that another service (not `caller`) claims exclusively.
    pub fn check_user_id(
        &self,
        user: &UserId,
        caller: Option<&str>,
    ) -> Result<(), AppserviceError> {
        match self.exclusive_user_owner(user) {
            Some(owner) if Some(owner.id()) != caller => Err(AppserviceError::Exclusive(format!(
                "the user ID {user} is reserved by the application service {}",
                owner.id()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a room alias that another service (not `caller`) claims exclusively.
    pub fn check_alias(
        &self,
        alias: &RoomAliasId,
        caller: Option<&str>,
    ) -> Result<(), AppserviceError> {
        let owner = self.services.iter().find(|s| s.aliases.matches_exclusive(alias.as_str()));
        match owner {
            Some(owner) if Some(owner.id()) != caller => Err(AppserviceError::Exclusive(format!(
                "the room alias {alias} is reserved by the application service {}",
                owner.id()
            ))),
            _ => Ok(()),
        }
    }

    /// The service that claims `user` exclusively (its own user included).
    pub fn exclusive_user_owner(&self, user: &UserId) -> Option<&Arc<Appservice>> {
        self.services.iter().find(|s| s.sender == user || s.users.matches_exclusive(user.as_str()))
    }

    /// The services with a user namespace that matches `user`, for lazy provisioning.
    pub fn user_namespace_owners(&self, user: &UserId) -> impl Iterator<Item = &Arc<Appservice>> {
        self.services.iter().filter(move |s| s.users.matches(user.as_str()))
    }

    /// The services with an alias namespace that matches `alias`, for lazy provisioning.
    pub fn alias_namespace_owners(
        &self,
        alias: &RoomAliasId,
    ) -> impl Iterator<Item = &Arc<Appservice>> {
        self.services.iter().filter(move |s| s.aliases.matches(alias.as_str()))
    }
}

impl crate::service::Services {
    /// Gives the services whose namespace covers a local user that does not exist the chance to
    /// create it (the spec's user query), before the server answers that it does not exist.
    pub async fn provision_appservice_user(&self, user: &UserId) -> Result<(), AppserviceError> {
        if user.server_name() != self.config.server_name || self.accounts.exists(user)? {
            return Ok(());
        }
        for service in self.appservices.user_namespace_owners(user) {
            match self.appservices.query_user(service, user).await {
                Ok(true) if self.accounts.exists(user)? => return Ok(()),
                Ok(_) => {}
                Err(e) => tracing::warn!(appservice = service.id(), %user, error = %e,
                    "user query failed"),
            }
        }
        Ok(())
    }

    /// Creates the account of each service's own user (`sender_localpart`) if it does not exist:
    /// the service acts as it without registering it first.
    pub fn register_appservice_users(&self) -> Result<(), AppserviceError> {
        for service in self.appservices.all() {
            if !self.accounts.exists(&service.sender)? {
                match self.accounts.register(&service.sender, None, false) {
                    Ok(()) | Err(crate::service::accounts::AccountError::UserInUse) => {}
                    Err(e) => {
                        return Err(AppserviceError::Forbidden(format!(
                            "cannot create {}: {e}",
                            service.sender
                        )));
                    }
                }
                tracing::info!(user = %service.sender, appservice = service.id(), "created");
            }
        }
        Ok(())
    }
}
