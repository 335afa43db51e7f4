//! Shared fixtures for the integration tests: one organisation (`fixtures/directory.json`), one
//! clock, and short ways to ask and check.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]

use relais_policy::{
    AccessClass, Action, Actor, Decision, Directory, DirectoryParts, RoomFacts, Rule, UserId,
    decide,
};

/// The time every test runs at: 2023-11-14, before Gaston's expiry and after Gisèle's.
pub const NOW: u64 = 1_700_000_000_000;

/// The parts of the fixture organisation.
pub fn parts() -> DirectoryParts {
    serde_json::from_str(include_str!("../fixtures/directory.json"))
        .expect("fixture directory parses")
}

/// The fixture organisation, checked.
pub fn directory() -> Directory {
    Directory::from_parts(parts()).expect("fixture directory is consistent")
}

/// `@name:relais.test`, or `name` itself if it already has a server.
pub fn u(name: &str) -> UserId {
    if name.contains(':') {
        UserId::from(name)
    } else {
        UserId::from(format!("@{name}:relais.test"))
    }
}

/// Decides as `actor` against the fixture organisation at [`NOW`].
pub fn ask(actor: &str, action: &Action, room: Option<&RoomFacts>) -> Decision {
    decide(action, &Actor::new(u(actor)), room, &directory(), NOW)
}

/// A room of `class` where the actor is an ordinary joined member.
pub fn room(class: AccessClass) -> RoomFacts {
    RoomFacts { class: Some(class), member_count: 3, actor_joined: true, ..RoomFacts::default() }
}

/// The same room with the actor at `power`.
pub fn with_power(mut room: RoomFacts, power: i64) -> RoomFacts {
    room.actor_power = power;
    room
}

/// Panics with the refusal unless `decision` allows.
#[track_caller]
pub fn allowed(decision: Decision) {
    assert!(decision.is_allowed(), "expected Allow, got {decision:?}");
}

/// Panics unless `decision` is a refusal by `rule` with a non-empty reason.
#[track_caller]
pub fn denied(decision: Decision, rule: Rule) {
    match &decision {
        Decision::Deny { rule: r, reason } if *r == rule && !reason.is_empty() => {}
        other => panic!("expected Deny by {rule}, got {other:?}"),
    }
}
