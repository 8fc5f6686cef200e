//! Two operator replicas with `--leader-election` on one namespace: one leads and reconciles,
//! the other stands by (and is ready); a killed leader is replaced within the lease
//! duration and every request still ends with exactly one live token; a leader told to stop
//! (SIGTERM) gives the lease up at once.

mod support;

use std::{collections::BTreeSet, time::Duration};

use actor_token_operator::api::Phase;
use clerk_sim::{Faults, Latency, SimConfig, TokenStatus};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Api;
use serde_json::json;
use support::{
    Operator,
    env::{Env, WAIT, secret_text},
    eventually,
};
use tokio::time::{Instant, sleep};

const LEASE_SECONDS: u64 = 6;

/// A fresh environment whose own operator is replaced by two replicas electing a leader on
/// a Lease of the test's own.
async fn two_replicas(
    prefix: &str,
    config: SimConfig,
    extra: &[&str],
) -> (Env, String, [Operator; 2]) {
    let mut env = Env::start_with_sim(prefix, config).await;
    env.operator.take().unwrap().kill();
    let lease = format!("ato-{prefix}-{:08x}", rand::random::<u32>());
    let seconds = LEASE_SECONDS.to_string();
    let mut args = vec![
        "--leader-election",
        "--leader-election-lease",
        lease.as_str(),
        "--leader-election-lease-seconds",
        seconds.as_str(),
    ];
    args.extend_from_slice(extra);
    let replicas = [env.spawn_operator(&args), env.spawn_operator(&args)];
    (env, lease, replicas)
}

fn leases(env: &Env) -> Api<Lease> {
    Api::namespaced(env.client.clone(), &env.ns.name)
}

async fn lease_spec(env: &Env, lease: &str) -> Option<LeaseSpec> {
    leases(env).get_opt(lease).await.unwrap()?.spec
}

/// The identity a replica started by the tests holds the lease as: `<hostname>-<pid>`.
fn holds(spec: &LeaseSpec, replica: &Operator) -> bool {
    spec.holder_identity
        .as_deref()
        .is_some_and(|h| h.ends_with(&format!("-{}", replica.pid())))
}

/// Waits until one replica holds the lease, and returns its index.
async fn leader_of(env: &Env, lease: &str, replicas: &[Operator; 2]) -> usize {
    eventually(WAIT, "a replica to hold the lease", || async {
        let spec = lease_spec(env, lease).await?;
        replicas.iter().position(|r| holds(&spec, r))
    })
    .await
}

async fn ready(replica: &Operator, what: &str) -> String {
    eventually(WAIT, &format!("{what} to be ready"), || async {
        replica
            .get("/readyz")
            .await
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
    })
    .await
}

/// For each request: `Issued`, exactly one live token of its user in Clerk, and that token is
/// the one in its status and its Secret. Panics with the tokens of the user otherwise.
async fn assert_one_live_token_each(env: &Env, requests: &[(String, String)]) {
    let tokens = env.sim.tokens();
    let mut recorded = BTreeSet::new();
    for (name, user) in requests {
        let request = env.requests.get(name).await.unwrap();
        let status = request.status.clone().unwrap_or_default();
        assert_eq!(status.phase, Some(Phase::Issued), "{name}");
        let token_id = status.token_id.clone().expect("a recorded token");
        let of_user: Vec<_> = tokens
            .iter()
            .filter(|t| &t.user_id == user)
            .map(|t| (t.id.as_str(), t.status))
            .collect();
        let live: Vec<_> = of_user
            .iter()
            .filter(|(_, s)| *s == TokenStatus::Pending)
            .collect();
        assert_eq!(
            live.len(),
            1,
            "{name}: {} live tokens for {user}, recorded {token_id}; all: {of_user:?}",
            live.len()
        );
        assert_eq!(live[0].0, token_id, "{name}: all: {of_user:?}");
        let secret = env.secrets.get(name).await.unwrap();
        assert_eq!(secret_text(&secret, "tokenId"), token_id, "{name}");
        recorded.insert(token_id);
    }
    for token in env.sim.live_tokens() {
        assert!(
            recorded.contains(&token.id),
            "live token {} of {} is recorded by no request",
            token.id,
            token.user_id
        );
    }
}

/// One leads (Lease holder, `leader` 1), the other stands by (`leader` 0, no reconcile), both
/// ready. The leader is killed with SIGKILL while one of 30 creates waits in Clerk; the
/// standby takes over within a few lease durations and finishes the burst: each request
/// ends with exactly one live token, and no token was minted twice (a second reconciler
/// would have raced the first for some requests).
#[tokio::test]
async fn a_standby_takes_over_from_a_killed_leader_and_every_request_gets_one_token() {
    let config = SimConfig {
        faults: Faults {
            latency: Some(Latency::between(
                Duration::from_millis(300),
                Duration::from_millis(800),
            )),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    // One reconcile at a time: when the leader is killed while a create waits in Clerk's
    // latency, no other request is between Clerk's answer and its status write (a window no
    // operator can close, see README), so the kill can't lose a token. With more at once, a
    // kill can land there (a second live token nobody recorded or counted), or between the
    // status write and the Secret write (the token is set aside and replaced: a second
    // mint), so neither "one live token" nor "30 minted" could be asserted.
    let (env, lease, mut replicas) =
        two_replicas("leader-kill", config, &["--concurrency", "1"]).await;
    let first = leader_of(&env, &lease, &replicas).await;
    let second = 1 - first;
    println!("replica {first} leads");
    assert_eq!(ready(&replicas[first], "the leader").await, "leading");
    assert_eq!(ready(&replicas[second], "the standby").await, "standby");
    let leader_metric = "actor_token_operator_leader";
    assert_eq!(replicas[first].metric(leader_metric).await, Some(1.0));
    assert_eq!(replicas[second].metric(leader_metric).await, Some(0.0));

    let requests: Vec<(String, String)> = (1..=30)
        .map(|i| (format!("burst-{i}"), format!("user_2leader{i}")))
        .collect();
    for (name, user) in &requests {
        env.create_request(name, json!({ "userId": user })).await;
    }

    // Kill the leader once a third of the burst is done, while a create waits in Clerk.
    let deadline = Instant::now() + WAIT;
    loop {
        let create = env.sim.stats().create;
        let answered = create.by_status.values().sum::<u64>() + create.dropped;
        if answered >= 10 && create.total > answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst did not get going: {create:?}"
        );
        sleep(Duration::from_millis(10)).await;
    }
    replicas[first].kill();
    let killed = Instant::now();
    let tokens_at_kill = env.sim.tokens().len();
    println!("leader killed with {tokens_at_kill} tokens minted");
    assert_eq!(
        replicas[second].metric(leader_metric).await,
        Some(0.0),
        "the standby led while the leader was alive"
    );

    let takeover = eventually(
        Duration::from_secs(3 * LEASE_SECONDS),
        "the standby to take the lease",
        || async {
            let spec = lease_spec(&env, &lease).await?;
            holds(&spec, &replicas[second]).then(|| killed.elapsed())
        },
    )
    .await;
    println!(
        "takeover {takeover:?} after the kill (lease {LEASE_SECONDS}s, renew deadline {}s)",
        LEASE_SECONDS * 2 / 3
    );
    assert_eq!(ready(&replicas[second], "the new leader").await, "leading");
    assert_eq!(replicas[second].metric(leader_metric).await, Some(1.0));

    for (name, _) in &requests {
        env.wait_phase(name, Phase::Issued).await;
    }
    println!("all 30 issued {:?} after the kill", killed.elapsed());
    assert_one_live_token_each(&env, &requests).await;
    let minted = env.sim.tokens().len();
    assert_eq!(
        minted,
        requests.len(),
        "tokens were minted beyond one per request: two reconcilers raced, or a create was retried"
    );
    env.assert_no_credential_in("the killed leader's output", &replicas[first].output());
    env.assert_no_credential_in("the new leader's output", &replicas[second].output());
}

/// SIGTERM while a create waits in Clerk: the leader finishes that request (one token,
/// recorded and delivered by it), gives the lease up and exits 0; the standby takes it long
/// before the old lease could have run out.
#[tokio::test]
async fn a_leader_told_to_stop_finishes_its_work_and_releases_the_lease() {
    let config = SimConfig {
        faults: Faults {
            latency: Some(Latency::fixed(Duration::from_millis(1500))),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let (env, lease, mut replicas) = two_replicas("leader-term", config, &[]).await;
    let first = leader_of(&env, &lease, &replicas).await;
    let second = 1 - first;
    ready(&replicas[second], "the standby").await;
    env.create_request("before", json!({ "userId": "user_2leaderTerm1" }))
        .await;
    eventually(WAIT, "the create to reach Clerk", || async {
        (env.sim.stats().create.total == 1).then_some(())
    })
    .await;

    let before = lease_spec(&env, &lease).await.unwrap();
    assert!(holds(&before, &replicas[first]));
    let renewed = before.renew_time.clone().unwrap().0;
    replicas[first].terminate();
    let status = replicas[first]
        .wait_exit(WAIT)
        .await
        .expect("the leader to exit after SIGTERM");
    assert!(status.success(), "the leader exited with {status}");
    let output = replicas[first].output();
    assert!(output.contains("released the leader lease"), "{output}");
    // The request in flight was finished by the leader that started it before it exited
    // (a new leader's create would take Clerk's 1.5 s), and not redone.
    let request = env.requests.get("before").await.unwrap();
    assert_eq!(
        request.phase(),
        Some(Phase::Issued),
        "the leader exited before finishing its work: {:?}",
        request.status
    );
    assert_eq!(env.sim.tokens().len(), 1, "the drained create was redone");

    let taken = eventually(WAIT, "the standby to take the lease", || async {
        let spec = lease_spec(&env, &lease).await?;
        holds(&spec, &replicas[second]).then_some(spec)
    })
    .await;
    // Had the lease merely run out, the standby could not have taken it before the old
    // leader's last renew plus the lease duration.
    let acquired = taken.acquire_time.unwrap().0;
    let waited = acquired.duration_since(renewed);
    println!("standby took the released lease {waited:#} after the leader's last renew seen");
    assert!(
        waited < k8s_openapi::jiff::SignedDuration::from_secs(LEASE_SECONDS as i64),
        "the standby took the lease {waited:#} after the last renew: it ran out, it was not released"
    );

    // The new leader serves.
    env.create_request("after", json!({ "userId": "user_2leaderTerm2" }))
        .await;
    env.wait_phase("after", Phase::Issued).await;
    assert_eq!(
        replicas[second].metric("actor_token_operator_leader").await,
        Some(1.0)
    );
}

/// A leader that finds its lease taken (here: rewritten to another holder, as a replica that
/// saw it run out would) stops at once and exits non-zero, to come back as a fresh standby.
#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_at_once() {
    let (env, lease, mut replicas) = two_replicas("leader-lost", SimConfig::default(), &[]).await;
    let first = leader_of(&env, &lease, &replicas).await;
    // Only the leader's reaction is watched: the standby would take the lease back later.
    replicas[1 - first].kill();
    assert_eq!(
        replicas[first].metric("actor_token_operator_leader").await,
        Some(1.0)
    );

    let mut taken = leases(&env).get(&lease).await.unwrap();
    let spec = taken.spec.as_mut().unwrap();
    spec.holder_identity = Some("another-replica".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    leases(&env)
        .replace(&lease, &Default::default(), &taken)
        .await
        .unwrap();
    let taken_at = Instant::now();
    let status = replicas[first]
        .wait_exit(Duration::from_secs(3 * LEASE_SECONDS))
        .await
        .expect("the leader to stop after losing its lease");
    println!(
        "leader stopped {:?} after its lease was taken",
        taken_at.elapsed()
    );
    assert!(!status.success(), "the leader exited with {status}");
    let output = replicas[first].output();
    assert!(output.contains("lost the leader lease"), "{output}");
    assert!(output.contains("another-replica"), "{output}");
    // It did not give the lease back on its way out.
    let spec = lease_spec(&env, &lease).await.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("another-replica"));
}
