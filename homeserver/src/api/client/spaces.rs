//! Space hierarchy (`/hierarchy`) and room previews (`/room_summary`).

use std::sync::Arc;

use ruma::api::client::{room::get_summary, space::get_hierarchy};

use super::membership::{blocking, resolve_room};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rooms::RoomError},
};

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
pub async fn hierarchy(
    services: Arc<Services>,
    req: Ruma<get_hierarchy::v1::Request>,
) -> ApiResult<get_hierarchy::v1::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    blocking(move || {
        let from: usize = match &body.from {
            Some(token) => token
                .parse()
                .map_err(|_| ApiError::InvalidParam(format!("invalid from token {token:?}")))?,
            None => 0,
        };
        let limit =
            body.limit.map_or(50, |l| usize::try_from(u64::from(l)).unwrap_or(50)).clamp(1, 500);
        let max_depth = body.max_depth.map(|d| usize::try_from(u64::from(d)).unwrap_or(usize::MAX));
        let walk = services
            .space_hierarchy(&user, &body.room_id, body.suggested_only, max_depth)
            .map_err(|e| match e {
            RoomError::UnknownRoom(_) | RoomError::Forbidden(_) => {
                ApiError::Forbidden("you cannot see this space".into())
            }
            other => other.into(),
        })?;
        if from > walk.len() {
            return Err(ApiError::InvalidParam(
                "the from token is past the end of the hierarchy".into(),
            ));
        }
        let total = walk.len();
        let mut response = get_hierarchy::v1::Response::new();
        response.rooms = walk.into_iter().skip(from).take(limit).map(|r| r.chunk).collect();
        if from + limit < total {
            response.next_batch = Some((from + limit).to_string());
        }
        Ok(response)
    })
    .await
}

/// `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`
pub async fn summary(
    services: Arc<Services>,
    req: Ruma<get_summary::v1::Request>,
) -> ApiResult<get_summary::v1::Response> {
    let user = req.auth.map(|s| s.user_id);
    let target = req.body.room_id_or_alias;
    blocking(move || {
        let room_id = resolve_room(&services, &target)?;
        let not_found =
            || ApiError::NotFound(format!("room {target} is not known or not visible to you"));
        let facts = services.room_facts(&room_id)?.ok_or_else(not_found)?;
        let visible = match &user {
            Some(user) => services.can_preview(user, &facts)?,
            None => facts.world_readable || matches!(facts.join_rule, ruma::room::JoinRule::Public),
        };
        if !visible {
            return Err(not_found());
        }
        let mut response = get_summary::v1::Response::new(facts.summary());
        if let Some(user) = &user {
            response.membership = services.rooms.membership(&room_id, user)?.map(|m| m.membership);
        }
        Ok(response)
    })
    .await
}
