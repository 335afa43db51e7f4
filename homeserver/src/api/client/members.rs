//! Room members: `/members` and `/joined_members`.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{
    OwnedMxcUri,
    api::client::membership::{get_member_events, joined_members},
    events::{TimelineEventType, room::member::MembershipState},
};
use serde_json::Value;

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rooms::pdu::to_raw},
};

/// `GET /_matrix/client/v3/rooms/{roomId}/members`
pub async fn members(
    services: Arc<Services>,
    req: Ruma<get_member_events::v3::Request>,
) -> ApiResult<get_member_events::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    blocking(move || {
        let mut state = services.readable_state(&user, &body.room_id)?.ok_or_else(|| {
            ApiError::Forbidden("you are not allowed to read this room's members".into())
        })?;
        if let Some(at) = &body.at {
            let at: u64 =
                at.parse().map_err(|_| ApiError::InvalidParam(format!("invalid token {at:?}")))?;
            let (shortroomid, _) = services.rooms.require_meta(&body.room_id)?;
            let historical = services.state_at(shortroomid, at)?;
            if historical != 0 {
                state = historical;
            }
        }
        let mut chunk = Vec::new();
        for pdu in services.rooms.state_events(state)? {
            if *pdu.kind() != TimelineEventType::RoomMember {
                continue;
            }
            let membership = pdu
                .content_object()
                .get("membership")
                .and_then(Value::as_str)
                .map(MembershipState::from);
            if let (Some(wanted), Some(m)) = (&body.membership, &membership)
                && wanted != m
            {
                continue;
            }
            if let (Some(unwanted), Some(m)) = (&body.not_membership, &membership)
                && unwanted == m
            {
                continue;
            }
            chunk.push(to_raw(&services.client_event(&pdu, Some(&user))?));
        }
        Ok(get_member_events::v3::Response::new(chunk))
    })
    .await
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
pub async fn joined(
    services: Arc<Services>,
    req: Ruma<joined_members::v3::Request>,
) -> ApiResult<joined_members::v3::Response> {
    let user = req.auth.user_id;
    let room_id = req.body.room_id;
    if !services.can_read_room(&user, &room_id)? {
        return Err(ApiError::Forbidden("you are not a member of this room".into()));
    }
    let mut joined = BTreeMap::new();
    for member in services.rooms.joined_members(&room_id)? {
        let event = services.rooms.current_state_event(
            &room_id,
            &ruma::events::StateEventType::RoomMember,
            member.as_str(),
        )?;
        let mut entry = joined_members::v3::RoomMember::new();
        if let Some(event) = event {
            let content = event.content_object();
            entry.display_name =
                content.get("displayname").and_then(Value::as_str).map(str::to_owned);
            entry.avatar_url =
                content.get("avatar_url").and_then(Value::as_str).map(OwnedMxcUri::from);
        }
        joined.insert(member, entry);
    }
    Ok(joined_members::v3::Response::new(joined))
}
