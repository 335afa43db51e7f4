//! Requests from the homeserver to an application service, built from ruma's request types and
//! authenticated with the service's `hs_token` in the `Authorization` header.

use std::time::{Duration, Instant};

use ruma::{
    OwnedTransactionId, RoomAliasId, UserId,
    api::{
        OutgoingRequest,
        appservice::{
            event::push_events,
            ping::send_ping,
            query::{query_room_alias, query_user_id},
        },
        auth_scheme::SendAccessToken,
        path_builder::SinglePath,
    },
};

use super::{Appservice, AppserviceError, Appservices};

/// Longest part of an error answer kept for the logs and the ping's `M_BAD_STATUS`.
const MAX_ERROR_BODY: usize = 1024;

impl Appservices {
    /// Sends one transaction. Success is any 2xx answer.
    pub async fn send_transaction(
        &self,
        service: &Appservice,
        request: push_events::v1::Request,
    ) -> Result<(), AppserviceError> {
        self.call(service, request).await.map(drop)
    }

    /// Asks the service whether `user` exists, giving it the chance to create it. `Ok(false)` when
    /// it answers 404.
    pub async fn query_user(
        &self,
        service: &Appservice,
        user: &UserId,
    ) -> Result<bool, AppserviceError> {
        let request = query_user_id::v1::Request::new(user.to_owned());
        found(self.call(service, request).await)
    }

    /// Asks the service whether `alias` exists, giving it the chance to create the room.
    /// `Ok(false)` when it answers 404.
    pub async fn query_alias(
        &self,
        service: &Appservice,
        alias: &RoomAliasId,
    ) -> Result<bool, AppserviceError> {
        let request = query_room_alias::v1::Request::new(alias.to_owned());
        found(self.call(service, request).await)
    }

    /// Pings the service and measures the round trip.
    pub async fn ping(
        &self,
        service: &Appservice,
        transaction_id: Option<OwnedTransactionId>,
    ) -> Result<Duration, AppserviceError> {
        let mut request = send_ping::v1::Request::new();
        request.transaction_id = transaction_id;
        let started = Instant::now();
        self.call(service, request).await?;
        Ok(started.elapsed())
    }

    /// Sends `request`; the status of a 2xx answer, else the error.
    async fn call<R>(&self, service: &Appservice, request: R) -> Result<u16, AppserviceError>
    where
        R: OutgoingRequest<PathBuilder = SinglePath>,
        for<'a> R::Authentication:
            ruma::api::auth_scheme::AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let Some(base_url) = service.registration.url.as_deref() else {
            return Err(AppserviceError::UrlNotSet);
        };
        let http_request = request
            .try_into_http_request::<Vec<u8>>(
                base_url,
                SendAccessToken::Always(&service.registration.hs_token),
                (),
            )
            .map_err(|e| AppserviceError::ConnectionFailed(format!("bad request: {e}")))?;
        let http_request = reqwest::Request::try_from(http_request.map(reqwest::Body::from))
            .map_err(|e| AppserviceError::ConnectionFailed(format!("bad request: {e}")))?;
        let response = self.http.execute(http_request).await.map_err(|e| {
            if e.is_timeout() {
                AppserviceError::Timeout
            } else {
                AppserviceError::ConnectionFailed(describe(&e))
            }
        })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(status);
        }
        let mut body = response.text().await.unwrap_or_default();
        body.truncate(body.floor_char_boundary(MAX_ERROR_BODY));
        Err(AppserviceError::BadStatus { status, body })
    }
}

/// `true` for a 2xx answer, `false` for 404, else the error.
fn found(result: Result<u16, AppserviceError>) -> Result<bool, AppserviceError> {
    match result {
        Ok(_) => Ok(true),
        Err(AppserviceError::BadStatus { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A reqwest error with its cause (the URL carries no secret: the token is in a header).
fn describe(error: &reqwest::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}
