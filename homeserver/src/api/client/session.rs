//! Logging in and out: `/login`, `/logout`, `/logout/all`, `/account/whoami`.

use std::sync::Arc;

use ruma::{
    OwnedUserId,
    api::client::{
        account::whoami,
        session::{
            get_login_types::{self, v3::LoginType},
            login::{self, v3::LoginInfo},
            logout, logout_all,
        },
        uiaa::UserIdentifier,
    },
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, accounts::NewTokens, appservice::Appservice, policy_check::RequestInfo},
};

/// `GET /_matrix/client/v3/login`
pub async fn login_types(
    _: Arc<Services>,
    _: Ruma<get_login_types::v3::Request>,
) -> ApiResult<get_login_types::v3::Response> {
    Ok(get_login_types::v3::Response::new(vec![
        LoginType::Password(Default::default()),
        LoginType::ApplicationService(Default::default()),
    ]))
}

/// `POST /_matrix/client/v3/login`
pub async fn login(
    services: Arc<Services>,
    req: Ruma<login::v3::Request>,
) -> ApiResult<login::v3::Response> {
    let body = req.body;
    #[allow(deprecated, reason = "older clients send `user` instead of `identifier`")]
    let (identifier, legacy_user) = match &body.login_info {
        LoginInfo::Password(password) => (&password.identifier, password.user.clone()),
        LoginInfo::ApplicationService(login) => (&login.identifier, login.user.clone()),
        _ => return Err(ApiError::Unrecognized),
    };
    let is_password = matches!(body.login_info, LoginInfo::Password(_));
    let user_id = match (identifier, legacy_user) {
        (Some(UserIdentifier::Matrix(id)), _) => resolve_user(&services, &id.user)?,
        (None, Some(user)) => resolve_user(&services, &user)?,
        // An e-mail address bound to the account; an unknown or malformed one is answered as a
        // wrong password, so that logins do not tell which addresses have accounts.
        (Some(UserIdentifier::Email(email)), _) if is_password => {
            services.threepids.owner(&email.address).ok().flatten()
        }
        _ => {
            return Err(ApiError::Forbidden(
                "only user IDs and e-mail addresses identify users on this server".into(),
            ));
        }
    };
    let LoginInfo::Password(password) = &body.login_info else {
        let user_id = appservice_login_user(&services, req.auth.as_deref(), user_id)?;
        return new_session(&services, user_id, &body, req.client_ip);
    };
    let ip = req.client_ip.as_deref();
    services.rate_limits.login_attempt(ip, user_id.as_deref())?;
    // The same answer for an unknown user and a wrong password; both count for the back-off.
    let invalid = |user: Option<&ruma::UserId>| {
        services.rate_limits.login_failed(ip, user);
        ApiError::Forbidden("invalid user name or password".into())
    };
    let Some(user_id) = user_id else { return Err(invalid(None)) };
    if let Some(account) = services.accounts.account(&user_id)?
        && account.deactivated
    {
        return Err(ApiError::UserDeactivated("this account has been deactivated".into()));
    }
    // Password verification is slow by design: off the async workers.
    let (s, u, p) = (services.clone(), user_id.clone(), password.password.clone());
    let valid = super::membership::blocking(move || Ok(s.accounts.check_password(&u, &p)?)).await?;
    if !valid {
        return Err(invalid(Some(&user_id)));
    }
    services.rate_limits.login_succeeded(ip, &user_id);
    services
        .policy_checks
        .check_login_for_spam(
            &user_id,
            body.device_id.as_ref().map(|d| d.as_str()),
            body.initial_device_display_name.as_deref(),
            RequestInfo(req.user_agent.clone(), ip.unwrap_or_default().to_owned()),
        )
        .await?;
    new_session(&services, user_id, &body, req.client_ip)
}

/// The user an application service logs in as (`m.login.application_service`): one of its
/// namespace that exists.
fn appservice_login_user(
    services: &Services,
    service: Option<&Appservice>,
    user_id: Option<OwnedUserId>,
) -> ApiResult<OwnedUserId> {
    let Some(service) = service else { return Err(ApiError::MissingToken) };
    let Some(user_id) = user_id else {
        return Err(ApiError::Forbidden("the user is not a user of this server".into()));
    };
    if !service.is_user_in_namespace(&user_id) {
        return Err(ApiError::Forbidden(format!(
            "{user_id} is not in the user namespace of the application service {}",
            service.id()
        )));
    }
    match services.accounts.account(&user_id)? {
        None => Err(ApiError::Forbidden(format!("{user_id} is not registered"))),
        Some(account) if account.deactivated => {
            Err(ApiError::UserDeactivated("this account has been deactivated".into()))
        }
        Some(_) => Ok(user_id),
    }
}

/// A new device and access token for a user who proved who they are.
fn new_session(
    services: &Services,
    user_id: OwnedUserId,
    body: &login::v3::Request,
    client_ip: Option<String>,
) -> ApiResult<login::v3::Response> {
    let lifetimes = NewTokens::from_config(&services.config.tokens, body.refresh_token);
    let issued = services.accounts.create_session(
        &user_id,
        body.device_id.clone(),
        body.initial_device_display_name.clone(),
        client_ip,
        &lifetimes,
    )?;
    tracing::info!(%user_id, device_id = %issued.device_id, "logged in");
    let mut response = login::v3::Response::new(user_id, issued.access_token, issued.device_id);
    response.refresh_token = issued.refresh_token;
    response.expires_in = issued.expires_in;
    response.well_known =
        Some(login::v3::DiscoveryInfo::new(login::v3::HomeserverInfo::new(services.base_url())));
    #[allow(deprecated, reason = "older clients still read home_server")]
    {
        response.home_server = Some(services.config.server_name.clone());
    }
    Ok(response)
}

/// A local user named by full ID or localpart; `None` if it is remote or malformed.
fn resolve_user(services: &Services, named: &str) -> ApiResult<Option<OwnedUserId>> {
    let user_id = if named.starts_with('@') {
        OwnedUserId::try_from(named.to_lowercase()).ok()
    } else {
        services.accounts.user_id(&named.to_lowercase()).ok()
    };
    Ok(user_id.filter(|u| u.server_name() == services.config.server_name))
}

/// `POST /_matrix/client/v3/logout`
pub async fn logout(
    services: Arc<Services>,
    req: Ruma<logout::v3::Request>,
) -> ApiResult<logout::v3::Response> {
    services.remove_device(&req.auth.user_id, &req.auth.device_id)?;
    Ok(logout::v3::Response::new())
}

/// `POST /_matrix/client/v3/logout/all`
pub async fn logout_all(
    services: Arc<Services>,
    req: Ruma<logout_all::v3::Request>,
) -> ApiResult<logout_all::v3::Response> {
    services.remove_devices(&req.auth.user_id, None)?;
    Ok(logout_all::v3::Response::new())
}

/// `GET /_matrix/client/v3/account/whoami`
pub async fn whoami(
    _: Arc<Services>,
    req: Ruma<whoami::v3::Request>,
) -> ApiResult<whoami::v3::Response> {
    let mut response = whoami::v3::Response::new(req.auth.user_id, false);
    // An application service acting as a user without naming a device has none.
    if req.auth.appservice.as_ref().is_none_or(|a| a.device) {
        response.device_id = Some(req.auth.device_id);
    }
    Ok(response)
}
