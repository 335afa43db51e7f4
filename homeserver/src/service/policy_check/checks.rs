//! [`PolicyChecks`]: what the rest of the server calls before acting. It builds each callback's
//! arguments, skips the callbacks the configuration leaves out, lets the configured callbacks
//! fail open, and counts outcomes for `/metrics`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt as _;
use parking_lot::{Mutex, RwLock};
use ruma::{RoomId, UserId};
use serde_json::Value;

use super::{
    AllowAll, Callback, CheckLoginForSpam, CheckRegistrationForSpam, CheckUsernameForSpam,
    FederatedUserMayInvite, HttpPolicyCheck, PolicyCheck, PolicyCheckError, PolicyRefusal,
    RequestInfo, UserMayCreateRoom, UserMayInvite, UserMayJoinRoom, UserMayPublishRoom,
    UserMaySend3pidInvite, UserMaySendStateEvent, UserProfile,
};
use crate::config::PolicyChecksConfig;

/// Most `check_username_for_spam` requests in flight for one user-directory search: a search
/// returns up to 100 users, and one search should not flood the policy service.
pub const DIRECTORY_CHECKS_IN_FLIGHT: usize = 16;

/// How one check ended, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The service allowed the action.
    Allowed,
    /// The service refused the action.
    Refused,
    /// The service gave no usable answer and the action was refused.
    FailedClosed,
    /// The service gave no usable answer and the callback is configured to fail open.
    FailedOpen,
}

impl Outcome {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::FailedClosed => "failed_closed",
            Self::FailedOpen => "failed_open",
        }
    }
}

/// The policy checks of this server.
pub struct PolicyChecks {
    backend: RwLock<Arc<dyn PolicyCheck>>,
    enabled: BTreeSet<Callback>,
    fail_open: BTreeSet<Callback>,
    outcomes: Mutex<BTreeMap<(Callback, Outcome), u64>>,
}

impl PolicyChecks {
    /// The checks `config` asks for: over HTTP when `url` is set, else everything is allowed.
    pub fn new(config: &PolicyChecksConfig) -> Result<Self, PolicyCheckError> {
        let backend: Arc<dyn PolicyCheck> = if config.url.is_empty() {
            Arc::new(AllowAll)
        } else {
            let token = Some(config.token.clone()).filter(|t| !t.is_empty());
            Arc::new(HttpPolicyCheck::new(
                &config.url,
                token,
                Duration::from_millis(config.timeout_ms),
            )?)
        };
        Ok(Self {
            backend: RwLock::new(backend),
            enabled: config.callbacks.iter().copied().collect(),
            fail_open: config.fail_open.iter().copied().collect(),
            outcomes: Mutex::new(BTreeMap::new()),
        })
    }

    /// Replaces the policy service, e.g. with the embedded one, which answers in-process.
    pub fn set_backend(&self, backend: Arc<dyn PolicyCheck>) {
        *self.backend.write() = backend;
    }

    /// The counts of check outcomes since start-up, by callback.
    pub fn outcomes(&self) -> Vec<(Callback, Outcome, u64)> {
        self.outcomes.lock().iter().map(|(&(c, o), &n)| (c, o, n)).collect()
    }

    /// The backend to ask, if `callback` is enabled.
    fn backend_for(&self, callback: Callback) -> Option<Arc<dyn PolicyCheck>> {
        self.enabled.contains(&callback).then(|| self.backend.read().clone())
    }

    /// Applies fail-open, counts and logs the result of a check.
    fn settle(
        &self,
        callback: Callback,
        result: Result<(), PolicyRefusal>,
    ) -> Result<(), PolicyRefusal> {
        let outcome = match &result {
            Ok(()) => Outcome::Allowed,
            Err(PolicyRefusal::Refused { .. }) => Outcome::Refused,
            Err(PolicyRefusal::Unavailable { .. }) if self.fail_open.contains(&callback) => {
                Outcome::FailedOpen
            }
            Err(PolicyRefusal::Unavailable { .. }) => Outcome::FailedClosed,
        };
        *self.outcomes.lock().entry((callback, outcome)).or_default() += 1;
        match (outcome, result) {
            (Outcome::FailedOpen, Err(refusal)) => {
                tracing::warn!(%callback, %refusal, "policy check failed open: action allowed");
                Ok(())
            }
            (Outcome::Refused, Err(refusal)) => {
                tracing::info!(%callback, errcode = refusal.errcode(), %refusal, "policy refused");
                Err(refusal)
            }
            (_, result) => result,
        }
    }

    /// `user_may_invite`.
    pub async fn user_may_invite(
        &self,
        inviter: &UserId,
        invitee: &UserId,
        room_id: &RoomId,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMayInvite;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = UserMayInvite {
            inviter: inviter.to_owned(),
            invitee: invitee.to_owned(),
            room_id: room_id.to_owned(),
        };
        self.settle(callback, backend.user_may_invite(&args).await)
    }

    /// `user_may_send_3pid_invite`.
    pub async fn user_may_send_3pid_invite(
        &self,
        inviter: &UserId,
        medium: &str,
        address: &str,
        room_id: &RoomId,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMaySend3pidInvite;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = UserMaySend3pidInvite {
            inviter: inviter.to_owned(),
            medium: medium.to_owned(),
            address: address.to_owned(),
            room_id: room_id.to_owned(),
        };
        self.settle(callback, backend.user_may_send_3pid_invite(&args).await)
    }

    /// `user_may_join_room`, for a join or (with `is_knock`) a knock.
    pub async fn user_may_join_room(
        &self,
        user: &UserId,
        room: &RoomId,
        is_invited: bool,
        is_knock: bool,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMayJoinRoom;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args =
            UserMayJoinRoom { user: user.to_owned(), room: room.to_owned(), is_invited, is_knock };
        self.settle(callback, backend.user_may_join_room(&args).await)
    }

    /// `user_may_create_room`, with the request body as `room_config`.
    pub async fn user_may_create_room(
        &self,
        user_id: &UserId,
        room_config: Value,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMayCreateRoom;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = UserMayCreateRoom { user_id: user_id.to_owned(), room_config };
        self.settle(callback, backend.user_may_create_room(&args).await)
    }

    /// `user_may_send_state_event`.
    pub async fn user_may_send_state_event(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMaySendStateEvent;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = UserMaySendStateEvent {
            user_id: user_id.to_owned(),
            room_id: room_id.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.to_owned(),
            content: content.clone(),
        };
        self.settle(callback, backend.user_may_send_state_event(&args).await)
    }

    /// `user_may_publish_room`.
    pub async fn user_may_publish_room(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::UserMayPublishRoom;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = UserMayPublishRoom { user_id: user_id.to_owned(), room_id: room_id.to_owned() };
        self.settle(callback, backend.user_may_publish_room(&args).await)
    }

    /// `check_registration_for_spam`.
    pub async fn check_registration_for_spam(
        &self,
        username: Option<&str>,
        request_info: RequestInfo,
        registration_token: Option<&str>,
        email: Option<(&str, u64)>,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::CheckRegistrationForSpam;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = CheckRegistrationForSpam {
            // Synapse's shape: the verified address with when it was verified and added.
            email_threepid: email.map(|(address, validated_at)| {
                serde_json::json!({
                    "medium": "email",
                    "address": address,
                    "validated_at": validated_at,
                    "added_at": validated_at,
                })
            }),
            username: username.map(str::to_owned),
            request_info: vec![request_info],
            auth_provider_id: None,
            registration_token_hash: registration_token.map(crate::service::accounts::hash_token),
        };
        self.settle(callback, backend.check_registration_for_spam(&args).await)
    }

    /// `check_login_for_spam`.
    pub async fn check_login_for_spam(
        &self,
        user_id: &UserId,
        device_id: Option<&str>,
        initial_display_name: Option<&str>,
        request_info: RequestInfo,
    ) -> Result<(), PolicyRefusal> {
        let callback = Callback::CheckLoginForSpam;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = CheckLoginForSpam {
            user_id: user_id.to_owned(),
            device_id: device_id.map(str::to_owned),
            initial_display_name: initial_display_name.map(str::to_owned),
            request_info: vec![request_info],
            auth_provider_id: None,
        };
        self.settle(callback, backend.check_login_for_spam(&args).await)
    }

    /// `check_username_for_spam` for each of `users`: keeps those the service lets `requester`
    /// see, in order. Up to [`DIRECTORY_CHECKS_IN_FLIGHT`] checks run at once; a refusal or a
    /// failure hides the user (unless the callback fails open).
    pub async fn filter_user_directory<T>(
        &self,
        requester: &UserId,
        users: Vec<T>,
        profile: impl Fn(&T) -> UserProfile,
    ) -> Vec<T> {
        let callback = Callback::CheckUsernameForSpam;
        let Some(backend) = self.backend_for(callback) else { return users };
        // Collected first: a lazy `map` closure held across the await makes the future's
        // lifetimes too general for the handler to be `Send`.
        let checks: Vec<_> = users
            .iter()
            .map(|user| {
                let args = CheckUsernameForSpam {
                    user_profile: profile(user),
                    requester_id: requester.to_owned(),
                };
                let backend = backend.clone();
                async move { backend.check_username_for_spam(&args).await }
            })
            .collect();
        let results: Vec<_> =
            futures_util::stream::iter(checks).buffered(DIRECTORY_CHECKS_IN_FLIGHT).collect().await;
        users
            .into_iter()
            .zip(results)
            .filter_map(|(user, result)| self.settle(callback, result).is_ok().then_some(user))
            .collect()
    }

    /// `federated_user_may_invite`, with the invite event in the client format. For federation,
    /// which Relais does not speak yet.
    pub async fn federated_user_may_invite(&self, event: Value) -> Result<(), PolicyRefusal> {
        let callback = Callback::FederatedUserMayInvite;
        let Some(backend) = self.backend_for(callback) else { return Ok(()) };
        let args = FederatedUserMayInvite { event };
        self.settle(callback, backend.federated_user_may_invite(&args).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::policy_check::{Failure, PolicyFuture};

    /// Refuses invites, fails joins, allows the rest.
    struct Picky;

    fn refuse<'a>(callback: Callback) -> PolicyFuture<'a> {
        Box::pin(std::future::ready(Err(PolicyRefusal::Refused {
            callback,
            errcode: "M_FORBIDDEN".into(),
            message: "no".into(),
            fields: Default::default(),
        })))
    }

    impl PolicyCheck for Picky {
        fn user_may_invite<'a>(&'a self, _: &'a UserMayInvite) -> PolicyFuture<'a> {
            refuse(Callback::UserMayInvite)
        }
        fn user_may_send_3pid_invite<'a>(
            &'a self,
            a: &'a UserMaySend3pidInvite,
        ) -> PolicyFuture<'a> {
            AllowAll.user_may_send_3pid_invite(a)
        }
        fn user_may_join_room<'a>(&'a self, _: &'a UserMayJoinRoom) -> PolicyFuture<'a> {
            Box::pin(std::future::ready(Err(PolicyRefusal::Unavailable {
                callback: Callback::UserMayJoinRoom,
                failure: Failure::Timeout,
            })))
        }
        fn user_may_create_room<'a>(&'a self, a: &'a UserMayCreateRoom) -> PolicyFuture<'a> {
            AllowAll.user_may_create_room(a)
        }
        fn user_may_send_state_event<'a>(
            &'a self,
            a: &'a UserMaySendStateEvent,
        ) -> PolicyFuture<'a> {
            AllowAll.user_may_send_state_event(a)
        }
        fn user_may_publish_room<'a>(&'a self, a: &'a UserMayPublishRoom) -> PolicyFuture<'a> {
            AllowAll.user_may_publish_room(a)
        }
        fn check_registration_for_spam<'a>(
            &'a self,
            a: &'a CheckRegistrationForSpam,
        ) -> PolicyFuture<'a> {
            AllowAll.check_registration_for_spam(a)
        }
        fn check_login_for_spam<'a>(&'a self, a: &'a CheckLoginForSpam) -> PolicyFuture<'a> {
            AllowAll.check_login_for_spam(a)
        }
        fn check_username_for_spam<'a>(&'a self, a: &'a CheckUsernameForSpam) -> PolicyFuture<'a> {
            if a.user_profile.user_id.localpart() == "spammer" {
                refuse(Callback::CheckUsernameForSpam)
            } else {
                AllowAll.check_username_for_spam(a)
            }
        }
        fn federated_user_may_invite<'a>(
            &'a self,
            a: &'a FederatedUserMayInvite,
        ) -> PolicyFuture<'a> {
            AllowAll.federated_user_may_invite(a)
        }
    }

    fn checks(callbacks: &[Callback], fail_open: &[Callback]) -> PolicyChecks {
        let config = PolicyChecksConfig {
            callbacks: callbacks.to_vec(),
            fail_open: fail_open.to_vec(),
            ..PolicyChecksConfig::default()
        };
        let checks = PolicyChecks::new(&config).expect("builds");
        checks.set_backend(Arc::new(Picky));
        checks
    }

    #[tokio::test]
    async fn an_in_process_backend_decides_and_outcomes_are_counted() {
        let checks = checks(&Callback::ALL, &[]);
        let (a, b, room) = (ruma::user_id!("@a:x"), ruma::user_id!("@b:x"), ruma::room_id!("!r:x"));
        let refusal = checks.user_may_invite(a, b, room).await.expect_err("refused");
        assert_eq!(refusal.callback(), Callback::UserMayInvite);
        assert!(checks.user_may_publish_room(a, room).await.is_ok());
        let refusal = checks.user_may_join_room(a, room, false, false).await.expect_err("closed");
        assert!(refusal.to_string().contains("did not answer in time"), "{refusal}");
        assert_eq!(
            checks.outcomes(),
            vec![
                (Callback::UserMayInvite, Outcome::Refused, 1),
                (Callback::UserMayJoinRoom, Outcome::FailedClosed, 1),
                (Callback::UserMayPublishRoom, Outcome::Allowed, 1),
            ]
        );
    }

    #[tokio::test]
    async fn disabled_callbacks_are_not_asked_and_fail_open_allows_failures() {
        let checks = checks(&[Callback::UserMayJoinRoom], &[Callback::UserMayJoinRoom]);
        let (a, b, room) = (ruma::user_id!("@a:x"), ruma::user_id!("@b:x"), ruma::room_id!("!r:x"));
        assert!(checks.user_may_invite(a, b, room).await.is_ok(), "not enabled");
        assert!(checks.user_may_join_room(a, room, true, false).await.is_ok(), "fails open");
        assert_eq!(checks.outcomes(), vec![(Callback::UserMayJoinRoom, Outcome::FailedOpen, 1)]);
    }

    #[tokio::test]
    async fn the_user_directory_hides_refused_users_in_order() {
        let checks = checks(&Callback::ALL, &[]);
        let users = ["@x:h", "@spammer:h", "@y:h"].map(|u| ruma::OwnedUserId::try_from(u).unwrap());
        let kept = checks
            .filter_user_directory(ruma::user_id!("@a:h"), users.to_vec(), |u| UserProfile {
                user_id: u.clone(),
                display_name: None,
                avatar_url: None,
            })
            .await;
        assert_eq!(kept, vec![users[0].clone(), users[2].clone()]);
    }
}
