//! Prometheus metrics: a small registry of counters and histograms filled by a tower layer, and
//! `GET /metrics` in the Prometheus text format.
//!
//! Labels are the matched route template (`/_matrix/client/v3/rooms/{roomId}/send/...`), the
//! method and the status: never a token, a user ID, a room ID or any other value from a request.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use parking_lot::Mutex;

use crate::service::Services;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The route label of requests that matched no route (never the raw path, which may hold IDs).
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry: counters, histograms and gauges kept since start-up.
pub struct Metrics {
    started: Instant,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    in_flight: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *self.requests.lock().entry((route.to_owned(), method.to_owned(), status)).or_default() +=
            1;
        let mut latency = self.latency.lock();
        let histogram = latency.entry((route.to_owned(), method.to_owned())).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The registry and the services' gauges in the Prometheus text format (version 0.0.4).
    pub fn render(&self, services: &Services) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP relais_http_requests_total HTTP requests by matched route, method and status."
        );
        let _ = writeln!(out, "# TYPE relais_http_requests_total counter");
        for ((route, method, status), count) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "relais_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(
            out,
            "# HELP relais_http_request_duration_seconds Time to answer, by matched route and method."
        );
        let _ = writeln!(out, "# TYPE relais_http_request_duration_seconds histogram");
        for ((route, method), histogram) in self.latency.lock().iter() {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "relais_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "relais_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "relais_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "relais_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP relais_policy_checks_total Policy checks by callback and outcome \
             (allowed, refused, failed_closed, failed_open)."
        );
        let _ = writeln!(out, "# TYPE relais_policy_checks_total counter");
        for (callback, outcome, count) in services.policy_checks.outcomes() {
            let _ = writeln!(
                out,
                "relais_policy_checks_total{{callback=\"{callback}\",outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
        let mut gauge = |name: &str, help: &str, value: Option<u64>| {
            if let Some(value) = value {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {value}");
            }
        };
        gauge(
            "relais_http_requests_in_flight",
            "Requests being answered, long-polls included.",
            u64::try_from(self.in_flight.load(Ordering::Relaxed)).ok(),
        );
        gauge(
            "relais_uptime_seconds",
            "Seconds since start-up.",
            Some(self.started.elapsed().as_secs()),
        );
        gauge(
            "relais_sync_waiting_users",
            "Users with a /sync long-poll waiting for news.",
            u64::try_from(services.notifier.waiting_users()).ok(),
        );
        gauge(
            "relais_rate_limit_entries",
            "Rate-limit buckets and login-failure records held in memory.",
            u64::try_from(services.rate_limits.tracked_entries()).ok(),
        );
        gauge(
            "relais_stream_position",
            "The highest stream position visible to /sync.",
            Some(services.globals.visible_count()),
        );
        let db = &services.db;
        gauge(
            "relais_rocksdb_block_cache_usage_bytes",
            "Bytes in RocksDB's shared block cache.",
            db.int_property("rocksdb.block-cache-usage"),
        );
        gauge(
            "relais_rocksdb_block_cache_capacity_bytes",
            "Capacity of RocksDB's shared block cache.",
            db.int_property("rocksdb.block-cache-capacity"),
        );
        gauge(
            "relais_rocksdb_estimated_keys",
            "Estimated number of keys, all tables.",
            db.int_property_sum("rocksdb.estimate-num-keys"),
        );
        gauge(
            "relais_rocksdb_sst_bytes",
            "Size of the SST files, all tables.",
            db.int_property_sum("rocksdb.total-sst-files-size"),
        );
        gauge(
            "relais_rocksdb_memtable_bytes",
            "Size of the memtables, all tables.",
            db.int_property_sum("rocksdb.cur-size-all-mem-tables"),
        );
        gauge(
            "relais_rocksdb_pending_compaction_bytes",
            "Estimated bytes compaction still has to rewrite, all tables.",
            db.int_property_sum("rocksdb.estimate-pending-compaction-bytes"),
        );
        gauge(
            "relais_rocksdb_background_errors",
            "Background errors RocksDB has met.",
            db.int_property("rocksdb.background-errors"),
        );
        out
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Keeps `in_flight` right when a request's future is dropped (client gone, timeout).
struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The middleware: times every request and counts it by matched route, method and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let guard = InFlight(&metrics.in_flight);
    let response = next.run(request).await;
    drop(guard);
    metrics.record(&route, &method, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub fn routes(metrics: Arc<Metrics>) -> Router<Arc<Services>> {
    Router::new().route(
        "/metrics",
        get(move |State(services): State<Arc<Services>>| {
            let metrics = metrics.clone();
            async move {
                let body = metrics.render(&services);
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
                    .into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.record("/a", "GET", 200, 0.003);
        metrics.record("/a", "GET", 200, 2.0);
        metrics.record("/a", "GET", 404, 100.0);
        let latency = metrics.latency.lock();
        let histogram = latency.get(&("/a".to_owned(), "GET".to_owned())).expect("recorded");
        assert_eq!(histogram.count, 3);
        assert_eq!(histogram.buckets[0], 0, "le 0.001");
        assert_eq!(histogram.buckets[1], 1, "le 0.005");
        assert_eq!(histogram.buckets[9], 2, "le 2.5");
        assert_eq!(histogram.buckets[13], 2, "le 60: the 100 s request is only in +Inf");
        assert_eq!(
            metrics.requests.lock().get(&("/a".to_owned(), "GET".to_owned(), 404)),
            Some(&1)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
