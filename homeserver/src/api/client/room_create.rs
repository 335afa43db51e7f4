//! `POST /_matrix/client/v3/createRoom`

use std::sync::Arc;

use ruma::api::client::room::{Visibility, create_room};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    config::SUPPORTED_ROOM_VERSIONS,
    service::{Services, rooms::create::CreateRoom},
};

/// Creates a room with the creator joined, the preset's rules, initial state and invites.
pub async fn create_room(
    services: Arc<Services>,
    req: Ruma<create_room::v3::Request>,
) -> ApiResult<create_room::v3::Response> {
    let limits = &services.config.limits;
    if req.body.initial_state.len() > limits.max_initial_state {
        return Err(ApiError::InvalidParam(format!(
            "initial_state has {} events; the limit is {}",
            req.body.initial_state.len(),
            limits.max_initial_state
        )));
    }
    if req.body.invite.len() > limits.max_invites {
        return Err(ApiError::InvalidParam(format!(
            "invite has {} users; the limit is {}",
            req.body.invite.len(),
            limits.max_invites
        )));
    }
    let creator = req.auth.user_id.clone();
    if let Some(name) = &req.body.room_alias_name
        && let Ok(alias) =
            ruma::OwnedRoomAliasId::try_from(format!("#{name}:{}", services.config.server_name))
    {
        let caller = req.auth.appservice.as_ref().map(|a| a.id.as_str());
        services.appservices.check_alias(&alias, caller)?;
    }
    // The policy service sees the whole request (initial state, power levels, invites,
    // visibility) before anything is written.
    let room_config = req.json_body.clone().unwrap_or_else(|| serde_json::json!({}));
    services.policy_checks.user_may_create_room(&creator, room_config).await?;
    let mut body = req.body;
    services.policy_prepare_room(&creator, &mut body)?;
    let request = Arc::new(body);
    let (s, c, r) = (services.clone(), creator.clone(), request.clone());
    let room_id = tokio::task::spawn_blocking(move || {
        let (services, creator, request) = (s, c, r);
        let account = services.accounts.account(&creator)?.unwrap_or_default();
        services
            .rooms
            .create_room_without_invites(
                &creator,
                CreateRoom {
                    request: &request,
                    default_version: &services.config.rooms.default_version,
                    supported: &SUPPORTED_ROOM_VERSIONS,
                    displayname: account.displayname,
                    avatar_url: account.avatar_url,
                },
            )
            .map_err(ApiError::from)
            .and_then(|room_id| {
                services.policy_room_created(&room_id, &creator)?;
                Ok(room_id)
            })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    tracing::info!(%room_id, "room created");
    // Invites and publication are checked once the room has an ID, as when they come later; a
    // refusal leaves the room created without them and is the answer.
    check_invites_and_publication(&services, &creator, &room_id, &request).await?;
    // Users of other servers are invited over federation, after the local invites.
    let server = &services.config.server_name;
    let remote: Vec<ruma::OwnedUserId> = if services.config.federation.enabled {
        request.invite.iter().filter(|u| u.server_name() != server).cloned().collect()
    } else {
        Vec::new()
    };
    let local_request = if remote.is_empty() {
        request.clone()
    } else {
        let mut local = (*request).clone();
        local.invite.retain(|u| u.server_name() == server);
        Arc::new(local)
    };
    let is_direct = request.is_direct;
    let (s, id, c) = (services.clone(), room_id.clone(), creator.clone());
    super::membership::blocking(move || Ok(s.rooms.invite_and_publish(&id, &c, &local_request)?))
        .await?;
    for invitee in remote {
        services.invite_remote(&creator, &room_id, &invitee, None, is_direct).await?;
    }
    Ok(create_room::v3::Response::new(room_id))
}

/// The policy checks of the invites and the directory listing a `createRoom` asks for.
async fn check_invites_and_publication(
    services: &Arc<Services>,
    creator: &ruma::UserId,
    room_id: &ruma::RoomId,
    request: &create_room::v3::Request,
) -> ApiResult<()> {
    let policy = &services.policy_checks;
    let invites =
        request.invite.iter().map(|invitee| services.policy_may_invite(creator, invitee, room_id));
    for result in futures_util::future::join_all(invites).await {
        result?;
    }
    if request.visibility == Visibility::Public {
        policy.user_may_publish_room(creator, room_id).await?;
    }
    Ok(())
}
