//! Latency samples and the figures reported from them.

use std::time::Duration;

use serde_json::{Value, json};

/// A set of latency samples.
#[derive(Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0.0..=1.0), in milliseconds, by the nearest-rank method.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1000.0
    }

    /// p50 and p99 as JSON.
    pub fn summary(&self) -> Value {
        json!({ "count": self.len(), "p50_ms": round(self.quantile_ms(0.5)), "p99_ms": round(self.quantile_ms(0.99)) })
    }
}

impl FromIterator<Samples> for Samples {
    fn from_iter<I: IntoIterator<Item = Samples>>(iter: I) -> Self {
        Samples(iter.into_iter().flat_map(|s| s.0).collect())
    }
}

/// Rounds to 0.1.
pub fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Resident memory of a process, in MiB, from `/proc`.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0))
}

/// CPU time (user + system) of this process so far, to show the generator is not the bottleneck.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds_of("self").map(round)
}

/// CPU time (user + system, all threads) of a process so far, unrounded; `who` is a PID or
/// `self`.
pub fn cpu_seconds_of(who: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU used by the server (if its PID is known) and by this generator between two points.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    server: Option<f64>,
    own: Option<f64>,
}

impl CpuMark {
    /// The CPU times now.
    pub fn now(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(|pid| cpu_seconds_of(&pid.to_string())),
            own: cpu_seconds_of("self"),
        }
    }

    /// Adds `server_cpu_s` and `generator_cpu_s` since `self` to a scenario's report, so that
    /// each scenario shows its own cost and whether the generator could have limited it.
    pub fn record(&self, server_pid: Option<u32>, report: &mut Value) {
        let now = Self::now(server_pid);
        if let (Some(a), Some(b)) = (self.server, now.server) {
            report["server_cpu_s"] = round2(b - a).into();
        }
        if let (Some(a), Some(b)) = (self.own, now.own) {
            report["generator_cpu_s"] = round2(b - a).into();
        }
    }
}

/// Rounds to 0.01.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Total size of a directory tree in bytes.
pub fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.quantile_ms(0.5), 50.0);
        assert_eq!(samples.quantile_ms(0.99), 99.0);
        assert_eq!(samples.quantile_ms(1.0), 100.0);
        assert_eq!(Samples::default().quantile_ms(0.5), 0.0);
    }
}
