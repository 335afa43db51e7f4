//! Downloads and thumbnails, including the wait for content uploaded asynchronously.
//!
//! A thumbnail is generated the first time a size is asked for, stored like any file (content
//! addressed, referenced by its thumbnail record) and served from disk afterwards.

use std::{sync::Arc, time::Duration};

use ruma::ServerName;

use super::{
    Access, Content, Media, MediaError, StoredContent, ThumbnailRecord, blocking,
    thumbnail::{self, Method},
    thumbnail_reference,
    upload::now_ms,
};
use crate::storage::{Batch, Json};

/// The longest a download waits for an asynchronous upload, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A thumbnail request.
#[derive(Clone, Copy, Debug)]
pub struct ThumbnailRequest {
    /// Desired width.
    pub width: u32,
    /// Desired height.
    pub height: u32,
    /// Crop or scale.
    pub method: Method,
    /// Whether an animated thumbnail is wanted (when the source is animated).
    pub animated: bool,
}

impl Media {
    /// The content of a media, waiting up to `wait` for an asynchronous upload to complete.
    pub async fn download(
        self: &Arc<Self>,
        server: &ServerName,
        media_id: &str,
        access: Access,
        wait: Duration,
    ) -> Result<Content, MediaError> {
        let content = self.wait_for_content(server, media_id, access, wait).await?;
        let this = self.clone();
        blocking(move || {
            Ok(Content {
                bytes: this.store.read(&content.sha256)?,
                content_type: content.content_type,
                filename: content.filename,
            })
        })
        .await
    }

    /// A thumbnail of a media, generated and stored the first time this size is asked for.
    pub async fn thumbnail(
        self: &Arc<Self>,
        server: &ServerName,
        media_id: &str,
        access: Access,
        request: ThumbnailRequest,
        wait: Duration,
    ) -> Result<Content, MediaError> {
        let content = self.wait_for_content(server, media_id, access, wait).await?;
        let this = self.clone();
        let key = (server.to_string(), media_id.to_owned());
        blocking(move || this.thumbnail_now(key, &content, request)).await
    }

    async fn wait_for_content(
        &self,
        server: &ServerName,
        media_id: &str,
        access: Access,
        wait: Duration,
    ) -> Result<StoredContent, MediaError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Registered before the check, so an upload completing in between is not missed.
            let notified = self.uploaded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self.record(server, media_id)?.ok_or(MediaError::NotFound)?;
            if access == Access::Legacy && record.authenticated {
                return Err(MediaError::NotFound);
            }
            if let Some(content) = record.content {
                return Ok(content);
            }
            if record.pending_until.is_none_or(|t| t <= now_ms()) {
                return Err(MediaError::NotFound);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(MediaError::NotYetUploaded);
            }
        }
    }

    fn thumbnail_now(
        &self,
        key: (String, String),
        content: &StoredContent,
        request: ThumbnailRequest,
    ) -> Result<Content, MediaError> {
        let size = thumbnail::select(request.width, request.height, request.method);
        let size_key = size.key(request.animated);
        let thumb_key = (key.0.clone(), key.1.clone(), size_key.clone());
        if let Some(Json(stored)) = self.thumbnails.get(&thumb_key)? {
            return Ok(Content {
                bytes: self.store.read(&stored.sha256)?,
                filename: Some(thumbnail_filename(&stored.content_type)),
                content_type: stored.content_type,
            });
        }
        let source = self.store.read(&content.sha256)?;
        let generated =
            thumbnail::generate(&source, size, request.animated, self.config.max_image_pixels)?;
        drop(source);
        let staged = self.store.stage(&generated.bytes)?;
        let record = ThumbnailRecord {
            sha256: staged.sha256.clone(),
            size: generated.bytes.len() as u64,
            content_type: generated.content_type.to_owned(),
            width: generated.width,
            height: generated.height,
        };
        {
            let _commit = self.commit.lock();
            // Another request may have made it meanwhile, or the media may be gone.
            if !self.thumbnails.contains(&thumb_key)? {
                if !self.media.contains(&key)? {
                    return Err(MediaError::NotFound);
                }
                let sha256 = record.sha256.clone();
                let placed = self.store.place(staged)?;
                let mut batch = Batch::default();
                batch.put(
                    &self.references,
                    &(sha256.clone(), thumbnail_reference(&key, &size_key)),
                    &(),
                );
                batch.put(&self.thumbnails, &thumb_key, &Json(record));
                if let Err(e) = self.media.db().write(batch) {
                    if placed && !self.is_referenced(&sha256)? {
                        self.store.remove(&sha256)?;
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(Content {
            bytes: generated.bytes,
            content_type: generated.content_type.to_owned(),
            filename: Some(thumbnail_filename(generated.content_type)),
        })
    }
}

fn thumbnail_filename(content_type: &str) -> String {
    let extension = match content_type {
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        _ => "png",
    };
    format!("thumbnail.{extension}")
}
