//! The client-side rate limiter: keeps the operator's own load under Clerk's per-key limit.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::secret::KeyEnvironment;

/// How many requests Clerk accepts from one secret key in any window of `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u32,
    pub period: Duration,
}

/// Why a [`RateLimit`] can't be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a rate limit needs at least one request in a non-zero period (got {requests} per {period:?})"
)]
pub struct RateLimitError {
    pub requests: u32,
    pub period: Duration,
}

impl RateLimit {
    /// Clerk's published limits: 100 requests per 10 s on a development instance, 1000 per
    /// 10 s on a production one.
    pub fn clerk_default(environment: KeyEnvironment) -> RateLimit {
        let requests = match environment {
            KeyEnvironment::Development => 100,
            KeyEnvironment::Production => 1000,
        };
        RateLimit {
            requests,
            period: Duration::from_secs(10),
        }
    }

    /// The most requests the limiter lets through in any window of `period` (closed at both
    /// ends): one less than `requests`, so that even a window that catches requests at both
    /// of its edges stays under Clerk's count. A limit of one request is kept at one.
    pub fn max_per_window(&self) -> u32 {
        self.requests.saturating_sub(1).max(1)
    }

    /// The GCRA quota that enforces [`Self::max_per_window`].
    ///
    /// GCRA with a burst of `B` cells and one cell replenished every `T` lets through at most
    /// `B + floor(W / T)` cells in any closed window of length `W`. With `M` the allowed
    /// count per window, the burst is `B = max(1, requests / 10)` (at most `M`) and
    /// `T = floor(period / (M - B + 1)) + 1 ns`, the smallest interval with
    /// `floor(period / T) <= M - B`.
    pub fn quota(&self) -> Result<Quota, RateLimitError> {
        let invalid = || RateLimitError {
            requests: self.requests,
            period: self.period,
        };
        if self.requests == 0 || self.period.is_zero() {
            return Err(invalid());
        }
        let allowed = u64::from(self.max_per_window());
        let burst = u64::from((self.requests / 10).max(1)).min(allowed);
        let period_nanos = self.period.as_nanos();
        let interval_nanos = period_nanos / u128::from(allowed - burst + 1) + 1;
        let interval = Duration::from_nanos(u64::try_from(interval_nanos).map_err(|_| invalid())?);
        let burst =
            NonZeroU32::new(u32::try_from(burst).map_err(|_| invalid())?).ok_or_else(invalid)?;
        Ok(Quota::with_period(interval)
            .ok_or_else(invalid)?
            .allow_burst(burst))
    }
}

impl std::fmt::Display for RateLimit {
    /// `1 per 24h`, `100 per 10s`, `7 per 3ms`: how people write a rate.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per ", self.requests)?;
        let period = self.period;
        if period.subsec_nanos() != 0 {
            return write!(f, "{}ms", period.as_millis());
        }
        let seconds = period.as_secs();
        let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || seconds == 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

/// Enforces one [`RateLimit`]: an instance's own, or Clerk's for a key (shared by every
/// instance using the key). Its limit never changes; a changed limit is a new limiter.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    cells: DefaultDirectRateLimiter,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Result<Self, RateLimitError> {
        Ok(Self {
            limit,
            cells: RateLimiter::direct(limit.quota()?),
        })
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a cell for one request now, or says how long until one is free.
    pub(crate) fn try_take(&self) -> Result<(), Duration> {
        self.cells
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{Clock, FakeRelativeClock};
    use governor::nanos::Nanos;

    /// Times (ns from start) at which a client that always sends as soon as the limiter
    /// allows gets its requests through, over `horizon`.
    fn greedy_admissions(limit: RateLimit, horizon: Duration) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(limit.quota().unwrap(), clock.clone());
        let mut admitted = Vec::new();
        while clock.now() <= Nanos::from(horizon) {
            match limiter.check() {
                Ok(()) => admitted.push(clock.now().as_u64()),
                Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
            }
        }
        admitted
    }

    /// Times at which a client sending at pseudo-random moments gets through.
    fn bursty_admissions(limit: RateLimit, horizon: Duration, seed: u64) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(limit.quota().unwrap(), clock.clone());
        let mut state = seed;
        let mut admitted = Vec::new();
        let step = limit.period.as_nanos() as u64 / 40;
        while clock.now() <= Nanos::from(horizon) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let roll = state >> 33;
            if roll.is_multiple_of(4) {
                // Idle for a while, so the bucket refills.
                clock.advance(Duration::from_nanos(roll % (step * 20)));
            } else {
                // Try a burst of attempts, then move on a little.
                for _ in 0..(roll % 50) {
                    if limiter.check().is_ok() {
                        admitted.push(clock.now().as_u64());
                    }
                }
                clock.advance(Duration::from_nanos(roll % step));
            }
        }
        admitted
    }

    /// The most admissions in any closed window `[t, t + period]`.
    fn max_in_any_window(admitted: &[u64], period: Duration) -> usize {
        let period = period.as_nanos() as u64;
        let mut start = 0;
        let mut most = 0;
        for end in 0..admitted.len() {
            while admitted[end] - admitted[start] > period {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    const LIMITS: [RateLimit; 7] = [
        RateLimit {
            requests: 100,
            period: Duration::from_secs(10),
        },
        RateLimit {
            requests: 1000,
            period: Duration::from_secs(10),
        },
        RateLimit {
            requests: 1,
            period: Duration::from_secs(1),
        },
        RateLimit {
            requests: 2,
            period: Duration::from_secs(1),
        },
        RateLimit {
            requests: 7,
            period: Duration::from_millis(3),
        },
        RateLimit {
            requests: 10,
            period: Duration::from_secs(1),
        },
        RateLimit {
            requests: 5000,
            period: Duration::from_secs(60),
        },
    ];

    #[test]
    fn clerk_defaults_follow_the_published_limits() {
        assert_eq!(
            RateLimit::clerk_default(KeyEnvironment::Development),
            RateLimit {
                requests: 100,
                period: Duration::from_secs(10)
            }
        );
        assert_eq!(
            RateLimit::clerk_default(KeyEnvironment::Production),
            RateLimit {
                requests: 1000,
                period: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn greedy_client_stays_strictly_under_the_limit_in_every_window() {
        for limit in LIMITS {
            let admitted = greedy_admissions(limit, limit.period * 5);
            let most = max_in_any_window(&admitted, limit.period);
            let expected = limit.max_per_window() as usize;
            assert_eq!(most, expected, "{limit:?}");
            if limit.requests > 1 {
                assert!(most < limit.requests as usize, "{limit:?}");
            }
        }
    }

    #[test]
    fn greedy_client_keeps_most_of_the_allowed_throughput() {
        for limit in LIMITS {
            let periods = 5;
            let admitted = greedy_admissions(limit, limit.period * periods);
            // The sustained rate is (M - B) per period plus the first burst; it must not
            // fall below 85% of Clerk's limit for the larger limits.
            if limit.requests >= 100 {
                let floor = (limit.requests as usize * periods as usize) * 85 / 100;
                assert!(admitted.len() >= floor, "{limit:?}: {}", admitted.len());
            }
            assert!(admitted.len() >= periods as usize, "{limit:?}");
        }
    }

    #[test]
    fn irregular_client_stays_under_the_limit_in_every_window() {
        for limit in LIMITS {
            for seed in [1, 7, 42, 1234567] {
                let admitted = bursty_admissions(limit, limit.period * 8, seed);
                let most = max_in_any_window(&admitted, limit.period);
                assert!(
                    most <= limit.max_per_window() as usize,
                    "{limit:?} seed {seed}: {most}"
                );
                assert!(!admitted.is_empty());
            }
        }
    }

    #[test]
    fn rejects_limits_that_allow_nothing() {
        assert!(
            RateLimit {
                requests: 0,
                period: Duration::from_secs(1)
            }
            .quota()
            .is_err()
        );
        assert!(
            RateLimit {
                requests: 10,
                period: Duration::ZERO
            }
            .quota()
            .is_err()
        );
    }

    #[test]
    fn a_limiter_says_how_long_until_the_next_cell() {
        let limiter = Limiter::new(RateLimit {
            requests: 1,
            period: Duration::from_secs(86400),
        })
        .unwrap();
        assert_eq!(limiter.try_take(), Ok(()));
        let wait = limiter.try_take().unwrap_err();
        assert!(wait > Duration::from_secs(86000), "{wait:?}");
    }

    #[test]
    fn rates_read_as_people_write_them() {
        let rate = |requests, period| RateLimit { requests, period }.to_string();
        assert_eq!(rate(1, Duration::from_secs(86400)), "1 per 24h");
        assert_eq!(rate(100, Duration::from_secs(10)), "100 per 10s");
        assert_eq!(rate(5, Duration::from_secs(5400)), "5 per 1h30m");
        assert_eq!(rate(7, Duration::from_millis(3)), "7 per 3ms");
    }
}
