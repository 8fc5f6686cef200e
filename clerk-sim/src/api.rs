//! The actor-token routes (`POST /v1/actor_tokens` and `POST /v1/actor_tokens/{id}/revoke`)
//! and the guard every `/v1` route sits behind: auth and fault injection.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::{self, AuthFailure, ClerkError, error_response, json_response};
use crate::state::{Op, Record, Shared, TokenStatus};

/// Marks a response whose connection must be closed without sending it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

pub(crate) const DEFAULT_EXPIRES_IN_SECONDS: i64 = 3600;
pub(crate) const DEFAULT_SESSION_MAX_DURATION_IN_SECONDS: i64 = 1800;
const SIGN_IN_URL: &str = "https://accounts.sim.clerk.test/v1/tickets/accept?ticket=";

/// `path` is relative to `/v1` (the API router is nested there).
fn classify(method: &Method, path: &str) -> Op {
    let segments: Vec<&str> = path.split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["", "actor_tokens"]) => Op::Create,
        (&Method::POST, ["", "actor_tokens", _, "revoke"]) => Op::Revoke,
        (&Method::GET | &Method::HEAD, ["", "sessions"]) => Op::ListSessions,
        (&Method::POST, ["", "sessions", _, "revoke"]) => Op::RevokeSession,
        _ => Op::Other,
    }
}

/// Counts the call, adds latency, checks the key, applies rate limits and injected errors,
/// then lets the route answer.
pub(crate) async fn guard(
    State(sim): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let op = classify(request.method(), request.uri().path());
    let version = request
        .headers()
        .get("clerk-api-version")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    sim.record_received(op, version.as_deref());

    let delay = {
        let mut inner = sim.lock();
        match inner.faults.latency {
            Some(l) if l.max_ms > 0 => Some(inner.fault_rng.random_range(l.min_ms..=l.max_ms)),
            _ => None,
        }
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    let response = match admit(&sim, request.headers()) {
        Err(refusal) => refusal,
        Ok(()) => next.run(request).await,
    };
    let dropped = response.extensions().get::<DropConnection>().is_some();
    sim.record_answer(op, (!dropped).then(|| response.status()));
    tracing::info!(
        op = ?op,
        status = if dropped { 0 } else { response.status().as_u16() },
        dropped,
        "api request"
    );
    response
}

#[allow(clippy::result_large_err)] // built once per refused request
fn admit(sim: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let key = bearer_key(headers).map_err(errors::unauthorized)?;
    if !sim.secret_keys.iter().any(|k| k == key) {
        return Err(errors::unauthorized(AuthFailure::UnknownKey));
    }
    let now = sim.now_ms();
    let mut inner = sim.lock();
    if let Some(limit) = inner.faults.rate_limit {
        let (requests, window_seconds) = limit.limit_for(key);
        let window_ms = i64::try_from(window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let entry = inner.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= window_ms || now < entry.0 {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > requests {
            let left_ms = entry.0.saturating_add(window_ms).saturating_sub(now).max(1);
            let retry_after = u64::try_from((left_ms + 999) / 1000).unwrap_or(1);
            return Err(errors::too_many_requests(retry_after));
        }
    }
    let share = inner.faults.too_many_requests_share;
    if inner.draw(share) {
        return Err(errors::too_many_requests(inner.faults.retry_after_seconds));
    }
    let share = inner.faults.server_error_share;
    if inner.draw(share) {
        let status = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ][inner.fault_rng.random_range(0..3)];
        return Err(errors::server_error(status));
    }
    Ok(())
}

fn bearer_key(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?;
    let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
    let (scheme, key) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(key)
}

/// `ActorToken` in the spec. `token` and `url` are sent on create only.
#[derive(Serialize)]
struct ActorTokenBody<'a> {
    object: &'static str,
    id: &'a str,
    status: &'static str,
    user_id: &'a str,
    actor: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
}

fn actor_token_body(record: &Record, with_secrets: bool) -> ActorTokenBody<'_> {
    ActorTokenBody {
        object: "actor_token",
        id: &record.id,
        // The stored status: Clerk's enum has no "expired".
        status: record.stored.as_str(),
        user_id: &record.user_id,
        actor: &record.actor,
        token: with_secrets.then_some(record.token.as_str()),
        url: with_secrets.then_some(record.url.as_str()),
        created_at: record.created_ms.div_euclid(1000),
        updated_at: record.updated_ms.div_euclid(1000),
    }
}

/// A create body that passed validation.
#[derive(Debug, PartialEq)]
pub(crate) struct CreateParams {
    pub user_id: String,
    pub actor: Map<String, Value>,
    pub expires_in_seconds: i64,
    pub session_max_duration_in_seconds: i64,
}

/// Validates a create body as the spec's schema does: an object, `additionalProperties:
/// false`, `user_id` (string) and `actor` (object with string `sub`, other keys allowed)
/// required, `expires_in_seconds` / `session_max_duration_in_seconds` integers (int64).
/// An empty body counts as `{}`. Not JSON, or JSON but not an object: 400. Anything else
/// wrong: 422 with one error per problem.
pub(crate) fn validate_create(body: &[u8]) -> Result<CreateParams, (StatusCode, Vec<ClerkError>)> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                vec![ClerkError::request_body_invalid()],
            )
        })?
    };
    let Value::Object(mut object) = value else {
        return Err((
            StatusCode::BAD_REQUEST,
            vec![ClerkError::request_body_invalid()],
        ));
    };
    let mut problems = Vec::new();
    for key in object.keys() {
        if ![
            "user_id",
            "actor",
            "expires_in_seconds",
            "session_max_duration_in_seconds",
        ]
        .contains(&key.as_str())
        {
            problems.push(ClerkError::param_unknown(key));
        }
    }
    let user_id = match object.remove("user_id") {
        None => {
            problems.push(ClerkError::param_missing("user_id"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.push(ClerkError::param_format_invalid(
                "user_id",
                "must be a string",
            ));
            None
        }
    };
    let actor = match object.remove("actor") {
        None => {
            problems.push(ClerkError::param_missing("actor"));
            None
        }
        Some(Value::Object(actor)) => match actor.get("sub") {
            None => {
                problems.push(ClerkError::param_missing("actor.sub"));
                None
            }
            Some(Value::String(_)) => Some(actor),
            Some(_) => {
                problems.push(ClerkError::param_format_invalid(
                    "actor.sub",
                    "must be a string",
                ));
                None
            }
        },
        Some(_) => {
            problems.push(ClerkError::param_format_invalid(
                "actor",
                "must be an object",
            ));
            None
        }
    };
    let mut integer = |name: &str, default: i64| match object.remove(name) {
        None => Some(default),
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(_) => {
            problems.push(ClerkError::param_format_invalid(name, "must be an integer"));
            None
        }
    };
    let expires = integer("expires_in_seconds", DEFAULT_EXPIRES_IN_SECONDS);
    let session = integer(
        "session_max_duration_in_seconds",
        DEFAULT_SESSION_MAX_DURATION_IN_SECONDS,
    );
    match (user_id, actor, expires, session) {
        (
            Some(user_id),
            Some(actor),
            Some(expires_in_seconds),
            Some(session_max_duration_in_seconds),
        ) if problems.is_empty() => Ok(CreateParams {
            user_id,
            actor,
            expires_in_seconds,
            session_max_duration_in_seconds,
        }),
        _ => Err((StatusCode::UNPROCESSABLE_ENTITY, problems)),
    }
}

pub(crate) async fn create(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let params = match validate_create(&body) {
        Ok(params) => params,
        Err((status, problems)) => return error_response(status, problems),
    };
    let now = sim.now_ms();
    let mut inner = sim.lock();
    if inner.faults.rejected_users.contains(&params.user_id) {
        let message = format!("No user was found with id {}", params.user_id);
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![ClerkError::param_value_invalid("user_id", message)],
        );
    }
    let id = inner.new_id("act_");
    let token = inner.new_id("");
    let mut record = Record {
        url: format!("{SIGN_IN_URL}{token}"),
        token,
        id: id.clone(),
        user_id: params.user_id,
        actor: Value::Object(params.actor),
        expires_in_seconds: params.expires_in_seconds,
        session_max_duration_in_seconds: params.session_max_duration_in_seconds,
        created_ms: now,
        updated_ms: now,
        revoked_ms: None,
        stored: TokenStatus::Pending,
        answer_dropped: false,
    };
    let mut response = json_response(StatusCode::OK, &actor_token_body(&record, true));
    let share = inner.faults.drop_create_share;
    if inner.draw(share) {
        response.extensions_mut().insert(DropConnection);
        record.answer_dropped = true;
    }
    let index = inner.tokens.len();
    inner.tokens.push(record);
    inner.index.insert(id, index);
    response
}

/// Revoke takes no body: whatever is sent (none, empty, JSON) is ignored.
pub(crate) async fn revoke(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = sim.now_ms();
    let mut inner = sim.lock();
    let Some(&index) = inner.index.get(&id) else {
        return error_response(
            StatusCode::NOT_FOUND,
            vec![ClerkError::not_found("actor token", &id)],
        );
    };
    let record = &mut inner.tokens[index];
    match record.status_at(now) {
        TokenStatus::Pending => {
            record.stored = TokenStatus::Revoked;
            record.updated_ms = now;
            record.revoked_ms = Some(now);
            json_response(StatusCode::OK, &actor_token_body(record, false))
        }
        status => error_response(
            StatusCode::BAD_REQUEST,
            vec![ClerkError::new(
                "actor_token_cannot_be_revoked_code",
                "cannot revoke",
                format!(
                    "Actor token cannot be revoked because its status is {}. Only pending tokens can be revoked.",
                    status.as_str()
                ),
            )],
        ),
    }
}

/// Any other path or method: Clerk's 404 envelope.
pub(crate) async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        vec![ClerkError::new(
            "resource_not_found",
            "not found",
            "The requested resource could not be found.",
        )],
    )
    .into_response()
}
