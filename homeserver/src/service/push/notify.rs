//! The send path: every new event is evaluated for the room's joined members (and an invited
//! user), its notifications are counted, and pushes are queued for members with pushers.

use std::sync::Arc;

use ruma::{
    OwnedEventId, OwnedUserId, RoomId, UInt, UserId,
    events::{
        StateEventType, TimelineEventType,
        room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    },
    push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx},
    serde::Raw,
    state_res::events::RoomCreateEvent,
};
use serde::Deserialize;

use super::{
    Push,
    counts::NewNotifications,
    evaluate::{PreparedEvent, evaluate_all},
    gateway::{EventSummary, PushJob},
};
use crate::service::{
    ephemeral::now_ms,
    rooms::{RoomError, Rooms, hook::EventHook, pdu::PduEvent},
};

impl EventHook for Push {
    fn event_written(&self, rooms: &Rooms, pdu: &PduEvent) {
        if let Err(error) = self.process_event(rooms, pdu) {
            tracing::error!(event_id = %pdu.event_id(), %error, "push rule evaluation failed");
        }
    }
}

impl Push {
    fn process_event(&self, rooms: &Rooms, pdu: &PduEvent) -> Result<(), RoomError> {
        let room_id = pdu.room_id();
        if *pdu.kind() == TimelineEventType::RoomMember {
            self.members.lock().pop(room_id);
        }
        let members = self.joined_members(rooms, room_id)?;
        let mut recipients: Vec<OwnedUserId> =
            members.iter().filter(|user| *user != pdu.sender()).cloned().collect();
        if let Some(invited) = invited_user(pdu)
            && invited != pdu.sender()
            && !members.contains(&invited)
        {
            recipients.push(invited);
        }
        let thread = thread_root(pdu);
        let mut notified = Vec::new();
        if !recipients.is_empty() {
            let rules = self.rules.get_many(&recipients)?;
            let recipients: Vec<_> = recipients.into_iter().zip(rules).collect();
            let ctx = room_context(rooms, pdu, members.len())?;
            let event =
                PreparedEvent::new(&Raw::<()>::from_json(pdu.stored.json.clone()), pdu.sender());
            notified = evaluate_all(&event, ctx, &recipients, |user| {
                display_name(rooms, pdu.stored.state_before, user).unwrap_or_default()
            });
        }
        let event = NewNotifications {
            room_id,
            event_id: pdu.event_id(),
            count: pdu.stored.count,
            thread: thread.as_ref(),
            ts: now_ms(),
        };
        self.counts.record(&event, &notified, pdu.sender())?;
        self.queue_pushes(rooms, pdu, notified)
    }

    /// The joined members of a room, cached until its next member event.
    fn joined_members(
        &self,
        rooms: &Rooms,
        room_id: &RoomId,
    ) -> Result<Arc<Vec<OwnedUserId>>, RoomError> {
        if let Some(members) = self.members.lock().get(room_id) {
            return Ok(members.clone());
        }
        let members = Arc::new(rooms.joined_members(room_id)?);
        self.members.lock().put(room_id.to_owned(), members.clone());
        Ok(members)
    }

    fn queue_pushes(
        &self,
        rooms: &Rooms,
        pdu: &PduEvent,
        notified: Vec<(OwnedUserId, Vec<Action>)>,
    ) -> Result<(), RoomError> {
        let mut targets = notified
            .into_iter()
            .filter(|(user, actions)| {
                actions.iter().any(|a| matches!(a, Action::Notify))
                    && self.pushers.has_pushers(user)
            })
            .peekable();
        if targets.peek().is_none() {
            return Ok(());
        }
        let event = Arc::new(summary(rooms, pdu)?);
        for (user, actions) in targets {
            let pushers = self.pushers.list(&user)?;
            let job = PushJob { user, event: event.clone(), actions, pushers };
            self.gateway.enqueue(job, self.pushers.clone(), self.counts.clone());
        }
        Ok(())
    }
}

/// The room as push conditions see it at the event: member count and power levels.
fn room_context(
    rooms: &Rooms,
    pdu: &PduEvent,
    members: usize,
) -> Result<PushConditionRoomCtx, RoomError> {
    let count = UInt::try_from(members).unwrap_or(UInt::MAX);
    let ctx = PushConditionRoomCtx::new(
        pdu.room_id().to_owned(),
        count,
        pdu.sender().to_owned(),
        String::new(),
    );
    Ok(match power_levels(rooms, pdu)? {
        Some(power) => ctx.with_power_levels(power),
        None => ctx,
    })
}

/// The power levels before the event, with the room version's rules (creators in v12).
fn power_levels(
    rooms: &Rooms,
    pdu: &PduEvent,
) -> Result<Option<PushConditionPowerLevelsCtx>, RoomError> {
    let Some((_, meta)) = rooms.meta(pdu.room_id())? else { return Ok(None) };
    let Some(rules) = meta.version.rules() else { return Ok(None) };
    let state = pdu.stored.state_before;
    let Some(create) = rooms.state_event(state, &StateEventType::RoomCreate, "")? else {
        return Ok(None);
    };
    let creators =
        RoomCreateEvent::new(&*create).creators(&rules.authorization).unwrap_or_default();
    let source = match rooms.state_event(state, &StateEventType::RoomPowerLevels, "")? {
        Some(event) => match event.content_as::<RoomPowerLevelsEventContent>() {
            Ok(content) => RoomPowerLevelsSource::Original(content),
            Err(_) => RoomPowerLevelsSource::None,
        },
        None => RoomPowerLevelsSource::None,
    };
    Ok(Some(RoomPowerLevels::new(source, &rules.authorization, creators).into()))
}

#[derive(Deserialize)]
struct NameContent {
    displayname: Option<String>,
    name: Option<String>,
    alias: Option<String>,
}

fn state_content(
    rooms: &Rooms,
    state: u64,
    kind: &StateEventType,
    key: &str,
) -> Result<Option<NameContent>, RoomError> {
    Ok(rooms.state_event(state, kind, key)?.and_then(|pdu| pdu.content_as::<NameContent>().ok()))
}

/// A member's display name in a snapshot.
fn display_name(rooms: &Rooms, state: u64, user: &UserId) -> Result<String, RoomError> {
    Ok(state_content(rooms, state, &StateEventType::RoomMember, user.as_str())?
        .and_then(|c| c.displayname)
        .unwrap_or_default())
}

/// What pushes say about an event: names from the state after it.
fn summary(rooms: &Rooms, pdu: &PduEvent) -> Result<EventSummary, RoomError> {
    let state = pdu.stored.state_after;
    let sender_name = display_name(rooms, state, pdu.sender())?;
    Ok(EventSummary {
        event_id: pdu.event_id().clone(),
        room_id: pdu.room_id().to_owned(),
        kind: pdu.kind().to_string(),
        sender: pdu.sender().to_owned(),
        sender_display_name: Some(sender_name).filter(|n| !n.is_empty()),
        room_name: state_content(rooms, state, &StateEventType::RoomName, "")?.and_then(|c| c.name),
        room_alias: state_content(rooms, state, &StateEventType::RoomCanonicalAlias, "")?
            .and_then(|c| c.alias),
        state_key: pdu.state_key().map(str::to_owned),
        content: serde_json::from_str(pdu.fields.content.get()).unwrap_or_default(),
    })
}

/// The thread root of an event in a thread.
pub fn thread_root(pdu: &PduEvent) -> Option<OwnedEventId> {
    #[derive(Deserialize)]
    struct Relation {
        rel_type: Option<String>,
        event_id: Option<OwnedEventId>,
    }
    #[derive(Deserialize)]
    struct Content {
        #[serde(rename = "m.relates_to")]
        relates_to: Option<Relation>,
    }
    let relation = pdu.content_as::<Content>().ok()?.relates_to?;
    if relation.rel_type.as_deref() == Some("m.thread") { relation.event_id } else { None }
}

/// The user an invite is for.
fn invited_user(pdu: &PduEvent) -> Option<OwnedUserId> {
    #[derive(Deserialize)]
    struct Member {
        membership: String,
    }
    if *pdu.kind() != TimelineEventType::RoomMember {
        return None;
    }
    let member = pdu.content_as::<Member>().ok()?;
    if member.membership != "invite" {
        return None;
    }
    pdu.state_key().and_then(|key| OwnedUserId::try_from(key).ok())
}
