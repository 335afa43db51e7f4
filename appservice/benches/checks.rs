//! Criterion benchmarks of the standalone policy service's own work for one check, without the
//! HTTP round trips to the homeserver: reading a room's state (as the admin API gives it) into
//! facts, and deciding a check on them.
//!
//! `cargo bench -p relais-appservice --bench checks`

#![allow(missing_docs, reason = "a benchmark")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use relais_appservice::{
    PolicyConfig, PolicyService, UnitConfig,
    checks::{self, Check, Lookup, LookupError, UserMayInvite, room_state::RoomState},
};
use relais_policy::{RoomFacts, Tier, UserRecord, WorkspaceFacts};
use ruma::{RoomId, UserId, owned_room_id, owned_user_id};
use serde_json::{Value, json};

const MEMBERS: usize = 1000;

/// A room's state as `GET /_synapse/admin/v1/rooms/{roomId}/state` gives it.
fn room_events(members: usize) -> Vec<Value> {
    let event = |kind: &str, key: &str, content: Value| {
        json!({ "type": kind, "state_key": key, "sender": "@alice:x", "content": content,
                "event_id": format!("${kind}{key}"), "origin_server_ts": 1 })
    };
    let mut events = vec![
        event("m.room.create", "", json!({ "room_version": "12" })),
        event("m.room.power_levels", "", json!({ "users": { "@u1:x": 50 }, "invite": 0 })),
        event("m.room.join_rules", "", json!({ "join_rule": "invite" })),
        event("fr.relais.access", "", json!({ "class": "public" })),
        event("m.room.name", "", json!({ "name": "Crisis cell" })),
    ];
    for i in 0..members {
        let user = format!("@u{i}:x");
        events.push(event("m.room.member", &user, json!({ "membership": "join" })));
    }
    events
}

fn service(members: usize) -> PolicyService {
    let config = PolicyConfig::enabled_with(vec![UnitConfig::new("state", None)]);
    let service = PolicyService::new(config, "x").expect("valid configuration");
    service.apply_member("@alice:x", UserRecord::new(Tier::Agent, "state")).expect("valid record");
    for i in 0..members {
        let tier = if i % 3 == 0 { Tier::Guest } else { Tier::Public };
        let mut record = UserRecord::new(tier, "state");
        if tier == Tier::Guest {
            record = UserRecord::guest("state", "@alice:x", u64::MAX);
        }
        service.apply_member(&format!("@u{i}:x"), record).expect("valid record");
    }
    service
}

/// The standalone service's lookups with the admin API's answer (the body of
/// `/rooms/{roomId}/state`) already received: each decision parses it, as the service does.
struct InMemory<'a> {
    body: &'a [u8],
    service: &'a PolicyService,
}

fn parse(body: &[u8]) -> RoomState {
    let mut answer: Value = serde_json::from_slice(body).expect("JSON");
    match answer.get_mut("state").map(Value::take) {
        Some(Value::Array(events)) => RoomState::from_events(events),
        _ => RoomState::default(),
    }
}

impl Lookup for InMemory<'_> {
    fn server_name(&self) -> &str {
        "x"
    }
    fn is_exempt(&self, _: &UserId) -> Result<bool, LookupError> {
        Ok(false)
    }
    fn room_facts(&self, _: &RoomId, actor: &UserId) -> Result<Option<RoomFacts>, LookupError> {
        let state = parse(self.body);
        Ok(Some(state.facts(actor.as_str(), None, &self.service.directory())))
    }
    fn workspace_facts(
        &self,
        _: &RoomId,
        _: &UserId,
    ) -> Result<Option<WorkspaceFacts>, LookupError> {
        Ok(None)
    }
    fn state_content(&self, _: &RoomId, _: &str, _: &str) -> Result<Option<Value>, LookupError> {
        Ok(None)
    }
    fn share_a_room(&self, _: &UserId, _: &UserId) -> Result<bool, LookupError> {
        Ok(true)
    }
}

fn checks(c: &mut Criterion) {
    let body = serde_json::to_vec(&json!({ "state": room_events(MEMBERS) })).expect("JSON");
    let service = service(MEMBERS);
    c.bench_function("standalone: room state of 1000 members (JSON) -> facts", |b| {
        b.iter(|| {
            let state = parse(black_box(&body));
            black_box(state.facts("@alice:x", None, &service.directory()))
        })
    });
    let lookup = InMemory { body: &body, service: &service };
    let invite = Check::UserMayInvite(UserMayInvite {
        inviter: owned_user_id!("@alice:x"),
        invitee: owned_user_id!("@u3:x"),
        room_id: owned_room_id!("!room:x"),
    });
    c.bench_function("standalone: decide user_may_invite (1000 members, 1000 users)", |b| {
        b.iter(|| {
            black_box(checks::decide(&service, &lookup, black_box(&invite), 1).expect("decided"))
        })
    });
    let small = serde_json::to_vec(&json!({ "state": room_events(10) })).expect("JSON");
    let lookup = InMemory { body: &small, service: &service };
    c.bench_function("standalone: decide user_may_invite (10 members, 1000 users)", |b| {
        b.iter(|| {
            black_box(checks::decide(&service, &lookup, black_box(&invite), 1).expect("decided"))
        })
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
