//! Presence: `GET`/`PUT /presence/{userId}/status`.

use std::{sync::Arc, time::Duration};

use ruma::{
    api::client::presence::{get_presence, set_presence},
    presence::PresenceState,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, ephemeral::now_ms},
};

/// `PUT /_matrix/client/v3/presence/{userId}/status`
pub async fn set(
    services: Arc<Services>,
    req: Ruma<set_presence::v3::Request>,
) -> ApiResult<set_presence::v3::Response> {
    if req.body.user_id != req.auth.user_id {
        return Err(ApiError::Forbidden("you can only set your own presence".into()));
    }
    if req.body.status_msg.as_ref().is_some_and(|m| m.len() > 1024) {
        return Err(ApiError::InvalidParam("status messages are limited to 1024 bytes".into()));
    }
    let audience = audience(&services, &req.auth.user_id)?;
    let before = services.presence.get(&req.auth.user_id).map(|p| p.count);
    services.presence.set(
        &req.auth.user_id,
        req.body.presence.clone(),
        req.body.status_msg.clone(),
        &audience,
    )?;
    // Other servers hear of changes only, as local syncs do.
    if services.presence.get(&req.auth.user_id).map(|p| p.count) != before {
        services.federate_presence(&req.auth.user_id);
    }
    Ok(set_presence::v3::Response::new())
}

/// Users who share a room with `user`: the ones whose syncs show their presence.
fn audience(services: &Services, user: &ruma::UserId) -> ApiResult<Vec<ruma::OwnedUserId>> {
    let mut users = Vec::new();
    for (room, entry) in services.rooms.rooms_of(user)? {
        if entry.membership == ruma::events::room::member::MembershipState::Join {
            users.extend(services.rooms.joined_members(&room)?);
        }
    }
    users.sort_unstable();
    users.dedup();
    Ok(users)
}

/// `GET /_matrix/client/v3/presence/{userId}/status`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_presence::v3::Request>,
) -> ApiResult<get_presence::v3::Response> {
    let target = &req.body.user_id;
    let visible =
        target == &req.auth.user_id || audience(&services, &req.auth.user_id)?.contains(target);
    if !visible {
        return Err(ApiError::Forbidden("you do not share a room with this user".into()));
    }
    let mut response = get_presence::v3::Response::new(PresenceState::Offline);
    if let Some(presence) = services.presence.get(target) {
        response.presence = presence.state.clone();
        response.status_msg = presence.status_msg;
        response.currently_active = Some(presence.state == PresenceState::Online);
        response.last_active_ago =
            Some(Duration::from_millis(now_ms().saturating_sub(presence.last_active_ts)));
    } else if !services.accounts.exists(target)?
        && target.server_name() == services.config.server_name
    {
        return Err(ApiError::NotFound("no such user".into()));
    }
    Ok(response)
}
