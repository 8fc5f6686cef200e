//! When to try again after a failed reconcile. The one place that decides how long to wait
//! after each kind of error (the Clerk client only reports what it was told, such as a
//! `Retry-After`).

use std::time::Duration;

use crate::{clerk::ClerkError, reconcile::Error};

/// A refused key needs a person to fix it; retrying often only adds load (a fixed instance
/// wakes its waiting requests at once anyway).
pub const AFTER_UNAUTHORIZED: Duration = Duration::from_secs(300);

/// How long to wait before the `attempt`-th retry after `error`. `random` in [0, 1] spreads
/// retries of requests that failed together. `left_before_expiry`: for a request being
/// deleted, the time until its token dies on its own, when the finalizer may let go; never
/// wait past it.
pub fn retry_delay(
    error: &Error,
    attempt: u32,
    random: f64,
    left_before_expiry: Option<Duration>,
) -> Duration {
    let clerk = match error {
        Error::Clerk(e) | Error::Sessions { source: e, .. } => Some(e),
        _ => None,
    };
    let delay = match clerk {
        Some(e) if e.retry_after().is_some() => e.retry_after().unwrap_or_default(),
        Some(ClerkError::Unauthorized { .. }) => AFTER_UNAUTHORIZED,
        _ => backoff(attempt, random),
    };
    match left_before_expiry {
        Some(left) => delay.min(left.max(Duration::from_secs(1))),
        None => delay,
    }
}

/// Exponential from 1s, capped at 5 minutes, with "equal jitter" (half fixed, half random) so
/// that many requests failing together don't retry together.
pub fn backoff(attempt: u32, random: f64) -> Duration {
    let exp = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = exp.min(Duration::from_secs(300));
    capped.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk::RateLimit;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(150));
    }

    #[test]
    fn clerk_and_the_limiter_say_when_a_refused_key_waits_for_a_person() {
        let limited = Error::Clerk(ClerkError::RateLimited {
            retry_after: Some(Duration::from_secs(42)),
        });
        assert_eq!(retry_delay(&limited, 1, 0.0, None), Duration::from_secs(42));
        let throttled = Error::Clerk(ClerkError::Throttled {
            ready_in: Duration::from_secs(3600),
            limit: RateLimit {
                requests: 1,
                period: Duration::from_secs(86400),
            },
            key_wide: false,
        });
        assert_eq!(
            retry_delay(&throttled, 7, 1.0, None),
            Duration::from_secs(3600)
        );
        let unauthorized = Error::Clerk(ClerkError::Unauthorized { status: 401 });
        assert_eq!(retry_delay(&unauthorized, 1, 0.5, None), AFTER_UNAUTHORIZED);
        let outage = Error::Clerk(ClerkError::Unavailable {
            status: Some(503),
            detail: String::new(),
        });
        assert_eq!(retry_delay(&outage, 4, 1.0, None), Duration::from_secs(8));
    }

    #[test]
    fn a_deleted_request_is_retried_no_later_than_its_tokens_expiry() {
        let unauthorized = Error::Clerk(ClerkError::Unauthorized { status: 401 });
        assert_eq!(
            retry_delay(&unauthorized, 1, 0.5, Some(Duration::from_secs(20))),
            Duration::from_secs(20)
        );
        // Past expiry already: soon, not at once (a requeue in the past would spin).
        assert_eq!(
            retry_delay(&unauthorized, 1, 0.5, Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
    }
}
