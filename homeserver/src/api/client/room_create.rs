//! `POST /_matrix/client/v3/createRoom`

use std::sync::Arc;

use ruma::api::client::room::create_room;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    config::SUPPORTED_ROOM_VERSIONS,
    service::{Services, rooms::create::CreateRoom},
};

/// Creates a room with the creator joined, the preset's rules, initial state and invites.
pub async fn create_room(
    services: Arc<Services>,
    req: Ruma<create_room::v3::Request>,
) -> ApiResult<create_room::v3::Response> {
    let limits = &services.config.limits;
    if req.body.initial_state.len() > limits.max_initial_state {
        return Err(ApiError::InvalidParam(format!(
            "initial_state has {} events; the limit is {}",
            req.body.initial_state.len(),
            limits.max_initial_state
        )));
    }
    if req.body.invite.len() > limits.max_invites {
        return Err(ApiError::InvalidParam(format!(
            "invite has {} users; the limit is {}",
            req.body.invite.len(),
            limits.max_invites
        )));
    }
    let creator = req.auth.user_id.clone();
    let room_id = tokio::task::spawn_blocking(move || {
        let account = services.accounts.account(&creator)?.unwrap_or_default();
        services
            .rooms
            .create_room(
                &creator,
                CreateRoom {
                    request: &req.body,
                    default_version: &services.config.rooms.default_version,
                    supported: &SUPPORTED_ROOM_VERSIONS,
                    displayname: account.displayname,
                    avatar_url: account.avatar_url,
                },
            )
            .map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    tracing::info!(%room_id, "room created");
    Ok(create_room::v3::Response::new(room_id))
}
