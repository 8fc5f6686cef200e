//! Sessions: opened by accepting an actor token, listed by GetSessionList, ended by
//! RevokeSession, expired by the clock.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use clerk_sim::{SessionStatus, SimError, TokenStatus};
use common::*;
use serde_json::{Value, json};

fn token_body(user: &str, actor: Value) -> Value {
    json!({"user_id": user, "actor": actor})
}

// ---------- opening a link opens a session ----------

#[tokio::test]
async fn accepting_a_token_opens_an_active_session_carrying_its_actor() {
    let sim = sim().await;
    let actor = json!({
        "sub": "user_support",
        "actortokens.dev": {"request": "tenant-a/debug-login", "uid": "6d1f"},
        "reason": ["ticket", 42, null]
    });
    let created = create(
        &sim,
        json!({"user_id": "user_customer", "actor": actor, "session_max_duration_in_seconds": 600}),
    )
    .await
    .body;
    let token_id = created["id"].as_str().unwrap();
    let session = sim.accept(token_id).unwrap();

    assert!(session.id.starts_with("sess_"), "{}", session.id);
    assert!(
        session.client_id.starts_with("client_"),
        "{}",
        session.client_id
    );
    assert_eq!(session.status, SessionStatus::Active);
    assert_eq!(session.user_id, "user_customer");
    assert_eq!(
        session.actor, actor,
        "the actor exactly as given, extra keys kept"
    );
    assert_eq!(session.actor_token_id, token_id);
    assert_eq!(session.expire_at_ms - session.created_at_ms, 600_000);
    assert_eq!(sim.token(token_id).unwrap().status, TokenStatus::Accepted);
    assert_eq!(sim.sessions(), std::slice::from_ref(&session));
    assert_eq!(sim.active_sessions(), std::slice::from_ref(&session));

    // The API shows the same session, as the spec's Session object, times in milliseconds.
    let listed = list_sessions(&sim, "user_id=user_customer").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let body = &listed.body[0];
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(body["object"], "session");
    assert_eq!(body["id"], session.id.as_str());
    assert_eq!(body["user_id"], "user_customer");
    assert_eq!(body["client_id"], session.client_id.as_str());
    assert_eq!(body["actor"], actor);
    assert_eq!(body["status"], "active");
    assert_eq!(body["created_at"], session.created_at_ms);
    assert_eq!(body["updated_at"], session.created_at_ms);
    assert_eq!(body["last_active_at"], session.created_at_ms);
    assert_eq!(body["expire_at"], session.expire_at_ms);
    let abandon_at = body["abandon_at"].as_i64().unwrap();
    assert_eq!(abandon_at - session.created_at_ms, 30 * 24 * 3600 * 1000);
    assert!(body["last_active_organization_id"].is_null());
}

#[tokio::test]
async fn a_token_that_cannot_be_used_opens_no_session() {
    let sim = sim().await;
    let revoked = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    revoke(&sim, &revoked).await;
    assert!(matches!(
        sim.accept(&revoked),
        Err(SimError::NotPending { .. })
    ));
    let short = create(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "expires_in_seconds": 5}),
    )
    .await
    .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance_clock(Duration::from_secs(5));
    assert_eq!(sim.accept(&short), Err(SimError::Expired(short.clone())));
    let used = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    sim.accept(&used).unwrap();
    assert!(sim.accept(&used).is_err(), "a second sign-in is refused");
    assert_eq!(sim.sessions().len(), 1, "only the one good sign-in");
}

// ---------- lifetime ----------

#[tokio::test]
async fn a_session_expires_after_session_max_duration_on_the_clock() {
    let sim = sim().await;
    let (_, id) = open_session(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": 120}),
    )
    .await;
    sim.advance_clock(Duration::from_secs(119));
    assert_eq!(sim.session(&id).unwrap().status, SessionStatus::Active);
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u&status=active").await.body),
        [id.as_str()]
    );

    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(sim.session(&id).unwrap().status, SessionStatus::Expired);
    assert!(sim.active_sessions().is_empty());
    assert!(
        session_ids(&list_sessions(&sim, "user_id=u&status=active").await.body).is_empty(),
        "an expired session is no longer listed as active"
    );
    let expired = list_sessions(&sim, "user_id=u&status=expired").await.body;
    assert_eq!(session_ids(&expired), [id.as_str()]);
    assert_eq!(expired[0]["status"], "expired");
    assert_eq!(expired[0]["updated_at"], expired[0]["expire_at"]);
}

#[tokio::test]
async fn the_default_session_duration_is_the_specs_1800_seconds() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    let session = sim.session(&id).unwrap();
    assert_eq!(session.expire_at - session.created_at, 1800);
    sim.advance_clock(Duration::from_secs(1800));
    assert_eq!(sim.session(&id).unwrap().status, SessionStatus::Expired);
}

#[tokio::test]
async fn a_zero_session_duration_is_expired_at_once() {
    let sim = sim().await;
    let (_, id) = open_session(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": 0}),
    )
    .await;
    assert_eq!(sim.session(&id).unwrap().status, SessionStatus::Expired);
}

// ---------- GetSessionList ----------

#[tokio::test]
async fn list_filters_by_user_client_and_status() {
    let sim = sim().await;
    let (_, a1) = open_session(&sim, token_body("user_a", json!({"sub": "x"}))).await;
    let (_, a2) = open_session(&sim, token_body("user_a", json!({"sub": "y"}))).await;
    let (_, b1) = open_session(&sim, token_body("user_b", json!({"sub": "x"}))).await;
    assert_eq!(revoke_session(&sim, &a1).await.status, 200);

    let ids = |q: &'static str| {
        let sim = &sim;
        async move {
            let a = list_sessions(sim, q).await;
            assert_eq!(a.status, 200, "{q}: {}", a.body);
            session_ids(&a.body)
        }
    };
    assert_eq!(ids("user_id=user_a").await, [a2.clone(), a1.clone()]);
    assert_eq!(ids("user_id=user_b").await, [b1.as_str()]);
    assert_eq!(ids("user_id=user_a&status=active").await, [a2.as_str()]);
    assert_eq!(ids("user_id=user_a&status=revoked").await, [a1.as_str()]);
    for status in ["ended", "abandoned", "removed", "replaced", "expired"] {
        let q = format!("user_id=user_a&status={status}");
        assert!(
            session_ids(&list_sessions(&sim, &q).await.body).is_empty(),
            "{q}"
        );
    }
    assert!(ids("user_id=user_nobody").await.is_empty());

    let client_of_b1 = sim.session(&b1).unwrap().client_id;
    let by_client = list_sessions(&sim, &format!("client_id={client_of_b1}")).await;
    assert_eq!(session_ids(&by_client.body), [b1.as_str()]);
    // Both filters hold at once: b1's client has no session of user_a.
    let both = list_sessions(&sim, &format!("client_id={client_of_b1}&user_id=user_a")).await;
    assert!(session_ids(&both.body).is_empty());
}

#[tokio::test]
async fn list_is_newest_first_and_pages_with_limit_and_offset() {
    let sim = sim().await;
    let mut opened = Vec::new();
    for i in 0..5 {
        let (_, id) = open_session(&sim, token_body("u", json!({"sub": format!("a{i}")}))).await;
        opened.push(id);
        // Distinct creation times, so the order is by time and not only by insertion.
        sim.advance_clock(Duration::from_millis(10));
    }
    let newest_first: Vec<String> = opened.iter().rev().cloned().collect();
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u").await.body),
        newest_first
    );
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u&limit=2").await.body),
        newest_first[..2]
    );
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u&limit=2&offset=4").await.body),
        newest_first[4..]
    );
    assert!(session_ids(&list_sessions(&sim, "user_id=u&offset=5").await.body).is_empty());

    // Paging through with the paginated form: every session exactly once, the total each time.
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = list_sessions(
            &sim,
            &format!("user_id=u&status=active&paginated=true&limit=2&offset={offset}"),
        )
        .await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body["total_count"], 5, "{}", page.body);
        let ids = session_ids(&page.body);
        if ids.is_empty() {
            break;
        }
        offset += ids.len();
        seen.extend(ids);
    }
    assert_eq!(seen, newest_first);
    // paginated=false is the bare array.
    assert!(
        list_sessions(&sim, "user_id=u&paginated=false")
            .await
            .body
            .is_array()
    );
}

#[tokio::test]
async fn list_returns_ten_unless_told_and_at_most_500() {
    let sim = sim().await;
    for _ in 0..12 {
        open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    }
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u").await.body).len(),
        10
    );
    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u&limit=500").await.body).len(),
        12
    );
    let page = list_sessions(&sim, "user_id=u&paginated=true").await.body;
    assert_eq!(
        (session_ids(&page).len(), page["total_count"].as_u64()),
        (10, Some(12))
    );
}

#[tokio::test]
async fn list_refuses_bad_queries_with_422_naming_the_parameter() {
    let sim = sim().await;
    for (query, code, param) in [
        ("", "form_param_missing", "user_id"),
        ("status=active", "form_param_missing", "user_id"),
        (
            "user_id=u&status=bogus",
            "form_param_value_invalid",
            "status",
        ),
        (
            "user_id=u&status=pending",
            "form_param_value_invalid",
            "status",
        ),
        ("user_id=u&limit=0", "form_param_value_invalid", "limit"),
        ("user_id=u&limit=501", "form_param_value_invalid", "limit"),
        ("user_id=u&limit=ten", "form_param_format_invalid", "limit"),
        ("user_id=u&offset=-1", "form_param_value_invalid", "offset"),
        (
            "user_id=u&offset=1e3",
            "form_param_format_invalid",
            "offset",
        ),
        (
            "user_id=u&paginated=yes",
            "form_param_format_invalid",
            "paginated",
        ),
    ] {
        let a = list_sessions(&sim, query).await;
        assert_eq!(a.status, 422, "{query}: {}", a.body);
        assert_eq!(a.codes(), [code], "{query}");
        assert_eq!(a.params(), [param], "{query}");
        assert!(a.body["clerk_trace_id"].is_string());
    }
    let many = list_sessions(&sim, "limit=0&offset=x").await;
    assert_eq!(
        many.params(),
        ["user_id", "limit", "offset"],
        "every problem at once"
    );
}

#[tokio::test]
async fn list_decodes_the_query_as_a_form() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("user with+odd&chars", json!({"sub": "a"}))).await;
    let q = "user_id=user%20with%2Bodd%26chars&ignored=1";
    assert_eq!(
        session_ids(&list_sessions(&sim, q).await.body),
        [id.as_str()]
    );
    assert_eq!(
        session_ids(
            &list_sessions(&sim, "user_id=user+with%2Bodd%26chars")
                .await
                .body
        ),
        [id]
    );
}

// ---------- RevokeSession ----------

#[tokio::test]
async fn revoking_an_active_session_ends_it() {
    let sim = sim().await;
    let (token_id, id) = open_session(&sim, token_body("u", json!({"sub": "a", "k": 1}))).await;
    let (_, other) = open_session(&sim, token_body("u", json!({"sub": "b"}))).await;
    sim.advance_clock(Duration::from_secs(3));
    let a = revoke_session(&sim, &id).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["object"], "session");
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(a.body["status"], "revoked");
    assert_eq!(a.body["actor"], json!({"sub": "a", "k": 1}));
    let session = sim.session(&id).unwrap();
    assert_eq!(session.status, SessionStatus::Revoked);
    let revoked_at = session.revoked_at_ms.unwrap();
    assert_eq!(a.body["updated_at"], revoked_at);
    assert!(revoked_at >= session.created_at_ms + 3000);

    assert_eq!(
        session_ids(&list_sessions(&sim, "user_id=u&status=active").await.body),
        [other.as_str()],
        "only the other session is still active"
    );
    assert_eq!(sim.active_sessions().len(), 1);
    assert_eq!(
        sim.token(&token_id).unwrap().status,
        TokenStatus::Accepted,
        "the token stays accepted"
    );
}

#[tokio::test]
async fn revoking_a_session_that_is_not_active_is_400() {
    let sim = sim().await;
    let (_, revoked) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    assert_eq!(revoke_session(&sim, &revoked).await.status, 200);
    let again = revoke_session(&sim, &revoked).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.codes(), ["session_cannot_be_revoked_code"]);
    let message = again.body["errors"][0]["long_message"].as_str().unwrap();
    assert!(message.contains("revoked"), "{message}");

    let (_, expired) = open_session(
        &sim,
        json!({"user_id": "u", "actor": {"sub": "a"}, "session_max_duration_in_seconds": 10}),
    )
    .await;
    sim.advance_clock(Duration::from_secs(10));
    let a = revoke_session(&sim, &expired).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.codes(), ["session_cannot_be_revoked_code"]);
    assert_eq!(
        sim.session(&expired).unwrap().status,
        SessionStatus::Expired
    );
    assert!(sim.session(&expired).unwrap().revoked_at_ms.is_none());
}

#[tokio::test]
async fn revoking_an_unknown_session_is_404() {
    let sim = sim().await;
    let a = revoke_session(&sim, "sess_no_such_session").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.codes(), ["resource_not_found"]);
    // A token ID is not a session ID.
    let token = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    sim.accept(&token).unwrap();
    assert_eq!(revoke_session(&sim, &token).await.status, 404);
}

#[tokio::test]
async fn revoke_session_takes_an_empty_json_body_as_the_js_sdk_sends() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    let a = answer(
        client()
            .post(format!("{}/sessions/{id}/revoke", sim.api_url()))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

// ---------- auth, routes, counters ----------

#[tokio::test]
async fn session_routes_need_a_valid_key() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    for auth in [None, Some("Token x"), Some("Bearer sk_test_unknown")] {
        for (method, path) in [
            ("GET", "/sessions?user_id=u".to_owned()),
            ("POST", format!("/sessions/{id}/revoke")),
        ] {
            let mut request =
                client().request(method.parse().unwrap(), format!("{}{path}", sim.api_url()));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let a = answer(request.send().await.unwrap()).await;
            assert_eq!(a.status, 401, "{method} {path} {auth:?}");
        }
    }
    assert_eq!(sim.session(&id).unwrap().status, SessionStatus::Active);
}

#[tokio::test]
async fn other_session_operations_are_not_served() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    for (method, path) in [
        ("POST", "/sessions".to_owned()),
        ("GET", format!("/sessions/{id}")),
        ("GET", format!("/sessions/{id}/revoke")),
        ("POST", format!("/sessions/{id}/tokens")),
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
    assert_eq!(stats.other.total, 4);
    assert_eq!(
        (stats.list_sessions.total, stats.revoke_session.total),
        (0, 0)
    );
}

#[tokio::test]
async fn stats_count_session_calls_by_status() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
    list_sessions(&sim, "user_id=u").await;
    list_sessions(&sim, "user_id=u&paginated=true").await;
    list_sessions(&sim, "").await;
    revoke_session(&sim, &id).await;
    revoke_session(&sim, &id).await;
    revoke_session(&sim, "sess_nope").await;
    let stats = sim.stats();
    assert_eq!(stats.list_sessions.total, 3);
    assert_eq!(
        (
            stats.list_sessions.count(200),
            stats.list_sessions.count(422)
        ),
        (2, 1)
    );
    assert_eq!(stats.revoke_session.total, 3);
    assert_eq!(
        (
            stats.revoke_session.count(200),
            stats.revoke_session.count(400),
            stats.revoke_session.count(404)
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (stats.create.total, stats.revoke.total, stats.other.total),
        (1, 0, 0)
    );
    sim.reset();
    assert!(sim.sessions().is_empty());
    assert_eq!(sim.stats(), clerk_sim::Stats::default());
}

#[tokio::test]
async fn session_and_client_ids_are_fresh() {
    let sim = sim().await;
    let mut ids = BTreeSet::new();
    let mut clients = BTreeSet::new();
    for _ in 0..20 {
        let (_, id) = open_session(&sim, token_body("u", json!({"sub": "a"}))).await;
        clients.insert(sim.session(&id).unwrap().client_id);
        ids.insert(id);
    }
    assert_eq!((ids.len(), clients.len()), (20, 20));
}
