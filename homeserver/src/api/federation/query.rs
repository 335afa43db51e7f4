//! Queries of other servers about this one's users and aliases: `/query/profile` and
//! `/query/directory`.

use std::sync::Arc;

use ruma::api::federation::query::{get_profile_information, get_room_information};

use crate::{
    api::{client::membership::blocking, error::ApiResult, ruma::Ruma},
    service::Services,
};

/// `GET /_matrix/federation/v1/query/profile?user_id=&field=`
pub async fn profile(
    services: Arc<Services>,
    req: Ruma<get_profile_information::v1::Request>,
) -> ApiResult<get_profile_information::v1::Response> {
    blocking(move || Ok(services.federation_profile(&req.body.user_id, req.body.field.as_ref())?))
        .await
}

/// `GET /_matrix/federation/v1/query/directory?room_alias=`
pub async fn directory(
    services: Arc<Services>,
    req: Ruma<get_room_information::v1::Request>,
) -> ApiResult<get_room_information::v1::Response> {
    blocking(move || Ok(services.federation_directory(&req.body.room_alias)?)).await
}
