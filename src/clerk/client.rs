//! The Clerk Backend API client: create and revoke actor tokens, with bounded retries.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::debug;

use super::error::{
    ClerkError, Operation, classify_failure, describe_json_error, parse_retry_after,
};
use super::limit::{KeyLimiter, RateLimit, RateLimitError};
use super::observe::{CallObserver, CallOutcome};
use super::secret::{Credential, KeyFingerprint, SecretKey};

/// The Backend API version this client speaks, sent as `Clerk-API-Version`.
pub const CLERK_API_VERSION: &str = "2026-05-12";
/// Clerk's production Backend API base URL.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com/v1";
/// Sent as `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("actor-token-operator/", env!("CARGO_PKG_VERSION"));

/// How the client retries a failed call before giving the error to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1).
    pub max_attempts: u32,
    /// No retry starts once this much time has passed since the call began (rate-limiter
    /// waits included).
    pub total_budget: Duration,
    /// The first backoff ceiling; each delay is drawn uniformly from zero to the ceiling
    /// ("full jitter"), and the ceiling doubles after each retry.
    pub min_backoff: Duration,
    /// The largest backoff ceiling.
    pub max_backoff: Duration,
    /// The longest `Retry-After` the client waits itself; a longer one is handed to the
    /// caller as `RateLimited`, to be scheduled rather than waited on.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            total_budget: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// Transport settings shared by clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed to open a connection (TCP and TLS); past it, the request was not sent.
    pub connect_timeout: Duration,
    /// Time allowed for one whole attempt, from sending to the end of the answer's body.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid Clerk API URL: {0}")]
    InvalidApiUrl(String),
    #[error(transparent)]
    InvalidRateLimit(#[from] RateLimitError),
    #[error("could not build the HTTP client: {0}")]
    Http(String),
}

/// The body of `POST /v1/actor_tokens`, serialised exactly as the spec's request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewActorToken {
    /// The user being impersonated.
    pub user_id: String,
    /// The impersonator: must hold `sub` (the actor's user ID); every other key is passed
    /// through unchanged and ends up in the session token's `act` claim.
    pub actor: serde_json::Map<String, serde_json::Value>,
    /// How long the token can be used.
    pub expires_in_seconds: u64,
    /// How long the session it opens lasts.
    pub session_max_duration_in_seconds: u64,
}

/// An actor token's status, as Clerk reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum ActorTokenStatus {
    /// Not used yet: the only status that can be revoked.
    Pending,
    /// Someone signed in with it.
    Accepted,
    Revoked,
    /// A status this client doesn't know.
    Other(String),
}

impl From<String> for ActorTokenStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "pending" => ActorTokenStatus::Pending,
            "accepted" => ActorTokenStatus::Accepted,
            "revoked" => ActorTokenStatus::Revoked,
            _ => ActorTokenStatus::Other(value),
        }
    }
}

impl fmt::Display for ActorTokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActorTokenStatus::Pending => "pending",
            ActorTokenStatus::Accepted => "accepted",
            ActorTokenStatus::Revoked => "revoked",
            ActorTokenStatus::Other(other) => other,
        })
    }
}

/// A freshly created actor token. `token` and `url` are credentials, and Clerk hands them
/// out only once.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedActorToken {
    pub id: String,
    pub status: ActorTokenStatus,
    pub user_id: String,
    pub token: Credential,
    pub url: Credential,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

/// What a revoke achieved. Each of them means no live token is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Clerk revoked the pending token.
    Revoked,
    /// 400: the token was not pending (accepted, already revoked, or expired), so there
    /// was nothing live to revoke. After an attempt whose answer was lost this can also be
    /// the client's own earlier revoke.
    NotPending,
    /// 404: Clerk doesn't know the token.
    NotFound,
}

/// A client for one Clerk instance and secret key. Cheap to clone; clones share the HTTP
/// connection pool and the key's rate limiter.
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
    limiter: Arc<KeyLimiter>,
    retry: RetryPolicy,
    /// Told about every attempt and rate-limiter wait (the operator's metrics).
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for ClerkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkClient")
            .field("api_url", &self.inner.base.as_str())
            .field("key", &self.inner.key)
            .field("rate_limit", &self.inner.limiter.limit())
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client every `ClerkClient` uses: timeouts, the fixed headers, and no
/// redirects (an API answer is never a redirect, and the key must not follow one).
pub(crate) fn build_http_client(options: &ClientOptions) -> Result<reqwest::Client, ConfigError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "clerk-api-version",
        HeaderValue::from_static(CLERK_API_VERSION),
    );
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::Http(error_chain(&e.without_url())))
}

/// Checks an API base URL and drops a trailing slash.
pub(crate) fn parse_api_url(api_url: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(api_url.trim())
        .map_err(|e| ConfigError::InvalidApiUrl(format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::InvalidApiUrl(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::InvalidApiUrl(
            "it must not hold a user name or password".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::InvalidApiUrl(
            "it must not have a query or fragment".to_owned(),
        ));
    }
    if url.cannot_be_a_base() {
        return Err(ConfigError::InvalidApiUrl("it has no host".to_owned()));
    }
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
    }
    Ok(url)
}

impl ClerkClient {
    /// A standalone client with its own HTTP connection pool and rate limiter. Use
    /// [`super::ClientPool`] to share the limiter between clients of the same key.
    pub fn new(
        api_url: &str,
        key: SecretKey,
        rate_limit: RateLimit,
        options: ClientOptions,
    ) -> Result<ClerkClient, ConfigError> {
        let http = build_http_client(&options)?;
        let limiter = Arc::new(KeyLimiter::new(rate_limit)?);
        ClerkClient::from_parts(http, api_url, key, limiter, options.retry, None)
    }

    pub(crate) fn from_parts(
        http: reqwest::Client,
        api_url: &str,
        key: SecretKey,
        limiter: Arc<KeyLimiter>,
        retry: RetryPolicy,
        observer: Option<Arc<dyn CallObserver>>,
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
                limiter,
                retry,
                observer,
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

    /// The rate limit the client's key limiter enforces now.
    pub fn rate_limit(&self) -> RateLimit {
        self.inner.limiter.limit()
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
        let operation = Operation::Create;
        let issued = self
            .with_retries(operation, None, || async {
                let request = self
                    .inner
                    .http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                let answer = self.send(operation, request).await?;
                if answer.status.is_success() {
                    parse_issued(answer.status.as_u16(), &answer.body)
                } else {
                    Err(classify_failure(
                        operation,
                        answer.status.as_u16(),
                        answer.retry_after,
                        &answer.body,
                    ))
                }
            })
            .await?;
        debug!(operation = operation.name(), token_id = %issued.id, "actor token created");
        Ok(issued)
    }

    /// Revokes an actor token: `POST {api}/actor_tokens/{id}/revoke`.
    ///
    /// Retries like a create, and also retries an attempt whose answer was lost, since
    /// revoking twice is harmless.
    pub async fn revoke_actor_token(&self, id: &str) -> Result<RevokeOutcome, ClerkError> {
        let operation = Operation::Revoke;
        if matches!(id, "" | "." | "..") {
            // Such an ID can't exist, and as a path segment it would name another endpoint.
            debug!(
                operation = operation.name(),
                token_id = id,
                "not a token ID; nothing to revoke"
            );
            return Ok(RevokeOutcome::NotFound);
        }
        let url = self.endpoint(&["actor_tokens", id, "revoke"]);
        let outcome = self
            .with_retries(operation, Some(id), || async {
                let answer = self
                    .send(operation, self.inner.http.post(url.clone()))
                    .await?;
                match answer.status.as_u16() {
                    200..=299 => Ok(RevokeOutcome::Revoked),
                    400 => Ok(RevokeOutcome::NotPending),
                    404 => Ok(RevokeOutcome::NotFound),
                    status => Err(classify_failure(
                        operation,
                        status,
                        answer.retry_after,
                        &answer.body,
                    )),
                }
            })
            .await?;
        debug!(operation = operation.name(), token_id = id, outcome = ?outcome, "actor token revoke answered");
        Ok(outcome)
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("checked by parse_api_url")
            .extend(segments);
        url
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy runs out,
    /// waiting for the rate limiter before every attempt.
    async fn with_retries<T, F, Fut>(
        &self,
        operation: Operation,
        token_id: Option<&str>,
        mut attempt: F,
    ) -> Result<T, ClerkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClerkError>>,
    {
        let policy = &self.inner.retry;
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
            let waited = self.inner.limiter.until_ready().await;
            if let Some(observer) = &self.inner.observer
                && !waited.is_zero()
            {
                observer.rate_limit_waited(waited);
            }
            debug!(
                operation = operation.name(),
                token_id,
                attempt = number,
                "sending request to Clerk"
            );
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = match retry_delay(operation, &error, policy, &mut backoff) {
                Some(delay) if number < policy.max_attempts => delay,
                _ => {
                    debug!(operation = operation.name(), token_id, attempt = number, reason = error.reason(), %error, "Clerk call failed; not retrying");
                    return Err(error);
                }
            };
            if started.elapsed() + delay > policy.total_budget {
                debug!(operation = operation.name(), token_id, attempt = number, reason = error.reason(), %error, "Clerk call failed; retry budget spent");
                return Err(error);
            }
            debug!(operation = operation.name(), token_id, attempt = number, reason = error.reason(), %error, delay_ms = delay.as_millis() as u64, "Clerk call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends one request and reads the whole answer, telling the observer how it went.
    async fn send(
        &self,
        operation: Operation,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ClerkError> {
        let started = Instant::now();
        let (outcome, answer) = self.send_once(operation, request).await;
        if let Some(observer) = &self.inner.observer {
            observer.call_finished(operation.kind(), outcome, started.elapsed());
        }
        answer
    }

    async fn send_once(
        &self,
        operation: Operation,
        request: reqwest::RequestBuilder,
    ) -> (CallOutcome, Result<Answer, ClerkError>) {
        let response = match request
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
        match response.bytes().await {
            Ok(body) => (
                CallOutcome::Status(status.as_u16()),
                Ok(Answer {
                    status,
                    retry_after,
                    body: body.to_vec(),
                }),
            ),
            // Clerk acted (2xx) but its answer was cut off: after a create, a token exists.
            Err(e) if status.is_success() => (
                outcome_of(&e),
                Err(ClerkError::AnswerLost {
                    detail: format!(
                        "HTTP {status} answer cut off: {}",
                        error_chain(&e.without_url())
                    ),
                }),
            ),
            // The status alone says what happened.
            Err(e) => {
                debug!(operation = operation.name(), %status, error = %error_chain(&e.without_url()), "could not read an error answer's body");
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

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// How long to wait before retrying after `error`, or `None` if it must not be retried.
fn retry_delay(
    operation: Operation,
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
        ClerkError::AnswerLost { .. } if operation == Operation::Revoke => Some(jittered()),
        ClerkError::AnswerLost { .. }
        | ClerkError::Rejected { .. }
        | ClerkError::Unauthorized { .. }
        | ClerkError::InvalidAnswer { .. } => None,
    }
}

/// A delay drawn uniformly from `[0, ceiling]`.
fn full_jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The metric label of an attempt that got no whole answer.
fn outcome_of(error: &reqwest::Error) -> CallOutcome {
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
fn transport_error(error: reqwest::Error) -> ClerkError {
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
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

#[derive(Deserialize)]
struct ActorTokenBody {
    id: String,
    status: ActorTokenStatus,
    user_id: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    url: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// Parses the `ActorToken` answer to a create. A 2xx whose body can't be used still means
/// the token exists, so the error carries its ID when the body shows one.
pub(crate) fn parse_issued(status: u16, body: &[u8]) -> Result<IssuedActorToken, ClerkError> {
    let invalid = |detail: String| ClerkError::InvalidAnswer {
        status,
        detail,
        token_id: serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
            .filter(|id| !id.is_empty()),
    };
    let parsed: ActorTokenBody =
        serde_json::from_slice(body).map_err(|e| invalid(describe_json_error(&e)))?;
    if parsed.id.is_empty() {
        return Err(invalid("the token ID is empty".to_owned()));
    }
    let (Some(token), Some(url)) = (parsed.token, parsed.url) else {
        return Err(invalid("the answer holds no token or url".to_owned()));
    };
    let created_at = unix_timestamp(parsed.created_at)
        .ok_or_else(|| invalid("created_at is out of range".to_owned()))?;
    let updated_at = unix_timestamp(parsed.updated_at)
        .ok_or_else(|| invalid("updated_at is out of range".to_owned()))?;
    Ok(IssuedActorToken {
        id: parsed.id,
        status: parsed.status,
        user_id: parsed.user_id,
        token: Credential::new(token),
        url: Credential::new(url),
        created_at,
        updated_at,
    })
}

/// Reads a Clerk timestamp. The spec says only "Unix timestamp"; Clerk's README for this
/// project says seconds, while Clerk's other objects use milliseconds. Values of 10^11 and
/// more are read as milliseconds (10^11 s is the year 5138, 10^11 ms is 1973), so both work.
pub(crate) fn unix_timestamp(value: i64) -> Option<jiff::Timestamp> {
    const MILLIS_FROM: i64 = 100_000_000_000;
    if value.unsigned_abs() >= MILLIS_FROM as u64 {
        jiff::Timestamp::from_millisecond(value).ok()
    } else {
        jiff::Timestamp::from_second(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        calls: std::sync::Mutex<Vec<(crate::clerk::CallKind, CallOutcome)>>,
        waits: std::sync::Mutex<Vec<Duration>>,
    }

    impl CallObserver for Recorder {
        fn call_finished(&self, kind: crate::clerk::CallKind, outcome: CallOutcome, _: Duration) {
            self.calls.lock().unwrap().push((kind, outcome));
        }
        fn rate_limit_waited(&self, waited: Duration) {
            self.waits.lock().unwrap().push(waited);
        }
    }

    #[tokio::test]
    async fn each_attempt_and_rate_limiter_wait_is_reported() {
        use crate::clerk::CallKind;
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
        let c = ClerkClient::from_parts(
            build_http_client(&options).unwrap(),
            "http://127.0.0.1:9/v1",
            SecretKey::parse(KEY).unwrap(),
            Arc::new(KeyLimiter::new(limit).unwrap()),
            options.retry.clone(),
            Some(recorder.clone()),
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
        for base in [
            "https://api.clerk.com/v1",
            "https://api.clerk.com/v1/",
            " https://api.clerk.com/v1\n",
        ] {
            let c = client(base);
            assert_eq!(c.api_url(), "https://api.clerk.com/v1");
            assert_eq!(
                c.endpoint(&["actor_tokens"]).as_str(),
                "https://api.clerk.com/v1/actor_tokens"
            );
        }
        let c = client("http://127.0.0.1:8080");
        assert_eq!(
            c.endpoint(&["actor_tokens"]).as_str(),
            "http://127.0.0.1:8080/actor_tokens"
        );
    }

    #[test]
    fn token_ids_are_percent_encoded_as_one_path_segment() {
        let c = client("https://api.clerk.com/v1/");
        assert_eq!(
            c.endpoint(&["actor_tokens", "act_2x", "revoke"]).as_str(),
            "https://api.clerk.com/v1/actor_tokens/act_2x/revoke"
        );
        assert_eq!(
            c.endpoint(&["actor_tokens", "a/../b?c#d%e f", "revoke"])
                .as_str(),
            "https://api.clerk.com/v1/actor_tokens/a%2F..%2Fb%3Fc%23d%25e%20f/revoke"
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
        }
    }

    #[test]
    fn bad_api_urls_are_refused_without_echoing_them() {
        for bad in [
            "api.clerk.com/v1",
            "ftp://api.clerk.com/v1",
            "https://user:SECRETPASS@api.clerk.com/v1",
            "https://api.clerk.com/v1?x=1",
            "https://api.clerk.com/v1#frag",
            "mailto:someone@example.com",
        ] {
            let err = ClerkClient::new(
                bad,
                SecretKey::parse(KEY).unwrap(),
                RateLimit::clerk_default(crate::clerk::KeyEnvironment::Production),
                ClientOptions::default(),
            )
            .unwrap_err();
            assert!(matches!(err, ConfigError::InvalidApiUrl(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("SECRETPASS"), "{err}");
        }
    }

    #[test]
    fn client_debug_shows_no_key() {
        let c = client("https://api.clerk.com/v1");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("SECRETKEYPART"), "{shown}");
        assert!(shown.contains(&c.key_fingerprint().to_string()), "{shown}");
    }

    #[test]
    fn new_actor_token_serialises_as_the_spec_body() {
        let mut actor = serde_json::Map::new();
        actor.insert("sub".into(), json!("user_actor"));
        actor.insert("reason".into(), json!({"ticket": 42, "tags": ["a", "b"]}));
        let request = NewActorToken {
            user_id: "user_target".into(),
            actor,
            expires_in_seconds: 600,
            session_max_duration_in_seconds: 300,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "user_id": "user_target",
                "actor": {"sub": "user_actor", "reason": {"ticket": 42, "tags": ["a", "b"]}},
                "expires_in_seconds": 600,
                "session_max_duration_in_seconds": 300,
            })
        );
    }

    fn answer(overrides: serde_json::Value) -> Vec<u8> {
        let mut body = json!({
            "object": "actor_token",
            "id": "act_123",
            "status": "pending",
            "user_id": "user_target",
            "actor": {"sub": "user_actor"},
            "token": "SECRETTOKEN",
            "url": "https://accounts.example/ticket=SECRETTOKEN",
            "created_at": 1_778_580_000,
            "updated_at": 1_778_580_001,
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        serde_json::to_vec(&body).unwrap()
    }

    #[test]
    fn parses_the_actor_token_answer() {
        let issued = parse_issued(200, &answer(json!({}))).unwrap();
        assert_eq!(issued.id, "act_123");
        assert_eq!(issued.status, ActorTokenStatus::Pending);
        assert_eq!(issued.user_id, "user_target");
        assert_eq!(issued.token.expose(), "SECRETTOKEN");
        assert_eq!(
            issued.url.expose(),
            "https://accounts.example/ticket=SECRETTOKEN"
        );
        assert_eq!(issued.created_at.as_second(), 1_778_580_000);
        assert_eq!(issued.updated_at.as_second(), 1_778_580_001);
        let shown = format!("{issued:?}");
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");

        // Milliseconds, as Clerk uses elsewhere, give the same instant.
        let issued = parse_issued(
            200,
            &answer(json!({"created_at": 1_778_580_000_123i64, "status": "weird"})),
        )
        .unwrap();
        assert_eq!(issued.created_at.as_millisecond(), 1_778_580_000_123);
        assert_eq!(issued.status, ActorTokenStatus::Other("weird".into()));
    }

    #[test]
    fn an_unusable_create_answer_keeps_the_token_id_and_hides_credentials() {
        let err = parse_issued(200, &answer(json!({"url": null}))).unwrap_err();
        assert_eq!(err.token_id(), Some("act_123"));
        assert!(err.outcome_unknown());
        assert_eq!(err.reason(), "ClerkInvalidAnswer");

        // A credential in a field of the wrong type must not be quoted.
        let err = parse_issued(201, &answer(json!({"created_at": "SECRETTOKEN"}))).unwrap_err();
        assert_eq!(err.token_id(), Some("act_123"));
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        }

        let err = parse_issued(200, b"<html>oops</html>").unwrap_err();
        assert_eq!(err.token_id(), None);
        assert!(matches!(err, ClerkError::InvalidAnswer { status: 200, .. }));

        let err = parse_issued(200, &answer(json!({"id": ""}))).unwrap_err();
        assert_eq!(err.token_id(), None);
    }

    #[test]
    fn timestamps_in_seconds_or_milliseconds() {
        assert_eq!(unix_timestamp(0).unwrap().as_second(), 0);
        assert_eq!(
            unix_timestamp(99_999_999_999).unwrap().as_second(),
            99_999_999_999
        );
        assert_eq!(
            unix_timestamp(100_000_000_000).unwrap().as_millisecond(),
            100_000_000_000
        );
        assert!(unix_timestamp(i64::MAX).is_none());
    }

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
        assert_eq!(
            retry_delay(Operation::Create, &lost, &p, &mut backoff),
            None
        );
        assert!(retry_delay(Operation::Revoke, &lost, &p, &mut backoff).is_some());
        let limited = |s| ClerkError::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            retry_delay(Operation::Create, &limited(5), &p, &mut backoff),
            Some(Duration::from_secs(5))
        );
        // Longer than the client waits itself: handed back for the caller to schedule.
        assert_eq!(
            retry_delay(Operation::Create, &limited(6), &p, &mut backoff),
            None
        );
        let unavailable = ClerkError::Unavailable {
            status: Some(503),
            detail: String::new(),
        };
        for op in [Operation::Create, Operation::Revoke] {
            let delay = retry_delay(op, &unavailable, &p, &mut backoff).unwrap();
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
        ] {
            for op in [Operation::Create, Operation::Revoke] {
                assert_eq!(retry_delay(op, &final_error, &p, &mut backoff), None);
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
}
