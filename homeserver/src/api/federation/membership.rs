//! Membership over federation: `make_join`/`send_join` (v2), `make_leave`/`send_leave` (v2),
//! `invite` (v2). The handlers parse and map errors; `service::federation::membership` decides.

use std::sync::Arc;

use ruma::api::federation::membership::{
    create_invite, create_join_event, create_knock_event, create_leave_event, prepare_join_event,
    prepare_knock_event, prepare_leave_event,
};

use crate::{
    api::{error::ApiResult, ruma::Ruma},
    service::Services,
};

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`
pub async fn make_join(
    services: Arc<Services>,
    req: Ruma<prepare_join_event::v1::Request>,
) -> ApiResult<prepare_join_event::v1::Response> {
    let (version, event) =
        services.make_join(&req.auth, &req.body.room_id, &req.body.user_id, &req.body.ver).await?;
    let mut response = prepare_join_event::v1::Response::new(event);
    response.room_version = Some(version);
    Ok(response)
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
pub async fn send_join(
    services: Arc<Services>,
    req: Ruma<create_join_event::v2::Request>,
) -> ApiResult<create_join_event::v2::Response> {
    let state =
        services.send_join(&req.auth, &req.body.room_id, &req.body.event_id, &req.body.pdu).await?;
    Ok(create_join_event::v2::Response::new(state))
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
pub async fn make_leave(
    services: Arc<Services>,
    req: Ruma<prepare_leave_event::v1::Request>,
) -> ApiResult<prepare_leave_event::v1::Response> {
    let (version, event) = services.make_leave(&req.auth, &req.body.room_id, &req.body.user_id)?;
    Ok(prepare_leave_event::v1::Response::new(Some(version), event))
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
pub async fn send_leave(
    services: Arc<Services>,
    req: Ruma<create_leave_event::v2::Request>,
) -> ApiResult<create_leave_event::v2::Response> {
    services.send_leave(&req.auth, &req.body.room_id, &req.body.event_id, &req.body.pdu).await?;
    Ok(create_leave_event::v2::Response::new())
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
pub async fn invite(
    services: Arc<Services>,
    req: Ruma<create_invite::v2::Request>,
) -> ApiResult<create_invite::v2::Response> {
    let body = &req.body;
    let event = services
        .receive_invite(
            &req.auth,
            &body.room_id,
            &body.event_id,
            &body.room_version,
            &body.event,
            &body.invite_room_state,
        )
        .await?;
    Ok(create_invite::v2::Response::new(event))
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`
pub async fn make_knock(
    services: Arc<Services>,
    req: Ruma<prepare_knock_event::v1::Request>,
) -> ApiResult<prepare_knock_event::v1::Response> {
    let (version, event) =
        services.make_knock(&req.auth, &req.body.room_id, &req.body.user_id, &req.body.ver).await?;
    Ok(prepare_knock_event::v1::Response::new(version, event))
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
pub async fn send_knock(
    services: Arc<Services>,
    req: Ruma<create_knock_event::v1::Request>,
) -> ApiResult<create_knock_event::v1::Response> {
    let state = services
        .send_knock(&req.auth, &req.body.room_id, &req.body.event_id, &req.body.pdu)
        .await?;
    Ok(create_knock_event::v1::Response::new(state))
}
