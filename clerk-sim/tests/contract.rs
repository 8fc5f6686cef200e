//! Contract check: every kind of answer the simulator gives validates against Clerk's own
//! OpenAPI spec, read at test time from `spec/bapi-2026-05-12.yml` (nothing copied into code).
//!
//! The spec is OpenAPI 3.0, read as `common/spec.rs` describes. The session operations'
//! own checks are in `contract_sessions.rs`; the checks every operation shares (401, 429,
//! 5xx) and the spec-reading machinery's own tests are here.
//!
//! Statuses: the spec declares 200/400/402/422 for CreateActorToken, 200/400/404 for
//! RevokeActorToken, 200/400/401/422 for GetSessionList and 200/400/401/404 for RevokeSession.
//! The simulator also answers 401 (bad key) on the actor-token operations, and 429 (rate
//! limits) and 500/502/503 (injected faults) on all four, which the spec does not declare
//! there although Clerk sends them for every endpoint. For those the test uses the responses
//! the spec itself attaches to those statuses on other operations — `AuthenticationInvalid`
//! for 401, `TooManyRequests` for 429, `ClerkErrors` for 500 — after checking that the spec
//! really uses them so.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use clerk_sim::{Faults, RateLimit, Simulator};
use common::spec::*;
use common::*;
use serde_json::{Value, json};

// ---------- the spec itself ----------

#[test]
fn the_spec_describes_the_api_the_simulator_serves() {
    assert_eq!(spec()["info"]["version"], "2026-05-12");
    assert_eq!(
        spec()["servers"][0]["url"],
        "https://api.clerk.com/v1",
        "the API lives under /v1"
    );
    assert_eq!(operation(CREATE_PATH)["operationId"], "CreateActorToken");
    assert_eq!(operation(REVOKE_PATH)["operationId"], "RevokeActorToken");
    assert_eq!(
        operation(LIST_SESSIONS_PATH)["operationId"],
        "GetSessionList"
    );
    assert_eq!(
        operation(REVOKE_SESSION_PATH)["operationId"],
        "RevokeSession"
    );
    assert_eq!(
        spec()["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(declared(CREATE_PATH), BTreeSet::from([200, 400, 402, 422]));
    assert_eq!(declared(REVOKE_PATH), BTreeSet::from([200, 400, 404]));
    assert_eq!(
        declared(LIST_SESSIONS_PATH),
        BTreeSet::from([200, 400, 401, 422])
    );
    assert_eq!(
        declared(REVOKE_SESSION_PATH),
        BTreeSet::from([200, 400, 401, 404])
    );
    // The list's parameters are the ones the simulator reads, and nothing else.
    let parameters = list_parameters();
    let names: BTreeSet<&str> = parameters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "client_id",
            "user_id",
            "status",
            "paginated",
            "limit",
            "offset"
        ])
    );
    // RevokeSession takes its ID in the path and no body.
    assert!(operation(REVOKE_SESSION_PATH).get("requestBody").is_none());
}

#[test]
fn the_fallback_responses_are_the_ones_the_spec_uses_for_those_statuses() {
    let mut uses: std::collections::HashMap<(String, String), usize> = Default::default();
    for item in spec()["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                if let Some(Value::String(r)) = response.get("$ref") {
                    *uses.entry((status.clone(), r.clone())).or_default() += 1;
                }
            }
        }
    }
    let used = |status: &str, r: &str| {
        uses.get(&(status.to_owned(), r.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert!(used("401", "#/components/responses/AuthenticationInvalid") > 10);
    assert!(used("429", "#/components/responses/TooManyRequests") > 0);
    assert!(used("500", "#/components/responses/ClerkErrors") > 5);
    // All three carry the ClerkErrors schema, like every declared error of the two operations.
    for status in [400, 422] {
        let schema = &response_spec(CREATE_PATH, status)["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/ClerkErrors");
    }
    for status in [401, 429, 500] {
        let schema = &response_spec(CREATE_PATH, status)["content"]["application/json"]["schema"];
        assert_eq!(
            schema["$ref"], "#/components/schemas/ClerkErrors",
            "{status}"
        );
    }
}

// ---------- answers against the spec ----------

async fn sim_faulty(faults: Faults) -> Simulator {
    sim_with(faults).await
}

#[tokio::test]
async fn create_200_matches_actor_token() {
    let sim = sim().await;
    let a = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a", "extra": {"k": [1, 2]}}}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_valid(CREATE_PATH, &a);
    // Fields the spec has but does not require, and the simulator sends on create.
    for field in ["token", "url"] {
        assert!(a.body[field].is_string(), "{field}");
    }
}

#[tokio::test]
async fn revoke_200_matches_actor_token() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    let a = revoke(&sim, &id).await;
    assert_eq!(a.status, 200);
    assert_valid(REVOKE_PATH, &a);
}

#[tokio::test]
async fn create_400_and_422_match_clerk_errors() {
    let sim = sim().await;
    for body in ["{", "[]"] {
        let a = create_raw(&sim, body).await;
        assert_eq!(a.status, 400);
        assert_valid(CREATE_PATH, &a);
    }
    for body in [
        "{}",
        r#"{"user_id": "u", "actor": {}}"#,
        r#"{"user_id": 1, "actor": {"sub": "a"}, "expires_in_seconds": "x", "z": 0}"#,
    ] {
        let a = create_raw(&sim, body).await;
        assert_eq!(a.status, 422);
        assert_valid(CREATE_PATH, &a);
    }
    // A refused user (the `rejected_users` fault) answers a valid body with 422 too.
    let sim = sim_faulty(Faults {
        rejected_users: vec!["user_gone".into()],
        ..Faults::default()
    })
    .await;
    let a = create(&sim, json!({"user_id": "user_gone", "actor": {"sub": "a"}})).await;
    assert_eq!(a.status, 422);
    assert_valid(CREATE_PATH, &a);
}

#[tokio::test]
async fn revoke_400_and_404_match_clerk_errors() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    revoke(&sim, &id).await;
    let a = revoke(&sim, &id).await;
    assert_eq!(a.status, 400);
    assert_valid(REVOKE_PATH, &a);
    let a = revoke(&sim, "act_unknown").await;
    assert_eq!(a.status, 404);
    assert_valid(REVOKE_PATH, &a);
}

#[tokio::test]
async fn answers_401_match_authentication_invalid() {
    let sim = sim().await;
    for auth in [None, Some("Token x"), Some("Bearer sk_test_unknown")] {
        for path in ALL_PATHS {
            let mut request = request_to(&sim, path);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let a = answer(request.send().await.unwrap()).await;
            assert_eq!(a.status, 401);
            assert_valid(path, &a);
        }
    }
}

#[tokio::test]
async fn answers_429_match_too_many_requests() {
    let sim = sim_faulty(Faults {
        too_many_requests_share: 1.0,
        ..Faults::default()
    })
    .await;
    let a = create_raw(&sim, "{}").await;
    assert_eq!(a.status, 429);
    assert_valid(CREATE_PATH, &a);
    let a = revoke(&sim, "act_x").await;
    assert_eq!(a.status, 429);
    assert_valid(REVOKE_PATH, &a);
    for path in [LIST_SESSIONS_PATH, REVOKE_SESSION_PATH] {
        let a = answer(
            request_to(&sim, path)
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 429);
        assert_valid(path, &a);
    }

    let sim = sim_faulty(Faults {
        rate_limit: Some(RateLimit::per_key(0, Duration::from_secs(10))),
        ..Faults::default()
    })
    .await;
    let a = create_raw(&sim, "{}").await;
    assert_eq!(a.status, 429);
    assert!(a.headers.contains_key("retry-after"));
    assert_valid(CREATE_PATH, &a);
}

#[tokio::test]
async fn answers_5xx_match_clerk_errors() {
    let sim = sim_faulty(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    })
    .await;
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        for path in ALL_PATHS {
            let a = answer(
                request_to(&sim, path)
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_valid(path, &a);
            seen.insert(a.status);
        }
    }
    assert_eq!(seen, BTreeSet::from([500, 502, 503]));
}

#[tokio::test]
async fn every_status_the_simulator_uses_is_declared_or_documented() {
    // Declared by the spec for the operation, or one of the documented extras above.
    let extras = BTreeSet::from([429, 500, 502, 503]);
    for (path, statuses) in [
        (CREATE_PATH, BTreeSet::from([200, 400, 422])),
        (REVOKE_PATH, BTreeSet::from([200, 400, 404])),
        (LIST_SESSIONS_PATH, BTreeSet::from([200, 401, 422])),
        (REVOKE_SESSION_PATH, BTreeSet::from([200, 400, 401, 404])),
    ] {
        assert!(statuses.is_subset(&declared(path)), "{path}");
        assert!(extras.is_disjoint(&declared(path)), "{path}");
    }
    // 401 is declared for the session operations, and an extra for the actor-token ones.
    assert!(!declared(CREATE_PATH).contains(&401) && !declared(REVOKE_PATH).contains(&401));
}

// ---------- the simulator's validation against the spec's request schema ----------

#[tokio::test]
async fn create_accepts_exactly_the_bodies_the_spec_accepts() {
    let schema = &operation(CREATE_PATH)["requestBody"]["content"]["application/json"]["schema"];
    let validator = jsonschema::draft4::new(&to_json_schema(schema, &mut Vec::new())).unwrap();
    let sim = sim().await;
    let bodies = [
        json!({"user_id": "u", "actor": {"sub": "a"}}),
        json!({"user_id": "", "actor": {"sub": ""}}),
        json!({"user_id": "u", "actor": {"sub": "a", "x": {"y": [1, null]}}}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 60}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 0}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": -5}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": 10}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 60, "session_max_duration_in_seconds": 10}),
        json!({}),
        json!({"user_id": "u"}),
        json!({"actor": {"sub": "a"}}),
        json!({"user_id": "u", "actor": {}}),
        json!({"user_id": "u", "actor": {"sub": null}}),
        json!({"user_id": "u", "actor": {"sub": 3}}),
        json!({"user_id": "u", "actor": "a"}),
        json!({"user_id": "u", "actor": null}),
        json!({"user_id": 7, "actor": {"sub": "a"}}),
        json!({"user_id": null, "actor": {"sub": "a"}}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 1.5}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": "60"}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": null}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": false}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "other": 1}),
        json!({"user_id": "u", "actor": {"sub": "a"}, "userId": "u"}),
        json!([]),
        json!("u"),
    ];
    for body in bodies {
        let spec_ok = validator.is_valid(&body);
        let a = create(&sim, body.clone()).await;
        assert_eq!(
            a.status == 200,
            spec_ok,
            "{body}: spec says {spec_ok}, simulator answered {}",
            a.status
        );
        if !spec_ok {
            assert!([400, 422].contains(&a.status), "{body}: {}", a.status);
        }
    }
}

#[test]
fn the_spec_defaults_are_the_simulator_defaults() {
    let props = &operation(CREATE_PATH)["requestBody"]["content"]["application/json"]["schema"]["properties"];
    assert_eq!(props["expires_in_seconds"]["default"], 3600);
    assert_eq!(props["session_max_duration_in_seconds"]["default"], 1800);
}

#[tokio::test]
async fn created_tokens_use_the_spec_defaults() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    let props = &operation(CREATE_PATH)["requestBody"]["content"]["application/json"]["schema"]["properties"];
    let token = sim.token(&id).unwrap();
    assert_eq!(
        json!(token.expires_in_seconds),
        props["expires_in_seconds"]["default"]
    );
    assert_eq!(
        json!(token.session_max_duration_in_seconds),
        props["session_max_duration_in_seconds"]["default"]
    );
}

#[test]
fn nullable_becomes_a_type_union() {
    let converted = to_json_schema(
        &json!({"type": "object", "properties": {"a": {"type": "string", "nullable": true, "enum": ["x"]}}}),
        &mut Vec::new(),
    );
    assert_eq!(
        converted["properties"]["a"],
        json!({"type": ["string", "null"], "enum": ["x", null]})
    );
    let v = jsonschema::draft4::new(&converted).unwrap();
    assert!(
        v.is_valid(&json!({"a": null}))
            && v.is_valid(&json!({"a": "x"}))
            && !v.is_valid(&json!({"a": "y"}))
    );
}

#[test]
fn the_converted_schemas_have_teeth() {
    let token = body_validator(CREATE_PATH, 200);
    let good = json!({"object": "actor_token", "id": "act_1", "status": "pending", "user_id": "u",
                      "actor": {"sub": "a"}, "created_at": 1, "updated_at": 1});
    assert!(token.is_valid(&good));
    let mut extra = good.clone();
    extra["expires_at"] = json!(5);
    assert!(!token.is_valid(&extra), "additionalProperties: false");
    let mut expired = good.clone();
    expired["status"] = json!("expired");
    assert!(!token.is_valid(&expired), "status enum");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("updated_at");
    assert!(!token.is_valid(&missing), "required");
    let mut null_token = good;
    null_token["token"] = Value::Null;
    assert!(
        !token.is_valid(&null_token),
        "token is not nullable in this spec version"
    );

    let session = body_validator(REVOKE_SESSION_PATH, 200);
    let good = json!({"object": "session", "id": "sess_1", "user_id": "u", "client_id": "c",
                      "actor": {"sub": "a"}, "status": "active", "last_active_at": 1,
                      "expire_at": 2, "abandon_at": 3, "updated_at": 1, "created_at": 1,
                      "latest_activity": null, "tasks": null,
                      "last_active_organization_id": null});
    assert!(session.is_valid(&good));
    let mut extra = good.clone();
    extra["actor_token_id"] = json!("act_1");
    assert!(!session.is_valid(&extra), "additionalProperties: false");
    let mut bad_status = good.clone();
    bad_status["status"] = json!("accepted");
    assert!(!session.is_valid(&bad_status), "status enum");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("abandon_at");
    assert!(!session.is_valid(&missing), "required");
    let mut float = good;
    float["expire_at"] = json!(2.5);
    assert!(!session.is_valid(&float), "integer times");
    let list = body_validator(LIST_SESSIONS_PATH, 200);
    assert!(list.is_valid(&json!([])));
    assert!(
        !list.is_valid(&json!({"data": [], "total_count": 0})),
        "the spec's list is an array"
    );

    let errors = body_validator(REVOKE_PATH, 404);
    assert!(
        errors.is_valid(&json!({"errors": [{"message": "m", "long_message": "l", "code": "c"}]}))
    );
    assert!(!errors.is_valid(&json!({"errors": [{"message": "m", "long_message": "l"}]})));
    assert!(!errors.is_valid(&json!({"error": "x"})));
}
