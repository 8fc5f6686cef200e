//! The `/__sim/` control surface.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn tokens_lists_every_token_with_status_and_expiry() {
    let sim = sim().await;
    let a = create(&sim, json!({"user_id": "user_a", "actor": {"sub": "user_x", "k": "v"}, "expires_in_seconds": 100})).await;
    let b = create_ok(&sim).await;
    let before_revoke = unix_ms();
    revoke(&sim, b["id"].as_str().unwrap()).await;
    let after_revoke = unix_ms();
    let list = sim_get(&sim, "/__sim/tokens").await;
    assert_eq!(list.status, 200);
    let list = list.body.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], a.body["id"]);
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(list[0]["user_id"], "user_a");
    assert_eq!(list[0]["actor"], json!({"sub": "user_x", "k": "v"}));
    assert_eq!(
        list[0]["expires_at"].as_i64().unwrap(),
        a.body["created_at"].as_i64().unwrap() + 100
    );
    assert_eq!(list[0]["url"], a.body["url"]);
    assert_eq!(list[1]["status"], "revoked");
    // The revoke time, in milliseconds, only on the revoked token.
    assert!(list[0]["revoked_at_ms"].is_null());
    let revoked_at = list[1]["revoked_at_ms"].as_i64().unwrap();
    assert!(
        (before_revoke..=after_revoke).contains(&revoked_at),
        "{before_revoke} <= {revoked_at} <= {after_revoke}"
    );

    sim.advance_clock(Duration::from_secs(100));
    let list = sim_get(&sim, "/__sim/tokens").await.body;
    assert_eq!(list[0]["status"], "expired");
    // The library view agrees with the JSON.
    let tokens: Vec<clerk_sim::SimToken> = serde_json::from_value(list).unwrap();
    assert_eq!(tokens, sim.tokens());
}

#[tokio::test]
async fn accept_through_the_control_surface() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    let a = sim_post(&sim, &format!("/__sim/tokens/{id}/accept"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "accepted");
    let again = sim_post(&sim, &format!("/__sim/tokens/{id}/accept"), None).await;
    assert_eq!(again.status, 409);
    assert!(again.body["errors"][0]["code"].is_string());
    assert_eq!(
        sim_post(&sim, "/__sim/tokens/act_nope/accept", None)
            .await
            .status,
        404
    );

    let short = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 1}),
    )
    .await;
    let short = short.body["id"].as_str().unwrap().to_owned();
    sim.advance_clock(Duration::from_secs(2));
    assert_eq!(
        sim_post(&sim, &format!("/__sim/tokens/{short}/accept"), None)
            .await
            .status,
        410
    );
    assert_eq!(sim.stats().create.total, 2, "control calls are not counted");
}

#[tokio::test]
async fn accept_through_the_control_surface_opens_a_session() {
    let sim = sim().await;
    let actor = json!({"sub": "user_support", "actortokens.dev": {"request": "ns/name"}});
    let created = create(
        &sim,
        json!({"user_id": "user_c", "actor": actor, "session_max_duration_in_seconds": 90}),
    )
    .await
    .body;
    let id = created["id"].as_str().unwrap();
    let a = sim_post(&sim, &format!("/__sim/tokens/{id}/accept"), None).await;
    assert_eq!(a.status, 200);
    let session_id = a.body["session_id"].as_str().unwrap().to_owned();
    assert!(session_id.starts_with("sess_"), "{session_id}");

    let list = sim_get(&sim, "/__sim/sessions").await;
    assert_eq!(list.status, 200);
    let s = &list.body[0];
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(s["id"], session_id.as_str());
    assert_eq!(s["status"], "active");
    assert_eq!(s["user_id"], "user_c");
    assert_eq!(s["actor"], actor);
    assert_eq!(s["actor_token_id"], id);
    assert!(s["client_id"].as_str().unwrap().starts_with("client_"));
    let created_ms = s["created_at_ms"].as_i64().unwrap();
    assert_eq!(s["created_at"].as_i64().unwrap(), created_ms / 1000);
    assert_eq!(s["expire_at_ms"].as_i64().unwrap(), created_ms + 90_000);
    assert_eq!(
        s["expire_at"].as_i64().unwrap(),
        (created_ms + 90_000) / 1000
    );
    assert!(s["revoked_at_ms"].is_null());

    revoke_session(&sim, &session_id).await;
    sim.advance_clock(Duration::from_secs(90));
    let (_, expired) = open_session(
        &sim,
        json!({"user_id": "user_c", "actor": {"sub": "a"}, "session_max_duration_in_seconds": 1}),
    )
    .await;
    sim.advance_clock(Duration::from_secs(1));
    let list = sim_get(&sim, "/__sim/sessions").await.body;
    assert_eq!(
        list[0]["status"], "revoked",
        "a revoke outlives the expiry time"
    );
    assert!(list[0]["revoked_at_ms"].as_i64().unwrap() >= created_ms);
    assert_eq!(list[1]["id"], expired.as_str());
    assert_eq!(list[1]["status"], "expired");
    // The library view agrees with the JSON.
    let sessions: Vec<clerk_sim::SimSession> = serde_json::from_value(list).unwrap();
    assert_eq!(sessions, sim.sessions());
    assert_eq!(sim.stats().create.total, 2, "control calls are not counted");
}

#[tokio::test]
async fn stats_and_requests_report_counts() {
    let sim = sim().await;
    create_ok(&sim).await;
    revoke(&sim, "act_nope").await;
    for path in ["/__sim/stats", "/__sim/requests"] {
        let s = sim_get(&sim, path).await;
        assert_eq!(s.status, 200);
        assert_eq!(s.body["create"]["total"], 1);
        assert_eq!(s.body["create"]["by_status"]["200"], 1);
        assert_eq!(s.body["revoke"]["by_status"]["404"], 1);
        assert_eq!(s.body["api_versions"]["2026-05-12"], 1);
        assert_eq!(s.body["list_sessions"]["total"], 0);
        assert_eq!(s.body["revoke_session"]["total"], 0);
        let parsed: clerk_sim::Stats = serde_json::from_value(s.body).unwrap();
        assert_eq!(parsed, sim.stats());
    }
}

#[tokio::test]
async fn reset_clears_tokens_sessions_and_counters() {
    let sim = sim().await;
    create_ok(&sim).await;
    let (_, session) = open_session(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;
    list_sessions(&sim, "user_id=u").await;
    let a = sim_post(&sim, "/__sim/reset", None).await;
    assert_eq!(a.status, 204);
    assert_eq!(sim_get(&sim, "/__sim/tokens").await.body, json!([]));
    assert_eq!(sim_get(&sim, "/__sim/sessions").await.body, json!([]));
    assert!(sim.session(&session).is_none());
    assert_eq!(revoke_session(&sim, &session).await.status, 404);
    assert_eq!(
        sim_get(&sim, "/__sim/stats").await.body["list_sessions"]["total"],
        0
    );
    assert_eq!(
        sim_get(&sim, "/__sim/stats").await.body["create"]["total"],
        0
    );
}

#[tokio::test]
async fn reset_clears_rate_limit_windows_but_keeps_faults() {
    let sim = sim_with(clerk_sim::Faults {
        rate_limit: Some(clerk_sim::RateLimit::per_key(1, Duration::from_secs(60))),
        ..Default::default()
    })
    .await;
    create_ok(&sim).await;
    assert_eq!(create_raw(&sim, "{}").await.status, 429);
    sim.reset();
    create_ok(&sim).await;
    assert!(sim.faults().rate_limit.is_some());
}

#[tokio::test]
async fn clock_can_be_read_and_advanced() {
    let sim = sim().await;
    let now = sim_get(&sim, "/__sim/clock").await.body["now"]
        .as_i64()
        .unwrap();
    let a = sim_post(&sim, "/__sim/clock/advance", Some(json!({"seconds": 3600}))).await;
    assert_eq!(a.status, 200);
    let later = a.body["now"].as_i64().unwrap();
    assert!(
        (now + 3600..=now + 3602).contains(&later),
        "{now} -> {later}"
    );
    assert_eq!(
        sim_post(&sim, "/__sim/clock/advance", Some(json!({"seconds": -1})))
            .await
            .status,
        400
    );
    assert!(sim.now_unix() >= later);
}

#[tokio::test]
async fn control_surface_needs_no_auth_and_ignores_faults() {
    let sim = sim_with(clerk_sim::Faults {
        server_error_share: 1.0,
        ..Default::default()
    })
    .await;
    assert_eq!(sim_get(&sim, "/__sim/tokens").await.status, 200);
    assert_eq!(sim_get(&sim, "/__sim/stats").await.status, 200);
    assert_eq!(sim_get(&sim, "/__sim/sessions").await.status, 200);
}

fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_millis()).unwrap()
}
