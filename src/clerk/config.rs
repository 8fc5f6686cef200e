//! How a client is set up: the API URL, timeouts, the retry policy, the bound on waiting for
//! a rate limiter, and the fixed headers.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue};

use super::classify::error_chain;
use super::limit::RateLimitError;

/// The Backend API version this client speaks, sent as `Clerk-API-Version`.
pub const CLERK_API_VERSION: &str = "2026-05-12";
/// Clerk's production Backend API base URL.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com/v1";
/// Sent as `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("actor-token-operator/", env!("CARGO_PKG_VERSION"));

/// The most the client reads of an answer that is one object (an actor token, a session, an
/// error). Clerk's are a few hundred bytes; anything past this is a broken or hostile
/// endpoint, and reading on could exhaust the operator's memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most the client reads of one page of a list (sessions).
pub const MAX_LIST_ANSWER_BYTES: usize = 1024 * 1024;

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
    /// The longest a call waits for the client-side rate limiter. A call that would have to
    /// wait longer fails at once with [`super::ClerkError::Throttled`], saying when the
    /// limiter gives, so that its caller can come back then instead of holding on.
    pub max_rate_limit_wait: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_rate_limit_wait: Duration::from_secs(1),
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let err = parse_api_url(bad).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidApiUrl(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("SECRETPASS"), "{err}");
        }
    }

    #[test]
    fn a_trailing_slash_and_whitespace_are_dropped() {
        for base in [
            "https://api.clerk.com/v1",
            "https://api.clerk.com/v1/",
            " https://api.clerk.com/v1\n",
        ] {
            assert_eq!(
                parse_api_url(base).unwrap().as_str(),
                "https://api.clerk.com/v1"
            );
        }
    }
}
