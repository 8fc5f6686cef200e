//! Hooks through which the client reports what its calls did, for metrics. The client
//! knows nothing of Prometheus; the operator's metrics implement [`CallObserver`].

use std::time::Duration;

/// Which Backend API call, as a short metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `POST /v1/actor_tokens`
    Create,
    /// `POST /v1/actor_tokens/{id}/revoke`
    Revoke,
    /// `GET /v1/sessions` (one page)
    ListSessions,
    /// `POST /v1/sessions/{id}/revoke`
    RevokeSession,
}

impl CallKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CallKind::Create => "create",
            CallKind::Revoke => "revoke",
            CallKind::ListSessions => "list_sessions",
            CallKind::RevokeSession => "revoke_session",
        }
    }

    /// The operation's name in logs: Clerk's operation ID, in snake case.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Create => "create_actor_token",
            CallKind::Revoke => "revoke_actor_token",
            CallKind::ListSessions => "list_sessions",
            CallKind::RevokeSession => "revoke_session",
        }
    }
}

/// What became of one HTTP attempt: the status Clerk answered, or why there was none.
/// A small, closed set of values, so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// An HTTP answer with this status (for a 2xx, its body arrived whole).
    Status(u16),
    /// No whole answer within the request timeout.
    Timeout,
    /// No connection could be made: the request was not sent.
    Connect,
    /// The connection broke (reset, closed, cut-off body) before a whole answer.
    Transport,
}

impl CallOutcome {
    /// `"201"`, `"429"`, … for statuses (anything outside 100–599 is `"other"`), else
    /// `"timeout"`, `"connect"` or `"transport"`.
    pub fn label(self) -> String {
        match self {
            CallOutcome::Status(code @ 100..=599) => code.to_string(),
            CallOutcome::Status(_) => "other".to_owned(),
            CallOutcome::Timeout => "timeout".to_owned(),
            CallOutcome::Connect => "connect".to_owned(),
            CallOutcome::Transport => "transport".to_owned(),
        }
    }
}

/// Told about every HTTP attempt a client makes and every wait for the client-side rate
/// limiter. Called on the request path: implementations must be quick and must not block.
pub trait CallObserver: Send + Sync {
    /// One attempt finished (retries are separate attempts) after `took`.
    fn call_finished(&self, kind: CallKind, outcome: CallOutcome, took: Duration);
    /// An attempt waited `waited` (more than zero) for the key's rate limiter.
    fn rate_limit_waited(&self, waited: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_a_closed_set() {
        assert_eq!(CallOutcome::Status(201).label(), "201");
        assert_eq!(CallOutcome::Status(599).label(), "599");
        assert_eq!(CallOutcome::Status(600).label(), "other");
        assert_eq!(CallOutcome::Status(42).label(), "other");
        assert_eq!(CallOutcome::Timeout.label(), "timeout");
        assert_eq!(CallOutcome::Connect.label(), "connect");
        assert_eq!(CallOutcome::Transport.label(), "transport");
    }
}
