//! Authenticated federation media: `/_matrix/federation/v1/media/download/{mediaId}` and
//! `/thumbnail/{mediaId}`, answered as `multipart/mixed` (metadata, then the content) as the spec
//! requires. Only this server's media are served; the origin server is authenticated by the
//! request's signature, like a client of the authenticated media endpoints.

use std::sync::Arc;

use ruma::api::federation::authenticated_media::{
    Content as MediaContent, ContentMetadata, FileOrLocation, get_content, get_content_thumbnail,
};

use crate::{
    api::{
        client::media::{disposition, thumbnail_disposition, thumbnail_request},
        error::ApiResult,
        ruma::Ruma,
    },
    service::{Services, media::Access},
};

/// `GET /_matrix/federation/v1/media/download/{mediaId}`
pub async fn download(
    services: Arc<Services>,
    req: Ruma<get_content::v1::Request>,
) -> ApiResult<get_content::v1::Response> {
    let server = services.globals.server_name.clone();
    let body = req.body;
    let content = services
        .media
        .download(&server, &body.media_id, Access::Authenticated, body.timeout_ms)
        .await?;
    let disposition = disposition(&content, None);
    let file = MediaContent::new(content.bytes, content.content_type, disposition);
    Ok(get_content::v1::Response::new(ContentMetadata::new(), FileOrLocation::File(file)))
}

/// `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`
pub async fn thumbnail(
    services: Arc<Services>,
    req: Ruma<get_content_thumbnail::v1::Request>,
) -> ApiResult<get_content_thumbnail::v1::Response> {
    let server = services.globals.server_name.clone();
    let body = req.body;
    let request = thumbnail_request(body.width, body.height, body.method.as_ref(), body.animated)?;
    let content = services
        .media
        .thumbnail(&server, &body.media_id, Access::Authenticated, request, body.timeout_ms)
        .await?;
    let disposition = thumbnail_disposition(&content);
    let file = MediaContent::new(content.bytes, content.content_type, disposition);
    Ok(get_content_thumbnail::v1::Response::new(ContentMetadata::new(), FileOrLocation::File(file)))
}
