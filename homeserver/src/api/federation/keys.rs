//! The key endpoints: this server's keys (`/_matrix/key/v2/server`) and this server as a notary
//! for other servers' keys (`/_matrix/key/v2/query`).

use std::sync::Arc;

use ruma::api::federation::discovery::{
    get_remote_server_keys, get_remote_server_keys_batch, get_server_keys,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, federation::keys::minimum_valid_until},
};

/// `GET /_matrix/key/v2/server`
pub async fn server_keys(
    services: Arc<Services>,
    _: Ruma<get_server_keys::v2::Request>,
) -> ApiResult<get_server_keys::v2::Response> {
    let keys = services.server_keys().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(get_server_keys::v2::Response::new(keys))
}

/// `GET /_matrix/key/v2/query/{serverName}`: the server's keys, countersigned by this server.
pub async fn query_keys(
    services: Arc<Services>,
    request: Ruma<get_remote_server_keys::v2::Request>,
) -> ApiResult<get_remote_server_keys::v2::Response> {
    let own = services.server_keys().map_err(|e| ApiError::Internal(e.to_string()))?;
    let minimum = request.body.minimum_valid_until_ts.0.into();
    let keys = services.federation.notary_keys(&request.body.server_name, minimum, own).await?;
    Ok(get_remote_server_keys::v2::Response::new(keys))
}

/// `POST /_matrix/key/v2/query`: the keys of several servers, countersigned by this server.
/// Servers that are not partners, or whose keys cannot be had, are left out.
pub async fn query_keys_batch(
    services: Arc<Services>,
    request: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> ApiResult<get_remote_server_keys_batch::v2::Response> {
    let mut keys = Vec::new();
    for (server, criteria) in &request.body.server_keys {
        let own = services.server_keys().map_err(|e| ApiError::Internal(e.to_string()))?;
        let minimum = minimum_valid_until(criteria);
        match services.federation.notary_keys(server, minimum, own).await {
            Ok(found) => keys.extend(found),
            Err(e) => tracing::debug!(error = %e, %server, "notary query left out"),
        }
    }
    Ok(get_remote_server_keys_batch::v2::Response::new(keys))
}
