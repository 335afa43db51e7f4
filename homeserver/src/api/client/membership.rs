//! Membership endpoints: join, invite, leave, forget, kick, ban, unban, joined rooms.

use std::sync::Arc;

use ruma::{
    OwnedRoomId, RoomOrAliasId,
    api::client::knock::knock_room,
    api::client::membership::{
        ban_user, forget_room, invite_user, join_room_by_id, join_room_by_id_or_alias,
        joined_rooms, kick_user, leave_room, unban_user,
    },
    events::room::member::MembershipState,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rooms::RoomError},
};

/// Runs blocking room work off the async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

/// A local room from an ID or alias.
pub(crate) fn resolve_room(services: &Services, target: &RoomOrAliasId) -> ApiResult<OwnedRoomId> {
    match <&ruma::RoomId>::try_from(target) {
        Ok(room_id) => Ok(room_id.to_owned()),
        Err(alias) => services
            .rooms
            .aliases
            .resolve(alias)?
            .map(|entry| entry.room_id)
            .ok_or_else(|| ApiError::NotFound(format!("room alias {alias} is not known"))),
    }
}

fn join_error(error: RoomError) -> ApiError {
    match error {
        RoomError::UnknownRoom(room) => ApiError::NotFound(format!(
            "room {room} is not known to this server; joining rooms on other servers needs federation"
        )),
        other => other.into(),
    }
}

/// How a user asks to enter a room.
#[derive(Clone, Copy)]
enum Entry {
    Join,
    Knock,
}

/// Joins or knocks on a local room named by ID or alias, after the join rate limit.
async fn enter_room(
    services: Arc<Services>,
    session: &crate::service::accounts::Session,
    client_ip: Option<&str>,
    target: ruma::OwnedRoomOrAliasId,
    reason: Option<String>,
    entry: Entry,
    via: Vec<ruma::OwnedServerName>,
) -> ApiResult<OwnedRoomId> {
    services.rate_limits.check(
        crate::service::rate_limit::Action::Join,
        Some(session),
        client_ip,
    )?;
    let user = session.user_id.clone();
    let mut via = via;
    let mut target = target;
    if let Ok(alias) = <&ruma::RoomAliasId>::try_from(&*target)
        && alias.server_name() != services.config.server_name
        && services.config.federation.enabled
    {
        // An alias of another server: that server says which room it names.
        let answer = services.remote_alias(alias).await?;
        via.push(alias.server_name().to_owned());
        via.extend(answer.servers);
        target = answer.room_id.into();
    }
    let room_id = check_entry_policy(&services, &user, &target, entry).await?;
    if services.config.federation.enabled && !services.rooms.exists(&room_id)? {
        // A room of other servers: join (or knock) through one of them.
        let servers = services.join_candidates(&room_id, &user, &via)?;
        return match entry {
            Entry::Join => {
                Ok(services.join_remote(&user, &room_id, &servers, reason.as_deref()).await?)
            }
            Entry::Knock => {
                services.knock_remote(&user, &room_id, &servers, reason.as_deref()).await?;
                Ok(room_id)
            }
        };
    }
    blocking(move || match entry {
        Entry::Join => services.join(&room_id, &user, reason.as_deref()).map_err(join_error),
        Entry::Knock => {
            services.knock(&room_id, &user, reason.as_deref()).map(|()| room_id).map_err(join_error)
        }
    })
    .await
}

/// Resolves the room and asks the policy service whether `user` may join (or knock on) it: all
/// joins go through here, by ID, by alias, restricted or after an invite.
async fn check_entry_policy(
    services: &Arc<Services>,
    user: &ruma::UserId,
    target: &RoomOrAliasId,
    entry: Entry,
) -> ApiResult<OwnedRoomId> {
    let (s, u, t) = (services.clone(), user.to_owned(), target.to_owned());
    let (room_id, known, is_invited) = blocking(move || {
        let room_id = resolve_room(&s, &t)?;
        let known = s.rooms.exists(&room_id)?;
        let is_invited = s
            .rooms
            .membership(&room_id, &u)?
            .is_some_and(|m| m.membership == MembershipState::Invite);
        Ok((room_id, known, is_invited))
    })
    .await?;
    // An unknown room gets its "not found" from the join itself; there is nothing to ask about.
    if known {
        let is_knock = matches!(entry, Entry::Knock);
        services.policy_checks.user_may_join_room(user, &room_id, is_invited, is_knock).await?;
    }
    Ok(room_id)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`
pub async fn join_by_id(
    services: Arc<Services>,
    req: Ruma<join_room_by_id::v3::Request>,
) -> ApiResult<join_room_by_id::v3::Response> {
    let target = req.body.room_id.clone().into();
    let reason = req.body.reason.clone();
    let room_id = enter_room(
        services,
        &req.auth,
        req.client_ip.as_deref(),
        target,
        reason,
        Entry::Join,
        Vec::new(),
    )
    .await?;
    Ok(join_room_by_id::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`
pub async fn join_by_id_or_alias(
    services: Arc<Services>,
    req: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> ApiResult<join_room_by_id_or_alias::v3::Response> {
    let target = req.body.room_id_or_alias.clone();
    let reason = req.body.reason.clone();
    let via = req.body.via.clone();
    let room_id =
        enter_room(services, &req.auth, req.client_ip.as_deref(), target, reason, Entry::Join, via)
            .await?;
    Ok(join_room_by_id_or_alias::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}`
pub async fn knock(
    services: Arc<Services>,
    req: Ruma<knock_room::v3::Request>,
) -> ApiResult<knock_room::v3::Response> {
    let target = req.body.room_id_or_alias.clone();
    let reason = req.body.reason.clone();
    let room_id = enter_room(
        services,
        &req.auth,
        req.client_ip.as_deref(),
        target,
        reason,
        Entry::Knock,
        req.body.via.clone(),
    )
    .await?;
    Ok(knock_room::v3::Response::new(room_id))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`
pub async fn invite(
    services: Arc<Services>,
    req: Ruma<invite_user::v3::Request>,
) -> ApiResult<invite_user::v3::Response> {
    services.rate_limits.check(
        crate::service::rate_limit::Action::Invite,
        Some(&req.auth),
        req.client_ip.as_deref(),
    )?;
    let recipient = match &req.body.recipient {
        invite_user::v3::InvitationRecipient::UserId(recipient) => recipient,
        invite_user::v3::InvitationRecipient::ThirdPartyId(third) => {
            // Asked even though the invite cannot be sent yet, so that a policy answer comes
            // first and the check is in place when e-mail invites arrive.
            services
                .policy_checks
                .user_may_send_3pid_invite(
                    &req.auth.user_id,
                    third.medium.as_str(),
                    &third.address,
                    &req.body.room_id,
                )
                .await?;
            return Err(ApiError::Forbidden(
                "third-party invites are not supported by this server".into(),
            ));
        }
        _ => return Err(ApiError::BadJson("unknown kind of invite recipient".into())),
    };
    let invitee = recipient.user_id.clone();
    services.provision_appservice_user(&invitee).await?;
    let reason = recipient.reason.clone();
    if invitee.server_name() == services.config.server_name
        && !services.accounts.exists(&invitee)?
    {
        return Err(ApiError::NotFound(format!("user {invitee} does not exist")));
    }
    let sender = req.auth.user_id.clone();
    services.policy_may_invite(&sender, &invitee, &req.body.room_id).await?;
    if invitee.server_name() != services.config.server_name && services.config.federation.enabled {
        services
            .invite_remote(&sender, &req.body.room_id, &invitee, reason.as_deref(), false)
            .await?;
        return Ok(invite_user::v3::Response::new());
    }
    blocking(move || {
        services.rooms.invite(&req.body.room_id, &sender, &invitee, reason.as_deref(), false)?;
        Ok(())
    })
    .await?;
    Ok(invite_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`
pub async fn leave(
    services: Arc<Services>,
    req: Ruma<leave_room::v3::Request>,
) -> ApiResult<leave_room::v3::Response> {
    let user = req.auth.user_id.clone();
    if services.config.federation.enabled
        && !services.rooms.exists(&req.body.room_id)?
        && services
            .rooms
            .membership(&req.body.room_id, &user)?
            .is_some_and(|m| m.membership == MembershipState::Invite)
    {
        // An invite to another server's room: rejected through the inviting server.
        services.leave_remote(&user, &req.body.room_id, req.body.reason.as_deref()).await?;
        return Ok(leave_room::v3::Response::new());
    }
    blocking(move || {
        match services.rooms.membership(&req.body.room_id, &user)? {
            Some(entry)
                if matches!(entry.membership, MembershipState::Leave | MembershipState::Ban) =>
            {
                return Ok(());
            }
            None => return Err(ApiError::NotFound("you are not a member of this room".into())),
            _ => {}
        }
        services.leave(&req.body.room_id, &user, req.body.reason.as_deref())?;
        Ok(())
    })
    .await?;
    Ok(leave_room::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`
pub async fn forget(
    services: Arc<Services>,
    req: Ruma<forget_room::v3::Request>,
) -> ApiResult<forget_room::v3::Response> {
    match services.rooms.membership(&req.body.room_id, &req.auth.user_id)? {
        Some(entry)
            if matches!(entry.membership, MembershipState::Leave | MembershipState::Ban) =>
        {
            services.rooms.forget(&req.body.room_id, &req.auth.user_id)?;
            Ok(forget_room::v3::Response::new())
        }
        Some(_) => Err(ApiError::BadJson("leave the room before forgetting it".into())),
        None => Err(ApiError::NotFound("you are not a member of this room".into())),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`
pub async fn kick(
    services: Arc<Services>,
    req: Ruma<kick_user::v3::Request>,
) -> ApiResult<kick_user::v3::Response> {
    let sender = req.auth.user_id.clone();
    blocking(move || {
        let body = req.body;
        match services.rooms.membership(&body.room_id, &body.user_id)? {
            Some(entry)
                if matches!(
                    entry.membership,
                    MembershipState::Join | MembershipState::Invite | MembershipState::Knock
                ) => {}
            _ => return Err(ApiError::Forbidden(format!("{} is not in the room", body.user_id))),
        }
        services.set_membership(
            &body.room_id,
            &sender,
            &body.user_id,
            MembershipState::Leave,
            body.reason.as_deref(),
        )?;
        Ok(())
    })
    .await?;
    Ok(kick_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/ban`
pub async fn ban(
    services: Arc<Services>,
    req: Ruma<ban_user::v3::Request>,
) -> ApiResult<ban_user::v3::Response> {
    let sender = req.auth.user_id.clone();
    blocking(move || {
        let body = req.body;
        services.set_membership(
            &body.room_id,
            &sender,
            &body.user_id,
            MembershipState::Ban,
            body.reason.as_deref(),
        )?;
        Ok(())
    })
    .await?;
    Ok(ban_user::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unban`
pub async fn unban(
    services: Arc<Services>,
    req: Ruma<unban_user::v3::Request>,
) -> ApiResult<unban_user::v3::Response> {
    let sender = req.auth.user_id.clone();
    blocking(move || {
        let body = req.body;
        match services.rooms.membership(&body.room_id, &body.user_id)? {
            Some(entry) if entry.membership == MembershipState::Ban => {}
            _ => return Err(ApiError::Forbidden(format!("{} is not banned", body.user_id))),
        }
        services.set_membership(
            &body.room_id,
            &sender,
            &body.user_id,
            MembershipState::Leave,
            body.reason.as_deref(),
        )?;
        Ok(())
    })
    .await?;
    Ok(unban_user::v3::Response::new())
}

/// `GET /_matrix/client/v3/joined_rooms`
pub async fn joined(
    services: Arc<Services>,
    req: Ruma<joined_rooms::v3::Request>,
) -> ApiResult<joined_rooms::v3::Response> {
    let rooms = services
        .rooms
        .rooms_of(&req.auth.user_id)?
        .into_iter()
        .filter(|(_, entry)| entry.membership == MembershipState::Join)
        .map(|(room, _)| room)
        .collect();
    Ok(joined_rooms::v3::Response::new(rooms))
}
