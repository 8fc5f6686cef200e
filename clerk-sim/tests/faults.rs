//! Fault injection: latency, 5xx, 429, rate limits, dropped creates, seeded draws, run-time
//! changes.

mod common;

use std::time::{Duration, Instant};

use clerk_sim::{Faults, Latency, RateLimit, SimConfig};
use common::*;
use serde_json::json;

#[tokio::test]
async fn fixed_latency_delays_api_answers_only() {
    let sim = sim_with(Faults {
        latency: Some(Latency::fixed(Duration::from_millis(300))),
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    create_ok(&sim).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    sim_get(&sim, "/__sim/tokens").await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "control surface has no latency"
    );
}

#[tokio::test]
async fn random_latency_stays_in_range() {
    let sim = sim_with(Faults {
        latency: Some(Latency::between(
            Duration::from_millis(50),
            Duration::from_millis(150),
        )),
        ..Faults::default()
    })
    .await;
    for _ in 0..5 {
        let started = Instant::now();
        revoke(&sim, "act_nope").await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn server_error_share_one_answers_5xx_and_creates_nothing() {
    let sim = sim_with(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let a = create(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;
        assert!([500, 502, 503].contains(&a.status), "{}", a.status);
        assert_eq!(a.codes().len(), 1);
        assert!(a.body["clerk_trace_id"].is_string());
        seen.insert(a.status);
    }
    assert_eq!(seen.len(), 3, "all three statuses show up: {seen:?}");
    assert!(sim.tokens().is_empty());
    let stats = sim.stats();
    assert_eq!(stats.create.total, 30);
    assert_eq!(
        stats.create.count(500) + stats.create.count(502) + stats.create.count(503),
        30
    );
}

#[tokio::test]
async fn server_errors_hit_revoke_without_revoking() {
    let sim = sim().await;
    let id = create_ok(&sim).await["id"].as_str().unwrap().to_owned();
    sim.set_faults(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    });
    assert!(revoke(&sim, &id).await.status >= 500);
    assert_eq!(
        sim.token(&id).unwrap().status,
        clerk_sim::TokenStatus::Pending
    );
}

#[tokio::test]
async fn too_many_requests_share_sends_retry_after() {
    let sim = sim_with(Faults {
        too_many_requests_share: 1.0,
        retry_after_seconds: 7,
        ..Faults::default()
    })
    .await;
    let a = create(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "7");
    assert_eq!(a.codes(), ["too_many_requests"]);
    assert!(sim.tokens().is_empty());
    assert_eq!(sim.stats().create.count(429), 1);
}

#[tokio::test]
async fn bad_keys_are_refused_before_faults() {
    let sim = sim_with(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    })
    .await;
    let a = answer(
        client()
            .post(format!("{}/actor_tokens", sim.api_url()))
            .bearer_auth("sk_test_wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn rate_limit_n_per_window_per_key() {
    let sim = sim_with(Faults {
        rate_limit: Some(RateLimit::per_key(3, Duration::from_secs(10))),
        ..Faults::default()
    })
    .await;
    for _ in 0..3 {
        create_ok(&sim).await;
    }
    let a = create(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;
    assert_eq!(a.status, 429);
    let retry_after: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(a.codes(), ["too_many_requests"]);
    assert_eq!(sim.tokens().len(), 3);

    // Another key has its own window.
    let other = answer(
        client()
            .post(format!("{}/actor_tokens", sim.api_url()))
            .bearer_auth(LIVE_KEY)
            .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other.status, 200);

    // Revokes count against the same limit.
    assert_eq!(revoke(&sim, "act_nope").await.status, 429);

    // The next window lets requests through again.
    sim.advance_clock(Duration::from_secs(10));
    create_ok(&sim).await;
    let stats = sim.stats();
    assert_eq!((stats.create.count(200), stats.create.count(429)), (5, 1));
}

#[tokio::test]
async fn the_rate_limit_counts_session_calls_like_any_other() {
    let sim = sim_with(Faults {
        rate_limit: Some(RateLimit::per_key(4, Duration::from_secs(10))),
        ..Faults::default()
    })
    .await;
    // One create (1); the sign-in is the user's, not an API call.
    let (_, id) = open_session(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;
    assert_eq!(list_sessions(&sim, "user_id=u").await.status, 200); // 2
    assert_eq!(list_sessions(&sim, "bad=query").await.status, 422); // 3: refused ones count
    assert_eq!(revoke_session(&sim, "sess_nope").await.status, 404); // 4
    let limited = list_sessions(&sim, "user_id=u").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.codes(), ["too_many_requests"]);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(revoke_session(&sim, &id).await.status, 429);
    assert_eq!(
        sim.session(&id).unwrap().status,
        clerk_sim::SessionStatus::Active,
        "a limited revoke ends nothing"
    );
    assert_eq!(
        create_raw(&sim, "{}").await.status,
        429,
        "one window for all calls"
    );

    sim.advance_clock(Duration::from_secs(10));
    assert_eq!(revoke_session(&sim, &id).await.status, 200);
    let stats = sim.stats();
    assert_eq!(
        (
            stats.list_sessions.count(429),
            stats.revoke_session.count(429)
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn injected_faults_hit_the_session_routes_and_change_nothing() {
    let sim = sim().await;
    let (_, id) = open_session(&sim, json!({"user_id": "u", "actor": {"sub": "a"}})).await;

    sim.set_faults(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let a = list_sessions(&sim, "user_id=u").await;
        let b = revoke_session(&sim, &id).await;
        for x in [&a, &b] {
            assert!([500, 502, 503].contains(&x.status), "{}", x.status);
            assert_eq!(x.codes().len(), 1);
            seen.insert(x.status);
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        sim.session(&id).unwrap().status,
        clerk_sim::SessionStatus::Active
    );

    sim.set_faults(Faults {
        too_many_requests_share: 1.0,
        retry_after_seconds: 4,
        ..Faults::default()
    });
    for a in [
        list_sessions(&sim, "user_id=u").await,
        revoke_session(&sim, &id).await,
    ] {
        assert_eq!(a.status, 429);
        assert_eq!(a.headers["retry-after"], "4");
    }
    assert_eq!(
        sim.session(&id).unwrap().status,
        clerk_sim::SessionStatus::Active
    );

    // Auth comes before every other fault.
    sim.set_faults(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    });
    let a = answer(
        client()
            .get(format!("{}/sessions?user_id=u", sim.api_url()))
            .bearer_auth("sk_test_wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 401);

    sim.set_faults(Faults {
        latency: Some(Latency::fixed(Duration::from_millis(300))),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(list_sessions(&sim, "user_id=u").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(revoke_session(&sim, &id).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let stats = sim.stats();
    // The refused key is counted too, as for the other operations.
    assert_eq!(stats.list_sessions.total, 23);
    assert_eq!(stats.revoke_session.total, 22);
}

#[tokio::test]
async fn clerk_rate_limits_are_100_per_10s_for_test_keys() {
    let sim = sim_with(Faults::default().with_clerk_rate_limits()).await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..101 {
        let response = c
            .post(format!("{}/actor_tokens/act_nope/revoke", sim.api_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses[..100].iter().all(|s| *s == 404), "{statuses:?}");
    assert_eq!(statuses[100], 429);
    assert_eq!(RateLimit::Clerk.limit_for("sk_live_x"), (1000, 10));
    assert_eq!(RateLimit::Clerk.limit_for("sk_test_x"), (100, 10));
}

#[tokio::test]
async fn dropped_create_creates_the_token_but_the_client_gets_no_answer() {
    let sim = sim_with(Faults {
        drop_create_share: 1.0,
        ..Faults::default()
    })
    .await;
    let result = client()
        .post(format!("{}/actor_tokens", sim.api_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(json!({"user_id": "user_subject", "actor": {"sub": "user_actor"}}).to_string())
        .send()
        .await;
    let error = result.expect_err("a dropped connection is not an HTTP answer");
    assert!(!error.is_timeout(), "closed, not timed out: {error:?}");
    assert!(error.status().is_none());
    let tokens = sim.tokens();
    assert_eq!(tokens.len(), 1, "the token was created");
    assert_eq!(tokens[0].user_id, "user_subject");
    assert_eq!(tokens[0].status, clerk_sim::TokenStatus::Pending);
    assert!(
        tokens[0].answer_dropped,
        "the token view tells the answer was dropped"
    );
    let stats = sim.stats();
    assert_eq!(
        (
            stats.create.total,
            stats.create.dropped,
            stats.create.succeeded()
        ),
        (1, 1, 0)
    );

    // The server keeps serving other connections, and revokes are never dropped.
    assert_eq!(revoke(&sim, &tokens[0].id).await.status, 200);
}

#[tokio::test]
async fn a_dropped_create_on_a_kept_alive_connection_is_not_retried_by_the_client() {
    let sim = sim().await;
    let c = client();
    let send = || {
        c.post(format!("{}/actor_tokens", sim.api_url()))
            .bearer_auth(KEY)
            .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string())
            .send()
    };
    assert_eq!(
        send().await.unwrap().status(),
        200,
        "opens a pooled connection"
    );
    sim.set_faults(Faults {
        drop_create_share: 1.0,
        ..Faults::default()
    });
    assert!(send().await.is_err());
    let tokens = sim.tokens();
    assert_eq!(
        tokens.len(),
        2,
        "exactly one more token: the client did not resend"
    );
    assert_eq!(
        tokens.iter().map(|t| t.answer_dropped).collect::<Vec<_>>(),
        [false, true],
        "only the token whose answer was dropped says so"
    );
    assert!(
        tokens[0].created_at_ms <= tokens[1].created_at_ms
            && tokens[1].created_at_ms.div_euclid(1000) == tokens[1].created_at,
        "created_at_ms is created_at in milliseconds"
    );
    assert_eq!(sim.stats().create.total, 2);
}

#[tokio::test]
async fn failed_creates_are_not_dropped() {
    let sim = sim_with(Faults {
        drop_create_share: 1.0,
        ..Faults::default()
    })
    .await;
    assert_eq!(create_raw(&sim, "{}").await.status, 422);
}

async fn pattern(seed: u64) -> Vec<u16> {
    let sim = clerk_sim::start(SimConfig {
        secret_keys: vec![KEY.to_owned()],
        faults: Faults {
            server_error_share: 0.5,
            ..Faults::default()
        },
        seed: Some(seed),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..24 {
        statuses.push(revoke(&sim, "act_nope").await.status);
    }
    statuses
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let a = pattern(42).await;
    assert_eq!(a, pattern(42).await);
    assert!(a.contains(&404) && a.iter().any(|s| *s >= 500), "{a:?}");
    assert_ne!(a, pattern(43).await);
}

#[tokio::test]
async fn faults_change_at_run_time_through_the_library() {
    let sim = sim().await;
    create_ok(&sim).await;
    sim.set_faults(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    });
    assert_eq!(sim.faults().server_error_share, 1.0);
    assert!(create_raw(&sim, "{}").await.status >= 500);
    sim.set_faults(Faults::none());
    create_ok(&sim).await;
}

#[tokio::test]
async fn faults_change_at_run_time_through_the_control_surface() {
    let sim = sim().await;
    let c = client();
    let put = |body: serde_json::Value| {
        c.put(format!("{}/__sim/faults", sim.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let a = answer(
        put(json!({"too_many_requests_share": 1.0, "retry_after_seconds": 3}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["too_many_requests_share"], 1.0);
    assert_eq!(
        a.body["server_error_share"], 0.0,
        "left-out fields take defaults"
    );
    let a = create_raw(&sim, "{}").await;
    assert_eq!(
        (a.status, a.headers["retry-after"].to_str().unwrap()),
        (429, "3")
    );

    let got = sim_get(&sim, "/__sim/faults").await;
    assert_eq!(got.body["retry_after_seconds"], 3);
    assert_eq!(sim.faults().too_many_requests_share, 1.0);

    let a = answer(
        put(json!({"rate_limit": {"per_key": {"requests": 1, "window_seconds": 60}}, "latency": {"min_ms": 1, "max_ms": 2}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        sim.faults().rate_limit,
        Some(RateLimit::per_key(1, Duration::from_secs(60)))
    );
    assert_eq!(
        answer(put(json!({"rate_limit": "clerk"})).await.unwrap())
            .await
            .status,
        200
    );
    assert_eq!(sim.faults().rate_limit, Some(RateLimit::Clerk));

    for bad in [
        json!({"server_error_share": 1.5}),
        json!({"drop_create_share": -0.1}),
        json!({"latency": {"min_ms": 5, "max_ms": 1}}),
        json!({"no_such_fault": 1}),
        json!({"rate_limit": {"per_key": {"requests": 1, "window_seconds": 0}}}),
    ] {
        let a = answer(put(bad.clone()).await.unwrap()).await;
        assert_eq!(a.status, 400, "{bad}");
    }
    assert_eq!(
        sim.faults().rate_limit,
        Some(RateLimit::Clerk),
        "refused PUTs change nothing"
    );
}

#[tokio::test]
async fn invalid_start_faults_are_refused() {
    let result = clerk_sim::start(SimConfig {
        faults: Faults {
            server_error_share: 2.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn faults_default_to_none_and_round_trip_as_json() {
    let faults = Faults::default();
    assert_eq!(faults, Faults::none());
    assert_eq!(
        faults.server_error_share + faults.too_many_requests_share + faults.drop_create_share,
        0.0
    );
    assert!(faults.latency.is_none() && faults.rate_limit.is_none());
    let all = Faults {
        latency: Some(Latency::between(
            Duration::from_millis(1),
            Duration::from_millis(9),
        )),
        server_error_share: 0.25,
        too_many_requests_share: 0.5,
        retry_after_seconds: 4,
        rate_limit: Some(RateLimit::per_key(5, Duration::from_secs(10))),
        drop_create_share: 0.75,
        rejected_users: vec!["user_gone".into()],
    };
    let text = serde_json::to_string(&all).unwrap();
    assert_eq!(serde_json::from_str::<Faults>(&text).unwrap(), all);
    assert_eq!(
        serde_json::from_str::<Faults>("{}").unwrap(),
        Faults::default()
    );
}

#[tokio::test]
async fn creates_for_a_rejected_user_are_refused_and_make_no_token() {
    let sim = sim_with(Faults {
        rejected_users: vec!["user_gone".into()],
        ..Faults::default()
    })
    .await;
    let answer = client()
        .post(format!("{}/actor_tokens", sim.api_url()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"user_id": "user_gone", "actor": {"sub": "user_a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "form_param_value_invalid");
    assert_eq!(body["errors"][0]["meta"]["param_name"], "user_id");
    assert!(sim.tokens().is_empty());
    // Other users are served as usual.
    let answer = client()
        .post(format!("{}/actor_tokens", sim.api_url()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"user_id": "user_here", "actor": {"sub": "user_a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
