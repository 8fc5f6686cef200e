//! The simulator's memory: tokens, sessions, counters, clock, fault draws.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Faults;
use crate::session::{SessionRecord, SimSession};

/// Where a token stands, as of now. `Expired` is a pending token past its `expires_in_seconds`
/// (Clerk's API has no such status; the simulator's API answers never show it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Pending => "pending",
            TokenStatus::Accepted => "accepted",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
        }
    }
}

/// A token the simulator issued, as `GET /__sim/tokens` and [`crate::Simulator::tokens`] show
/// it. Times are Unix seconds on the simulator's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimToken {
    pub id: String,
    pub status: TokenStatus,
    pub user_id: String,
    pub actor: Value,
    /// The opaque token (a credential in real Clerk).
    pub token: String,
    /// The sign-in URL holding the token.
    pub url: String,
    pub expires_in_seconds: i64,
    pub session_max_duration_in_seconds: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// `created_at` in Unix milliseconds, for tests that line a create up with other events
    /// (a client killed around it, say). Not part of Clerk's API.
    pub created_at_ms: i64,
    /// The token was made but its create answer was never sent (`drop_create_share`): no
    /// client can know its ID. Not part of Clerk's API.
    pub answer_dropped: bool,
    /// When the simulator revoked it: Unix **milliseconds** on its clock (`null` while not
    /// revoked). Finer than the other times, so a benchmark can tell how long after expiry a
    /// revoke came.
    pub revoked_at_ms: Option<i64>,
}

/// Counts of API calls received, per operation. See [`crate::Simulator::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// `POST /v1/actor_tokens`.
    pub create: OpStats,
    /// `POST /v1/actor_tokens/{id}/revoke`.
    pub revoke: OpStats,
    /// `GET /v1/sessions` (GetSessionList).
    #[serde(default)]
    pub list_sessions: OpStats,
    /// `POST /v1/sessions/{id}/revoke` (RevokeSession).
    #[serde(default)]
    pub revoke_session: OpStats,
    /// Any other request under `/v1` (answered 404).
    pub other: OpStats,
    /// `Clerk-API-Version` header values seen on API requests (`""`: no header).
    pub api_versions: BTreeMap<String, u64>,
}

/// Calls of one operation: `total` received, then how each was answered. A call still being
/// answered (under added latency) is in `total` only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    pub total: u64,
    /// HTTP status → count of answers with it.
    pub by_status: BTreeMap<u16, u64>,
    /// Calls whose connection was dropped instead of answered (`drop_create_share`).
    pub dropped: u64,
}

impl OpStats {
    /// Answers with this status.
    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Answers with a 2xx status.
    pub fn succeeded(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Why [`crate::Simulator::accept`] (and `POST /__sim/tokens/{id}/accept`) refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no actor token with id {0}")]
    NotFound(String),
    #[error("actor token {id} is {status}, not pending", status = .status.as_str())]
    NotPending { id: String, status: TokenStatus },
    #[error("actor token {0} has expired")]
    Expired(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Revoke,
    ListSessions,
    RevokeSession,
    Other,
}

pub(crate) struct Record {
    pub id: String,
    pub user_id: String,
    pub actor: Value,
    pub token: String,
    pub url: String,
    pub expires_in_seconds: i64,
    pub session_max_duration_in_seconds: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Set when a revoke succeeded.
    pub revoked_ms: Option<i64>,
    /// Pending, Accepted or Revoked; Expired is worked out from the clock.
    pub stored: TokenStatus,
    /// The create's connection was dropped before the answer went out.
    pub answer_dropped: bool,
}

impl Record {
    pub fn expires_ms(&self) -> i64 {
        self.created_ms
            .saturating_add(self.expires_in_seconds.saturating_mul(1000))
    }

    pub fn status_at(&self, now_ms: i64) -> TokenStatus {
        if self.stored == TokenStatus::Pending && now_ms >= self.expires_ms() {
            TokenStatus::Expired
        } else {
            self.stored
        }
    }

    pub fn view(&self, now_ms: i64) -> SimToken {
        SimToken {
            id: self.id.clone(),
            status: self.status_at(now_ms),
            user_id: self.user_id.clone(),
            actor: self.actor.clone(),
            token: self.token.clone(),
            url: self.url.clone(),
            expires_in_seconds: self.expires_in_seconds,
            session_max_duration_in_seconds: self.session_max_duration_in_seconds,
            created_at: self.created_ms.div_euclid(1000),
            updated_at: self.updated_ms.div_euclid(1000),
            expires_at: self.expires_ms().div_euclid(1000),
            created_at_ms: self.created_ms,
            answer_dropped: self.answer_dropped,
            revoked_at_ms: self.revoked_ms,
        }
    }
}

pub(crate) struct Inner {
    pub faults: Faults,
    pub fault_rng: StdRng,
    pub id_rng: StdRng,
    pub tokens: Vec<Record>,
    pub index: HashMap<String, usize>,
    /// Sessions, oldest first, and their index by ID.
    pub sessions: Vec<SessionRecord>,
    pub session_index: HashMap<String, usize>,
    pub stats: Stats,
    /// secret key → (window start ms, requests counted in it)
    pub windows: HashMap<String, (i64, u32)>,
}

pub(crate) struct Shared {
    pub secret_keys: Vec<String>,
    pub inner: Mutex<Inner>,
    clock_offset_ms: AtomicI64,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Shared {
    pub fn new(secret_keys: Vec<String>, faults: Faults, seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| rand::rng().random());
        Shared {
            secret_keys,
            inner: Mutex::new(Inner {
                faults,
                fault_rng: StdRng::seed_from_u64(seed),
                id_rng: StdRng::seed_from_u64(seed ^ 0x5eed_1d5e_ed1d_5eed),
                tokens: Vec::new(),
                index: HashMap::new(),
                sessions: Vec::new(),
                session_index: HashMap::new(),
                stats: Stats::default(),
                windows: HashMap::new(),
            }),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unix milliseconds on the simulator's clock (the system clock plus any advance).
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(real.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.clock_offset_ms.load(Ordering::SeqCst))
    }

    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.clock_offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn tokens(&self) -> Vec<SimToken> {
        let now = self.now_ms();
        self.lock().tokens.iter().map(|r| r.view(now)).collect()
    }

    pub fn token(&self, id: &str) -> Option<SimToken> {
        let now = self.now_ms();
        let inner = self.lock();
        inner.index.get(id).map(|&i| inner.tokens[i].view(now))
    }

    pub fn sessions(&self) -> Vec<SimSession> {
        let now = self.now_ms();
        self.lock().sessions.iter().map(|s| s.view(now)).collect()
    }

    pub fn session(&self, id: &str) -> Option<SimSession> {
        let now = self.now_ms();
        let inner = self.lock();
        inner
            .session_index
            .get(id)
            .map(|&i| inner.sessions[i].view(now))
    }

    /// Signs in with a pending token, as a user opening its URL: the token becomes accepted
    /// and an active session opens for its user, carrying its actor.
    pub fn accept(&self, id: &str) -> Result<(SimToken, SimSession), SimError> {
        let now = self.now_ms();
        let mut inner = self.lock();
        let &i = inner
            .index
            .get(id)
            .ok_or_else(|| SimError::NotFound(id.to_owned()))?;
        match inner.tokens[i].status_at(now) {
            TokenStatus::Pending => {}
            TokenStatus::Expired => return Err(SimError::Expired(id.to_owned())),
            status => {
                return Err(SimError::NotPending {
                    id: id.to_owned(),
                    status,
                });
            }
        }
        let session_id = inner.new_id("sess_");
        let client_id = inner.new_id("client_");
        let session = SessionRecord::opened(session_id.clone(), client_id, &inner.tokens[i], now);
        let session_view = session.view(now);
        let index = inner.sessions.len();
        inner.sessions.push(session);
        inner.session_index.insert(session_id.clone(), index);
        let record = &mut inner.tokens[i];
        record.stored = TokenStatus::Accepted;
        record.updated_ms = now;
        Ok((record.view(now), session_view))
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.tokens.clear();
        inner.index.clear();
        inner.sessions.clear();
        inner.session_index.clear();
        inner.stats = Stats::default();
        inner.windows.clear();
    }

    pub fn record_received(&self, op: Op, api_version: Option<&str>) {
        let mut inner = self.lock();
        inner.stats.op_mut(op).total += 1;
        *inner
            .stats
            .api_versions
            .entry(api_version.unwrap_or("").to_owned())
            .or_default() += 1;
    }

    pub fn record_answer(&self, op: Op, answer: Option<StatusCode>) {
        let mut inner = self.lock();
        let stats = inner.stats.op_mut(op);
        match answer {
            Some(status) => *stats.by_status.entry(status.as_u16()).or_default() += 1,
            None => stats.dropped += 1,
        }
    }
}

impl Stats {
    fn op_mut(&mut self, op: Op) -> &mut OpStats {
        match op {
            Op::Create => &mut self.create,
            Op::Revoke => &mut self.revoke,
            Op::ListSessions => &mut self.list_sessions,
            Op::RevokeSession => &mut self.revoke_session,
            Op::Other => &mut self.other,
        }
    }
}

impl Inner {
    /// `prefix` + 27 random base62 characters, like Clerk's IDs.
    pub fn new_id(&mut self, prefix: &str) -> String {
        let mut id = String::with_capacity(prefix.len() + 27);
        id.push_str(prefix);
        for _ in 0..27 {
            id.push(BASE62[self.id_rng.random_range(0..BASE62.len())] as char);
        }
        id
    }

    /// A share-`p` draw from the fault RNG. Shares of 0 and 1 draw nothing, so turning a
    /// fault fully on or off does not shift the sequence other faults see.
    pub fn draw(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.fault_rng.random_bool(p)
        }
    }
}
