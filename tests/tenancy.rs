//! Tenants sharing one operator: one namespace's throttled Clerk instance holds up no other
//! namespace's requests or deletions, and doesn't keep the operator from shutting down.

mod support;

use std::time::{Duration, Instant};

use actor_token_operator::api::{ActorTokenRequest, Phase};
use clerk_sim::SimConfig;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    Operator, OperatorOptions, TestNamespace, control_plane, env::ready_condition, eventually,
    install_crds, private_control_plane, repo_root,
};

const KEY: &str = "sk_test_tenancyTestKey0123456789";
const WAIT: Duration = Duration::from_secs(60);

async fn apply(object: Value) {
    support::apply(&object);
}

/// A key Secret and a ClerkInstance `clerk` in `namespace`, with `spec` merged in.
async fn instance(namespace: &str, api_url: &str, extra: Value) {
    apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "clerk-key", "namespace": namespace },
        "stringData": { "secretKey": KEY }
    }))
    .await;
    let mut spec = json!({ "apiUrl": api_url, "secretKeyRef": { "name": "clerk-key" } });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": namespace },
        "spec": spec
    }))
    .await;
}

async fn create(requests: &Api<ActorTokenRequest>, name: &str, user: &str) {
    let request: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": name },
        "spec": {
            "userId": user, "actor": { "sub": "user_2support" },
            "instanceRef": { "kind": "ClerkInstance", "name": "clerk" }
        }
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &request)
        .await
        .expect("create a request");
}

async fn wait_phase(requests: &Api<ActorTokenRequest>, name: &str, phase: Phase) {
    eventually(WAIT, &format!("{name} to be {phase:?}"), || async {
        (requests.get(name).await.ok()?.phase() == Some(phase)).then_some(())
    })
    .await
}

/// Every throttled request has been looked at since the other tenant came: each says it is
/// throttled (or was issued, the one the limit allowed).
async fn env_settled(throttled: &Api<ActorTokenRequest>) {
    eventually(
        WAIT,
        "every throttled request to say why it waits",
        || async {
            let list = throttled.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .all(|r| {
                    r.phase() == Some(Phase::Issued)
                        || ready_condition(r).is_some_and(|c| c.reason == "Throttled")
                })
                .then_some(())
        },
    )
    .await
}

/// The chart's `terminationGracePeriodSeconds`: how long the kubelet waits after SIGTERM.
fn grace_period() -> Duration {
    let values =
        std::fs::read_to_string(repo_root().join("charts/actor-token-operator/values.yaml"))
            .unwrap();
    let seconds = values
        .lines()
        .find_map(|l| l.strip_prefix("terminationGracePeriodSeconds:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("terminationGracePeriodSeconds in values.yaml");
    Duration::from_secs(seconds)
}

#[tokio::test]
async fn a_throttled_tenant_holds_up_no_one_else() {
    // The operator serves every namespace, as the chart installs it: one set of reconcile
    // slots for all tenants. On a shared control plane it would act on other tests' requests.
    private_control_plane();
    install_crds();
    let client: Client = control_plane().client().await;
    let throttled_ns = TestNamespace::create(&client, "tenant-throttled").await;
    let other_ns = TestNamespace::create(&client, "tenant-other").await;
    let sim = clerk_sim::start(SimConfig {
        secret_keys: vec![KEY.into()],
        ..Default::default()
    })
    .await
    .expect("start the Clerk simulator");
    // One tenant allows itself a call a day.
    instance(
        &throttled_ns.name,
        &sim.api_url(),
        json!({ "rateLimit": { "requests": 1, "period": "24h" } }),
    )
    .await;
    let mut operator = Operator::start(OperatorOptions {
        namespaces: &[],
        cluster_instance_namespace: &throttled_ns.name,
        kubeconfig: None,
        extra_args: &["--concurrency", "4", "--clerk-timeout-seconds", "2"],
    });

    // A few dozen requests for the throttled tenant: the first is issued, the rest wait.
    let throttled = Api::<ActorTokenRequest>::namespaced(client.clone(), &throttled_ns.name);
    for i in 0..30 {
        create(
            &throttled,
            &format!("t-{i}"),
            &format!("user_2throttled{i}"),
        )
        .await;
    }
    eventually(WAIT, "one throttled request issued", || async {
        let list = throttled.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|r| r.phase() == Some(Phase::Issued))
            .then_some(())
    })
    .await;

    // Another tenant comes, with an instance of the same key and Clerk's default limit: it
    // changes nothing for the first one's limit, nor the first one's for it. Its requests go
    // through meanwhile, and so do their deletions.
    instance(&other_ns.name, &sim.api_url(), json!({})).await;
    let other = Api::<ActorTokenRequest>::namespaced(client.clone(), &other_ns.name);
    let started = Instant::now();
    for i in 0..5 {
        create(&other, &format!("o-{i}"), &format!("user_2other{i}")).await;
    }
    for i in 0..5 {
        wait_phase(&other, &format!("o-{i}"), Phase::Issued).await;
    }
    let issued_in = started.elapsed();
    let started = Instant::now();
    for i in 0..5 {
        other
            .delete(&format!("o-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually(WAIT, "the other tenant's requests deleted", || async {
        other
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let deleted_in = started.elapsed();
    println!(
        "beside 30 throttled requests: 5 requests issued in {issued_in:?}, deleted in {deleted_in:?}"
    );
    let others_live = sim
        .live_tokens()
        .into_iter()
        .filter(|t| t.user_id.starts_with("user_2other"))
        .count();
    assert_eq!(others_live, 0, "the deletions revoked every token");

    // The throttled requests say why they wait, and when the limit gives.
    let waiting = eventually(WAIT, "a throttled request to say why it waits", || async {
        let list = throttled.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .filter_map(ready_condition)
            .find(|c| c.reason == "Throttled")
    })
    .await;
    assert!(waiting.message.contains("1 per 24h"), "{}", waiting.message);
    // Its limit is its own: the other instance of the same key didn't loosen it.
    env_settled(&throttled).await;
    assert_eq!(
        sim.stats().create.total,
        1 + 5,
        "one create for the throttled tenant, one for each of the other's"
    );

    // And the operator stops within the grace period the chart gives it.
    let started = Instant::now();
    operator.terminate();
    let exited = operator.wait_exit(grace_period()).await;
    assert!(
        exited.is_some(),
        "the operator was still running {:?} after SIGTERM",
        grace_period()
    );
    println!("stopped {:?} after SIGTERM", started.elapsed());
}
