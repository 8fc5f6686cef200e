//! Behaviour of the two Backend API operations: auth, validation, defaults, revoke states,
//! expiry, headers the SDKs send.

mod common;

use std::time::Duration;

use clerk_sim::{SimError, TokenStatus};
use common::*;
use serde_json::json;

// ---------- auth ----------

async fn create_with_auth(auth: Option<&str>) -> Answer {
    let sim = sim().await;
    let mut request = client()
        .post(format!("{}/actor_tokens", sim.api_url()))
        .header("content-type", "application/json")
        .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let a = answer(request.send().await.unwrap()).await;
    assert!(
        sim.tokens().is_empty() || a.status == 200,
        "no token on a refused create"
    );
    a
}

#[tokio::test]
async fn missing_authorization_is_401() {
    let a = create_with_auth(None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.codes(), ["authentication_invalid"]);
    assert!(a.body["clerk_trace_id"].is_string());
}

#[tokio::test]
async fn malformed_authorization_is_401() {
    for header in ["Basic abc", "Bearer", "Bearer ", KEY] {
        let a = create_with_auth(Some(header)).await;
        assert_eq!(a.status, 401, "{header:?}");
        assert_eq!(
            a.codes(),
            ["authorization_header_format_invalid"],
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn unknown_key_is_401() {
    let a = create_with_auth(Some("Bearer sk_test_not_configured")).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.codes(), ["clerk_key_invalid"]);
}

#[tokio::test]
async fn configured_keys_are_accepted_test_and_live_case_insensitive_scheme() {
    assert_eq!(
        create_with_auth(Some(&format!("Bearer {KEY}")))
            .await
            .status,
        200
    );
    assert_eq!(
        create_with_auth(Some(&format!("Bearer {LIVE_KEY}")))
            .await
            .status,
        200
    );
    assert_eq!(
        create_with_auth(Some(&format!("bearer {KEY}")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn revoke_needs_auth_too() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    let a = answer(
        client()
            .post(format!("{}/actor_tokens/{id}/revoke", sim.api_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Pending);
}

// ---------- create ----------

#[tokio::test]
async fn create_answers_an_actor_token_and_records_it() {
    let sim = sim().await;
    let before = sim.now_unix();
    let a = create(
        &sim,
        json!({"user_id": "user_subject", "actor": {"sub": "user_actor", "reason": "support", "n": 2},
               "expires_in_seconds": 600, "session_max_duration_in_seconds": 300}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b = &a.body;
    assert_eq!(b["object"], "actor_token");
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("act_") && id.len() > 10, "{id}");
    assert_eq!(b["status"], "pending");
    assert_eq!(b["user_id"], "user_subject");
    assert_eq!(
        b["actor"],
        json!({"sub": "user_actor", "reason": "support", "n": 2})
    );
    let token = b["token"].as_str().unwrap();
    assert!(token.len() >= 20);
    let url = b["url"].as_str().unwrap();
    assert!(url.starts_with("https://") && url.contains(token), "{url}");
    let created = b["created_at"].as_i64().unwrap();
    assert!(
        (before..=before + 2).contains(&created),
        "Unix seconds: {created}"
    );
    assert_eq!(b["updated_at"], b["created_at"]);

    let tokens = sim.tokens();
    assert_eq!(tokens.len(), 1);
    let t = &tokens[0];
    assert_eq!(
        (t.id.as_str(), t.status, t.token.as_str()),
        (id, TokenStatus::Pending, token)
    );
    assert_eq!(t.expires_in_seconds, 600);
    assert_eq!(t.session_max_duration_in_seconds, 300);
    assert_eq!(t.expires_at, created + 600);
    assert_eq!(sim.live_tokens().len(), 1);
}

#[tokio::test]
async fn create_defaults_expiry_and_session_duration() {
    let sim = sim().await;
    let body = create_ok(&sim).await;
    let t = sim.token(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(t.expires_in_seconds, 3600);
    assert_eq!(t.session_max_duration_in_seconds, 1800);
    assert_eq!(t.expires_at, t.created_at + 3600);
}

#[tokio::test]
async fn every_create_gets_a_fresh_id_and_token() {
    let sim = sim().await;
    let a = create_ok(&sim).await;
    let b = create_ok(&sim).await;
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["token"], b["token"]);
    assert_eq!(sim.stats().create.count(200), 2);
}

async fn refused(body: &str) -> Answer {
    let sim = sim().await;
    let a = create_raw(&sim, body).await;
    assert!(sim.tokens().is_empty(), "{body}: nothing may be created");
    a
}

#[tokio::test]
async fn create_body_not_json_is_400() {
    for body in ["{", "user_id=u", "[1", "\"unterminated"] {
        let a = refused(body).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.codes(), ["request_body_invalid"], "{body}");
    }
}

#[tokio::test]
async fn create_body_json_but_not_an_object_is_400() {
    for body in ["[]", "\"x\"", "3", "null", "true"] {
        let a = refused(body).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.codes(), ["request_body_invalid"], "{body}");
    }
}

#[tokio::test]
async fn create_empty_body_is_missing_params() {
    for body in ["", "{}", "  "] {
        let a = refused(body).await;
        assert_eq!(a.status, 422, "{body:?}");
        assert_eq!(a.codes(), ["form_param_missing", "form_param_missing"]);
        assert_eq!(a.params(), ["user_id", "actor"]);
    }
}

#[tokio::test]
async fn create_missing_user_id_is_422() {
    let a = refused(r#"{"actor": {"sub": "a"}}"#).await;
    assert_eq!(
        (a.status, a.codes(), a.params()),
        (
            422,
            vec!["form_param_missing".into()],
            vec!["user_id".into()]
        )
    );
    let e = &a.body["errors"][0];
    assert!(e["message"].is_string() && e["long_message"].is_string());
}

#[tokio::test]
async fn create_missing_actor_is_422() {
    let a = refused(r#"{"user_id": "u"}"#).await;
    assert_eq!(
        (a.status, a.codes(), a.params()),
        (422, vec!["form_param_missing".into()], vec!["actor".into()])
    );
}

#[tokio::test]
async fn create_actor_without_sub_is_422() {
    let a = refused(r#"{"user_id": "u", "actor": {"name": "x"}}"#).await;
    assert_eq!(
        (a.status, a.codes(), a.params()),
        (
            422,
            vec!["form_param_missing".into()],
            vec!["actor.sub".into()]
        )
    );
}

#[tokio::test]
async fn create_unknown_param_is_422() {
    let a = refused(r#"{"user_id": "u", "actor": {"sub": "a"}, "session_id": "s"}"#).await;
    assert_eq!(
        (a.status, a.codes(), a.params()),
        (
            422,
            vec!["form_param_unknown".into()],
            vec!["session_id".into()]
        )
    );
}

#[tokio::test]
async fn create_wrong_types_are_422() {
    let cases = [
        (r#"{"user_id": 5, "actor": {"sub": "a"}}"#, "user_id"),
        (r#"{"user_id": null, "actor": {"sub": "a"}}"#, "user_id"),
        (r#"{"user_id": "u", "actor": "a"}"#, "actor"),
        (r#"{"user_id": "u", "actor": ["a"]}"#, "actor"),
        (r#"{"user_id": "u", "actor": {"sub": 1}}"#, "actor.sub"),
        (
            r#"{"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": "60"}"#,
            "expires_in_seconds",
        ),
        (
            r#"{"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 1.5}"#,
            "expires_in_seconds",
        ),
        (
            r#"{"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": null}"#,
            "expires_in_seconds",
        ),
        (
            r#"{"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": true}"#,
            "session_max_duration_in_seconds",
        ),
    ];
    for (body, param) in cases {
        let a = refused(body).await;
        assert_eq!(a.status, 422, "{body}");
        assert_eq!(a.codes(), ["form_param_format_invalid"], "{body}");
        assert_eq!(a.params(), [param], "{body}");
    }
}

#[tokio::test]
async fn create_reports_every_problem_at_once() {
    let a = refused(r#"{"actor": {}, "extra": 1, "expires_in_seconds": "x"}"#).await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.codes(),
        [
            "form_param_unknown",
            "form_param_missing",
            "form_param_missing",
            "form_param_format_invalid"
        ]
    );
    assert_eq!(
        a.params(),
        ["extra", "user_id", "actor.sub", "expires_in_seconds"]
    );
}

#[tokio::test]
async fn create_without_content_type_still_parses_json() {
    let sim = sim().await;
    let a = answer(
        client()
            .post(format!("{}/actor_tokens", sim.api_url()))
            .bearer_auth(KEY)
            .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200);
}

// ---------- revoke ----------

#[tokio::test]
async fn revoke_pending_answers_revoked_without_token_or_url() {
    let sim = sim().await;
    let created = create_ok(&sim).await;
    let id = created["id"].as_str().unwrap();
    sim.advance_clock(Duration::from_secs(5));
    let a = revoke(&sim, id).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["object"], "actor_token");
    assert_eq!(a.body["id"], id);
    assert_eq!(a.body["status"], "revoked");
    assert_eq!(a.body["user_id"], created["user_id"]);
    assert_eq!(a.body["actor"], created["actor"]);
    assert_eq!(a.body["created_at"], created["created_at"]);
    assert_eq!(
        a.body["updated_at"].as_i64().unwrap(),
        created["created_at"].as_i64().unwrap() + 5
    );
    assert!(
        a.body.get("token").is_none() && a.body.get("url").is_none(),
        "{}",
        a.body
    );
    assert_eq!(sim.token(id).unwrap().status, TokenStatus::Revoked);
    assert!(sim.live_tokens().is_empty());
}

#[tokio::test]
async fn revoke_twice_is_400() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    assert_eq!(revoke(&sim, &id).await.status, 200);
    let a = revoke(&sim, &id).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["actor_token_cannot_be_revoked_code"]);
    assert!(
        a.body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn revoke_accepted_is_400() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    sim.accept(&id).unwrap();
    let a = revoke(&sim, &id).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["actor_token_cannot_be_revoked_code"]);
    assert!(
        a.body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("accepted")
    );
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Accepted);
}

#[tokio::test]
async fn revoke_expired_is_400() {
    let sim = sim().await;
    let a = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 60}),
    )
    .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    sim.advance_clock(Duration::from_secs(60));
    let a = revoke(&sim, &id).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["actor_token_cannot_be_revoked_code"]);
    assert!(
        a.body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Expired);
}

#[tokio::test]
async fn revoke_unknown_is_404() {
    let sim = sim().await;
    let a = revoke(&sim, "act_doesnotexist").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.codes(), ["resource_not_found"]);
}

#[tokio::test]
async fn revoke_takes_empty_json_body_as_the_js_sdk_sends() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    let a = answer(
        client()
            .post(format!("{}/actor_tokens/{id}/revoke", sim.api_url()))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .header("Clerk-API-Version", "2026-05-12")
            .body("")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "revoked");
}

// ---------- expiry ----------

#[tokio::test]
async fn tokens_expire_on_the_simulator_clock() {
    let sim = sim().await;
    let a = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 10}),
    )
    .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    sim.advance_clock(Duration::from_secs(9));
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Pending);
    assert_eq!(sim.live_tokens().len(), 1);
    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Expired);
    assert!(sim.live_tokens().is_empty());
    assert_eq!(sim.accept(&id), Err(SimError::Expired(id.clone())));
    assert_eq!(sim.tokens().len(), 1, "expired tokens stay listed");
}

#[tokio::test]
async fn tokens_expire_in_real_time_too() {
    let sim = sim().await;
    let a = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 1}),
    )
    .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Expired);
}

#[tokio::test]
async fn zero_expiry_is_expired_at_once() {
    let sim = sim().await;
    let a = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 0}),
    )
    .await;
    assert_eq!(a.status, 200, "the spec puts no bounds on the integer");
    assert_eq!(a.body["status"], "pending", "the API never says expired");
    assert!(sim.live_tokens().is_empty());
}

// ---------- accept ----------

#[tokio::test]
async fn accept_only_once_and_only_pending() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    sim.accept(&id).unwrap();
    assert_eq!(sim.token(&id).unwrap().status, TokenStatus::Accepted);
    assert_eq!(
        sim.accept(&id),
        Err(SimError::NotPending {
            id: id.clone(),
            status: TokenStatus::Accepted
        })
    );
    assert_eq!(
        sim.accept("act_nope"),
        Err(SimError::NotFound("act_nope".into()))
    );
    let other = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    assert_eq!(revoke(&sim, &other).await.status, 200);
    assert_eq!(
        sim.accept(&other),
        Err(SimError::NotPending {
            id: other.clone(),
            status: TokenStatus::Revoked
        })
    );
}

// ---------- headers, routes, counters ----------

#[tokio::test]
async fn any_clerk_api_version_is_accepted_and_counted() {
    let sim = sim().await;
    for version in [
        Some("2025-11-10"),
        Some("2026-05-12"),
        Some("2021-02-05"),
        None,
    ] {
        let mut request = client()
            .post(format!("{}/actor_tokens", sim.api_url()))
            .bearer_auth(KEY)
            .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string());
        if let Some(v) = version {
            request = request.header("Clerk-API-Version", v);
        }
        assert_eq!(
            answer(request.send().await.unwrap()).await.status,
            200,
            "{version:?}"
        );
    }
    let versions = sim.stats().api_versions;
    for v in ["2025-11-10", "2026-05-12", "2021-02-05", ""] {
        assert_eq!(versions.get(v), Some(&1), "{v:?}: {versions:?}");
    }
}

#[tokio::test]
async fn other_api_paths_are_404_in_clerk_envelope() {
    let sim = sim().await;
    for (method, path) in [
        ("GET", "/actor_tokens"),
        ("POST", "/users"),
        ("GET", "/actor_tokens/act_x"),
    ] {
        let a = answer(
            client()
                .request(method.parse().unwrap(), format!("{}{path}", sim.api_url()))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 404, "{method} {path}");
        assert_eq!(a.codes(), ["resource_not_found"]);
    }
    let stats = sim.stats();
    assert_eq!((stats.other.total, stats.other.count(404)), (3, 3));
    assert_eq!(stats.create.total, 0);
}

#[tokio::test]
async fn stats_count_calls_by_status() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    create_raw(&sim, "{}").await;
    revoke(&sim, &id).await;
    revoke(&sim, &id).await;
    revoke(&sim, "act_nope").await;
    let stats = sim.stats();
    assert_eq!(stats.create.total, 2);
    assert_eq!((stats.create.count(200), stats.create.count(422)), (1, 1));
    assert_eq!(stats.create.succeeded(), 1);
    assert_eq!(stats.revoke.total, 3);
    assert_eq!(
        (
            stats.revoke.count(200),
            stats.revoke.count(400),
            stats.revoke.count(404)
        ),
        (1, 1, 1)
    );
    sim.reset();
    assert_eq!(sim.stats(), clerk_sim::Stats::default());
    assert!(sim.tokens().is_empty());
}

#[tokio::test]
async fn many_simulators_run_side_by_side() {
    let sims = futures_join(8).await;
    let urls: std::collections::HashSet<_> = sims.iter().map(|s| s.base_url()).collect();
    assert_eq!(urls.len(), 8);
    for sim in &sims {
        create_ok(sim).await;
        assert_eq!(sim.tokens().len(), 1);
    }
    for sim in sims {
        sim.shutdown().await;
    }
}

async fn futures_join(n: usize) -> Vec<clerk_sim::Simulator> {
    let mut sims = Vec::new();
    for _ in 0..n {
        sims.push(sim().await);
    }
    sims
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = sim().await;
    let url = sim.api_url();
    sim.shutdown().await;
    let result = client()
        .post(format!("{url}/actor_tokens"))
        .bearer_auth(KEY)
        .send()
        .await;
    assert!(result.is_err());
}
