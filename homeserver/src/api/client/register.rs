//! Registration: `/register` with user-interactive auth, `/register/available`.

use std::sync::Arc;

use ruma::api::client::account::{get_username_availability, register};

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, accounts::new_token, rate_limit::Action},
};

/// `POST /_matrix/client/v3/register`
pub async fn register(
    services: Arc<Services>,
    req: Ruma<register::v3::Request>,
) -> ApiResult<register::v3::Response> {
    services.rate_limits.check(Action::Register, None, req.client_ip.as_deref())?;
    let body = req.body;
    if body.kind == register::RegistrationKind::Guest {
        return Err(ApiError::Forbidden("guest access is not enabled on this server".into()));
    }
    let config = &services.config.registration;
    let mut flows = Vec::new();
    if config.open {
        flows.push(Stage::Dummy);
    }
    if !config.tokens.is_empty() {
        flows.push(Stage::RegistrationToken(&config.tokens));
    }
    if flows.is_empty() {
        return Err(ApiError::Forbidden("registration is disabled on this server".into()));
    }
    // Check the name before the client goes through the stages.
    let localpart = match &body.username {
        Some(name) => name.to_lowercase(),
        None => new_token()[..12].to_lowercase().replace(['-', '_'], "x"),
    };
    let user_id = services.accounts.user_id(&localpart)?;
    if services.accounts.exists(&user_id)? {
        return Err(ApiError::UserInUse);
    }
    uiaa::require(&services, "register", body.auth.as_ref(), &flows)?;
    let Some(password) = &body.password else {
        return Err(ApiError::MissingParam("a password is required".into()));
    };
    // Password hashing is slow by design: off the async workers.
    let (s, u, p) = (services.clone(), user_id.clone(), password.clone());
    super::membership::blocking(move || Ok(s.accounts.register(&u, Some(&p), false)?)).await?;
    tracing::info!(%user_id, "registered");
    let mut response = register::v3::Response::new(user_id.clone());
    if !body.inhibit_login {
        let (device_id, token) = services.accounts.create_device(
            &user_id,
            body.device_id.clone(),
            body.initial_device_display_name.clone(),
            req.client_ip,
        )?;
        response.device_id = Some(device_id);
        response.access_token = Some(token);
    }
    Ok(response)
}

/// `GET /_matrix/client/v3/register/available`
pub async fn available(
    services: Arc<Services>,
    req: Ruma<get_username_availability::v3::Request>,
) -> ApiResult<get_username_availability::v3::Response> {
    let user_id = services.accounts.user_id(&req.body.username.to_lowercase())?;
    if services.accounts.exists(&user_id)? {
        return Err(ApiError::UserInUse);
    }
    Ok(get_username_availability::v3::Response::new(true))
}
