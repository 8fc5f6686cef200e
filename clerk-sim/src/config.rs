//! Start-up configuration and the fault knobs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The secret key a [`SimConfig::default()`] accepts. It is a development (`sk_test_`) key, so
/// [`RateLimit::Clerk`] gives it Clerk's development limit.
pub const DEFAULT_SECRET_KEY: &str = "sk_test_clerk_sim_default_key";

/// How to start a simulator. See [`crate::start`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Secret keys accepted as `Authorization: Bearer KEY`. Any other key gets 401.
    pub secret_keys: Vec<String>,
    /// Faults in force from the start; change them later with [`crate::Simulator::set_faults`].
    pub faults: Faults,
    /// Where to listen. Default `127.0.0.1:0` (a free port, read it back with
    /// [`crate::Simulator::base_url`]).
    pub addr: SocketAddr,
    /// Seed for every random choice (fault draws, latency, IDs, tokens). `None`: seeded from
    /// the OS.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            secret_keys: vec![DEFAULT_SECRET_KEY.to_owned()],
            faults: Faults::default(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: None,
        }
    }
}

/// Faults the simulator injects into API requests (`/v1/...`; never into `/__sim/...`).
///
/// `Faults::default()` injects nothing. It (de)serialises as the JSON of `GET/PUT /__sim/faults`,
/// where every field may be left out (it then takes its default):
///
/// ```json
/// {"latency": {"min_ms": 20, "max_ms": 200}, "server_error_share": 0.1,
///  "too_many_requests_share": 0.0, "retry_after_seconds": 1,
///  "rate_limit": {"per_key": {"requests": 5, "window_seconds": 10}}, "drop_create_share": 0.0}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before every API request is answered.
    pub latency: Option<Latency>,
    /// Share (0.0–1.0) of API requests answered 500, 502 or 503 (picked at random) with a
    /// Clerk error body. Nothing is created or revoked.
    pub server_error_share: f64,
    /// Share (0.0–1.0) of API requests answered 429 with `Retry-After: retry_after_seconds`.
    pub too_many_requests_share: f64,
    /// `Retry-After` (seconds) sent with `too_many_requests_share` answers.
    pub retry_after_seconds: u64,
    /// Per-secret-key request limit; past it, 429 with `Retry-After` = seconds left in the window.
    pub rate_limit: Option<RateLimit>,
    /// Share (0.0–1.0) of successful creates where the token IS created and recorded, but the
    /// TCP connection is closed before any answer is sent.
    pub drop_create_share: f64,
    /// User IDs that creates are refused for, with 422 `form_param_value_invalid` on
    /// `user_id`, as Clerk refuses a user that doesn't exist. Nothing is created.
    pub rejected_users: Vec<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: None,
            server_error_share: 0.0,
            too_many_requests_share: 0.0,
            retry_after_seconds: 1,
            rate_limit: None,
            drop_create_share: 0.0,
            rejected_users: Vec::new(),
        }
    }
}

impl Faults {
    /// No faults (same as `Faults::default()`).
    pub fn none() -> Self {
        Faults::default()
    }

    /// These faults plus Clerk's own rate limits ([`RateLimit::Clerk`]).
    pub fn with_clerk_rate_limits(mut self) -> Self {
        self.rate_limit = Some(RateLimit::Clerk);
        self
    }

    /// Checks that shares are within 0.0–1.0, that a latency range is not reversed and that a
    /// rate limit has a non-zero window.
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [
            ("server_error_share", self.server_error_share),
            ("too_many_requests_share", self.too_many_requests_share),
            ("drop_create_share", self.drop_create_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be between 0.0 and 1.0, not {share}"));
            }
        }
        if let Some(latency) = self.latency
            && latency.min_ms > latency.max_ms
        {
            return Err(format!(
                "latency min_ms ({}) is above max_ms ({})",
                latency.min_ms, latency.max_ms
            ));
        }
        if let Some(RateLimit::PerKey {
            window_seconds: 0, ..
        }) = self.rate_limit
        {
            return Err("rate_limit window_seconds must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Added latency: a delay drawn uniformly from `min_ms..=max_ms` (equal bounds: fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Latency {
    /// Always this delay.
    pub fn fixed(delay: Duration) -> Self {
        let ms = duration_ms(delay);
        Latency {
            min_ms: ms,
            max_ms: ms,
        }
    }

    /// A delay drawn uniformly between `min` and `max` (inclusive) for each request.
    pub fn between(min: Duration, max: Duration) -> Self {
        Latency {
            min_ms: duration_ms(min),
            max_ms: duration_ms(max),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A request limit per secret key, counted in fixed windows.
///
/// JSON: `{"per_key": {"requests": 100, "window_seconds": 10}}` or `"clerk"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RateLimit {
    /// At most `requests` API requests per `window_seconds` for each secret key.
    PerKey { requests: u32, window_seconds: u64 },
    /// Clerk's own limits: 100 requests per 10 s for development keys (`sk_test_...`),
    /// 1000 per 10 s for any other key (production, `sk_live_...`).
    Clerk,
}

impl RateLimit {
    /// `requests` per `window` for each key (the window is rounded down to whole seconds).
    pub fn per_key(requests: u32, window: Duration) -> Self {
        RateLimit::PerKey {
            requests,
            window_seconds: window.as_secs(),
        }
    }

    /// (requests, window seconds) that apply to this secret key.
    pub fn limit_for(&self, secret_key: &str) -> (u32, u64) {
        match *self {
            RateLimit::PerKey {
                requests,
                window_seconds,
            } => (requests, window_seconds.max(1)),
            RateLimit::Clerk if secret_key.starts_with("sk_test_") => (100, 10),
            RateLimit::Clerk => (1000, 10),
        }
    }
}
