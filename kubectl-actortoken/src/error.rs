//! What can go wrong, and the exit code each ends in: scripts branch on the code, people read
//! the message. No message ever holds a sign-in link or a token.

use std::time::Duration;

use crate::human;

/// The exit codes, as the README and `--help` document them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Anything else: no cluster reached, a bad kubeconfig, an unexpected answer.
    Error = 1,
    /// Bad arguments (clap uses 2 as well).
    Usage = 2,
    /// The API server refused: RBAC, an admission policy, the schema, a name taken.
    Refused = 3,
    /// `--timeout` passed before what was waited for happened.
    TimedOut = 4,
    /// An approver denied the request.
    Denied = 5,
    /// No link yet: the request is still pending.
    NotYet = 6,
    /// No link any more, and none will come: the request failed, expired or was revoked.
    Over = 7,
    /// The request (or its Secret) does not exist.
    NotFound = 8,
}

/// The exit codes for `--help` (the README has the same table).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done
  1  error (no cluster, bad kubeconfig, unexpected answer)
  2  usage: bad arguments
  3  refused by the API server (RBAC, admission policy, validation)
  4  timed out waiting (--timeout)
  5  denied by an approver
  6  no link yet: the request is still pending
  7  no link any more: the request failed, expired or was revoked
  8  not found";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("could not load the kubeconfig: {0}")]
    Config(String),
    /// The API server said no; `message` is its own words.
    #[error("Error from server ({reason}): {message}")]
    Refused {
        reason: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("timed out after {} waiting for {what}", human::duration(*.after))]
    TimedOut { after: Duration, what: String },
    #[error("{}", denied(.by.as_deref(), .message))]
    Denied { by: Option<String>, message: String },
    #[error("{0}")]
    NotYet(String),
    #[error("{0}")]
    Over(String),
    #[error("{context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn denied(by: Option<&str>, message: &str) -> String {
    format!(
        "denied by {}: {}",
        by.unwrap_or("an approver"),
        if message.is_empty() {
            "(no message)"
        } else {
            message
        }
    )
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Config(_) | Error::Kube { .. } | Error::Other(_) => Exit::Error,
            Error::Refused { .. } => Exit::Refused,
            Error::NotFound(_) => Exit::NotFound,
            Error::TimedOut { .. } => Exit::TimedOut,
            Error::Denied { .. } => Exit::Denied,
            Error::NotYet(_) => Exit::NotYet,
            Error::Over(_) => Exit::Over,
        }
    }

    /// A line that says what to do next, where there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Refused { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// Adds a hint to a refusal (other errors are returned as they are).
    pub fn with_hint(self, text: impl Into<String>) -> Error {
        match self {
            Error::Refused {
                reason, message, ..
            } => Error::Refused {
                reason,
                message,
                hint: Some(text.into()),
            },
            other => other,
        }
    }
}

/// Sorts a kube error: the API server's refusals and "not found" keep its own words; the rest
/// (transport, kubeconfig) is an error with `context` (what we were doing).
pub fn from_kube(context: impl Into<String>, error: kube::Error) -> Error {
    let context = context.into();
    match error {
        kube::Error::Api(status) => match status.code {
            404 => Error::NotFound(format!("{context}: {}", status.message)),
            400 | 401 | 403 | 409 | 422 => Error::Refused {
                reason: if status.reason.is_empty() {
                    status.code.to_string()
                } else {
                    status.reason.clone()
                },
                message: status.message.clone(),
                hint: None,
            },
            _ => Error::Kube {
                context,
                source: kube::Error::Api(status),
            },
        },
        source => Error::Kube { context, source },
    }
}

/// Is this the API server's 404?
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404)
}

/// Is this the API server's 403?
pub fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 403)
}

/// Is this the API server's 409 (a write on a stale resourceVersion)?
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict")
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::failure(message, reason)
        }))
    }

    #[test]
    fn the_api_servers_refusals_exit_3_with_its_own_words() {
        for (code, reason) in [
            (403, "Forbidden"),
            (422, "Invalid"),
            (409, "AlreadyExists"),
            (400, "BadRequest"),
        ] {
            let error = from_kube("approving", api(code, reason, "the server's words"));
            assert_eq!(error.exit(), Exit::Refused, "{code}");
            assert_eq!(
                error.to_string(),
                format!("Error from server ({reason}): the server's words")
            );
        }
    }

    #[test]
    fn not_found_exits_8_and_says_what_was_looked_for() {
        let error = from_kube("request t-1", api(404, "NotFound", "not found"));
        assert_eq!(error.exit(), Exit::NotFound);
        assert_eq!(error.to_string(), "request t-1: not found");
    }

    #[test]
    fn server_errors_and_transport_are_plain_errors() {
        assert_eq!(
            from_kube("x", api(500, "InternalError", "boom")).exit(),
            Exit::Error
        );
        assert_eq!(
            from_kube("x", kube::Error::LinesCodecMaxLineLengthExceeded).exit(),
            Exit::Error
        );
    }

    #[test]
    fn each_outcome_has_its_own_code() {
        let cases = [
            (Error::Usage("u".into()), 2),
            (Error::Config("c".into()), 1),
            (
                Error::TimedOut {
                    after: Duration::from_secs(60),
                    what: "approval".into(),
                },
                4,
            ),
            (
                Error::Denied {
                    by: Some("bob".into()),
                    message: "no ticket".into(),
                },
                5,
            ),
            (Error::NotYet("pending".into()), 6),
            (Error::Over("expired".into()), 7),
            (Error::NotFound("gone".into()), 8),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit() as i32, code, "{error}");
            // Every code is in the help text.
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")));
        }
    }

    #[test]
    fn messages_say_who_denied_and_how_long_was_waited() {
        let denied = Error::Denied {
            by: Some("bob@example.com".into()),
            message: "no ticket".into(),
        };
        assert_eq!(denied.to_string(), "denied by bob@example.com: no ticket");
        let timed_out = Error::TimedOut {
            after: Duration::from_secs(90),
            what: "approval".into(),
        };
        assert_eq!(
            timed_out.to_string(),
            "timed out after 1m30s waiting for approval"
        );
    }

    #[test]
    fn a_hint_sticks_to_refusals_only() {
        let refused = from_kube("x", api(403, "Forbidden", "no")).with_hint("ask for it");
        assert_eq!(refused.hint(), Some("ask for it"));
        assert_eq!(Error::Other("x".into()).with_hint("h").hint(), None);
    }
}
