//! Contract check for the session operations, GetSessionList and RevokeSession: their answers
//! validate against Clerk's own OpenAPI spec (see `common/spec.rs`), and the list accepts
//! exactly the queries the spec's parameter schemas accept.
//!
//! GetSessionList with `paginated=true` answers `{"data": [Session...], "total_count": N}`,
//! the form Clerk's JavaScript and Go SDKs ask for and read; the spec declares only the bare
//! array. Its items are checked against the spec's `Session`, its shape here.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use clerk_sim::Simulator;
use common::spec::*;
use common::*;
use serde_json::{Value, json};

/// Sessions in each status the simulator reaches, of one user, with actors carrying extra
/// keys: one revoked, one expired, two active.
async fn sim_with_sessions() -> Simulator {
    let sim = sim().await;
    let actor = json!({"sub": "user_support", "actortokens.dev": {"request": "ns/name"}});
    let mut ids = Vec::new();
    for duration in [600, 600, 5, 600] {
        let body = json!({"user_id": "user_s", "actor": actor,
                          "session_max_duration_in_seconds": duration});
        ids.push(open_session(&sim, body).await.1);
    }
    assert_eq!(revoke_session(&sim, &ids[0]).await.status, 200);
    sim.advance_clock(Duration::from_secs(5));
    sim
}

#[tokio::test]
async fn list_200_matches_session_list() {
    let sim = sim_with_sessions().await;
    let a = list_sessions(&sim, "user_id=user_s").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.as_array().unwrap().len(), 4);
    let statuses: BTreeSet<&str> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["active", "revoked", "expired"]));
    assert_valid(LIST_SESSIONS_PATH, &a);
    let empty = list_sessions(&sim, "user_id=nobody").await;
    assert_eq!(empty.body, json!([]));
    assert_valid(LIST_SESSIONS_PATH, &empty);
}

#[tokio::test]
async fn list_paginated_200_holds_sessions_and_a_total() {
    let sim = sim_with_sessions().await;
    let session = item_validator(LIST_SESSIONS_PATH);
    for query in [
        "user_id=user_s&paginated=true&limit=3",
        "user_id=x&paginated=true",
    ] {
        let a = list_sessions(&sim, query).await;
        assert_eq!(a.status, 200);
        let object = a.body.as_object().unwrap();
        assert_eq!(
            object.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            BTreeSet::from(["data", "total_count"]),
            "{query}"
        );
        for item in a.body["data"].as_array().unwrap() {
            let errors: Vec<String> = session.iter_errors(item).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{item}: {errors:#?}");
        }
        let total = a.body["total_count"].as_u64().unwrap();
        assert!(total >= a.body["data"].as_array().unwrap().len() as u64);
    }
}

#[tokio::test]
async fn list_422_matches_clerk_errors() {
    let sim = sim().await;
    for query in [
        "",
        "user_id=u&status=x",
        "user_id=u&limit=0&offset=-1&paginated=2",
    ] {
        let a = list_sessions(&sim, query).await;
        assert_eq!(a.status, 422, "{query}");
        assert_valid(LIST_SESSIONS_PATH, &a);
    }
}

#[tokio::test]
async fn revoke_session_200_400_404_match_the_spec() {
    let sim = sim_with_sessions().await;
    let active = sim.active_sessions()[0].id.clone();
    let a = revoke_session(&sim, &active).await;
    assert_eq!(a.status, 200);
    assert_valid(REVOKE_SESSION_PATH, &a);
    let a = revoke_session(&sim, &active).await;
    assert_eq!(a.status, 400);
    assert_valid(REVOKE_SESSION_PATH, &a);
    let a = revoke_session(&sim, "sess_unknown").await;
    assert_eq!(a.status, 404);
    assert_valid(REVOKE_SESSION_PATH, &a);
}

/// A query value as the JSON value its schema's type reads it as (OpenAPI's `form` style):
/// a string that is no integer or boolean stays a string, which the schema then refuses.
fn typed(value: &str, schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("integer") => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(json!(value)),
        Some("boolean") => match value {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(value),
        },
        _ => json!(value),
    }
}

#[tokio::test]
async fn list_accepts_exactly_the_queries_the_spec_accepts() {
    let parameters = list_parameters();
    let sim = sim().await;
    // Every query names a user: the spec requires a client or a user in words (tested apart).
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("client_id", "client_1")],
        &[("status", "active")],
        &[("status", "revoked")],
        &[("status", "ended")],
        &[("status", "replaced")],
        &[("status", "pending")],
        &[("status", "ACTIVE")],
        &[("status", "activ")],
        &[("paginated", "true")],
        &[("paginated", "false")],
        &[("paginated", "yes")],
        &[("paginated", "TRUE")],
        &[("limit", "1")],
        &[("limit", "500")],
        &[("limit", "0")],
        &[("limit", "501")],
        &[("limit", "-3")],
        &[("limit", "2.5")],
        &[("limit", "x")],
        &[("offset", "0")],
        &[("offset", "1000000")],
        &[("offset", "-1")],
        &[("offset", "1.0")],
        &[
            ("limit", "20"),
            ("offset", "40"),
            ("paginated", "true"),
            ("status", "expired"),
        ],
        &[("limit", "20"), ("offset", "-40")],
    ];
    for case in cases {
        let spec_ok = case.iter().all(|(name, value)| {
            let (_, schema) = parameters
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("the spec has no {name}"));
            jsonschema::draft4::new(schema)
                .unwrap()
                .is_valid(&typed(value, schema))
        });
        let mut query = String::from("user_id=user_1");
        for (name, value) in *case {
            query.push_str(&format!("&{name}={value}"));
        }
        let a = list_sessions(&sim, &query).await;
        assert_eq!(
            a.status == 200,
            spec_ok,
            "{query}: spec says {spec_ok}, simulator answered {} {}",
            a.status,
            a.body
        );
        if !spec_ok {
            assert_eq!(a.status, 422, "{query}");
        }
    }
}

#[test]
fn the_list_parameter_defaults_are_the_simulators() {
    let parameters = list_parameters();
    let schema = |name: &str| {
        parameters
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(schema("limit")["default"], 10);
    assert_eq!(schema("limit")["minimum"], 1);
    assert_eq!(schema("limit")["maximum"], 500);
    assert_eq!(schema("offset")["default"], 0);
    assert_eq!(schema("offset")["minimum"], 0);
    assert_eq!(
        schema("status")["enum"],
        json!([
            "abandoned",
            "active",
            "ended",
            "expired",
            "removed",
            "replaced",
            "revoked"
        ])
    );
}
