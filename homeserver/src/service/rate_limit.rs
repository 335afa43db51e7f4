//! Rate limiting: token buckets per user, device and IP address, and the back-off after failed
//! logins.
//!
//! Everything lives in memory (a restart forgets it) behind one mutex per map; the maps are pruned
//! of idle entries so that a flood of addresses cannot grow them without bound.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use ruma::UserId;

use super::accounts::Session;
use crate::config::{RateConfig, RateLimitsConfig};

/// A limited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `/login`.
    Login,
    /// `/register`.
    Register,
    /// `/rooms/{roomId}/send`.
    Send,
    /// Joins and knocks.
    Join,
    /// Invites.
    Invite,
    /// Media uploads.
    MediaUpload,
}

/// The request was refused: try again after `retry_after_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry after {retry_after_ms} ms")]
pub struct Limited {
    /// How long to wait before retrying, in milliseconds.
    pub retry_after_ms: u64,
}

/// Whom a bucket counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Ip(String),
    User(String),
    Device(String, String),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Most remembered entries per map before idle ones are pruned at once.
const PRUNE_ABOVE: usize = 100_000;
/// Idle entries are also pruned every this many calls.
const PRUNE_EVERY: u64 = 4096;
/// Addresses remembered per account as having logged it in.
const KNOWN_ADDRESSES_PER_USER: usize = 16;

/// The rate limiter.
pub struct RateLimiter {
    config: RateLimitsConfig,
    buckets: Mutex<HashMap<(Action, Subject), Bucket>>,
    account_failures: Mutex<HashMap<String, Failures>>,
    ip_failures: Mutex<HashMap<String, Failures>>,
    known_addresses: Mutex<HashMap<String, HashSet<String>>>,
    calls: AtomicU64,
}

impl RateLimiter {
    /// A limiter with these settings.
    pub fn new(config: RateLimitsConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
            account_failures: Mutex::new(HashMap::new()),
            ip_failures: Mutex::new(HashMap::new()),
            known_addresses: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// Number of buckets and failure records held, for the metrics.
    pub fn tracked_entries(&self) -> usize {
        self.buckets.lock().len()
            + self.account_failures.lock().len()
            + self.ip_failures.lock().len()
    }

    fn rate(&self, action: Action) -> &RateConfig {
        match action {
            Action::Login => &self.config.login,
            Action::Register => &self.config.registration,
            Action::Send => &self.config.send,
            Action::Join => &self.config.join,
            Action::Invite => &self.config.invite,
            Action::MediaUpload => &self.config.media_upload,
        }
    }

    /// Counts one `action` by `session` (its device for sends, its user otherwise) and by `ip`;
    /// refuses it if either bucket is empty. Without a session (login, registration) only the
    /// address counts, with the action's own bucket.
    pub fn check(
        &self,
        action: Action,
        session: Option<&Session>,
        ip: Option<&str>,
    ) -> Result<(), Limited> {
        self.check_at(action, session, ip, Instant::now())
    }

    fn check_at(
        &self,
        action: Action,
        session: Option<&Session>,
        ip: Option<&str>,
        now: Instant,
    ) -> Result<(), Limited> {
        if !self.config.enabled {
            return Ok(());
        }
        // An application service registered with `rate_limited: false` is trusted to pace itself
        // (a bridge relays many users' traffic through one address).
        if session.and_then(|s| s.appservice.as_ref()).is_some_and(|a| !a.rate_limited) {
            return Ok(());
        }
        self.maybe_prune(now);
        let rate = self.rate(action);
        if rate.per_second <= 0.0 || !rate.per_second.is_finite() || rate.burst == 0 {
            return Ok(());
        }
        let user_rate = (rate.per_second, f64::from(rate.burst));
        let factor = f64::from(self.config.ip_factor.max(1));
        let mut wanted: Vec<((Action, Subject), (f64, f64))> = Vec::with_capacity(2);
        match session {
            Some(session) => {
                let subject = if action == Action::Send {
                    Subject::Device(session.user_id.to_string(), session.device_id.to_string())
                } else {
                    Subject::User(session.user_id.to_string())
                };
                wanted.push(((action, subject), user_rate));
                if let Some(ip) = ip {
                    wanted.push((
                        (action, Subject::Ip(ip.to_owned())),
                        (user_rate.0 * factor, user_rate.1 * factor),
                    ));
                }
            }
            None => {
                if let Some(ip) = ip {
                    wanted.push(((action, Subject::Ip(ip.to_owned())), user_rate));
                }
            }
        }
        let mut buckets = self.buckets.lock();
        let mut refilled = Vec::with_capacity(wanted.len());
        let mut wait = 0u64;
        for (key, (per_second, burst)) in &wanted {
            let bucket =
                buckets.get(key).copied().unwrap_or(Bucket { tokens: *burst, updated: now });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            let tokens = (bucket.tokens + elapsed * per_second).min(*burst);
            if tokens < 1.0 {
                wait = wait.max(((1.0 - tokens) / per_second * 1000.0).ceil() as u64);
            }
            refilled.push(tokens);
        }
        if wait > 0 {
            return Err(Limited { retry_after_ms: wait.max(1) });
        }
        for ((key, _), tokens) in wanted.into_iter().zip(refilled) {
            buckets.insert(key, Bucket { tokens: tokens - 1.0, updated: now });
        }
        Ok(())
    }

    /// Before a password is checked: refuses the attempt if the address's login bucket is empty
    /// or the address or the account is in its back-off after failed logins. The account's
    /// back-off does not apply to an address that has logged it in before.
    pub fn login_attempt(&self, ip: Option<&str>, user: Option<&UserId>) -> Result<(), Limited> {
        self.login_attempt_at(ip, user, Instant::now())
    }

    fn login_attempt_at(
        &self,
        ip: Option<&str>,
        user: Option<&UserId>,
        now: Instant,
    ) -> Result<(), Limited> {
        if !self.config.enabled {
            return Ok(());
        }
        self.check_at(Action::Login, None, ip, now)?;
        let backoff = &self.config.login_backoff;
        let mut wait = Duration::ZERO;
        if let Some(ip) = ip
            && let Some(failures) = self.ip_failures.lock().get(ip)
        {
            wait = wait.max(self.remaining(failures, backoff.free_failures_per_ip, now));
        }
        if let Some(user) = user {
            let known = ip.is_some_and(|ip| {
                self.known_addresses.lock().get(user.as_str()).is_some_and(|set| set.contains(ip))
            });
            if !known && let Some(failures) = self.account_failures.lock().get(user.as_str()) {
                wait = wait.max(self.remaining(failures, backoff.free_failures_per_account, now));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Limited {
                retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
            })
        }
    }

    /// The wait left after `failures`, with `free` failures allowed before any wait.
    fn remaining(&self, failures: &Failures, free: u32, now: Instant) -> Duration {
        let backoff = &self.config.login_backoff;
        if now.saturating_duration_since(failures.last)
            >= Duration::from_secs(backoff.forget_after_secs)
        {
            return Duration::ZERO;
        }
        let delay =
            backoff_delay(failures.count, free, backoff.base_delay_ms, backoff.max_delay_secs);
        (failures.last + delay).saturating_duration_since(now)
    }

    /// Records a failed login from `ip` to `user` (`None`: an unknown user).
    pub fn login_failed(&self, ip: Option<&str>, user: Option<&UserId>) {
        self.login_failed_at(ip, user, Instant::now());
    }

    fn login_failed_at(&self, ip: Option<&str>, user: Option<&UserId>, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let forget = Duration::from_secs(self.config.login_backoff.forget_after_secs);
        let bump = |map: &Mutex<HashMap<String, Failures>>, key: &str| {
            let mut map = map.lock();
            let entry = map.entry(key.to_owned()).or_insert(Failures { count: 0, last: now });
            if now.saturating_duration_since(entry.last) >= forget {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        };
        if let Some(ip) = ip {
            bump(&self.ip_failures, ip);
        }
        if let Some(user) = user {
            bump(&self.account_failures, user.as_str());
        }
    }

    /// Records a successful login: the account's failures are forgotten and the address is
    /// remembered as one this account logs in from. The address's own failures stay.
    pub fn login_succeeded(&self, ip: Option<&str>, user: &UserId) {
        if !self.config.enabled {
            return;
        }
        self.account_failures.lock().remove(user.as_str());
        if let Some(ip) = ip {
            let mut known = self.known_addresses.lock();
            if known.len() >= PRUNE_ABOVE {
                known.clear();
            }
            let set = known.entry(user.as_str().to_owned()).or_default();
            if set.len() >= KNOWN_ADDRESSES_PER_USER {
                set.clear();
            }
            set.insert(ip.to_owned());
        }
    }

    /// Drops full buckets and forgotten failures, every [`PRUNE_EVERY`] calls or when a map grows
    /// past [`PRUNE_ABOVE`].
    fn maybe_prune(&self, now: Instant) {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        let large = self.buckets.lock().len() > PRUNE_ABOVE
            || self.ip_failures.lock().len() > PRUNE_ABOVE
            || self.account_failures.lock().len() > PRUNE_ABOVE;
        if !calls.is_multiple_of(PRUNE_EVERY) && !large {
            return;
        }
        let factor = f64::from(self.config.ip_factor.max(1));
        self.buckets.lock().retain(|(action, subject), bucket| {
            let rate = self.rate(*action);
            let scale = if matches!(subject, Subject::Ip(_))
                && !matches!(action, Action::Login | Action::Register)
            {
                factor
            } else {
                1.0
            };
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * rate.per_second * scale < f64::from(rate.burst) * scale
        });
        let forget = Duration::from_secs(self.config.login_backoff.forget_after_secs);
        let fresh = |failures: &mut Failures| now.saturating_duration_since(failures.last) < forget;
        self.ip_failures.lock().retain(|_, f| fresh(f));
        self.account_failures.lock().retain(|_, f| fresh(f));
    }
}

/// The wait after `count` failures with `free` allowed: none up to `free`, then `base_ms`
/// doubling with each failure, at most `max_secs`.
fn backoff_delay(count: u32, free: u32, base_ms: u64, max_secs: u64) -> Duration {
    if count < free.max(1) {
        return Duration::ZERO;
    }
    let doublings = (count - free.max(1)).min(40);
    let ms = base_ms.saturating_mul(1u64 << doublings).min(max_secs.saturating_mul(1000));
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use ruma::{device_id, user_id};

    use super::*;
    use crate::config::Config;

    fn limiter() -> RateLimiter {
        RateLimiter::new(Config::default().rate_limits)
    }

    fn session(device: &str) -> Session {
        Session {
            user_id: user_id!("@alice:localhost").to_owned(),
            device_id: device.into(),
            appservice: None,
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let limiter = limiter();
        let now = Instant::now();
        let alice = session("A");
        for _ in 0..30 {
            limiter
                .check_at(Action::Send, Some(&alice), Some("10.0.0.1"), now)
                .expect("within the burst");
        }
        let limited = limiter
            .check_at(Action::Send, Some(&alice), Some("10.0.0.1"), now)
            .expect_err("burst spent");
        assert_eq!(limited.retry_after_ms, 500, "2 per second: one token in 500 ms");
        // Another device of the same user has its own bucket for sends.
        limiter
            .check_at(Action::Send, Some(&session("B")), Some("10.0.0.1"), now)
            .expect("other device");
        let later = now + Duration::from_millis(500);
        limiter.check_at(Action::Send, Some(&alice), Some("10.0.0.1"), later).expect("refilled");
    }

    #[test]
    fn an_address_is_limited_across_users() {
        let mut config = Config::default().rate_limits;
        config.ip_factor = 2;
        config.join = RateConfig { per_second: 1.0, burst: 1 };
        let limiter = RateLimiter::new(config);
        let now = Instant::now();
        let user = |n: u32| Session {
            user_id: UserId::parse(format!("@u{n}:localhost")).expect("valid"),
            device_id: device_id!("D").to_owned(),
            appservice: None,
        };
        limiter.check_at(Action::Join, Some(&user(1)), Some("10.0.0.9"), now).expect("first");
        limiter.check_at(Action::Join, Some(&user(2)), Some("10.0.0.9"), now).expect("second");
        limiter
            .check_at(Action::Join, Some(&user(3)), Some("10.0.0.9"), now)
            .expect_err("address spent");
        limiter
            .check_at(Action::Join, Some(&user(3)), Some("10.0.0.10"), now)
            .expect("other address");
    }

    #[test]
    fn appservices_with_rate_limited_false_are_not_limited() {
        let limiter = RateLimiter::new(Config::default().rate_limits);
        let now = Instant::now();
        let caller = |rate_limited| {
            let mut s = session("AS");
            s.appservice = Some(crate::service::accounts::AppserviceCaller {
                id: "bridge".into(),
                rate_limited,
                device: false,
            });
            s
        };
        let burst = Config::default().rate_limits.send.burst;
        for _ in 0..burst * 3 {
            limiter.check_at(Action::Send, Some(&caller(false)), None, now).expect("exempt");
        }
        let limited = (0..=burst)
            .map(|_| limiter.check_at(Action::Send, Some(&caller(true)), None, now))
            .any(|r| r.is_err());
        assert!(limited, "rate_limited: true keeps the limits");
    }

    #[test]
    fn zero_disables_a_limit_and_enabled_false_disables_all() {
        let mut config = Config::default().rate_limits;
        config.registration.burst = 0;
        let limiter = RateLimiter::new(config.clone());
        for _ in 0..1000 {
            limiter.check(Action::Register, None, Some("10.0.0.1")).expect("no limit");
        }
        config.enabled = false;
        let limiter = RateLimiter::new(config);
        let alice = session("A");
        for _ in 0..1000 {
            limiter.check(Action::Send, Some(&alice), Some("10.0.0.1")).expect("no limit");
            limiter.login_failed(Some("10.0.0.1"), Some(&alice.user_id));
        }
        limiter.login_attempt(Some("10.0.0.1"), Some(&alice.user_id)).expect("no back-off");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_delay(4, 5, 1000, 60), Duration::ZERO);
        assert_eq!(backoff_delay(5, 5, 1000, 60), Duration::from_secs(1));
        assert_eq!(backoff_delay(6, 5, 1000, 60), Duration::from_secs(2));
        assert_eq!(backoff_delay(8, 5, 1000, 60), Duration::from_secs(8));
        assert_eq!(backoff_delay(30, 5, 1000, 60), Duration::from_secs(60));
        assert_eq!(backoff_delay(u32::MAX, 5, u64::MAX, 60), Duration::from_secs(60));
    }

    #[test]
    fn failed_logins_back_off_the_account_but_not_its_known_address() {
        let limiter = limiter();
        let alice = user_id!("@alice:localhost");
        let now = Instant::now();
        limiter.login_succeeded(Some("192.0.2.1"), alice);
        for _ in 0..5 {
            limiter
                .login_attempt_at(Some("198.51.100.7"), Some(alice), now)
                .expect("free failures");
            limiter.login_failed_at(Some("198.51.100.7"), Some(alice), now);
        }
        let limited = limiter
            .login_attempt_at(Some("198.51.100.7"), Some(alice), now)
            .expect_err("attacker backs off");
        assert_eq!(limited.retry_after_ms, 1000);
        // A new address waits as well, at most max_delay_secs.
        limiter
            .login_attempt_at(Some("203.0.113.5"), Some(alice), now)
            .expect_err("new address waits");
        // The address alice logged in from before is not kept out.
        limiter.login_attempt_at(Some("192.0.2.1"), Some(alice), now).expect("known address");
        // Another account from the attacker's address is not affected yet (20 free failures per IP).
        limiter
            .login_attempt_at(Some("198.51.100.7"), Some(user_id!("@bob:localhost")), now)
            .expect("bob");
        // After the wait the attacker may try again.
        limiter
            .login_attempt_at(Some("198.51.100.7"), Some(alice), now + Duration::from_secs(1))
            .expect("wait over");
        // Many more failures: the wait never exceeds the cap, and is forgotten eventually.
        let mut t = now;
        for _ in 0..30 {
            t += Duration::from_secs(61);
            limiter.login_failed_at(Some("198.51.100.7"), Some(alice), t);
        }
        let limited =
            limiter.login_attempt_at(Some("203.0.113.5"), Some(alice), t).expect_err("capped wait");
        assert!(limited.retry_after_ms <= 60_000, "{limited:?}");
        limiter
            .login_attempt_at(Some("203.0.113.5"), Some(alice), t + Duration::from_secs(60))
            .expect("cap passed");
        limiter.login_succeeded(Some("203.0.113.5"), alice);
        limiter
            .login_attempt_at(Some("203.0.113.6"), Some(alice), t)
            .expect("success clears the account");
    }

    #[test]
    fn failures_from_one_address_back_off_that_address() {
        let limiter = limiter();
        let now = Instant::now();
        for n in 0..20 {
            let user = UserId::parse(format!("@victim{n}:localhost")).expect("valid");
            limiter.login_failed_at(Some("198.51.100.7"), Some(&user), now);
        }
        limiter.login_attempt_at(Some("198.51.100.7"), None, now).expect_err("address backs off");
        limiter.login_attempt_at(Some("198.51.100.8"), None, now).expect("other address");
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = limiter();
        let now = Instant::now();
        for n in 0..10 {
            limiter
                .check_at(Action::Register, None, Some(&format!("10.0.0.{n}")), now)
                .expect("first");
        }
        assert!(limiter.tracked_entries() >= 9);
        limiter.calls.store(PRUNE_EVERY, Ordering::Relaxed);
        limiter.maybe_prune(now + Duration::from_secs(3600));
        assert_eq!(limiter.tracked_entries(), 0);
    }
}
