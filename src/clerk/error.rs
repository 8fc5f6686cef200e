//! What can go wrong when talking to Clerk, and how an HTTP answer is classified.
//!
//! Nothing here holds a credential: error details come from HTTP status codes, Clerk's own
//! error messages, transport error kinds and sanitised JSON parse errors.

use std::time::Duration;

use serde::Deserialize;

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

    /// The delay Clerk asked for with `Retry-After`, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClerkError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// How long a caller should wait before trying again; `None` for a final error.
    pub fn suggested_delay(&self) -> Option<Duration> {
        match self {
            ClerkError::Rejected { .. } => None,
            ClerkError::Unauthorized { .. } => Some(Duration::from_secs(60)),
            ClerkError::RateLimited { retry_after } => {
                Some(retry_after.unwrap_or(Duration::from_secs(10)))
            }
            ClerkError::Unavailable { .. } => Some(Duration::from_secs(15)),
            ClerkError::AnswerLost { .. } => Some(Duration::from_secs(5)),
            ClerkError::InvalidAnswer { .. } => Some(Duration::from_secs(60)),
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

/// Which call an answer belongs to: a few statuses mean different things for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Revoke,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Create => "create_actor_token",
            Operation::Revoke => "revoke_actor_token",
        }
    }

    pub(crate) fn kind(self) -> super::observe::CallKind {
        match self {
            Operation::Create => super::observe::CallKind::Create,
            Operation::Revoke => super::observe::CallKind::Revoke,
        }
    }
}

/// The longest Clerk message kept in an error, so a condition message stays readable.
const MAX_MESSAGE_CHARS: usize = 500;

/// Classifies a non-2xx answer (other than the statuses an operation handles itself).
pub(crate) fn classify_failure(
    operation: Operation,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> ClerkError {
    match status {
        401 | 403 => ClerkError::Unauthorized { status },
        429 => ClerkError::RateLimited { retry_after },
        // A gateway that timed out waiting for Clerk does not know whether Clerk acted:
        // for a create that is the ambiguous case, not an outage.
        504 | 524 if operation == Operation::Create => ClerkError::AnswerLost {
            detail: format!("HTTP {status} from a gateway that timed out waiting for Clerk"),
        },
        // The server gave up waiting for the request: it was not acted on.
        408 => ClerkError::Unavailable {
            status: Some(status),
            detail: "request timed out before Clerk read it".to_owned(),
        },
        500..=599 => ClerkError::Unavailable {
            status: Some(status),
            detail: match clerk_errors(body) {
                Some((code, message)) if !code.is_empty() => format!("{code}: {message}"),
                Some((_, message)) => message,
                None => "server error".to_owned(),
            },
        },
        400..=499 => {
            let (code, message) = clerk_errors(body).unwrap_or_else(|| {
                (
                    String::new(),
                    format!("HTTP {status} without a Clerk error body"),
                )
            });
            ClerkError::Rejected {
                status,
                code,
                message,
            }
        }
        _ => ClerkError::InvalidAnswer {
            status,
            detail: format!("unexpected HTTP status {status}"),
            token_id: None,
        },
    }
}

#[derive(Deserialize)]
struct ClerkErrorsBody {
    errors: Vec<ClerkErrorBody>,
}

#[derive(Deserialize)]
struct ClerkErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    long_message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Reads Clerk's `ClerkErrors` body: the first error's code, and every error's
/// `long_message` (or `message`) joined by "; ". `None` if the body isn't one.
pub(crate) fn clerk_errors(body: &[u8]) -> Option<(String, String)> {
    let parsed: ClerkErrorsBody = serde_json::from_slice(body).ok()?;
    let first = parsed.errors.first()?;
    let code = first.code.clone().unwrap_or_default();
    let message = parsed
        .errors
        .iter()
        .filter_map(|e| {
            [&e.long_message, &e.message]
                .into_iter()
                .flatten()
                .find(|m| !m.trim().is_empty())
                .cloned()
        })
        .collect::<Vec<_>>()
        .join("; ");
    let message = if message.is_empty() {
        "no message".to_owned()
    } else {
        truncate(message, MAX_MESSAGE_CHARS)
    };
    Some((truncate(code, 100), message))
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Parses a `Retry-After` value: delay seconds (integer or decimal) or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let delay = at.duration_since(now);
    Some(Duration::try_from(delay).unwrap_or(Duration::ZERO))
}

/// Describes a JSON parse error without quoting the document: serde's messages can quote
/// values, and a value might be a credential. Field-name errors are kept, since they only
/// quote the schema.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let names_only = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .any(|prefix| text.starts_with(prefix));
    if names_only {
        text
    } else {
        let kind = match error.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "unexpected value",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        format!(
            "{kind} error at line {} column {}",
            error.line(),
            error.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLERK_422: &str = r#"{"errors":[{"message":"is invalid","long_message":"user_id is not a valid user","code":"form_param_value_invalid","meta":{"param_name":"user_id"}}],"clerk_trace_id":"abc"}"#;

    #[test]
    fn create_statuses_map_to_the_right_errors() {
        let op = Operation::Create;
        assert_eq!(
            classify_failure(op, 422, None, CLERK_422.as_bytes()),
            ClerkError::Rejected {
                status: 422,
                code: "form_param_value_invalid".into(),
                message: "user_id is not a valid user".into()
            }
        );
        let e = classify_failure(op, 402, None, b"<html>");
        assert!(matches!(&e, ClerkError::Rejected { status: 402, code, .. } if code.is_empty()));
        assert!(e.is_final());
        for status in [401, 403] {
            let e = classify_failure(op, status, None, CLERK_422.as_bytes());
            assert_eq!(e, ClerkError::Unauthorized { status });
            assert!(!e.is_final());
        }
        let e = classify_failure(op, 429, Some(Duration::from_secs(3)), b"");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.reason(), "ClerkRateLimited");
        for status in [500, 502, 503] {
            let e = classify_failure(op, status, None, b"oops");
            assert_eq!(
                e,
                ClerkError::Unavailable {
                    status: Some(status),
                    detail: "server error".into()
                }
            );
            assert!(!e.outcome_unknown());
        }
        for status in [504, 524] {
            let e = classify_failure(op, status, None, b"");
            assert!(matches!(e, ClerkError::AnswerLost { .. }), "{e:?}");
            assert!(e.outcome_unknown());
        }
        assert!(matches!(
            classify_failure(op, 408, None, b""),
            ClerkError::Unavailable {
                status: Some(408),
                ..
            }
        ));
        assert!(matches!(
            classify_failure(op, 302, None, b""),
            ClerkError::InvalidAnswer { status: 302, .. }
        ));
    }

    #[test]
    fn revoke_gateway_timeouts_are_plain_outages() {
        // Revoking twice is harmless, so a gateway timeout on revoke is simply retried.
        assert!(matches!(
            classify_failure(Operation::Revoke, 504, None, b""),
            ClerkError::Unavailable {
                status: Some(504),
                ..
            }
        ));
    }

    #[test]
    fn clerk_error_bodies_prefer_long_message_and_join_errors() {
        let body = r#"{"errors":[{"message":"short","long_message":"","code":"a"},{"message":"m2","long_message":"long two","code":"b"}]}"#;
        assert_eq!(
            clerk_errors(body.as_bytes()),
            Some(("a".into(), "short; long two".into()))
        );
        assert_eq!(clerk_errors(br#"{"errors":[]}"#), None);
        assert_eq!(clerk_errors(b"not json"), None);
        let long = format!(
            r#"{{"errors":[{{"message":"x","long_message":"{}","code":"c"}}]}}"#,
            "é".repeat(2000)
        );
        let (_, message) = clerk_errors(long.as_bytes()).unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn reasons_and_delays() {
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
            assert_eq!(error.suggested_delay().is_none(), is_final, "{error:?}");
        }
        assert_eq!(
            ClerkError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
            .suggested_delay(),
            Some(Duration::from_secs(7))
        );
        let invalid_non_2xx = ClerkError::InvalidAnswer {
            status: 302,
            detail: String::new(),
            token_id: None,
        };
        assert!(!invalid_non_2xx.outcome_unknown());
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-05-12T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Tue, 12 May 2026 10:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Tue, 12 May 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn json_errors_do_not_quote_values() {
        let err = serde_json::from_str::<std::collections::HashMap<String, u32>>(
            r#"{"token":"SECRETVALUE"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("SECRETVALUE"),
            "premise: serde quotes"
        );
        let shown = describe_json_error(&err);
        assert!(!shown.contains("SECRETVALUE"), "{shown}");
        assert!(shown.contains("line 1"), "{shown}");

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            id: String,
        }
        let err = serde_json::from_str::<Needs>("{}").unwrap_err();
        assert!(
            describe_json_error(&err).starts_with("missing field `id`"),
            "{err}"
        );
    }
}
