//! The stage the steps play on: the operator and the Clerk simulator (support's `Env`), Flux's
//! controllers, the Git server and repository, and the two Kustomizations, with the moves a
//! step makes (write request files, merge, wait on what Flux says) and its report.

use std::time::{Duration, Instant};

use super::{
    flux::{self, Flux},
    git::{Commit, GitServer, Repo},
    objects::{self, HealthCheck, KustomizationStatus, Pipeline},
    report::Report,
    support::{control_plane, env::Env, eventually},
};
use actor_token_operator::api::{ActorTokenRequest, Phase};
use clerk_sim::Faults;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject},
};

/// A user Clerk (the simulator) refuses, as it refuses a user that doesn't exist.
pub const REJECTED_USER: &str = "user_2noSuchUser";
/// How long a step may take to show what it waits for: Flux polls health every 5 s and
/// retries a failed reconcile after `retryInterval` (5 s).
pub const STEP_WAIT: Duration = Duration::from_secs(120);
/// The Kustomizations' health-check timeout while the operator is down in step 1 (the least
/// Flux takes: it reads anything shorter as 30s), then the example's own (`timeout: 2m`),
/// against which failing fast is measured.
pub const FIRST_TIMEOUT: &str = "30s";
pub const TIMEOUT: &str = "2m";
/// A ClerkInstance that requires approval and names kustomize-controller's ServiceAccount in
/// `approval.exempt`: the reviewed pull request is the approval.
pub const EXEMPT_INSTANCE: &str = "clerk-reviewed-in-git";
/// A ClerkInstance that requires approval of every request, Flux's too.
pub const STRICT_INSTANCE: &str = "clerk-approved-by-hand";

/// One request file, as a pull request adds it.
#[derive(Clone, Debug)]
pub struct RequestFile {
    pub user_id: &'static str,
    pub actor: &'static str,
    pub expires_in: &'static str,
    pub reason: &'static str,
    /// The ClerkInstance (in the test's namespace) it names.
    pub instance: &'static str,
}

impl RequestFile {
    pub fn new(user_id: &'static str, expires_in: &'static str, reason: &'static str) -> Self {
        RequestFile {
            user_id,
            actor: "user_2xyzSupport",
            expires_in,
            reason,
            instance: "clerk",
        }
    }

    /// The same request through ClerkInstance `instance`.
    pub fn through(self, instance: &'static str) -> Self {
        RequestFile { instance, ..self }
    }

    /// The file's text: spec only, no namespace (the Kustomization's `targetNamespace`).
    pub fn yaml(&self, name: &str) -> String {
        format!(
            "apiVersion: actortokens.dev/v1alpha1\n\
             kind: ActorTokenRequest\n\
             metadata:\n  name: {name}\n\
             spec:\n  userId: {}\n  actor:\n    sub: {}\n  expiresIn: {}\n  \
             instanceRef:\n    kind: ClerkInstance\n    name: {}\n  reason: {}\n",
            self.user_id, self.actor, self.expires_in, self.instance, self.reason
        )
    }
}

/// A commit pushed to the branch Flux follows, and when.
pub struct Merged {
    pub commit: Commit,
    pub at: Instant,
}

/// Everything a step acts on and reads from.
pub struct Flow {
    pub env: Env,
    pub flux: Flux,
    pub pipelines: Vec<Pipeline>,
    pub report: Report,
    pub kustomizations: Api<DynamicObject>,
    sources: Api<DynamicObject>,
    source: String,
    repo: Repo,
    _git: GitServer,
    _git_root: tempfile::TempDir,
}

impl Flow {
    /// Builds (or finds cached) and starts everything, and waits until both Kustomizations
    /// have applied the repository's first commit (no requests yet). The operator is stopped:
    /// step 1 starts it.
    pub async fn start() -> Flow {
        let bin = flux::build();
        let mut report = Report::new(&bin);
        let plane = control_plane();
        let mut env = Env::start_with(
            "flux",
            Faults {
                rejected_users: vec![REJECTED_USER.into()],
                ..Faults::default()
            },
        )
        .await;
        env.operator = None;
        // The chart's admission policies are on this plane as on every test plane:
        // `Env::start_with` installed them with the CRDs (support::install_crds), so requests
        // get their requester and finalizer stamped and the `use` right checked at the door.
        for (name, approval) in [
            (
                EXEMPT_INSTANCE,
                serde_json::json!({ "required": true, "exempt": [{
                    "kind": "ServiceAccount", "namespace": flux::NAMESPACE, "name": flux::KUSTOMIZE_CONTROLLER,
                }] }),
            ),
            (STRICT_INSTANCE, serde_json::json!({ "required": true })),
        ] {
            env.apply(serde_json::json!({
                "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
                "metadata": { "name": name, "namespace": env.ns.name },
                "spec": {
                    "apiUrl": env.sim.api_url(),
                    "secretKeyRef": { "name": "clerk-key", "key": "secretKey" },
                    "approval": approval,
                },
            }))
            .await;
        }
        flux::install(plane, &bin);
        let flux = Flux::start(plane, &bin).await;
        report.kustomize_controller_identity = flux.kustomize_identity.clone();

        let git_root = tempfile::tempdir().unwrap();
        let git = GitServer::start(git_root.path()).await;
        let pipelines = vec![
            Pipeline {
                health: HealthCheck::Kstatus,
                name: format!("{}-kstatus", env.ns.name),
                folder: "kstatus",
                prefix: "ks",
            },
            Pipeline {
                health: HealthCheck::Cel,
                name: format!("{}-cel", env.ns.name),
                folder: "cel",
                prefix: "cel",
            },
        ];
        let readme = "Requests for support access; one file per request.\n";
        let files: Vec<(String, &str)> = pipelines
            .iter()
            .map(|p| (format!("{}/README.md", p.folder), readme))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        let (repo, first) = Repo::create(git_root.path(), "support-access", &files);

        let source = env.ns.name.clone();
        env.apply(objects::git_repository(
            &source,
            &git.url("support-access"),
            super::git::BRANCH,
        ))
        .await;
        for p in &pipelines {
            env.apply(objects::kustomization(
                p,
                &source,
                &env.ns.name,
                FIRST_TIMEOUT,
            ))
            .await;
        }
        let client = env.client.clone();
        let flow = Flow {
            env,
            flux,
            pipelines,
            report,
            kustomizations: objects::kustomizations(&client),
            sources: objects::git_repositories(&client),
            source,
            repo,
            _git: git,
            _git_root: git_root,
        };
        flow.wait_all("the first commit to be applied", |_, k| {
            k.ready_at(&first.revision).then_some(())
        })
        .await;
        flow
    }

    /// Puts `file` as request `base` into every pipeline's folder (a new file, or an edit).
    pub fn write_request(&self, base: &str, file: &RequestFile) {
        for p in &self.pipelines {
            self.repo
                .write(&p.file(base), &file.yaml(&p.request_name(base)));
        }
    }

    pub fn remove_request(&self, base: &str) {
        for p in &self.pipelines {
            self.repo.remove(&p.file(base));
        }
    }

    /// Commits and pushes what was written, then asks source-controller to fetch at once, as
    /// the Git host's push webhook does through a Receiver.
    pub async fn merge(&self, message: &str) -> Merged {
        let commit = self.repo.commit(message);
        let at = Instant::now();
        objects::request_reconcile(&self.sources, &self.source, &commit.sha).await;
        Merged { commit, at }
    }

    pub async fn kustomization(&self, p: &Pipeline) -> KustomizationStatus {
        KustomizationStatus::read(&self.kustomizations.get(&p.name).await.unwrap())
    }

    /// Polls every pipeline's Kustomization until `check` holds for each, and returns what it
    /// gave and when (one entry per pipeline, in order). On timeout, fails with what each
    /// Kustomization said last.
    pub async fn wait_all<T>(
        &self,
        what: &str,
        check: impl Fn(&Pipeline, &KustomizationStatus) -> Option<T>,
    ) -> Vec<(T, Instant)> {
        let deadline = Instant::now() + STEP_WAIT;
        let mut found: Vec<Option<(T, Instant)>> = self.pipelines.iter().map(|_| None).collect();
        let mut last: Vec<KustomizationStatus> = vec![Default::default(); self.pipelines.len()];
        loop {
            for (i, p) in self.pipelines.iter().enumerate() {
                if found[i].is_some() {
                    continue;
                }
                last[i] = self.kustomization(p).await;
                if let Some(value) = check(p, &last[i]) {
                    found[i] = Some((value, Instant::now()));
                }
            }
            if found.iter().all(Option::is_some) {
                return found.into_iter().map(Option::unwrap).collect();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {STEP_WAIT:?} waiting for {what}; the Kustomizations said last:\n{last:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets every Kustomization's health-check timeout.
    pub async fn set_timeout(&self, timeout: &str) {
        let patch = serde_json::json!({ "spec": { "timeout": timeout } });
        for p in &self.pipelines {
            self.kustomizations
                .patch(
                    &p.name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .unwrap();
        }
    }

    /// Asks every Kustomization to reconcile now; each returns `token` in
    /// `status.lastHandledReconcileAt` once that reconcile is over.
    pub async fn request_reconcile(&self, token: &str) {
        for p in &self.pipelines {
            objects::request_reconcile(&self.kustomizations, &p.name, token).await;
        }
    }

    pub async fn request(&self, name: &str) -> Option<ActorTokenRequest> {
        self.env.requests.get_opt(name).await.unwrap()
    }

    pub async fn wait_request(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ActorTokenRequest) -> bool,
    ) -> ActorTokenRequest {
        eventually(STEP_WAIT, &format!("{name} {what}"), || async {
            self.request(name).await.filter(&check)
        })
        .await
    }

    pub async fn wait_phase(&self, name: &str, phase: Phase) -> ActorTokenRequest {
        self.wait_request(name, &format!("to be {phase:?}"), |r| {
            r.phase() == Some(phase)
        })
        .await
    }

    /// Deletes the Kustomizations and the GitRepository while Flux still runs (their
    /// finalizers need it), and waits until they are gone.
    pub async fn clean_up(&self) {
        for p in &self.pipelines {
            let _ = self
                .kustomizations
                .delete(&p.name, &DeleteParams::default())
                .await;
        }
        let _ = self
            .sources
            .delete(&self.source, &DeleteParams::default())
            .await;
        eventually(STEP_WAIT, "Flux's objects to be deleted", || async {
            for p in &self.pipelines {
                if self
                    .kustomizations
                    .get_opt(&p.name)
                    .await
                    .unwrap()
                    .is_some()
                {
                    return None;
                }
            }
            self.sources
                .get_opt(&self.source)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
}

/// The ID of the token a request holds.
pub fn token_id(request: &ActorTokenRequest) -> Option<String> {
    request.status.as_ref()?.token_id.clone()
}

/// The field managers that wrote a request.
pub fn managers(request: &ActorTokenRequest) -> Vec<String> {
    request
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// Who the API server says created a request (`spec.requester`, stamped by admission).
pub fn requester(request: &ActorTokenRequest) -> Option<&str> {
    Some(request.spec.requester.as_ref()?.username.as_str())
}

/// The reason of a request's Ready condition.
pub fn ready_reason(request: &ActorTokenRequest) -> Option<String> {
    let status = request.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some(condition.reason.clone())
}

/// The message of a request's condition of `type_`.
pub fn condition_message(request: &ActorTokenRequest, type_: &str) -> Option<String> {
    let status = request.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some(condition.message.clone())
}
