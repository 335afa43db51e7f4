//! Devices: list, get, rename, delete (with user-interactive auth).

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::client::device::{
        self as spec, delete_device, delete_devices, get_device, get_devices, update_device,
    },
};

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        limits,
        ruma::Ruma,
    },
    service::{
        Services,
        accounts::{Device, Session},
    },
};

/// Whether the caller is an application service that manages its users' devices itself (MSC4190):
/// it creates them with `PUT /devices/{deviceId}` and deletes them without user-interactive auth,
/// since its users have no password to give.
fn manages_devices(services: &Services, session: &Session) -> bool {
    session
        .appservice
        .as_ref()
        .and_then(|caller| services.appservices.by_id(&caller.id))
        .is_some_and(|service| service.features.device_management)
}

/// Deleting devices needs the user's password (user-interactive auth), except from a service
/// that manages its users' devices.
fn require_password_unless_managed(
    services: &Services,
    session: &Session,
    auth: Option<&ruma::api::client::uiaa::AuthData>,
) -> ApiResult<()> {
    if manages_devices(services, session) {
        return Ok(());
    }
    let user = &session.user_id;
    uiaa::require(services, &format!("delete_devices:{user}"), auth, &[Stage::Password(user)])
}

fn to_spec(device: Device) -> spec::Device {
    let mut out = spec::Device::new(device.device_id);
    out.display_name = device.display_name;
    out.last_seen_ip = device.last_seen_ip;
    out.last_seen_ts = device.last_seen_ts.and_then(UInt::new).map(MilliSecondsSinceUnixEpoch);
    out
}

/// `GET /_matrix/client/v3/devices`
pub async fn list(
    services: Arc<Services>,
    req: Ruma<get_devices::v3::Request>,
) -> ApiResult<get_devices::v3::Response> {
    let devices = services.accounts.devices(&req.auth.user_id)?.into_iter().map(to_spec).collect();
    Ok(get_devices::v3::Response::new(devices))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_device::v3::Request>,
) -> ApiResult<get_device::v3::Response> {
    let device = services
        .accounts
        .device(&req.auth.user_id, &req.body.device_id)?
        .ok_or_else(|| ApiError::NotFound("no such device".into()))?;
    Ok(get_device::v3::Response::new(to_spec(device)))
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
pub async fn update(
    services: Arc<Services>,
    req: Ruma<update_device::v3::Request>,
) -> ApiResult<update_device::v3::Response> {
    if manages_devices(&services, &req.auth)
        && services.accounts.device(&req.auth.user_id, &req.body.device_id)?.is_none()
    {
        // MSC4190: a service that manages its users' devices creates them this way; the access
        // token that comes with a device is never handed out (the service uses its own).
        services.accounts.create_device(
            &req.auth.user_id,
            Some(req.body.device_id.clone()),
            req.body.display_name.clone(),
            None,
        )?;
        return Ok(update_device::v3::Response::new());
    }
    match services.accounts.rename_device(
        &req.auth.user_id,
        &req.body.device_id,
        req.body.display_name.clone(),
    ) {
        Ok(()) => Ok(update_device::v3::Response::new()),
        Err(crate::service::accounts::AccountError::NotFound) => {
            Err(ApiError::NotFound("no such device".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}`
pub async fn delete(
    services: Arc<Services>,
    req: Ruma<delete_device::v3::Request>,
) -> ApiResult<delete_device::v3::Response> {
    let user = &req.auth.user_id;
    if services.accounts.device(user, &req.body.device_id)?.is_none() {
        return Err(ApiError::NotFound("no such device".into()));
    }
    require_password_unless_managed(&services, &req.auth, req.body.auth.as_ref())?;
    services.remove_device(user, &req.body.device_id)?;
    Ok(delete_device::v3::Response::new())
}

/// `POST /_matrix/client/v3/delete_devices`
pub async fn delete_many(
    services: Arc<Services>,
    req: Ruma<delete_devices::v3::Request>,
) -> ApiResult<delete_devices::v3::Response> {
    let limit = services.config.limits.max_delete_devices;
    limits::at_most(req.body.devices.len(), limit, "devices", "max_delete_devices")?;
    let user = &req.auth.user_id;
    require_password_unless_managed(&services, &req.auth, req.body.auth.as_ref())?;
    for device in &req.body.devices {
        services.remove_device(user, device)?;
    }
    Ok(delete_devices::v3::Response::new())
}
