//! Profiles: display name and avatar, propagated to the user's member events. Other servers'
//! users' profiles are asked of their server (`query/profile`) when this one federates.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{
    OwnedMxcUri,
    api::client::profile::{
        get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
    },
    profile::ProfileFieldName,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, accounts::Account},
};

fn account(services: &Services, user: &ruma::UserId) -> ApiResult<Account> {
    match services.accounts.account(user)? {
        Some(account) if !account.deactivated => Ok(account),
        _ => Err(ApiError::NotFound("profile not found".into())),
    }
}

fn owner_only(user: &ruma::UserId, target: &ruma::UserId) -> ApiResult<()> {
    if user == target {
        Ok(())
    } else {
        Err(ApiError::Forbidden("you can only change your own profile".into()))
    }
}

/// A remote user's profile (or one field of it) from their server, when this one federates.
async fn remote_profile(
    services: &Services,
    user: &ruma::UserId,
    field: Option<ProfileFieldName>,
) -> ApiResult<Option<BTreeMap<String, serde_json::Value>>> {
    if user.server_name() == services.globals.server_name || !services.federation_enabled() {
        return Ok(None);
    }
    Ok(Some(services.remote_profile(user, field).await?))
}

/// `GET /_matrix/client/v3/profile/{userId}`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_profile::v3::Request>,
) -> ApiResult<get_profile::v3::Response> {
    if let Some(profile) = remote_profile(&services, &req.body.user_id, None).await? {
        let mut response = get_profile::v3::Response::new();
        for (field, value) in profile {
            response.set(field, value);
        }
        return Ok(response);
    }
    services.provision_appservice_user(&req.body.user_id).await?;
    let account = account(&services, &req.body.user_id)?;
    let mut response = get_profile::v3::Response::new();
    if let Some(name) = account.displayname {
        response.set("displayname".into(), name.into());
    }
    if let Some(url) = account.avatar_url {
        response.set("avatar_url".into(), url.into());
    }
    Ok(response)
}

/// `GET /_matrix/client/v3/profile/{userId}/displayname`
pub async fn get_displayname(
    services: Arc<Services>,
    req: Ruma<get_display_name::v3::Request>,
) -> ApiResult<get_display_name::v3::Response> {
    let field = Some(ProfileFieldName::DisplayName);
    if let Some(profile) = remote_profile(&services, &req.body.user_id, field).await? {
        let mut response = get_display_name::v3::Response::new(None);
        response.displayname =
            profile.get("displayname").and_then(|v| v.as_str()).map(str::to_owned);
        return Ok(response);
    }
    let account = account(&services, &req.body.user_id)?;
    let mut response = get_display_name::v3::Response::new(None);
    response.displayname = account.displayname;
    Ok(response)
}

/// `PUT /_matrix/client/v3/profile/{userId}/displayname`
pub async fn set_displayname(
    services: Arc<Services>,
    req: Ruma<set_display_name::v3::Request>,
) -> ApiResult<set_display_name::v3::Response> {
    owner_only(&req.auth.user_id, &req.body.user_id)?;
    let name = req.body.displayname.clone().filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.len() > 256) {
        return Err(ApiError::InvalidParam("display names are limited to 256 bytes".into()));
    }
    let user = req.auth.user_id.clone();
    tokio::task::spawn_blocking(move || services.update_profile(&user, Some(name), None))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(set_display_name::v3::Response::new())
}

/// `GET /_matrix/client/v3/profile/{userId}/avatar_url`
pub async fn get_avatar(
    services: Arc<Services>,
    req: Ruma<get_avatar_url::v3::Request>,
) -> ApiResult<get_avatar_url::v3::Response> {
    let field = Some(ProfileFieldName::AvatarUrl);
    if let Some(profile) = remote_profile(&services, &req.body.user_id, field).await? {
        let mut response = get_avatar_url::v3::Response::new(None);
        response.avatar_url =
            profile.get("avatar_url").and_then(|v| v.as_str()).map(OwnedMxcUri::from);
        return Ok(response);
    }
    let account = account(&services, &req.body.user_id)?;
    let mut response = get_avatar_url::v3::Response::new(None);
    response.avatar_url = account.avatar_url.map(OwnedMxcUri::from);
    Ok(response)
}

/// `PUT /_matrix/client/v3/profile/{userId}/avatar_url`
pub async fn set_avatar(
    services: Arc<Services>,
    req: Ruma<set_avatar_url::v3::Request>,
) -> ApiResult<set_avatar_url::v3::Response> {
    owner_only(&req.auth.user_id, &req.body.user_id)?;
    let url = req.body.avatar_url.as_ref().map(|u| u.to_string()).filter(|u| !u.is_empty());
    let user = req.auth.user_id.clone();
    tokio::task::spawn_blocking(move || services.update_profile(&user, None, Some(url)))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(set_avatar_url::v3::Response::new())
}
