//! What can go wrong when talking to Clerk. Which answer becomes which error is
//! `classify`'s job; how long to wait before trying again is the caller's (the operator's
//! reconcile error policy), so that one place decides it.

use std::time::Duration;

use super::limit::RateLimit;

/// A failed call to Clerk's Backend API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClerkError {
    /// Clerk refused the request itself (400, 402, 404, 422 … on create). Sending it again
    /// unchanged gets the same answer.
    #[error("Clerk rejected the request (HTTP {status}, {code}): {message}")]
    Rejected {
        status: u16,
        /// Clerk's error code, e.g. `form_param_missing`; empty if the answer had none.
        code: String,
        /// Clerk's `long_message`, falling back to its `message`.
        message: String,
    },
    /// Clerk refused the secret key (401, 403).
    #[error("Clerk refused the secret key (HTTP {status})")]
    Unauthorized { status: u16 },
    /// Clerk's rate limit was reached (429), and waiting within the retry budget didn't help.
    #[error("Clerk's rate limit was reached{}", match retry_after {
        Some(after) => format!(" (retry after {after:?})"),
        None => String::new(),
    })]
    RateLimited { retry_after: Option<Duration> },
    /// The client's own rate limiter holds the call back for longer than the client waits
    /// (see `ClientOptions::max_rate_limit_wait`): nothing was sent. `ready_in` is when the
    /// limiter gives; `limit` is the limit that holds, the instance's own or (`key_wide`)
    /// Clerk's for the key, shared by every instance using it.
    #[error("{} of {limit} allows the next call to Clerk in {}s", if *key_wide { "Clerk's limit for this key" } else { "this instance's rate limit" }, ready_in.as_secs().max(1))]
    Throttled {
        ready_in: Duration,
        limit: RateLimit,
        key_wide: bool,
    },
    /// Clerk answered with a server error (5xx), or the request could not be sent at all
    /// (connection refused, DNS, TLS): nothing happened at Clerk.
    #[error("Clerk is unavailable ({}): {detail}", match status {
        Some(status) => format!("HTTP {status}"),
        None => "request not sent".to_owned(),
    })]
    Unavailable { status: Option<u16>, detail: String },
    /// The request may have reached Clerk, but no answer came back (timeout, connection
    /// closed or reset after sending, a gateway timeout). After a create, a token may exist
    /// whose ID no one knows.
    #[error("the request may have reached Clerk but its answer was lost: {detail}")]
    AnswerLost { detail: String },
    /// Clerk answered, but the answer can't be understood. For a 2xx answer to a create,
    /// the token was created; `token_id` holds its ID when the answer showed one.
    #[error("Clerk's answer (HTTP {status}) could not be understood: {detail}")]
    InvalidAnswer {
        status: u16,
        detail: String,
        token_id: Option<String>,
    },
}

impl ClerkError {
    /// A Kubernetes condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ClerkError::Rejected { .. } => "ClerkRejected",
            ClerkError::Unauthorized { .. } => "ClerkUnauthorized",
            ClerkError::RateLimited { .. } => "ClerkRateLimited",
            ClerkError::Throttled { .. } => "Throttled",
            ClerkError::Unavailable { .. } => "ClerkUnavailable",
            ClerkError::AnswerLost { .. } => "ClerkAnswerLost",
            ClerkError::InvalidAnswer { .. } => "ClerkInvalidAnswer",
        }
    }

    /// Whether sending the same request again can never succeed: Clerk rejected it.
    /// An `Unauthorized` error is not final, since the key can be replaced.
    pub fn is_final(&self) -> bool {
        matches!(self, ClerkError::Rejected { .. })
    }

    /// Whether the request may have taken effect at Clerk although no usable answer came:
    /// after a create, a live token may exist that has to be accounted for.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClerkError::AnswerLost { .. } => true,
            ClerkError::InvalidAnswer { status, .. } => (200..300).contains(status),
            _ => false,
        }
    }

    /// When trying again can help at the earliest: the delay Clerk asked for with
    /// `Retry-After`, or when the client's own rate limiter gives.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClerkError::RateLimited { retry_after } => *retry_after,
            ClerkError::Throttled { ready_in, .. } => Some(*ready_in),
            _ => None,
        }
    }

    /// The actor token ID the failed answer revealed, if any.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            ClerkError::InvalidAnswer { token_id, .. } => token_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_finality() {
        let cases = [
            (
                ClerkError::Rejected {
                    status: 400,
                    code: String::new(),
                    message: String::new(),
                },
                "ClerkRejected",
                true,
            ),
            (
                ClerkError::Unauthorized { status: 401 },
                "ClerkUnauthorized",
                false,
            ),
            (
                ClerkError::RateLimited { retry_after: None },
                "ClerkRateLimited",
                false,
            ),
            (
                ClerkError::Unavailable {
                    status: None,
                    detail: String::new(),
                },
                "ClerkUnavailable",
                false,
            ),
            (
                ClerkError::AnswerLost {
                    detail: String::new(),
                },
                "ClerkAnswerLost",
                false,
            ),
            (
                ClerkError::InvalidAnswer {
                    status: 200,
                    detail: String::new(),
                    token_id: None,
                },
                "ClerkInvalidAnswer",
                false,
            ),
        ];
        for (error, reason, is_final) in cases {
            assert_eq!(error.reason(), reason);
            assert_eq!(error.is_final(), is_final, "{error:?}");
        }
        assert_eq!(
            ClerkError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
            .retry_after(),
            Some(Duration::from_secs(7))
        );
        let throttled = ClerkError::Throttled {
            ready_in: Duration::from_secs(90),
            limit: RateLimit {
                requests: 1,
                period: Duration::from_secs(86400),
            },
            key_wide: false,
        };
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(90)));
        assert_eq!(throttled.reason(), "Throttled");
        assert!(!throttled.is_final() && !throttled.outcome_unknown());
        assert_eq!(
            throttled.to_string(),
            "this instance's rate limit of 1 per 24h allows the next call to Clerk in 90s"
        );
        let invalid_non_2xx = ClerkError::InvalidAnswer {
            status: 302,
            detail: String::new(),
            token_id: None,
        };
        assert!(!invalid_non_2xx.outcome_unknown());
    }
}
