//! A second person approves: the approval gate against the real API server and its admission
//! policies, as the requester, an approver and someone without the right; and what the
//! operator does on its own where the policies are missing.

mod support;

use std::time::Duration;

use actor_token_operator::api::Phase;
use serde_json::{Value, json};
use support::{
    admission::{
        POLICIES_OFF_LABEL, apply_yaml, client_as, grant, instance_rules, kubectl_as,
        requester_rules,
    },
    env::{Env, condition, ready_condition},
    eventually,
};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const SUPPORT: &str = "support-team";

/// RBAC for people who approve through ClerkInstance `clerk`: read requests, write their
/// status; `approve` on the instance only if `may_approve`.
fn approver(env: &Env, user: &str, may_approve: bool) {
    let mut rules = vec![
        json!({ "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["get", "list", "watch"] }),
        json!({ "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["get", "update", "patch"] }),
    ];
    if may_approve {
        rules.extend(
            instance_rules("approve", "clerkinstances", Some("clerk"))
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    let name = format!("approver-{}", user.split('@').next().unwrap());
    grant(Some(&env.ns.name), &name, user, Value::Array(rules));
}

/// The namespace's ClerkInstance `clerk` requires approval.
async fn requiring_approval(env: &Env, extra: Value) {
    let mut approval = json!({ "required": true, "validFor": "1h" });
    support::env::merge(&mut approval, extra);
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key", "key": "secretKey" }, "approval": approval }
    }))
    .await;
}

/// Alice asks (through `clerk`); the request waits for approval.
async fn alice_asks(env: &Env, name: &str) {
    grant(Some(&env.ns.name), "requester", ALICE, requester_rules());
    grant(
        Some(&env.ns.name),
        "use-clerk",
        ALICE,
        instance_rules("use", "clerkinstances", Some("clerk")),
    );
    let out = kubectl_as(ALICE, &[SUPPORT])
        .args(["-n", &env.ns.name, "create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let request = json!({
                "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
                "metadata": { "name": name },
                "spec": { "userId": "user_2customer", "actor": { "sub": "user_2alice" },
                          "instanceRef": { "kind": "ClerkInstance", "name": "clerk" }, "reason": "TICKET-7" }
            });
            child.stdin.take().unwrap().write_all(request.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `user` adds a decision (`Approved`/`Denied`) through the status subresource, dated
/// `age_seconds` ago; the API server's refusal on error.
fn decide(
    env: &Env,
    user: &str,
    name: &str,
    kind: &str,
    age_seconds: i64,
    decided_by: Option<&str>,
) -> Result<(), String> {
    let current = kubectl_as(user, &[SUPPORT])
        .args(["-n", &env.ns.name, "get", "atr", name, "-o", "json"])
        .output()
        .unwrap();
    let current: Value = serde_json::from_slice(&current.stdout).map_err(|e| e.to_string())?;
    let mut conditions = current["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let at = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(age_seconds);
    conditions.push(json!({
        "type": kind, "status": "True", "reason": "ByHand", "message": format!("{kind} by {user}"),
        "lastTransitionTime": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }));
    let mut patch = vec![json!({ "op": "add", "path": "/status/conditions", "value": conditions })];
    if let Some(by) = decided_by {
        patch.push(json!({ "op": "add", "path": "/status/decidedBy", "value": { "username": by, "groups": [SUPPORT, "system:authenticated"] } }));
    }
    let out = kubectl_as(user, &[SUPPORT])
        .args([
            "-n",
            &env.ns.name,
            "patch",
            "atr",
            name,
            "--subresource=status",
            "--type=json",
            "-p",
        ])
        .arg(Value::Array(patch).to_string())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn wait_awaiting(env: &Env, name: &str) {
    let ready = env.wait_reason(name, "AwaitingApproval").await;
    assert!(ready.message.contains("approve"), "{}", ready.message);
}

#[tokio::test]
async fn the_requester_and_people_without_the_right_cannot_decide_an_approver_can_once() {
    let env = Env::start("appr-rules").await;
    requiring_approval(&env, json!({})).await;
    alice_asks(&env, "t-1").await;
    wait_awaiting(&env, "t-1").await;
    approver(&env, ALICE, true); // even with the right, not on her own request
    approver(&env, CAROL, false);
    approver(&env, BOB, true);

    let own = decide(&env, ALICE, "t-1", "Approved", 0, None).unwrap_err();
    assert!(
        own.contains("alice@example.com requested this: someone else must approve or deny it"),
        "{own}"
    );
    let carol = decide(&env, CAROL, "t-1", "Approved", 0, None).unwrap_err();
    assert!(
        carol.contains(
            "carol@example.com may not approve or deny requests through ClerkInstance clerk"
        ),
        "{carol}"
    );
    assert_eq!(
        env.sim.stats().create.total,
        0,
        "nothing minted before approval"
    );

    decide(&env, BOB, "t-1", "Approved", 0, None).unwrap();
    let issued = env.wait_phase("t-1", Phase::Issued).await;
    let decided_by = issued.status.as_ref().unwrap().decided_by.clone().unwrap();
    assert_eq!(
        decided_by.username, BOB,
        "the API server stamped who approved"
    );
    // The approver goes into the token's provenance, and into the Issued event.
    let token = &env.sim.tokens()[0];
    assert_eq!(
        token.actor["actortokens.dev"]["approver"],
        json!(BOB),
        "{:?}",
        token.actor
    );
    let events = env.events().await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("Issued")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains(BOB) && n.contains(ALICE))),
        "the Issued event names requester and approver"
    );

    // A decision is final: no second one, no change, no removal.
    let again = decide(&env, BOB, "t-1", "Denied", 0, None).unwrap_err();
    assert!(again.contains("one decision"), "{again}");
    let removal = kubectl_as(BOB, &[SUPPORT])
        .args([
            "-n",
            &env.ns.name,
            "patch",
            "atr",
            "t-1",
            "--subresource=status",
            "--type=json",
            "-p",
        ])
        .arg(r#"[{"op":"replace","path":"/status/conditions","value":[]}]"#)
        .output()
        .unwrap();
    assert!(!removal.status.success());
    assert!(
        String::from_utf8_lossy(&removal.stderr).contains("final"),
        "{}",
        String::from_utf8_lossy(&removal.stderr)
    );
    // Nor may an approver touch anything else in the status.
    let meddling = kubectl_as(BOB, &[SUPPORT])
        .args([
            "-n",
            &env.ns.name,
            "patch",
            "atr",
            "t-1",
            "--subresource=status",
            "--type=merge",
            "-p",
        ])
        .arg(r#"{"status":{"tokenId":"act_someoneElses"}}"#)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&meddling.stderr).contains("only the operator writes"),
        "{}",
        String::from_utf8_lossy(&meddling.stderr)
    );
}

#[tokio::test]
async fn a_denied_request_never_reaches_clerk() {
    let env = Env::start("appr-denied").await;
    requiring_approval(&env, json!({})).await;
    alice_asks(&env, "t-2").await;
    wait_awaiting(&env, "t-2").await;
    approver(&env, BOB, true);
    decide(&env, BOB, "t-2", "Denied", 0, None).unwrap();
    let denied = env.wait_phase("t-2", Phase::Denied).await;
    let ready = ready_condition(&denied).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Denied")
    );
    assert!(
        ready.message.contains("Denied by bob@example.com"),
        "{}",
        ready.message
    );
    let stalled = condition(&denied, "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "Denied")
    );
    assert_eq!(env.sim.stats().create.total, 0);
}

#[tokio::test]
async fn an_approval_older_than_valid_for_must_be_given_again() {
    let env = Env::start("appr-stale").await;
    requiring_approval(&env, json!({ "validFor": "10m" })).await;
    alice_asks(&env, "t-3").await;
    wait_awaiting(&env, "t-3").await;
    approver(&env, BOB, true);
    decide(&env, BOB, "t-3", "Approved", 3600, None).unwrap();
    env.assert_events("DecisionDiscarded", 1).await;
    let waiting = env.wait_reason("t-3", "AwaitingApproval").await;
    assert!(waiting.status == "False");
    let request = env.requests.get("t-3").await.unwrap();
    assert!(
        condition(&request, "Approved").is_none(),
        "the stale approval is taken away"
    );
    assert_eq!(env.sim.stats().create.total, 0);
    decide(&env, BOB, "t-3", "Approved", 0, None).unwrap();
    env.wait_phase("t-3", Phase::Issued).await;
}

#[tokio::test]
async fn without_the_policies_the_operator_refuses_self_approval_and_approval_without_the_right() {
    let env = Env::start("appr-nopolicy").await;
    apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.ns.name, "labels": { POLICIES_OFF_LABEL: "off" } } })
            .to_string(),
    );
    requiring_approval(&env, json!({})).await;
    approver(&env, ALICE, true);
    approver(&env, CAROL, false);
    approver(&env, BOB, true);
    grant(
        Some(&env.ns.name),
        "use-clerk",
        ALICE,
        instance_rules("use", "clerkinstances", Some("clerk")),
    );
    let alice = json!({ "username": ALICE, "groups": [SUPPORT, "system:authenticated"] });
    env.create_request("self", json!({ "requester": alice }))
        .await;
    env.create_request("carol", json!({ "requester": alice }))
        .await;
    wait_awaiting(&env, "self").await;
    wait_awaiting(&env, "carol").await;
    // Nothing stops these at the door here; each writes who decided itself.
    decide(&env, ALICE, "self", "Approved", 0, Some(ALICE)).unwrap();
    decide(&env, CAROL, "carol", "Approved", 0, Some(CAROL)).unwrap();
    env.assert_events("DecisionDiscarded", 2).await;
    for name in ["self", "carol"] {
        let waiting = env.wait_reason(name, "AwaitingApproval").await;
        assert_eq!(waiting.status, "False");
    }
    assert_eq!(
        env.sim.stats().create.total,
        0,
        "no token for a self-approval or a powerless one"
    );
    decide(&env, BOB, "self", "Approved", 0, Some(BOB)).unwrap();
    env.wait_phase("self", Phase::Issued).await;
}

#[tokio::test]
async fn a_gitops_controller_named_exempt_needs_no_approval_a_person_does() {
    let env = Env::start("appr-exempt").await;
    let flux = "system:serviceaccount:flux-system:kustomize-controller";
    requiring_approval(
        &env,
        json!({ "exempt": [{ "kind": "ServiceAccount", "namespace": "flux-system", "name": "kustomize-controller" }] }),
    )
    .await;
    grant(Some(&env.ns.name), "flux", flux, requester_rules());
    grant(
        Some(&env.ns.name),
        "flux-use",
        flux,
        instance_rules("use", "clerkinstances", Some("clerk")),
    );
    let client = client_as(
        flux,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:flux-system",
        ],
    )
    .await;
    let requests =
        kube::Api::<actor_token_operator::api::ActorTokenRequest>::namespaced(client, &env.ns.name);
    let object = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": "from-git" },
        "spec": { "userId": "user_2customer", "actor": { "sub": "user_2alice" }, "instanceRef": { "kind": "ClerkInstance", "name": "clerk" } }
    }))
    .unwrap();
    requests.create(&Default::default(), &object).await.unwrap();
    env.wait_phase("from-git", Phase::Issued).await;
    alice_asks(&env, "by-hand").await;
    wait_awaiting(&env, "by-hand").await;
    // It stays waiting: nothing is minted for it while nobody approves.
    eventually(
        Duration::from_secs(30),
        "the operator to have looked at it",
        || async {
            env.requests
                .get("by-hand")
                .await
                .ok()?
                .status?
                .observed_generation
                .filter(|g| *g > 0)
        },
    )
    .await;
    assert_eq!(env.sim.stats().create.total, 1);
}
