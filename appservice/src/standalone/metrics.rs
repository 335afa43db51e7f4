//! `GET /metrics` of the standalone service, in Prometheus's text format: the checks answered by
//! callback and outcome, the time they took, the directory's size and the transactions received.

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use parking_lot::Mutex;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The action may go ahead.
    Allowed,
    /// A rule refused it.
    Refused,
    /// The service could not decide (the homeserver failed): refused.
    Undecided,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::Undecided => "undecided",
        }
    }
}

/// A check's counter key: the homeserver that asked, the callback and the outcome.
type CheckKey = (String, String, Outcome);

/// How many checks, and their total time in seconds.
type CheckCount = (u64, f64);

/// The counters.
#[derive(Default)]
pub struct Metrics {
    /// Checks by (homeserver, callback, outcome): how many and their total time in seconds.
    checks: Mutex<BTreeMap<CheckKey, CheckCount>>,
    /// Transactions received from the homeserver, and directory records they changed.
    transactions: Mutex<(u64, u64)>,
}

impl Metrics {
    /// Counts a check a homeserver asked.
    pub fn check(&self, server: &str, callback: &str, outcome: Outcome, took: Duration) {
        let mut checks = self.checks.lock();
        let entry = checks.entry((server.to_owned(), callback.to_owned(), outcome)).or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }

    /// Counts a transaction and the records it changed.
    pub fn transaction(&self, records: usize) {
        let mut transactions = self.transactions.lock();
        transactions.0 += 1;
        transactions.1 += u64::try_from(records).unwrap_or(u64::MAX);
    }

    /// The text of `/metrics`, with each homeserver's directory: its users and whether it is
    /// loaded.
    pub fn render(&self, directories: &[(String, usize, bool)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP relais_policy_service_checks_total Checks answered, by callback and outcome."
        );
        let _ = writeln!(out, "# TYPE relais_policy_service_checks_total counter");
        let checks = self.checks.lock().clone();
        for ((server, callback, outcome), (count, _)) in &checks {
            let outcome = outcome.as_str();
            let _ = writeln!(
                out,
                "relais_policy_service_checks_total{{server=\"{server}\",callback=\"{callback}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP relais_policy_service_check_seconds_total Time spent answering checks."
        );
        let _ = writeln!(out, "# TYPE relais_policy_service_check_seconds_total counter");
        for ((server, callback, outcome), (_, seconds)) in &checks {
            let outcome = outcome.as_str();
            let _ = writeln!(
                out,
                "relais_policy_service_check_seconds_total{{server=\"{server}\",callback=\"{callback}\",outcome=\"{outcome}\"}} {seconds:.6}"
            );
        }
        let (transactions, records) = *self.transactions.lock();
        let _ = writeln!(out, "# TYPE relais_policy_service_transactions_total counter");
        let _ = writeln!(out, "relais_policy_service_transactions_total {transactions}");
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_updates_total counter");
        let _ = writeln!(out, "relais_policy_service_directory_updates_total {records}");
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_users gauge");
        for (server, users, _) in directories {
            let _ = writeln!(
                out,
                "relais_policy_service_directory_users{{server=\"{server}\"}} {users}"
            );
        }
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_loaded gauge");
        for (server, _, loaded) in directories {
            let loaded = u8::from(*loaded);
            let _ = writeln!(
                out,
                "relais_policy_service_directory_loaded{{server=\"{server}\"}} {loaded}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_counted_by_callback_and_outcome() {
        let metrics = Metrics::default();
        metrics.check("x", "user_may_invite", Outcome::Refused, Duration::from_millis(2));
        metrics.check("x", "user_may_invite", Outcome::Refused, Duration::from_millis(3));
        metrics.check("x", "user_may_join_room", Outcome::Allowed, Duration::from_millis(1));
        metrics.transaction(2);
        let text = metrics.render(&[("x".into(), 7, true)]);
        assert!(text.contains(
            "relais_policy_service_checks_total{server=\"x\",callback=\"user_may_invite\",outcome=\"refused\"} 2"
        ));
        assert!(text.contains(
            "relais_policy_service_check_seconds_total{server=\"x\",callback=\"user_may_invite\",outcome=\"refused\"} 0.005000"
        ));
        assert!(text.contains("relais_policy_service_directory_users{server=\"x\"} 7"));
        assert!(text.contains("relais_policy_service_directory_loaded{server=\"x\"} 1"));
        assert!(text.contains("relais_policy_service_directory_updates_total 2"));
    }
}
