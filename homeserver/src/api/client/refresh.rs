//! `POST /_matrix/client/v3/refresh`
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3refresh>.
//! Swaps a refresh token for a new access token (with `expires_in_ms`) and a new refresh token
//! of the same device. The access token issued with the given refresh token stops working at
//! once; the given refresh token when the new tokens are first used
//! (`service/accounts/tokens.rs`).

use std::sync::Arc;

use ruma::api::client::session::refresh_token;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, accounts::RefreshError},
};

/// `POST /_matrix/client/v3/refresh`
pub async fn refresh(
    services: Arc<Services>,
    req: Ruma<refresh_token::v3::Request>,
) -> ApiResult<refresh_token::v3::Response> {
    let issued = services
        .accounts
        .refresh(&req.body.refresh_token, &services.config.tokens)
        .map_err(refresh_error)?;
    let mut response = refresh_token::v3::Response::new(issued.access_token);
    response.refresh_token = issued.refresh_token;
    response.expires_in_ms = issued.expires_in;
    Ok(response)
}

/// An unknown, used or expired refresh token is `401 M_UNKNOWN_TOKEN` (without `soft_logout`:
/// the client must log in again).
fn refresh_error(error: RefreshError) -> ApiError {
    match error {
        RefreshError::Storage(e) => e.into(),
        RefreshError::Unknown | RefreshError::Expired => ApiError::UnknownToken,
    }
}
