//! Flux's objects as the test declares and reads them: the GitRepository, the Kustomizations
//! (one for kstatus, Flux's default health check, one for the healthCheckExprs of
//! examples/gitops/flux/kustomization.yaml), and what their status says.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{flux::NAMESPACE, support::repo_root};

const EXAMPLE_KUSTOMIZATION: &str = "examples/gitops/flux/kustomization.yaml";

/// How a Kustomization judges the requests it applied.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum HealthCheck {
    /// `wait: true` alone: kstatus reads the conditions.
    Kstatus,
    /// `wait: true` with the example's `healthCheckExprs` (Flux's CEL evaluator).
    Cel,
}

impl HealthCheck {
    pub fn label(self) -> &'static str {
        match self {
            HealthCheck::Kstatus => "kstatus (`wait: true`)",
            HealthCheck::Cel => "CEL (`healthCheckExprs`)",
        }
    }
}

/// One Kustomization over one folder of the repository. Request files in its folder carry
/// its prefix in their names, so that both pipelines apply into one namespace side by side.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub health: HealthCheck,
    /// The Kustomization's name (in flux-system).
    pub name: String,
    /// Its folder in the repository.
    pub folder: &'static str,
    /// Put before every request name applied through it.
    pub prefix: &'static str,
}

impl Pipeline {
    pub fn request_name(&self, base: &str) -> String {
        format!("{}-{base}", self.prefix)
    }

    pub fn file(&self, base: &str) -> String {
        format!("{}/{}.yaml", self.folder, self.request_name(base))
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn git_repositories(client: &Client) -> Api<DynamicObject> {
    let ar = resource(
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
    );
    Api::namespaced_with(client.clone(), NAMESPACE, &ar)
}

pub fn kustomizations(client: &Client) -> Api<DynamicObject> {
    let ar = resource(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    );
    Api::namespaced_with(client.clone(), NAMESPACE, &ar)
}

/// The GitRepository `name` following `branch` of `url`. Its interval is long: each push is
/// followed by a reconcile request, as a webhook Receiver of notification-controller makes
/// one when the Git host reports the push.
pub fn git_repository(name: &str, url: &str, branch: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": { "name": name, "namespace": NAMESPACE },
        "spec": { "url": url, "ref": { "branch": branch }, "interval": "10m", "timeout": "20s" },
    })
}

/// The Kustomization of `pipeline`: examples/gitops/flux/kustomization.yaml as shipped
/// (`prune: true`, `wait: true`, its `healthCheckExprs` for [`HealthCheck::Cel`], none for
/// [`HealthCheck::Kstatus`]), pointed at this test's source, folder and namespace, with
/// `timeout` and a short `retryInterval` so that a failed check is retried within seconds.
pub fn kustomization(pipeline: &Pipeline, source: &str, namespace: &str, timeout: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(EXAMPLE_KUSTOMIZATION)).unwrap();
    let mut object: Value = serde_saphyr::from_str(&text).expect("parse the example Kustomization");
    assert_eq!(object["spec"]["wait"], true, "the example waits");
    assert_eq!(object["spec"]["prune"], true, "the example prunes");
    object["metadata"] = json!({ "name": pipeline.name, "namespace": NAMESPACE });
    let spec = object["spec"].as_object_mut().unwrap();
    spec.insert(
        "sourceRef".into(),
        json!({ "kind": "GitRepository", "name": source }),
    );
    spec.insert("path".into(), json!(format!("./{}", pipeline.folder)));
    spec.insert("targetNamespace".into(), json!(namespace));
    spec.insert("timeout".into(), json!(timeout));
    spec.insert("retryInterval".into(), json!("5s"));
    if pipeline.health == HealthCheck::Kstatus {
        spec.remove("healthCheckExprs");
    } else {
        assert!(
            spec.contains_key("healthCheckExprs"),
            "the example has healthCheckExprs"
        );
    }
    object
}

/// Asks for a reconcile now, as `flux reconcile` and webhook Receivers do; `token` comes back
/// in `status.lastHandledReconcileAt` once it is done.
pub async fn request_reconcile(api: &Api<DynamicObject>, name: &str, token: &str) {
    let patch =
        json!({ "metadata": { "annotations": { "reconcile.fluxcd.io/requestedAt": token } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("annotate {name} for a reconcile: {e}"));
}

/// A condition as Flux writes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Condition {
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// What a Kustomization's status says.
#[derive(Clone, Debug, Default)]
pub struct KustomizationStatus {
    pub ready: Option<Condition>,
    /// What it is doing while `ready` is Unknown ("Running health checks for revision …").
    pub reconciling: Option<Condition>,
    pub last_applied_revision: String,
    pub last_attempted_revision: String,
    pub last_handled_reconcile_at: String,
}

impl KustomizationStatus {
    pub fn read(object: &DynamicObject) -> Self {
        let status = &object.data["status"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let condition = |type_: &str| {
            status["conditions"].as_array().and_then(|conditions| {
                conditions
                    .iter()
                    .find(|c| c["type"] == type_)
                    .map(|c| Condition {
                        status: text(&c["status"]),
                        reason: text(&c["reason"]),
                        message: text(&c["message"]),
                        last_transition_time: text(&c["lastTransitionTime"]),
                    })
            })
        };
        KustomizationStatus {
            ready: condition("Ready"),
            reconciling: condition("Reconciling"),
            last_applied_revision: text(&status["lastAppliedRevision"]),
            last_attempted_revision: text(&status["lastAttemptedRevision"]),
            last_handled_reconcile_at: text(&status["lastHandledReconcileAt"]),
        }
    }

    /// Ready, having applied `revision` and found everything healthy.
    pub fn ready_at(&self, revision: &str) -> bool {
        self.last_applied_revision == revision
            && self.ready.as_ref().is_some_and(|c| c.status == "True")
    }

    /// Applied `revision` and waiting on the health of what it applied: Ready Unknown, and
    /// Reconciling says so. Returns Reconciling's message.
    pub fn checking_health_at(&self, revision: &str) -> Option<&str> {
        let ready = self.ready.as_ref()?;
        let reconciling = self.reconciling.as_ref()?;
        let running = format!("Running health checks for revision {revision}");
        (ready.status == "Unknown"
            && reconciling.status == "True"
            && reconciling.message.starts_with(&running))
        .then_some(reconciling.message.as_str())
    }

    /// Not ready, for `reason`, after trying `revision`.
    pub fn failed_at(&self, revision: &str, reason: &str) -> Option<&Condition> {
        self.ready
            .as_ref()
            .filter(|c| c.status == "False" && c.reason == reason)
            .filter(|_| self.last_attempted_revision == revision)
    }
}
