//! The test control surface under `/__sim/` (a prefix Clerk does not use). No auth, no faults,
//! not counted in the stats.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::config::Faults;
use crate::errors::{ClerkError, error_response, json_response};
use crate::state::{Shared, SimError};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__sim/tokens", get(tokens))
        .route("/__sim/tokens/{id}/accept", post(accept))
        .route("/__sim/sessions", get(sessions))
        .route("/__sim/reset", post(reset))
        .route("/__sim/stats", get(stats))
        .route("/__sim/requests", get(stats))
        .route("/__sim/faults", get(get_faults).put(put_faults))
        .route("/__sim/clock", get(clock))
        .route("/__sim/clock/advance", post(advance_clock))
}

async fn tokens(State(sim): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &sim.tokens())
}

async fn accept(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match sim.accept(&id) {
        // The token, now accepted, and the `session_id` its sign-in opened.
        Ok((token, session)) => {
            let mut body = serde_json::to_value(&token).expect("tokens serialise");
            body["session_id"] = json!(session.id);
            json_response(StatusCode::OK, &body)
        }
        Err(e) => {
            let (status, code) = match &e {
                SimError::NotFound(_) => (StatusCode::NOT_FOUND, "resource_not_found"),
                SimError::NotPending { .. } => (StatusCode::CONFLICT, "actor_token_cannot_be_used"),
                SimError::Expired(_) => (StatusCode::GONE, "actor_token_expired"),
            };
            error_response(
                status,
                vec![ClerkError::new(code, &e.to_string(), e.to_string())],
            )
        }
    }
}

async fn sessions(State(sim): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &sim.sessions())
}

async fn reset(State(sim): State<Arc<Shared>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

async fn stats(State(sim): State<Arc<Shared>>) -> Response {
    let stats = sim.lock().stats.clone();
    json_response(StatusCode::OK, &stats)
}

async fn get_faults(State(sim): State<Arc<Shared>>) -> Response {
    let faults = sim.lock().faults.clone();
    json_response(StatusCode::OK, &faults)
}

async fn put_faults(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(e) => return bad_request(&format!("faults: {e}")),
    };
    if let Err(e) = faults.validate() {
        return bad_request(&e);
    }
    sim.lock().faults = faults.clone();
    tracing::info!(?faults, "faults set");
    json_response(StatusCode::OK, &faults)
}

async fn clock(State(sim): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "now": sim.now_ms().div_euclid(1000) }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn advance_clock(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(advance) => {
            sim.advance_clock(Duration::from_secs(advance.seconds));
            json_response(
                StatusCode::OK,
                &json!({ "now": sim.now_ms().div_euclid(1000) }),
            )
        }
        Err(e) => bad_request(&format!("expected {{\"seconds\": N}}: {e}")),
    }
}

fn bad_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        vec![ClerkError::new(
            "sim_request_invalid",
            "invalid simulator request",
            message,
        )],
    )
}
