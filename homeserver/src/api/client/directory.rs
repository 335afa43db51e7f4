//! Room aliases and the public room directory.

use std::sync::Arc;

use ruma::{
    UInt,
    api::client::{
        alias::{create_alias, delete_alias, get_alias},
        directory::{
            get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
        },
        room::{Visibility, aliases},
    },
    directory::{PublicRoomsChunk, RoomTypeFilter},
    events::StateEventType,
    room::RoomType,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn create(
    services: Arc<Services>,
    req: Ruma<create_alias::v3::Request>,
) -> ApiResult<create_alias::v3::Response> {
    let alias = &req.body.room_alias;
    if alias.server_name() != services.config.server_name {
        return Err(ApiError::InvalidParam("aliases can only be created on this server".into()));
    }
    if !services.rooms.exists(&req.body.room_id)? {
        return Err(ApiError::NotFound(format!("room {} is not known", req.body.room_id)));
    }
    if !services.rooms.is_joined(&req.body.room_id, &req.auth.user_id)? {
        return Err(ApiError::Forbidden("you must be in the room to give it an alias".into()));
    }
    let caller = req.auth.appservice.as_ref().map(|a| a.id.as_str());
    services.appservices.check_alias(alias, caller)?;
    if !services.rooms.aliases.create(alias, &req.body.room_id, &req.auth.user_id)? {
        return Err(ApiError::RoomInUse(format!("room alias {alias} is already in use")));
    }
    Ok(create_alias::v3::Response::new())
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_alias::v3::Request>,
) -> ApiResult<get_alias::v3::Response> {
    let alias = &req.body.room_alias;
    if alias.server_name() != services.config.server_name && services.federation_enabled() {
        let answer = services.remote_alias(alias).await?;
        return Ok(get_alias::v3::Response::new(answer.room_id, answer.servers));
    }
    let mut entry = services.rooms.aliases.resolve(alias)?;
    if entry.is_none() && alias.server_name() == services.config.server_name {
        // An alias in a service's namespace may exist only once asked for (a bridge creates the
        // portal room of `#irc_#channel` on demand).
        for service in services.appservices.alias_namespace_owners(alias) {
            match services.appservices.query_alias(service, alias).await {
                Ok(true) => {
                    entry = services.rooms.aliases.resolve(alias)?;
                    break;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(appservice = service.id(), %alias, error = %e,
                    "room alias query failed"),
            }
        }
    }
    let entry =
        entry.ok_or_else(|| ApiError::NotFound(format!("room alias {alias} is not known")))?;
    Ok(get_alias::v3::Response::new(entry.room_id, vec![services.config.server_name.clone()]))
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn delete(
    services: Arc<Services>,
    req: Ruma<delete_alias::v3::Request>,
) -> ApiResult<delete_alias::v3::Response> {
    let alias = &req.body.room_alias;
    let entry = services
        .rooms
        .aliases
        .resolve(alias)?
        .ok_or_else(|| ApiError::NotFound(format!("room alias {alias} is not known")))?;
    let user = &req.auth.user_id;
    let allowed = entry.creator == *user
        || services.accounts.account(user)?.is_some_and(|a| a.admin)
        || services.rooms.may_send_state(
            &entry.room_id,
            user,
            &StateEventType::RoomCanonicalAlias,
        )?;
    if !allowed {
        return Err(ApiError::Forbidden(
            "only the alias creator or a room moderator may delete it".into(),
        ));
    }
    services.rooms.aliases.delete(alias, &entry.room_id)?;
    Ok(delete_alias::v3::Response::new())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn room_aliases(
    services: Arc<Services>,
    req: Ruma<aliases::v3::Request>,
) -> ApiResult<aliases::v3::Response> {
    if !services.can_read_room(&req.auth.user_id, &req.body.room_id)? {
        return Err(ApiError::Forbidden("you are not a member of this room".into()));
    }
    Ok(aliases::v3::Response::new(services.rooms.aliases.aliases_of(&req.body.room_id)?))
}

/// `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_visibility(
    services: Arc<Services>,
    req: Ruma<get_room_visibility::v3::Request>,
) -> ApiResult<get_room_visibility::v3::Response> {
    if !services.rooms.exists(&req.body.room_id)? {
        return Err(ApiError::NotFound(format!("room {} is not known", req.body.room_id)));
    }
    let public = services.rooms.aliases.is_public(&req.body.room_id)?;
    Ok(get_room_visibility::v3::Response::new(if public {
        Visibility::Public
    } else {
        Visibility::Private
    }))
}

/// `PUT /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn set_visibility(
    services: Arc<Services>,
    req: Ruma<set_room_visibility::v3::Request>,
) -> ApiResult<set_room_visibility::v3::Response> {
    let room_id = &req.body.room_id;
    if !services.rooms.exists(room_id)? {
        return Err(ApiError::NotFound(format!("room {room_id} is not known")));
    }
    if !services.rooms.may_send_state(
        room_id,
        &req.auth.user_id,
        &StateEventType::RoomCanonicalAlias,
    )? {
        return Err(ApiError::Forbidden(
            "publishing a room needs the power to set its aliases".into(),
        ));
    }
    let public = req.body.visibility == Visibility::Public;
    // Only listing is asked about: taking a room out of the directory exposes nothing.
    if public {
        services.policy_checks.user_may_publish_room(&req.auth.user_id, room_id).await?;
    }
    services.rooms.aliases.set_public(room_id, public)?;
    Ok(set_room_visibility::v3::Response::new())
}

/// A page of the directory: entries, next and previous tokens, total count.
pub(crate) type DirectoryPage = (Vec<PublicRoomsChunk>, Option<String>, Option<String>, UInt);

/// The directory, filtered and paginated (`since` is an offset).
pub(crate) fn directory_page(
    services: &Services,
    limit: Option<UInt>,
    since: Option<&str>,
    search: Option<&str>,
    room_types: &[RoomTypeFilter],
) -> ApiResult<DirectoryPage> {
    let mut chunks = Vec::new();
    for room_id in services.rooms.aliases.public_rooms()? {
        let Some(chunk) = services.public_chunk(&room_id)? else { continue };
        if let Some(term) = search.map(str::to_lowercase).filter(|t| !t.is_empty()) {
            let hay = [
                chunk.name.as_deref(),
                chunk.topic.as_deref(),
                chunk.canonical_alias.as_ref().map(|a| a.as_str()),
            ];
            if !hay.iter().flatten().any(|h| h.to_lowercase().contains(&term)) {
                continue;
            }
        }
        if !room_types.is_empty() {
            let matches = room_types.iter().any(|filter| match filter {
                RoomTypeFilter::Default => chunk.room_type.is_none(),
                RoomTypeFilter::Space => chunk.room_type == Some(RoomType::Space),
                other => {
                    chunk.room_type.as_ref().map(|t| t.as_str())
                        == Some(other.as_str().unwrap_or_default())
                }
            });
            if !matches {
                continue;
            }
        }
        chunks.push(chunk);
    }
    chunks.sort_by(|a, b| {
        b.num_joined_members.cmp(&a.num_joined_members).then_with(|| a.room_id.cmp(&b.room_id))
    });
    let total = UInt::try_from(chunks.len()).unwrap_or(UInt::MAX);
    let offset: usize = since.and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit = limit.map_or(100, |l| usize::try_from(u64::from(l)).unwrap_or(100)).clamp(1, 500);
    let page: Vec<_> = chunks.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < usize::try_from(u64::from(total)).unwrap_or(0))
        .then(|| (offset + page.len()).to_string());
    let prev = (offset > 0).then(|| offset.saturating_sub(limit).to_string());
    Ok((page, next, prev, total))
}

/// `GET /_matrix/client/v3/publicRooms`
pub async fn public_rooms(
    services: Arc<Services>,
    req: Ruma<get_public_rooms::v3::Request>,
) -> ApiResult<get_public_rooms::v3::Response> {
    // With the policy on, nobody browses the directory anonymously (rule D2 refuses unknown users).
    if !services.may_see_room_directory(None)? {
        return Ok(get_public_rooms::v3::Response::new(Vec::new()));
    }
    if let Some(server) = remote_server(&services, req.body.server.as_deref())? {
        let body = req.body;
        let answer = services
            .remote_public_rooms(&server, body.limit, body.since, Default::default())
            .await?;
        let mut response = get_public_rooms::v3::Response::new(answer.chunk);
        response.next_batch = answer.next_batch;
        response.prev_batch = answer.prev_batch;
        response.total_room_count_estimate = answer.total_room_count_estimate;
        return Ok(response);
    }
    let (chunk, next, prev, total) =
        directory_page(&services, req.body.limit, req.body.since.as_deref(), None, &[])?;
    let mut response = get_public_rooms::v3::Response::new(chunk);
    response.next_batch = next;
    response.prev_batch = prev;
    response.total_room_count_estimate = Some(total);
    Ok(response)
}

/// `POST /_matrix/client/v3/publicRooms`
pub async fn public_rooms_filtered(
    services: Arc<Services>,
    req: Ruma<get_public_rooms_filtered::v3::Request>,
) -> ApiResult<get_public_rooms_filtered::v3::Response> {
    // Rule D2: guests see an empty directory.
    if !services.may_see_room_directory(Some(&req.auth.user_id))? {
        return Ok(get_public_rooms_filtered::v3::Response::new());
    }
    if let Some(server) = remote_server(&services, req.body.server.as_deref())? {
        let body = req.body;
        let answer = services
            .remote_public_rooms_filtered(
                &server,
                body.limit,
                body.since,
                body.filter,
                body.room_network,
            )
            .await?;
        let mut response = get_public_rooms_filtered::v3::Response::new();
        response.chunk = answer.chunk;
        response.next_batch = answer.next_batch;
        response.prev_batch = answer.prev_batch;
        response.total_room_count_estimate = answer.total_room_count_estimate;
        return Ok(response);
    }
    let body = req.body;
    let (chunk, next, prev, total) = directory_page(
        &services,
        body.limit,
        body.since.as_deref(),
        body.filter.generic_search_term.as_deref(),
        &body.filter.room_types,
    )?;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    response.chunk = chunk;
    response.next_batch = next;
    response.prev_batch = prev;
    response.total_room_count_estimate = Some(total);
    Ok(response)
}

/// The other server whose directory is asked for, if any (read over federation); refused when
/// this server does not federate.
fn remote_server(
    services: &Services,
    server: Option<&ruma::ServerName>,
) -> ApiResult<Option<ruma::OwnedServerName>> {
    match server {
        Some(server) if server != services.config.server_name => {
            if services.federation_enabled() {
                Ok(Some(server.to_owned()))
            } else {
                Err(ApiError::Forbidden(format!(
                    "the directory of {server} cannot be read: this server does not federate"
                )))
            }
        }
        _ => Ok(None),
    }
}
