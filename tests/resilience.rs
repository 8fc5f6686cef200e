//! The operator end to end when things go wrong: Clerk answering 429 and 5xx, a create whose
//! answer never arrives, the operator killed mid-create, two operators racing, and a tight
//! per-instance rate limit. Whatever happens, each request ends with exactly one live token,
//! the one it recorded and delivered; any other token is revoked or, when nobody can know
//! its ID, counted.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use actor_token_operator::{
    api::{ActorTokenRequestStatus, FINALIZER, Phase},
    clerk::SecretKey,
    reconcile::{
        decide::TokenToRevoke,
        records,
        secret::{Delivery, secret_for},
    },
};
use clerk_sim::{Faults, Latency, OpStats, RateLimit, SimConfig, TokenStatus};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::api::PostParams;
use serde_json::json;
use support::{
    Operator,
    env::{Env, KEY, WAIT, secret_text, settle},
};
use tokio::time::{Instant, sleep};

/// Requests named `{prefix}-{i}`, each impersonating its own user, so that every token in
/// the simulator can be traced to one request.
fn requests(prefix: &str, users: &str, n: usize) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| (format!("{prefix}-{i}"), format!("{users}{i}")))
        .collect()
}

async fn create_all(env: &Env, requests: &[(String, String)]) {
    for (name, user) in requests {
        env.create_request(name, json!({ "userId": user })).await;
    }
}

async fn wait_all_issued(env: &Env, requests: &[(String, String)]) {
    for (name, _) in requests {
        env.wait_phase(name, Phase::Issued).await;
    }
}

/// Answers the simulator gave (with any status) or dropped.
fn answered(op: &OpStats) -> u64 {
    op.by_status.values().sum::<u64>() + op.dropped
}

/// What users rely on, for every request: it is `Issued`, exactly one token of its user is
/// live in Clerk, and that token is the one in `status.tokenId` and in its Secret. Also, no
/// live token anywhere is one that no request recorded. Returns each request's token ID.
async fn assert_one_live_token_each(
    env: &Env,
    requests: &[(String, String)],
) -> BTreeMap<String, String> {
    let tokens = env.sim.tokens();
    let mut recorded = BTreeMap::new();
    for (name, user) in requests {
        let request = env.requests.get(name).await.unwrap();
        let status = request.status.clone().unwrap_or_default();
        assert_eq!(status.phase, Some(Phase::Issued), "{name}");
        let token_id = status
            .token_id
            .clone()
            .unwrap_or_else(|| panic!("{name}: no token recorded"));
        let live: Vec<_> = tokens
            .iter()
            .filter(|t| &t.user_id == user && t.status == TokenStatus::Pending)
            .collect();
        let summary: Vec<_> = tokens
            .iter()
            .filter(|t| &t.user_id == user)
            .map(|t| (t.id.as_str(), t.status))
            .collect();
        assert_eq!(
            live.len(),
            1,
            "{name}: {} live tokens for {user}, recorded {token_id}; all: {summary:?}",
            live.len()
        );
        assert_eq!(
            live[0].id, token_id,
            "{name}: the live token is not the recorded one; all: {summary:?}"
        );
        let secret = env.secrets.get(name).await.unwrap();
        assert_eq!(
            secret_text(&secret, "tokenId"),
            token_id,
            "{name}: the Secret holds another token"
        );
        assert_eq!(
            secret_text(&secret, "url"),
            live[0].url,
            "{name}: the Secret's link is not the live token's"
        );
        assert_eq!(secret_text(&secret, "token"), live[0].token, "{name}");
        recorded.insert(name.clone(), token_id);
    }
    let recorded_ids: BTreeSet<&String> = recorded.values().collect();
    for token in env.sim.live_tokens() {
        assert!(
            recorded_ids.contains(&token.id),
            "live token {} (user {}) is recorded by no request",
            token.id,
            token.user_id
        );
    }
    recorded
}

/// Every token the simulator made that no request recorded has been revoked.
fn assert_unrecorded_tokens_revoked(env: &Env, recorded: &BTreeMap<String, String>) -> usize {
    let recorded: BTreeSet<&String> = recorded.values().collect();
    let extra: Vec<_> = env
        .sim
        .tokens()
        .into_iter()
        .filter(|t| !recorded.contains(&t.id))
        .collect();
    for token in &extra {
        assert_eq!(
            token.status,
            TokenStatus::Revoked,
            "unrecorded token {} of {} is not revoked",
            token.id,
            token.user_id
        );
    }
    extra.len()
}

/// Clerk answering most calls with 429 or 5xx (a fixed seed): every request still ends with
/// one live token, its own. Fails today in about half the runs: a single operator mints a
/// token on a view older than its own last status write, the record gets a 409, and the
/// revoke of that token, refused by the same faults, is dropped (`revoke(..).ok()` in
/// `apply::issue`); see `a_race_losers_token_is_revoked_even_when_the_first_revoke_is_refused`.
#[tokio::test]
async fn rate_limits_and_server_errors_end_in_one_issued_token_per_request() {
    let faults = Faults {
        server_error_share: 0.5,
        too_many_requests_share: 0.3,
        retry_after_seconds: 1,
        ..Faults::default()
    };
    let mut env = Env::start_with_sim(
        "res-faults",
        SimConfig {
            faults,
            seed: Some(7),
            ..SimConfig::default()
        },
    )
    .await;
    let requests = requests("faulty", "user_2res1", 5);
    let started = Instant::now();
    create_all(&env, &requests).await;
    wait_all_issued(&env, &requests).await;
    println!(
        "5 requests issued through 429s and 5xx in {:?}",
        started.elapsed()
    );

    let create = env.sim.stats().create;
    println!("creates: {create:?}");
    assert!(create.count(429) > 0, "no 429 was injected: {create:?}");
    assert!(
        create.count(500) + create.count(502) + create.count(503) > 0,
        "no 5xx was injected: {create:?}"
    );
    let recorded = assert_one_live_token_each(&env, &requests).await;
    // 429s and 5xx create nothing: a second token for a request could only come from a
    // retry gone wrong, and must not be left live.
    assert_unrecorded_tokens_revoked(&env, &recorded);
    let statuses = env.requests.list(&Default::default()).await.unwrap();
    for request in statuses {
        let lost = request.status.and_then(|s| s.lost_tokens).unwrap_or(0);
        assert_eq!(lost, 0, "a 429 or 5xx counted as a lost token");
    }
    env.assert_no_credential_leaked().await;
}

/// Clerk makes a token but its answer never arrives: the operator can't name that token, so
/// it counts it (status, Warning event, metric), once per lost answer, and issues another.
#[tokio::test]
async fn a_create_whose_answer_is_lost_is_counted_and_a_new_token_issued() {
    let faults = Faults {
        drop_create_share: 1.0,
        ..Faults::default()
    };
    let mut env = Env::start_with("res-lost", faults).await;
    env.create_request("lost-1", json!({ "userId": "user_2resLost" }))
        .await;
    support::eventually(WAIT, "a create to be dropped", || async {
        (env.sim.stats().create.dropped >= 1).then_some(())
    })
    .await;
    env.sim.set_faults(Faults::default());

    let issued = env.wait_phase("lost-1", Phase::Issued).await;
    let recorded = issued
        .status
        .as_ref()
        .and_then(|s| s.token_id.clone())
        .expect("token ID recorded");
    let recorded = &recorded;
    let token = env.sim.token(recorded).expect("the recorded token exists");
    assert_eq!(
        (token.user_id.as_str(), token.status),
        ("user_2resLost", TokenStatus::Pending)
    );
    let secret = env.secrets.get("lost-1").await.unwrap();
    assert_eq!(
        secret_text(&secret, "tokenId"),
        *recorded,
        "the Secret holds another token"
    );
    assert_eq!(secret_text(&secret, "url"), token.url);
    let dropped = env.sim.stats().create.dropped;

    // The lost token is live, unrecorded, and accounted for: in the status, an event and the
    // metric, once per dropped answer.
    let lost: Vec<_> = env
        .sim
        .tokens()
        .into_iter()
        .filter(|t| &t.id != recorded)
        .collect();
    assert_eq!(
        lost.len() as u64,
        dropped,
        "tokens other than the recorded one: {lost:?}"
    );
    for token in &lost {
        assert_eq!(
            (token.user_id.as_str(), token.status),
            ("user_2resLost", TokenStatus::Pending),
            "{token:?}"
        );
    }
    let lost_tokens = issued
        .status
        .as_ref()
        .and_then(|s| s.lost_tokens)
        .unwrap_or(0);
    assert_eq!(u64::from(lost_tokens), dropped, "status.lostTokens");
    let events: Vec<_> = env
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TokenAnswerLost"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lost-1"))
        .collect();
    assert!(!events.is_empty(), "no TokenAnswerLost event");
    assert!(
        events.iter().all(|e| e.type_.as_deref() == Some("Warning")),
        "{events:?}"
    );
    let metric = env.metric("actor_token_operator_tokens_lost_total").await;
    assert_eq!(metric, Some(dropped as f64), "the tokens_lost metric");
    env.assert_no_credential_leaked().await;
}

/// SIGKILL while a create waits in Clerk's latency, three times: the simulator makes nothing
/// for a client that has gone (checked after each kill), and the restarted operator ends each
/// request with exactly one live token, its own.
#[tokio::test]
async fn an_operator_killed_mid_create_leaves_no_second_live_token() {
    let faults = Faults {
        latency: Some(Latency::between(
            Duration::from_millis(300),
            Duration::from_millis(800),
        )),
        ..Faults::default()
    };
    let mut env = Env::start_with("res-kill", faults).await;
    // One reconcile at a time: when a create is in flight at the simulator, no other request
    // is between Clerk's answer and its status write (the loss window no operator can close:
    // Clerk can't list tokens), so every kill below lands where nothing can be lost.
    env.operator = Some(env.spawn_operator(&["--concurrency", "1"]));
    let requests = requests("kill", "user_2resKill", 5);
    create_all(&env, &requests).await;

    let mut retired: Vec<Operator> = Vec::new();
    let mut seen = 0;
    const KILLS: u64 = 3;
    for kill in 1..=KILLS {
        // A create received just now (polled every 10 ms) is in its 300–800 ms latency, before
        // the simulator has created anything.
        let deadline = Instant::now() + WAIT;
        loop {
            let create = env.sim.stats().create;
            if create.total > seen && create.total > answered(&create) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no create reached the simulator before kill {kill}"
            );
            sleep(Duration::from_millis(10)).await;
        }
        let mut operator = env.operator.take().unwrap();
        operator.kill();
        retired.push(operator);
        // A create the simulator went on with after its client had gone would show at the
        // end: as a live token no request recorded, and as an answer more than expected.
        seen = env.sim.stats().create.total;
        env.operator = Some(env.spawn_operator(&["--concurrency", "1"]));
    }

    let started = Instant::now();
    wait_all_issued(&env, &requests).await;
    println!("all issued {:?} after the last restart", started.elapsed());
    let create = env.sim.stats().create;
    assert_eq!(
        create.total - answered(&create),
        KILLS,
        "each kill interrupted one create: {create:?}"
    );
    let recorded = assert_one_live_token_each(&env, &requests).await;
    assert_unrecorded_tokens_revoked(&env, &recorded);
    for (i, operator) in retired.iter().enumerate() {
        env.assert_no_credential_in(
            &format!("the output of killed operator {}", i + 1),
            &operator.output(),
        );
    }
    env.assert_no_credential_leaked().await;
}

/// Two operator processes on one namespace: both mint for each request, one record wins, and
/// the other token is revoked.
#[tokio::test]
async fn two_operators_racing_leave_one_live_token_per_request() {
    let faults = Faults {
        latency: Some(Latency::between(
            Duration::from_millis(50),
            Duration::from_millis(250),
        )),
        ..Faults::default()
    };
    let mut env = Env::start_with("res-race", faults).await;
    let second = env.spawn_operator(&[]);
    // Both watching before the requests appear, so both act on each of them.
    env.operator().wait_ready().await;
    second.wait_ready().await;
    let requests = requests("race", "user_2resRace", 5);
    create_all(&env, &requests).await;
    wait_all_issued(&env, &requests).await;
    // Whatever either operator would still do about these requests, it has done.
    for (name, _) in &requests {
        settle(
            &env.requests,
            &[env.operator.as_ref().unwrap(), &second],
            name,
        )
        .await;
    }

    let recorded = assert_one_live_token_each(&env, &requests).await;
    let losers = assert_unrecorded_tokens_revoked(&env, &recorded);
    println!(
        "{} tokens minted, {losers} revoked after losing a race",
        env.sim.tokens().len()
    );
    assert!(
        losers > 0,
        "the two operators never raced: only {} tokens minted",
        env.sim.tokens().len()
    );
    env.assert_no_credential_in("the second operator's output", &second.output());
    env.assert_no_credential_leaked().await;
}

/// The loser of a race knows its token's ID, so it must see the token revoked even when Clerk
/// turns the first revoke away: here Clerk's limit (2 calls per 20 s) is spent by the two
/// creates, so the loser's revoke gets a 429 whose Retry-After is too long to wait in the
/// client.
#[tokio::test]
async fn a_race_losers_token_is_revoked_even_when_the_first_revoke_is_refused() {
    let faults = Faults {
        latency: Some(Latency::fixed(Duration::from_millis(500))),
        rate_limit: Some(RateLimit::per_key(2, Duration::from_secs(20))),
        ..Faults::default()
    };
    let mut env = Env::start_with("res-refused", faults).await;
    let second = env.spawn_operator(&[]);
    env.operator().wait_ready().await;
    second.wait_ready().await;
    let requests = requests("refused", "user_2resRefused", 1);
    create_all(&env, &requests).await;
    let issued = env.wait_phase("refused-1", Phase::Issued).await;
    let recorded = issued.status.and_then(|s| s.token_id).unwrap();
    // The second operator's create may still be on its way (500 ms of latency).
    support::eventually(WAIT, "both operators to have minted a token", || async {
        (env.sim.stats().create.succeeded() == 2).then_some(())
    })
    .await;

    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let unrevoked: Vec<_> = env
            .sim
            .tokens()
            .into_iter()
            .filter(|t| t.id != recorded && t.status != TokenStatus::Revoked)
            .map(|t| (t.id, t.status))
            .collect();
        if unrevoked.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let stats = env.sim.stats();
            let status = env
                .requests
                .get("refused-1")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            panic!(
                "the race loser's token {unrevoked:?} is still live 45 s after its revoke was refused, \
                 uncounted (lostTokens {:?}); revokes: {:?}",
                status.lost_tokens, stats.revoke
            );
        }
        sleep(Duration::from_millis(500)).await;
    }
    env.sim.set_faults(Faults::default());
    assert_one_live_token_each(&env, &requests).await;
    env.assert_no_credential_in("the second operator's output", &second.output());
    env.assert_no_credential_leaked().await;
}

/// One operator (A, played by this test) has minted a token and delivered it in the Secret,
/// the token's record, but not yet marked the request issued, when a second operator (B, the
/// real one) looks. B must take the Secret's token as the request's, neither minting another
/// nor revoking it under A; whatever order A's and B's status writes land in, the request ends
/// `Issued` with that one live token.
#[tokio::test]
async fn a_token_another_operator_has_delivered_is_adopted_not_minted_again() {
    let mut env = Env::start("res-deliver").await;
    // A and B share the sealing key, as two replicas do.
    let seal_key = env.seal_key().await;
    env.operator.take().unwrap().kill();
    let user = "user_2resDeliver";
    let name = "deliver-1";

    // A: a request with its finalizer, a token minted for it, its Secret written.
    let mut request = env.create_request(name, json!({ "userId": user })).await;
    request.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let request = env
        .requests
        .replace(name, &PostParams::default(), &request)
        .await
        .unwrap();
    let minted: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/actor_tokens", env.sim.api_url()))
        .bearer_auth(KEY)
        .json(&json!({ "user_id": user, "actor": { "sub": "user_2xyzSupport" }, "expires_in_seconds": 3600 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = env.sim.token(minted["id"].as_str().unwrap()).unwrap();
    let issued_at = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let expires_at = issued_at + SignedDuration::from_secs(3600);
    let key = Some(SecretKey::parse(KEY).unwrap().fingerprint());
    let seal = records::seal(
        &seal_key,
        &request,
        &TokenToRevoke {
            token_id: token.id.clone(),
            expires_at: Some(expires_at),
            key,
            seal: None,
        },
    );
    let delivery = Delivery {
        url: &token.url,
        token: &token.token,
        token_id: &token.id,
        issued_at,
        expires_at,
        key,
        seal: &seal,
    };
    env.secrets
        .create(&PostParams::default(), &secret_for(&request, &delivery))
        .await
        .unwrap();

    // B looks now, before A marks the request issued.
    let creates_before = env.sim.stats().create.total;
    env.start_operator();
    let adopted = env.wait_phase(name, Phase::Issued).await;
    assert_eq!(
        adopted.status.as_ref().unwrap().token_id.as_deref(),
        Some(token.id.as_str()),
        "B records the Secret's token"
    );

    // A goes on as `apply::issue` does: `Issued` at the version it read. B got there first,
    // so A's write must be refused rather than overwrite.
    let mut issued = request.clone();
    issued.status = Some(ActorTokenRequestStatus {
        phase: Some(Phase::Issued),
        token_id: Some(token.id.clone()),
        secret_name: Some(name.into()),
        issued_at: Some(Time(issued_at)),
        expires_at: Some(Time(expires_at)),
        ..Default::default()
    });
    let marked = env
        .requests
        .replace_status(name, &PostParams::default(), &issued)
        .await;
    assert!(marked.is_err(), "A's stale write must lose to B's");

    env.settle(name).await;
    assert_eq!(
        env.sim.stats().create.total,
        creates_before,
        "B minted a token for a request whose token was delivered"
    );
    assert_eq!(
        env.sim.token(&token.id).unwrap().status,
        TokenStatus::Pending
    );
    assert_one_live_token_each(&env, &[(name.to_string(), user.to_string())]).await;
    env.assert_no_credential_leaked().await;
}

/// `spec.rateLimit` of 5 per 2 s, and Clerk enforcing the same: 15 requests, not one 429.
#[tokio::test]
async fn the_instance_rate_limit_keeps_the_operator_under_clerks_limit() {
    let mut env = Env::start("res-limit").await;
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": {
            "apiUrl": env.sim.api_url(),
            "secretKeyRef": { "name": "clerk-key", "key": "secretKey" },
            "rateLimit": { "requests": 5, "period": "2s" }
        }
    }))
    .await;
    env.sim.set_faults(Faults {
        rate_limit: Some(RateLimit::per_key(5, Duration::from_secs(2))),
        ..Faults::default()
    });

    let requests = requests("limited", "user_2resLimit", 15);
    let started = Instant::now();
    create_all(&env, &requests).await;
    wait_all_issued(&env, &requests).await;
    let took = started.elapsed();
    let stats = env.sim.stats();
    println!("15 requests issued in {took:?}; creates {:?}", stats.create);

    assert_eq!(
        stats.create.count(429),
        0,
        "Clerk's limit was hit: {:?}",
        stats.create
    );
    assert_eq!(stats.revoke.count(429), 0, "{:?}", stats.revoke);
    assert!(stats.create.succeeded() >= 15);
    // 15 calls at no more than 4 per 2 s take at least 6 s: the limiter did hold them back.
    assert!(
        took >= Duration::from_secs(6),
        "15 creates in {took:?}: faster than the limit allows"
    );
    assert_one_live_token_each(&env, &requests).await;
    env.assert_no_credential_leaked().await;
}

/// The Secret is the token's record, so a token whose Secret can't be written must not stay
/// live; and a Secret the API server will always refuse must not make the operator mint
/// again and again. Here a ResourceQuota (its usage set by the test, as the quota controller
/// would) refuses every new Secret in the namespace: one token is minted and revoked, and the
/// request fails, saying what was refused.
#[tokio::test]
async fn a_secret_the_api_server_refuses_fails_the_request_after_one_token() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    use kube::Api;

    let mut env = Env::start("res-quota").await;
    // The operator's own Secret (its seal key) is made before the quota arrives.
    env.seal_key().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(env.client.clone(), &env.ns.name);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "no-more-secrets" },
        "spec": { "hard": { "count/secrets": "1" } }
    }))
    .unwrap();
    let mut quota = quotas.create(&PostParams::default(), &quota).await.unwrap();
    quota.status = serde_json::from_value(json!({
        "hard": { "count/secrets": "1" }, "used": { "count/secrets": "1" }
    }))
    .unwrap();
    quotas
        .replace_status("no-more-secrets", &PostParams::default(), &quota)
        .await
        .unwrap();

    let requests = requests("walled", "user_2resWalled", 1);
    create_all(&env, &requests).await;
    let user = &requests[0].1;
    let failed = env.wait_phase("walled-1", Phase::Failed).await;
    let ready = support::env::ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "SecretRefused");
    assert!(
        ready.message.contains("exceeded quota"),
        "the reason says what refused the Secret: {}",
        ready.message
    );
    let status = failed.status.clone().unwrap();
    assert_eq!(status.tokens_minted, Some(1));
    // Nothing more happens to it: one token minted, and revoked.
    env.settle("walled-1").await;
    let mine: Vec<_> = env
        .sim
        .tokens()
        .into_iter()
        .filter(|t| &t.user_id == user)
        .collect();
    assert_eq!(mine.len(), 1, "one token minted: {mine:?}");
    assert_eq!(mine[0].status, TokenStatus::Revoked);
    env.assert_events("SecretRefused", 1).await;
    assert_eq!(
        env.metric("actor_token_operator_tokens_minted_total").await,
        Some(1.0)
    );
    env.assert_no_credential_leaked().await;
}
