//! What the benchmarks share: users, a server on a temporary database, rooms with members.

use std::sync::Arc;

use relais_homeserver::{
    config::{Config, DatabaseConfig, SUPPORTED_ROOM_VERSIONS},
    service::{Services, rooms::create::CreateRoom},
};
use ruma::{
    OwnedRoomId, OwnedUserId, RoomVersionId,
    api::client::room::create_room::v3::{Request, RoomPreset},
};

/// The `i`th user of the benchmarks' server.
pub fn user(i: usize) -> OwnedUserId {
    OwnedUserId::try_from(format!("@user{i}:bench.example")).unwrap()
}

/// A server on a temporary database whose writes do not wait for fsync: the benchmarks measure
/// the CPU, not the disk. Keep the directory alive as long as the services.
pub fn services() -> (tempfile::TempDir, Arc<Services>) {
    let dir = tempfile::tempdir().unwrap();
    let defaults = Config::default();
    let config = Config {
        server_name: "bench.example".try_into().unwrap(),
        database: DatabaseConfig {
            path: dir.path().join("db"),
            sync_writes: false,
            ..defaults.database.clone()
        },
        ..defaults
    };
    let services = Services::open(Arc::new(config)).unwrap();
    (dir, services)
}

/// A public room of `user(creator)` joined by the `members - 1` users after it.
pub fn room_with(services: &Services, creator: usize, members: usize) -> OwnedRoomId {
    let mut request = Request::new();
    request.preset = Some(RoomPreset::PublicChat);
    let params = CreateRoom {
        request: &request,
        default_version: &RoomVersionId::V12,
        supported: &SUPPORTED_ROOM_VERSIONS,
        displayname: None,
        avatar_url: None,
    };
    let room = services.rooms.create_room(&user(creator), params).unwrap();
    for i in 1..members {
        services.join(&room, &user(creator + i), None).unwrap();
    }
    room
}
