//! E-mail addresses: verification by a link sent by e-mail (for registration and for adding an
//! address to an account), the addresses of an account, and the page the link opens.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    response::{Html, IntoResponse, Redirect, Response},
};
use ruma::{
    api::client::account::{
        ThirdPartyIdRemovalStatus, add_3pid, delete_3pid, get_3pids,
        request_3pid_management_token_via_email, request_password_change_token_via_email,
        request_registration_token_via_email,
    },
    thirdparty::Medium,
};
use serde::Deserialize;

use super::uiaa::{self, Stage};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rate_limit::Action, threepids::Purpose},
};

/// `POST /_matrix/client/v3/register/email/requestToken`: sends a verification link to an
/// address someone wants to register with. Refused for an address already in use and, with the
/// policy on, for one that gives no tier (such people register with an invitation).
pub async fn request_registration_token(
    services: Arc<Services>,
    req: Ruma<request_registration_token_via_email::v3::Request>,
) -> ApiResult<request_registration_token_via_email::v3::Response> {
    services.rate_limits.check(Action::Register, None, req.client_ip.as_deref())?;
    let body = req.body;
    if services.threepids.owner(&body.email)?.is_some() {
        return Err(ApiError::ThreepidInUse(format!(
            "{} is already used by an account",
            body.email
        )));
    }
    if let Some(refusal) = services.policy_refuses_email(&body.email) {
        return Err(ApiError::ThreepidDenied(refusal));
    }
    let sid = send_link(
        &services,
        &body.email,
        &body.client_secret,
        body.send_attempt,
        body.next_link.as_deref(),
        Purpose::Registration,
    )
    .await?;
    Ok(request_registration_token_via_email::v3::Response::new(sid))
}

/// `POST /_matrix/client/v3/account/3pid/email/requestToken`: sends a verification link to an
/// address the user wants to add to their account.
pub async fn request_add_token(
    services: Arc<Services>,
    req: Ruma<request_3pid_management_token_via_email::v3::Request>,
) -> ApiResult<request_3pid_management_token_via_email::v3::Response> {
    services.rate_limits.check(Action::Register, None, req.client_ip.as_deref())?;
    let body = req.body;
    if services.threepids.owner(&body.email)?.is_some() {
        return Err(ApiError::ThreepidInUse(format!(
            "{} is already used by an account",
            body.email
        )));
    }
    let sid = send_link(
        &services,
        &body.email,
        &body.client_secret,
        body.send_attempt,
        body.next_link.as_deref(),
        Purpose::AddToAccount,
    )
    .await?;
    Ok(request_3pid_management_token_via_email::v3::Response::new(sid))
}

/// `POST /_matrix/client/v3/account/password/email/requestToken`: sends a link to reset the
/// password of the account an address belongs to (a forgotten password).
pub async fn request_password_token(
    services: Arc<Services>,
    req: Ruma<request_password_change_token_via_email::v3::Request>,
) -> ApiResult<request_password_change_token_via_email::v3::Response> {
    services.rate_limits.check(Action::Register, None, req.client_ip.as_deref())?;
    let body = req.body;
    if services.threepids.owner(&body.email)?.is_none() {
        return Err(ApiError::ThreepidNotFound(format!("{} belongs to no account", body.email)));
    }
    let sid = send_link(
        &services,
        &body.email,
        &body.client_secret,
        body.send_attempt,
        body.next_link.as_deref(),
        Purpose::PasswordReset,
    )
    .await?;
    Ok(request_password_change_token_via_email::v3::Response::new(sid))
}

/// Sends the verification link of `purpose` to `email`; the session's ID.
async fn send_link(
    services: &Services,
    email: &str,
    client_secret: &ruma::ClientSecret,
    send_attempt: ruma::UInt,
    next_link: Option<&str>,
    purpose: Purpose,
) -> ApiResult<ruma::OwnedSessionId> {
    let sid = services
        .threepids
        .request_email_token(
            &services.base_url(),
            email,
            client_secret.as_str(),
            send_attempt.into(),
            next_link,
            purpose,
        )
        .await?;
    sid.try_into().map_err(|e| ApiError::Internal(format!("session ID: {e}")))
}

/// `POST /_matrix/client/v3/account/3pid/add`: binds a verified address to the account, after
/// the password (user-interactive auth).
pub async fn add(
    services: Arc<Services>,
    req: Ruma<add_3pid::v3::Request>,
) -> ApiResult<add_3pid::v3::Response> {
    let user = req.auth.user_id.clone();
    uiaa::require(&services, "add_3pid", req.body.auth.as_ref(), &[Stage::Password(&user)])?;
    let sid = req.body.sid.as_str();
    let (email, validated) = services.threepids.validated_email(
        sid,
        req.body.client_secret.as_str(),
        Purpose::AddToAccount,
    )?;
    services.threepids.bind(&user, &email, validated)?;
    services.threepids.finish(sid)?;
    tracing::info!(%user, "e-mail address added");
    Ok(add_3pid::v3::Response::new())
}

/// `POST /_matrix/client/v3/account/3pid/delete`: removes an address from the account.
pub async fn delete(
    services: Arc<Services>,
    req: Ruma<delete_3pid::v3::Request>,
) -> ApiResult<delete_3pid::v3::Response> {
    if req.body.medium != Medium::Email {
        return Err(ApiError::ThreepidMediumNotSupported(
            "this server binds e-mail addresses only".into(),
        ));
    }
    let user = &req.auth.user_id;
    if !services.threepids.unbind(user, &req.body.address)? {
        return Err(ApiError::ThreepidNotFound(format!(
            "{} is not an address of your account",
            req.body.address
        )));
    }
    Ok(delete_3pid::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport))
}

/// `GET /_matrix/client/v3/account/3pid`: the e-mail addresses of the account.
pub async fn list(
    services: Arc<Services>,
    req: Ruma<get_3pids::v3::Request>,
) -> ApiResult<get_3pids::v3::Response> {
    Ok(get_3pids::v3::Response::new(services.threepids.of_user(&req.auth.user_id)?))
}

/// The query of a verification link.
#[derive(Deserialize)]
pub struct ValidateQuery {
    sid: String,
    client_secret: String,
    token: String,
}

/// `GET /_relais/email/validate`: the page a verification link opens. It verifies the address
/// and sends the person back to their client (its `next_link`) or says they can go back to it.
pub async fn validate_link(
    State(services): State<Arc<Services>>,
    Query(query): Query<ValidateQuery>,
) -> Response {
    match services.threepids.validate(&query.sid, &query.client_secret, &query.token) {
        Ok(Some(next)) if next.starts_with("https://") || next.starts_with("http://") => {
            Redirect::to(&next).into_response()
        }
        Ok(_) => page(
            "Address confirmed",
            "Your e-mail address is confirmed. You can go back to your Matrix app.",
        )
        .into_response(),
        Err(error) => {
            let page = page("Address not confirmed", &error.to_string());
            (http::StatusCode::BAD_REQUEST, page).into_response()
        }
    }
}

fn page(title: &str, text: &str) -> Html<String> {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body><h1>{}</h1><p>{}</p></body></html>",
        escape(title),
        escape(title),
        escape(text)
    ))
}
