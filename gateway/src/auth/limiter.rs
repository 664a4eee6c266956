//! Failed sign-ins limited per source address and per user name, so a password cannot be
//! guessed at speed from one address or spread over many. governor's GCRA counts the
//! failures; a key whose allowance runs out is refused, before any password is checked,
//! until its next attempt is due. Successful sign-ins cost nothing.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures one address may make at once, then one more every [`ADDRESS_PERIOD`].
pub const ADDRESS_BURST: u32 = 10;
pub const ADDRESS_PERIOD: Duration = Duration::from_secs(6);
/// Failures on one user name at once, then one more every [`USER_PERIOD`].
pub const USER_BURST: u32 = 5;
pub const USER_PERIOD: Duration = Duration::from_secs(12);
/// Keys kept before old ones are forgotten (bounds memory under a spray of names).
const MAX_KEYS: usize = 100_000;

struct Limit<K: Hash + Eq + Clone> {
    failures: DefaultKeyedRateLimiter<K>,
    /// Keys refused until the given time.
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(burst: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Limit {
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn refused(&self, key: &K, now: Instant) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked
            .get(key)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn fail(&self, key: &K, now: Instant) {
        if self.failures.len() > MAX_KEYS {
            self.failures.retain_recent();
        }
        if let Err(not_until) = self.failures.check_key(key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            if blocked.len() > MAX_KEYS {
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(key.clone(), now + wait);
        }
    }
}

pub struct SignInLimiter {
    by_address: Limit<IpAddr>,
    by_user: Limit<String>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self::new(ADDRESS_BURST, ADDRESS_PERIOD, USER_BURST, USER_PERIOD)
    }
}

impl SignInLimiter {
    pub fn new(
        address_burst: u32,
        address_period: Duration,
        user_burst: u32,
        user_period: Duration,
    ) -> Self {
        SignInLimiter {
            by_address: Limit::new(address_burst, address_period),
            by_user: Limit::new(user_burst, user_period),
        }
    }

    /// `Err(wait)` while this address or name is refused.
    pub fn check(&self, address: Option<IpAddr>, username: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let by_address = address.and_then(|a| self.by_address.refused(&a, now));
        let by_user = self.by_user.refused(&username.to_ascii_lowercase(), now);
        match by_address.max(by_user) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Count a failed attempt against the address and the name.
    pub fn failed(&self, address: Option<IpAddr>, username: &str) {
        let now = Instant::now();
        if let Some(a) = address {
            self.by_address.fail(&a, now);
        }
        self.by_user.fail(&username.to_ascii_lowercase(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_burst_are_refused_per_name_and_per_address() {
        let l = SignInLimiter::new(4, Duration::from_secs(60), 2, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..2 {
            assert!(l.check(Some(a), "alice").is_ok());
            l.failed(Some(a), "ALICE");
        }
        // The allowance of two is spent; the third failure finds it empty.
        assert!(l.check(Some(a), "alice").is_ok());
        l.failed(Some(a), "alice");
        let wait = l.check(Some(a), "alice").expect_err("name refused");
        assert!(wait > Duration::from_secs(1), "{wait:?}");
        // The address has failed three times; one more and it is refused for every name.
        assert!(l.check(Some(a), "bob").is_ok());
        l.failed(Some(a), "bob");
        l.failed(Some(a), "carol");
        assert!(l.check(Some(a), "dave").is_err(), "address refused");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(l.check(Some(b), "dave").is_ok());
        assert!(l.check(Some(b), "alice").is_err(), "the name stays refused");
    }
}
