//! The Server-Server API endpoints that exist: this server's keys, version and delegation.

use std::sync::Arc;

use axum::Router;
use ruma::api::federation::discovery::{discover_homeserver, get_server_keys, get_server_version};

use super::{
    error::{ApiError, ApiResult},
    ruma::{Ruma, RumaRouter},
};
use crate::service::Services;

/// The federation routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new().ruma_route(server_keys).ruma_route(version).ruma_route(well_known_server)
}

/// `GET /_matrix/key/v2/server`
async fn server_keys(
    services: Arc<Services>,
    _: Ruma<get_server_keys::v2::Request>,
) -> ApiResult<get_server_keys::v2::Response> {
    let keys = services.server_keys().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(get_server_keys::v2::Response::new(keys))
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
