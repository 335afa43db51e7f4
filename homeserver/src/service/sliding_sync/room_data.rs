//! The data of one room in a sliding sync response: timeline, `required_state`, name, heroes,
//! counts, for a room sent from scratch (`initial`) or since what the client has.

use std::{collections::HashSet, sync::Arc};

use ruma::{
    OwnedUserId, RoomId, UInt, UserId,
    api::client::sync::sync_events::{
        UnreadNotificationsCount,
        v5::response::{Hero, Room},
    },
    events::{StateEventType, room::member::MembershipState},
};

use super::{
    SlidingSyncError,
    connection::{RoomConfig, SentRoom},
};
use crate::service::{
    Services,
    rooms::{membership::MembershipEntry, pdu::PduEvent, pdu::to_raw},
};

/// What the client has of a room, when it has it under a config that covers the one asked for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Since {
    /// The stream position the client has the room up to.
    pub upto: u64,
}

/// Notification and highlight counts.
pub(super) type Counts = (u64, u64);

/// A joined room to send, with what the client has of it.
pub(super) struct JoinedRoom<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The `required_state` and timeline limit asked for.
    pub config: &'a RoomConfig,
    /// What the client has, when it can be updated incrementally.
    pub since: Option<Since>,
    /// The unread counts last sent.
    pub sent_counts: Option<Counts>,
    /// The room's bump stamp.
    pub bump: u64,
    /// The position of its latest event.
    pub latest: u64,
}

/// How many members are shown as heroes of an unnamed room.
const HEROES: usize = 5;

impl Services {
    /// A joined room, or `None` when the client has it and nothing changed. `live_after` is the
    /// position of the previous response (events after it are live), 0 on a new connection.
    pub(super) fn joined_room_data(
        &self,
        user: &UserId,
        target: &JoinedRoom<'_>,
        live_after: u64,
        upto: u64,
    ) -> Result<Option<(Room, Counts)>, SlidingSyncError> {
        let JoinedRoom { room_id, config, since, sent_counts, bump, latest } = *target;
        let tally = self.push.room_counts(user, room_id)?.total();
        let counts = (tally.notifications, tally.highlights);
        if let Some(since) = since
            && latest <= since.upto
            && sent_counts == Some(counts)
        {
            return Ok(None);
        }
        let (shortroomid, meta) = self.rooms.require_meta(room_id)?;
        let limit = usize::try_from(config.timeline_limit).unwrap_or(usize::MAX);
        let after = since.map_or(0, |s| s.upto);
        let (events, limited) = self.rooms.timeline_tail(shortroomid, after, upto, limit)?;
        let end_state = match events.last() {
            Some(last) => last.stored.state_after,
            None if meta.last_count <= upto => meta.state,
            None => self.state_at(shortroomid, upto)?,
        };

        let mut room = Room::new();
        room.initial = since.is_none().then_some(true);
        room.limited = limited;
        room.bump_stamp = Some(UInt::new_saturating(bump));
        room.prev_batch = Some(match events.first() {
            Some(first) => first.stored.count.to_string(),
            None => (upto + 1).to_string(),
        });
        let live = events.iter().filter(|e| live_after > 0 && e.stored.count > live_after).count();
        room.num_live = Some(UInt::new_saturating(live as u64));

        let senders: HashSet<&UserId> = events.iter().map(|e| e.sender()).collect();
        let state = match since {
            None => self.required_state_full(end_state, config, user, &senders)?,
            Some(since) => {
                let base = self.state_at(shortroomid, since.upto)?;
                self.required_state_delta(base, end_state, config, user, &senders)?
            }
        };
        for pdu in &state {
            room.required_state.push(to_raw(&self.client_event(pdu, Some(user))?));
        }
        for pdu in &events {
            room.timeline.push(to_raw(&self.client_event(pdu, Some(user))?));
        }
        self.fill_summary_v5(room_id, user, end_state, &mut room)?;
        let mut unread = UnreadNotificationsCount::new();
        unread.notification_count = Some(UInt::new_saturating(counts.0));
        unread.highlight_count = Some(UInt::new_saturating(counts.1));
        room.unread_notifications = unread;
        Ok(Some((room, counts)))
    }

    /// An invite: its stripped state, sent once.
    pub(super) fn invited_room_data(
        &self,
        entry: &MembershipEntry,
    ) -> Result<Room, SlidingSyncError> {
        let mut room = Room::new();
        room.initial = Some(true);
        room.invite_state = Some(self.stripped_state(entry)?);
        room.bump_stamp = Some(UInt::new_saturating(entry.count));
        Ok(room)
    }

    /// A room the client has and the user left: the timeline up to the leave, and the leave
    /// itself in `required_state`, so the client moves the room out of its lists.
    pub(super) fn left_room_data(
        &self,
        user: &UserId,
        room_id: &RoomId,
        entry: &MembershipEntry,
        sent: &SentRoom,
        config: &RoomConfig,
    ) -> Result<Option<Room>, SlidingSyncError> {
        let (shortroomid, _) = self.rooms.require_meta(room_id)?;
        let Some(leave) = self.rooms.pdu(&entry.event_id)? else { return Ok(None) };
        let limit = usize::try_from(config.timeline_limit).unwrap_or(usize::MAX);
        let (events, limited) =
            self.rooms.timeline_tail(shortroomid, sent.upto, leave.stored.count, limit)?;
        let mut room = Room::new();
        room.limited = limited;
        room.bump_stamp = Some(UInt::new_saturating(leave.stored.count));
        room.prev_batch = events.first().map(|e| e.stored.count.to_string());
        room.required_state.push(to_raw(&self.client_event(&leave, Some(user))?));
        for pdu in &events {
            room.timeline.push(to_raw(&self.client_event(pdu, Some(user))?));
        }
        Ok(Some(room))
    }

    /// Name, heroes and member counts.
    fn fill_summary_v5(
        &self,
        room_id: &RoomId,
        user: &UserId,
        state: u64,
        room: &mut Room,
    ) -> Result<(), SlidingSyncError> {
        let members = self.rooms.members(room_id)?;
        let count = |m: MembershipState| members.iter().filter(|(_, e)| e.membership == m).count();
        room.joined_count = Some(UInt::new_saturating(count(MembershipState::Join) as u64));
        room.invited_count = Some(UInt::new_saturating(count(MembershipState::Invite) as u64));
        if let Some(name) = self.rooms.state_event(state, &StateEventType::RoomName, "")? {
            room.name = name
                .content_object()
                .get("name")
                .and_then(|n| n.as_str())
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
        }
        if room.name.is_some() {
            return Ok(());
        }
        let heroes: Vec<OwnedUserId> = members
            .iter()
            .filter(|(u, m)| {
                u != user && matches!(m.membership, MembershipState::Join | MembershipState::Invite)
            })
            .take(HEROES)
            .map(|(u, _)| u.clone())
            .collect();
        let mut out = Vec::with_capacity(heroes.len());
        for hero in heroes {
            let member =
                self.rooms.state_event(state, &StateEventType::RoomMember, hero.as_str())?;
            let content = member.map(|pdu| pdu.content_object()).unwrap_or_default();
            let mut entry = Hero::new(hero);
            entry.name = content.get("displayname").and_then(|v| v.as_str()).map(str::to_owned);
            entry.avatar = content
                .get("avatar_url")
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(Into::into);
            out.push(entry);
        }
        room.heroes = Some(out);
        Ok(())
    }

    /// The state events of a snapshot that `config` asks for. Concrete entries are point
    /// lookups; only a wildcard reads the whole state map.
    fn required_state_full(
        &self,
        state: u64,
        config: &RoomConfig,
        user: &UserId,
        senders: &HashSet<&UserId>,
    ) -> Result<Vec<Arc<PduEvent>>, SlidingSyncError> {
        let mut out: Vec<Arc<PduEvent>> = Vec::new();
        let mut push = |pdu: Arc<PduEvent>| {
            if !out.iter().any(|e| e.event_id() == pdu.event_id()) {
                out.push(pdu);
            }
        };
        let wildcard = config.required_state.iter().any(|(t, k)| t == "*" || k == "*");
        if wildcard {
            let map = self.rooms.state_map(state)?;
            for (statekey, event) in map.iter() {
                let Some(key) = self.rooms.short.statekey(*statekey)? else { continue };
                if wanted(config, user, senders, &key.0.to_string(), &key.1)
                    && let Some(pdu) = self.rooms.pdu_by_short(*event)?
                {
                    push(pdu);
                }
            }
            return Ok(out);
        }
        for (kind, key) in &config.required_state {
            let kind = StateEventType::from(kind.as_str());
            let keys: Vec<&str> = match key.as_str() {
                "$ME" => vec![user.as_str()],
                "$LAZY" => senders.iter().map(|s| s.as_str()).collect(),
                other => vec![other],
            };
            for key in keys {
                if let Some(pdu) = self.rooms.state_event(state, &kind, key)? {
                    push(pdu);
                }
            }
        }
        Ok(out)
    }

    /// The state events that changed between two snapshots and that `config` asks for, plus
    /// the members of the timeline's senders when it asks for lazy members.
    fn required_state_delta(
        &self,
        from: u64,
        to: u64,
        config: &RoomConfig,
        user: &UserId,
        senders: &HashSet<&UserId>,
    ) -> Result<Vec<Arc<PduEvent>>, SlidingSyncError> {
        let mut out = Vec::new();
        if from != to {
            for pdu in self.state_delta(from, to)? {
                let kind = pdu.kind().to_string();
                if wanted(config, user, senders, &kind, pdu.state_key().unwrap_or_default()) {
                    out.push(pdu);
                }
            }
        }
        let lazy = config.required_state.iter().any(|(t, k)| t == "m.room.member" && k == "$LAZY");
        if lazy {
            for sender in senders {
                if let Some(pdu) =
                    self.rooms.state_event(to, &StateEventType::RoomMember, sender.as_str())?
                    && !out.iter().any(|e| e.event_id() == pdu.event_id())
                {
                    out.push(pdu);
                }
            }
        }
        Ok(out)
    }
}

/// Whether `config` asks for the state event (`kind`, `key`): `*` matches any type or key,
/// `$ME` the user's own key, `$LAZY` the members who sent a timeline event.
pub(super) fn wanted(
    config: &RoomConfig,
    user: &UserId,
    senders: &HashSet<&UserId>,
    kind: &str,
    key: &str,
) -> bool {
    config.required_state.iter().any(|(t, k)| {
        (t == "*" || t == kind)
            && match k.as_str() {
                "*" => true,
                "$ME" => key == user.as_str(),
                "$LAZY" => senders.iter().any(|s| s.as_str() == key),
                other => other == key,
            }
    })
}

#[cfg(test)]
mod tests {
    use ruma::user_id;

    use super::*;

    #[test]
    fn wildcards_me_and_lazy() {
        let config = RoomConfig {
            required_state: vec![
                ("m.room.member".into(), "$LAZY".into()),
                ("m.room.member".into(), "$ME".into()),
                ("m.space.child".into(), "*".into()),
                ("m.room.name".into(), "".into()),
            ],
            timeline_limit: 1,
        };
        let me = user_id!("@me:x");
        let bob = user_id!("@bob:x");
        let senders: HashSet<&UserId> = [bob].into_iter().collect();
        assert!(wanted(&config, me, &senders, "m.room.member", "@me:x"));
        assert!(wanted(&config, me, &senders, "m.room.member", "@bob:x"));
        assert!(!wanted(&config, me, &senders, "m.room.member", "@carol:x"));
        assert!(wanted(&config, me, &senders, "m.space.child", "!any:x"));
        assert!(wanted(&config, me, &senders, "m.room.name", ""));
        assert!(!wanted(&config, me, &senders, "m.room.topic", ""));
        let all = RoomConfig { required_state: vec![("*".into(), "*".into())], timeline_limit: 0 };
        assert!(wanted(&all, me, &senders, "m.room.topic", ""));
    }
}
