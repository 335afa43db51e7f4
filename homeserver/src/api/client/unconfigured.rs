//! Endpoints whose features are not configured on this server answer as an unconfigured server
//! does: the default push rules, no TURN server, no pushers, no third-party protocols.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{
    api::client::{
        push::{get_pushers, get_pushrules_all},
        thirdparty::get_protocols,
        voip::get_turn_server_info,
    },
    push::Ruleset,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `GET /_matrix/client/v3/pushrules/`: the spec's default rule set for the user.
pub async fn push_rules(_: Arc<Services>, req: Ruma<get_pushrules_all::v3::Request>) -> ApiResult<get_pushrules_all::v3::Response> {
    Ok(get_pushrules_all::v3::Response::new(Ruleset::server_default(&req.auth.user_id)))
}

/// `GET /_matrix/client/v3/voip/turnServer`: no TURN server is configured.
pub async fn turn_server(_: Arc<Services>, _: Ruma<get_turn_server_info::v3::Request>) -> ApiResult<get_turn_server_info::v3::Response> {
    Err(ApiError::NotFound("no TURN server is configured".into()))
}

/// `GET /_matrix/client/v3/pushers`: none registered.
pub async fn pushers(_: Arc<Services>, _: Ruma<get_pushers::v3::Request>) -> ApiResult<get_pushers::v3::Response> {
    Ok(get_pushers::v3::Response::new(Vec::new()))
}

/// `GET /_matrix/client/v3/thirdparty/protocols`: no bridges.
pub async fn protocols(_: Arc<Services>, _: Ruma<get_protocols::v3::Request>) -> ApiResult<get_protocols::v3::Response> {
    Ok(get_protocols::v3::Response::new(BTreeMap::new()))
}
