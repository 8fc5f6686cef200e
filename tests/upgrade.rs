//! Upgrading from the last release as a user would: that release's CRDs and operator run
//! first and leave requests in every phase, then this version's CRDs, admission policies and
//! operator take over. Requests made before have no `spec.requester`.
//!
//! `make upgrade-test` runs it: `hack/upgrade-base.sh` builds the last release's operator
//! (it needs the git history), and the test gets a control plane of its own, since it
//! replaces the cluster's CRDs with old ones. Not part of `make test`.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use actor_token_operator::api::{ActorTokenRequest, Phase};
use clerk_sim::{Faults, SimConfig, TokenStatus};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::{Value, json};
use support::{
    TestNamespace, control_plane,
    env::{Env, KEY, WAIT, ready_condition},
    eventually, repo_root,
};

/// A Clerk user the simulator refuses, as Clerk refuses a user that doesn't exist.
const REFUSED_USER: &str = "user_2refusedByClerk";
/// The link that is still live at the upgrade and must expire afterwards: long enough for the
/// upgrade to finish first, even on a busy machine.
const EXPIRES_AFTER_UPGRADE: &str = "1m30s";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the last release's operator and a control plane of its own: make upgrade-test"]
async fn an_upgrade_keeps_every_promise_and_refuses_requests_without_a_requester() {
    let release = Release::built();
    let plane = control_plane();
    assert!(
        plane.private,
        "this test replaces the cluster's CRDs with {}'s: run it without ENVTEST_DIR, on a \
         control plane of its own (make upgrade-test does)",
        release.commit
    );

    // --- The last release, as installed today: its CRDs and its operator, no policies.
    install_crds(&release.tree.join("crds/actortokens.dev.yaml"));
    let client = plane.client().await;
    let ns = TestNamespace::create(&client, "upgrade").await;
    let sim = clerk_sim::start(SimConfig {
        secret_keys: vec![KEY.into()],
        faults: Faults {
            rejected_users: vec![REFUSED_USER.into()],
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("start the Clerk simulator");
    let mut env = Env {
        requests: Api::namespaced(client.clone(), &ns.name),
        secrets: Api::namespaced(client.clone(), &ns.name),
        client,
        ns,
        sim,
        operator: None,
    };
    env.create_instance("clerk", "clerk-key").await;
    // An instance whose key Secret is not there yet: its requests wait, Pending.
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "key-not-yet", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "key-not-yet", "key": "secretKey" } }
    }))
    .await;
    let mut old = OldOperator::start(&release, &env.ns.name);

    env.apply(old_request(&env, "expired", json!({ "expiresIn": "3s" })))
        .await;
    env.apply(old_request(&env, "revoked", json!({}))).await;
    env.apply(old_request(
        &env,
        "failed",
        json!({ "userId": REFUSED_USER }),
    ))
    .await;
    env.apply(old_request(
        &env,
        "pending",
        json!({ "instanceRef": { "kind": "ClerkInstance", "name": "key-not-yet" } }),
    ))
    .await;
    env.apply(old_request(&env, "deleted-after-upgrade", json!({})))
        .await;
    env.wait_phase("expired", Phase::Expired).await;
    env.wait_phase("revoked", Phase::Issued).await;
    env.secrets
        .delete("revoked", &DeleteParams::default())
        .await
        .expect("delete the Secret of `revoked`");
    env.wait_phase("revoked", Phase::Revoked).await;
    let failed = env.wait_phase("failed", Phase::Failed).await;
    assert_eq!(reason(&failed), "ClerkRejected", "{failed:?}");
    env.wait_reason("pending", "InstanceNotReady").await;
    env.wait_phase("deleted-after-upgrade", Phase::Issued).await;
    // Made last, so that it is still live when the upgrade is done.
    env.apply(old_request(
        &env,
        "expires-after-upgrade",
        json!({ "expiresIn": EXPIRES_AFTER_UPGRADE }),
    ))
    .await;
    env.wait_phase("expires-after-upgrade", Phase::Issued).await;

    // --- The upgrade, in the README's order: the CRDs first, while the old operator runs;
    // then the chart brings the admission policies, and the Deployment rolls.
    install_crds(&repo_root().join("crds/actortokens.dev.yaml"));
    support::admission::install_admission_policies();
    old.stop().await;
    env.assert_no_credential_in("the old operator's output", &old.output());

    let before = env
        .requests
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        before.iter().all(|r| r.spec.requester.is_none()),
        "the last release records no requester"
    );
    let tokens_before = token_ids(&env);
    let calls_before = env.sim.stats();
    // The waiting request's instance becomes usable meanwhile: nothing but its missing
    // requester stands between it and a token now.
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "key-not-yet", "namespace": env.ns.name },
        "stringData": { "secretKey": KEY }
    }))
    .await;
    env.start_operator();

    // The Pending request without a requester fails, saying what to do, and gets no token.
    let refused = env.wait_reason("pending", "RequesterUnknown").await;
    let pending = env.requests.get("pending").await.unwrap();
    assert_eq!(pending.phase(), Some(Phase::Failed), "{pending:?}");
    assert_eq!(refused.status, "False");
    let says = refused.message.to_lowercase();
    assert!(
        says.contains("delete") && (says.contains("again") || says.contains("new request")),
        "the message should say to delete the request and ask again: {}",
        refused.message
    );
    eventually(WAIT, "a RequesterUnknown event", || async {
        (events_with_reason(&env, "RequesterUnknown").await > 0).then_some(())
    })
    .await;

    // Once the new operator has reconciled every request as it is now (each as the old one
    // left it, the refused one since its refusal): no token made, no Clerk call, no write to a
    // settled request, the live links untouched, and the refusal told once.
    // (Env::settle would nudge the requests: a write, which this test must not make.)
    for request in before.iter().chain([&pending]) {
        wait_reconciled(&env, request).await;
    }
    assert_eq!(
        token_ids(&env),
        tokens_before,
        "no token minted after the upgrade"
    );
    assert_eq!(
        env.sim.stats(),
        calls_before,
        "no Clerk call after the upgrade"
    );
    assert_eq!(
        events_with_reason(&env, "RequesterUnknown").await,
        1,
        "one event tells why the request failed"
    );
    let after = env
        .requests
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_unwritten(&before, &after, &["expired", "revoked", "failed"]);
    for name in ["expires-after-upgrade", "deleted-after-upgrade"] {
        let request = env.wait_phase(name, Phase::Issued).await;
        assert!(
            env.secrets.get_opt(name).await.unwrap().is_some(),
            "{name} keeps its link"
        );
        let token = token_of(&request);
        assert_eq!(
            env.sim.token(&token).unwrap().status,
            TokenStatus::Pending,
            "{name}'s token is live"
        );
    }

    // An Issued request made before the upgrade still expires: the new operator wakes up at
    // its expiresAt, ends its token and deletes its Secret.
    let expiring = env.requests.get("expires-after-upgrade").await.unwrap();
    let expires_at = expiring
        .status
        .as_ref()
        .unwrap()
        .expires_at
        .clone()
        .unwrap();
    let left = expires_at
        .0
        .duration_since(k8s_openapi::jiff::Timestamp::now());
    assert!(
        left.is_positive(),
        "the upgrade took longer than the {EXPIRES_AFTER_UPGRADE} the link lives; raise \
         EXPIRES_AFTER_UPGRADE"
    );
    let left = Duration::try_from(left).unwrap();
    eprintln!("upgraded; the link of expires-after-upgrade lives {left:?} more");
    eventually(
        left + WAIT,
        "expires-after-upgrade to be Expired",
        || async {
            let request = env.requests.get("expires-after-upgrade").await.unwrap();
            (request.phase() == Some(Phase::Expired)).then_some(())
        },
    )
    .await;
    let token = env.sim.token(&token_of(&expiring)).unwrap();
    assert!(
        matches!(token.status, TokenStatus::Revoked | TokenStatus::Expired),
        "the expired request's token can't be used any more: {token:?}"
    );
    support::eventually(WAIT, "the expired request's Secret to go", || async {
        env.secrets
            .get_opt("expires-after-upgrade")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // One deleted after the upgrade is revoked at Clerk before it goes.
    let deleted = env.requests.get("deleted-after-upgrade").await.unwrap();
    env.requests
        .delete("deleted-after-upgrade", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("deleted-after-upgrade").await;
    assert_eq!(
        env.sim.token(&token_of(&deleted)).unwrap().status,
        TokenStatus::Revoked,
        "the token of a request deleted after the upgrade is revoked"
    );
    assert!(
        env.secrets
            .get_opt("deleted-after-upgrade")
            .await
            .unwrap()
            .is_none()
    );

    // Through all of it, the settled requests stayed as they were, and no token was made.
    let last = env
        .requests
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_unwritten(&before, &last, &["expired", "revoked", "failed"]);
    assert_eq!(
        env.sim.stats().create,
        calls_before.create,
        "no create call after the upgrade"
    );
    assert_eq!(
        token_ids(&env),
        tokens_before,
        "no token minted after the upgrade"
    );
    env.assert_no_credential_leaked().await;
}

/// The last release, built by `hack/upgrade-base.sh`: its commit, its operator binary and its
/// tree.
struct Release {
    commit: String,
    binary: PathBuf,
    tree: PathBuf,
}

impl Release {
    fn built() -> Release {
        let dir = std::env::var_os("UPGRADE_BASE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/upgrade-base"));
        let commit = std::fs::read_to_string(dir.join("commit")).unwrap_or_else(|e| {
            panic!(
                "no release built in {} ({e}): run `make upgrade-test`, or hack/upgrade-base.sh \
                 and then this test",
                dir.display()
            )
        });
        Release {
            commit: commit.trim().to_owned(),
            binary: dir.join("actor-token-operator"),
            tree: dir.join("src"),
        }
    }
}

/// Applies the CRDs in `file` as the README says (`kubectl apply --server-side`) and waits
/// until they are served.
fn install_crds(file: &Path) {
    let yaml =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    support::admission::apply_yaml(&yaml);
    let out = control_plane()
        .kubectl()
        .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
        .arg(file)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "the CRDs of {} are not established: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last release's operator process. Started with its own flags (it knows none of this
/// version's, such as the Clerk host list), serving one namespace.
struct OldOperator {
    child: Child,
    log: PathBuf,
}

impl OldOperator {
    fn start(release: &Release, namespace: &str) -> OldOperator {
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!(
            "operator-{}-{}.log",
            &release.commit[..12],
            std::process::id()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&release.binary)
            .args(["run", "--namespaces", namespace])
            .args(["--cluster-instance-namespace", namespace])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--clerk-timeout-seconds",
                "2",
            ])
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .env("RUST_LOG", "info,actor_token_operator=debug,kube=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", release.binary.display()));
        OldOperator { child, log }
    }

    /// SIGTERM, as the kubelet sends when the Deployment rolls, and waits for it to exit.
    async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        let child = std::sync::Mutex::new(&mut self.child);
        eventually(WAIT, "the old operator to exit", || async {
            child.lock().unwrap().try_wait().unwrap().map(|_| ())
        })
        .await;
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OldOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request as the last release's users wrote it (no requester: nothing stamped one).
fn old_request(env: &Env, name: &str, spec: Value) -> Value {
    let mut full = json!({
        "userId": "user_2abcImpersonated",
        "actor": { "sub": "user_2xyzSupport" },
        "instanceRef": { "kind": "ClerkInstance", "name": "clerk" },
        "reason": "TICKET-1 (before the upgrade)"
    });
    support::env::merge(&mut full, spec);
    json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": name, "namespace": env.ns.name },
        "spec": full
    })
}

fn reason(request: &ActorTokenRequest) -> String {
    ready_condition(request)
        .map(|c| c.reason)
        .unwrap_or_default()
}

fn token_of(request: &ActorTokenRequest) -> String {
    request
        .status
        .as_ref()
        .and_then(|s| s.token_id.clone())
        .unwrap_or_else(|| panic!("{} names no token: {request:?}", request.name_any()))
}

/// The requests `names` are as they were `before`: not written since. Names who wrote them
/// (their managedFields) when they were.
fn assert_unwritten(before: &[ActorTokenRequest], now: &[ActorTokenRequest], names: &[&str]) {
    let find = |list: &[ActorTokenRequest], name: &str| {
        list.iter()
            .find(|r| r.name_any() == name)
            .cloned()
            .unwrap_or_else(|| panic!("request {name} is gone"))
    };
    let writers = |r: &ActorTokenRequest| {
        r.managed_fields()
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} at {}",
                    f.manager.as_deref().unwrap_or("?"),
                    f.operation.as_deref().unwrap_or("?"),
                    f.subresource.as_deref().unwrap_or("(object)"),
                    f.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    for name in names {
        let (then, now) = (find(before, name), find(now, name));
        assert_eq!(
            then.resource_version(),
            now.resource_version(),
            "the settled request `{name}` was written: its writers were {:?} and are {:?}; \
             it was {:?} and is {:?}",
            writers(&then),
            writers(&now),
            then,
            now
        );
    }
}

/// The IDs of every token the simulator ever made.
fn token_ids(env: &Env) -> BTreeSet<String> {
    env.sim.tokens().into_iter().map(|t| t.id).collect()
}

/// Waits until the new operator has reconciled `request` as it is (or later): whatever it
/// would do about it, it has done.
async fn wait_reconciled(env: &Env, request: &ActorTokenRequest) {
    let operator = env.operator.as_ref().expect("the new operator runs");
    let name = request.name_any();
    let version: u64 = request
        .resource_version()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion");
    eventually(
        WAIT,
        &format!("the new operator to reconcile {name} at version {version}"),
        || async {
            operator
                .reconciled_since(&env.ns.name, &name, version)
                .then_some(())
        },
    )
    .await;
}

/// How many events in the test's namespace have `reason`.
async fn events_with_reason(env: &Env, reason: &str) -> usize {
    env.events()
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}
