//! Simplified sliding sync (MSC4186) for a user in many rooms, as Element X asks for it: the
//! first page of the room list on a new connection, the whole list at once, a quiet incremental
//! request, and the latency from a message being sent to the long-poll that delivers it.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::{
    Options,
    client::register,
    stats::{Samples, round},
};

/// The `required_state` of Element X's room list (matrix-sdk-ui 0.18).
fn element_x_list(end: usize) -> Value {
    json!({ "lists": { "all": {
        "ranges": [[0, end]],
        "timeline_limit": 1,
        "required_state": [
            ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
            ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
            ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
            ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""],
            ["m.room.tombstone", ""], ["m.room.create", ""], ["m.room.history_visibility", ""],
            ["io.element.functional_members", ""], ["m.space.parent", "*"],
            ["m.space.child", "*"],
        ],
    } } })
}

fn pos(response: &Value) -> anyhow::Result<String> {
    response["pos"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no pos"))
}

/// Runs the scenario with a user in `rooms` rooms.
pub async fn run(options: &Options, rooms: usize) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let user = register(&http, &options.url, &format!("{}ss", options.prefix)).await?;
    let setup = Instant::now();
    let mut room_ids = Vec::with_capacity(rooms);
    let indexes: Vec<usize> = (0..rooms).collect();
    for chunk in indexes.chunks(10) {
        let created = try_join_all(chunk.iter().map(|i| {
            let user = &user;
            async move {
                let room = user.create_room(json!({ "name": format!("room {i}") })).await?;
                user.send(&room, &format!("s{i}"), "hello").await?;
                anyhow::Ok(room)
            }
        }))
        .await?;
        room_ids.extend(created);
    }
    let setup_s = setup.elapsed().as_secs_f64();

    let mut first_page = Samples::default();
    for _ in 0..10 {
        let started = Instant::now();
        let page = user.sliding_sync(None, 0, element_x_list(19)).await?;
        first_page.push(started.elapsed());
        anyhow::ensure!(page["rooms"].as_object().map_or(0, |r| r.len()) == 20.min(rooms));
    }

    let started = Instant::now();
    let whole = user.sliding_sync(None, 0, element_x_list(rooms.saturating_sub(1))).await?;
    let whole_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Incremental requests on the whole list, as Element X makes once its list is loaded.
    let body = element_x_list(rooms.saturating_sub(1));
    let mut pos = pos(&whole)?;
    let mut quiet = Samples::default();
    for _ in 0..10 {
        let started = Instant::now();
        let reply = user.sliding_sync(Some(&pos), 0, body.clone()).await?;
        quiet.push(started.elapsed());
        pos = self::pos(&reply)?;
    }

    let mut update = Samples::default();
    for i in 0..20 {
        // The oldest room gets a message and jumps to the top of the list.
        let room = &room_ids[i % room_ids.len()];
        let poll = user.sliding_sync(Some(&pos), 30_000, body.clone());
        let send = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let sent = Instant::now();
            user.send(room, &format!("u{i}"), "update").await?;
            anyhow::Ok(sent)
        };
        let (reply, sent) = tokio::try_join!(poll, send)?;
        update.push(sent.elapsed());
        anyhow::ensure!(reply["rooms"].get(room.as_str()).is_some(), "update not delivered");
        pos = self::pos(&reply)?;
    }

    Ok(json!({
        "rooms": rooms,
        "setup_s": round(setup_s),
        "first_page_20_rooms": first_page.summary(),
        "whole_list_ms": round(whole_ms),
        "quiet_incremental": quiet.summary(),
        "send_to_update": update.summary(),
    }))
}
