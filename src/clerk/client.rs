//! The HTTP client: one method per Backend API call the operator makes, each sent through
//! the retry engine, each answer read up to a bound and sorted into a result or an error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tracing::debug;

use super::classify::{
    classify_failure, error_chain, outcome_of, parse_retry_after, transport_error,
};
use super::config::{
    ClientOptions, ConfigError, MAX_ANSWER_BYTES, MAX_LIST_ANSWER_BYTES, build_http_client,
    parse_api_url,
};
use super::error::ClerkError;
use super::limit::{Limiter, RateLimit};
use super::observe::{CallKind, CallOutcome};
use super::retry::Engine;
use super::secret::{KeyFingerprint, SecretKey};
use super::wire::{
    IssuedActorToken, NewActorToken, RevokeOutcome, Session, SessionRevokeOutcome, parse_issued,
    parse_session_page,
};

/// Sessions asked for per page of `GET /v1/sessions` (the spec allows 1–500).
const SESSION_PAGE_SIZE: usize = 100;
/// The most pages read for one user: past 5,000 active sessions something is wrong, and
/// the caller hears so rather than paging for ever.
const MAX_SESSION_PAGES: usize = 50;

/// A client for one Clerk instance and secret key. Cheap to clone; clones share the HTTP
/// connection pool and the rate limiters.
#[derive(Clone)]
pub struct ClerkClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The API base, e.g. `https://api.clerk.com/v1`, without a trailing slash.
    base: Url,
    key: SecretKey,
    authorization: HeaderValue,
    engine: Engine,
}

impl fmt::Debug for ClerkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkClient")
            .field("api_url", &self.inner.base.as_str())
            .field("key", &self.inner.key)
            .field("rate_limit", &self.inner.engine.instance_limiter.limit())
            .finish_non_exhaustive()
    }
}

impl ClerkClient {
    /// A standalone client with its own HTTP connection pool and a rate limiter of its own
    /// at `rate_limit`. Use [`super::ClientPool`] for clients that share a key's limiter.
    pub fn new(
        api_url: &str,
        key: SecretKey,
        rate_limit: RateLimit,
        options: ClientOptions,
    ) -> Result<ClerkClient, ConfigError> {
        let http = build_http_client(&options)?;
        let engine = Engine {
            instance_limiter: Arc::new(Limiter::new(rate_limit)?),
            key_limiter: Arc::new(Limiter::new(rate_limit)?),
            retry: options.retry,
            max_rate_limit_wait: options.max_rate_limit_wait,
            draining: Arc::default(),
            observer: None,
        };
        ClerkClient::from_parts(http, api_url, key, engine)
    }

    pub(crate) fn from_parts(
        http: reqwest::Client,
        api_url: &str,
        key: SecretKey,
        engine: Engine,
    ) -> Result<ClerkClient, ConfigError> {
        let base = parse_api_url(api_url)?;
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", key.expose()))
            .map_err(|_| ConfigError::Http("the key is not a valid header value".to_owned()))?;
        authorization.set_sensitive(true);
        Ok(ClerkClient {
            inner: Arc::new(Inner {
                http,
                base,
                key,
                authorization,
                engine,
            }),
        })
    }

    /// The API base URL (without trailing slash).
    pub fn api_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The fingerprint of the client's secret key.
    pub fn key_fingerprint(&self) -> KeyFingerprint {
        self.inner.key.fingerprint()
    }

    /// The rate limit of the client's instance (its own calls only).
    pub fn rate_limit(&self) -> RateLimit {
        self.inner.engine.instance_limiter.limit()
    }

    /// Clerk's rate limit for the client's key, shared by every instance using the key.
    pub fn key_rate_limit(&self) -> RateLimit {
        self.inner.engine.key_limiter.limit()
    }

    /// Creates an actor token: `POST {api}/actor_tokens`.
    ///
    /// Retries 429s, 5xx answers and requests that could not be sent, within the retry
    /// policy. An `AnswerLost` (or an unreadable 2xx answer) is returned at once and never
    /// retried: a token may exist, and the caller must record that before anything else.
    pub async fn create_actor_token(
        &self,
        request: &NewActorToken,
    ) -> Result<IssuedActorToken, ClerkError> {
        let url = self.endpoint(&["actor_tokens"]);
        // String-keyed JSON values always serialise (serde_json's numbers are finite).
        let body = serde_json::to_vec(request).expect("a NewActorToken always serialises");
        let kind = CallKind::Create;
        let issued = self
            .inner
            .engine
            .run(kind, None, || async {
                let request = self
                    .inner
                    .http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                let answer = self.send(kind, request, MAX_ANSWER_BYTES).await?;
                if answer.status.is_success() {
                    parse_issued(answer.status.as_u16(), &answer.body)
                } else {
                    Err(answer.failure(kind))
                }
            })
            .await?;
        debug!(operation = kind.name(), token_id = %issued.id, "actor token created");
        Ok(issued)
    }

    /// Revokes an actor token: `POST {api}/actor_tokens/{id}/revoke`.
    ///
    /// Retries like a create, and also retries an attempt whose answer was lost, since
    /// revoking twice is harmless.
    pub async fn revoke_actor_token(&self, id: &str) -> Result<RevokeOutcome, ClerkError> {
        let kind = CallKind::Revoke;
        let outcome = match self.post_revoke(kind, "actor_tokens", id).await? {
            RevokeAnswer::Done => RevokeOutcome::Revoked,
            RevokeAnswer::Refused => RevokeOutcome::NotPending,
            RevokeAnswer::NotFound => RevokeOutcome::NotFound,
        };
        debug!(operation = kind.name(), token_id = id, outcome = ?outcome, "actor token revoke answered");
        Ok(outcome)
    }

    /// The user's active sessions: `GET {api}/sessions?user_id=…&status=active`, every page
    /// (each page is one call, counted by the rate limiters like any other).
    pub async fn list_active_sessions(&self, user_id: &str) -> Result<Vec<Session>, ClerkError> {
        let kind = CallKind::ListSessions;
        let mut sessions = Vec::new();
        for page in 0..MAX_SESSION_PAGES {
            let mut url = self.endpoint(&["sessions"]);
            url.query_pairs_mut()
                .append_pair("user_id", user_id)
                .append_pair("status", "active")
                .append_pair("limit", &SESSION_PAGE_SIZE.to_string())
                .append_pair("offset", &(page * SESSION_PAGE_SIZE).to_string());
            let found = self
                .inner
                .engine
                .run(kind, Some(user_id), || async {
                    let answer = self
                        .send(
                            kind,
                            self.inner.http.get(url.clone()),
                            MAX_LIST_ANSWER_BYTES,
                        )
                        .await?;
                    if answer.status.is_success() {
                        parse_session_page(answer.status.as_u16(), &answer.body)
                    } else {
                        Err(answer.failure(kind))
                    }
                })
                .await?;
            let last = found.len() < SESSION_PAGE_SIZE;
            sessions.extend(found);
            if last {
                debug!(
                    operation = kind.name(),
                    user_id,
                    sessions = sessions.len(),
                    "active sessions listed"
                );
                return Ok(sessions);
            }
        }
        Err(ClerkError::InvalidAnswer {
            status: 200,
            detail: format!(
                "more than {} active sessions for one user; not paging further",
                MAX_SESSION_PAGES * SESSION_PAGE_SIZE
            ),
            token_id: None,
        })
    }

    /// Ends a session: `POST {api}/sessions/{id}/revoke`. Safe to send twice.
    pub async fn revoke_session(&self, id: &str) -> Result<SessionRevokeOutcome, ClerkError> {
        let kind = CallKind::RevokeSession;
        let outcome = match self.post_revoke(kind, "sessions", id).await? {
            RevokeAnswer::Done => SessionRevokeOutcome::Revoked,
            RevokeAnswer::Refused => SessionRevokeOutcome::NotActive,
            RevokeAnswer::NotFound => SessionRevokeOutcome::NotFound,
        };
        debug!(operation = kind.name(), session_id = id, outcome = ?outcome, "session revoke answered");
        Ok(outcome)
    }

    /// `POST {api}/{collection}/{id}/revoke`, retried (revoking twice is harmless). Clerk's
    /// revoke endpoints for actor tokens and sessions answer alike: 2xx done, 400 refused
    /// (no longer pending or active), 404 unknown. An `id` that can't be a path segment is
    /// nobody's: unknown, without a call.
    async fn post_revoke(
        &self,
        kind: CallKind,
        collection: &str,
        id: &str,
    ) -> Result<RevokeAnswer, ClerkError> {
        if !is_path_segment(id) {
            debug!(
                operation = kind.name(),
                id, "not a Clerk ID; nothing to revoke"
            );
            return Ok(RevokeAnswer::NotFound);
        }
        let url = self.endpoint(&[collection, id, "revoke"]);
        self.inner
            .engine
            .run(kind, Some(id), || async {
                let answer = self
                    .send(kind, self.inner.http.post(url.clone()), MAX_ANSWER_BYTES)
                    .await?;
                match answer.status.as_u16() {
                    200..=299 => Ok(RevokeAnswer::Done),
                    400 => Ok(RevokeAnswer::Refused),
                    404 => Ok(RevokeAnswer::NotFound),
                    _ => Err(answer.failure(kind)),
                }
            })
            .await
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked by parse_api_url")
            .extend(segments);
        url
    }

    /// Sends one request and reads the answer (at most `max_bytes` of it), telling the
    /// observer how it went.
    async fn send(
        &self,
        kind: CallKind,
        request: reqwest::RequestBuilder,
        max_bytes: usize,
    ) -> Result<Answer, ClerkError> {
        let started = Instant::now();
        let (outcome, answer) = self.send_once(kind, request, max_bytes).await;
        if let Some(observer) = &self.inner.engine.observer {
            observer.call_finished(kind, outcome, started.elapsed());
        }
        answer
    }

    async fn send_once(
        &self,
        kind: CallKind,
        request: reqwest::RequestBuilder,
        max_bytes: usize,
    ) -> (CallOutcome, Result<Answer, ClerkError>) {
        let mut response = match request
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return (outcome_of(&e), Err(transport_error(e))),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        match read_capped(&mut response, max_bytes).await {
            Ok(body) => (
                CallOutcome::Status(status.as_u16()),
                Ok(Answer {
                    status,
                    retry_after,
                    body,
                }),
            ),
            // Larger than any answer of Clerk's: a transport error. Clerk may have acted, so
            // after a create it is an answer lost (a token may exist).
            Err(ReadError::TooLarge) => (
                CallOutcome::Transport,
                Err(ClerkError::AnswerLost {
                    detail: format!(
                        "HTTP {status} answer larger than {} KiB; not read",
                        max_bytes / 1024
                    ),
                }),
            ),
            // Clerk acted (2xx) but its answer was cut off: after a create, a token exists.
            Err(ReadError::Transport(e)) if status.is_success() => (
                outcome_of(&e),
                Err(ClerkError::AnswerLost {
                    detail: format!(
                        "HTTP {status} answer cut off: {}",
                        error_chain(&e.without_url())
                    ),
                }),
            ),
            // The status alone says what happened.
            Err(ReadError::Transport(e)) => {
                debug!(operation = kind.name(), %status, error = %error_chain(&e.without_url()), "could not read an error answer's body");
                (
                    CallOutcome::Status(status.as_u16()),
                    Ok(Answer {
                        status,
                        retry_after,
                        body: Vec::new(),
                    }),
                )
            }
        }
    }
}

/// Whether `id` can be sent as one path segment: `""`, `"."` and `".."` can't be IDs, and as
/// segments they would name another endpoint.
fn is_path_segment(id: &str) -> bool {
    !matches!(id, "" | "." | "..")
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    /// The error a non-success answer means (other than the statuses a call handles itself).
    fn failure(&self, kind: CallKind) -> ClerkError {
        classify_failure(kind, self.status.as_u16(), self.retry_after, &self.body)
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads an answer's body, but no more than `max_bytes` of it: a broken or hostile endpoint
/// could otherwise stream until the process runs out of memory.
async fn read_capped(
    response: &mut reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What one of Clerk's revoke endpoints answered (see `ClerkClient::post_revoke`).
enum RevokeAnswer {
    Done,
    Refused,
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk::RetryPolicy;

    const KEY: &str = "sk_live_SECRETKEYPART";

    fn client(api_url: &str) -> ClerkClient {
        ClerkClient::new(
            api_url,
            SecretKey::parse(KEY).unwrap(),
            RateLimit {
                requests: 10,
                period: Duration::from_secs(1),
            },
            ClientOptions::default(),
        )
        .unwrap()
    }

    #[derive(Default)]
    struct Recorder {
        calls: std::sync::Mutex<Vec<(CallKind, CallOutcome)>>,
        waits: std::sync::Mutex<Vec<Duration>>,
    }

    impl super::super::CallObserver for Recorder {
        fn call_finished(&self, kind: CallKind, outcome: CallOutcome, _: Duration) {
            self.calls.lock().unwrap().push((kind, outcome));
        }
        fn rate_limit_waited(&self, waited: Duration) {
            self.waits.lock().unwrap().push(waited);
        }
    }

    #[tokio::test]
    async fn each_attempt_and_rate_limiter_wait_is_reported() {
        let recorder = Arc::new(Recorder::default());
        let options = ClientOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                min_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..ClientOptions::default()
        };
        // Nothing listens on port 9: both attempts fail to connect. One request per 300 ms
        // makes the second attempt wait for the limiter.
        let limit = RateLimit {
            requests: 2,
            period: Duration::from_millis(300),
        };
        let engine = Engine {
            instance_limiter: Arc::new(Limiter::new(limit).unwrap()),
            key_limiter: Arc::new(Limiter::new(limit).unwrap()),
            retry: options.retry.clone(),
            max_rate_limit_wait: Duration::from_secs(1),
            draining: Arc::default(),
            observer: Some(recorder.clone()),
        };
        let c = ClerkClient::from_parts(
            build_http_client(&options).unwrap(),
            "http://127.0.0.1:9/v1",
            SecretKey::parse(KEY).unwrap(),
            engine,
        )
        .unwrap();
        c.revoke_actor_token("act_1").await.unwrap_err();
        assert_eq!(
            *recorder.calls.lock().unwrap(),
            vec![
                (CallKind::Revoke, CallOutcome::Connect),
                (CallKind::Revoke, CallOutcome::Connect)
            ]
        );
        let waits = recorder.waits.lock().unwrap();
        assert_eq!(waits.len(), 1, "{waits:?}");
        assert!(waits[0] > Duration::from_millis(100), "{waits:?}");
    }

    #[test]
    fn endpoints_accept_a_base_with_or_without_trailing_slash() {
        let c = client("https://api.clerk.com/v1/");
        assert_eq!(c.api_url(), "https://api.clerk.com/v1");
        assert_eq!(
            c.endpoint(&["actor_tokens"]).as_str(),
            "https://api.clerk.com/v1/actor_tokens"
        );
        let c = client("http://127.0.0.1:8080");
        assert_eq!(
            c.endpoint(&["actor_tokens"]).as_str(),
            "http://127.0.0.1:8080/actor_tokens"
        );
    }

    #[test]
    fn ids_are_percent_encoded_as_one_path_segment() {
        let c = client("https://api.clerk.com/v1/");
        assert_eq!(
            c.endpoint(&["actor_tokens", "act_2x", "revoke"]).as_str(),
            "https://api.clerk.com/v1/actor_tokens/act_2x/revoke"
        );
        assert_eq!(
            c.endpoint(&["sessions", "a/../b?c#d%e f", "revoke"])
                .as_str(),
            "https://api.clerk.com/v1/sessions/a%2F..%2Fb%3Fc%23d%25e%20f/revoke"
        );
    }

    #[tokio::test]
    async fn ids_that_are_not_path_segments_are_not_sent() {
        // Nothing listens on port 9 of this URL; a request would fail, not answer NotFound.
        let c = client("http://127.0.0.1:9/v1");
        for id in ["", ".", ".."] {
            assert_eq!(
                c.revoke_actor_token(id).await.unwrap(),
                RevokeOutcome::NotFound
            );
            assert_eq!(
                c.revoke_session(id).await.unwrap(),
                SessionRevokeOutcome::NotFound
            );
        }
    }

    #[test]
    fn client_debug_shows_no_key() {
        let c = client("https://api.clerk.com/v1");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("SECRETKEYPART"), "{shown}");
        assert!(shown.contains(&c.key_fingerprint().to_string()), "{shown}");
    }
}
