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

/// The counters.
#[derive(Default)]
pub struct Metrics {
    /// Checks by (callback, outcome): how many and their total time in seconds.
    checks: Mutex<BTreeMap<(String, Outcome), (u64, f64)>>,
    /// Transactions received from the homeserver, and directory records they changed.
    transactions: Mutex<(u64, u64)>,
}

impl Metrics {
    /// Counts a check.
    pub fn check(&self, callback: &str, outcome: Outcome, took: Duration) {
        let mut checks = self.checks.lock();
        let entry = checks.entry((callback.to_owned(), outcome)).or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }

    /// Counts a transaction and the records it changed.
    pub fn transaction(&self, records: usize) {
        let mut transactions = self.transactions.lock();
        transactions.0 += 1;
        transactions.1 += u64::try_from(records).unwrap_or(u64::MAX);
    }

    /// The text of `/metrics`, with `users` records and `loaded` the directory's state.
    pub fn render(&self, users: usize, loaded: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP relais_policy_service_checks_total Checks answered, by callback and outcome."
        );
        let _ = writeln!(out, "# TYPE relais_policy_service_checks_total counter");
        let checks = self.checks.lock().clone();
        for ((callback, outcome), (count, _)) in &checks {
            let outcome = outcome.as_str();
            let _ = writeln!(
                out,
                "relais_policy_service_checks_total{{callback=\"{callback}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP relais_policy_service_check_seconds_total Time spent answering checks."
        );
        let _ = writeln!(out, "# TYPE relais_policy_service_check_seconds_total counter");
        for ((callback, outcome), (_, seconds)) in &checks {
            let outcome = outcome.as_str();
            let _ = writeln!(
                out,
                "relais_policy_service_check_seconds_total{{callback=\"{callback}\",outcome=\"{outcome}\"}} {seconds:.6}"
            );
        }
        let (transactions, records) = *self.transactions.lock();
        let _ = writeln!(out, "# TYPE relais_policy_service_transactions_total counter");
        let _ = writeln!(out, "relais_policy_service_transactions_total {transactions}");
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_updates_total counter");
        let _ = writeln!(out, "relais_policy_service_directory_updates_total {records}");
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_users gauge");
        let _ = writeln!(out, "relais_policy_service_directory_users {users}");
        let _ = writeln!(out, "# TYPE relais_policy_service_directory_loaded gauge");
        let _ = writeln!(out, "relais_policy_service_directory_loaded {}", u8::from(loaded));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_counted_by_callback_and_outcome() {
        let metrics = Metrics::default();
        metrics.check("user_may_invite", Outcome::Refused, Duration::from_millis(2));
        metrics.check("user_may_invite", Outcome::Refused, Duration::from_millis(3));
        metrics.check("user_may_join_room", Outcome::Allowed, Duration::from_millis(1));
        metrics.transaction(2);
        let text = metrics.render(7, true);
        assert!(text.contains(
            "relais_policy_service_checks_total{callback=\"user_may_invite\",outcome=\"refused\"} 2"
        ));
        assert!(text.contains(
            "relais_policy_service_check_seconds_total{callback=\"user_may_invite\",outcome=\"refused\"} 0.005000"
        ));
        assert!(text.contains("relais_policy_service_directory_users 7"));
        assert!(text.contains("relais_policy_service_directory_updates_total 2"));
    }
}
