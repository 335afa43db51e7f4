//! Service-level tests: deduplication, reference counting, quota, pending uploads, start-up sweep.

use std::{path::Path, sync::Arc, time::Duration};

use ruma::{OwnedUserId, server_name, user_id};

use super::*;
use crate::{config::Config, storage::OpenOptions};

fn open(dir: &Path, tweak: impl FnOnce(&mut MediaConfig)) -> Arc<Media> {
    let db = Db::open(
        &dir.join("db"),
        COLUMN_FAMILIES,
        &OpenOptions { sync_writes: false, cache_bytes: 1 << 20 },
    )
    .expect("db");
    let mut config = Config::default().media;
    tweak(&mut config);
    Media::open(&db, server_name!("localhost").to_owned(), config, dir.join("media"))
        .expect("media")
}

fn upload(bytes: &[u8]) -> Upload {
    Upload { content_type: Some("text/plain".into()), filename: None, bytes: bytes.to_vec() }
}

fn media_id(uri: &ruma::MxcUri) -> String {
    uri.parts().expect("mxc").1.to_owned()
}

fn alice() -> OwnedUserId {
    user_id!("@alice:localhost").to_owned()
}

fn file_count(dir: &Path) -> usize {
    FileStore::open(dir.join("media")).expect("store").list().expect("list").len()
}

#[tokio::test]
async fn identical_uploads_share_one_file_until_both_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = open(dir.path(), |_| {});
    let server = server_name!("localhost");
    let first = media.upload(alice(), upload(b"same bytes")).await.expect("upload");
    let second = media.upload(alice(), upload(b"same bytes")).await.expect("upload");
    assert_ne!(first, second);
    assert_eq!(file_count(dir.path()), 1);
    assert_eq!(media.usage(&alice()).expect("usage"), 20);

    media.delete(server, &media_id(&first)).expect("delete");
    assert_eq!(file_count(dir.path()), 1, "still used by the second upload");
    let content =
        media.download(server, &media_id(&second), Access::Authenticated, Duration::ZERO).await;
    assert_eq!(content.expect("download").bytes, b"same bytes");
    media.delete(server, &media_id(&second)).expect("delete");
    assert_eq!(file_count(dir.path()), 0);
    assert_eq!(media.usage(&alice()).expect("usage"), 0);
    assert!(matches!(
        media.download(server, &media_id(&second), Access::Authenticated, Duration::ZERO).await,
        Err(MediaError::NotFound)
    ));
}

#[tokio::test]
async fn quota_counts_the_users_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = open(dir.path(), |c| c.user_quota_bytes = 10);
    media.upload(alice(), upload(b"123456")).await.expect("within quota");
    let over = media.upload(alice(), upload(b"123456")).await;
    assert!(matches!(over, Err(MediaError::QuotaExceeded(10))), "{over:?}");
    assert_eq!(file_count(dir.path()), 1, "the refused upload left no file");
    let bob = user_id!("@bob:localhost").to_owned();
    media.upload(bob, upload(b"123456")).await.expect("bob has his own quota");
}

#[tokio::test]
async fn pending_uploads_are_limited_and_owned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = open(dir.path(), |c| c.max_pending_uploads = 2);
    let server = server_name!("localhost").to_owned();
    let first = media.create(&alice()).expect("create");
    media.create(&alice()).expect("create");
    assert!(matches!(media.create(&alice()), Err(MediaError::TooManyPending { .. })));

    let id = media_id(&first.uri);
    let bob = user_id!("@bob:localhost").to_owned();
    let stolen = media.upload_to(bob, server.clone(), id.clone(), upload(b"x")).await;
    assert!(matches!(stolen, Err(MediaError::Forbidden(_))));
    media.upload_to(alice(), server.clone(), id.clone(), upload(b"x")).await.expect("upload");
    let again = media.upload_to(alice(), server.clone(), id.clone(), upload(b"y")).await;
    assert!(matches!(again, Err(MediaError::CannotOverwrite)));
    media.create(&alice()).expect("one pending slot is free again");
}

#[tokio::test]
async fn downloads_wait_for_a_pending_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = open(dir.path(), |_| {});
    let server = server_name!("localhost").to_owned();
    let id = media_id(&media.create(&alice()).expect("create").uri);
    let early =
        media.download(&server, &id, Access::Authenticated, Duration::from_millis(50)).await;
    assert!(matches!(early, Err(MediaError::NotYetUploaded)));

    let waiter = {
        let (media, server, id) = (media.clone(), server.clone(), id.clone());
        tokio::spawn(async move {
            media.download(&server, &id, Access::Authenticated, Duration::from_secs(10)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    media.upload_to(alice(), server, id, upload(b"late")).await.expect("upload");
    let content = waiter.await.expect("join").expect("download");
    assert_eq!(content.bytes, b"late");
}

#[tokio::test]
async fn frozen_media_is_not_served_on_legacy_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_name!("localhost");
    let old = {
        let media = open(dir.path(), |c| c.freeze_unauthenticated = false);
        media.upload(alice(), upload(b"before the freeze")).await.expect("upload")
    };
    let media = open(dir.path(), |_| {});
    let new = media.upload(alice(), upload(b"after the freeze")).await.expect("upload");
    media
        .download(server, &media_id(&old), Access::Legacy, Duration::ZERO)
        .await
        .expect("old media stays public");
    let frozen = media.download(server, &media_id(&new), Access::Legacy, Duration::ZERO).await;
    assert!(matches!(frozen, Err(MediaError::NotFound)));
    media
        .download(server, &media_id(&new), Access::Authenticated, Duration::ZERO)
        .await
        .expect("authenticated");
}

#[test]
fn start_up_removes_files_without_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = FileStore::open(dir.path().join("media")).expect("store");
        store.place(store.stage(b"orphan of a crash").expect("stage")).expect("place");
    }
    assert_eq!(file_count(dir.path()), 1);
    let _media = open(dir.path(), |_| {});
    assert_eq!(file_count(dir.path()), 0);
}

#[test]
fn media_ids_are_checked() {
    assert!(is_valid_media_id("AbC_12-x"));
    assert!(!is_valid_media_id(""));
    assert!(!is_valid_media_id("../etc"));
    assert!(!is_valid_media_id("a/b"));
}
