//! The Client-Server endpoints of application services: `/appservice/{appserviceId}/ping`.

use std::sync::Arc;

use ruma::api::client::appservice::request_ping;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`: the homeserver pings the service at
/// its URL, so that the service (usually at start-up) knows the two can reach each other.
pub async fn ping(
    services: Arc<Services>,
    req: Ruma<request_ping::v1::Request>,
) -> ApiResult<request_ping::v1::Response> {
    let service = req.auth;
    if service.id() != req.body.appservice_id {
        return Err(ApiError::Forbidden(format!(
            "this token belongs to the application service {}, not {}",
            service.id(),
            req.body.appservice_id
        )));
    }
    let duration = services.appservices.ping(&service, req.body.transaction_id).await?;
    if let Some(handle) = services.appservices.handle(service.id()) {
        handle.mark_reachable();
    }
    Ok(request_ping::v1::Response::new(duration))
}
