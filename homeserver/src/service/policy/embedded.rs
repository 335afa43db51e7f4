//! The embedded policy service as a [`PolicyCheck`]: each callback is decided by
//! [`relais_appservice::checks::decide`] on the directory snapshot, with rooms and memberships read
//! from this server's storage.

use std::sync::{Arc, Weak};

use relais_appservice::checks::{self, Check, Lookup, LookupError};
use relais_policy::{Decision, RoomFacts, WorkspaceFacts};
use ruma::{RoomId, UserId};
use serde_json::Value;

use crate::service::{
    Services,
    ephemeral::now_ms,
    policy_check::{
        Callback, CheckLoginForSpam, CheckRegistrationForSpam, CheckUsernameForSpam,
        FederatedUserMayInvite, PolicyCheck, PolicyFuture, PolicyRefusal, UserMayCreateRoom,
        UserMayInvite, UserMayJoinRoom, UserMayPublishRoom, UserMaySend3pidInvite,
        UserMaySendStateEvent,
    },
};

/// The embedded policy service. It holds the services weakly: they own it.
pub struct EmbeddedPolicy {
    services: Weak<Services>,
}

impl EmbeddedPolicy {
    /// The policy of `services`.
    pub fn new(services: &Arc<Services>) -> Self {
        Self { services: Arc::downgrade(services) }
    }

    /// Decides `check` (blocking reads of room state, off the async workers) and turns a denial
    /// into the refusal the client sees.
    fn decide<'a>(&'a self, check: Check) -> PolicyFuture<'a> {
        let services = self.services.upgrade();
        Box::pin(async move {
            let Some(services) = services else { return Ok(()) };
            let callback = check.callback();
            let decision = tokio::task::spawn_blocking(move || {
                checks::decide(
                    &services.policy.service,
                    &StorageLookup(&services),
                    &check,
                    now_ms(),
                )
            })
            .await
            .map_err(LookupError::from_display)
            .and_then(|r| r);
            match decision {
                Ok(Decision::Allow) => Ok(()),
                Ok(denied) => Err(refusal(callback, checks::refusal_body(&denied))),
                Err(error) => {
                    tracing::error!(%callback, %error, "policy decision failed");
                    Err(refusal(callback, checks::undecided_body(&error)))
                }
            }
        })
    }
}

/// A refusal body of the protocol as the refusal the client gets.
fn refusal(callback: Callback, mut body: serde_json::Map<String, Value>) -> PolicyRefusal {
    let mut text = |key: &str| match body.remove(key) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let (errcode, message) = (text("errcode"), text("error"));
    PolicyRefusal::Refused { callback, errcode, message, fields: body }
}

/// Rooms and memberships as this server's storage knows them.
struct StorageLookup<'a>(&'a Services);

impl Lookup for StorageLookup<'_> {
    fn server_name(&self) -> &str {
        self.0.config.server_name.as_str()
    }

    fn is_exempt(&self, user: &UserId) -> Result<bool, LookupError> {
        self.0.is_policy_exempt(user).map_err(LookupError::from_display)
    }

    fn room_facts(&self, room: &RoomId, actor: &UserId) -> Result<Option<RoomFacts>, LookupError> {
        self.0.policy_room_facts(room, actor).map_err(LookupError::from_display)
    }

    fn workspace_facts(
        &self,
        space: &RoomId,
        actor: &UserId,
    ) -> Result<Option<WorkspaceFacts>, LookupError> {
        self.0.workspace_facts(space, actor).map_err(LookupError::from_display)
    }

    fn state_content(
        &self,
        room: &RoomId,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Value>, LookupError> {
        self.0.state_content(room, kind, state_key).map_err(LookupError::from_display)
    }

    fn share_a_room(&self, a: &UserId, b: &UserId) -> Result<bool, LookupError> {
        let rooms = |user: &UserId, memberships: &[&str]| {
            self.0.rooms.rooms_of(user).map_err(LookupError::from_display).map(|rooms| {
                rooms
                    .into_iter()
                    .filter(|(_, m)| memberships.contains(&m.membership.as_str()))
                    .map(|(room, _)| room)
                    .collect::<std::collections::HashSet<_>>()
            })
        };
        let theirs = rooms(b, &["join", "invite"])?;
        Ok(rooms(a, &["join"])?.iter().any(|room| theirs.contains(room)))
    }
}

impl PolicyCheck for EmbeddedPolicy {
    fn user_may_invite<'a>(&'a self, args: &'a UserMayInvite) -> PolicyFuture<'a> {
        self.decide(Check::UserMayInvite(args.clone()))
    }
    fn user_may_send_3pid_invite<'a>(
        &'a self,
        args: &'a UserMaySend3pidInvite,
    ) -> PolicyFuture<'a> {
        self.decide(Check::UserMaySend3pidInvite(args.clone()))
    }
    fn user_may_join_room<'a>(&'a self, args: &'a UserMayJoinRoom) -> PolicyFuture<'a> {
        self.decide(Check::UserMayJoinRoom(args.clone()))
    }
    fn user_may_create_room<'a>(&'a self, args: &'a UserMayCreateRoom) -> PolicyFuture<'a> {
        self.decide(Check::UserMayCreateRoom(args.clone()))
    }
    fn user_may_send_state_event<'a>(
        &'a self,
        args: &'a UserMaySendStateEvent,
    ) -> PolicyFuture<'a> {
        self.decide(Check::UserMaySendStateEvent(args.clone()))
    }
    fn user_may_publish_room<'a>(&'a self, args: &'a UserMayPublishRoom) -> PolicyFuture<'a> {
        self.decide(Check::UserMayPublishRoom(args.clone()))
    }
    fn check_registration_for_spam<'a>(
        &'a self,
        args: &'a CheckRegistrationForSpam,
    ) -> PolicyFuture<'a> {
        self.decide(Check::CheckRegistrationForSpam(args.clone()))
    }
    fn check_login_for_spam<'a>(&'a self, args: &'a CheckLoginForSpam) -> PolicyFuture<'a> {
        self.decide(Check::CheckLoginForSpam(args.clone()))
    }
    fn check_username_for_spam<'a>(&'a self, args: &'a CheckUsernameForSpam) -> PolicyFuture<'a> {
        self.decide(Check::CheckUsernameForSpam(args.clone()))
    }
    fn federated_user_may_invite<'a>(
        &'a self,
        args: &'a FederatedUserMayInvite,
    ) -> PolicyFuture<'a> {
        self.decide(Check::FederatedUserMayInvite(args.clone()))
    }
}
