//! Sessions: what opening an actor token's sign-in link makes, as the simulator keeps them and
//! as the API (`Session` in the spec) and the control surface show them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long after its creation Clerk abandons a session (its `abandon_at`): 30 days, as in
/// the sessions Clerk's own frontend answers show (`abandon_at` 30 days after sign-in).
const ABANDON_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;

/// Where a session stands, as of now: the three of the spec's statuses a session opened by an
/// actor token can reach here. `Expired` is an active session past its `expire_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Revoked,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Revoked => "revoked",
            SessionStatus::Expired => "expired",
        }
    }
}

/// A session as `GET /__sim/sessions` and [`crate::Simulator::sessions`] show it, status as of
/// now. Times on the simulator's clock, in Unix seconds and milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimSession {
    /// `sess_...`, the ID the API answers with.
    pub id: String,
    pub status: SessionStatus,
    /// The impersonated user: the token's `user_id`.
    pub user_id: String,
    /// `client_...`: a fresh client per sign-in.
    pub client_id: String,
    /// The token's `actor`, exactly as it was given at create (every key kept).
    pub actor: Value,
    /// The actor token whose sign-in opened it. Not part of Clerk's API.
    pub actor_token_id: String,
    pub created_at: i64,
    pub created_at_ms: i64,
    /// `created_at` + the token's `session_max_duration_in_seconds`.
    pub expire_at: i64,
    pub expire_at_ms: i64,
    /// When it was revoked (`null` unless revoked).
    pub revoked_at_ms: Option<i64>,
}

pub(crate) struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub actor: Value,
    pub actor_token_id: String,
    pub created_ms: i64,
    pub expire_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl SessionRecord {
    /// The session a sign-in with `token` opens at `now_ms`. It lasts the token's
    /// `session_max_duration_in_seconds` (zero or less: expired at once; the spec sets no
    /// bound on it).
    pub fn opened(
        id: String,
        client_id: String,
        token: &crate::state::Record,
        now_ms: i64,
    ) -> Self {
        SessionRecord {
            id,
            client_id,
            user_id: token.user_id.clone(),
            actor: token.actor.clone(),
            actor_token_id: token.id.clone(),
            created_ms: now_ms,
            expire_ms: now_ms
                .saturating_add(token.session_max_duration_in_seconds.saturating_mul(1000)),
            revoked_ms: None,
        }
    }

    pub fn status_at(&self, now_ms: i64) -> SessionStatus {
        if self.revoked_ms.is_some() {
            SessionStatus::Revoked
        } else if now_ms >= self.expire_ms {
            SessionStatus::Expired
        } else {
            SessionStatus::Active
        }
    }

    /// When its status last changed: the revoke, the expiry, or its creation.
    fn updated_ms(&self, now_ms: i64) -> i64 {
        match self.status_at(now_ms) {
            SessionStatus::Revoked => self.revoked_ms.unwrap_or(self.created_ms),
            SessionStatus::Expired => self.expire_ms,
            SessionStatus::Active => self.created_ms,
        }
    }

    pub fn view(&self, now_ms: i64) -> SimSession {
        SimSession {
            id: self.id.clone(),
            status: self.status_at(now_ms),
            user_id: self.user_id.clone(),
            client_id: self.client_id.clone(),
            actor: self.actor.clone(),
            actor_token_id: self.actor_token_id.clone(),
            created_at: self.created_ms.div_euclid(1000),
            created_at_ms: self.created_ms,
            expire_at: self.expire_ms.div_euclid(1000),
            expire_at_ms: self.expire_ms,
            revoked_at_ms: self.revoked_ms,
        }
    }

    /// The spec's `Session` object. Its times are Unix **milliseconds**, as Clerk's session
    /// answers carry them (the spec only says "Unix timestamp").
    pub fn body(&self, now_ms: i64) -> SessionBody<'_> {
        SessionBody {
            object: "session",
            id: &self.id,
            user_id: &self.user_id,
            client_id: &self.client_id,
            actor: &self.actor,
            status: self.status_at(now_ms).as_str(),
            last_active_organization_id: None,
            // No activity is simulated: the sign-in was the last.
            last_active_at: self.created_ms,
            latest_activity: None,
            expire_at: self.expire_ms,
            abandon_at: self.created_ms.saturating_add(ABANDON_AFTER_MS),
            updated_at: self.updated_ms(now_ms),
            created_at: self.created_ms,
            tasks: None,
        }
    }
}

/// `Session` in the spec (`additionalProperties: false`); the nullable fields the simulator
/// has nothing for are sent as `null`, as Clerk sends them.
#[derive(Serialize)]
pub(crate) struct SessionBody<'a> {
    object: &'static str,
    id: &'a str,
    user_id: &'a str,
    client_id: &'a str,
    actor: &'a Value,
    status: &'static str,
    last_active_organization_id: Option<&'a str>,
    last_active_at: i64,
    latest_activity: Option<Value>,
    expire_at: i64,
    abandon_at: i64,
    updated_at: i64,
    created_at: i64,
    tasks: Option<Vec<Value>>,
}
