//! The media repository ([spec](https://spec.matrix.org/v1.16/client-server-api/#content-repository)).
//!
//! - `POST /_matrix/media/v3/upload`; `POST /_matrix/media/v1/create` then
//!   `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}` (asynchronous upload).
//! - `GET /_matrix/client/v1/media/config|download|thumbnail/...`: authenticated media (v1.11);
//!   another server's media are asked of it over federation (not kept here).
//! - `GET /_matrix/media/v3/config|download|thumbnail/...`: the legacy endpoints, without
//!   authentication. Media uploaded while `media.freeze_unauthenticated` is on (the default, as
//!   Synapse's `enable_authenticated_media`) answer `404 M_NOT_FOUND` there: the spec's freeze.
//! - `GET .../preview_url`: `M_UNRECOGNIZED`; why is in `docs/media.md`.
//!
//! Every response of these routes carries a sandboxing `Content-Security-Policy`,
//! `X-Content-Type-Options: nosniff` and `Cross-Origin-Resource-Policy: cross-origin`; downloads
//! are `inline` only for the spec's safe types and an `attachment` otherwise (HTML, SVG,
//! JavaScript, PDF...).

#![allow(
    deprecated,
    reason = "the legacy /_matrix/media/v3 endpoints are deprecated by the spec but still served"
)]

use std::sync::Arc;

use axum::{Router, response::Response};
use http::{HeaderName, HeaderValue, header};
use ruma::{
    UInt,
    api::client::{
        authenticated_media::{
            get_content as auth_get_content,
            get_content_as_filename as auth_get_content_as_filename,
            get_content_thumbnail as auth_get_content_thumbnail,
            get_media_config as auth_get_media_config, get_media_preview as auth_get_media_preview,
        },
        media::{
            create_content, create_content_async, create_mxc_uri, get_content,
            get_content_as_filename, get_content_thumbnail, get_media_config, get_media_preview,
        },
    },
    http_headers::{ContentDisposition, ContentDispositionType},
    media::Method as RumaMethod,
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::{Ruma, RumaResponse, RumaRouter},
    },
    service::{
        Services,
        media::{Access, Content, Method, ThumbnailRequest, Upload, content_type},
    },
};

/// The policy of every media response: nothing in it may run or load anything.
const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// The media routes, with the safe-serving headers on every response.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .ruma_upload_route(upload)
        .ruma_route(create)
        .ruma_upload_route(upload_to)
        .ruma_route(config)
        .ruma_route(legacy_config)
        .ruma_route(download)
        .ruma_route(download_as)
        .ruma_route(thumbnail)
        .ruma_route(legacy_download)
        .ruma_route(legacy_download_as)
        .ruma_route(legacy_thumbnail)
        .ruma_route(preview_url)
        .ruma_route(legacy_preview_url)
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// `POST /_matrix/media/v3/upload`
pub async fn upload(
    services: Arc<Services>,
    req: Ruma<create_content::v3::Request>,
) -> ApiResult<RumaResponse<create_content::v3::Response>> {
    services.rate_limits.check(
        crate::service::rate_limit::Action::MediaUpload,
        Some(&req.auth),
        req.client_ip.as_deref(),
    )?;
    let body = req.body;
    let upload =
        Upload { content_type: body.content_type, filename: body.filename, bytes: body.file };
    let uri = services.media.upload(req.auth.user_id, upload).await?;
    Ok(RumaResponse(create_content::v3::Response::new(uri)))
}

/// `POST /_matrix/media/v1/create`
pub async fn create(
    services: Arc<Services>,
    req: Ruma<create_mxc_uri::v1::Request>,
) -> ApiResult<create_mxc_uri::v1::Response> {
    services.rate_limits.check(
        crate::service::rate_limit::Action::MediaUpload,
        Some(&req.auth),
        req.client_ip.as_deref(),
    )?;
    let pending = services.media.create(&req.auth.user_id)?;
    let mut response = create_mxc_uri::v1::Response::new(pending.uri);
    response.unused_expires_at =
        UInt::new(pending.expires_at).map(ruma::MilliSecondsSinceUnixEpoch);
    Ok(response)
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
pub async fn upload_to(
    services: Arc<Services>,
    req: Ruma<create_content_async::v3::Request>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let body = req.body;
    let upload =
        Upload { content_type: body.content_type, filename: body.filename, bytes: body.file };
    services.media.upload_to(req.auth.user_id, body.server_name, body.media_id, upload).await?;
    // ruma's response type is non-exhaustive with no constructor: answer its `{}` directly.
    Ok(axum::Json(serde_json::json!({})))
}

fn upload_size(services: &Services) -> UInt {
    UInt::new(services.media.max_upload_bytes()).unwrap_or(UInt::MAX)
}

/// `GET /_matrix/client/v1/media/config`
pub async fn config(
    services: Arc<Services>,
    _: Ruma<auth_get_media_config::v1::Request>,
) -> ApiResult<auth_get_media_config::v1::Response> {
    Ok(auth_get_media_config::v1::Response::new(upload_size(&services)))
}

/// `GET /_matrix/media/v3/config`
pub async fn legacy_config(
    services: Arc<Services>,
    _: Ruma<get_media_config::v3::Request>,
) -> ApiResult<get_media_config::v3::Response> {
    Ok(get_media_config::v3::Response::new(upload_size(&services)))
}

/// `inline` for the spec's safe types, `attachment` for anything a browser could run.
pub(crate) fn disposition(content: &Content, filename: Option<String>) -> ContentDisposition {
    let kind = if content_type::is_inline_safe(&content.content_type) {
        ContentDispositionType::Inline
    } else {
        ContentDispositionType::Attachment
    };
    ContentDisposition::new(kind).with_filename(filename.or_else(|| content.filename.clone()))
}

/// Whether media of `server` is asked of that server (authenticated federation media, not kept
/// here): another server's, when this one federates.
fn is_remote(services: &Services, server: &ruma::ServerName) -> bool {
    server != services.globals.server_name && services.federation_enabled()
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
pub async fn download(
    services: Arc<Services>,
    req: Ruma<auth_get_content::v1::Request>,
) -> ApiResult<auth_get_content::v1::Response> {
    let body = req.body;
    let content = if is_remote(&services, &body.server_name) {
        services.remote_media(&body.server_name, &body.media_id, None, body.timeout_ms).await?
    } else {
        services
            .media
            .download(&body.server_name, &body.media_id, Access::Authenticated, body.timeout_ms)
            .await?
    };
    let disposition = disposition(&content, None);
    Ok(auth_get_content::v1::Response::new(content.bytes, content.content_type, disposition))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
pub async fn download_as(
    services: Arc<Services>,
    req: Ruma<auth_get_content_as_filename::v1::Request>,
) -> ApiResult<auth_get_content_as_filename::v1::Response> {
    let body = req.body;
    let content = if is_remote(&services, &body.server_name) {
        services.remote_media(&body.server_name, &body.media_id, None, body.timeout_ms).await?
    } else {
        services
            .media
            .download(&body.server_name, &body.media_id, Access::Authenticated, body.timeout_ms)
            .await?
    };
    let disposition = disposition(&content, content_type::sanitize_filename(Some(&body.filename)));
    Ok(auth_get_content_as_filename::v1::Response::new(
        content.bytes,
        content.content_type,
        disposition,
    ))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}`
pub async fn legacy_download(
    services: Arc<Services>,
    req: Ruma<get_content::v3::Request>,
) -> ApiResult<get_content::v3::Response> {
    let body = req.body;
    let content = services
        .media
        .download(&body.server_name, &body.media_id, Access::Legacy, body.timeout_ms)
        .await?;
    let disposition = disposition(&content, None);
    Ok(get_content::v3::Response::new(content.bytes, content.content_type, disposition))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}`
pub async fn legacy_download_as(
    services: Arc<Services>,
    req: Ruma<get_content_as_filename::v3::Request>,
) -> ApiResult<get_content_as_filename::v3::Response> {
    let body = req.body;
    let content = services
        .media
        .download(&body.server_name, &body.media_id, Access::Legacy, body.timeout_ms)
        .await?;
    let disposition = disposition(&content, content_type::sanitize_filename(Some(&body.filename)));
    Ok(get_content_as_filename::v3::Response::new(content.bytes, content.content_type, disposition))
}

/// The thumbnail request, checked: positive dimensions and a known method (default `scale`).
pub(crate) fn thumbnail_request(
    width: UInt,
    height: UInt,
    method: Option<&RumaMethod>,
    animated: Option<bool>,
) -> ApiResult<ThumbnailRequest> {
    let dimension = |v: UInt| u32::try_from(u64::from(v)).ok().filter(|v| *v > 0);
    let (Some(width), Some(height)) = (dimension(width), dimension(height)) else {
        return Err(ApiError::InvalidParam("width and height must be positive integers".into()));
    };
    let method = match method {
        None | Some(RumaMethod::Scale) => Method::Scale,
        Some(RumaMethod::Crop) => Method::Crop,
        Some(other) => {
            return Err(ApiError::InvalidParam(format!(
                "unknown thumbnail method {}",
                other.as_str()
            )));
        }
    };
    Ok(ThumbnailRequest { width, height, method, animated: animated.unwrap_or(false) })
}

pub(crate) fn thumbnail_disposition(content: &Content) -> ContentDisposition {
    ContentDisposition::new(ContentDispositionType::Inline).with_filename(content.filename.clone())
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
pub async fn thumbnail(
    services: Arc<Services>,
    req: Ruma<auth_get_content_thumbnail::v1::Request>,
) -> ApiResult<auth_get_content_thumbnail::v1::Response> {
    let body = req.body;
    let request = thumbnail_request(body.width, body.height, body.method.as_ref(), body.animated)?;
    let content = if is_remote(&services, &body.server_name) {
        let size = (body.width, body.height, body.method.clone(), body.animated);
        services
            .remote_media(&body.server_name, &body.media_id, Some(size), body.timeout_ms)
            .await?
    } else {
        services
            .media
            .thumbnail(
                &body.server_name,
                &body.media_id,
                Access::Authenticated,
                request,
                body.timeout_ms,
            )
            .await?
    };
    let disposition = thumbnail_disposition(&content);
    Ok(auth_get_content_thumbnail::v1::Response::new(
        content.bytes,
        content.content_type,
        disposition,
    ))
}

/// `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}`
pub async fn legacy_thumbnail(
    services: Arc<Services>,
    req: Ruma<get_content_thumbnail::v3::Request>,
) -> ApiResult<get_content_thumbnail::v3::Response> {
    let body = req.body;
    let request = thumbnail_request(body.width, body.height, body.method.as_ref(), body.animated)?;
    let content = services
        .media
        .thumbnail(&body.server_name, &body.media_id, Access::Legacy, request, body.timeout_ms)
        .await?;
    let disposition = thumbnail_disposition(&content);
    Ok(get_content_thumbnail::v3::Response::new(content.bytes, content.content_type, disposition))
}

/// `GET /_matrix/client/v1/media/preview_url`: not offered (fetching arbitrary URLs from the
/// server is a request-forgery risk; see `docs/media.md`).
pub async fn preview_url(
    _: Arc<Services>,
    _: Ruma<auth_get_media_preview::v1::Request>,
) -> ApiResult<auth_get_media_preview::v1::Response> {
    Err(ApiError::Unrecognized)
}

/// `GET /_matrix/media/v3/preview_url`: not offered, as [`preview_url`].
pub async fn legacy_preview_url(
    _: Arc<Services>,
    _: Ruma<get_media_preview::v3::Request>,
) -> ApiResult<get_media_preview::v3::Response> {
    Err(ApiError::Unrecognized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(content_type: &str) -> Content {
        Content { bytes: Vec::new(), content_type: content_type.into(), filename: Some("f".into()) }
    }

    #[test]
    fn dangerous_types_are_attachments() {
        for ct in ["text/html", "image/svg+xml", "application/javascript", "application/pdf"] {
            let d = disposition(&content(ct), None);
            assert_eq!(d.disposition_type, ContentDispositionType::Attachment, "{ct}");
        }
        let d = disposition(&content("image/png"), Some("other.png".into()));
        assert_eq!(d.disposition_type, ContentDispositionType::Inline);
        assert_eq!(d.filename.as_deref(), Some("other.png"));
    }

    #[test]
    fn thumbnail_requests_are_checked() {
        let zero = thumbnail_request(UInt::from(0u32), UInt::from(10u32), None, None);
        assert!(matches!(zero, Err(ApiError::InvalidParam(_))));
        let ok = thumbnail_request(
            UInt::from(96u32),
            UInt::from(96u32),
            Some(&RumaMethod::Crop),
            Some(true),
        )
        .expect("valid");
        assert_eq!((ok.width, ok.height, ok.method, ok.animated), (96, 96, Method::Crop, true));
    }
}
