//! Sorting what went wrong: an HTTP answer that isn't a success, or a request that got no
//! answer at all, becomes the [`ClerkError`] that says what the caller may assume.
//!
//! Nothing here holds a credential: error details come from HTTP status codes, Clerk's own
//! error messages, transport error kinds and sanitised JSON parse errors.

use std::time::Duration;

use serde::Deserialize;

use super::error::ClerkError;
use super::observe::{CallKind, CallOutcome};

/// The longest Clerk message kept in an error, so a condition message stays readable.
const MAX_MESSAGE_CHARS: usize = 500;

/// Classifies a non-2xx answer (other than the statuses an operation handles itself).
pub(crate) fn classify_failure(
    operation: CallKind,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> ClerkError {
    match status {
        401 | 403 => ClerkError::Unauthorized { status },
        429 => ClerkError::RateLimited { retry_after },
        // A gateway that timed out waiting for Clerk does not know whether Clerk acted:
        // for a create that is the ambiguous case, not an outage.
        504 | 524 if operation == CallKind::Create => ClerkError::AnswerLost {
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

/// The metric label of an attempt that got no whole answer.
pub(crate) fn outcome_of(error: &reqwest::Error) -> CallOutcome {
    if error.is_timeout() {
        CallOutcome::Timeout
    } else if error.is_connect() {
        CallOutcome::Connect
    } else {
        CallOutcome::Transport
    }
}

/// Classifies a request that got no HTTP answer. Only a failure to connect proves the
/// request was never sent; anything else may have reached Clerk.
pub(crate) fn transport_error(error: reqwest::Error) -> ClerkError {
    let error = error.without_url();
    let detail = error_chain(&error);
    if error.is_connect() || error.is_builder() {
        ClerkError::Unavailable {
            status: None,
            detail,
        }
    } else {
        ClerkError::AnswerLost { detail }
    }
}

/// An error and its sources, joined by ": ", with repeats dropped.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLERK_422: &str = r#"{"errors":[{"message":"is invalid","long_message":"user_id is not a valid user","code":"form_param_value_invalid","meta":{"param_name":"user_id"}}],"clerk_trace_id":"abc"}"#;

    #[test]
    fn create_statuses_map_to_the_right_errors() {
        let op = CallKind::Create;
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
            classify_failure(CallKind::Revoke, 504, None, b""),
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
