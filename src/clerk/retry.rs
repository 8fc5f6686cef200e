//! The retry engine: runs one call's attempts, each admitted by the rate limiters first,
//! until one succeeds, the error is final, or the policy's attempts or time run out. It
//! never waits long: not for a limiter (past `max_rate_limit_wait` the call fails as
//! `Throttled`), not for a `Retry-After` past `max_retry_after`, and not at all once the
//! process is shutting down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::RngExt;
use tokio::time::Instant;
use tracing::debug;

use super::config::RetryPolicy;
use super::error::ClerkError;
use super::limit::Limiter;
use super::observe::{CallKind, CallObserver};

/// What one client's calls go through: its limiters, its retry policy, whom it tells.
pub(crate) struct Engine {
    /// The instance's own limiter, then the key's (Clerk's limit, shared by every instance
    /// using the key). A call takes a cell from each.
    pub(crate) instance_limiter: Arc<Limiter>,
    pub(crate) key_limiter: Arc<Limiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_rate_limit_wait: Duration,
    /// Set when the process shuts down: no more waiting or retrying, so in-flight work
    /// finishes within the grace period whatever Clerk or a limiter does.
    pub(crate) draining: Arc<AtomicBool>,
    /// Told about every attempt and rate-limiter wait (the operator's metrics).
    pub(crate) observer: Option<Arc<dyn CallObserver>>,
}

impl Engine {
    /// Runs `attempt` until it succeeds, fails for good, or the retry policy runs out.
    /// `subject` names what the call is about, for logs (a token or session ID).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        kind: CallKind,
        subject: Option<&str>,
        mut attempt: F,
    ) -> Result<T, ClerkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClerkError>>,
    {
        let policy = &self.retry;
        let started = Instant::now();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_backoff)
            .with_max_delay(policy.max_backoff)
            .with_factor(2.0)
            .without_max_times()
            .build();
        let mut number = 0u32;
        loop {
            number += 1;
            self.admit().await?;
            debug!(
                operation = kind.name(),
                subject,
                attempt = number,
                "sending request to Clerk"
            );
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = match retry_delay(kind, &error, policy, &mut backoff) {
                Some(delay) if number < policy.max_attempts && !self.is_draining() => delay,
                _ => {
                    debug!(operation = kind.name(), subject, attempt = number, reason = error.reason(), %error, "Clerk call failed; not retrying");
                    return Err(error);
                }
            };
            if started.elapsed() + delay > policy.total_budget {
                debug!(operation = kind.name(), subject, attempt = number, reason = error.reason(), %error, "Clerk call failed; retry budget spent");
                return Err(error);
            }
            debug!(operation = kind.name(), subject, attempt = number, reason = error.reason(), %error, delay_ms = delay.as_millis() as u64, "Clerk call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Takes a cell from each limiter, waiting at most `max_rate_limit_wait` in all (not at
    /// all while draining); past that, says when to come back.
    async fn admit(&self) -> Result<(), ClerkError> {
        let mut waited = Duration::ZERO;
        for (limiter, key_wide) in [(&self.instance_limiter, false), (&self.key_limiter, true)] {
            loop {
                let wait = match limiter.try_take() {
                    Ok(()) => break,
                    Err(wait) => wait,
                };
                if self.is_draining() || waited + wait > self.max_rate_limit_wait {
                    return Err(ClerkError::Throttled {
                        ready_in: wait,
                        limit: limiter.limit(),
                        key_wide,
                    });
                }
                tokio::time::sleep(wait).await;
                waited += wait;
            }
        }
        if let Some(observer) = &self.observer
            && !waited.is_zero()
        {
            observer.rate_limit_waited(waited);
        }
        Ok(())
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// How long to wait before retrying after `error`, or `None` if it must not be retried.
pub(crate) fn retry_delay(
    kind: CallKind,
    error: &ClerkError,
    policy: &RetryPolicy,
    backoff: &mut impl Iterator<Item = Duration>,
) -> Option<Duration> {
    let mut jittered = || {
        let ceiling = backoff.next().unwrap_or(policy.max_backoff);
        full_jitter(ceiling)
    };
    match error {
        ClerkError::RateLimited {
            retry_after: Some(after),
        } => (*after <= policy.max_retry_after).then_some(*after),
        ClerkError::RateLimited { retry_after: None } => Some(jittered()),
        ClerkError::Unavailable { .. } => Some(jittered()),
        // Everything but a create is safe to send twice.
        ClerkError::AnswerLost { .. } if kind != CallKind::Create => Some(jittered()),
        ClerkError::AnswerLost { .. }
        | ClerkError::Throttled { .. }
        | ClerkError::Rejected { .. }
        | ClerkError::Unauthorized { .. }
        | ClerkError::InvalidAnswer { .. } => None,
    }
}

/// A delay drawn uniformly from `[0, ceiling]`.
pub(crate) fn full_jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk::RateLimit;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            total_budget: Duration::from_secs(30),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn what_is_retried() {
        let p = policy();
        let mut backoff = std::iter::repeat(Duration::from_millis(100));
        let lost = ClerkError::AnswerLost {
            detail: String::new(),
        };
        assert_eq!(retry_delay(CallKind::Create, &lost, &p, &mut backoff), None);
        for kind in [
            CallKind::Revoke,
            CallKind::ListSessions,
            CallKind::RevokeSession,
        ] {
            assert!(retry_delay(kind, &lost, &p, &mut backoff).is_some());
        }
        let limited = |s| ClerkError::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            retry_delay(CallKind::Create, &limited(5), &p, &mut backoff),
            Some(Duration::from_secs(5))
        );
        // Longer than the client waits itself: handed back for the caller to schedule.
        assert_eq!(
            retry_delay(CallKind::Create, &limited(6), &p, &mut backoff),
            None
        );
        let unavailable = ClerkError::Unavailable {
            status: Some(503),
            detail: String::new(),
        };
        for kind in [CallKind::Create, CallKind::Revoke] {
            let delay = retry_delay(kind, &unavailable, &p, &mut backoff).unwrap();
            assert!(delay <= Duration::from_millis(100));
        }
        for final_error in [
            ClerkError::Unauthorized { status: 401 },
            ClerkError::Rejected {
                status: 422,
                code: String::new(),
                message: String::new(),
            },
            ClerkError::InvalidAnswer {
                status: 200,
                detail: String::new(),
                token_id: None,
            },
            ClerkError::Throttled {
                ready_in: Duration::from_secs(1),
                limit: RateLimit {
                    requests: 1,
                    period: Duration::from_secs(1),
                },
                key_wide: false,
            },
        ] {
            for kind in [CallKind::Create, CallKind::Revoke] {
                assert_eq!(retry_delay(kind, &final_error, &p, &mut backoff), None);
            }
        }
    }

    #[test]
    fn full_jitter_spreads_delays_over_the_whole_range() {
        let ceiling = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..2000).map(|_| full_jitter(ceiling)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        // Full jitter, not "equal" jitter: draws land in the lower and upper quarter alike.
        let low = draws.iter().filter(|d| **d < ceiling / 4).count();
        let high = draws.iter().filter(|d| **d > ceiling * 3 / 4).count();
        assert!(low > 300 && high > 300, "low {low} high {high}");
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }

    fn engine_with(instance: RateLimit, key: RateLimit, max_wait: Duration) -> Engine {
        Engine {
            instance_limiter: Arc::new(Limiter::new(instance).unwrap()),
            key_limiter: Arc::new(Limiter::new(key).unwrap()),
            retry: RetryPolicy::none(),
            max_rate_limit_wait: max_wait,
            draining: Arc::default(),
            observer: None,
        }
    }

    const DAILY: RateLimit = RateLimit {
        requests: 1,
        period: Duration::from_secs(86400),
    };
    const GENEROUS: RateLimit = RateLimit {
        requests: 1000,
        period: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn a_limiter_that_would_hold_a_call_long_says_when_to_come_back() {
        let engine = engine_with(DAILY, GENEROUS, Duration::from_secs(1));
        engine.admit().await.unwrap();
        let started = std::time::Instant::now();
        match engine.admit().await.unwrap_err() {
            ClerkError::Throttled {
                ready_in,
                limit,
                key_wide,
            } => {
                assert!(ready_in > Duration::from_secs(86000), "{ready_in:?}");
                assert_eq!((limit, key_wide), (DAILY, false));
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(100), "no wait");
        // The key's limiter holds too: it says so.
        let engine = engine_with(GENEROUS, DAILY, Duration::from_secs(1));
        engine.admit().await.unwrap();
        assert!(matches!(
            engine.admit().await.unwrap_err(),
            ClerkError::Throttled { key_wide: true, .. }
        ));
    }

    #[tokio::test]
    async fn a_short_wait_is_waited() {
        let tight = RateLimit {
            requests: 2,
            period: Duration::from_millis(200),
        };
        let engine = engine_with(tight, GENEROUS, Duration::from_secs(1));
        for _ in 0..3 {
            engine.admit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn nothing_is_waited_for_once_draining() {
        let tight = RateLimit {
            requests: 2,
            period: Duration::from_millis(200),
        };
        let engine = engine_with(tight, GENEROUS, Duration::from_secs(1));
        engine.admit().await.unwrap();
        engine.draining.store(true, Ordering::Relaxed);
        assert!(matches!(
            engine.admit().await.unwrap_err(),
            ClerkError::Throttled { .. }
        ));
    }
}
