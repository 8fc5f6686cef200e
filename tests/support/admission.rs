//! The chart's admission policies on the test control plane, installed as a user installs them
//! (rendered by Helm from the chart), and people to act as.
//!
//! A policy takes effect a few seconds after it is created, and a mutating policy on a fresh
//! CRD a little later: instead of sleeping, `install_admission_policies` probes each policy
//! (server-side dry runs, as users the probe sets up) until it answers as it should.
//!
//! In namespaces labelled `actortokens.dev/admission-policies: off` the policies don't apply
//! (the test bed renders the chart with that `namespaceSelector`), so a test can show what the
//! operator does on its own where a policy is missing, without disturbing other tests.

use std::{
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

use super::{control_plane, repo_root};

/// Label a test namespace with this (value `off`) to keep the admission policies out of it.
pub const POLICIES_OFF_LABEL: &str = "actortokens.dev/admission-policies";

const PROBE_NS: &str = "actortokens-admission-probe";
const PROBE_INSTANCE: &str = "admission-probe";
const PROBE_REQUESTER: &str = "admission-probe-requester";
const PROBE_APPROVER: &str = "admission-probe-approver";
const PROBE_DENIED_USER: &str = "user_probeDenied";

/// The chart's admission policies and bindings, as `helm template` renders them for the test
/// bed.
pub fn rendered_policies() -> String {
    let selector = json!({
        "matchExpressions": [{ "key": POLICIES_OFF_LABEL, "operator": "NotIn", "values": ["off"] }]
    });
    let out = control_plane()
        .helm()
        .args(["template", "ato"])
        .arg(repo_root().join("charts/actor-token-operator"))
        .args(["--show-only", "templates/admission-policies.yaml"])
        .arg(format!(
            "--set-json=admissionPolicies.namespaceSelector={selector}"
        ))
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template of the admission policies failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl apply --server-side` of `yaml`, as the admin.
pub fn apply_yaml(yaml: &str) {
    let mut cmd = control_plane().kubectl();
    cmd.args(["apply", "--server-side", "--force-conflicts", "-f", "-"]);
    if let Err(e) = super::run_with_input(cmd, yaml) {
        panic!("kubectl apply failed: {e}\n{yaml}");
    }
}

/// Installs the admission policies (once per test binary; the CRDs must be there) and returns
/// once each of them acts.
pub fn install_admission_policies() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        apply_yaml(&probe_fixtures());
        apply_yaml(&rendered_policies());
        wait_until_in_force();
    });
}

/// What the probes need: a namespace, instances that deny one user, a requester who may use
/// them (and only them), an approver, and one real request to decide on.
fn probe_fixtures() -> String {
    let objects = [
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": PROBE_NS } }),
        json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClusterClerkInstance",
            "metadata": { "name": PROBE_INSTANCE },
            "spec": { "secretKeyRef": { "name": "no-such-secret" }, "users": { "deny": [PROBE_DENIED_USER] } }
        }),
        json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
            "metadata": { "name": PROBE_INSTANCE, "namespace": PROBE_NS },
            "spec": { "secretKeyRef": { "name": "no-such-secret" }, "users": { "deny": [PROBE_DENIED_USER] } }
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": { "name": "actortokens-admission-probe" },
            "rules": [
                { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["create", "get"] },
                { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["get", "update", "patch"] },
                { "apiGroups": ["actortokens.dev"], "resources": ["clusterclerkinstances"], "resourceNames": [PROBE_INSTANCE], "verbs": ["use", "approve"] },
                { "apiGroups": ["actortokens.dev"], "resources": ["clerkinstances"], "resourceNames": [PROBE_INSTANCE], "verbs": ["use", "approve"] }
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "actortokens-admission-probe" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "actortokens-admission-probe" },
            "subjects": [
                { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROBE_REQUESTER },
                { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROBE_APPROVER }
            ]
        }),
    ];
    objects
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn probe_request(name: &str, user_id: &str, instance_kind: &str, instance: &str) -> Value {
    json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": name, "namespace": PROBE_NS },
        "spec": {
            "userId": user_id, "actor": { "sub": "user_probeActor" },
            "instanceRef": { "kind": instance_kind, "name": instance }
        }
    })
}

/// Runs kubectl (as `user`, if given) with `object` on stdin; stdout on success, stderr else.
fn kubectl_with(user: Option<&str>, args: &[&str], object: &Value) -> Result<String, String> {
    let mut cmd = control_plane().kubectl();
    if let Some(user) = user {
        cmd.arg(format!("--as={user}"));
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn dry_run_create(user: Option<&str>, object: &Value) -> Result<String, String> {
    kubectl_with(
        user,
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        object,
    )
}

/// Polls each probe until it answers as a policy in force answers.
fn wait_until_in_force() {
    let deadline = Instant::now() + Duration::from_secs(120);
    let until = |what: &str, check: &mut dyn FnMut() -> Result<(), String>| loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("the admission policy for {what} did not take effect: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    // Dry runs use names never created (the real probe request below is `probe`).
    let ok = probe_request("dry-run", "user_probeOk", "ClerkInstance", PROBE_INSTANCE);
    until("stamping the requester", &mut || {
        let out = dry_run_create(None, &ok)?;
        let object: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        (object["spec"]["requester"]["username"].is_string())
            .then_some(())
            .ok_or(out)
    });
    let refused =
        |user: Option<&str>, object: &Value, said: &str| match dry_run_create(user, object) {
            Err(e) if e.contains(said) => Ok(()),
            Err(e) => Err(e),
            Ok(out) => Err(format!("not refused: {out}")),
        };
    let unusable = probe_request(
        "probe",
        "user_probeOk",
        "ClusterClerkInstance",
        "no-such-instance",
    );
    until("the use right", &mut || {
        refused(Some(PROBE_REQUESTER), &unusable, "may not use")
    });
    for kind in ["ClusterClerkInstance", "ClerkInstance"] {
        let denied = probe_request("dry-run", PROBE_DENIED_USER, kind, PROBE_INSTANCE);
        until(&format!("{kind} policies"), &mut || {
            refused(Some(PROBE_REQUESTER), &denied, "users.deny")
        });
    }
    // The decision policies act on the status of a real request: one made by the probe
    // requester, left waiting on an instance without a key.
    let probe = probe_request("probe", "user_probeOk", "ClerkInstance", PROBE_INSTANCE);
    let _ = kubectl_with(Some(PROBE_REQUESTER), &["create", "-f", "-"], &probe);
    let condition = json!({
        "type": "Approved", "status": "True", "reason": "Probe", "message": "probe",
        "lastTransitionTime": "2026-01-01T00:00:00Z"
    });
    // Adds the condition to those there (an operator serving every namespace may have written
    // some), as an approver does.
    let patch = |user: &str| {
        let current = kubectl_with(
            None,
            &[
                "get",
                "actortokenrequest",
                "probe",
                "-n",
                PROBE_NS,
                "-o",
                "json",
            ],
            &json!({}),
        )?;
        let current: Value = serde_json::from_str(&current).map_err(|e| e.to_string())?;
        let mut conditions = current["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.push(condition.clone());
        let approve = json!([{ "op": "add", "path": "/status/conditions", "value": conditions }]);
        kubectl_with(
            Some(user),
            &[
                "patch",
                "actortokenrequest",
                "probe",
                "-n",
                PROBE_NS,
                "--subresource=status",
                "--type=json",
                "--dry-run=server",
                "-o",
                "json",
                "--patch-file=/dev/stdin",
            ],
            &approve,
        )
    };
    until(
        "separation of duties",
        &mut || match patch(PROBE_REQUESTER) {
            Err(e) if e.contains("someone else must approve") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    until("stamping the decider", &mut || {
        let out = patch(PROBE_APPROVER)?;
        let object: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        (object["status"]["decidedBy"]["username"] == PROBE_APPROVER)
            .then_some(())
            .ok_or(out)
    });
}

/// A client acting as `user` in `groups` (the admin impersonates them): what the API server
/// sees in `request.userInfo`, with no UID.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let plane = control_plane();
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("read the kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load the kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).expect("build a kube client")
}

/// kubectl acting as `user` in `groups`.
pub fn kubectl_as(user: &str, groups: &[&str]) -> Command {
    let mut cmd = control_plane().kubectl();
    cmd.arg(format!("--as={user}"));
    for group in groups {
        cmd.arg(format!("--as-group={group}"));
    }
    cmd
}

/// Gives `user` the RBAC `rules` in `namespace` (a Role and a RoleBinding named `name`), or
/// cluster-wide with `namespace` = `None` (a ClusterRole and ClusterRoleBinding; cluster-wide
/// names are shared by all tests, so make `name` unique).
pub fn grant(namespace: Option<&str>, name: &str, user: &str, rules: Value) {
    let (role, binding) = match namespace {
        Some(_) => ("Role", "RoleBinding"),
        None => ("ClusterRole", "ClusterRoleBinding"),
    };
    let mut meta = json!({ "name": name });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    let objects = [
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": role, "metadata": meta, "rules": rules }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": binding, "metadata": meta,
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        }),
    ];
    apply_yaml(
        &objects
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join("\n---\n"),
    );
    wait_in_force(namespace, user, &rules);
}

/// Returns once the API server's authorizer grants `user` every rule of `rules` (its first
/// verb on its first resource): RBAC takes effect a moment after the objects are written, and
/// admission policies ask the same authorizer.
fn wait_in_force(namespace: Option<&str>, user: &str, rules: &Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for rule in rules.as_array().into_iter().flatten() {
        let first = |key: &str| rule[key].as_array().and_then(|a| a.first()?.as_str());
        let (Some(verb), Some(resource)) = (first("verbs"), first("resources")) else {
            continue;
        };
        let group = first("apiGroups").unwrap_or_default();
        let (resource, subresource) = match resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub)),
            None => (resource, None),
        };
        let mut target = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        if let Some(name) = first("resourceNames") {
            target = format!("{target}/{name}");
        }
        loop {
            let mut cmd = control_plane().kubectl();
            cmd.args(["auth", "can-i", verb, &target, "--as", user, "--quiet"]);
            if let Some(sub) = subresource {
                cmd.arg(format!("--subresource={sub}"));
            }
            match namespace {
                Some(ns) => cmd.args(["-n", ns]),
                None => cmd.arg("--all-namespaces"),
            };
            if cmd.status().expect("run kubectl auth can-i").success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{user} still may not {verb} {target} a minute after the grant"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// RBAC rules: make, read and delete requests.
pub fn requester_rules() -> Value {
    json!([
        { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["create", "get", "list", "watch", "delete"] }
    ])
}

/// RBAC rules: `verb` (`use`, `approve`) on the ClerkInstance `name` (or any, with `None`).
pub fn instance_rules(verb: &str, kind_resource: &str, name: Option<&str>) -> Value {
    let mut rule =
        json!({ "apiGroups": ["actortokens.dev"], "resources": [kind_resource], "verbs": [verb] });
    if let Some(name) = name {
        rule["resourceNames"] = json!([name]);
    }
    json!([rule])
}
