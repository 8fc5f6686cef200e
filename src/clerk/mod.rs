//! A thin client for the actor-token part of Clerk's Backend API (version 2026-05-12).
//!
//! - [`ClerkClient::create_actor_token`]: `POST /v1/actor_tokens`
//! - [`ClerkClient::revoke_actor_token`]: `POST /v1/actor_tokens/{id}/revoke`
//!
//! No Kubernetes types here. Credentials (the secret key, the token and its sign-in URL)
//! sit in types whose `Debug` redacts them and never reach logs or error messages.
//! Requests are rate limited per secret key to stay under Clerk's limit, and retried within
//! a bounded budget; a create whose answer was lost is never retried (see
//! [`ClerkError::AnswerLost`]).

mod client;
mod error;
mod limit;
mod observe;
mod pool;
mod secret;

pub use client::{
    ActorTokenStatus, CLERK_API_VERSION, ClerkClient, ClientOptions, ConfigError, DEFAULT_API_URL,
    IssuedActorToken, NewActorToken, RetryPolicy, RevokeOutcome, USER_AGENT,
};
pub use error::ClerkError;
pub use limit::{RateLimit, RateLimitError};
pub use observe::{CallKind, CallObserver, CallOutcome};
pub use pool::ClientPool;
pub use secret::{Credential, KeyEnvironment, KeyError, KeyFingerprint, SecretKey};
