//! Cost of push rule evaluation per event in a 1000-member room.
//!
//! `cargo bench -p relais-homeserver --bench push_rules` (release profile). Measures:
//! - evaluation alone for 1000 members with the default rules (the common case, where members
//!   share results) and with 1000 customised rulesets (every member evaluated in full);
//! - a whole send (`Rooms::append`: build, sign, authorise, write, then the push hook: evaluate,
//!   write counts) in a 1000-member room and in a 2-member room; the difference is what the push
//!   hook costs per event. Writes do not wait for fsync here, to measure CPU, not the disk.
//!
//! No benchmark framework: each case runs a warm-up, then reports the mean over its iterations.

#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "a benchmark; a failed unwrap is a failed run"
)]

mod common;

use std::{hint::black_box, sync::Arc, time::Instant};

use common::{room_with, services, user};
use relais_homeserver::service::{
    push::{
        evaluate::{PreparedEvent, evaluate_all},
        rules::UserRules,
    },
    rooms::PduTemplate,
};
use ruma::{
    OwnedRoomId,
    events::TimelineEventType,
    owned_room_id,
    push::{NewPushRule, NewSimplePushRule, PushConditionRoomCtx, Ruleset},
    serde::Raw,
};
use serde_json::{Value, json};

const MEMBERS: usize = 1000;

fn time(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations.div_ceil(10) {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let mean = start.elapsed() / iterations;
    println!("{name:<58} {:>10.1} µs/event", mean.as_secs_f64() * 1e6);
}

fn evaluation_only() {
    let room = owned_room_id!("!bench:bench.example");
    let message = json!({
        "type": "m.room.message", "sender": "@user0:bench.example", "room_id": room,
        "content": { "msgtype": "m.text", "body": "hello", "m.mentions": { "user_ids": ["@user7:bench.example"] } },
    });
    let raw: Raw<Value> = Raw::new(&message).unwrap();
    let ctx = PushConditionRoomCtx::new(
        room.clone(),
        MEMBERS.try_into().unwrap(),
        user(0),
        String::new(),
    );

    let defaults: Vec<_> =
        (0..MEMBERS).map(|i| (user(i), Arc::new(UserRules::server_default(&user(i))))).collect();
    time("evaluate, 1000 members, default rules", 2000, || {
        let event = PreparedEvent::new(&raw, &user(0));
        black_box(evaluate_all(&event, ctx.clone(), &defaults, |_| String::new()));
    });

    let customised: Vec<_> = (0..MEMBERS)
        .map(|i| {
            let mut ruleset = Ruleset::server_default(&user(i));
            let other: OwnedRoomId =
                OwnedRoomId::try_from(format!("!muted{i}:bench.example")).unwrap();
            ruleset
                .insert(NewPushRule::Room(NewSimplePushRule::new(other, vec![])), None, None)
                .unwrap();
            (user(i), Arc::new(UserRules::new(&user(i), ruleset)))
        })
        .collect();
    time("evaluate, 1000 members, customised rules (worst case)", 200, || {
        let event = PreparedEvent::new(&raw, &user(0));
        black_box(evaluate_all(&event, ctx.clone(), &customised, |_| String::new()));
    });
}

fn whole_send() {
    let (_dir, services) = services();
    let small = room_with(&services, 0, 2);
    let large = room_with(&services, 0, MEMBERS);
    let mut n = 0u64;
    for (name, room) in
        [("send, 2-member room", &small), ("send, 1000-member room (push hook included)", &large)]
    {
        time(name, 300, || {
            n += 1;
            let content = json!({ "msgtype": "m.text", "body": format!("message {n}") });
            let template = PduTemplate::message(TimelineEventType::RoomMessage, content);
            black_box(services.rooms.append(room, &user(0), template, None).unwrap());
        });
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep that short.
    if std::env::args().any(|a| a == "--bench") {
        evaluation_only();
        whole_send();
    } else {
        println!("push_rules: run with `cargo bench` for figures");
    }
}
