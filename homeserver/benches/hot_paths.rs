//! Criterion micro-benchmarks of the hot paths: the key codec, building and storing an event
//! (hash, sign, authorise, write), a state lookup, an initial sync, a policy decision and the
//! application service interest check.
//!
//! `cargo bench -p relais-homeserver --bench hot_paths` (release profile). Writes do not wait for
//! fsync here, to measure CPU, not the disk.

#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "a benchmark; a failed unwrap is a failed run"
)]

mod common;

use std::hint::black_box;

use common::{room_with, services, user};
use criterion::{Criterion, criterion_group, criterion_main};
use relais_homeserver::{
    service::{rooms::PduTemplate, sync::SyncRequest},
    storage::codec::{decode_key, encode_key},
};
use relais_policy::{Action, Actor, Directory, DirectoryParts, RoomFacts, Tier, Unit, UserRecord};
use ruma::{
    api::client::filter::FilterDefinition,
    events::{StateEventType, TimelineEventType},
};
use serde_json::json;

fn key_codec(c: &mut Criterion) {
    let timeline_key = (12_345_u64, 67_890_u64);
    let txn_key = ("@alice:example.org".to_owned(), "DEVICEID".to_owned(), 42_u64);
    c.bench_function("codec: encode+decode (shortroomid, count)", |b| {
        b.iter(|| {
            let bytes = encode_key(black_box(&timeline_key));
            black_box(decode_key::<(u64, u64)>(&bytes).unwrap())
        })
    });
    c.bench_function("codec: encode+decode (user, device, count)", |b| {
        b.iter(|| {
            let bytes = encode_key(black_box(&txn_key));
            black_box(decode_key::<(String, String, u64)>(&bytes).unwrap())
        })
    });
}

fn events_state_and_sync(c: &mut Criterion) {
    let (_dir, services) = services();
    let room = room_with(&services, 0, 2);
    let big = room_with(&services, 10, 1000);
    let mut n = 0u64;
    c.bench_function("event: build, hash, sign, authorise, write (2 members)", |b| {
        b.iter(|| {
            n += 1;
            let content = json!({ "msgtype": "m.text", "body": format!("message {n}") });
            let template = PduTemplate::message(TimelineEventType::RoomMessage, content);
            black_box(services.rooms.append(&room, &user(0), template, None).unwrap())
        })
    });
    let member = user(500);
    c.bench_function("state: current member event in a 1000-member room", |b| {
        b.iter(|| {
            black_box(
                services
                    .rooms
                    .current_state_event(&big, &StateEventType::RoomMember, member.as_str())
                    .unwrap(),
            )
        })
    });
    // A user in 100 rooms of 2 members, 5 messages each.
    let syncer = user(5000);
    for r in 0..100 {
        let room = room_with(&services, 5000, 1);
        services.join(&room, &user(6000 + r), None).unwrap();
        for m in 0..5 {
            let content = json!({ "msgtype": "m.text", "body": format!("{r}/{m}") });
            let template = PduTemplate::message(TimelineEventType::RoomMessage, content);
            services.rooms.append(&room, &syncer, template, None).unwrap();
        }
    }
    let upto = services.globals.visible_count();
    c.bench_function("sync: initial, user in 100 rooms", |b| {
        b.iter(|| {
            let request = SyncRequest {
                user: syncer.clone(),
                device: "BENCH".into(),
                since: 0,
                full_state: false,
                filter: FilterDefinition::default(),
                use_state_after: false,
            };
            black_box(services.build_sync(&request, upto).unwrap())
        })
    });
}

fn policy_decision(c: &mut Criterion) {
    let mut parts = DirectoryParts::new("bench.example", "@relais-policy:bench.example");
    parts.units = vec![
        Unit { id: "state".into(), parent: None, requires_workspace_approval: false },
        Unit {
            id: "interior".into(),
            parent: Some("state".into()),
            requires_workspace_approval: false,
        },
    ];
    for i in 0..1000 {
        let tier = [Tier::Agent, Tier::Public, Tier::Guest][i % 3];
        let record = if tier == Tier::Guest {
            UserRecord::guest("interior", "@user0:bench.example", u64::MAX)
        } else {
            UserRecord::new(tier, "interior")
        };
        parts.users.insert(user(i).as_str().into(), record);
    }
    let directory = Directory::from_parts(parts).unwrap();
    let facts = RoomFacts {
        member_count: 10,
        actor_joined: true,
        actor_power: 100,
        ..RoomFacts::default()
    };
    let invite =
        Action::Invite { target: "@user2:bench.example".into(), room: "!r:bench.example".into() };
    let actor = Actor::new("@user0:bench.example");
    c.bench_function("policy: decide an invite (1000-user directory)", |b| {
        b.iter(|| black_box(relais_policy::decide(&invite, &actor, Some(&facts), &directory, 1)))
    });
}

criterion_group!(benches, key_codec, events_state_and_sync, policy_decision);
criterion_main!(benches);
