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

#[tokio::test]
async fn finished_requests_go_when_the_instance_says_but_never_those_a_gitops_tool_manages() {
    let env = Env::start_with(
        "gov-cleanup",
        clerk_sim::Faults {
            rejected_users: vec!["user_2gone".into()],
            ..Default::default()
        },
    )
    .await;
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key" }, "deleteFinishedAfter": "2s" }
    }))
    .await;
    // Flux's label first: it is due first, so had it been deleted, it would be gone before
    // the plain one is.
    let flux: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": "from-flux", "labels": { "kustomize.toolkit.fluxcd.io/name": "support" } },
        "spec": { "userId": "user_2gone", "actor": { "sub": "user_2alice" }, "instanceRef": { "kind": "ClerkInstance", "name": "clerk" } }
    }))
    .unwrap();
    env.requests
        .create(&PostParams::default(), &flux)
        .await
        .unwrap();
    env.wait_phase("from-flux", Phase::Failed).await;
    env.create_request("plain", json!({ "userId": "user_2gone" }))
        .await;
    env.wait_phase("plain", Phase::Failed).await;
    env.wait_gone("plain").await;
    assert!(
        env.requests.get_opt("from-flux").await.unwrap().is_some(),
        "a request Flux applies would be applied again, and a new token minted: it stays"
    );
    env.assert_events("Deleted", 1).await;
}

#[tokio::test]
async fn the_token_carries_who_asked_and_why_in_its_actor() {
    let env = Env::start("gov-provenance").await;
    alice_may_request(&env, true);
    let created = create_as(
        &env,
        ALICE,
        "ticket",
        json!({ "reason": "TICKET-42", "actor": { "sub": "user_2alice", "team": "support" } }),
    )
    .await
    .unwrap();
    env.wait_phase("ticket", Phase::Issued).await;
    let token = &env.sim.tokens()[0];
    assert_eq!(token.actor["sub"], json!("user_2alice"));
    assert_eq!(
        token.actor["team"],
        json!("support"),
        "the user's own keys are kept"
    );
    assert_eq!(
        token.actor["actortokens.dev"],
        json!({
            "request": { "namespace": env.ns.name, "name": "ticket", "uid": created.metadata.uid.unwrap() },
            "requester": ALICE,
            "reason": "TICKET-42"
        })
    );
    // An instance can keep it to the request's identity.
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key" }, "provenance": "Minimal" }
    }))
    .await;
    let minimal_uid = create_as(&env, ALICE, "minimal", json!({ "reason": "TICKET-43" }))
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    env.wait_phase("minimal", Phase::Issued).await;
    // Minimal provenance names the request by its UID alone.
    let minimal = env
        .sim
        .tokens()
        .into_iter()
        .find(|t| t.actor["actortokens.dev"]["request"]["uid"] == minimal_uid.as_str())
        .expect("a token whose provenance names the request by its UID");
    let keys: Vec<_> = minimal.actor["actortokens.dev"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["request"]);
}

#[tokio::test]
async fn unbounded_or_malformed_input_is_refused_by_the_api_server_with_what_is_wrong() {
    let env = Env::start("gov-bounds").await;
    let many_keys: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("k{i}"), json!("v")))
        .chain([("sub".to_string(), json!("user_2alice"))])
        .collect();
    let cases = [
        (
            json!({ "actor": Value::Object(many_keys) }),
            "spec.actor: Too many: 21: must have at most 16 items",
        ),
        (
            json!({ "actor": { "sub": "user_2alice", "note": "x".repeat(257) } }),
            "spec.actor.note: Too long: may not be more than 256",
        ),
        (
            json!({ "actor": { "sub": "user_2alice", "nested": { "a": 1 } } }),
            "spec.actor.nested: Invalid value: \"object\"",
        ),
        (
            json!({ "actor": { "sub": "user_2alice", "bad-key": "x" } }),
            "actor keys must be identifiers",
        ),
        (
            json!({ "actor": { "sub": "user_2alice", "actortokens.dev": "forged" } }),
            "actor.actortokens.dev is written by the operator",
        ),
        (
            json!({ "secretLabels": { "bad key": "v" } }),
            "secretLabels: each key must be a label key",
        ),
        (
            json!({ "secretLabels": { "ok": "bad value!" } }),
            "secretLabels: each value must be a label value",
        ),
        (
            json!({ "secretLabels": { "actortokens.dev/request": "x" } }),
            "are set by the operator",
        ),
        (
            json!({ "secretAnnotations": { "a/b/c": "v" } }),
            "secretAnnotations: each key must be an annotation key",
        ),
        (
            json!({ "secretName": "a..b" }),
            "secretName must be a DNS subdomain",
        ),
    ];
    for (i, (spec, said)) in cases.into_iter().enumerate() {
        let object = request_object(&format!("bad-{i}"), spec);
        let refused = env
            .requests
            .create(&PostParams::default(), &object)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains(said), "case {i}: {refused}");
    }
}

#[tokio::test]
async fn a_clerk_url_off_the_allowed_hosts_is_never_sent_the_key() {
    let env = Env::start("gov-apiurl").await;
    // The simulator, but by a name the operator's --clerk-api-hosts doesn't list.
    let elsewhere = env.sim.api_url().replace("127.0.0.1", "localhost");
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "elsewhere", "namespace": env.ns.name },
        "spec": { "apiUrl": elsewhere, "secretKeyRef": { "name": "clerk-key" } }
    }))
    .await;
    env.create_request(
        "t",
        json!({ "instanceRef": { "kind": "ClerkInstance", "name": "elsewhere" } }),
    )
    .await;
    let waiting = env.wait_reason("t", "ApiUrlNotAllowed").await;
    assert!(
        waiting
            .message
            .contains("host localhost is not one the operator may send a key to"),
        "{}",
        waiting.message
    );
    let instances = Api::<actor_token_operator::api::ClerkInstance>::namespaced(
        env.client.clone(),
        &env.ns.name,
    );
    support::eventually(
        support::env::WAIT,
        "the instance to say why it is not ready",
        || async {
            let instance = instances.get("elsewhere").await.ok()?;
            instance
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.reason == "ApiUrlNotAllowed")
        },
    )
    .await;
    assert_eq!(
        env.sim.stats().create.total,
        0,
        "no call, so no key, went out"
    );
}

#[tokio::test]
async fn every_change_of_standing_is_one_audit_line_naming_who_with_no_credential() {
    let mut env = Env::start("gov-audit").await;
    env.operator = Some(env.spawn_operator(&["--log-format", "json"]));
    alice_may_request(&env, true);
    create_as(&env, ALICE, "audited", json!({})).await.unwrap();
    env.wait_phase("audited", Phase::Issued).await;
    env.requests
        .delete("audited", &Default::default())
        .await
        .unwrap();
    env.wait_gone("audited").await;
    let audit = |event: &str| {
        let output = env.operator.as_ref().unwrap().output();
        output
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "audit" && l["fields"]["event"] == event)
            .collect::<Vec<_>>()
    };
    support::eventually(support::env::WAIT, "the revoked line", || async {
        (!audit("revoked").is_empty()).then_some(())
    })
    .await;
    for event in ["requested", "issued", "revoked"] {
        let lines = audit(event);
        assert_eq!(lines.len(), 1, "{event}: {lines:?}");
        let fields = &lines[0]["fields"];
        assert_eq!(fields["requester"], ALICE, "{event}");
        assert_eq!(fields["request"], format!("{}/audited", env.ns.name));
        assert_eq!(fields["user_id"], "user_2customer");
        assert_eq!(fields["actor"], "user_2alice");
    }
    assert!(
        audit("issued")[0]["fields"]["token_id"]
            .as_str()
            .unwrap()
            .starts_with("act_")
    );
    env.assert_no_credential_leaked().await;
}
