//! Staying inside the provider's limits before it says no: a per-minute request and token
//! budget from configuration, tightened by what the `x-ratelimit-*` headers report, and a
//! circuit breaker that stops calling a server that keeps failing.

use reqwest::header::HeaderMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// What a response's headers say about the remaining budget.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RateLimitHeaders {
    pub remaining_requests: Option<u64>,
    pub remaining_tokens: Option<u64>,
    pub reset_requests: Option<Duration>,
    pub reset_tokens: Option<Duration>,
    pub retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    pub fn from_headers(h: &HeaderMap) -> Self {
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        RateLimitHeaders {
            remaining_requests: number("x-ratelimit-remaining-requests"),
            remaining_tokens: number("x-ratelimit-remaining-tokens"),
            reset_requests: text("x-ratelimit-reset-requests").and_then(parse_reset),
            reset_tokens: text("x-ratelimit-reset-tokens").and_then(parse_reset),
            // `retry-after` is seconds here; the HTTP-date form is not used by these APIs.
            retry_after: text("retry-after")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
        }
    }
}

/// A reset time as the APIs write it: `7.66s`, `2m59.56s`, `1h2m3s`, `120ms`, or bare seconds.
pub fn parse_reset(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0.0f64;
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * factor;
        any = true;
    }
    (any && total.is_finite()).then(|| Duration::from_secs_f64(total))
}

/// Requests and tokens sent in the last minute, against the configured caps and whatever
/// the server last reported.
#[derive(Debug)]
pub struct RateLimiter {
    requests_per_minute: u32,
    tokens_per_minute: u32,
    sent: VecDeque<(Instant, u64)>,
    /// No request before this (from `retry-after` or exhausted headers).
    blocked_until: Option<Instant>,
    /// Tokens the server says are left, and when that count resets.
    server_tokens: Option<(u64, Instant)>,
}

impl RateLimiter {
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32) -> Self {
        RateLimiter {
            requests_per_minute,
            tokens_per_minute,
            sent: VecDeque::new(),
            blocked_until: None,
            server_tokens: None,
        }
    }

    /// How long to wait before sending a request estimated at `tokens`; zero means now.
    pub fn delay(&mut self, now: Instant, tokens: u64) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= MINUTE)
        {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        if let Some(until) = self.blocked_until {
            wait = wait.max(until.saturating_duration_since(now));
        }
        if self.requests_per_minute > 0 && self.sent.len() >= self.requests_per_minute as usize {
            let idx = self.sent.len() - self.requests_per_minute as usize;
            wait = wait.max((self.sent[idx].0 + MINUTE).saturating_duration_since(now));
        }
        if self.tokens_per_minute > 0 {
            // Wait until enough of the last minute's tokens age out to fit this request;
            // a request bigger than the whole cap waits for an empty minute, then goes.
            let cap = self.tokens_per_minute as u64;
            let mut used: u64 = self.sent.iter().map(|(_, n)| n).sum();
            let mut i = 0;
            while used + tokens > cap && i < self.sent.len() {
                used -= self.sent[i].1;
                wait = wait.max((self.sent[i].0 + MINUTE).saturating_duration_since(now));
                i += 1;
            }
        }
        if let Some((left, reset)) = self.server_tokens {
            if left < tokens && reset > now {
                wait = wait.max(reset - now);
            }
        }
        wait
    }

    /// Count a request as sent.
    pub fn record(&mut self, now: Instant, tokens: u64) {
        self.sent.push_back((now, tokens));
    }

    /// Replace the last request's estimate with what the server counted.
    pub fn correct_last(&mut self, tokens: u64) {
        if let Some(last) = self.sent.back_mut() {
            last.1 = tokens;
        }
    }

    /// Take in what the server reported.
    pub fn observe(&mut self, now: Instant, h: &RateLimitHeaders, max_wait: Duration) {
        let mut block = |d: Duration| {
            let until = now + d.min(max_wait);
            self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
        };
        if let Some(ra) = h.retry_after {
            block(ra);
        }
        if h.remaining_requests == Some(0) {
            if let Some(r) = h.reset_requests {
                block(r);
            }
        }
        match (h.remaining_tokens, h.reset_tokens) {
            (Some(left), Some(reset)) => {
                self.server_tokens = Some((left, now + reset.min(max_wait)))
            }
            (Some(left), None) => self.server_tokens = Some((left, now + MINUTE.min(max_wait))),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// Cooldown over: one probe call decides.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    pub times_opened: u64,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            opened_at: None,
            times_opened: 0,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.duration_since(t) >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// Time left until a probe is allowed (zero when closed or half-open).
    pub fn wait(&self, now: Instant) -> Duration {
        self.opened_at.map_or(Duration::ZERO, |t| {
            (t + self.cooldown).saturating_duration_since(now)
        })
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
    }

    pub fn failure(&mut self, now: Instant) {
        self.failures += 1;
        let probe_failed = self.state(now) == BreakerState::HalfOpen;
        if probe_failed || (self.opened_at.is_none() && self.failures >= self.threshold) {
            self.opened_at = Some(now);
            self.times_opened += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reset_durations_in_every_form_the_apis_send() {
        assert_eq!(parse_reset("7.66s"), Some(Duration::from_millis(7660)));
        assert_eq!(
            parse_reset("2m59.56s"),
            Some(Duration::from_millis(179_560))
        );
        assert_eq!(parse_reset("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_reset("120ms"), Some(Duration::from_millis(120)));
        assert_eq!(parse_reset("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_reset("soon"), None);
        assert_eq!(parse_reset("5x"), None);
        assert_eq!(parse_reset(""), None);
    }

    #[test]
    fn headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("2m0s"),
        );
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("150"),
        );
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("7.5s"));
        h.insert("retry-after", HeaderValue::from_static("3"));
        let r = RateLimitHeaders::from_headers(&h);
        assert_eq!(r.remaining_requests, Some(0));
        assert_eq!(r.reset_requests, Some(Duration::from_secs(120)));
        assert_eq!(r.remaining_tokens, Some(150));
        assert_eq!(r.reset_tokens, Some(Duration::from_millis(7500)));
        assert_eq!(r.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn requests_per_minute_cap_spaces_calls() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2, 0);
        assert_eq!(l.delay(t0, 100), Duration::ZERO);
        l.record(t0, 100);
        l.record(t0 + Duration::from_secs(10), 100);
        let d = l.delay(t0 + Duration::from_secs(20), 100);
        assert_eq!(d, Duration::from_secs(40));
        assert_eq!(l.delay(t0 + Duration::from_secs(60), 100), Duration::ZERO);
    }

    #[test]
    fn token_cap_waits_for_old_calls_to_age_out() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(0, 1000);
        l.record(t0, 600);
        l.record(t0 + Duration::from_secs(30), 300);
        // 900 used: 200 more must wait until the first 600 ages out.
        assert_eq!(
            l.delay(t0 + Duration::from_secs(40), 200),
            Duration::from_secs(20)
        );
        assert_eq!(l.delay(t0 + Duration::from_secs(40), 100), Duration::ZERO);
    }

    #[test]
    fn server_reports_and_retry_after_block() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(0, 0);
        let max = Duration::from_secs(60);
        l.observe(
            t0,
            &RateLimitHeaders {
                retry_after: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            max,
        );
        assert_eq!(l.delay(t0, 10), Duration::from_secs(5));
        l.observe(
            t0,
            &RateLimitHeaders {
                remaining_tokens: Some(50),
                reset_tokens: Some(Duration::from_secs(8)),
                ..Default::default()
            },
            max,
        );
        assert_eq!(l.delay(t0, 100), Duration::from_secs(8));
        assert_eq!(l.delay(t0 + Duration::from_secs(6), 40), Duration::ZERO);
        // An absurd retry-after is capped.
        l.observe(
            t0,
            &RateLimitHeaders {
                retry_after: Some(Duration::from_secs(86_400)),
                ..Default::default()
            },
            max,
        );
        assert_eq!(l.delay(t0, 1), max);
    }

    #[test]
    fn breaker_opens_after_failures_and_closes_after_a_good_probe() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(10));
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.wait(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        // A failed probe opens it again for a full cooldown.
        b.failure(later);
        assert_eq!(b.state(later + Duration::from_secs(5)), BreakerState::Open);
        assert_eq!(b.times_opened, 2);
        b.success();
        assert_eq!(b.state(later), BreakerState::Closed);
    }
}
