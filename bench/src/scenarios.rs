//! The scenarios: fan-out, spread, room creation, initial sync.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::{
    Options,
    client::{User, register},
    stats::{CpuMark, Samples, dir_bytes, own_cpu_seconds, round, rss_mib},
};

/// Runs every scenario and returns the report.
pub async fn run_all(options: &Options) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let base = Instant::now();
    let users = register_many(&http, options, options.users.max(options.senders)).await?;
    let mut report = json!({ "server": options.url });
    let pid = options.pid;
    if options.runs("fanout") {
        let (first, room) = fanout(options, &users, base, None).await?;
        report["fanout"] = first;
        let reuse = options.same_room.then_some(room);
        // Further rounds with the same users (each in a new room), for a longer run: throughput,
        // latency and server memory per round show whether anything grows.
        let mut rounds = Vec::new();
        for _ in 1..options.rounds {
            let (mut round, _) = fanout(options, &users, base, reuse.clone()).await?;
            if let Some(pid) = options.pid {
                round["server_rss_mib"] = rss_mib(pid).into();
            }
            rounds.push(round);
        }
        if !rounds.is_empty() {
            report["fanout_rounds"] = rounds.into();
        }
    }
    if options.runs("spread") {
        report["spread"] = spread(options, &users[..options.senders]).await?;
    }
    if options.runs("create") {
        let mark = CpuMark::now(pid);
        report["room_creation"] = create_rooms(options, &users[0]).await?;
        mark.record(pid, &mut report["room_creation"]);
    }
    if options.runs("initial-sync") {
        report["initial_sync"] = initial_sync(&users[1]).await?;
    }
    report["generator_cpu_s"] = own_cpu_seconds().into();
    if let Some(pid) = options.pid {
        report["server_rss_mib"] = rss_mib(pid).into();
    }
    if let Some(dir) = &options.db_dir {
        let events = (options.senders * options.messages * 2 + options.create * 8) as f64;
        report["database_bytes"] = dir_bytes(dir).into();
        report["database_bytes_per_event_estimate"] = round(dir_bytes(dir) as f64 / events).into();
    }
    Ok(report)
}

async fn register_many(
    http: &reqwest::Client,
    options: &Options,
    count: usize,
) -> anyhow::Result<Vec<User>> {
    let mut users = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let batch = chunk.iter().map(|i| {
            let name = format!("{}u{i}", options.prefix);
            async move { register(http, &options.url, &name).await }
        });
        users.extend(try_join_all(batch).await?);
    }
    Ok(users)
}

/// Everyone in one room, all syncing; `senders` users send `messages` each.
/// One fan-out round, in `room` when given (its members already joined), else in a new room;
/// returns the report and the room.
async fn fanout(
    options: &Options,
    users: &[User],
    base: Instant,
    room: Option<String>,
) -> anyhow::Result<(Value, String)> {
    let members = &users[..options.users];
    let room = match room {
        Some(room) => room,
        None => {
            let room = members[0].create_room(json!({ "preset": "public_chat" })).await?;
            try_join_all(members[1..].iter().map(|u| u.join(&room))).await?;
            room
        }
    };
    let expected = options.senders * options.messages;
    let delivery = Arc::new(Mutex::new(Samples::default()));

    // Every member long-polls until it has seen every message.
    let mut syncers = Vec::new();
    for user in members {
        let since =
            user.sync(None, 0, Some(r#"{"room":{"timeline":{"limit":1}}}"#)).await?["next_batch"]
                .as_str()
                .context("no next_batch")?
                .to_owned();
        let user = user.clone();
        let room = room.clone();
        let delivery = delivery.clone();
        syncers.push(tokio::spawn(async move {
            let mut since = since;
            let mut seen = 0;
            let mut responses = 0u64;
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen < expected && Instant::now() < deadline {
                // A timeline limit above the burst size, so that no response is `limited`.
                let filter = r#"{"room":{"timeline":{"limit":1000}}}"#;
                let Ok(sync) = user.sync(Some(&since), 10_000, Some(filter)).await else {
                    continue;
                };
                let received = base.elapsed();
                responses += 1;
                if let Some(events) = sync["rooms"]["join"][&room]["timeline"]["events"].as_array()
                {
                    for event in events {
                        let sent = event["content"]["body"]
                            .as_str()
                            .and_then(|b| b.strip_prefix("load "))
                            .and_then(|micros| micros.parse::<u64>().ok());
                        if let Some(sent) = sent {
                            seen += 1;
                            let latency = received.saturating_sub(Duration::from_micros(sent));
                            if let Ok(mut d) = delivery.lock() {
                                d.push(latency);
                            }
                        }
                    }
                }
                if let Some(next) = sync["next_batch"].as_str() {
                    since = next.to_owned();
                }
            }
            (seen, responses)
        }));
    }

    // From the first send to the last delivery: what the messages cost the server, syncs
    // included.
    let mark = CpuMark::now(options.pid);
    let started = Instant::now();
    // Transaction IDs unique to the round: a room reused by the next round must get new events.
    let round_tag = base.elapsed().as_micros();
    let sends = try_join_all(members[..options.senders].iter().enumerate().map(|(s, user)| {
        let room = room.clone();
        async move {
            let mut latencies = Samples::default();
            for i in 0..options.messages {
                let body = format!("load {}", base.elapsed().as_micros());
                latencies.push(user.send(&room, &format!("f{round_tag}-{s}-{i}"), &body).await?);
            }
            anyhow::Ok(latencies)
        }
    }))
    .await?;
    let elapsed = started.elapsed();
    let send: Samples = sends.into_iter().collect();
    let mut complete = 0;
    let mut responses = 0;
    for syncer in syncers {
        let (seen, count) = syncer.await?;
        responses += count;
        if seen >= expected {
            complete += 1;
        }
    }
    let delivery = std::mem::take(&mut *delivery.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut report = json!({
        "users": options.users,
        "senders": options.senders,
        "messages": expected,
        "messages_per_s": round(expected as f64 / elapsed.as_secs_f64()),
        "send_latency": send.summary(),
        "delivery_latency": delivery.summary(),
        "syncers_with_every_message": complete,
        "sync_responses": responses,
    });
    mark.record(options.pid, &mut report);
    Ok((report, room))
}

/// Messages spread over many rooms.
async fn spread(options: &Options, senders: &[User]) -> anyhow::Result<Value> {
    let mut rooms = Vec::with_capacity(options.rooms);
    for _ in 0..options.rooms {
        rooms.push(senders[0].create_room(json!({ "preset": "public_chat" })).await?);
    }
    for sender in &senders[1..] {
        try_join_all(rooms.iter().map(|r| sender.join(r))).await?;
    }
    let mark = CpuMark::now(options.pid);
    let started = Instant::now();
    let sends = try_join_all(senders.iter().enumerate().map(|(s, user)| {
        let rooms = rooms.clone();
        async move {
            let mut latencies = Samples::default();
            for i in 0..options.messages {
                let room = &rooms[(s * options.messages + i) % rooms.len()];
                latencies.push(user.send(room, &format!("s{s}-{i}"), "spread").await?);
            }
            anyhow::Ok(latencies)
        }
    }))
    .await?;
    let elapsed = started.elapsed();
    let send: Samples = sends.into_iter().collect();
    let total = senders.len() * options.messages;
    let mut report = json!({
        "rooms": options.rooms,
        "messages": total,
        "messages_per_s": round(total as f64 / elapsed.as_secs_f64()),
        "send_latency": send.summary(),
    });
    mark.record(options.pid, &mut report);
    Ok(report)
}

/// Room creation, ten at a time.
async fn create_rooms(options: &Options, user: &User) -> anyhow::Result<Value> {
    let started = Instant::now();
    let indexes: Vec<usize> = (0..options.create).collect();
    for chunk in indexes.chunks(10) {
        try_join_all(
            chunk.iter().map(|i| user.create_room(json!({ "name": format!("room {i}") }))),
        )
        .await?;
    }
    let elapsed = started.elapsed();
    Ok(
        json!({ "rooms": options.create, "rooms_per_s": round(options.create as f64 / elapsed.as_secs_f64()) }),
    )
}

/// Initial sync of a user in many rooms, with and without lazy-loaded members.
async fn initial_sync(user: &User) -> anyhow::Result<Value> {
    let started = Instant::now();
    let full = user.sync(None, 0, None).await?;
    let plain = started.elapsed();
    let started = Instant::now();
    user.sync(None, 0, Some(r#"{"room":{"state":{"lazy_load_members":true}}}"#)).await?;
    let lazy = started.elapsed();
    let rooms = full["rooms"]["join"].as_object().map_or(0, |r| r.len());
    Ok(json!({
        "rooms": rooms,
        "ms": round(plain.as_secs_f64() * 1000.0),
        "lazy_members_ms": round(lazy.as_secs_f64() * 1000.0),
    }))
}
