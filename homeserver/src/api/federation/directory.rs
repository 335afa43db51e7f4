//! The public room directory and space hierarchies for other servers: `GET`/`POST
//! /_matrix/federation/v1/publicRooms` and `GET /_matrix/federation/v1/hierarchy/{roomId}`.

use std::sync::Arc;

use ruma::api::federation::{
    directory::{get_public_rooms, get_public_rooms_filtered},
    space::get_hierarchy,
};

use crate::{
    api::{
        client::{directory::directory_page, membership::blocking},
        error::ApiResult,
        ruma::Ruma,
    },
    service::Services,
};

/// `GET /_matrix/federation/v1/publicRooms`: this server's directory, as an anonymous reader
/// sees it (the policy layer may hide it).
pub async fn public_rooms(
    services: Arc<Services>,
    req: Ruma<get_public_rooms::v1::Request>,
) -> ApiResult<get_public_rooms::v1::Response> {
    blocking(move || {
        let mut response = get_public_rooms::v1::Response::new();
        if !services.may_see_room_directory(None)? {
            return Ok(response);
        }
        let (chunk, next, prev, total) =
            directory_page(&services, req.body.limit, req.body.since.as_deref(), None, &[])?;
        response.chunk = chunk;
        response.next_batch = next;
        response.prev_batch = prev;
        response.total_room_count_estimate = Some(total);
        Ok(response)
    })
    .await
}

/// `POST /_matrix/federation/v1/publicRooms`: the same, with a search term and room types.
pub async fn public_rooms_filtered(
    services: Arc<Services>,
    req: Ruma<get_public_rooms_filtered::v1::Request>,
) -> ApiResult<get_public_rooms_filtered::v1::Response> {
    blocking(move || {
        let mut response = get_public_rooms_filtered::v1::Response::new();
        if !services.may_see_room_directory(None)? {
            return Ok(response);
        }
        let body = &req.body;
        let (chunk, next, prev, total) = directory_page(
            &services,
            body.limit,
            body.since.as_deref(),
            body.filter.generic_search_term.as_deref(),
            &body.filter.room_types,
        )?;
        response.chunk = chunk;
        response.next_batch = next;
        response.prev_batch = prev;
        response.total_room_count_estimate = Some(total);
        Ok(response)
    })
    .await
}

/// `GET /_matrix/federation/v1/hierarchy/{roomId}?suggested_only=`
pub async fn hierarchy(
    services: Arc<Services>,
    req: Ruma<get_hierarchy::v1::Request>,
) -> ApiResult<get_hierarchy::v1::Response> {
    blocking(move || {
        Ok(services.federation_hierarchy(&req.auth, &req.body.room_id, req.body.suggested_only)?)
    })
    .await
}
