//! The space hierarchy as another server may see it (`GET /hierarchy/{roomId}`): the room with
//! its `m.space.child` events, and the summaries of its direct children the server may preview.

use ruma::{
    OwnedRoomId, ServerName,
    api::federation::space::{SpaceHierarchyParentSummary, get_hierarchy},
    room::JoinRule,
    serde::Raw,
};

use super::reads::ReadError;
use crate::service::{Services, room_summary::RoomFacts, rooms::RoomError};

impl Services {
    /// Whether `server` may see the summary of a room: its ACL allows it and it has a user in
    /// the room, or the room is world-readable, public or knockable, or restricted to a room
    /// where it has a user.
    pub fn server_can_preview(
        &self,
        server: &ServerName,
        facts: &RoomFacts,
    ) -> Result<bool, RoomError> {
        if self.check_server_acl(&facts.room_id, server).is_err() {
            return Ok(false);
        }
        if facts.world_readable || self.server_in_room(server, &facts.room_id)? {
            return Ok(true);
        }
        Ok(match &facts.join_rule {
            JoinRule::Public | JoinRule::Knock => true,
            JoinRule::Restricted(_) | JoinRule::KnockRestricted(_) => {
                let mut allowed = false;
                for room in facts.allowed_rooms() {
                    if self.server_in_room(server, &room)? {
                        allowed = true;
                        break;
                    }
                }
                allowed || matches!(facts.join_rule, JoinRule::KnockRestricted(_))
            }
            _ => false,
        })
    }

    /// `GET /hierarchy/{roomId}`: the room (`M_NOT_FOUND` if unknown, `M_FORBIDDEN` if `origin`
    /// may not preview it), its children's summaries, and the children it may not preview.
    /// Children this server does not know are left out: the origin asks their other servers.
    pub fn federation_hierarchy(
        &self,
        origin: &ServerName,
        room_id: &ruma::RoomId,
        suggested_only: bool,
    ) -> Result<get_hierarchy::v1::Response, ReadError> {
        let facts = self
            .room_facts(room_id)?
            .ok_or_else(|| ReadError::NotFound(format!("room {room_id} is not known here")))?;
        if !self.server_can_preview(origin, &facts)? {
            return Err(ReadError::Forbidden(format!("{origin} may not preview {room_id}")));
        }
        let is_space = facts.room_type == Some(ruma::room::RoomType::Space);
        let children = if is_space { self.space_children(&facts)? } else { Vec::new() };
        let mut children_state = Vec::new();
        let mut summaries = Vec::new();
        let mut inaccessible: Vec<OwnedRoomId> = Vec::new();
        for (child, event, suggested) in children {
            if suggested_only && !suggested {
                continue;
            }
            let raw = serde_json::value::to_raw_value(&event)
                .map_err(|e| RoomError::BadRequest(e.to_string()))?;
            children_state.push(Raw::from_json(raw));
            let Some(child_facts) = self.room_facts(&child)? else { continue };
            if self.server_can_preview(origin, &child_facts)? {
                summaries.push(child_facts.summary());
            } else {
                inaccessible.push(child);
            }
        }
        let mut response = get_hierarchy::v1::Response::new(SpaceHierarchyParentSummary::new(
            facts.summary(),
            children_state,
        ));
        response.children = summaries;
        response.inaccessible_children = inaccessible;
        Ok(response)
    }
}
