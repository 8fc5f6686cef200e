//! The CRDs: the YAML in crds/ and in the chart is what the Rust types generate, and the API
//! server rejects bad requests before the operator ever sees them.

mod support;

use actor_token_operator::api::{ActorTokenRequest, crds_yaml};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{TestNamespace, control_plane, install_crds, repo_root};

#[test]
fn generated_crds_match_the_committed_yaml() {
    let generated = crds_yaml();
    for path in [
        "crds/actortokens.dev.yaml",
        "charts/actor-token-operator/crds/actortokens.dev.yaml",
    ] {
        let committed = std::fs::read_to_string(repo_root().join(path)).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is out of date with the Rust types in src/api: run `make crds` and commit the result"
        );
    }
}

/// A user's first `kubectl apply` of the CRDs is clean: no warning (such as `unrecognized
/// format "uint32"`, for a schema format Kubernetes doesn't know).
#[test]
fn applying_the_crds_warns_about_nothing() {
    let out = control_plane()
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
        ])
        .arg(repo_root().join("crds/actortokens.dev.yaml"))
        .output()
        .expect("run kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl apply failed: {stderr}");
    assert!(
        !stderr.contains("Warning"),
        "kubectl apply warned: {stderr}"
    );
    let yaml = crds_yaml();
    let formats: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("format: "))
        .filter(|f| !["int32", "int64", "date-time", "byte", "double", "float"].contains(f))
        .collect();
    assert!(
        formats.is_empty(),
        "formats Kubernetes doesn't know: {formats:?}"
    );
}

fn request(name: &str, spec: Value) -> ActorTokenRequest {
    serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1",
        "kind": "ActorTokenRequest",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Creates through an untyped API, so that what serde would refuse still reaches the server.
async fn create_raw(api: &Api<DynamicObject>, name: &str, spec: Value) -> Result<(), String> {
    let resource = ApiResource::erase::<ActorTokenRequest>(&());
    let object = DynamicObject::new(name, &resource).data(json!({ "spec": spec }));
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_api_server_rejects_bad_requests() {
    install_crds();
    let client = control_plane().client().await;
    let ns = TestNamespace::create(&client, "crd-validation").await;
    let api = Api::<ActorTokenRequest>::namespaced(client.clone(), &ns.name);
    let raw = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<ActorTokenRequest>(&()),
    );
    let good = json!({ "userId": "user_abc", "actor": { "sub": "user_support" } });

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no-user",
            json!({ "actor": { "sub": "user_s" } }),
            "spec.userId: Required",
        ),
        (
            "bad-user",
            json!({ "userId": "bob", "actor": { "sub": "user_s" } }),
            "spec.userId",
        ),
        (
            "no-actor",
            json!({ "userId": "user_abc" }),
            "spec.actor: Required",
        ),
        (
            "no-sub",
            json!({ "userId": "user_abc", "actor": { "name": "Ann" } }),
            "spec.actor.sub: Required",
        ),
        (
            "zero",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "expiresIn": "0s" }),
            "must be longer than zero",
        ),
        (
            "negative",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "expiresIn": "-5m" }),
            "spec.expiresIn",
        ),
        (
            "too-long",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "expiresIn": "25h" }),
            "must be at most 24h",
        ),
        (
            "session-too-long",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "sessionMaxDuration": "48h" }),
            "must be at most 24h",
        ),
        (
            "not-a-duration",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "expiresIn": "soon" }),
            "spec.expiresIn",
        ),
        (
            "bad-kind",
            json!({ "userId": "user_abc", "actor": { "sub": "s" }, "instanceRef": { "kind": "Issuer", "name": "x" } }),
            "spec.instanceRef.kind",
        ),
    ];
    for (name, spec, expected) in cases {
        let error = create_raw(&raw, name, spec).await.expect_err(name);
        assert!(
            error.contains(expected),
            "{name}: expected {expected:?} in {error}"
        );
    }

    // Defaults are filled in by the API server, and extra actor keys are kept.
    let mut spec = good.clone();
    spec["actor"]["ticket"] = json!("T-1");
    let created = api
        .create(&PostParams::default(), &request("defaults", spec))
        .await
        .unwrap();
    assert_eq!(created.spec.expires_in.as_str(), "1h");
    assert_eq!(created.spec.session_max_duration.as_str(), "30m");
    assert_eq!(created.spec.instance_ref.name, "default");
    assert_eq!(created.spec.actor.extra["ticket"], json!("T-1"));

    // The spec is immutable.
    let patch = json!({ "spec": { "userId": "user_other" } });
    let error = api
        .patch("defaults", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("a spec change must be refused");
    assert!(error.to_string().contains("spec is immutable"), "{error}");
    // Metadata may still change (labels, and the operator's finalizer).
    let patch = json!({ "metadata": { "labels": { "team": "support" } } });
    api.patch("defaults", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}
