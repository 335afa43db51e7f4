//! The policy check interface: before acting at a choke point (registration, login, room creation,
//! invite, join, knock, state changes, directory publication, user-directory search), the
//! homeserver asks a policy service and obeys, because Matrix gives an application service no way
//! to refuse an event once it is sent.
//!
//! The protocol is the one of Synapse's HTTP antispam module (`synapse-http-antispam`), so a
//! service written for it guards Relais unchanged: `docs/policy-checks.md` describes it.
//! [`PolicyCheck`] is the interface, one method per callback; [`HttpPolicyCheck`] speaks the
//! protocol; [`AllowAll`] stands in when nothing is configured; the embedded policy service plugs
//! its own implementation in with [`PolicyChecks::set_backend`]. [`PolicyChecks`] is what the
//! rest of the server calls: it applies the configuration (enabled callbacks, fail-open) and
//! counts outcomes.

mod answer;
mod checks;
mod http;

use std::{future::Future, pin::Pin};

use serde_json::{Map, Value};

pub use relais_appservice::checks::{Callback, args::*};

pub use self::{
    answer::DEFAULT_ERRCODE,
    checks::{Outcome, PolicyChecks},
    http::HttpPolicyCheck,
};

/// The future of one check: `Ok(())` allows the action.
pub type PolicyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PolicyRefusal>> + Send + 'a>>;

/// A policy service. Each method is one of Synapse's spam-checker callbacks; `Ok(())` allows.
///
/// Implementations must not panic and should answer quickly: the client waits.
pub trait PolicyCheck: Send + Sync {
    /// May `inviter` invite `invitee` (a Matrix user) into the room?
    fn user_may_invite<'a>(&'a self, args: &'a UserMayInvite) -> PolicyFuture<'a>;
    /// May `inviter` invite a third-party identifier (an e-mail address) into the room?
    fn user_may_send_3pid_invite<'a>(&'a self, args: &'a UserMaySend3pidInvite)
    -> PolicyFuture<'a>;
    /// May the user join (or knock on) the room?
    fn user_may_join_room<'a>(&'a self, args: &'a UserMayJoinRoom) -> PolicyFuture<'a>;
    /// May the user create a room with this configuration?
    fn user_may_create_room<'a>(&'a self, args: &'a UserMayCreateRoom) -> PolicyFuture<'a>;
    /// May the user send this state event?
    fn user_may_send_state_event<'a>(&'a self, args: &'a UserMaySendStateEvent)
    -> PolicyFuture<'a>;
    /// May the user list the room in the public room directory?
    fn user_may_publish_room<'a>(&'a self, args: &'a UserMayPublishRoom) -> PolicyFuture<'a>;
    /// May this account be registered?
    fn check_registration_for_spam<'a>(
        &'a self,
        args: &'a CheckRegistrationForSpam,
    ) -> PolicyFuture<'a>;
    /// May this user log in?
    fn check_login_for_spam<'a>(&'a self, args: &'a CheckLoginForSpam) -> PolicyFuture<'a>;
    /// May this user appear in the requester's user-directory results? A refusal hides them.
    fn check_username_for_spam<'a>(&'a self, args: &'a CheckUsernameForSpam) -> PolicyFuture<'a>;
    /// May this invite from another server reach a local user? For federation, which Relais
    /// does not speak yet: nothing calls it today.
    fn federated_user_may_invite<'a>(
        &'a self,
        args: &'a FederatedUserMayInvite,
    ) -> PolicyFuture<'a>;
}

/// The policy when none is configured: everything is allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

fn allowed<'a>() -> PolicyFuture<'a> {
    Box::pin(std::future::ready(Ok(())))
}

impl PolicyCheck for AllowAll {
    fn user_may_invite<'a>(&'a self, _: &'a UserMayInvite) -> PolicyFuture<'a> {
        allowed()
    }
    fn user_may_send_3pid_invite<'a>(&'a self, _: &'a UserMaySend3pidInvite) -> PolicyFuture<'a> {
        allowed()
    }
    fn user_may_join_room<'a>(&'a self, _: &'a UserMayJoinRoom) -> PolicyFuture<'a> {
        allowed()
    }
    fn user_may_create_room<'a>(&'a self, _: &'a UserMayCreateRoom) -> PolicyFuture<'a> {
        allowed()
    }
    fn user_may_send_state_event<'a>(&'a self, _: &'a UserMaySendStateEvent) -> PolicyFuture<'a> {
        allowed()
    }
    fn user_may_publish_room<'a>(&'a self, _: &'a UserMayPublishRoom) -> PolicyFuture<'a> {
        allowed()
    }
    fn check_registration_for_spam<'a>(
        &'a self,
        _: &'a CheckRegistrationForSpam,
    ) -> PolicyFuture<'a> {
        allowed()
    }
    fn check_login_for_spam<'a>(&'a self, _: &'a CheckLoginForSpam) -> PolicyFuture<'a> {
        allowed()
    }
    fn check_username_for_spam<'a>(&'a self, _: &'a CheckUsernameForSpam) -> PolicyFuture<'a> {
        allowed()
    }
    fn federated_user_may_invite<'a>(&'a self, _: &'a FederatedUserMayInvite) -> PolicyFuture<'a> {
        allowed()
    }
}

/// Why a policy service gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It did not answer within the configured timeout.
    Timeout,
    /// It could not be reached (connection refused, DNS, TLS, reset); the detail is for the log.
    Unreachable(String),
    /// Its answer was neither an allow nor a refusal; the detail is for the log.
    Malformed(String),
}

impl Failure {
    /// What the client is told: what happened, that the action is refused, and which check.
    fn message(&self, callback: Callback) -> String {
        let what = match self {
            Self::Timeout => "the policy service did not answer in time",
            Self::Unreachable(_) => "the policy service could not be reached",
            Self::Malformed(_) => "the policy service gave an answer this server cannot read",
        };
        format!("{what}; this action is refused (policy check {callback})")
    }
}

/// A refused action.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PolicyRefusal {
    /// The policy service refused.
    #[error("{message}")]
    Refused {
        /// The check that refused.
        callback: Callback,
        /// The Matrix error code for the client (`M_FORBIDDEN` unless the service chose another).
        errcode: String,
        /// The service's message for the client, which should say which rule refused and why.
        message: String,
        /// Any other fields of the service's answer, passed to the client as they are.
        fields: Map<String, Value>,
    },
    /// The policy service gave no usable answer, so the action is refused (fail closed).
    #[error("{}", failure.message(*callback))]
    Unavailable {
        /// The check that could not be made.
        callback: Callback,
        /// What went wrong.
        failure: Failure,
    },
}

impl PolicyRefusal {
    /// The check that refused.
    pub fn callback(&self) -> Callback {
        match self {
            Self::Refused { callback, .. } | Self::Unavailable { callback, .. } => *callback,
        }
    }

    /// The Matrix error code for the client.
    pub fn errcode(&self) -> &str {
        match self {
            Self::Refused { errcode, .. } => errcode,
            Self::Unavailable { .. } => DEFAULT_ERRCODE,
        }
    }

    /// The extra fields for the client's error body (none when the service was unavailable).
    pub fn into_fields(self) -> Map<String, Value> {
        match self {
            Self::Refused { fields, .. } => fields,
            Self::Unavailable { .. } => Map::new(),
        }
    }
}

/// Errors setting up the policy checks.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCheckError {
    /// The HTTP client could not be built.
    #[error("policy checks: cannot build the HTTP client: {0}")]
    HttpClient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_happened_and_which_check() {
        let refusal = PolicyRefusal::Unavailable {
            callback: Callback::UserMayInvite,
            failure: Failure::Timeout,
        };
        assert_eq!(
            refusal.to_string(),
            "the policy service did not answer in time; this action is refused \
             (policy check user_may_invite)"
        );
        assert_eq!(refusal.errcode(), "M_FORBIDDEN");
    }

    fn load(toml: &str) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).expect("write");
        crate::config::Config::load(Some(&path)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_configuration_is_checked_and_the_token_is_not_shown() {
        let err = load("[policy_checks]\nurl = \"ftp://x\"\n").expect_err("bad scheme");
        assert!(err.contains("policy_checks.url"), "{err}");
        let err = load("[policy_checks]\ncallbacks = [\"user_may_fly\"]\n").expect_err("bad name");
        assert!(err.contains("user_may_fly"), "{err}");
        let config =
            load("[policy_checks]\nurl = \"http://p\"\ntoken = \"t0p-s3cret\"\n").expect("valid");
        assert_eq!(config.policy_checks.token, "t0p-s3cret");
        assert!(!format!("{config:?}").contains("t0p-s3cret"));
        assert!(!toml::to_string(&config).expect("serialise").contains("t0p-s3cret"));
    }

    #[test]
    fn arguments_use_synapse_field_names() {
        let args = UserMayJoinRoom {
            user: ruma::owned_user_id!("@a:x"),
            room: ruma::owned_room_id!("!r:x"),
            is_invited: true,
            is_knock: false,
        };
        assert_eq!(
            serde_json::to_value(&args).expect("serialise"),
            serde_json::json!({ "user": "@a:x", "room": "!r:x", "is_invited": true, "is_knock": false })
        );
        let info = RequestInfo(None, "127.0.0.1".into());
        assert_eq!(
            serde_json::to_value(&info).expect("serialise"),
            serde_json::json!([null, "127.0.0.1"])
        );
    }
}
