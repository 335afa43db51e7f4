//! `relais-load`: drives any Matrix homeserver through the Client-Server API and reports send
//! throughput and latency, send-to-delivery latency seen by syncing clients, room creation rate,
//! initial sync time, server memory and database size.
//!
//! ```text
//! relais-load --url http://127.0.0.1:8008 --pid $(pidof relais) --db-dir ./data
//! relais-load --url http://127.0.0.1:8008 --sliding-sync-rooms 1000
//! ```
//!
//! The server must allow open registration (`m.login.dummy`) and have rate limits raised.

mod client;
mod scenarios;
mod sliding_sync;
mod stats;

use std::path::PathBuf;

use clap::Parser;

/// Options.
#[derive(Parser, Debug, Clone)]
#[command(name = "relais-load", about = "Load generator for Matrix homeservers")]
pub struct Options {
    /// Base URL of the homeserver.
    #[arg(long, default_value = "http://127.0.0.1:8008")]
    pub url: String,
    /// Prefix of the user names this run registers (must be new on the server).
    #[arg(long, default_value_t = format!("load{}", std::process::id()))]
    pub prefix: String,
    /// Fan-out: users in the room, all syncing.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Fan-out and spread: users sending.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 30)]
    pub messages: usize,
    /// Spread: rooms the messages are spread over; also the room count of the initial sync.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Room creation: rooms to create.
    #[arg(long, default_value_t = 100)]
    pub create: usize,
    /// PID of the server, to report its resident memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Database directory of the server, to report bytes per event.
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// Run only the sliding sync scenario (MSC4186), with a user in this many rooms: first
    /// page and incremental update latency.
    #[arg(long)]
    pub sliding_sync_rooms: Option<usize>,
    /// Write the JSON report here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run only these scenarios (comma-separated: fanout, spread, create, initial-sync); all
    /// of them by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Fan-out rounds with the same users, each in a new room (a longer run, to watch memory).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// With `--rounds`: every round in the same room, a steady workload (memory should then stay
    /// flat once the caches are full).
    #[arg(long)]
    pub same_room: bool,
}

impl Options {
    /// Whether the scenario `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == name)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let report = match options.sliding_sync_rooms {
        Some(rooms) => sliding_sync::run(&options, rooms).await?,
        None => scenarios::run_all(&options).await?,
    };
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &options.json {
        std::fs::write(path, &text)?;
    }
    println!("{text}");
    Ok(())
}
