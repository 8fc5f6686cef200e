//! The client-side rate limiter: keeps the operator's own load under Clerk's per-key limit.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// One limiter for one secret key, shared by every client that uses that key. Its limit can
/// be changed in place, so that clients already handed out follow the change.
#[derive(Debug)]
pub(crate) struct KeyLimiter {
    current: Mutex<(RateLimit, Arc<DefaultDirectRateLimiter>)>,
}

impl KeyLimiter {
    pub(crate) fn new(limit: RateLimit) -> Result<Self, RateLimitError> {
        let limiter = Arc::new(RateLimiter::direct(limit.quota()?));
        Ok(Self {
            current: Mutex::new((limit, limiter)),
        })
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.lock().0
    }

    /// Replaces the limit if it differs from the current one; returns whether it did.
    pub(crate) fn set_limit(&self, limit: RateLimit) -> Result<bool, RateLimitError> {
        let mut current = self.lock();
        if current.0 == limit {
            return Ok(false);
        }
        let limiter = Arc::new(RateLimiter::direct(limit.quota()?));
        *current = (limit, limiter);
        Ok(true)
    }

    /// Waits until one more request may be sent; returns how long it waited (zero when
    /// the request could go at once).
    pub(crate) async fn until_ready(&self) -> Duration {
        let limiter = Arc::clone(&self.lock().1);
        if limiter.check().is_ok() {
            return Duration::ZERO;
        }
        let started = std::time::Instant::now();
        limiter.until_ready().await;
        started.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (RateLimit, Arc<DefaultDirectRateLimiter>)> {
        // The guarded data is replaced whole, so a poisoned lock still holds a valid value.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    fn key_limiter_swaps_its_limit_in_place() {
        let dev = RateLimit::clerk_default(KeyEnvironment::Development);
        let prod = RateLimit::clerk_default(KeyEnvironment::Production);
        let limiter = KeyLimiter::new(dev).unwrap();
        assert!(!limiter.set_limit(dev).unwrap());
        assert!(limiter.set_limit(prod).unwrap());
        assert_eq!(limiter.limit(), prod);
        assert!(
            limiter
                .set_limit(RateLimit {
                    requests: 0,
                    period: Duration::from_secs(1)
                })
                .is_err()
        );
        assert_eq!(limiter.limit(), prod);
    }
}
