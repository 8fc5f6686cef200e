//! What GitOps tools make of a request's status. Requests are driven through every phase by
//! the operator on the local control plane, read back, and judged by the real
//! implementations (built from hack/gitops/ by hack/gitops-tools.sh):
//! - kstatus (sigs.k8s.io/cli-utils; Flux's default health check),
//! - Flux's CEL evaluator (github.com/fluxcd/pkg/runtime/cel) with the healthCheckExprs of
//!   examples/gitops/flux/kustomization.yaml,
//! - the Argo CD health script examples/gitops/argocd/actortokenrequest-health.lua, run by
//!   gopher-lua with only the libraries Argo CD gives argocd-cm scripts.

mod support;

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use actor_token_operator::api::{ActorTokenRequest, Phase};
use clerk_sim::Faults;
use kube::{
    Api,
    api::{ApiResource, DeleteParams, DynamicObject},
};
use serde_json::{Value, json};
use support::{TestNamespace, env::Env, repo_root};

const REJECTED_USER: &str = "user_2noSuchUser";
const ARGO_SCRIPT: &str = "examples/gitops/argocd/actortokenrequest-health.lua";
const ARGO_CM: &str = "examples/gitops/argocd/argocd-cm.yaml";
const FLUX_KUSTOMIZATION: &str = "examples/gitops/flux/kustomization.yaml";

/// One tool's verdict on one object.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    status: String,
    message: String,
}

/// The bin directory of the GitOps tools (built once, then cached by hack/gitops-tools.sh).
fn tools() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("hack/gitops-tools.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/gitops-tools.sh");
        assert!(
            out.status.success(),
            "building the GitOps tools failed (see the [gitops-tools] lines above)"
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Runs a tool on `objects` (fed as a JSON array on stdin) and returns its verdicts by object
/// name, or what it printed on stderr if it failed.
fn run(tool: &str, args: &[&str], objects: &[Value]) -> Result<BTreeMap<String, Verdict>, String> {
    let mut child = Command::new(tools().join(tool))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {tool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(objects.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let verdicts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
            (
                text("name"),
                Verdict {
                    status: text("status"),
                    message: text("message"),
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    assert_eq!(
        verdicts.len(),
        objects.len(),
        "{tool}: one verdict per object"
    );
    Ok(verdicts)
}

fn kstatus(objects: &[Value]) -> BTreeMap<String, Verdict> {
    run("kstatus", &[], objects).unwrap_or_else(|e| panic!("kstatus failed: {e}"))
}

fn flux(objects: &[Value]) -> Result<BTreeMap<String, Verdict>, String> {
    run(
        "flux-health",
        &["-kustomization", FLUX_KUSTOMIZATION],
        objects,
    )
}

/// The Argo CD verdicts, from the script file and from the argocd-cm snippet (which must
/// agree: the snippet is what users paste).
fn argo(objects: &[Value]) -> BTreeMap<String, Verdict> {
    let from_script = run("argocd-health", &["-script", ARGO_SCRIPT], objects)
        .unwrap_or_else(|e| panic!("the Argo CD health script failed: {e}"));
    let from_cm = run("argocd-health", &["-argocd-cm", ARGO_CM], objects)
        .unwrap_or_else(|e| panic!("the argocd-cm health script failed: {e}"));
    assert_eq!(from_script, from_cm, "argocd-cm.yaml runs the same script");
    from_script
}

/// A request as the API server serves it (every field, as GitOps tools read it).
async fn live(env: &Env, ns: &str, name: &str) -> Value {
    let resource = ApiResource::erase::<ActorTokenRequest>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), ns, &resource);
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// What the tools rely on besides the conditions' truth: the status says which generation
/// it describes, each condition too, and Reconciling and Stalled never both hold.
fn assert_observed(object: &Value) {
    let name = text(&object["metadata"], "name");
    let generation = &object["metadata"]["generation"];
    assert_eq!(
        &object["status"]["observedGeneration"], generation,
        "{name}: status.observedGeneration"
    );
    // The operator's conditions; an approver's Approved or Denied is the approver's to date.
    let managed = ["Ready", "Reconciling", "Stalled", "Expired", "Revoked"];
    for c in object["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| managed.contains(&text(c, "type")))
    {
        assert_eq!(
            &c["observedGeneration"], generation,
            "{name}: observedGeneration of {}",
            c["type"]
        );
    }
    let holds = |t| condition(object, t).is_some_and(|c| c["status"] == "True");
    assert!(
        !(holds("Reconciling") && holds("Stalled")),
        "{name}: Reconciling and Stalled both True"
    );
}

#[tokio::test]
async fn every_phase_reads_right_in_kstatus_flux_and_argo_cd() {
    let mut env = Env::start_with(
        "gitops",
        Faults {
            rejected_users: vec![REJECTED_USER.into()],
            ..Default::default()
        },
    )
    .await;
    let ns = env.ns.name.clone();
    env.create_request(
        "pending",
        json!({ "instanceRef": { "kind": "ClerkInstance", "name": "missing" } }),
    )
    .await;
    env.create_request("issued", json!({})).await;
    env.create_request("failed", json!({ "userId": REJECTED_USER }))
        .await;
    env.create_request("expired", json!({ "expiresIn": "3s" }))
        .await;
    env.create_request("revoked", json!({})).await;
    // Through an instance that requires approval: one waits, one is denied by an approver.
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "gated", "namespace": ns },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key" }, "approval": { "required": true } }
    }))
    .await;
    let gated = json!({ "instanceRef": { "kind": "ClerkInstance", "name": "gated" } });
    env.create_request("awaiting", gated.clone()).await;
    env.create_request("denied", gated).await;
    support::admission::grant(
        Some(&ns),
        "approver",
        "bob@example.com",
        json!([
            { "apiGroups": ["actortokens.dev"], "resources": ["clerkinstances"], "resourceNames": ["gated"], "verbs": ["approve"] },
            { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["get", "patch"] }
        ]),
    );
    env.wait_reason("denied", "AwaitingApproval").await;
    let deny = json!([{ "op": "add", "path": "/status/conditions/-", "value": {
        "type": "Denied", "status": "True", "reason": "NotJustified", "message": "no ticket for this",
        "lastTransitionTime": "2026-01-01T00:00:00Z" } }]);
    let out = support::admission::kubectl_as("bob@example.com", &[])
        .args([
            "-n",
            &ns,
            "patch",
            "atr",
            "denied",
            "--subresource=status",
            "--type=json",
            "-p",
        ])
        .arg(deny.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    env.wait_reason("pending", "InstanceNotReady").await;
    env.wait_reason("awaiting", "AwaitingApproval").await;
    env.wait_phase("denied", Phase::Denied).await;
    env.wait_phase("issued", Phase::Issued).await;
    env.wait_phase("failed", Phase::Failed).await;
    env.wait_phase("revoked", Phase::Issued).await;
    env.secrets
        .delete("revoked", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_phase("revoked", Phase::Revoked).await;
    env.wait_phase("expired", Phase::Expired).await;

    let mut objects = Vec::new();
    for name in [
        "pending", "awaiting", "issued", "failed", "denied", "expired", "revoked",
    ] {
        let object = live(&env, &ns, name).await;
        assert_observed(&object);
        objects.push(object);
    }
    let by_name = |name: &str| objects.iter().find(|o| o["metadata"]["name"] == name);
    let by_kstatus = kstatus(&objects);
    let by_flux = flux(&objects).unwrap_or_else(|e| panic!("Flux's CEL evaluation failed: {e}"));
    let by_argo = argo(&objects);

    for (name, verdict) in &by_argo {
        eprintln!(
            "{name:>8}: kstatus {:<10} Flux CEL {:<10} Argo CD {} ({})",
            by_kstatus[name].status, by_flux[name].status, verdict.status, verdict.message
        );
    }

    // The table: phase -> (kstatus and Flux, Argo CD).
    for (name, expected, argo_expected) in [
        ("pending", "InProgress", "Progressing"),
        ("awaiting", "InProgress", "Progressing"),
        ("issued", "Current", "Healthy"),
        ("failed", "Failed", "Degraded"),
        ("denied", "Failed", "Degraded"),
        ("expired", "Current", "Healthy"),
        ("revoked", "Current", "Healthy"),
    ] {
        let object = by_name(name).unwrap();
        let context = format!("{name}: {:#}", object["status"]);
        assert_eq!(by_kstatus[name].status, expected, "kstatus, {context}");
        assert_eq!(by_flux[name].status, expected, "Flux CEL, {context}");
        assert_eq!(by_argo[name].status, argo_expected, "Argo CD, {context}");
    }

    // Argo CD's messages say what a person needs to know.
    let status = |name| &by_name(name).unwrap()["status"];
    let pending_ready = condition(by_name("pending").unwrap(), "Ready").unwrap();
    assert!(!text(pending_ready, "message").is_empty());
    assert_eq!(by_argo["pending"].message, text(pending_ready, "message"));
    assert_eq!(
        by_argo["issued"].message,
        format!("issued; expires at {}", text(status("issued"), "expiresAt"))
    );
    let failed_ready = condition(by_name("failed").unwrap(), "Ready").unwrap();
    assert_eq!(text(failed_ready, "reason"), "ClerkRejected");
    assert_eq!(
        by_argo["failed"].message,
        format!("ClerkRejected: {}", text(failed_ready, "message"))
    );
    assert!(
        by_argo["failed"].message.contains(REJECTED_USER),
        "{:?}",
        by_argo["failed"]
    );
    assert_eq!(
        by_argo["expired"].message,
        format!("expired at {}", text(status("expired"), "expiresAt"))
    );
    let awaiting_ready = condition(by_name("awaiting").unwrap(), "Ready").unwrap();
    assert_eq!(text(awaiting_ready, "reason"), "AwaitingApproval");
    assert_eq!(by_argo["awaiting"].message, text(awaiting_ready, "message"));
    let denied_ready = condition(by_name("denied").unwrap(), "Ready").unwrap();
    assert_eq!(
        by_argo["denied"].message,
        format!("Denied: {}", text(denied_ready, "message"))
    );
    assert!(
        by_argo["denied"].message.contains("no ticket for this"),
        "the approver's words reach the health view: {:?}",
        by_argo["denied"]
    );
    let revoked = condition(by_name("revoked").unwrap(), "Revoked").unwrap();
    assert!(
        by_argo["revoked"].message.starts_with("revoked: ")
            && by_argo["revoked"].message.len() > "revoked: ".len(),
        "{:?}",
        by_argo["revoked"]
    );
    assert!(
        [text(revoked, "message"), text(revoked, "reason")]
            .iter()
            .any(|t| by_argo["revoked"].message == format!("revoked: {t}")),
        "{:?} from {revoked}",
        by_argo["revoked"]
    );

    // A generation the operator has not observed yet is in progress for every tool, whatever
    // the conditions say. The spec is immutable, so the API server never bumps a request's
    // generation while the operator could see it; the object read back is edited instead.
    let mut unobserved = by_name("issued").unwrap().clone();
    let generation = unobserved["metadata"]["generation"].as_i64().unwrap();
    unobserved["metadata"]["generation"] = json!(generation + 1);
    unobserved["metadata"]["name"] = json!("issued-next-generation");
    let objects = [unobserved];
    assert_eq!(
        kstatus(&objects)["issued-next-generation"].status,
        "InProgress"
    );
    assert_eq!(
        flux(&objects).unwrap()["issued-next-generation"].status,
        "InProgress"
    );
    let verdict = &argo(&objects)["issued-next-generation"];
    assert_eq!(verdict.status, "Progressing");
    assert_eq!(
        verdict.message,
        format!(
            "waiting for the operator to observe generation {}",
            generation + 1
        )
    );

    // A request no operator has seen yet (its namespace isn't served) reads back with the
    // CRD's status default, `observedGeneration: 0`: a generation not yet observed, so every
    // tool says in progress (without it, kstatus would call the object current).
    let unserved = TestNamespace::create(&env.client, "gitops-unserved").await;
    let fresh: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": "fresh" },
        "spec": { "userId": "user_2abcImpersonated", "actor": { "sub": "user_2xyzSupport" } },
    }))
    .unwrap();
    Api::<ActorTokenRequest>::namespaced(env.client.clone(), &unserved.name)
        .create(&Default::default(), &fresh)
        .await
        .unwrap();
    let fresh = live(&env, &unserved.name, "fresh").await;
    assert_eq!(
        fresh["status"],
        json!({ "observedGeneration": 0 }),
        "{fresh:#}"
    );
    let objects = [fresh];
    assert_eq!(kstatus(&objects)["fresh"].status, "InProgress");
    assert_eq!(flux(&objects).unwrap()["fresh"].status, "InProgress");
    let verdict = &argo(&objects)["fresh"];
    assert_eq!(
        (verdict.status.as_str(), verdict.message.as_str()),
        (
            "Progressing",
            "waiting for the operator to observe generation 1"
        )
    );

    env.assert_no_credential_leaked().await;
}

/// The Argo CD runner gives scripts what Argo CD gives argocd-cm scripts, and no more: else
/// the health script passing in it would prove nothing about Argo CD.
#[test]
fn the_argo_cd_runner_has_only_the_argocd_cm_libraries() {
    let dir = repo_root().join("target/gitops-test");
    std::fs::create_dir_all(&dir).unwrap();
    let object = json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": "r", "namespace": "ns", "generation": 1 },
    });
    let run_script = |name: &str, source: &str, open_libs: bool| {
        let path = dir.join(name);
        std::fs::write(&path, source).unwrap();
        let path = path.to_str().unwrap().to_string();
        let mut args = vec!["-script", path.as_str()];
        if open_libs {
            args.push("-use-open-libs");
        }
        run("argocd-health", &args, std::slice::from_ref(&object))
            .map(|verdicts| verdicts["r"].clone())
    };

    let uses_string = r#"return { status = "Healthy", message = string.upper("x") }"#;
    let error = run_script("string.lua", uses_string, false).unwrap_err();
    assert!(error.contains("upper"), "{error}");
    let verdict = run_script("string.lua", uses_string, true).unwrap();
    assert_eq!(
        verdict.message, "X",
        "with useOpenLibs the string library is there"
    );

    let uses_math = r#"return { status = "Healthy", message = tostring(math) }"#;
    assert_eq!(
        run_script("math.lua", uses_math, false).unwrap().message,
        "nil"
    );

    // os is not a global; require("os") gives time and date only.
    let os = r#"local os2 = require("os")
      return { status = "Healthy", message = tostring(os) .. " " .. type(os2.time) .. " " .. tostring(os2.exit) }"#;
    assert_eq!(
        run_script("os.lua", os, false).unwrap().message,
        "nil function nil"
    );

    // obj holds the object; an unknown status is reported as Argo CD does.
    let echo = r#"return { status = obj.metadata.name == "r" and "Bogus" or "Healthy" }"#;
    assert_eq!(
        run_script("echo.lua", echo, false).unwrap(),
        Verdict {
            status: "Unknown".into(),
            message: "Lua returned an invalid health status".into()
        }
    );
}

/// The argocd-cm snippet users paste carries exactly the script the tests run.
#[test]
fn the_argocd_cm_snippet_carries_the_shipped_script() {
    let script = std::fs::read_to_string(repo_root().join(ARGO_SCRIPT)).unwrap();
    let cm: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(repo_root().join(ARGO_CM)).unwrap())
            .expect("argocd-cm.yaml is YAML");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(
        cm["data"]["resource.customizations.health.actortokens.dev_ActorTokenRequest"]
            .as_str()
            .unwrap(),
        script,
        "examples/gitops/argocd/argocd-cm.yaml must embed actortokenrequest-health.lua unchanged"
    );
    assert!(
        cm["data"]
            .get("resource.customizations.useOpenLibs.actortokens.dev_ActorTokenRequest")
            .is_none(),
        "the script needs no opt-in libraries"
    );
    // The chart's README offers the same snippet (`helm show readme`).
    let chart_readme =
        std::fs::read_to_string(repo_root().join("charts/actor-token-operator/README.md")).unwrap();
    let snippet = std::fs::read_to_string(repo_root().join(ARGO_CM)).unwrap();
    assert!(
        chart_readme.contains(&format!("```yaml\n{snippet}```")),
        "charts/actor-token-operator/README.md must carry examples/gitops/argocd/argocd-cm.yaml unchanged"
    );
}
