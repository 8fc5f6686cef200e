//! The Clerk client against the Clerk simulator (`clerk-sim`), and against a raw scripted
//! HTTP server where a test needs to see the exact request or to break the answer in ways
//! the simulator does not.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_token_operator::clerk::{
    ActorTokenStatus, ClerkClient, ClerkError, ClientOptions, ClientPool, KeyEnvironment,
    NewActorToken, RateLimit, RetryPolicy, RevokeOutcome, SecretKey,
};
use clerk_sim::{Faults, Latency, SimConfig, Simulator, TokenStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "sk_test_ClientTestKEYsecret0123";
const OTHER_KEY: &str = "sk_test_NotKnownToTheSimulatorKEY";

fn key() -> SecretKey {
    SecretKey::parse(KEY).unwrap()
}

/// Fast retries, so the tests run quickly, but the same shape as the defaults.
fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 4,
            total_budget: Duration::from_secs(5),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(3),
        },
        // These tests measure the limiter by letting it hold calls back.
        max_rate_limit_wait: Duration::from_secs(30),
    }
}

/// High enough that the client's own limiter never holds a test back.
const UNTHROTTLED: RateLimit = RateLimit {
    requests: 10_000,
    period: Duration::from_secs(1),
};

async fn sim(faults: Faults) -> Simulator {
    clerk_sim::start(SimConfig {
        secret_keys: vec![KEY.to_owned()],
        faults,
        seed: Some(7),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(api_url: &str, options: ClientOptions) -> ClerkClient {
    ClerkClient::new(api_url, key(), UNTHROTTLED, options).unwrap()
}

fn request(user: &str) -> NewActorToken {
    let mut actor = serde_json::Map::new();
    actor.insert("sub".into(), json!("user_support_agent"));
    actor.insert(
        "ticket".into(),
        json!({"id": 4711, "reason": "customer asked"}),
    );
    NewActorToken {
        user_id: user.to_owned(),
        actor,
        expires_in_seconds: 900,
        session_max_duration_in_seconds: 600,
    }
}

/// Every way a credential of these tests could show up in a rendering.
fn assert_no_credentials(shown: &str, extra: &[&str]) {
    for secret in [
        KEY,
        OTHER_KEY,
        "ClientTestKEYsecret",
        "NotKnownToTheSimulatorKEY",
    ]
    .iter()
    .chain(extra)
    {
        assert!(!shown.contains(secret), "{secret:?} shown in {shown}");
    }
}

#[tokio::test]
async fn create_sends_the_spec_body_and_parses_the_answer() {
    let sim = sim(Faults::none()).await;
    let client = client(&sim.api_url(), options());
    let issued = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap();

    let tokens = sim.tokens();
    assert_eq!(tokens.len(), 1);
    let recorded = &tokens[0];
    assert_eq!(recorded.id, issued.id);
    assert_eq!(recorded.user_id, "user_target");
    assert_eq!(
        recorded.actor,
        json!({"sub": "user_support_agent", "ticket": {"id": 4711, "reason": "customer asked"}})
    );
    assert_eq!(recorded.expires_in_seconds, 900);
    assert_eq!(recorded.session_max_duration_in_seconds, 600);
    assert_eq!(recorded.status, TokenStatus::Pending);

    assert_eq!(issued.status, ActorTokenStatus::Pending);
    assert_eq!(issued.user_id, "user_target");
    assert_eq!(issued.token.expose(), recorded.token);
    assert_eq!(issued.url.expose(), recorded.url);
    assert_eq!(issued.created_at.as_second(), recorded.created_at);
    assert_eq!(issued.updated_at.as_second(), recorded.updated_at);

    let stats = sim.stats();
    assert_eq!(stats.create.total, 1);
    assert_eq!(stats.api_versions.get("2026-05-12"), Some(&1));
    assert_eq!(stats.api_versions.len(), 1);

    assert_no_credentials(
        &format!("{issued:?} {client:?}"),
        &[&recorded.token, &recorded.url],
    );
}

#[tokio::test]
async fn requests_carry_the_auth_version_and_agent_headers() {
    let server = ScriptedServer::start(vec![
        Step::Answer(http_answer(200, &created_body("act_hdr"))),
        Step::Answer(http_answer(200, &revoked_body("act_hdr"))),
    ])
    .await;
    // A trailing slash on the base URL must not double the slash in the path.
    let client = client(&format!("{}/v1/", server.base_url()), options());
    client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap();
    assert_eq!(
        client.revoke_actor_token("act_hdr").await.unwrap(),
        RevokeOutcome::Revoked
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for (req, path) in seen
        .iter()
        .zip(["/v1/actor_tokens", "/v1/actor_tokens/act_hdr/revoke"])
    {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, path);
        assert_eq!(
            req.header("authorization").as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(
            req.header("clerk-api-version").as_deref(),
            Some("2026-05-12")
        );
        assert_eq!(
            req.header("user-agent").as_deref(),
            Some(&*format!(
                "actor-token-operator/{}",
                env!("CARGO_PKG_VERSION")
            ))
        );
    }
    let create = &seen[0];
    assert_eq!(
        create.header("content-type").as_deref(),
        Some("application/json")
    );
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body,
        json!({
            "user_id": "user_target",
            "actor": {"sub": "user_support_agent", "ticket": {"id": 4711, "reason": "customer asked"}},
            "expires_in_seconds": 900,
            "session_max_duration_in_seconds": 600,
        })
    );
    assert!(seen[1].body.is_empty(), "revoke sends no body");
}

#[tokio::test]
async fn revoke_reports_revoked_then_not_pending_then_not_found() {
    let sim = sim(Faults::none()).await;
    let client = client(&sim.api_url(), options());
    let issued = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap();

    assert_eq!(
        client.revoke_actor_token(&issued.id).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(sim.token(&issued.id).unwrap().status, TokenStatus::Revoked);
    assert!(sim.live_tokens().is_empty());
    assert_eq!(
        client.revoke_actor_token(&issued.id).await.unwrap(),
        RevokeOutcome::NotPending
    );

    // A token someone already signed in with can't be revoked either.
    let used = client
        .create_actor_token(&request("user_other"))
        .await
        .unwrap();
    sim.accept(&used.id).unwrap();
    assert_eq!(
        client.revoke_actor_token(&used.id).await.unwrap(),
        RevokeOutcome::NotPending
    );

    assert_eq!(
        client
            .revoke_actor_token("act_does_not_exist")
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
    // An ID with path characters stays one segment: still just an unknown token.
    assert_eq!(
        client
            .revoke_actor_token("x/../../actor_tokens")
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
    let stats = sim.stats();
    assert_eq!(stats.revoke.total, 5);
    assert_eq!(stats.revoke.count(404), 2);
    assert_eq!(stats.other.total, 0);
}

#[tokio::test]
async fn an_unknown_key_is_unauthorized_and_not_retried() {
    let sim = sim(Faults::none()).await;
    let client = ClerkClient::new(
        &sim.api_url(),
        SecretKey::parse(OTHER_KEY).unwrap(),
        UNTHROTTLED,
        options(),
    )
    .unwrap();
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert_eq!(err, ClerkError::Unauthorized { status: 401 });
    assert_eq!(err.reason(), "ClerkUnauthorized");
    assert!(!err.is_final());
    assert_no_credentials(&format!("{err} {err:?}"), &[]);

    let err = client.revoke_actor_token("act_x").await.unwrap_err();
    assert_eq!(err, ClerkError::Unauthorized { status: 401 });
    assert_eq!(sim.stats().create.total, 1);
    assert_eq!(sim.stats().revoke.total, 1);
    assert!(sim.tokens().is_empty());
}

#[tokio::test]
async fn a_request_clerk_refuses_is_rejected_with_its_code_and_message() {
    let sim = sim(Faults::none()).await;
    let client = client(&sim.api_url(), options());
    let mut bad = request("user_target");
    bad.actor.remove("sub");
    let err = client.create_actor_token(&bad).await.unwrap_err();
    assert_eq!(
        err,
        ClerkError::Rejected {
            status: 422,
            code: "form_param_missing".into(),
            message: "actor.sub is missing.".into(),
        }
    );
    assert!(err.is_final());
    assert_eq!(err.reason(), "ClerkRejected");
    assert_eq!(sim.stats().create.total, 1, "a rejection is not retried");
    assert!(sim.tokens().is_empty());
}

#[tokio::test]
async fn persistent_server_errors_end_as_unavailable_after_bounded_retries() {
    let sim = sim(Faults {
        server_error_share: 1.0,
        ..Faults::none()
    })
    .await;
    let client = client(&sim.api_url(), options());
    let started = Instant::now();
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClerkError::Unavailable {
                status: Some(500 | 502 | 503),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "ClerkUnavailable");
    assert_eq!(sim.stats().create.total, 4, "max_attempts");
    assert!(started.elapsed() < Duration::from_secs(5));

    let err = client.revoke_actor_token("act_x").await.unwrap_err();
    assert!(matches!(err, ClerkError::Unavailable { .. }), "{err:?}");
    assert_eq!(sim.stats().revoke.total, 4);
    assert!(sim.tokens().is_empty());
}

#[tokio::test]
async fn retries_stop_when_the_time_budget_is_spent() {
    let sim = sim(Faults {
        server_error_share: 1.0,
        latency: Some(Latency::fixed(Duration::from_millis(100))),
        ..Faults::none()
    })
    .await;
    let mut opts = options();
    opts.retry.max_attempts = 1_000;
    opts.retry.total_budget = Duration::from_millis(600);
    let client = client(&sim.api_url(), opts);
    let started = Instant::now();
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, ClerkError::Unavailable { .. }), "{err:?}");
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    let attempts = sim.stats().create.total;
    assert!((2..=7).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn occasional_server_errors_are_retried_into_exactly_one_token_each() {
    let sim = sim(Faults {
        server_error_share: 0.5,
        ..Faults::none()
    })
    .await;
    let mut opts = options();
    opts.retry.max_attempts = 12;
    let client = client(&sim.api_url(), opts);
    let mut ids = Vec::new();
    for n in 0..8 {
        let issued = client
            .create_actor_token(&request(&format!("user_{n}")))
            .await
            .unwrap();
        ids.push(issued.id);
    }
    let live: Vec<String> = sim.live_tokens().into_iter().map(|t| t.id).collect();
    assert_eq!(live, ids, "one live token per create, no strays");
    let stats = sim.stats();
    assert_eq!(stats.create.succeeded(), 8);
    assert!(
        stats.create.total > 8,
        "the seed should have produced some 5xx: {stats:?}"
    );
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    // Clerk's own limit shape, at one request per 2 s window for this key.
    let sim = sim(Faults {
        rate_limit: Some(clerk_sim::RateLimit::per_key(1, Duration::from_secs(2))),
        ..Faults::none()
    })
    .await;
    let client = client(&sim.api_url(), options());
    client.create_actor_token(&request("user_a")).await.unwrap();
    let started = Instant::now();
    client.create_actor_token(&request("user_b")).await.unwrap();
    let waited = started.elapsed();
    let stats = sim.stats();
    assert_eq!(stats.create.count(429), 1, "{stats:?}");
    assert_eq!(stats.create.succeeded(), 2);
    // Retry-After was 2 s (whole seconds left in the window, rounded up).
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert_eq!(sim.live_tokens().len(), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_client_waits_goes_back_to_the_caller() {
    let sim = sim(Faults {
        too_many_requests_share: 1.0,
        retry_after_seconds: 60,
        ..Faults::none()
    })
    .await;
    let client = client(&sim.api_url(), options());
    let started = Instant::now();
    let err = client
        .create_actor_token(&request("user_a"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ClerkError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(err.reason(), "ClerkRateLimited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(sim.stats().create.total, 1);
}

#[tokio::test]
async fn a_dropped_create_is_answer_lost_and_not_retried() {
    let sim = sim(Faults {
        drop_create_share: 1.0,
        ..Faults::none()
    })
    .await;
    let client = client(&sim.api_url(), options());
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClerkError::AnswerLost { .. }), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(err.reason(), "ClerkAnswerLost");
    let stats = sim.stats();
    assert_eq!(stats.create.total, 1, "never retried: {stats:?}");
    assert_eq!(stats.create.dropped, 1);
    // The token exists at Clerk although no one learnt its ID.
    assert_eq!(sim.live_tokens().len(), 1);
    assert_no_credentials(
        &format!("{err} {err:?}"),
        &[&sim.tokens()[0].token, &sim.tokens()[0].url],
    );
}

#[tokio::test]
async fn a_create_that_times_out_is_answer_lost_and_not_retried() {
    let sim = sim(Faults {
        latency: Some(Latency::fixed(Duration::from_millis(1500))),
        ..Faults::none()
    })
    .await;
    let mut opts = options();
    opts.request_timeout = Duration::from_millis(300);
    let client = client(&sim.api_url(), opts);
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClerkError::AnswerLost { .. }), "{err:?}");
    assert_eq!(sim.stats().create.total, 1);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client(&format!("http://{addr}/v1"), options());
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClerkError::Unavailable { status: None, .. }),
        "{err:?}"
    );
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn a_revoke_whose_answer_was_lost_is_retried() {
    let server = ScriptedServer::start(vec![
        Step::Close,
        Step::Answer(http_answer(400, &not_revocable_body())),
    ])
    .await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    assert_eq!(
        client.revoke_actor_token("act_lost").await.unwrap(),
        RevokeOutcome::NotPending
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_gateway_timeout_on_create_is_answer_lost() {
    let server =
        ScriptedServer::start(vec![Step::Answer(http_answer(504, "gateway timeout"))]).await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClerkError::AnswerLost { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 1, "never retried");
}

#[tokio::test]
async fn a_cut_off_success_answer_is_answer_lost() {
    let body = created_body("act_cut");
    let mut answer = http_answer(200, &body);
    answer.truncate(answer.len() - body.len() / 2);
    let server = ScriptedServer::start(vec![Step::AnswerThenClose(answer)]).await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClerkError::AnswerLost { .. }), "{err:?}");
    assert_no_credentials(&format!("{err} {err:?}"), &["SIMTOKENSECRET"]);
    assert_eq!(server.requests().len(), 1);
}

/// A body far past any answer of Clerk's, whose credentials would be quoted if it were read.
fn oversized_body() -> String {
    format!(
        r#"{{"id":"act_big","padding":"{}"}}"#,
        "x".repeat(200 * 1024)
    )
}

#[tokio::test]
async fn an_oversized_create_answer_is_not_read_and_counts_as_lost() {
    for answer in [
        http_answer(200, &oversized_body()),
        // No Content-Length: read until the cap, not until the server stops.
        http_answer_unsized(200, &oversized_body()),
    ] {
        let server = ScriptedServer::start(vec![Step::Answer(answer)]).await;
        let client = client(&format!("{}/v1", server.base_url()), options());
        let err = client
            .create_actor_token(&request("user_target"))
            .await
            .unwrap_err();
        match &err {
            ClerkError::AnswerLost { detail } => {
                assert!(detail.contains("larger than 64 KiB"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        assert!(err.outcome_unknown(), "a token may exist");
        assert_eq!(server.requests().len(), 1, "never retried");
    }
}

#[tokio::test]
async fn an_oversized_revoke_answer_is_a_transport_error_and_retried() {
    let server = ScriptedServer::start(vec![
        Step::Answer(http_answer(200, &oversized_body())),
        Step::Answer(http_answer(200, &revoked_body("act_1"))),
    ])
    .await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    assert_eq!(
        client.revoke_actor_token("act_1").await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(server.requests().len(), 2);
}

fn session_json(id: &str, actor: Value) -> Value {
    json!({
        "object": "session", "id": id, "user_id": "user_target", "client_id": "client_1",
        "actor": actor, "status": "active", "last_active_at": 1, "expire_at": 2,
        "abandon_at": 3, "updated_at": 1, "created_at": 1,
    })
}

#[tokio::test]
async fn active_sessions_are_listed_page_by_page() {
    let first: Vec<Value> = (0..100)
        .map(|i| session_json(&format!("sess_{i}"), json!(null)))
        .collect();
    let second = vec![session_json(
        "sess_100",
        json!({"sub": "user_support_agent"}),
    )];
    let server = ScriptedServer::start(vec![
        Step::Answer(http_answer(200, &Value::Array(first).to_string())),
        Step::Answer(http_answer(200, &Value::Array(second).to_string())),
    ])
    .await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    let sessions = client.list_active_sessions("user_target").await.unwrap();
    assert_eq!(sessions.len(), 101);
    assert_eq!(sessions[100].id, "sess_100");
    assert_eq!(
        sessions[100].actor,
        Some(json!({"sub": "user_support_agent"}))
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].path,
        "/v1/sessions?user_id=user_target&status=active&limit=100&offset=0"
    );
    assert_eq!(
        seen[1].path,
        "/v1/sessions?user_id=user_target&status=active&limit=100&offset=100"
    );
}

#[tokio::test]
async fn ending_a_session_reports_ended_not_active_or_unknown() {
    let error_body = |code: &str| {
        json!({"errors": [{"message": "m", "long_message": "m", "code": code}]}).to_string()
    };
    let server = ScriptedServer::start(vec![
        Step::Answer(http_answer(
            200,
            &session_json("sess_1", json!(null)).to_string(),
        )),
        Step::Answer(http_answer(400, &error_body("session_not_active"))),
        Step::Answer(http_answer(404, &error_body("resource_not_found"))),
    ])
    .await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    use actor_token_operator::clerk::SessionRevokeOutcome;
    for expected in [
        SessionRevokeOutcome::Revoked,
        SessionRevokeOutcome::NotActive,
        SessionRevokeOutcome::NotFound,
    ] {
        assert_eq!(client.revoke_session("sess_1").await.unwrap(), expected);
    }
    let seen = server.requests();
    assert!(
        seen.iter()
            .all(|r| r.method == "POST" && r.path == "/v1/sessions/sess_1/revoke")
    );
}

#[tokio::test]
async fn an_unusable_success_answer_keeps_the_token_id() {
    let body = r#"{"object":"actor_token","id":"act_partial","status":"pending","user_id":"u","actor":{"sub":"a"},"created_at":1,"updated_at":1}"#;
    let server = ScriptedServer::start(vec![Step::Answer(http_answer(200, body))]).await;
    let client = client(&format!("{}/v1", server.base_url()), options());
    let err = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClerkError::InvalidAnswer { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.token_id(), Some("act_partial"));
    assert!(err.outcome_unknown());
    assert_eq!(server.requests().len(), 1, "never retried");
}

#[tokio::test]
async fn the_limiter_keeps_a_burst_under_the_servers_rate_limit() {
    // The simulator counts fixed 2 s windows of 20 requests per key.
    let sim = sim(Faults {
        rate_limit: Some(clerk_sim::RateLimit::per_key(20, Duration::from_secs(2))),
        ..Faults::none()
    })
    .await;
    let mut opts = options();
    // No retries: a single 429 would fail the test.
    opts.retry = RetryPolicy::none();
    let pool = ClientPool::new(opts).unwrap();
    let limit = RateLimit {
        requests: 20,
        period: Duration::from_secs(2),
    };
    // Two clients of the same instance and key, under two spellings of the URL: one limiter.
    let a = pool
        .client("instance", &sim.api_url(), &key(), Some(limit))
        .unwrap();
    let b = pool
        .client(
            "instance",
            &format!("{}/", sim.api_url()),
            &key(),
            Some(limit),
        )
        .unwrap();
    assert_eq!(pool.keys(), vec![key().fingerprint()]);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..45 {
        let client = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            client
                .create_actor_token(&request(&format!("user_{n}")))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    assert_eq!(stats.create.count(429), 0, "{stats:?}");
    assert_eq!(stats.create.succeeded(), 45);
    // 45 requests at under 20 per 2 s can't take less than two full windows.
    assert!(elapsed >= Duration::from_secs(4), "{elapsed:?}");
}

#[tokio::test]
async fn without_the_shared_limiter_the_same_burst_is_refused() {
    // The control for the test above: the simulator's limit does bite.
    let sim = sim(Faults {
        rate_limit: Some(clerk_sim::RateLimit::per_key(20, Duration::from_secs(2))),
        ..Faults::none()
    })
    .await;
    let mut opts = options();
    opts.retry = RetryPolicy::none();
    let client = client(&sim.api_url(), opts);
    let mut tasks = Vec::new();
    for n in 0..45 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .create_actor_token(&request(&format!("user_{n}")))
                .await
        }));
    }
    let mut limited = 0;
    for task in tasks {
        if let Err(ClerkError::RateLimited { retry_after }) = task.await.unwrap() {
            assert!(retry_after.is_some());
            limited += 1;
        }
    }
    assert!(limited > 0);
}

#[tokio::test]
async fn each_instance_keeps_its_own_limit_and_clerks_limit_holds_for_the_key() {
    let pool = ClientPool::new(options()).unwrap();
    let dev = pool
        .client("a", "https://api.clerk.com/v1", &key(), None)
        .unwrap();
    assert_eq!(
        dev.rate_limit(),
        RateLimit::clerk_default(KeyEnvironment::Development)
    );
    let live = SecretKey::parse("sk_live_ProductionKEYsecret").unwrap();
    let prod = pool
        .client("p", "https://api.clerk.com/v1", &live, None)
        .unwrap();
    assert_eq!(prod.rate_limit().requests, 1000);
    assert_eq!(prod.key_rate_limit().requests, 1000);
    assert_eq!(pool.keys().len(), 2);

    // A second instance of the same key with a tighter limit: its own, not the first one's.
    let tighter = RateLimit {
        requests: 5,
        period: Duration::from_secs(1),
    };
    let b = pool
        .client("b", "https://api.clerk.com/v1/", &key(), Some(tighter))
        .unwrap();
    assert_eq!(b.rate_limit(), tighter);
    assert_eq!(dev.rate_limit().requests, 100, "a's limit is a's");
    // Nor can one loosen the key: Clerk's limit for it stays whatever an instance says.
    let looser = RateLimit {
        requests: 5000,
        period: Duration::from_secs(1),
    };
    let c = pool
        .client("c", "https://api.clerk.com/v1", &key(), Some(looser))
        .unwrap();
    assert_eq!(c.rate_limit(), looser);
    for client in [&dev, &b, &c] {
        assert_eq!(
            client.key_rate_limit(),
            RateLimit::clerk_default(KeyEnvironment::Development)
        );
    }
    // An instance changing its own limit changes it for its clients to come.
    let again = pool
        .client("a", "https://api.clerk.com/v1", &key(), Some(tighter))
        .unwrap();
    assert_eq!(again.rate_limit(), tighter);

    assert!(
        pool.client(
            "a",
            "https://api.clerk.com/v1",
            &key(),
            Some(RateLimit {
                requests: 0,
                period: Duration::from_secs(1)
            })
        )
        .is_err()
    );
    assert_no_credentials(
        &format!("{pool:?} {dev:?} {again:?}"),
        &["ProductionKEYsecret"],
    );
}

#[tokio::test]
async fn a_tight_instance_limit_holds_that_instance_only_and_says_when_to_come_back() {
    let sim = sim(Faults::none()).await;
    let pool = ClientPool::new(ClientOptions {
        max_rate_limit_wait: Duration::from_millis(200),
        ..options()
    })
    .unwrap();
    let daily = RateLimit {
        requests: 1,
        period: Duration::from_secs(86400),
    };
    let throttled = pool
        .client("throttled", &sim.api_url(), &key(), Some(daily))
        .unwrap();
    let other = pool.client("other", &sim.api_url(), &key(), None).unwrap();
    throttled
        .create_actor_token(&request("user_first"))
        .await
        .unwrap();
    let started = Instant::now();
    let err = throttled
        .create_actor_token(&request("user_second"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "no long wait");
    match &err {
        ClerkError::Throttled {
            ready_in,
            limit,
            key_wide: false,
        } => {
            assert!(*ready_in > Duration::from_secs(86000), "{ready_in:?}");
            assert_eq!(*limit, daily);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.reason(), "Throttled");
    // Nothing was sent for it, and the other instance of the same key goes on.
    assert_eq!(sim.stats().create.total, 1);
    for n in 0..5 {
        other
            .create_actor_token(&request(&format!("user_{n}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn no_rendering_shows_a_credential() {
    let sim = sim(Faults::none()).await;
    let client = client(&sim.api_url(), options());
    let issued = client
        .create_actor_token(&request("user_target"))
        .await
        .unwrap();
    let token = issued.token.expose().to_owned();
    let url = issued.url.expose().to_owned();
    let key = key();
    let shown = format!(
        "{key:?} {key:#?} {:?} {issued:?} {issued:#?} {:?} {:?} {client:?}",
        key.fingerprint(),
        issued.token,
        issued.url
    );
    assert_no_credentials(&shown, &[&token, &url]);
    let errors = [
        SecretKey::parse(&format!("{KEY} x"))
            .unwrap_err()
            .to_string(),
        SecretKey::parse("pk_test_ClientTestKEYsecret")
            .unwrap_err()
            .to_string(),
    ];
    assert_no_credentials(&errors.join(" "), &[]);
}

// ---------------------------------------------------------------------------------------
// A scripted HTTP/1.1 server: one request per connection, answered as the script says.

#[derive(Clone, Debug)]
enum Step {
    /// Send these bytes (a whole HTTP answer) and close.
    Answer(Vec<u8>),
    /// Send these bytes (which may be a cut-off answer) and close.
    AnswerThenClose(Vec<u8>),
    /// Read the request, then close without answering.
    Close,
}

#[derive(Clone, Debug)]
struct SeenRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl SeenRequest {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

struct ScriptedServer {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    async fn start(script: Vec<Step>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            for step in script {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                log.lock().unwrap().push(request);
                match step {
                    Step::Answer(bytes) | Step::AnswerThenClose(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    Step::Close => {}
                }
                drop(stream);
            }
        });
        ScriptedServer { addr, seen, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<SeenRequest> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(SeenRequest {
        method,
        path,
        headers,
        body,
    })
}

fn http_answer(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An answer whose end is the connection's close: no Content-Length to check up front.
fn http_answer_unsized(status: u16, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{body}")
        .into_bytes()
}

fn created_body(id: &str) -> String {
    json!({
        "object": "actor_token", "id": id, "status": "pending", "user_id": "user_target",
        "actor": {"sub": "user_support_agent"}, "token": "SIMTOKENSECRET",
        "url": "https://accounts.example/tickets/accept?ticket=SIMTOKENSECRET",
        "created_at": 1_778_580_000, "updated_at": 1_778_580_000,
    })
    .to_string()
}

fn revoked_body(id: &str) -> String {
    json!({
        "object": "actor_token", "id": id, "status": "revoked", "user_id": "user_target",
        "actor": {"sub": "user_support_agent"},
        "created_at": 1_778_580_000, "updated_at": 1_778_580_005,
    })
    .to_string()
}

fn not_revocable_body() -> String {
    json!({"errors": [{"message": "cannot revoke", "long_message": "Actor token cannot be revoked because its status is revoked.", "code": "actor_token_cannot_be_revoked_code", "meta": {}}]}).to_string()
}
