//! Other servers asking for this server's users' devices and keys: `/user/devices/{userId}`,
//! `/user/keys/query` and `/user/keys/claim`.

use std::sync::Arc;

use ruma::api::federation::{
    device::get_devices,
    keys::{claim_keys, get_keys},
};

use crate::{
    api::{client::membership::blocking, error::ApiResult, limits, ruma::Ruma},
    service::Services,
};

/// `GET /_matrix/federation/v1/user/devices/{userId}`
pub async fn devices(
    services: Arc<Services>,
    req: Ruma<get_devices::v1::Request>,
) -> ApiResult<get_devices::v1::Response> {
    blocking(move || Ok(services.federation_user_devices(&req.body.user_id)?)).await
}

/// `POST /_matrix/federation/v1/user/keys/query`
pub async fn query(
    services: Arc<Services>,
    req: Ruma<get_keys::v1::Request>,
) -> ApiResult<get_keys::v1::Response> {
    let users = req.body.device_keys.len();
    let limit = services.config.limits.max_keys_query_users;
    limits::at_most(users, limit, "users in device_keys", "max_keys_query_users")?;
    blocking(move || Ok(services.federation_query_keys(&req.body.device_keys)?)).await
}

/// `POST /_matrix/federation/v1/user/keys/claim`: one key per device, never the same one-time
/// key twice.
pub async fn claim(
    services: Arc<Services>,
    req: Ruma<claim_keys::v1::Request>,
) -> ApiResult<claim_keys::v1::Response> {
    let devices = req.body.one_time_keys.values().map(|devices| devices.len()).sum();
    let limit = services.config.limits.max_keys_claim_devices;
    limits::at_most(devices, limit, "devices in one_time_keys", "max_keys_claim_devices")?;
    blocking(move || Ok(services.federation_claim_keys(&req.body.one_time_keys)?)).await
}
