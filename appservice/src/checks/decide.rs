//! Each check as an action of the decision table, decided on the directory snapshot and the facts
//! of the room concerned.

use relais_policy::{AccessClass, Action, Decision, RoomFacts, WorkspaceFacts};
use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::{Check, UserMaySendStateEvent};
use crate::{PolicyService, records::names};

/// Why a check could not be decided: a room or a user could not be looked up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

impl LookupError {
    /// An error of any kind, as a lookup failure.
    pub fn from_display(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// What the decisions need to know beyond the directory: rooms and memberships. The embedded
/// service reads them from the homeserver's storage; the standalone one asks the admin API.
pub trait Lookup {
    /// The name of the server whose users the service governs.
    fn server_name(&self) -> &str;
    /// Whether `user` passes every check: a server admin or the policy bot.
    fn is_exempt(&self, user: &UserId) -> Result<bool, LookupError>;
    /// The facts of `room` for an action of `actor`; `None` if the room is unknown.
    fn room_facts(&self, room: &RoomId, actor: &UserId) -> Result<Option<RoomFacts>, LookupError>;
    /// The facts of `space` if it is a workspace.
    fn workspace_facts(
        &self,
        space: &RoomId,
        actor: &UserId,
    ) -> Result<Option<WorkspaceFacts>, LookupError>;
    /// The content of a current state event of `room`.
    fn state_content(
        &self,
        room: &RoomId,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Value>, LookupError>;
    /// Whether `a` is joined to a room where `b` is joined or invited.
    fn share_a_room(&self, a: &UserId, b: &UserId) -> Result<bool, LookupError>;
}

/// Decides `check` at `now_ms`.
pub fn decide(
    service: &PolicyService,
    lookup: &impl Lookup,
    check: &Check,
    now_ms: u64,
) -> Result<Decision, LookupError> {
    // Exemption only matters for a refusal, so it is looked up only then: most checks allow,
    // and for the standalone service each lookup is a request to the homeserver.
    let unless_exempt = |actor: &UserId, decision: Decision| {
        if decision.is_allowed() || !lookup.is_exempt(actor)? {
            Ok(decision)
        } else {
            Ok(Decision::Allow)
        }
    };
    let decide_in = |actor: &UserId, action: &Action, room: Option<&RoomId>| {
        let facts = match room {
            Some(room) => lookup.room_facts(room, actor)?,
            None => None,
        };
        unless_exempt(actor, service.decide(action, actor.as_str(), facts.as_ref(), now_ms))
    };
    match check {
        Check::UserMayInvite(args) => {
            let action = Action::Invite {
                target: args.invitee.as_str().into(),
                room: args.room_id.as_str().into(),
            };
            decide_in(&args.inviter, &action, Some(&args.room_id))
        }
        Check::UserMaySend3pidInvite(args) => {
            // An e-mail invite brings in someone whose tier is unknown: a guest (M3).
            let target = format!("@unknown-invitee:{}", lookup.server_name());
            let action = Action::Invite {
                target: target.as_str().into(),
                room: args.room_id.as_str().into(),
            };
            decide_in(&args.inviter, &action, Some(&args.room_id))
        }
        Check::UserMayJoinRoom(args) => {
            let room = args.room.as_str().into();
            let action = if args.is_knock { Action::Knock { room } } else { Action::Join { room } };
            decide_in(&args.user, &action, Some(&args.room))
        }
        Check::UserMayCreateRoom(args) => {
            match create_action(service, lookup, &args.user_id, &args.room_config) {
                Ok(action) => decide_in(&args.user_id, &action, None),
                // A server admin outside the directory (no unit) creates what they like.
                Err(_) if lookup.is_exempt(&args.user_id)? => Ok(Decision::Allow),
                Err(error) => Err(error),
            }
        }
        Check::UserMaySendStateEvent(args) => {
            let Some(facts) = lookup.room_facts(&args.room_id, &args.user_id)? else {
                return Ok(Decision::Allow);
            };
            let current = lookup.state_content(&args.room_id, &args.event_type, &args.state_key)?;
            for action in state_actions(&facts, args, current) {
                let decision = service.decide(&action, args.user_id.as_str(), Some(&facts), now_ms);
                if !decision.is_allowed() {
                    return unless_exempt(&args.user_id, decision);
                }
            }
            Ok(Decision::Allow)
        }
        Check::UserMayPublishRoom(args) => {
            let action = Action::PublishInDirectory { room: args.room_id.as_str().into() };
            decide_in(&args.user_id, &action, Some(&args.room_id))
        }
        Check::CheckRegistrationForSpam(args) => {
            let localpart = args.username.as_deref().unwrap_or_default().to_lowercase();
            let user = OwnedUserId::try_from(format!("@{localpart}:{}", lookup.server_name()))
                .map_err(|e| LookupError(format!("user name {localpart:?}: {e}")))?;
            let email = args
                .email_threepid
                .as_ref()
                .and_then(|t| t.get("address"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let invitation = args
                .registration_token_hash
                .as_deref()
                .and_then(|hash| service.invitation(hash))
                .filter(|record| record.is_usable(now_ms))
                .map(|record| record.to_policy());
            decide_in(&user, &Action::Register { email, invitation }, None)
        }
        Check::CheckLoginForSpam(args) => decide_in(&args.user_id, &Action::Login, None),
        Check::CheckUsernameForSpam(args) => {
            let target = &args.user_profile.user_id;
            let shares_room = lookup.share_a_room(&args.requester_id, target)?;
            let action =
                Action::SearchUserDirectory { target: target.as_str().into(), shares_room };
            decide_in(&args.requester_id, &action, None)
        }
        Check::FederatedUserMayInvite(args) => {
            // A room of another server: its class is what its stripped state says, the inviter's
            // tier comes from their server (`[policy.servers]`).
            let event = &args.event;
            let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
            let inviter = UserId::parse(field("sender")).map_err(LookupError::from_display)?;
            let (target, room) = (field("state_key"), field("room_id"));
            let action =
                Action::Invite { target: target.as_str().into(), room: room.as_str().into() };
            let facts = remote_room_facts(event);
            unless_exempt(&inviter, service.decide(&action, inviter.as_str(), Some(&facts), now_ms))
        }
    }
}

/// The action of a `createRoom` request: a direct conversation, a workspace (a space), or a
/// room, inside the workspace its `m.space.parent` initial state names.
fn create_action(
    service: &PolicyService,
    lookup: &impl Lookup,
    creator: &UserId,
    config: &Value,
) -> Result<Action, LookupError> {
    let initial_state = config.get("initial_state").and_then(Value::as_array);
    let state = |kind: &str| {
        initial_state
            .into_iter()
            .flatten()
            .find(|e| e.get("type").and_then(Value::as_str) == Some(kind))
    };
    let class = state(names::ACCESS)
        .and_then(|e| e.get("content"))
        .map(|c| AccessClass::from_event_content(Some(c)));
    if config.get("is_direct").and_then(Value::as_bool) == Some(true) {
        let with = config
            .get("invite")
            .and_then(Value::as_array)
            .and_then(|list| list.first())
            .and_then(Value::as_str)
            .and_then(|u| OwnedUserId::try_from(u).ok());
        if let Some(with) = with {
            let shares_room = lookup.share_a_room(creator, &with)?;
            return Ok(Action::CreateDirect { with: with.as_str().into(), shares_room });
        }
    }
    let is_space =
        config.pointer("/creation_content/type").and_then(Value::as_str) == Some("m.space");
    if is_space {
        let unit = service
            .directory()
            .user(&creator.as_str().into())
            .map(|r| r.unit.clone())
            .ok_or_else(|| LookupError(format!("{creator} belongs to no organisation unit")))?;
        return Ok(Action::CreateWorkspace { unit, class, approved_by: None });
    }
    let mut parent = None;
    let parents = initial_state
        .into_iter()
        .flatten()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.space.parent"))
        .filter_map(|e| e.get("state_key").and_then(Value::as_str))
        .filter_map(|k| RoomId::parse(k).ok());
    for space in parents {
        if let Some(facts) = lookup.workspace_facts(&space, creator)? {
            parent = Some(facts);
            break;
        }
    }
    Ok(Action::CreateRoom { class, parent_workspace: parent })
}

/// The actions a state event amounts to: power level changes per user (P1) and class changes
/// (P2/P3); other state needs no decision beyond the room's own rules.
fn state_actions(
    facts: &RoomFacts,
    args: &UserMaySendStateEvent,
    current: Option<Value>,
) -> Vec<Action> {
    let room = args.room_id.as_str();
    match args.event_type.as_str() {
        "m.room.power_levels" => {
            let users = |c: Option<&Value>| {
                c.and_then(|c| c.get("users"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let before = users(current.as_ref());
            users(Some(&args.content))
                .into_iter()
                .filter(|(user, level)| before.get(user) != Some(level))
                .filter_map(|(user, level)| {
                    Some(Action::SetPowerLevel {
                        room: room.into(),
                        target: user.as_str().into(),
                        level: level.as_i64()?,
                    })
                })
                .collect()
        }
        kind if kind == names::ACCESS => vec![Action::ChangeAccessClass {
            room: room.into(),
            from: facts.own_class(),
            to: AccessClass::from_event_content(Some(&args.content)),
        }],
        _ => Vec::new(),
    }
}

/// What an invite from another server's room says about that room: its class from the
/// `fr.relais.access` event of the stripped state, and whether it is a direct conversation. The
/// inviting server checked the inviter's power in its room.
fn remote_room_facts(event: &Value) -> RoomFacts {
    let state = event.pointer("/unsigned/invite_room_state").and_then(Value::as_array);
    let class =
        state.into_iter().flatten().find(|e| e["type"] == names::ACCESS).and_then(|e| {
            serde_json::from_value::<AccessClass>(e["content"]["class"].clone()).ok()
        });
    RoomFacts {
        class,
        is_direct: event["content"]["is_direct"].as_bool().unwrap_or(false),
        member_count: 1,
        actor_joined: true,
        ..RoomFacts::default()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use relais_policy::{Tier, UserRecord};
    use ruma::{owned_room_id, owned_user_id};
    use serde_json::json;

    use super::*;
    use crate::{PolicyConfig, UnitConfig, checks::UserMayInvite};

    /// Rooms of class `agents`, and whether the actor is exempt; counts exemption lookups.
    struct Fake {
        exempt: bool,
        exemption_asked: Cell<u32>,
    }

    impl Lookup for Fake {
        fn server_name(&self) -> &str {
            "x"
        }
        fn is_exempt(&self, _: &UserId) -> Result<bool, LookupError> {
            self.exemption_asked.set(self.exemption_asked.get() + 1);
            Ok(self.exempt)
        }
        fn room_facts(&self, _: &RoomId, _: &UserId) -> Result<Option<RoomFacts>, LookupError> {
            Ok(Some(RoomFacts {
                class: Some(AccessClass::Agents),
                actor_joined: true,
                actor_power: 100,
                member_count: 2,
                ..RoomFacts::default()
            }))
        }
        fn workspace_facts(
            &self,
            _: &RoomId,
            _: &UserId,
        ) -> Result<Option<WorkspaceFacts>, LookupError> {
            Ok(None)
        }
        fn state_content(
            &self,
            _: &RoomId,
            _: &str,
            _: &str,
        ) -> Result<Option<Value>, LookupError> {
            Ok(None)
        }
        fn share_a_room(&self, _: &UserId, _: &UserId) -> Result<bool, LookupError> {
            Ok(false)
        }
    }

    fn service() -> PolicyService {
        let config = PolicyConfig::enabled_with(vec![UnitConfig::new("state", None)]);
        let service = PolicyService::new(config, "x").expect("valid");
        service.apply_member("@alice:x", UserRecord::new(Tier::Agent, "state")).expect("valid");
        service.apply_member("@bob:x", UserRecord::new(Tier::Agent, "state")).expect("valid");
        service.apply_member("@pat:x", UserRecord::new(Tier::Public, "state")).expect("valid");
        service
    }

    fn invite(invitee: &str) -> Check {
        Check::UserMayInvite(UserMayInvite {
            inviter: owned_user_id!("@alice:x"),
            invitee: UserId::parse(invitee).expect("valid").to_owned(),
            room_id: owned_room_id!("!r:x"),
        })
    }

    #[test]
    fn exemption_is_asked_only_for_a_refusal() {
        let service = service();
        let lookup = Fake { exempt: false, exemption_asked: Cell::new(0) };
        assert!(decide(&service, &lookup, &invite("@bob:x"), 0).expect("decided").is_allowed());
        assert_eq!(lookup.exemption_asked.get(), 0, "an allowed check needs no exemption");
        let refused = decide(&service, &lookup, &invite("@pat:x"), 0).expect("decided");
        assert_eq!(refused.rule(), Some(relais_policy::Rule::M1));
        assert_eq!(lookup.exemption_asked.get(), 1);
        let admin = Fake { exempt: true, exemption_asked: Cell::new(0) };
        assert!(decide(&service, &admin, &invite("@pat:x"), 0).expect("decided").is_allowed());
    }

    #[test]
    fn a_server_admin_outside_the_directory_creates_a_workspace() {
        let service = service();
        let check = Check::UserMayCreateRoom(crate::checks::UserMayCreateRoom {
            user_id: owned_user_id!("@root:x"),
            room_config: json!({ "creation_content": { "type": "m.space" } }),
        });
        let nobody = Fake { exempt: false, exemption_asked: Cell::new(0) };
        assert!(decide(&service, &nobody, &check, 0).is_err(), "no unit to create it in");
        let admin = Fake { exempt: true, exemption_asked: Cell::new(0) };
        assert!(decide(&service, &admin, &check, 0).expect("decided").is_allowed());
    }
}
