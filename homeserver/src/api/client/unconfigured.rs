//! Endpoints whose features are not configured on this server answer as an unconfigured server
//! does: no TURN server, no third-party protocols.

use std::{collections::BTreeMap, sync::Arc};

use ruma::api::client::{thirdparty::get_protocols, voip::get_turn_server_info};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `GET /_matrix/client/v3/voip/turnServer`: no TURN server is configured.
pub async fn turn_server(
    _: Arc<Services>,
    _: Ruma<get_turn_server_info::v3::Request>,
) -> ApiResult<get_turn_server_info::v3::Response> {
    Err(ApiError::NotFound("no TURN server is configured".into()))
}

/// `GET /_matrix/client/v3/thirdparty/protocols`: no bridges.
pub async fn protocols(
    _: Arc<Services>,
    _: Ruma<get_protocols::v3::Request>,
) -> ApiResult<get_protocols::v3::Response> {
    Ok(get_protocols::v3::Response::new(BTreeMap::new()))
}
