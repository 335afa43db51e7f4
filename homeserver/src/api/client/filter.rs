//! Filters: `POST /user/{userId}/filter`, `GET /user/{userId}/filter/{filterId}`.

use std::sync::Arc;

use ruma::api::client::filter::{create_filter, get_filter};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create(
    services: Arc<Services>,
    req: Ruma<create_filter::v3::Request>,
) -> ApiResult<create_filter::v3::Response> {
    if req.body.user_id != req.auth.user_id {
        return Err(ApiError::Forbidden("you can only create filters for yourself".into()));
    }
    let id = services.filters.create(&req.auth.user_id, &req.body.filter)?;
    Ok(create_filter::v3::Response::new(id))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_filter::v3::Request>,
) -> ApiResult<get_filter::v3::Response> {
    if req.body.user_id != req.auth.user_id {
        return Err(ApiError::Forbidden("you can only read your own filters".into()));
    }
    let filter = services
        .filters
        .get(&req.auth.user_id, &req.body.filter_id)?
        .ok_or_else(|| ApiError::NotFound("no such filter".into()))?;
    Ok(get_filter::v3::Response::new(filter))
}
