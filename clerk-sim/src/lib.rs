//! A simulator of Clerk's Backend API for actor tokens and the sessions they open, held to
//! Clerk's OpenAPI spec (`spec/bapi-2026-05-12.yml`, version 2026-05-12), for tests.
//!
//! It serves, on 127.0.0.1:
//! - `POST /v1/actor_tokens` (CreateActorToken),
//! - `POST /v1/actor_tokens/{actor_token_id}/revoke` (RevokeActorToken),
//! - `GET /v1/sessions` (GetSessionList) and
//! - `POST /v1/sessions/{session_id}/revoke` (RevokeSession),
//!
//! with bearer-key auth, the spec's body and query validation, Clerk's error envelope, token
//! and session expiry, and fault injection (latency, 5xx, 429, per-key rate limits,
//! connections dropped after a create). Accepting a token (a user opening its sign-in link,
//! [`Simulator::accept`]) opens an active session carrying the token's actor. A control
//! surface for tests lives under `/__sim/`.
//!
//! # Library use
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use clerk_sim::{Faults, SimConfig, TokenStatus};
//!
//! let sim = clerk_sim::start(SimConfig {
//!     secret_keys: vec!["sk_test_abc".into()],
//!     ..SimConfig::default()
//! })
//! .await?;
//! let api_url = sim.api_url(); // "http://127.0.0.1:PORT/v1": what a client's base URL holds
//! // ... run the code under test against api_url with key sk_test_abc ...
//! assert_eq!(sim.stats().create.total, 1);
//! assert_eq!(sim.tokens()[0].status, TokenStatus::Pending);
//! sim.set_faults(Faults { server_error_share: 1.0, ..Faults::default() });
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each [`start`] binds its own port and spawns one task on the current Tokio runtime, so
//! every test can start its own simulator. Dropping a [`Simulator`] stops it too.
//!
//! # Answers
//!
//! | request | answer |
//! | --- | --- |
//! | no `Authorization`, not `Bearer KEY`, or a key not configured | 401 `ClerkErrors` (`authentication_invalid`, `authorization_header_format_invalid`, `clerk_key_invalid`) |
//! | create, body not JSON or not a JSON object | 400 `request_body_invalid` |
//! | create, unknown key / missing `user_id`, `actor`, `actor.sub` / wrong type | 422, one error per problem: `form_param_unknown`, `form_param_missing`, `form_param_format_invalid`, each with `meta.param_name` |
//! | create, valid | 200 `ActorToken`: `status: "pending"`, fresh `act_...` ID, `token`, `url`; defaults `expires_in_seconds` 3600, `session_max_duration_in_seconds` 1800 |
//! | revoke, pending and not expired | 200 `ActorToken` with `status: "revoked"`, without `token` and `url` |
//! | revoke, accepted, revoked or expired | 400 `actor_token_cannot_be_revoked_code` |
//! | revoke, unknown ID | 404 `resource_not_found` |
//! | list sessions, neither `client_id` nor `user_id`, a `status` not in the spec's enum, `limit` not 1–500, `offset` below 0, a non-integer, `paginated` not `true`/`false` | 422, one error per problem: `form_param_missing`, `form_param_value_invalid`, `form_param_format_invalid`, each with `meta.param_name` |
//! | list sessions, valid | 200: the matching `Session`s, newest first, `offset`/`limit` applied (default limit 10); a bare array, or `{"data": [...], "total_count": N}` with `paginated=true` |
//! | revoke session, active | 200 `Session` with `status: "revoked"` |
//! | revoke session, revoked or expired | 400 `session_cannot_be_revoked_code` |
//! | revoke session, unknown ID | 404 `resource_not_found` |
//! | any other path under `/v1` | 404 `resource_not_found` |
//!
//! `created_at` / `updated_at` are Unix seconds (the spec says "Unix timestamp"; the project's
//! notes on Clerk say seconds). An expired token is one still pending past `created_at +
//! expires_in_seconds` on the simulator's clock (which [`Simulator::advance_clock`] moves on):
//! it can no longer be accepted, and revoking it answers 400 like any token that is not pending
//! (Clerk's status enum has no "expired"; the API answers never show it). Any
//! `Clerk-API-Version` header is accepted and counted in [`Stats::api_versions`].
//!
//! A session opens when its token is accepted and expires `session_max_duration_in_seconds`
//! later on the simulator's clock; its `actor` is the token's, every key kept. `Session`
//! times are Unix **milliseconds**, as Clerk's session answers carry them.
//!
//! # Control surface (no auth, not counted, no faults)
//!
//! | route | what |
//! | --- | --- |
//! | `GET /__sim/tokens` | every token ever issued, as [`SimToken`] JSON, status as of now |
//! | `POST /__sim/tokens/{id}/accept` | accept as a user opening the URL would and open a session: 200 token (with `session_id`), 404 unknown, 409 not pending, 410 expired |
//! | `GET /__sim/sessions` | every session ever opened, as [`SimSession`] JSON, status as of now |
//! | `POST /__sim/reset` | forget tokens, sessions, counters and rate-limit windows (faults and clock stay) |
//! | `GET /__sim/stats` (also `/__sim/requests`) | [`Stats`] JSON |
//! | `GET /__sim/faults`, `PUT /__sim/faults` | [`Faults`] JSON (left-out fields take defaults); 400 if invalid |
//! | `GET /__sim/clock`, `POST /__sim/clock/advance` `{"seconds": N}` | the simulator's clock (Unix seconds) |

mod api;
mod config;
mod control;
mod errors;
mod server;
mod session;
mod sessions_api;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{DEFAULT_SECRET_KEY, Faults, Latency, RateLimit, SimConfig};
pub use session::{SessionStatus, SimSession};
pub use state::{OpStats, SimError, SimToken, Stats, TokenStatus};

/// A running simulator. Stops on [`Simulator::shutdown`] or when dropped.
pub struct Simulator {
    shared: Arc<state::Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Binds `config.addr` and starts serving on the current Tokio runtime.
///
/// Fails with `InvalidInput` if `config.faults` is invalid (see [`Faults::validate`]), or
/// with the bind error.
pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
    config
        .faults
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(state::Shared::new(
        config.secret_keys,
        config.faults,
        config.seed,
    ));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server::serve(
        listener,
        server::router(shared.clone()),
        stopped,
    ));
    Ok(Simulator {
        shared,
        addr,
        stop,
        task: Some(task),
    })
}

impl Simulator {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`; the API is under `/v1`, the control surface under `/__sim`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url() + "/v1"`: what a client's Clerk API URL should hold.
    pub fn api_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// Every token ever issued (since the last reset), oldest first, status as of now.
    pub fn tokens(&self) -> Vec<SimToken> {
        self.shared.tokens()
    }

    /// Tokens that are pending and not expired: the ones that could still be used.
    pub fn live_tokens(&self) -> Vec<SimToken> {
        let mut tokens = self.tokens();
        tokens.retain(|t| t.status == TokenStatus::Pending);
        tokens
    }

    /// One token by ID.
    pub fn token(&self, id: &str) -> Option<SimToken> {
        self.shared.token(id)
    }

    /// Accepts a token as a user opening its URL would: the token becomes accepted and an
    /// active session opens for its user, carrying its `actor` as given at create. Returns
    /// that session (its `id` is what GetSessionList and RevokeSession know it by). Fails if
    /// the ID is unknown, or the token is not pending or has expired; then no session opens.
    pub fn accept(&self, id: &str) -> Result<SimSession, SimError> {
        self.shared.accept(id).map(|(_, session)| session)
    }

    /// Every session ever opened (since the last reset), oldest first, status as of now.
    pub fn sessions(&self) -> Vec<SimSession> {
        self.shared.sessions()
    }

    /// Sessions that are active: not revoked and not past their `expire_at`.
    pub fn active_sessions(&self) -> Vec<SimSession> {
        let mut sessions = self.sessions();
        sessions.retain(|s| s.status == SessionStatus::Active);
        sessions
    }

    /// One session by ID.
    pub fn session(&self, id: &str) -> Option<SimSession> {
        self.shared.session(id)
    }

    /// Replaces the faults in force.
    ///
    /// # Panics
    /// If `faults` is invalid ([`Faults::validate`]): a mistake in the test.
    pub fn set_faults(&self, faults: Faults) {
        if let Err(e) = faults.validate() {
            panic!("clerk-sim: invalid faults: {e}");
        }
        self.shared.lock().faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Counts of API calls received and how they were answered.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Forgets tokens, sessions, counters and rate-limit windows. Faults and the clock stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Moves the simulator's clock on (token and session expiry and rate-limit windows follow
    /// it).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance_clock(by);
    }

    /// The simulator's clock, Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.shared.now_ms().div_euclid(1000)
    }

    /// Stops listening, lets answers under way finish (up to 5 s), and returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
