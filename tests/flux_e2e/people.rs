//! The people beside Flux in the approval steps, each acting as themselves (`kubectl --as`)
//! with only the RBAC the README's setup gives them: Alice, who applies a request by hand,
//! and Bob, who approves or denies requests through one instance.

use serde_json::{Value, json};

use super::support::{
    admission::{grant, instance_rules, kubectl_as, requester_rules},
    run_with_input as run,
};

pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";

/// `user` may make and read requests in `namespace`, through ClerkInstance `instance` only.
pub fn may_request(namespace: &str, user: &str, instance: &str) {
    let name = role_name("requester", user);
    grant(Some(namespace), &name, user, requester_rules());
    grant(
        Some(namespace),
        &format!("{name}-use"),
        user,
        instance_rules("use", "clerkinstances", Some(instance)),
    );
}

/// `user` may read requests in `namespace`, write their status, and approve or deny those
/// made through ClerkInstance `instance`.
pub fn may_approve(namespace: &str, user: &str, instance: &str) {
    let mut rules = vec![
        json!({ "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["get", "list", "watch"] }),
        json!({ "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["get", "update", "patch"] }),
    ];
    rules.extend(
        instance_rules("approve", "clerkinstances", Some(instance))
            .as_array()
            .unwrap()
            .clone(),
    );
    grant(
        Some(namespace),
        &role_name("approver", user),
        user,
        Value::Array(rules),
    );
}

fn role_name(job: &str, user: &str) -> String {
    format!("{job}-{}", user.split('@').next().unwrap())
}

/// `user` applies `yaml` (a request file) in `namespace`, as a person would with kubectl.
pub fn apply_as(user: &str, namespace: &str, yaml: &str) -> Result<String, String> {
    let mut cmd = kubectl_as(user, &[]);
    cmd.args(["-n", namespace, "apply", "-f", "-"]);
    run(cmd, yaml)
}

/// `user` denies request `name`: adds `Denied=True` with `message` through the status
/// subresource (the conditions there plus theirs, as README "Approvals" describes); the API
/// server's refusal on error.
pub fn deny(user: &str, namespace: &str, name: &str, message: &str) -> Result<(), String> {
    let mut get = kubectl_as(user, &[]);
    get.args(["-n", namespace, "get", "atr", name, "-o", "json"]);
    let current: Value =
        serde_json::from_str(&run(get, "")?).map_err(|e| format!("read {name}: {e}"))?;
    let mut conditions = current["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    conditions.push(json!({
        "type": "Denied", "status": "True", "reason": "ByHand",
        "message": message, "lastTransitionTime": now.to_string(),
    }));
    // `test` first: if anyone wrote the status since it was read, the patch fails rather than
    // dropping their conditions.
    let patch = json!([
        { "op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"] },
        { "op": "add", "path": "/status/conditions", "value": conditions },
    ]);
    let mut cmd = kubectl_as(user, &[]);
    cmd.args([
        "-n",
        namespace,
        "patch",
        "atr",
        name,
        "--subresource=status",
        "--type=json",
        "--patch-file=/dev/stdin",
    ]);
    run(cmd, &patch.to_string()).map(drop)
}
