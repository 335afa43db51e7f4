//! Uploads: `POST /upload`, and `POST /create` followed by `PUT /upload/{server}/{mediaId}`.
//!
//! The order of an upload is: limits and quota checked; the file written and fsynced under
//! `tmp/`; then, under the commit lock, the checks again, the file renamed to its content name
//! and the record, the file reference and the user's usage written in one batch. A failure
//! before the batch leaves no record, and the temporary file is removed (or, after a crash, swept
//! at the next start).

use std::sync::Arc;

use rand::{Rng, distributions::Alphanumeric};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedMxcUri, OwnedServerName, OwnedUserId, ServerName, UserId,
};

use super::{
    Media, MediaError, MediaRecord, StoredContent, blocking, content_type, is_valid_media_id,
    media_reference,
};
use crate::storage::{Batch, Json};

/// An uploaded file as the client sent it.
#[derive(Debug)]
pub struct Upload {
    /// The `Content-Type` header of the upload.
    pub content_type: Option<String>,
    /// The `filename` query parameter.
    pub filename: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A media URI created for a later upload.
#[derive(Debug)]
pub struct PendingUri {
    /// The `mxc://` URI.
    pub uri: OwnedMxcUri,
    /// When it expires if nothing is uploaded (ms since the epoch).
    pub expires_at: u64,
}

pub(super) fn now_ms() -> u64 {
    MilliSecondsSinceUnixEpoch::now().0.into()
}

fn new_media_id() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect()
}

fn mxc(server: &ServerName, media_id: &str) -> OwnedMxcUri {
    OwnedMxcUri::from(format!("mxc://{server}/{media_id}"))
}

impl Media {
    /// Creates a media URI to upload to later (`POST /_matrix/media/v1/create`).
    pub fn create(&self, user: &UserId) -> Result<PendingUri, MediaError> {
        let now = now_ms();
        let server = self.server_name.to_string();
        let _commit = self.commit.lock();
        let mut batch = Batch::default();
        let mut live = Vec::new();
        for entry in self.pending.scan_prefix(&user.to_owned())? {
            let ((owner, media_id), expires_at) = entry?;
            if expires_at <= now {
                // Expired and never uploaded to: forget it.
                batch.delete(&self.media, &(server.clone(), media_id.clone()));
                batch.delete(&self.pending, &(owner, media_id));
            } else {
                live.push(expires_at);
            }
        }
        if live.len() >= self.config.max_pending_uploads {
            self.media.db().write(batch)?;
            let first_expiry = live.into_iter().min().unwrap_or(now);
            return Err(MediaError::TooManyPending {
                retry_after_ms: first_expiry.saturating_sub(now),
            });
        }
        let media_id = new_media_id();
        let expires_at =
            now.saturating_add(self.config.pending_upload_expiry_secs.saturating_mul(1000));
        let record = MediaRecord {
            uploader: user.to_owned(),
            created_ts: now,
            authenticated: self.config.freeze_unauthenticated,
            pending_until: Some(expires_at),
            content: None,
        };
        batch.put(&self.media, &(server, media_id.clone()), &Json(record));
        batch.put(&self.pending, &(user.to_owned(), media_id.clone()), &expires_at);
        self.media.db().write(batch)?;
        Ok(PendingUri { uri: mxc(&self.server_name, &media_id), expires_at })
    }

    /// Stores a new upload under a fresh media ID (`POST /_matrix/media/v3/upload`).
    pub async fn upload(
        self: &Arc<Self>,
        user: OwnedUserId,
        upload: Upload,
    ) -> Result<OwnedMxcUri, MediaError> {
        let this = self.clone();
        blocking(move || {
            let media_id = new_media_id();
            this.store_upload(&user, &media_id, upload, false)?;
            Ok(mxc(&this.server_name, &media_id))
        })
        .await
    }

    /// Stores the content of a URI from [`Media::create`]
    /// (`PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`).
    pub async fn upload_to(
        self: &Arc<Self>,
        user: OwnedUserId,
        server: OwnedServerName,
        media_id: String,
        upload: Upload,
    ) -> Result<(), MediaError> {
        if server != self.server_name || !is_valid_media_id(&media_id) {
            return Err(MediaError::NotFound);
        }
        let this = self.clone();
        blocking(move || this.store_upload(&user, &media_id, upload, true)).await
    }

    fn store_upload(
        &self,
        user: &UserId,
        media_id: &str,
        upload: Upload,
        pending: bool,
    ) -> Result<(), MediaError> {
        let key = (self.server_name.to_string(), media_id.to_owned());
        let size = upload.bytes.len() as u64;
        if size > self.config.max_upload_bytes {
            return Err(MediaError::TooLarge(self.config.max_upload_bytes));
        }
        // Checked before writing the file (cheap refusals), and again under the lock.
        self.check_quota(user, size)?;
        if pending {
            self.pending_record(user, &key)?;
        }
        let staged = self.store.stage(&upload.bytes)?;
        drop(upload.bytes);
        let content = StoredContent {
            sha256: staged.sha256.clone(),
            size,
            content_type: content_type::sanitize(upload.content_type.as_deref()),
            filename: content_type::sanitize_filename(upload.filename.as_deref()),
        };

        let commit = self.commit.lock();
        let mut record = if pending {
            self.pending_record(user, &key)?
        } else {
            MediaRecord {
                uploader: user.to_owned(),
                created_ts: now_ms(),
                authenticated: self.config.freeze_unauthenticated,
                pending_until: None,
                content: None,
            }
        };
        self.check_quota(user, size)?;
        let sha256 = content.sha256.clone();
        let placed = self.store.place(staged)?;
        record.pending_until = None;
        record.content = Some(content);
        let mut batch = Batch::default();
        batch.put(&self.media, &key, &Json(record));
        batch.put(&self.references, &(sha256.clone(), media_reference(&key)), &());
        batch.put(&self.usage, &user.to_owned(), &self.usage(user)?.saturating_add(size));
        batch.delete(&self.pending, &(user.to_owned(), media_id.to_owned()));
        if let Err(e) = self.media.db().write(batch) {
            if placed && !self.is_referenced(&sha256)? {
                self.store.remove(&sha256)?;
            }
            return Err(e.into());
        }
        drop(commit);
        self.uploaded.notify_waiters();
        Ok(())
    }

    /// The record of a URI the user created and may still upload to.
    fn pending_record(
        &self,
        user: &UserId,
        key: &(String, String),
    ) -> Result<MediaRecord, MediaError> {
        let Json(record) = self.media.get(key)?.ok_or(MediaError::NotFound)?;
        if record.uploader != user {
            return Err(MediaError::Forbidden(
                "only the creator of this media ID may upload to it".into(),
            ));
        }
        if record.content.is_some() {
            return Err(MediaError::CannotOverwrite);
        }
        if record.pending_until.is_none_or(|t| t <= now_ms()) {
            return Err(MediaError::NotFound);
        }
        Ok(record)
    }

    fn check_quota(&self, user: &UserId, size: u64) -> Result<(), MediaError> {
        let quota = self.config.user_quota_bytes;
        if quota > 0 && self.usage(user)?.saturating_add(size) > quota {
            return Err(MediaError::QuotaExceeded(quota));
        }
        Ok(())
    }
}
