//! The benchmark's objects in the cluster, and a watch that notes when each request was seen
//! `Issued` and when it was seen gone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actor_token_operator::api::{ActorTokenRequest, ClusterClerkInstance, Phase, UserInfo};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::{
    authentication::v1::SelfSubjectReview,
    core::v1::{Namespace, Secret},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::watcher,
};
use serde_json::json;

/// Every object the benchmark creates carries this label, its value naming the phase.
pub const PHASE_LABEL: &str = "bench.actortokens.dev/phase";

/// Unix milliseconds: the clock the harness, the simulator and the objects share.
pub fn now_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

/// A namespace, with the chart's admission policies in force there or not
/// ([`super::admission::namespace_labels`]).
pub async fn create_namespace(client: &Client, name: &str, admission_policies: bool) {
    let labels = super::admission::namespace_labels(admission_policies);
    let ns: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// A ClusterClerkInstance `name` for the simulator at `api_url`, its key Secret in the
/// operator's namespace, with an explicit rate limit (or the operator's default for the key).
pub async fn create_instance(
    client: &Client,
    operator_ns: &str,
    name: &str,
    api_url: &str,
    key: &str,
    limit: Option<(u32, u64)>,
) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-key"), "namespace": operator_ns },
        "stringData": { "secretKey": key }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), operator_ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the key Secret");
    let mut spec = json!({
        "apiUrl": api_url,
        "secretKeyRef": { "name": format!("{name}-key"), "key": "secretKey" },
    });
    if let Some((requests, seconds)) = limit {
        spec["rateLimit"] = json!({ "requests": requests, "period": format!("{seconds}s") });
    }
    let instance: ClusterClerkInstance = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClusterClerkInstance",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap();
    Api::<ClusterClerkInstance>::all(client.clone())
        .create(&PostParams::default(), &instance)
        .await
        .expect("create the ClusterClerkInstance");
}

/// Who a request says asked for it (`spec.requester`): the operator issues only for a
/// requester the API server says may `use` the instance.
#[derive(Clone, Debug)]
pub enum Requester {
    /// Typed in by the benchmark: its own identity, as the API server authenticates it. What
    /// a client must do where the admission policies aren't installed (and what they check
    /// where they are).
    Typed(UserInfo),
    /// Left out, for the admission policy to stamp (with the finalizer).
    Stamped,
}

impl Requester {
    pub fn stamped_by_admission(&self) -> bool {
        matches!(self, Requester::Stamped)
    }
}

/// The benchmark's own identity (a SelfSubjectReview), to type into `spec.requester`.
pub async fn own_identity(client: &Client) -> UserInfo {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("ask the API server who the benchmark is (SelfSubjectReview)");
    let user = review
        .status
        .and_then(|s| s.user_info)
        .expect("a SelfSubjectReview answers with the user");
    UserInfo {
        username: user.username.expect("the benchmark's user has a name"),
        uid: user.uid.filter(|u| !u.is_empty()),
        groups: user.groups.unwrap_or_default(),
    }
}

/// One request to create: where, what it's called, for which phase and instance, and who
/// asked.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub namespace: String,
    pub name: String,
    pub phase: &'static str,
    pub instance: &'static str,
    pub expires_in: String,
    pub requester: Requester,
}

impl NewRequest {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn object(&self, index: usize) -> ActorTokenRequest {
        let mut object = json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": {
                "name": self.name, "namespace": self.namespace,
                "labels": { PHASE_LABEL: self.phase }
            },
            "spec": {
                "userId": user_id(self.phase, index),
                "actor": { "sub": "user_benchSupport" },
                "expiresIn": self.expires_in,
                "instanceRef": { "kind": "ClusterClerkInstance", "name": self.instance },
                "reason": "benchmark"
            }
        });
        if let Requester::Typed(me) = &self.requester {
            object["spec"]["requester"] = serde_json::to_value(me).unwrap();
        }
        serde_json::from_value(object).unwrap()
    }
}

/// The Clerk user request `index` of `phase` impersonates: one of its own, so that tokens
/// can be counted per request from the simulator's list.
pub fn user_id(phase: &str, index: usize) -> String {
    format!("{}{index}", user_prefix(phase))
}

/// `user_` and the phase's letters and digits.
pub fn user_prefix(phase: &str) -> String {
    let phase: String = phase.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("user_{phase}x")
}

/// Whether `user` is one of `phase`'s users.
pub fn is_user_of(user: &str, phase: &str) -> bool {
    user.strip_prefix(&user_prefix(phase))
        .is_some_and(|index| !index.is_empty() && index.chars().all(|c| c.is_ascii_digit()))
}

/// `n` requests named `{phase}-{i}`, spread round-robin over `namespaces`.
pub fn requests(
    n: usize,
    namespaces: &[String],
    phase: &'static str,
    instance: &'static str,
    expires_in: &str,
    requester: &Requester,
) -> Vec<NewRequest> {
    (0..n)
        .map(|i| NewRequest {
            namespace: namespaces[i % namespaces.len()].clone(),
            name: format!("{phase}-{i}"),
            phase,
            instance,
            expires_in: expires_in.to_owned(),
            requester: requester.clone(),
        })
        .collect()
}

/// Creates the requests with `parallel` calls in flight; returns when each create was
/// answered (Unix ms), by key.
pub async fn create_all(
    client: &Client,
    requests: &[NewRequest],
    parallel: usize,
) -> HashMap<String, i64> {
    stream::iter(requests.iter().enumerate())
        .map(|(i, r)| create_one(client, r, i))
        .buffer_unordered(parallel)
        .collect()
        .await
}

pub async fn create_one(client: &Client, request: &NewRequest, index: usize) -> (String, i64) {
    Api::<ActorTokenRequest>::namespaced(client.clone(), &request.namespace)
        .create(&PostParams::default(), &request.object(index))
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", request.key()));
    (request.key(), now_ms())
}

/// Deletes every request of `phase` in `namespaces` (one delete-collection call each, all at
/// once).
pub async fn delete_phase(client: &Client, namespaces: &[String], phase: &str) {
    let selector = format!("{PHASE_LABEL}={phase}");
    futures::future::try_join_all(namespaces.iter().map(|ns| {
        let api = Api::<ActorTokenRequest>::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels(&selector);
        async move { api.delete_collection(&DeleteParams::default(), &lp).await }
    }))
    .await
    .expect("delete the requests");
}

/// Removes every request of `phase` without an operator: deletes them, lets go of their
/// finalizers (nothing is revoked: for runs whose tokens don't matter once measured), and
/// waits until they are gone. Their Secrets go with them (ownerReferences, garbage
/// collection). Run only while no operator is running.
pub async fn discard_phase(client: &Client, namespaces: &[String], phase: &str) {
    delete_phase(client, namespaces, phase).await;
    let release = serde_json::json!({ "metadata": { "finalizers": null } });
    let left = list_phase(client, phase).await;
    stream::iter(left)
        .map(|r| {
            let api = Api::<ActorTokenRequest>::namespaced(
                client.clone(),
                &r.namespace().unwrap_or_default(),
            );
            let release = &release;
            async move {
                // Gone already (no finalizer) is as good as released.
                let _ = api
                    .patch(
                        &r.name_any(),
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(release),
                    )
                    .await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !list_phase(client, phase).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests of phase {phase} still there 5 minutes after they were released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_secrets_collected(client, namespaces, phase).await;
}

/// Waits until the garbage collector has deleted the Secrets of `phase`'s requests (named
/// `{phase}-…`, owned by them), so that its deletes don't land in the next phase's counts.
pub async fn wait_secrets_collected(client: &Client, namespaces: &[String], phase: &str) {
    let prefix = format!("{phase}-");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    for ns in namespaces {
        let api = Api::<Secret>::namespaced(client.clone(), ns);
        loop {
            let left = api
                .list_metadata(&ListParams::default())
                .await
                .expect("list Secrets")
                .items
                .iter()
                .filter(|s| s.name_any().starts_with(&prefix))
                .count();
            if left == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{left} Secrets of phase {phase} in {ns} not collected after 5 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The requests of `phase`, as the API server has them now.
pub async fn list_phase(client: &Client, phase: &str) -> Vec<ActorTokenRequest> {
    Api::<ActorTokenRequest>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{PHASE_LABEL}={phase}")))
        .await
        .expect("list requests")
        .items
}

/// What the watch saw of one request, in Unix ms.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub issued_ms: Option<i64>,
    pub expired_ms: Option<i64>,
    pub gone_ms: Option<i64>,
}

/// A watch on every benchmark request, noting when each first showed `Issued` or `Expired`
/// and when it was deleted.
#[derive(Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Recorder {
    pub async fn start(client: &Client) -> Recorder {
        let recorder = Recorder::default();
        let seen = recorder.seen.clone();
        let api = Api::<ActorTokenRequest>::all(client.clone());
        let config = watcher::Config::default().labels(PHASE_LABEL);
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut events = watcher(api, config).boxed();
            while let Ok(Some(event)) = events.try_next().await {
                let now = now_ms();
                let mut seen = seen.lock().unwrap();
                match event {
                    watcher::Event::Apply(r) | watcher::Event::InitApply(r) => {
                        let entry = seen.entry(key_of(&r)).or_default();
                        match r.phase() {
                            Some(Phase::Issued) => {
                                entry.issued_ms.get_or_insert(now);
                            }
                            Some(Phase::Expired) => {
                                entry.expired_ms.get_or_insert(now);
                            }
                            _ => {}
                        }
                    }
                    watcher::Event::Delete(r) => {
                        seen.entry(key_of(&r)).or_default().gone_ms = Some(now);
                    }
                    watcher::Event::InitDone => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Init => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), synced_rx)
            .await
            .expect("the benchmark's watch started")
            .ok();
        recorder
    }

    pub fn get(&self, key: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `done` holds for every key, or `timeout`; returns how many it held for.
    pub async fn wait_all(
        &self,
        keys: &[String],
        timeout: Duration,
        done: impl Fn(&Seen) -> bool,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = {
                let seen = self.seen.lock().unwrap();
                keys.iter()
                    .filter(|k| seen.get(*k).is_some_and(&done))
                    .count()
            };
            if count == keys.len() || tokio::time::Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn key_of(request: &ActorTokenRequest) -> String {
    format!(
        "{}/{}",
        request.namespace().unwrap_or_default(),
        request.name_any()
    )
}

/// Whether a request created now would get the operator's finalizer from admission (a
/// dry-run create, so nothing is stored).
pub async fn admission_adds_finalizer(client: &Client, namespace: &str) -> bool {
    let probe = NewRequest {
        namespace: namespace.to_owned(),
        name: "admission-probe".into(),
        phase: "probe",
        instance: "clerk",
        expires_in: "1h".into(),
        requester: Requester::Stamped,
    };
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    Api::<ActorTokenRequest>::namespaced(client.clone(), namespace)
        .create(&pp, &probe.object(0))
        .await
        .is_ok_and(|r| {
            r.finalizers()
                .iter()
                .any(|f| f == actor_token_operator::api::FINALIZER)
        })
}

/// An object as the API server sends it, managedFields included.
pub fn object_json(kind: &str, namespace: &str, name: &str) -> String {
    let out = crate::support::control_plane()
        .kubectl()
        .args([
            "get",
            kind,
            "-n",
            namespace,
            name,
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .output()
        .expect("run kubectl get");
    assert!(
        out.status.success(),
        "kubectl get {kind} {namespace}/{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("JSON is UTF-8")
}
