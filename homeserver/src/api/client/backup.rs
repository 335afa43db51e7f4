//! Server-side key backups: `room_keys/version` (create, get, get latest, update, delete) and
//! `room_keys/keys` for all rooms, one room or one session (put, get, delete).
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#server-side-key-backups>. Keys go
//! only to the current version (else `M_WRONG_ROOM_KEYS_VERSION`); every change of the stored
//! keys changes the version's `etag`, and a stored session is replaced only by a better one.

use std::sync::Arc;

use ruma::{
    UInt,
    api::client::backup::{
        add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session,
        create_backup_version, delete_backup_keys, delete_backup_keys_for_room,
        delete_backup_keys_for_session, delete_backup_version, get_backup_info, get_backup_keys,
        get_backup_keys_for_room, get_backup_keys_for_session, get_latest_backup_info,
        update_backup_version,
    },
};
use serde_json::Value;

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        keys::backup::{BackupInfo, Scope},
    },
};

fn count(n: u64) -> UInt {
    UInt::new_saturating(n)
}

/// `POST /_matrix/client/v3/room_keys/version`
pub async fn create_version(
    services: Arc<Services>,
    req: Ruma<create_backup_version::v3::Request>,
) -> ApiResult<create_backup_version::v3::Response> {
    let version = services.keys.backups.create(&req.auth.user_id, &req.body.algorithm)?;
    Ok(create_backup_version::v3::Response::new(version))
}

/// `GET /_matrix/client/v3/room_keys/version`
pub async fn latest_version(
    services: Arc<Services>,
    req: Ruma<get_latest_backup_info::v3::Request>,
) -> ApiResult<get_latest_backup_info::v3::Response> {
    let BackupInfo { version, algorithm, count: n, etag } =
        services.keys.backups.info(&req.auth.user_id, None)?;
    Ok(get_latest_backup_info::v3::Response::new(algorithm, count(n), etag, version))
}

/// `GET /_matrix/client/v3/room_keys/version/{version}`
pub async fn get_version(
    services: Arc<Services>,
    req: Ruma<get_backup_info::v3::Request>,
) -> ApiResult<get_backup_info::v3::Response> {
    let BackupInfo { version, algorithm, count: n, etag } =
        services.keys.backups.info(&req.auth.user_id, Some(&req.body.version))?;
    Ok(get_backup_info::v3::Response::new(algorithm, count(n), etag, version))
}

/// `PUT /_matrix/client/v3/room_keys/version/{version}`: new auth data, same algorithm. A
/// `version` in the body must name the version of the path.
pub async fn update_version(
    services: Arc<Services>,
    req: Ruma<update_backup_version::v3::Request>,
) -> ApiResult<update_backup_version::v3::Response> {
    let in_body = req.json_body.as_ref().and_then(|b| b.get("version")).and_then(Value::as_str);
    if in_body.is_some_and(|v| v != req.body.version) {
        return Err(ApiError::InvalidParam("the version in the body differs from the path".into()));
    }
    services.keys.backups.update(&req.auth.user_id, &req.body.version, &req.body.algorithm)?;
    Ok(update_backup_version::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/room_keys/version/{version}`
pub async fn delete_version(
    services: Arc<Services>,
    req: Ruma<delete_backup_version::v3::Request>,
) -> ApiResult<delete_backup_version::v3::Response> {
    let (user, version) = (req.auth.user_id, req.body.version);
    blocking(move || Ok(services.keys.backups.delete_version(&user, &version)?)).await?;
    Ok(delete_backup_version::v3::Response::new())
}

/// `PUT /_matrix/client/v3/room_keys/keys?version=`
pub async fn put_keys(
    services: Arc<Services>,
    req: Ruma<add_backup_keys::v3::Request>,
) -> ApiResult<add_backup_keys::v3::Response> {
    blocking(move || {
        let keys = req
            .body
            .rooms
            .iter()
            .flat_map(|(room, backup)| {
                backup
                    .sessions
                    .iter()
                    .map(move |(session, data)| (room.clone(), session.clone(), data))
            })
            .collect();
        let (etag, n) =
            services.keys.backups.put_keys(&req.auth.user_id, &req.body.version, keys)?;
        Ok(add_backup_keys::v3::Response::new(etag, count(n)))
    })
    .await
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}?version=`
pub async fn put_room_keys(
    services: Arc<Services>,
    req: Ruma<add_backup_keys_for_room::v3::Request>,
) -> ApiResult<add_backup_keys_for_room::v3::Response> {
    blocking(move || {
        let body = &req.body;
        let keys =
            body.sessions.iter().map(|(s, data)| (body.room_id.clone(), s.clone(), data)).collect();
        let (etag, n) = services.keys.backups.put_keys(&req.auth.user_id, &body.version, keys)?;
        Ok(add_backup_keys_for_room::v3::Response::new(etag, count(n)))
    })
    .await
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=`
pub async fn put_session_key(
    services: Arc<Services>,
    req: Ruma<add_backup_keys_for_session::v3::Request>,
) -> ApiResult<add_backup_keys_for_session::v3::Response> {
    let body = &req.body;
    let keys = vec![(body.room_id.clone(), body.session_id.clone(), &body.session_data)];
    let (etag, n) = services.keys.backups.put_keys(&req.auth.user_id, &body.version, keys)?;
    Ok(add_backup_keys_for_session::v3::Response::new(etag, count(n)))
}

/// `GET /_matrix/client/v3/room_keys/keys?version=`
pub async fn get_keys(
    services: Arc<Services>,
    req: Ruma<get_backup_keys::v3::Request>,
) -> ApiResult<get_backup_keys::v3::Response> {
    blocking(move || {
        let keys =
            services.keys.backups.get_keys(&req.auth.user_id, &req.body.version, Scope::All)?;
        let rooms = keys
            .into_iter()
            .map(|(room, sessions)| (room, ruma::api::client::backup::RoomKeyBackup::new(sessions)))
            .collect();
        Ok(get_backup_keys::v3::Response::new(rooms))
    })
    .await
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}?version=`
pub async fn get_room_keys(
    services: Arc<Services>,
    req: Ruma<get_backup_keys_for_room::v3::Request>,
) -> ApiResult<get_backup_keys_for_room::v3::Response> {
    let body = &req.body;
    let mut keys = services.keys.backups.get_keys(
        &req.auth.user_id,
        &body.version,
        Scope::Room(&body.room_id),
    )?;
    let sessions = keys.remove(&body.room_id).unwrap_or_default();
    Ok(get_backup_keys_for_room::v3::Response::new(sessions))
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=`
pub async fn get_session_key(
    services: Arc<Services>,
    req: Ruma<get_backup_keys_for_session::v3::Request>,
) -> ApiResult<get_backup_keys_for_session::v3::Response> {
    let body = &req.body;
    let scope = Scope::Session(&body.room_id, &body.session_id);
    let key = services
        .keys
        .backups
        .get_keys(&req.auth.user_id, &body.version, scope)?
        .remove(&body.room_id)
        .and_then(|mut sessions| sessions.remove(&body.session_id))
        .ok_or_else(|| ApiError::NotFound("no key for this session in the backup".into()))?;
    Ok(get_backup_keys_for_session::v3::Response::new(key))
}

/// `DELETE /_matrix/client/v3/room_keys/keys?version=`
pub async fn delete_keys(
    services: Arc<Services>,
    req: Ruma<delete_backup_keys::v3::Request>,
) -> ApiResult<delete_backup_keys::v3::Response> {
    blocking(move || {
        let (etag, n) =
            services.keys.backups.delete_keys(&req.auth.user_id, &req.body.version, Scope::All)?;
        Ok(delete_backup_keys::v3::Response::new(etag, count(n)))
    })
    .await
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}?version=`
pub async fn delete_room_keys(
    services: Arc<Services>,
    req: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> ApiResult<delete_backup_keys_for_room::v3::Response> {
    let body = &req.body;
    let (etag, n) = services.keys.backups.delete_keys(
        &req.auth.user_id,
        &body.version,
        Scope::Room(&body.room_id),
    )?;
    Ok(delete_backup_keys_for_room::v3::Response::new(etag, count(n)))
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=`
pub async fn delete_session_key(
    services: Arc<Services>,
    req: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> ApiResult<delete_backup_keys_for_session::v3::Response> {
    let body = &req.body;
    let scope = Scope::Session(&body.room_id, &body.session_id);
    let (etag, n) = services.keys.backups.delete_keys(&req.auth.user_id, &body.version, scope)?;
    Ok(delete_backup_keys_for_session::v3::Response::new(etag, count(n)))
}
