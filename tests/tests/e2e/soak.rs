//! Soak and kill: senders write events without pause while the server is killed with SIGKILL at
//! pseudo-random moments, at least 20 times; then every acknowledged event must be there and the
//! database must open cleanly.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use relais_tests::{TestServer, enc};
use serde_json::{Value, json};

/// Number of SIGKILLs.
const KILLS: usize = 20;
/// Concurrent senders.
const SENDERS: usize = 4;

/// A small xorshift generator: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `low..high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_event_is_lost_over_20_kills() {
    let started = Instant::now();
    let seed =
        std::env::var("RELAIS_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        });
    let mut rng = Rng(seed);
    let mut server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let token = alice.token.clone().unwrap();
    // The port changes at each restart: senders read the current URL before each request.
    let url = Arc::new(Mutex::new(server.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut senders = Vec::new();
    for worker in 0..SENDERS {
        let (http, url, stop, failed, acknowledged) =
            (http.clone(), url.clone(), stop.clone(), failed.clone(), acknowledged.clone());
        let (room, token) = (room.clone(), token.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("{worker}-{i}");
                let base = url.lock().unwrap().clone();
                let path = format!(
                    "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/s{worker}-{i}",
                    enc(&room)
                );
                let reply = http
                    .put(&path)
                    .bearer_auth(&token)
                    .json(&json!({ "msgtype": "m.text", "body": body }))
                    .send()
                    .await;
                let event_id = match reply {
                    Ok(response) if response.status() == 200 => response
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["event_id"].as_str().map(str::to_owned)),
                    _ => None,
                };
                match event_id {
                    Some(event_id) => acknowledged.lock().unwrap().push((event_id, body)),
                    None => {
                        // Killed mid-request or restarting: not acknowledged, so not checked.
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(rng.between(150, 900))).await;
        tokio::task::block_in_place(|| server.crash_and_restart());
        *url.lock().unwrap() = server.url.clone();
        kills += 1;
    }
    // Let the senders write a little on the last incarnation, then stop them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    // The database opens cleanly after a last kill, and again after a graceful stop.
    tokio::task::block_in_place(|| server.crash_and_restart());
    kills += 1;
    tokio::task::block_in_place(|| server.restart());
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut alice = alice;
    alice.url = server.url.clone();
    let mut lost = Vec::new();
    for (event_id, body) in &acknowledged {
        let reply = alice
            .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(event_id)))
            .await;
        if reply.status != 200 || reply.body["content"]["body"] != body.as_str() {
            lost.push(event_id.clone());
        }
    }
    // The room's timeline holds them all too, in one piece.
    let mut seen = 0usize;
    let mut from: Option<String> = None;
    loop {
        let mut path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000", enc(&room));
        if let Some(from) = &from {
            path.push_str(&format!("&from={from}"));
        }
        let page = alice.get(&path).await.ok();
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        seen += chunk.iter().filter(|e| e["type"] == "m.room.message").count();
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
            _ => break,
        }
    }
    alice.say(&room, "after-soak", "still writable").await;
    alice.sync(None, 0).await;
    eprintln!(
        "soak (seed {seed}): {} events acknowledged, {} requests failed by the kills, {kills} kills, \
         {} lost, {seen} messages in the timeline, {:.1} s",
        acknowledged.len(),
        failed.load(Ordering::Relaxed),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(acknowledged.len() >= 100, "too few events were sent: {}", acknowledged.len());
    assert!(kills > KILLS, "{kills} kills");
    assert!(lost.is_empty(), "{} acknowledged events lost: {lost:?}", lost.len());
    assert!(
        seen >= acknowledged.len(),
        "the timeline shows {seen} of {} acknowledged events",
        acknowledged.len()
    );
}
