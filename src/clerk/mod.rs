//! A thin client for the parts of Clerk's Backend API (version 2026-05-12) the operator uses.
//!
//! - [`ClerkClient::create_actor_token`]: `POST /v1/actor_tokens`
//! - [`ClerkClient::revoke_actor_token`]: `POST /v1/actor_tokens/{id}/revoke`
//! - [`ClerkClient::list_active_sessions`]: `GET /v1/sessions?user_id=…&status=active`
//! - [`ClerkClient::revoke_session`]: `POST /v1/sessions/{id}/revoke`
//!
//! No Kubernetes types here. Credentials (the secret key, the token and its sign-in URL)
//! sit in types whose `Debug` redacts them and never reach logs or error messages.
//! Requests are rate limited per instance and per key to stay under Clerk's limit, and
//! retried within a bounded budget; a create whose answer was lost is never retried (see
//! [`ClerkError::AnswerLost`]). No answer is read past a few KB.
//!
//! One job per file: `config` (setup), `wire` (bodies and answers), `client` (the calls),
//! `retry` (attempts, limiter admission, backoff), `classify` (answers and transport
//! failures into errors), `error` (the error type), `limit` and `pool` (rate limiters),
//! `observe` (metrics hooks), `secret` (credentials).

mod classify;
mod client;
mod config;
mod error;
mod limit;
mod observe;
mod pool;
mod retry;
mod secret;
mod wire;

pub use client::ClerkClient;
pub use config::{
    CLERK_API_VERSION, ClientOptions, ConfigError, DEFAULT_API_URL, MAX_ANSWER_BYTES,
    MAX_LIST_ANSWER_BYTES, RetryPolicy, USER_AGENT,
};
pub use error::ClerkError;
pub use limit::{RateLimit, RateLimitError};
pub use observe::{CallKind, CallObserver, CallOutcome};
pub use pool::ClientPool;
pub use secret::{Credential, KeyEnvironment, KeyError, KeyFingerprint, SecretKey};
pub use wire::{
    ActorTokenStatus, IssuedActorToken, NewActorToken, RevokeOutcome, Session, SessionRevokeOutcome,
};
