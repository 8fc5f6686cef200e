//! Who may impersonate whom, against the real API server with the chart's admission policies,
//! acting as different people (the admin impersonates them): the API server refuses at the
//! door what an instance does not allow, with a message a person can act on; and where a
//! policy is missing (a namespace the policies skip), the operator still refuses to mint.

mod support;

use actor_token_operator::api::{ActorTokenRequest, Phase};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use support::{
    admission::{
        POLICIES_OFF_LABEL, client_as, grant, instance_rules, kubectl_as, requester_rules,
    },
    env::{Env, ready_condition},
};

const ALICE: &str = "alice@example.com";
const SUPPORT: &str = "support-team";

fn request_object(name: &str, spec: Value) -> ActorTokenRequest {
    let mut full = json!({
        "userId": "user_2customer",
        "actor": { "sub": "user_2alice" },
        "instanceRef": { "kind": "ClerkInstance", "name": "clerk" }
    });
    support::env::merge(&mut full, spec);
    serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": name }, "spec": full,
    }))
    .unwrap()
}

/// Creates a request as `user` (in group SUPPORT); the API server's refusal message on error.
async fn create_as(
    env: &Env,
    user: &str,
    name: &str,
    spec: Value,
) -> Result<ActorTokenRequest, String> {
    let client = client_as(user, &[SUPPORT]).await;
    Api::<ActorTokenRequest>::namespaced(client, &env.ns.name)
        .create(&PostParams::default(), &request_object(name, spec))
        .await
        .map_err(|e| e.to_string())
}

/// Alice may make requests in the test namespace; with `use`, through its ClerkInstance.
fn alice_may_request(env: &Env, with_use: bool) {
    grant(Some(&env.ns.name), "requester", ALICE, requester_rules());
    if with_use {
        grant(
            Some(&env.ns.name),
            "use-clerk",
            ALICE,
            instance_rules("use", "clerkinstances", Some("clerk")),
        );
    }
}

#[tokio::test]
async fn a_user_without_use_on_the_instance_is_refused_and_with_it_is_served() {
    let env = Env::start("gov-use").await;
    alice_may_request(&env, false);
    let refused = create_as(&env, ALICE, "no-use", json!({}))
        .await
        .unwrap_err();
    assert!(
        refused.contains("alice@example.com may not use ClerkInstance clerk"),
        "{refused}"
    );
    grant(
        Some(&env.ns.name),
        "use-clerk",
        ALICE,
        instance_rules("use", "clerkinstances", Some("clerk")),
    );
    let created = create_as(&env, ALICE, "with-use", json!({})).await.unwrap();
    let requester = created.spec.requester.expect("the requester is stamped");
    assert_eq!(requester.username, ALICE);
    assert!(
        requester.groups.iter().any(|g| g == SUPPORT),
        "{requester:?}"
    );
    env.wait_phase("with-use", Phase::Issued).await;
}

#[tokio::test]
async fn a_forged_requester_is_refused_at_the_door() {
    let env = Env::start("gov-forged").await;
    alice_may_request(&env, true);
    let forged = json!({ "requester": { "username": "bob@example.com", "groups": [SUPPORT, "system:authenticated"] } });
    let refused = create_as(&env, ALICE, "forged", forged).await.unwrap_err();
    assert!(
        refused.contains(
            "spec.requester must be the user who creates the request (alice@example.com)"
        ),
        "{refused}"
    );
    // Typing oneself in is fine (a cluster without the mutating policy needs it).
    let honest =
        json!({ "requester": { "username": ALICE, "groups": [SUPPORT, "system:authenticated"] } });
    create_as(&env, ALICE, "honest", honest).await.unwrap();
    // And the requester, like the whole spec, can't be changed afterwards.
    let out = kubectl_as(ALICE, &[SUPPORT])
        .args([
            "-n",
            &env.ns.name,
            "patch",
            "atr",
            "honest",
            "--type=merge",
            "-p",
        ])
        .arg(r#"{"spec":{"requester":{"username":"bob@example.com"}}}"#)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_cluster_instance_refuses_namespaces_users_actors_and_durations_it_does_not_allow() {
    let env = Env::start("gov-policy").await;
    let instance = format!("policy-{}", &env.ns.name);
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClusterClerkInstance",
        "metadata": { "name": instance },
        "spec": {
            "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key" },
            "namespaceSelector": { "matchLabels": { "team": "support" } },
            "users": { "deny": ["user_2admin"] },
            "actorBindings": [{ "subjects": [{ "kind": "User", "name": ALICE }], "actors": ["user_2alice"] }],
            "maxExpiresIn": "30m"
        }
    }))
    .await;
    grant(Some(&env.ns.name), "requester", ALICE, requester_rules());
    grant(
        None,
        &format!("use-{instance}"),
        ALICE,
        instance_rules("use", "clusterclerkinstances", Some(&instance)),
    );
    let through = |extra: Value| {
        let mut spec = json!({ "instanceRef": { "kind": "ClusterClerkInstance", "name": instance }, "expiresIn": "15m" });
        support::env::merge(&mut spec, extra);
        spec
    };
    let refused = create_as(&env, ALICE, "outside", through(json!({})))
        .await
        .unwrap_err();
    assert!(
        refused.contains(&format!("does not serve namespace {}", env.ns.name)),
        "{refused}"
    );
    support::admission::apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.ns.name, "labels": { "team": "support" } } })
            .to_string(),
    );
    let refused = create_as(
        &env,
        ALICE,
        "admin",
        through(json!({ "userId": "user_2admin" })),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("may not impersonate user_2admin: its users.deny lists it"),
        "{refused}"
    );
    let refused = create_as(
        &env,
        ALICE,
        "as-bob",
        through(json!({ "actor": { "sub": "user_2bob" } })),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("alice@example.com may not act as user_2bob through ClusterClerkInstance"),
        "{refused}"
    );
    let refused = create_as(&env, ALICE, "long", through(json!({ "expiresIn": "1h" })))
        .await
        .unwrap_err();
    assert!(
        refused.contains("allows at most 30m for spec.expiresIn, not 1h"),
        "{refused}"
    );
    create_as(&env, ALICE, "fine", through(json!({})))
        .await
        .unwrap();
    env.wait_phase("fine", Phase::Issued).await;
}

/// In a namespace the policies skip, requests arrive as written, with a hand-typed requester
/// or none: the operator refuses each before any call to Clerk, naming why.
#[tokio::test]
async fn without_the_policies_the_operator_still_refuses_to_mint() {
    let env = Env::start("gov-nopolicy").await;
    support::admission::apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.ns.name, "labels": { POLICIES_OFF_LABEL: "off" } } })
            .to_string(),
    );
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "strict", "namespace": env.ns.name },
        "spec": {
            "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key" },
            "users": { "deny": ["user_2admin"] },
            "actorBindings": [{ "subjects": [{ "kind": "Group", "name": SUPPORT }], "actors": ["user_2alice"] }]
        }
    }))
    .await;
    // Alice may use `strict`, not `clerk`; Bob nothing.
    grant(
        Some(&env.ns.name),
        "use-strict",
        ALICE,
        instance_rules("use", "clerkinstances", Some("strict")),
    );
    let alice = json!({ "username": ALICE, "groups": [SUPPORT, "system:authenticated"] });
    let strict = json!({ "kind": "ClerkInstance", "name": "strict" });
    let cases = [
        ("nobody", json!({}), "RequesterUnknown"),
        ("no-use", json!({ "requester": alice }), "UseForbidden"),
        (
            "denied-user",
            json!({ "requester": alice, "instanceRef": strict, "userId": "user_2admin" }),
            "UserNotAllowed",
        ),
        (
            "unbound-actor",
            json!({ "requester": alice, "instanceRef": strict, "actor": { "sub": "user_2bob" } }),
            "ActorNotAllowed",
        ),
        (
            "forged-bob",
            json!({
                "requester": { "username": "bob@example.com", "groups": [SUPPORT] },
                "instanceRef": strict, "actor": { "sub": "user_2alice" }
            }),
            "UseForbidden",
        ),
    ];
    for (name, spec, _) in &cases {
        env.create_request(name, spec.clone()).await;
    }
    for (name, _, reason) in &cases {
        let failed = env.wait_phase(name, Phase::Failed).await;
        let ready = ready_condition(&failed).unwrap();
        assert_eq!(ready.reason, *reason, "{name}: {}", ready.message);
    }
    assert_eq!(env.sim.stats().create.total, 0, "nothing reached Clerk");
    // Alice's own request through `strict`, as herself, is served.
    env.create_request(
        "fine",
        json!({ "requester": alice, "instanceRef": strict, "actor": { "sub": "user_2alice" } }),
    )
    .await;
    env.wait_phase("fine", Phase::Issued).await;
}
