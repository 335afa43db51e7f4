//! Request authentication of the Server-Server API: the `X-Matrix` authorization header.
//!
//! From the head: federation must be enabled (else 403), the header must parse and name this
//! server as its `destination` when it names one (else 401 `M_UNAUTHORIZED`), and the origin
//! must be a partner (else 403 `M_FORBIDDEN`). Once the body is read: the signature over the
//! method, path and query, origin, destination and JSON body must verify with the origin's key
//! (fetched if needed; else 401).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use ruma::{
    OwnedServerName,
    api::federation::authentication::{ServerSignatures, XMatrix},
};

use crate::{
    api::{error::ApiError, ruma::Authenticate},
    service::{Services, federation::FederationError, federation::notary::now_ms},
};

impl Authenticate for ServerSignatures {
    type Identity = OwnedServerName;
    const SCHEME: &'static str = "server_signatures";

    fn authenticate(services: &Services, parts: &Parts) -> Result<OwnedServerName, ApiError> {
        let xmatrix = x_matrix(parts)?;
        check_destination(services, &xmatrix)?;
        services.federation.partners.check(&xmatrix.origin).map_err(ApiError::from)?;
        Ok(xmatrix.origin)
    }

    async fn verify_body(
        services: &Arc<Services>,
        parts: &Parts,
        body: &Bytes,
        _origin: &OwnedServerName,
    ) -> Result<(), ApiError> {
        let xmatrix = x_matrix(parts)?;
        let key_id = xmatrix.key.to_string();
        let keys = services
            .federation
            .keys
            .keys_valid_at(&xmatrix.origin, now_ms(), std::slice::from_ref(&key_id))
            .await
            .map_err(|e| match e {
                FederationError::Disabled | FederationError::NotAllowed(_) => ApiError::from(e),
                other => ApiError::Unauthorized(format!(
                    "the signing key {key_id} of {} could not be obtained: {other}",
                    xmatrix.origin
                )),
            })?;
        let mut map = ruma::signatures::PublicKeyMap::new();
        map.insert(xmatrix.origin.to_string(), keys);
        let request = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .body(body.as_ref())
            .map_err(|e| ApiError::BadJson(e.to_string()))?;
        xmatrix
            .verify_request(&request, &services.config.server_name, &map)
            .map_err(|e| ApiError::Unauthorized(format!("invalid X-Matrix signature: {e}")))
    }
}

/// The `X-Matrix` credentials of the request.
fn x_matrix(parts: &Parts) -> Result<XMatrix, ApiError> {
    let value = parts.headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("this endpoint needs an X-Matrix signature".to_owned())
    })?;
    XMatrix::try_from(value)
        .map_err(|e| ApiError::Unauthorized(format!("invalid X-Matrix authorization: {e}")))
}

/// A `destination` other than this server is refused (401, as the spec says).
fn check_destination(services: &Services, xmatrix: &XMatrix) -> Result<(), ApiError> {
    match &xmatrix.destination {
        Some(destination) if *destination != services.config.server_name => {
            Err(ApiError::Unauthorized(format!(
                "this request is for {destination}, not for {}",
                services.config.server_name
            )))
        }
        _ => Ok(()),
    }
}

impl From<FederationError> for ApiError {
    fn from(error: FederationError) -> Self {
        match error {
            FederationError::Disabled
            | FederationError::NotAllowed(_)
            | FederationError::OwnServer(_) => Self::Forbidden(error.to_string()),
            FederationError::Remote { ref errcode, .. } if errcode == "M_FORBIDDEN" => {
                Self::Forbidden(error.to_string())
            }
            FederationError::Remote { ref errcode, .. } if errcode == "M_NOT_FOUND" => {
                Self::NotFound(error.to_string())
            }
            FederationError::Timeout { .. }
            | FederationError::Unreachable { .. }
            | FederationError::Remote { .. }
            | FederationError::InvalidResponse { .. }
            | FederationError::Keys { .. } => Self::ConnectionFailed(error.to_string()),
            FederationError::Signature(reason) => Self::InvalidSignature(reason),
            FederationError::Build { .. }
            | FederationError::Setup(_)
            | FederationError::Storage(_) => Self::Internal(error.to_string()),
        }
    }
}
