//! Room upgrades and reports.

use std::sync::Arc;

use ruma::api::client::room::{report_content, upgrade_room};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    config::SUPPORTED_ROOM_VERSIONS,
    service::{Services, reports::Report},
};

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade(
    services: Arc<Services>,
    req: Ruma<upgrade_room::v3::Request>,
) -> ApiResult<upgrade_room::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    if !SUPPORTED_ROOM_VERSIONS.contains(&body.new_version) {
        return Err(ApiError::UnsupportedRoomVersion(format!(
            "room version {} is not supported by this server",
            body.new_version
        )));
    }
    // An upgrade creates a room: the policy service sees the parts of an equivalent createRoom.
    let room_config = serde_json::json!({
        "room_version": body.new_version.as_str(),
        "creation_content": { "predecessor": { "room_id": body.room_id } },
    });
    services.policy_checks.user_may_create_room(&user, room_config).await?;
    let new_room = blocking(move || {
        Ok(services.upgrade_room(
            &user,
            &body.room_id,
            &body.new_version,
            &SUPPORTED_ROOM_VERSIONS,
        )?)
    })
    .await?;
    Ok(upgrade_room::v3::Response::new(new_room))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`
pub async fn report(
    services: Arc<Services>,
    req: Ruma<report_content::v3::Request>,
) -> ApiResult<report_content::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    let not_found = || ApiError::NotFound("event not found".into());
    let pdu = services
        .rooms
        .pdu(&body.event_id)?
        .filter(|p| p.room_id() == body.room_id)
        .ok_or_else(not_found)?;
    if !services.can_see_event(&user, &pdu)? {
        return Err(not_found());
    }
    let id = services.reports.add(Report {
        reporter: user.clone(),
        room_id: body.room_id.clone(),
        event_id: Some(body.event_id.clone()),
        user_id: None,
        reason: body.reason.clone(),
        ts: 0,
    })?;
    tracing::info!(report = id, %user, room_id = %body.room_id, "content reported");
    Ok(report_content::v3::Response::new())
}
