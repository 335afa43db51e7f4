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
    let decide_in = |actor: &UserId, action: &Action, room: Option<&RoomId>| {
        if lookup.is_exempt(actor)? {
            return Ok(Decision::Allow);
        }
        let facts = match room {
            Some(room) => lookup.room_facts(room, actor)?,
            None => None,
        };
        Ok(service.decide(action, actor.as_str(), facts.as_ref(), now_ms))
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
            let action = create_action(service, lookup, &args.user_id, &args.room_config)?;
            decide_in(&args.user_id, &action, None)
        }
        Check::UserMaySendStateEvent(args) => {
            if lookup.is_exempt(&args.user_id)? {
                return Ok(Decision::Allow);
            }
            let Some(facts) = lookup.room_facts(&args.room_id, &args.user_id)? else {
                return Ok(Decision::Allow);
            };
            let current = lookup.state_content(&args.room_id, &args.event_type, &args.state_key)?;
            for action in state_actions(&facts, args, current) {
                let decision = service.decide(&action, args.user_id.as_str(), Some(&facts), now_ms);
                if !decision.is_allowed() {
                    return Ok(decision);
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
            if lookup.is_exempt(&inviter)? {
                return Ok(Decision::Allow);
            }
            let facts = remote_room_facts(event);
            Ok(service.decide(&action, inviter.as_str(), Some(&facts), now_ms))
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
