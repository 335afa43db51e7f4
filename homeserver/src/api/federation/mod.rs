//! The Server-Server API endpoints (`docs/federation.md`). Requests of type
//! `ServerSignatures` are authenticated by [`auth`]: the handler's `Ruma<T>.auth` is the verified
//! origin server.

pub mod auth;
pub mod directory;
pub mod events;
pub mod keys;
pub mod media;
pub mod membership;
pub mod query;
pub mod send;
pub mod user_keys;

use std::sync::Arc;

use axum::Router;
use ruma::api::federation::discovery::{discover_homeserver, get_server_version};

use super::{
    error::{ApiError, ApiResult},
    ruma::{Ruma, RumaRouter},
};
use crate::service::Services;

/// The federation routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .ruma_route(keys::server_keys)
        .ruma_route(keys::query_keys)
        .ruma_route(keys::query_keys_batch)
        .ruma_route(send::send_transaction)
        .ruma_route(membership::make_join)
        .ruma_route(membership::send_join)
        .ruma_route(membership::make_leave)
        .ruma_route(membership::send_leave)
        .ruma_route(membership::invite)
        .ruma_route(membership::make_knock)
        .ruma_route(membership::send_knock)
        .ruma_route(events::event)
        .ruma_route(events::state)
        .ruma_route(events::state_ids)
        .ruma_route(events::event_auth)
        .ruma_route(events::backfill)
        .ruma_route(events::missing_events)
        .ruma_route(query::profile)
        .ruma_route(query::directory)
        .ruma_route(user_keys::devices)
        .ruma_route(user_keys::query)
        .ruma_route(user_keys::claim)
        .ruma_route(directory::public_rooms)
        .ruma_route(directory::public_rooms_filtered)
        .ruma_route(directory::hierarchy)
        .ruma_route(media::download)
        .ruma_route(media::thumbnail)
        .ruma_route(version)
        .ruma_route(well_known_server)
}

/// `GET /_matrix/federation/v1/version`
async fn version(
    _: Arc<Services>,
    _: Ruma<get_server_version::v1::Request>,
) -> ApiResult<get_server_version::v1::Response> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Relais".to_owned());
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = get_server_version::v1::Response::new();
    response.server = Some(server);
    Ok(response)
}

/// `GET /.well-known/matrix/server`: where other servers reach this one, when
/// `federation.well_known_server` delegates it (e.g. to `matrix.example.org:443`).
async fn well_known_server(
    services: Arc<Services>,
    _: Ruma<discover_homeserver::Request>,
) -> ApiResult<discover_homeserver::Response> {
    let delegated = &services.config.federation.well_known_server;
    if delegated.is_empty() {
        return Err(ApiError::NotFound("this server does not delegate federation".into()));
    }
    let server = ruma::OwnedServerName::try_from(delegated.as_str())
        .map_err(|e| ApiError::Internal(format!("federation.well_known_server: {e}")))?;
    Ok(discover_homeserver::Response::new(server))
}
