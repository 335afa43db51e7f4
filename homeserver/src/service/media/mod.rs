//! The media repository: uploads, downloads and thumbnails.
//!
//! Files live on disk named by the SHA-256 of their content ([`store`]), so identical uploads are
//! stored once; everything else (who uploaded what, under which media ID, content type, file
//! name, thumbnails, per-user usage) lives in the database. A media record and the reference to
//! its file are written in one batch after the file is in place, so an interrupted upload leaves
//! either everything or, after the start-up sweep, nothing. A file is removed when the last
//! record that refers to it goes.
//!
//! Concern per file: [`upload`] (create, upload, quota), [`serve`] (download, thumbnails,
//! waiting for asynchronous uploads), [`store`] (files), [`thumbnail`] (image work),
//! [`content_type`] (what is safe to serve inline).

pub mod content_type;
mod serve;
mod store;
pub mod thumbnail;
mod upload;

use std::{path::PathBuf, sync::Arc};

use parking_lot::Mutex;
use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};

use self::store::FileStore;
pub use self::{
    serve::ThumbnailRequest,
    thumbnail::Method,
    upload::{PendingUri, Upload},
};
use crate::{
    config::MediaConfig,
    storage::{Batch, Db, Json, StorageError, Table},
};

/// Column families owned by the media service.
pub const COLUMN_FAMILIES: &[&str] = &[
    "servermediaid_media",
    "servermediaidsize_thumbnail",
    "sha256reference_unit",
    "userid_mediabytes",
    "usermediaid_pendingexpiry",
];

/// Errors of media operations.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A media file could not be read or written.
    #[error("media file {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No such media (or not served on this endpoint).
    #[error("media not found")]
    NotFound,
    /// The media ID exists but its content has not been uploaded yet.
    #[error("the content has not been uploaded yet")]
    NotYetUploaded,
    /// The upload is larger than `media.max_upload_bytes`.
    #[error("uploads are limited to {0} bytes")]
    TooLarge(u64),
    /// The upload would take the user over `media.user_quota_bytes`.
    #[error("this upload would exceed your media quota of {0} bytes")]
    QuotaExceeded(u64),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The media ID already has content.
    #[error("media already uploaded")]
    CannotOverwrite,
    /// Too many URIs created and not uploaded to.
    #[error("too many pending uploads")]
    TooManyPending {
        /// When the oldest pending URI expires, in milliseconds from now.
        retry_after_ms: u64,
    },
    /// No thumbnail can be made of this media.
    #[error(transparent)]
    Thumbnail(#[from] thumbnail::ThumbnailError),
    /// A blocking task failed.
    #[error("media task failed: {0}")]
    Task(String),
}

/// Which kind of endpoint asks for media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The authenticated `/_matrix/client/v1/media/*` endpoints.
    Authenticated,
    /// The legacy unauthenticated `/_matrix/media/v3/*` endpoints, subject to the freeze.
    Legacy,
}

/// A stored media: who uploaded it, when, and its content once uploaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct MediaRecord {
    uploader: OwnedUserId,
    created_ts: u64,
    /// Uploaded while `media.freeze_unauthenticated` was on: not served on legacy endpoints.
    authenticated: bool,
    /// A URI from `/create` not uploaded to yet: when it expires (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_until: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<StoredContent>,
}

/// The uploaded content of a media.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredContent {
    sha256: String,
    size: u64,
    content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

/// A generated thumbnail.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ThumbnailRecord {
    sha256: String,
    size: u64,
    content_type: String,
    width: u32,
    height: u32,
}

/// Content to send to a client.
#[derive(Debug)]
pub struct Content {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The stored content type.
    pub content_type: String,
    /// The file name given at upload (or `thumbnail.png` etc. for thumbnails).
    pub filename: Option<String>,
}

/// The media service.
pub struct Media {
    server_name: OwnedServerName,
    config: MediaConfig,
    store: FileStore,
    media: Table<(String, String), Json<MediaRecord>>,
    thumbnails: Table<(String, String, String), Json<ThumbnailRecord>>,
    /// (file hash, media or thumbnail reference): who uses a file. A file with no entry is removed.
    references: Table<(String, String), ()>,
    usage: Table<OwnedUserId, u64>,
    pending: Table<(OwnedUserId, String), u64>,
    /// Serialises the steps that decide whether a file is referenced (place + record, delete +
    /// remove), and the quota and pending-count checks with their writes.
    commit: Mutex<()>,
    /// Woken when an upload completes, for downloads waiting on an asynchronous upload.
    uploaded: tokio::sync::Notify,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").field("store", &self.store).finish_non_exhaustive()
    }
}

impl Media {
    /// Opens the service with its files under `dir`, and removes files that no record refers
    /// to (left by an upload interrupted between the file and the record).
    pub fn open(
        db: &Arc<Db>,
        server_name: OwnedServerName,
        config: MediaConfig,
        dir: PathBuf,
    ) -> Result<Arc<Self>, MediaError> {
        let media = Self {
            server_name,
            config,
            store: FileStore::open(dir)?,
            media: db.table("servermediaid_media")?,
            thumbnails: db.table("servermediaidsize_thumbnail")?,
            references: db.table("sha256reference_unit")?,
            usage: db.table("userid_mediabytes")?,
            pending: db.table("usermediaid_pendingexpiry")?,
            commit: Mutex::new(()),
            uploaded: tokio::sync::Notify::new(),
        };
        let removed = media.remove_unreferenced_files()?;
        if removed > 0 {
            tracing::info!(removed, "removed media files left by interrupted uploads");
        }
        Ok(Arc::new(media))
    }

    /// The largest upload accepted, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.config.max_upload_bytes
    }

    /// Bytes uploaded by `user` and still stored.
    pub fn usage(&self, user: &UserId) -> Result<u64, MediaError> {
        Ok(self.usage.get(&user.to_owned())?.unwrap_or(0))
    }

    /// Deletes a media, its thumbnails, and the files nothing else refers to.
    pub fn delete(&self, server: &ServerName, media_id: &str) -> Result<(), MediaError> {
        let key = (server.to_string(), media_id.to_owned());
        let _commit = self.commit.lock();
        let Json(record) = self.media.get(&key)?.ok_or(MediaError::NotFound)?;
        let mut batch = Batch::default();
        let mut hashes = Vec::new();
        batch.delete(&self.media, &key);
        batch.delete(&self.pending, &(record.uploader.clone(), media_id.to_owned()));
        if let Some(content) = &record.content {
            batch.delete(&self.references, &(content.sha256.clone(), media_reference(&key)));
            let used = self.usage(&record.uploader)?;
            batch.put(&self.usage, &record.uploader, &used.saturating_sub(content.size));
            hashes.push(content.sha256.clone());
        }
        for entry in self.thumbnails.scan_prefix(&key)? {
            let ((server, id, size), Json(thumb)) = entry?;
            batch.delete(
                &self.references,
                &(thumb.sha256.clone(), thumbnail_reference(&key, &size)),
            );
            batch.delete(&self.thumbnails, &(server, id, size));
            hashes.push(thumb.sha256);
        }
        self.media.db().write(batch)?;
        for sha256 in hashes {
            if !self.is_referenced(&sha256)? {
                self.store.remove(&sha256)?;
            }
        }
        Ok(())
    }

    fn is_referenced(&self, sha256: &str) -> Result<bool, MediaError> {
        Ok(self.references.scan_prefix(&sha256.to_owned())?.next().transpose()?.is_some())
    }

    fn remove_unreferenced_files(&self) -> Result<usize, MediaError> {
        let _commit = self.commit.lock();
        let mut removed = 0;
        for sha256 in self.store.list()? {
            if !self.is_referenced(&sha256)? {
                self.store.remove(&sha256)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn record(
        &self,
        server: &ServerName,
        media_id: &str,
    ) -> Result<Option<MediaRecord>, MediaError> {
        if !is_valid_media_id(media_id) {
            return Ok(None);
        }
        Ok(self.media.get(&(server.to_string(), media_id.to_owned()))?.map(|Json(r)| r))
    }
}

/// The reference a media record holds on its file.
fn media_reference((server, media_id): &(String, String)) -> String {
    format!("{server}/{media_id}")
}

/// The reference a thumbnail holds on its file.
fn thumbnail_reference((server, media_id): &(String, String), size: &str) -> String {
    format!("{server}/{media_id}/{size}")
}

/// Media IDs are made of `A-Z a-z 0-9 _ -` (spec: "Matrix Content (mxc://) URIs").
pub fn is_valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Runs blocking work (file I/O, image decoding) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, MediaError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| MediaError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests;
