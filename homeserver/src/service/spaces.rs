//! Spaces: the hierarchy of a space, previews of rooms before joining, and who may join a
//! restricted room through their membership of another room.

use std::collections::{HashSet, VecDeque};

use ruma::state_res::events::RoomPowerLevelsIntField;
use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, UserId,
    api::client::space::SpaceHierarchyRoomsChunk,
    events::{TimelineEventType, room::member::MembershipState},
    room::JoinRule,
    serde::Raw,
};
use serde_json::{Value, json};

use super::{Services, room_summary::RoomFacts, rooms::RoomError};

/// The most rooms one hierarchy walk visits, so that a huge or malicious tree costs a bounded
/// amount of work.
const MAX_WALK: usize = 10_000;

/// The longest `order` the spec accepts; longer (or non-printable) orders are ignored.
const MAX_ORDER_LEN: usize = 50;

/// A room in a hierarchy walk.
#[derive(Debug)]
pub struct HierarchyRoom {
    /// The room's summary and its `m.space.child` events.
    pub chunk: SpaceHierarchyRoomsChunk,
    /// Depth below the root.
    pub depth: usize,
}

impl Services {
    /// Whether `user` may see the summary of a room without being in it: members (joined,
    /// invited, knocking), world-readable rooms, public and knockable rooms, and restricted
    /// rooms whose allow list contains a room the user is in.
    pub fn can_preview(&self, user: &UserId, facts: &RoomFacts) -> Result<bool, RoomError> {
        if let Some(entry) = self.rooms.membership(&facts.room_id, user)?
            && matches!(
                entry.membership,
                MembershipState::Join | MembershipState::Invite | MembershipState::Knock
            )
        {
            return Ok(true);
        }
        if facts.world_readable {
            return Ok(true);
        }
        Ok(match &facts.join_rule {
            JoinRule::Public | JoinRule::Knock | JoinRule::KnockRestricted(_) => true,
            JoinRule::Restricted(_) => self.allowed_by_membership(user, facts)?.is_some(),
            _ => false,
        })
    }

    /// The allowed room through which `user` may join a restricted room, if any.
    fn allowed_by_membership(
        &self,
        user: &UserId,
        facts: &RoomFacts,
    ) -> Result<Option<OwnedRoomId>, RoomError> {
        for room in facts.allowed_rooms() {
            if self.rooms.is_joined(&room, user)? {
                return Ok(Some(room));
            }
        }
        Ok(None)
    }

    /// For a join that needs it (restricted join rule, no invitation), the local member with the
    /// power to invite who authorises the join (`join_authorised_via_users_server`).
    pub fn restricted_join_authoriser(
        &self,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<Option<OwnedUserId>, RoomError> {
        let Some(facts) = self.room_facts(room_id)? else { return Ok(None) };
        if !matches!(facts.join_rule, JoinRule::Restricted(_) | JoinRule::KnockRestricted(_)) {
            return Ok(None);
        }
        if let Some(entry) = self.rooms.membership(room_id, user)?
            && matches!(entry.membership, MembershipState::Join | MembershipState::Invite)
        {
            return Ok(None);
        }
        if self.allowed_by_membership(user, &facts)?.is_none() {
            let allowed: Vec<String> =
                facts.allowed_rooms().iter().map(ToString::to_string).collect();
            return Err(RoomError::Forbidden(format!(
                "this room is restricted: join one of these rooms first, or ask for an invitation: {}",
                allowed.join(", ")
            )));
        }
        for member in self.rooms.joined_members(room_id)? {
            if member.server_name() == self.config.server_name
                && self.rooms.reaches_level(room_id, &member, RoomPowerLevelsIntField::Invite)?
            {
                return Ok(Some(member));
            }
        }
        Err(RoomError::Forbidden("no member of this server can authorise joining this room".into()))
    }

    /// The `m.space.child` events of a room that name a child (non-empty `via`), in the spec's
    /// order: by `order` when valid, then by the event's timestamp, then by room ID.
    pub(crate) fn space_children(
        &self,
        facts: &RoomFacts,
    ) -> Result<Vec<(OwnedRoomId, Value, bool)>, RoomError> {
        let mut children = Vec::new();
        for pdu in self.rooms.state_events(facts.state)? {
            if *pdu.kind() != TimelineEventType::SpaceChild {
                continue;
            }
            let Some(child) = pdu.state_key().and_then(|k| OwnedRoomId::try_from(k).ok()) else {
                continue;
            };
            let content = pdu.content_object();
            let has_via =
                content.get("via").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
            if !has_via {
                continue;
            }
            let order = content
                .get("order")
                .and_then(Value::as_str)
                .filter(|o| {
                    o.len() <= MAX_ORDER_LEN && o.bytes().all(|b| (0x20..=0x7E).contains(&b))
                })
                .map(str::to_owned);
            let suggested = content.get("suggested").and_then(Value::as_bool).unwrap_or(false);
            let ts: u64 = pdu.fields.origin_server_ts.0.into();
            let event = json!({
                "type": "m.space.child",
                "state_key": child,
                "sender": pdu.sender(),
                "origin_server_ts": ts,
                "content": content,
            });
            children.push((order, ts, child, event, suggested));
        }
        // Rooms with an order come first, by order; then by timestamp; then by room ID.
        children.sort_by(|a, b| match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.cmp(y).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1).then(a.2.cmp(&b.2)),
        });
        Ok(children
            .into_iter()
            .map(|(_, _, child, event, suggested)| (child, event, suggested))
            .collect())
    }

    /// Walks a space breadth-first, as `user` may see it. Cycles are cut; rooms the user may not
    /// preview, and rooms this server does not know, are left out (the root is always listed
    /// when it may be previewed).
    pub fn space_hierarchy(
        &self,
        user: &UserId,
        root: &RoomId,
        suggested_only: bool,
        max_depth: Option<usize>,
    ) -> Result<Vec<HierarchyRoom>, RoomError> {
        let root_facts = self.room_facts(root)?.ok_or(RoomError::UnknownRoom(root.to_owned()))?;
        if !self.can_preview(user, &root_facts)? {
            return Err(RoomError::Forbidden("you cannot see this space".into()));
        }
        let mut out = Vec::new();
        let mut seen: HashSet<OwnedRoomId> = HashSet::from([root.to_owned()]);
        let mut queue: VecDeque<(RoomFacts, usize)> = VecDeque::from([(root_facts, 0)]);
        while let Some((facts, depth)) = queue.pop_front() {
            if out.len() >= MAX_WALK {
                break;
            }
            let is_space = facts.room_type == Some(ruma::room::RoomType::Space);
            let children = if is_space { self.space_children(&facts)? } else { Vec::new() };
            let mut children_state = Vec::new();
            for (child, event, suggested) in &children {
                if suggested_only && !suggested {
                    continue;
                }
                children_state.push(Raw::from_json(
                    serde_json::value::to_raw_value(event)
                        .map_err(|e| RoomError::BadRequest(e.to_string()))?,
                ));
                if max_depth.is_some_and(|max| depth >= max) || !seen.insert(child.clone()) {
                    continue;
                }
                if let Some(child_facts) = self.room_facts(child)?
                    && self.can_preview(user, &child_facts)?
                {
                    queue.push_back((child_facts, depth + 1));
                }
            }
            out.push(HierarchyRoom {
                chunk: SpaceHierarchyRoomsChunk::new(facts.summary(), children_state),
                depth,
            });
        }
        Ok(out)
    }
}
