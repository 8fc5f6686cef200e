//! Contract check: every kind of answer the simulator gives validates against Clerk's own
//! OpenAPI spec, read at test time from `spec/bapi-2026-05-12.yml` (nothing copied into code).
//!
//! The spec is OpenAPI 3.0: `$ref`s into `#/components/...` are inlined and `nullable: true`
//! becomes a JSON-Schema type union; the result is checked as JSON Schema draft 4 (the draft
//! OpenAPI 3.0 schemas derive from).
//!
//! Statuses: for the two operations the spec declares 200/400/402/422 (create) and
//! 200/400/404 (revoke). The simulator also answers 401 (bad key), 429 (rate limits) and
//! 500/502/503 (injected faults), which the spec does not declare for these two operations
//! although Clerk sends them for every endpoint. For those the test uses the responses the
//! spec itself attaches to those statuses on other operations — `AuthenticationInvalid` for
//! 401, `TooManyRequests` for 429, `ClerkErrors` for 500 — after checking that the spec really
//! uses them so.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use clerk_sim::{Faults, RateLimit, Simulator};
use common::*;
use serde_json::{Map, Value, json};

const CREATE_PATH: &str = "/actor_tokens";
const REVOKE_PATH: &str = "/actor_tokens/{actor_token_id}/revoke";

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/bapi-2026-05-12.yml");
        let text = std::fs::read_to_string(path).expect("spec file");
        let options = serde_saphyr::options! { budget: None };
        serde_saphyr::from_str_with_options(&text, options).expect("spec parses as YAML")
    })
}

fn pointer(reference: &str) -> &'static Value {
    let path = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local refs: {reference}"));
    spec()
        .pointer(path)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

/// Inlines `$ref`s and turns OpenAPI 3.0 schema keywords into JSON Schema.
fn to_json_schema(schema: &Value, seen: &mut Vec<String>) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                if seen.contains(reference) {
                    return json!({}); // a cycle: accept anything below this point
                }
                seen.push(reference.clone());
                let resolved = to_json_schema(pointer(reference), seen);
                seen.pop();
                return resolved;
            }
            let mut out = Map::new();
            for (key, value) in map {
                if key == "nullable"
                    || key == "example"
                    || key == "discriminator"
                    || key.starts_with("x-")
                {
                    continue;
                }
                // Keywords whose value is a map of names → schemas, or schemas themselves.
                let converted = match key.as_str() {
                    "properties" | "patternProperties" => Value::Object(
                        value
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s, seen)))
                            .collect(),
                    ),
                    "items" | "additionalProperties" | "not" | "allOf" | "anyOf" | "oneOf" => {
                        to_json_schema(value, seen)
                    }
                    _ => value.clone(),
                };
                out.insert(key.clone(), converted);
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match out.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = t.clone();
                        out.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(values)) = out.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    _ => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|s| to_json_schema(s, seen)).collect())
        }
        other => other.clone(),
    }
}

fn operation(path: &str) -> &'static Value {
    let op = &spec()["paths"][path]["post"];
    assert!(op.is_object(), "the spec has POST {path}");
    op
}

/// The response object (resolved) the spec gives for this status on this operation, or the
/// spec's own response for that status elsewhere when the operation does not declare it.
fn response_spec(path: &str, status: u16) -> &'static Value {
    let declared = &operation(path)["responses"][status.to_string()];
    let response = if declared.is_object() {
        declared
    } else {
        pointer(match status {
            401 => "#/components/responses/AuthenticationInvalid",
            429 => "#/components/responses/TooManyRequests",
            500..=599 => "#/components/responses/ClerkErrors",
            _ => {
                panic!("the simulator answers {status} for {path}, which the spec does not declare")
            }
        })
    };
    match response.get("$ref") {
        Some(Value::String(r)) => pointer(r),
        _ => response,
    }
}

fn body_validator(path: &str, status: u16) -> jsonschema::Validator {
    let response = response_spec(path, status);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{path} {status}: the spec gives a JSON schema"
    );
    let schema = to_json_schema(schema, &mut Vec::new());
    jsonschema::draft4::new(&schema).expect("schema compiles")
}

fn assert_valid(path: &str, a: &Answer) {
    let validator = body_validator(path, a.status);
    let errors: Vec<String> = validator
        .iter_errors(&a.body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{path} {}: {} does not match the spec: {errors:#?}",
        a.status,
        a.body
    );
    let content_type = a.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

fn declared(path: &str) -> BTreeSet<u16> {
    operation(path)["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

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
        spec()["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(declared(CREATE_PATH), BTreeSet::from([200, 400, 402, 422]));
    assert_eq!(declared(REVOKE_PATH), BTreeSet::from([200, 400, 404]));
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
        for path in [CREATE_PATH, REVOKE_PATH] {
            let url = format!(
                "{}{}",
                sim.api_url(),
                path.replace("{actor_token_id}", "act_x")
            );
            let mut request = client().post(url).body("{}");
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
    for _ in 0..30 {
        let a = create_raw(&sim, "{}").await;
        assert_valid(CREATE_PATH, &a);
        let b = revoke(&sim, "act_x").await;
        assert_valid(REVOKE_PATH, &b);
        seen.insert(a.status);
        seen.insert(b.status);
    }
    assert_eq!(seen, BTreeSet::from([500, 502, 503]));
}

#[tokio::test]
async fn every_status_the_simulator_uses_is_declared_or_documented() {
    // Declared by the spec for the operation, or one of the documented extras above.
    let extras = BTreeSet::from([401, 429, 500, 502, 503]);
    let sim_create = BTreeSet::from([200, 400, 422]);
    let sim_revoke = BTreeSet::from([200, 400, 404]);
    assert!(sim_create.is_subset(&declared(CREATE_PATH)));
    assert!(sim_revoke.is_subset(&declared(REVOKE_PATH)));
    assert!(
        extras.is_disjoint(&declared(CREATE_PATH)) && extras.is_disjoint(&declared(REVOKE_PATH))
    );
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

    let errors = body_validator(REVOKE_PATH, 404);
    assert!(
        errors.is_valid(&json!({"errors": [{"message": "m", "long_message": "l", "code": "c"}]}))
    );
    assert!(!errors.is_valid(&json!({"errors": [{"message": "m", "long_message": "l"}]})));
    assert!(!errors.is_valid(&json!({"error": "x"})));
}
