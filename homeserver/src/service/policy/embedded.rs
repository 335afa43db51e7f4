//! The embedded policy service as a [`PolicyCheck`]: each callback becomes a
//! [`relais_policy::Action`], decided on the facts of the room and the directory snapshot.

use std::sync::{Arc, Weak};

use relais_appservice::records::names;
use relais_policy::{AccessClass, Action, Decision, RoomFacts};
use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value};

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

    /// Runs a decision (blocking reads of room state, off the async workers) and turns a denial
    /// into the refusal the client sees.
    fn decide<'a, F>(&'a self, callback: Callback, decide: F) -> PolicyFuture<'a>
    where
        F: FnOnce(&Services) -> Result<Decision, String> + Send + 'static,
    {
        let services = self.services.upgrade();
        Box::pin(async move {
            let Some(services) = services else { return Ok(()) };
            let decision = tokio::task::spawn_blocking(move || decide(&services))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match decision {
                Ok(Decision::Allow) => Ok(()),
                Ok(denied) => Err(refusal(callback, &denied)),
                Err(error) => {
                    tracing::error!(%callback, %error, "policy decision failed");
                    Err(PolicyRefusal::Refused {
                        callback,
                        errcode: "M_FORBIDDEN".into(),
                        message: format!(
                            "the policy could not decide ({error}); this action is refused"
                        ),
                        fields: Map::new(),
                    })
                }
            }
        })
    }
}

/// A denial as the client sees it: `M_FORBIDDEN`, the rule's message, and the rule's ID in
/// `fr.relais.rule` so that clients and scripts can tell rules apart.
fn refusal(callback: Callback, decision: &Decision) -> PolicyRefusal {
    let mut fields = Map::new();
    if let Some(rule) = decision.rule() {
        fields.insert(format!("{}rule", names::NAMESPACE), format!("{rule:?}").into());
    }
    PolicyRefusal::Refused {
        callback,
        errcode: "M_FORBIDDEN".into(),
        message: decision.message().unwrap_or_else(|| "refused by the policy".into()),
        fields,
    }
}

/// Decides `action` for `actor`, with the facts of `room` when there is one.
fn decide_in(
    services: &Services,
    actor: &UserId,
    action: &Action,
    room: Option<&RoomId>,
) -> Result<Decision, String> {
    if services.is_policy_exempt(actor).map_err(|e| e.to_string())? {
        return Ok(Decision::Allow);
    }
    let facts = match room {
        Some(room) => services.policy_room_facts(room, actor).map_err(|e| e.to_string())?,
        None => None,
    };
    Ok(services.policy.service.decide(action, actor.as_str(), facts.as_ref(), now_ms()))
}

/// Whether two users share a room (joined or invited), for W3 and D3.
fn share_a_room(services: &Services, a: &UserId, b: &UserId) -> Result<bool, String> {
    let theirs: std::collections::HashSet<_> = services
        .rooms
        .rooms_of(b)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, m)| m.membership.as_str() == "join" || m.membership.as_str() == "invite")
        .map(|(room, _)| room)
        .collect();
    Ok(services
        .rooms
        .rooms_of(a)
        .map_err(|e| e.to_string())?
        .into_iter()
        .any(|(room, m)| m.membership.as_str() == "join" && theirs.contains(&room)))
}

/// The action of a `createRoom` request: a direct conversation, a workspace (a space), or a
/// room, inside the workspace its `m.space.parent` initial state names.
fn create_action(services: &Services, creator: &UserId, config: &Value) -> Result<Action, String> {
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
            let shares_room = share_a_room(services, creator, &with)?;
            return Ok(Action::CreateDirect { with: with.as_str().into(), shares_room });
        }
    }
    let is_space =
        config.pointer("/creation_content/type").and_then(Value::as_str) == Some("m.space");
    if is_space {
        let unit = services
            .policy
            .service
            .directory()
            .user(&creator.as_str().into())
            .map(|r| r.unit.clone())
            .ok_or_else(|| format!("{creator} belongs to no organisation unit"))?;
        return Ok(Action::CreateWorkspace { unit, class, approved_by: None });
    }
    let parent = initial_state
        .into_iter()
        .flatten()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.space.parent"))
        .filter_map(|e| e.get("state_key").and_then(Value::as_str))
        .filter_map(|k| RoomId::parse(k).ok())
        .find_map(|space| services.workspace_facts(&space, creator).ok().flatten());
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

impl PolicyCheck for EmbeddedPolicy {
    fn user_may_invite<'a>(&'a self, args: &'a UserMayInvite) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::UserMayInvite, move |services| {
            let action = Action::Invite {
                target: args.invitee.as_str().into(),
                room: args.room_id.as_str().into(),
            };
            decide_in(services, &args.inviter, &action, Some(&args.room_id))
        })
    }

    fn user_may_send_3pid_invite<'a>(
        &'a self,
        args: &'a UserMaySend3pidInvite,
    ) -> PolicyFuture<'a> {
        // An e-mail invite brings in someone whose tier is unknown: a guest (M3).
        let args = args.clone();
        self.decide(Callback::UserMaySend3pidInvite, move |services| {
            let target = format!("@unknown-invitee:{}", services.config.server_name);
            let action = Action::Invite {
                target: target.as_str().into(),
                room: args.room_id.as_str().into(),
            };
            decide_in(services, &args.inviter, &action, Some(&args.room_id))
        })
    }

    fn user_may_join_room<'a>(&'a self, args: &'a UserMayJoinRoom) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::UserMayJoinRoom, move |services| {
            let room = args.room.as_str().into();
            let action = if args.is_knock { Action::Knock { room } } else { Action::Join { room } };
            decide_in(services, &args.user, &action, Some(&args.room))
        })
    }

    fn user_may_create_room<'a>(&'a self, args: &'a UserMayCreateRoom) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::UserMayCreateRoom, move |services| {
            let action = create_action(services, &args.user_id, &args.room_config)?;
            decide_in(services, &args.user_id, &action, None)
        })
    }

    fn user_may_send_state_event<'a>(
        &'a self,
        args: &'a UserMaySendStateEvent,
    ) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::UserMaySendStateEvent, move |services| {
            if services.is_policy_exempt(&args.user_id).map_err(|e| e.to_string())? {
                return Ok(Decision::Allow);
            }
            let Some(facts) = services
                .policy_room_facts(&args.room_id, &args.user_id)
                .map_err(|e| e.to_string())?
            else {
                return Ok(Decision::Allow);
            };
            let current = services
                .state_content(&args.room_id, &args.event_type, &args.state_key)
                .map_err(|e| e.to_string())?;
            for action in state_actions(&facts, &args, current) {
                let decision = services.policy.service.decide(
                    &action,
                    args.user_id.as_str(),
                    Some(&facts),
                    now_ms(),
                );
                if !decision.is_allowed() {
                    return Ok(decision);
                }
            }
            Ok(Decision::Allow)
        })
    }

    fn user_may_publish_room<'a>(&'a self, args: &'a UserMayPublishRoom) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::UserMayPublishRoom, move |services| {
            let action = Action::PublishInDirectory { room: args.room_id.as_str().into() };
            decide_in(services, &args.user_id, &action, Some(&args.room_id))
        })
    }

    fn check_registration_for_spam<'a>(
        &'a self,
        args: &'a CheckRegistrationForSpam,
    ) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::CheckRegistrationForSpam, move |services| {
            let username = args.username.clone().unwrap_or_default();
            let user = services.accounts.user_id(&username).map_err(|e| e.to_string())?;
            let email = args
                .email_threepid
                .as_ref()
                .and_then(|t| t.get("address"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let invitation = args
                .registration_token
                .as_deref()
                .and_then(|token| services.policy_invitation(token))
                .map(|record| record.to_policy());
            decide_in(services, &user, &Action::Register { email, invitation }, None)
        })
    }

    fn check_login_for_spam<'a>(&'a self, args: &'a CheckLoginForSpam) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::CheckLoginForSpam, move |services| {
            decide_in(services, &args.user_id, &Action::Login, None)
        })
    }

    fn check_username_for_spam<'a>(&'a self, args: &'a CheckUsernameForSpam) -> PolicyFuture<'a> {
        let args = args.clone();
        self.decide(Callback::CheckUsernameForSpam, move |services| {
            let target = &args.user_profile.user_id;
            let shares_room = share_a_room(services, &args.requester_id, target)?;
            let action =
                Action::SearchUserDirectory { target: target.as_str().into(), shares_room };
            decide_in(services, &args.requester_id, &action, None)
        })
    }

    fn federated_user_may_invite<'a>(
        &'a self,
        args: &'a FederatedUserMayInvite,
    ) -> PolicyFuture<'a> {
        // A room of another server: its class is what its stripped state says (none: `agents`,
        // as for a room nobody classified), the inviter's tier comes from their server.
        let event = args.event.clone();
        self.decide(Callback::FederatedUserMayInvite, move |services| {
            let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
            let inviter = UserId::parse(field("sender")).map_err(|e| e.to_string())?;
            let (target, room) = (field("state_key"), field("room_id"));
            let facts = remote_room_facts(&event);
            let action =
                Action::Invite { target: target.as_str().into(), room: room.as_str().into() };
            if services.is_policy_exempt(&inviter).map_err(|e| e.to_string())? {
                return Ok(Decision::Allow);
            }
            Ok(services.policy.service.decide(&action, inviter.as_str(), Some(&facts), now_ms()))
        })
    }
}

/// What an invite from another server's room says about that room: its class from the
/// `fr.relais.access` event of the stripped state, and whether it is a direct conversation. The
/// inviting server checked the inviter's power in its room.
fn remote_room_facts(event: &Value) -> RoomFacts {
    let state = event.pointer("/unsigned/invite_room_state").and_then(Value::as_array);
    let class =
        state.into_iter().flatten().find(|e| e["type"] == relais_policy::names::ACCESS).and_then(
            |e| serde_json::from_value::<AccessClass>(e["content"]["class"].clone()).ok(),
        );
    RoomFacts {
        class,
        is_direct: event["content"]["is_direct"].as_bool().unwrap_or(false),
        member_count: 1,
        actor_joined: true,
        ..RoomFacts::default()
    }
}
