//! Where time-dependent code reads the time and waits: batching windows, cache TTLs,
//! rate-limit windows, breaker cooldowns, retry backoff, heartbeats and replay pacing all go
//! through a [`Clock`].
//!
//! Production uses the system clock. Tests use a fast clock: it runs `factor` times faster
//! than the system clock, both in what `now` returns and in how long `sleep` takes, so a
//! 60-second rate-limit window or a breaker cooldown passes in milliseconds without the code
//! under test knowing.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// Time runs `factor` times faster than the system clock from `start`.
    Fast { start: Instant, factor: u32 },
}

impl Clock {
    /// A clock running `factor` times faster than real time, from now.
    pub fn fast(factor: u32) -> Clock {
        Clock::Fast {
            start: Instant::now(),
            factor: factor.max(1),
        }
    }

    pub fn now(&self) -> Instant {
        match *self {
            Clock::System => Instant::now(),
            Clock::Fast { start, factor } => start + start.elapsed() * factor,
        }
    }

    /// How long ago `then` (an instant from this clock) was.
    pub fn since(&self, then: Instant) -> Duration {
        self.now().saturating_duration_since(then)
    }

    /// The real duration that `d` of this clock's time takes.
    pub fn real(&self, d: Duration) -> Duration {
        match *self {
            Clock::System => d,
            Clock::Fast { factor, .. } => d / factor,
        }
    }

    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real(d)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fast_clock_moves_and_sleeps_faster() {
        let clock = Clock::fast(100);
        let t0 = clock.now();
        let real = Instant::now();
        clock.sleep(Duration::from_secs(2)).await;
        assert!(clock.since(t0) >= Duration::from_secs(2));
        assert!(
            real.elapsed() < Duration::from_millis(1_000),
            "{:?}",
            real.elapsed()
        );
        assert_eq!(
            clock.real(Duration::from_secs(60)),
            Duration::from_millis(600)
        );
        assert_eq!(
            Clock::System.real(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
