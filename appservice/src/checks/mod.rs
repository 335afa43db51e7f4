//! The policy checks, from the policy service's side: the homeserver asks one of Synapse's
//! spam-checker callbacks (`docs/policy-checks.md`), and the service turns it into a
//! [`relais_policy::Action`] and decides it.
//!
//! The homeserver embedding the service and the standalone `relais-policy-service` share this
//! code; they differ only in how they learn about rooms ([`Lookup`]): the first reads its own
//! storage, the second asks the homeserver's admin API.

pub mod args;
mod decide;
pub mod room_state;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::{
    args::*,
    decide::{Lookup, LookupError, decide},
};
use crate::records::names;

/// The callbacks, by their Synapse names (the last segment of the URL the service is called at).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    /// A local user invites a Matrix user into a room.
    UserMayInvite,
    /// A local user invites a third-party identifier (an e-mail address).
    #[serde(rename = "user_may_send_3pid_invite")]
    UserMaySend3pidInvite,
    /// A local user joins or knocks on a room.
    UserMayJoinRoom,
    /// A local user creates (or upgrades) a room.
    UserMayCreateRoom,
    /// A local user sends a state event.
    UserMaySendStateEvent,
    /// A local user lists a room in the public directory.
    UserMayPublishRoom,
    /// Someone registers an account.
    CheckRegistrationForSpam,
    /// A user logs in.
    CheckLoginForSpam,
    /// A user would appear in someone's user-directory results.
    CheckUsernameForSpam,
    /// An invite arrives over federation.
    FederatedUserMayInvite,
}

impl Callback {
    /// Every callback, in the order of the documentation.
    pub const ALL: [Callback; 10] = [
        Self::UserMayInvite,
        Self::UserMaySend3pidInvite,
        Self::UserMayJoinRoom,
        Self::UserMayCreateRoom,
        Self::UserMaySendStateEvent,
        Self::UserMayPublishRoom,
        Self::CheckRegistrationForSpam,
        Self::CheckLoginForSpam,
        Self::CheckUsernameForSpam,
        Self::FederatedUserMayInvite,
    ];

    /// The Synapse name, e.g. `user_may_invite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserMayInvite => "user_may_invite",
            Self::UserMaySend3pidInvite => "user_may_send_3pid_invite",
            Self::UserMayJoinRoom => "user_may_join_room",
            Self::UserMayCreateRoom => "user_may_create_room",
            Self::UserMaySendStateEvent => "user_may_send_state_event",
            Self::UserMayPublishRoom => "user_may_publish_room",
            Self::CheckRegistrationForSpam => "check_registration_for_spam",
            Self::CheckLoginForSpam => "check_login_for_spam",
            Self::CheckUsernameForSpam => "check_username_for_spam",
            Self::FederatedUserMayInvite => "federated_user_may_invite",
        }
    }

    /// The callback named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check, with its arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// See [`Callback::UserMayInvite`].
    UserMayInvite(UserMayInvite),
    /// See [`Callback::UserMaySend3pidInvite`].
    UserMaySend3pidInvite(UserMaySend3pidInvite),
    /// See [`Callback::UserMayJoinRoom`].
    UserMayJoinRoom(UserMayJoinRoom),
    /// See [`Callback::UserMayCreateRoom`].
    UserMayCreateRoom(UserMayCreateRoom),
    /// See [`Callback::UserMaySendStateEvent`].
    UserMaySendStateEvent(UserMaySendStateEvent),
    /// See [`Callback::UserMayPublishRoom`].
    UserMayPublishRoom(UserMayPublishRoom),
    /// See [`Callback::CheckRegistrationForSpam`].
    CheckRegistrationForSpam(CheckRegistrationForSpam),
    /// See [`Callback::CheckLoginForSpam`].
    CheckLoginForSpam(CheckLoginForSpam),
    /// See [`Callback::CheckUsernameForSpam`].
    CheckUsernameForSpam(CheckUsernameForSpam),
    /// See [`Callback::FederatedUserMayInvite`].
    FederatedUserMayInvite(FederatedUserMayInvite),
}

impl Check {
    /// The check of `callback` whose arguments are the JSON `body` of a request.
    pub fn parse(callback: Callback, body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match callback {
            Callback::UserMayInvite => Self::UserMayInvite(serde_json::from_slice(body)?),
            Callback::UserMaySend3pidInvite => {
                Self::UserMaySend3pidInvite(serde_json::from_slice(body)?)
            }
            Callback::UserMayJoinRoom => Self::UserMayJoinRoom(serde_json::from_slice(body)?),
            Callback::UserMayCreateRoom => Self::UserMayCreateRoom(serde_json::from_slice(body)?),
            Callback::UserMaySendStateEvent => {
                Self::UserMaySendStateEvent(serde_json::from_slice(body)?)
            }
            Callback::UserMayPublishRoom => Self::UserMayPublishRoom(serde_json::from_slice(body)?),
            Callback::CheckRegistrationForSpam => {
                Self::CheckRegistrationForSpam(serde_json::from_slice(body)?)
            }
            Callback::CheckLoginForSpam => Self::CheckLoginForSpam(serde_json::from_slice(body)?),
            Callback::CheckUsernameForSpam => {
                Self::CheckUsernameForSpam(serde_json::from_slice(body)?)
            }
            Callback::FederatedUserMayInvite => {
                Self::FederatedUserMayInvite(serde_json::from_slice(body)?)
            }
        })
    }

    /// The local user who acts, if the check is about one (an invite from another server names
    /// a remote one).
    pub fn actor(&self) -> Option<&ruma::UserId> {
        match self {
            Self::UserMayInvite(a) => Some(&a.inviter),
            Self::UserMaySend3pidInvite(a) => Some(&a.inviter),
            Self::UserMayJoinRoom(a) => Some(&a.user),
            Self::UserMayCreateRoom(a) => Some(&a.user_id),
            Self::UserMaySendStateEvent(a) => Some(&a.user_id),
            Self::UserMayPublishRoom(a) => Some(&a.user_id),
            Self::CheckLoginForSpam(a) => Some(&a.user_id),
            Self::CheckUsernameForSpam(a) => Some(&a.requester_id),
            Self::CheckRegistrationForSpam(_) | Self::FederatedUserMayInvite(_) => None,
        }
    }

    /// Which callback this is.
    pub fn callback(&self) -> Callback {
        match self {
            Self::UserMayInvite(_) => Callback::UserMayInvite,
            Self::UserMaySend3pidInvite(_) => Callback::UserMaySend3pidInvite,
            Self::UserMayJoinRoom(_) => Callback::UserMayJoinRoom,
            Self::UserMayCreateRoom(_) => Callback::UserMayCreateRoom,
            Self::UserMaySendStateEvent(_) => Callback::UserMaySendStateEvent,
            Self::UserMayPublishRoom(_) => Callback::UserMayPublishRoom,
            Self::CheckRegistrationForSpam(_) => Callback::CheckRegistrationForSpam,
            Self::CheckLoginForSpam(_) => Callback::CheckLoginForSpam,
            Self::CheckUsernameForSpam(_) => Callback::CheckUsernameForSpam,
            Self::FederatedUserMayInvite(_) => Callback::FederatedUserMayInvite,
        }
    }
}

/// The answer to a refused check, as the protocol carries it: `M_FORBIDDEN`, the rule's message
/// (which says what the user can do), and the rule's ID in `fr.relais.rule` so that clients and
/// scripts can tell rules apart.
pub fn refusal_body(decision: &relais_policy::Decision) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("errcode".into(), "M_FORBIDDEN".into());
    let message = decision.message().unwrap_or_else(|| "refused by the policy".into());
    body.insert("error".into(), message.into());
    if let Some(rule) = decision.rule() {
        body.insert(format!("{}rule", names::NAMESPACE), format!("{rule:?}").into());
    }
    body
}

/// The answer when the service could not decide (a lookup failed): the action is refused, and
/// the person is told it was not a rule.
pub fn undecided_body(error: &LookupError) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("errcode".into(), "M_FORBIDDEN".into());
    body.insert(
        "error".into(),
        format!("the policy could not decide ({error}); this action is refused").into(),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_names_match_serde_and_are_unique() {
        let mut names = Vec::new();
        for callback in Callback::ALL {
            let json = serde_json::to_value(callback).expect("serialise");
            assert_eq!(json, callback.as_str());
            assert_eq!(Callback::from_name(callback.as_str()), Some(callback));
            names.push(callback.as_str());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Callback::ALL.len());
        assert_eq!(Callback::from_name("user_may_fly"), None);
    }

    #[test]
    fn checks_parse_synapse_arguments() {
        let body = br#"{"user": "@a:x", "room": "!r:x", "is_invited": true}"#;
        let check = Check::parse(Callback::UserMayJoinRoom, body).expect("valid");
        assert_eq!(check.callback(), Callback::UserMayJoinRoom);
        let Check::UserMayJoinRoom(args) = check else { panic!("wrong check") };
        assert!(args.is_invited && !args.is_knock, "a missing is_knock is a join");
        assert!(Check::parse(Callback::UserMayInvite, body).is_err(), "fields are checked");
    }

    #[test]
    fn a_registration_names_its_token_by_hash_only() {
        let args = CheckRegistrationForSpam {
            email_threepid: None,
            username: Some("bob".into()),
            request_info: vec![RequestInfo(None, "127.0.0.1".into())],
            auth_provider_id: None,
            registration_token_hash: Some("aGFzaA".into()),
        };
        let json = serde_json::to_value(&args).expect("serialise");
        assert_eq!(json["fr.relais.registration_token_sha256"], "aGFzaA");
        let without = CheckRegistrationForSpam { registration_token_hash: None, ..args };
        let json = serde_json::to_value(&without).expect("serialise");
        assert!(json.get("fr.relais.registration_token_sha256").is_none());
    }
}
