//! Registration: `/register` with user-interactive auth, `/register/available`.

use std::sync::Arc;

use ruma::api::client::account::{
    check_registration_token_validity, get_username_availability, register,
};

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        accounts::{NewTokens, new_token},
        appservice::Appservice,
        policy_check::RequestInfo,
        rate_limit::Action,
        threepids::Purpose,
    },
};

/// `POST /_matrix/client/v3/register`
pub async fn register(
    services: Arc<Services>,
    req: Ruma<register::v3::Request>,
) -> ApiResult<register::v3::Response> {
    if let Some(service) = req.auth {
        return register_appservice_user(services, service, req.body, req.client_ip);
    }
    if req.body.login_type == Some(register::LoginType::ApplicationService) {
        return Err(ApiError::MissingToken);
    }
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
    if services.policy.enabled() {
        // With the policy on, a registration token is an invitation: it gives the tier and unit.
        flows.push(Stage::Invitation);
    } else if !config.tokens.is_empty() {
        flows.push(Stage::RegistrationToken(&config.tokens));
    }
    if services.threepids.email_enabled() {
        // A verified address: with the policy on, its domain gives the tier and unit.
        flows.push(Stage::EmailIdentity(Purpose::Registration));
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
    services.appservices.check_user_id(&user_id, None)?;
    uiaa::require(&services, "register", body.auth.as_ref(), &flows)?;
    let Some(password) = &body.password else {
        return Err(ApiError::MissingParam("a password is required".into()));
    };
    let request_info =
        RequestInfo(req.user_agent.clone(), req.client_ip.clone().unwrap_or_default());
    let token = match &body.auth {
        Some(ruma::api::client::uiaa::AuthData::RegistrationToken(given)) => {
            Some(given.token.clone())
        }
        _ => None,
    };
    let email = verified_email(&services, body.auth.as_ref())?;
    services
        .policy_checks
        .check_registration_for_spam(
            body.username.as_deref(),
            request_info,
            token.as_deref(),
            email.as_ref().map(|e| (e.address.as_str(), e.validated_ms)),
        )
        .await?;
    if services.policy.enabled() {
        // The invitation's use is taken (and the user recorded with its tier and unit) before
        // the account exists, so that two registrations cannot share a single-use token.
        let (s, u, address) =
            (services.clone(), user_id.clone(), email.as_ref().map(|e| e.address.clone()));
        super::membership::blocking(move || {
            match (token, address) {
                (Some(token), _) => s.policy_register_with_invitation(&u, &token).map(drop),
                (None, Some(address)) => s.policy_register_with_email(&u, &address).map(drop),
                (None, None) => Ok(()),
            }
            .map_err(ApiError::from)
        })
        .await?;
    }
    if let Some(email) = &email {
        services.threepids.bind(&user_id, &email.address, email.validated_ms)?;
    }
    // Password hashing is slow by design: off the async workers.
    let (s, u, p) = (services.clone(), user_id.clone(), password.clone());
    let created =
        super::membership::blocking(move || Ok(s.accounts.register(&u, Some(&p), false)?)).await;
    if let Err(error) = created {
        if let Some(email) = &email {
            services.threepids.unbind(&user_id, &email.address)?;
        }
        return Err(error);
    }
    if let Some(email) = &email {
        services.threepids.finish(&email.sid)?;
    }
    tracing::info!(%user_id, "registered");
    let mut response = register::v3::Response::new(user_id.clone());
    if !body.inhibit_login {
        log_in(&services, &body, req.client_ip, &mut response)?;
    }
    Ok(response)
}

/// An address verified for this registration (`m.login.email.identity`).
struct VerifiedEmail {
    sid: String,
    address: String,
    validated_ms: u64,
}

/// The address of the e-mail stage, if the registration went through it; refused if another
/// account took the address meanwhile.
fn verified_email(
    services: &Services,
    auth: Option<&ruma::api::client::uiaa::AuthData>,
) -> ApiResult<Option<VerifiedEmail>> {
    let Some(ruma::api::client::uiaa::AuthData::EmailIdentity(given)) = auth else {
        return Ok(None);
    };
    let creds = &given.thirdparty_id_creds;
    let (address, validated_ms) = services.threepids.validated_email(
        creds.sid.as_str(),
        creds.client_secret.as_str(),
        Purpose::Registration,
    )?;
    if services.threepids.owner(&address)?.is_some() {
        return Err(ApiError::ThreepidInUse(format!("{address} is already used by an account")));
    }
    Ok(Some(VerifiedEmail { sid: creds.sid.to_string(), address, validated_ms }))
}

/// A first device with its tokens for a new user, in the response to `/register`.
fn log_in(
    services: &Services,
    body: &register::v3::Request,
    client_ip: Option<String>,
    response: &mut register::v3::Response,
) -> ApiResult<()> {
    let lifetimes = NewTokens::from_config(&services.config.tokens, body.refresh_token);
    let issued = services.accounts.create_session(
        &response.user_id,
        body.device_id.clone(),
        body.initial_device_display_name.clone(),
        client_ip,
        &lifetimes,
    )?;
    response.device_id = Some(issued.device_id);
    response.access_token = Some(issued.access_token);
    response.refresh_token = issued.refresh_token;
    response.expires_in = issued.expires_in;
    Ok(())
}

/// Registration by an application service (`m.login.application_service`): a user of its
/// namespace, with no password and no user-interactive auth.
fn register_appservice_user(
    services: Arc<Services>,
    service: Arc<Appservice>,
    body: register::v3::Request,
    client_ip: Option<String>,
) -> ApiResult<register::v3::Response> {
    if body.login_type != Some(register::LoginType::ApplicationService) {
        return Err(ApiError::InvalidParam(
            "an application service token must be used with `\"type\": \"m.login.application_service\"`"
                .into(),
        ));
    }
    let Some(username) = &body.username else {
        return Err(ApiError::MissingParam("`username` is required".into()));
    };
    let user_id = match username.strip_prefix('@') {
        Some(_) => ruma::OwnedUserId::try_from(username.to_lowercase())
            .map_err(|e| ApiError::InvalidUsername(e.to_string()))?,
        None => services.accounts.user_id(&username.to_lowercase())?,
    };
    if user_id.server_name() != services.config.server_name {
        return Err(ApiError::InvalidUsername(format!("{user_id} is not a user of this server")));
    }
    if !service.is_user_in_namespace(&user_id) {
        return Err(ApiError::Exclusive(format!(
            "{user_id} is not in the user namespace of the application service {}",
            service.id()
        )));
    }
    services.accounts.register(&user_id, None, false)?;
    tracing::info!(%user_id, appservice = service.id(), "registered by an application service");
    let mut response = register::v3::Response::new(user_id.clone());
    if !body.inhibit_login {
        log_in(&services, &body, client_ip, &mut response)?;
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
    services.appservices.check_user_id(&user_id, None)?;
    Ok(get_username_availability::v3::Response::new(true))
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`: whether a registration
/// token (a configured one, or a policy invitation) can be used now.
pub async fn token_validity(
    services: Arc<Services>,
    req: Ruma<check_registration_token_validity::v1::Request>,
) -> ApiResult<check_registration_token_validity::v1::Response> {
    services.rate_limits.check(Action::Register, None, req.client_ip.as_deref())?;
    let token = &req.body.token;
    let valid = if services.policy.enabled() {
        services.policy_invitation(token).is_some()
    } else {
        services
            .config
            .registration
            .tokens
            .iter()
            .any(|t| super::uiaa::constant_time_eq(t.as_bytes(), token.as_bytes()))
    };
    Ok(check_registration_token_validity::v1::Response::new(valid))
}
