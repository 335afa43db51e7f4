//! Account management: `/account/password` (also a forgotten password, through a verified
//! e-mail address), `/account/deactivate`.

use std::sync::Arc;

use ruma::api::client::{
    account::{ThirdPartyIdRemovalStatus, change_password, deactivate},
    uiaa::AuthData,
};

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, threepids::Purpose},
};

/// `POST /_matrix/client/v3/account/password`
pub async fn change_password(
    services: Arc<Services>,
    req: Ruma<change_password::v3::Request>,
) -> ApiResult<change_password::v3::Response> {
    // Without a token, the user is the owner of an address verified by e-mail (a forgotten
    // password).
    let Some(session) = req.auth else { return reset_password(&services, req.body).await };
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

/// `POST /account/password` without an access token: the `m.login.email.identity` stage names
/// the account through its verified address; its password changes and, if asked, every session
/// ends.
async fn reset_password(
    services: &Arc<Services>,
    body: change_password::v3::Request,
) -> ApiResult<change_password::v3::Response> {
    if !services.threepids.email_enabled() {
        return Err(ApiError::MissingToken);
    }
    let flows = [Stage::EmailIdentity(Purpose::PasswordReset)];
    uiaa::require(services, "password_reset", body.auth.as_ref(), &flows)?;
    let Some(AuthData::EmailIdentity(given)) = &body.auth else {
        return Err(ApiError::MissingToken);
    };
    let creds = &given.thirdparty_id_creds;
    let (sid, secret) = (creds.sid.as_str(), creds.client_secret.as_str());
    let (email, _) = services.threepids.validated_email(sid, secret, Purpose::PasswordReset)?;
    let user = services
        .threepids
        .owner(&email)?
        .ok_or_else(|| ApiError::ThreepidNotFound(format!("{email} belongs to no account")))?;
    if services.accounts.account(&user)?.is_none_or(|a| a.deactivated) {
        return Err(ApiError::UserDeactivated(format!("{user} is deactivated")));
    }
    let (s, u, p) = (services.clone(), user.clone(), body.new_password.clone());
    super::membership::blocking(move || Ok(s.accounts.set_password(&u, &p)?)).await?;
    if body.logout_devices {
        services.remove_devices(&user, None)?;
    }
    services.threepids.finish(sid)?;
    tracing::info!(%user, "password reset through a verified e-mail address");
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
