//! `GET /_matrix/client/v3/rooms/{roomId}/initialSync`: a snapshot of a room, for members and
//! for anyone when the room is world-readable (clients use it to preview a room before joining).

use std::sync::Arc;

use ruma::api::client::{
    peeking::get_current_state::{self, v3::PaginationChunk},
    room::Visibility,
};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        rooms::{pdu::to_raw, timeline::Direction},
    },
};

/// Events returned in the snapshot's `messages`.
const SNAPSHOT_EVENTS: usize = 20;

/// A snapshot of the room's state and latest events.
pub async fn initial_sync(
    services: Arc<Services>,
    req: Ruma<get_current_state::v3::Request>,
) -> ApiResult<get_current_state::v3::Response> {
    let user = req.auth.user_id;
    let room_id = req.body.room_id;
    blocking(move || {
        let refused = || {
            ApiError::Forbidden(format!("you may not preview room {room_id}: join it to read it"))
        };
        let state = services.readable_state(&user, &room_id)?.ok_or_else(refused)?;
        let (shortroomid, _) = services.rooms.require_meta(&room_id)?;
        let upto = services.globals.visible_count();
        let mut events = services.rooms.timeline_page(
            shortroomid,
            upto + 1,
            Direction::Backward,
            SNAPSHOT_EVENTS,
            upto,
        )?;
        events.retain(|p| services.can_see_event(&user, p).unwrap_or(false));
        events.reverse();
        let start = events.first().map(|p| p.stored.count.to_string());
        let chunk = events
            .iter()
            .map(|p| Ok(to_raw(&services.client_event(p, Some(&user))?)))
            .collect::<ApiResult<Vec<_>>>()?;
        let mut messages = PaginationChunk::new(chunk, (upto + 1).to_string());
        messages.start = start;
        let mut response = get_current_state::v3::Response::new(room_id.clone());
        response.messages = Some(messages);
        response.membership = services.rooms.membership(&room_id, &user)?.map(|m| m.membership);
        response.visibility = Some(if services.rooms.aliases.is_public(&room_id)? {
            Visibility::Public
        } else {
            Visibility::Private
        });
        for pdu in services.rooms.state_events(state)? {
            response.state.push(to_raw(&services.client_event(&pdu, Some(&user))?));
        }
        Ok(response)
    })
    .await
}
