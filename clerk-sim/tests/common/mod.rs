//! Helpers shared by the simulator's tests.
#![allow(dead_code)]

pub mod spec;

use clerk_sim::{Faults, SimConfig, Simulator};
use serde_json::{Value, json};

pub const KEY: &str = "sk_test_behaviour_key";
pub const LIVE_KEY: &str = "sk_live_behaviour_key";

pub async fn sim() -> Simulator {
    sim_with(Faults::default()).await
}

pub async fn sim_with(faults: Faults) -> Simulator {
    clerk_sim::start(SimConfig {
        secret_keys: vec![KEY.to_owned(), LIVE_KEY.to_owned()],
        faults,
        seed: Some(7),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An answer: status, headers, JSON body (Null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["code"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn params(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["meta"]["param_name"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "answer {status} is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// POST /v1/actor_tokens with a raw body and the test key.
pub async fn create_raw(sim: &Simulator, body: &str) -> Answer {
    let response = client()
        .post(format!("{}/actor_tokens", sim.api_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .header("Clerk-API-Version", "2026-05-12")
        .body(body.to_owned())
        .send()
        .await
        .expect("create answered");
    answer(response).await
}

pub async fn create(sim: &Simulator, body: Value) -> Answer {
    create_raw(sim, &body.to_string()).await
}

/// A valid create; panics unless it answers 200. Returns the body.
pub async fn create_ok(sim: &Simulator) -> Value {
    let a = create(
        sim,
        json!({"user_id": "user_subject", "actor": {"sub": "user_actor"}}),
    )
    .await;
    assert_eq!(a.status, 200, "create: {}", a.body);
    a.body
}

/// POST /v1/actor_tokens/{id}/revoke with no body and no Content-Type (as the Python SDK).
pub async fn revoke(sim: &Simulator, id: &str) -> Answer {
    let response = client()
        .post(format!("{}/actor_tokens/{id}/revoke", sim.api_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("revoke answered");
    answer(response).await
}

pub async fn sim_get(sim: &Simulator, path: &str) -> Answer {
    answer(
        client()
            .get(format!("{}{path}", sim.base_url()))
            .send()
            .await
            .expect("answered"),
    )
    .await
}

pub async fn sim_post(sim: &Simulator, path: &str, body: Option<Value>) -> Answer {
    let mut request = client().post(format!("{}{path}", sim.base_url()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    answer(request.send().await.expect("answered")).await
}

/// Creates a token with this body and accepts it (a user opening its link); returns the
/// token's ID and the session's ID.
pub async fn open_session(sim: &Simulator, body: Value) -> (String, String) {
    let a = create(sim, body).await;
    assert_eq!(a.status, 200, "create: {}", a.body);
    let token_id = a.body["id"].as_str().unwrap().to_owned();
    let session = sim.accept(&token_id).expect("accept");
    (token_id, session.id)
}

/// GET /v1/sessions?{query} with the test key.
pub async fn list_sessions(sim: &Simulator, query: &str) -> Answer {
    let response = client()
        .get(format!("{}/sessions?{query}", sim.api_url()))
        .bearer_auth(KEY)
        .header("Clerk-API-Version", "2026-05-12")
        .send()
        .await
        .expect("list answered");
    answer(response).await
}

/// The IDs in a GetSessionList answer, bare or `paginated`, in the order given.
pub fn session_ids(body: &Value) -> Vec<String> {
    let items = match body {
        Value::Array(items) => items,
        other => other["data"].as_array().expect("an array or {data: [...]}"),
    };
    items
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// POST /v1/sessions/{id}/revoke with no body (as the Python SDK sends it).
pub async fn revoke_session(sim: &Simulator, id: &str) -> Answer {
    let response = client()
        .post(format!("{}/sessions/{id}/revoke", sim.api_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("revoke session answered");
    answer(response).await
}
