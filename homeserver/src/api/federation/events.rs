//! Room reads for other servers: `/event`, `/state`, `/state_ids`, `/event_auth`, `/backfill`
//! and `/get_missing_events`. The checks (server ACL, the origin's presence in the room, history
//! visibility for a server) are in `service/federation/reads.rs`.

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch,
    api::federation::{
        authorization::get_event_authorization,
        backfill::get_backfill,
        event::{get_event, get_missing_events, get_room_state, get_room_state_ids},
    },
};

use crate::{
    api::{
        client::membership::blocking,
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, federation::reads::ReadError},
};

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Room(e) => e.into(),
            ReadError::Forbidden(m) => Self::Forbidden(m),
            ReadError::NotFound(m) => Self::NotFound(m),
            ReadError::InvalidParam(m) => Self::InvalidParam(m),
        }
    }
}

/// `GET /_matrix/federation/v1/event/{eventId}`
pub async fn event(
    services: Arc<Services>,
    req: Ruma<get_event::v1::Request>,
) -> ApiResult<get_event::v1::Response> {
    blocking(move || {
        let pdu = services.federation_event(&req.auth, &req.body.event_id)?;
        Ok(get_event::v1::Response::new(
            services.globals.server_name.clone(),
            MilliSecondsSinceUnixEpoch::now(),
            pdu,
        ))
    })
    .await
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=`: the state before the event and its
/// auth chain, as full PDUs.
pub async fn state(
    services: Arc<Services>,
    req: Ruma<get_room_state::v1::Request>,
) -> ApiResult<get_room_state::v1::Response> {
    blocking(move || {
        let (state, auth_chain) =
            services.federation_state_at(&req.auth, &req.body.room_id, &req.body.event_id)?;
        Ok(get_room_state::v1::Response::new(
            auth_chain.iter().map(|e| e.stored.json.clone()).collect(),
            state.iter().map(|e| e.stored.json.clone()).collect(),
        ))
    })
    .await
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`: the same as event IDs.
pub async fn state_ids(
    services: Arc<Services>,
    req: Ruma<get_room_state_ids::v1::Request>,
) -> ApiResult<get_room_state_ids::v1::Response> {
    blocking(move || {
        let (state, auth_chain) =
            services.federation_state_at(&req.auth, &req.body.room_id, &req.body.event_id)?;
        Ok(get_room_state_ids::v1::Response::new(
            auth_chain.iter().map(|e| e.event_id().clone()).collect(),
            state.iter().map(|e| e.event_id().clone()).collect(),
        ))
    })
    .await
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
pub async fn event_auth(
    services: Arc<Services>,
    req: Ruma<get_event_authorization::v1::Request>,
) -> ApiResult<get_event_authorization::v1::Response> {
    blocking(move || {
        let chain =
            services.federation_event_auth(&req.auth, &req.body.room_id, &req.body.event_id)?;
        Ok(get_event_authorization::v1::Response::new(chain))
    })
    .await
}

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`
pub async fn backfill(
    services: Arc<Services>,
    req: Ruma<get_backfill::v1::Request>,
) -> ApiResult<get_backfill::v1::Response> {
    if req.body.v.is_empty() {
        return Err(ApiError::MissingParam("backfill needs at least one event in `v`".into()));
    }
    blocking(move || {
        let limit = usize::try_from(u64::from(req.body.limit)).unwrap_or(usize::MAX);
        let pdus =
            services.federation_backfill(&req.auth, &req.body.room_id, &req.body.v, limit)?;
        Ok(get_backfill::v1::Response::new(
            services.globals.server_name.clone(),
            MilliSecondsSinceUnixEpoch::now(),
            pdus,
        ))
    })
    .await
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`
pub async fn missing_events(
    services: Arc<Services>,
    req: Ruma<get_missing_events::v1::Request>,
) -> ApiResult<get_missing_events::v1::Response> {
    blocking(move || {
        let body = &req.body;
        let events = services.federation_missing_events(
            &req.auth,
            &body.room_id,
            &body.earliest_events,
            &body.latest_events,
            usize::try_from(u64::from(body.limit)).unwrap_or(usize::MAX),
            u64::from(body.min_depth),
        )?;
        Ok(get_missing_events::v1::Response::new(events))
    })
    .await
}
