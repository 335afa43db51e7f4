//! Account management: `/account/password`, `/account/deactivate`.

use std::sync::Arc;

use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate};

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `POST /_matrix/client/v3/account/password`
pub async fn change_password(
    services: Arc<Services>,
    req: Ruma<change_password::v3::Request>,
) -> ApiResult<change_password::v3::Response> {
    // Without a token the spec lets UIA identify the user; this server asks for the token.
    let session = req.auth.ok_or(ApiError::MissingToken)?;
    let user = &session.user_id;
    uiaa::require(
        &services,
        &format!("password:{user}"),
        req.body.auth.as_ref(),
        &[Stage::Password(user)],
    )?;
    services.accounts.set_password(user, &req.body.new_password)?;
    if req.body.logout_devices {
        services.remove_devices(user, Some(&session.device_id))?;
    }
    Ok(change_password::v3::Response::new())
}

/// `POST /_matrix/client/v3/account/deactivate`
pub async fn deactivate(
    services: Arc<Services>,
    req: Ruma<deactivate::v3::Request>,
) -> ApiResult<deactivate::v3::Response> {
    let session = req.auth.ok_or(ApiError::MissingToken)?;
    let user = &session.user_id;
    uiaa::require(
        &services,
        &format!("deactivate:{user}"),
        req.body.auth.as_ref(),
        &[Stage::Password(user)],
    )?;
    let services2 = services.clone();
    let user2 = user.clone();
    tokio::task::spawn_blocking(move || services2.leave_all_rooms(&user2))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    services.remove_devices(user, None)?;
    services.accounts.deactivate(user)?;
    services.threepids.unbind_all(user)?;
    tracing::info!(%user, "account deactivated");
    Ok(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport))
}
