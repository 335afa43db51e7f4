//! Pushers: `GET /pushers` and `POST /pushers/set`.
//!
//! <https://spec.matrix.org/v1.18/client-server-api/#push-notifications>. Only `http` pushers are
//! supported; their gateway URL must have the path `/_matrix/push/v1/notify`. A pusher belongs to
//! the device that set it and is removed when that device logs out.

use std::sync::Arc;

use ruma::api::client::push::{
    get_pushers,
    set_pusher::{self, v3::PusherAction},
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, ephemeral::now_ms},
};

/// `GET /_matrix/client/v3/pushers`
pub async fn list(
    services: Arc<Services>,
    req: Ruma<get_pushers::v3::Request>,
) -> ApiResult<get_pushers::v3::Response> {
    let pushers = services.push.pushers().list(&req.auth.user_id)?;
    Ok(get_pushers::v3::Response::new(pushers.into_iter().map(|p| p.pusher).collect()))
}

/// `POST /_matrix/client/v3/pushers/set`: creates, replaces or (with `kind: null`) deletes a
/// pusher.
pub async fn set(
    services: Arc<Services>,
    req: Ruma<set_pusher::v3::Request>,
) -> ApiResult<set_pusher::v3::Response> {
    let user = &req.auth.user_id;
    match req.body.action {
        PusherAction::Post(data) => services.push.pushers().set(
            user,
            Some(&req.auth.device_id),
            data.pusher,
            data.append,
            now_ms() / 1000,
        )?,
        PusherAction::Delete(ids) => services.push.pushers().delete(user, &ids)?,
        _ => return Err(ApiError::InvalidParam("unknown pusher action".into())),
    }
    Ok(set_pusher::v3::Response::new())
}
