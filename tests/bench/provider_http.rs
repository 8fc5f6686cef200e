//! A peer somebody else wrote (issue 14): crossplane-contrib's provider-http, the tool a
//! platform team would reach for instead of writing an operator. Built from its Go module by
//! `hack/bench/provider-http.sh` (cached by version), its CRDs from the module's
//! `package/crds`, a `ClusterProviderConfig` with `credentials.source: None`, and run out of
//! cluster with the benchmark's kubeconfig against the same control plane and a simulator set
//! up like the operator's.
//!
//! Each request is a namespaced `DisposableRequest` that POSTs to the simulator's
//! `/v1/actor_tokens` with the bearer key (read from a Secret by provider-http's own
//! `{{ name:namespace:key }}` substitution) and writes the answer's `url`, `token` and `id`
//! into a Secret beside it, owned by it. It can't revoke: Clerk has no GET for actor tokens,
//! and a DisposableRequest is fire and forget.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clerk_sim::Simulator;
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, Client, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
    runtime::{WatchStreamExt, watcher},
};
use serde::Serialize;
use serde_json::json;

use super::{
    apiserver::{self, Writes},
    cluster::{self, PHASE_LABEL, now_ms},
    phases::{ClerkCalls, users_with_more_than_one_token},
    procfs,
};
use crate::support::{control_plane, repo_root};

/// Where its key Secret lives (as `crossplane-system` would in a real installation).
pub const NAMESPACE: &str = "provider-http";
const KEY_SECRET: &str = "clerk-key";
const PROVIDER_CONFIG: &str = "bench";

#[derive(Clone, Debug, Serialize)]
pub struct ProviderHttpRun {
    pub version: String,
    /// Its command-line arguments (none: its defaults).
    pub args: Vec<String>,
    pub requests: usize,
    /// DisposableRequests that reported `status.synced: true` (the Secret is written first).
    pub done: usize,
    /// DisposableRequests crossplane stopped on for good: a create whose outcome it could not
    /// record ("cannot determine creation result - remove the
    /// crossplane.io/external-create-pending annotation if it is safe to proceed"), which waits
    /// for a person.
    pub stuck: usize,
    /// From the first create sent to the last one done.
    pub wall_seconds: f64,
    /// Writes it made (the benchmark's creates taken out), by verb and resource.
    pub writes: Writes,
    pub writes_per_request: f64,
    pub writes_per_request_without_events: f64,
    pub events_per_request: f64,
    pub clerk: ClerkCalls,
    pub clerk_calls_per_request: f64,
    /// Users (one per request) the simulator made more than one token for.
    pub users_with_more_than_one_token: usize,
    /// Secrets holding a `url` when it was done.
    pub secrets_with_url: usize,
    /// CPU time it used from the first create to the last done, and its resident memory.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Builds provider-http (or finds it cached); returns its folder (`provider`, `crds/`).
pub fn build() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/bench/provider-http.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run hack/bench/provider-http.sh");
    assert!(
        out.status.success(),
        "building provider-http failed (see the [provider-http] lines above)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The version in the folder's name (`provider-http-v1.0.14`).
pub fn version(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("provider-http-"))
        .unwrap_or("unknown")
        .to_owned()
}

/// Its CRDs, its key Secret and a ClusterProviderConfig without credentials.
pub async fn install(client: &Client, dir: &Path, key: &str) {
    let kubectl = |args: &[&str]| {
        let out = control_plane()
            .kubectl()
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let crds = dir.join("crds");
    let crds = crds.to_str().unwrap();
    kubectl(&["apply", "--server-side", "-f", crds]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        crds,
    ]);
    cluster::create_namespace(client, NAMESPACE, false).await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": KEY_SECRET, "namespace": NAMESPACE },
        "stringData": { "secretKey": key }
    }))
    .unwrap();
    Api::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create provider-http's key Secret");
    let config: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "http.m.crossplane.io/v1alpha2", "kind": "ClusterProviderConfig",
        "metadata": { "name": PROVIDER_CONFIG },
        "spec": { "credentials": { "source": "None" } }
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(client.clone(), &resource("ClusterProviderConfig"))
        .create(&PostParams::default(), &config)
        .await
        .expect("create provider-http's ClusterProviderConfig");
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "http.m.crossplane.io",
        "v1alpha2",
        kind,
    ))
}

/// One run of the burst through provider-http with `args`: starts it, waits until its
/// DisposableRequest controller runs, creates the requests, waits until each is done, stops
/// it and removes the requests.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    dir: &Path,
    args: &[String],
    client: &Client,
    sim: &Simulator,
    requests: usize,
    namespaces: &[String],
    phase: &'static str,
    name: &str,
) -> ProviderHttpRun {
    let recorder = Done::start(client, phase).await;
    let provider = ProviderProcess::start(dir, args, name);
    provider.wait_running(Duration::from_secs(120)).await;

    let objects: Vec<DynamicObject> = (0..requests)
        .map(|i| disposable_request(sim, phase, i, &namespaces[i % namespaces.len()]))
        .collect();
    let keys: Vec<String> = objects
        .iter()
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
        .collect();
    let (writes_before, sim_before) = (apiserver::snapshot(), sim.stats());
    let cpu_before = provider.cpu_seconds();
    let start = now_ms();
    let api = |ns: &str| {
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("DisposableRequest"))
    };
    stream::iter(objects)
        .map(|o| {
            let api = api(&o.namespace().unwrap_or_default());
            async move {
                api.create(&PostParams::default(), &o)
                    .await
                    .unwrap_or_else(|e| panic!("create DisposableRequest {}: {e}", o.name_any()))
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let (done, stuck) = recorder.wait_all(&keys, Duration::from_secs(1800)).await;
    let last = recorder.last(&keys).unwrap_or(start);
    let cpu = provider.cpu_seconds() - cpu_before;
    let (rss, peak) = provider.memory();
    // Events follow the status writes they announce: let the last ones land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let own = [("create disposablerequests", requests as u64)];
    let writes = apiserver::without(
        apiserver::delta(&writes_before, &apiserver::snapshot()),
        &own,
    );
    let clerk = ClerkCalls::between(&sim_before, &sim.stats());
    let secrets_with_url = secrets_with_url(client, namespaces, phase).await;

    // Done with it: stop it, then remove its requests without it (as the operator's measured
    // runs are removed: its finalizers let go of by hand, nothing to revoke for a peer that
    // can't revoke anyway).
    provider.stop();
    for ns in namespaces {
        let lp = ListParams::default().labels(&format!("{PHASE_LABEL}={phase}"));
        api(ns)
            .delete_collection(&DeleteParams::default(), &lp)
            .await
            .expect("delete DisposableRequests");
        let release = json!({ "metadata": { "finalizers": null } });
        for o in api(ns)
            .list_metadata(&lp)
            .await
            .expect("list DisposableRequests")
            .items
        {
            let _ = api(ns)
                .patch(
                    &o.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await;
        }
    }
    recorder.wait_gone(&keys, Duration::from_secs(300)).await;
    // Their Secrets and ProviderConfigUsages go with them (ownerReferences): let the garbage
    // collector finish, so that its deletes don't land in the next run's counts.
    cluster::wait_secrets_collected(client, namespaces, phase).await;
    let usages = Api::<DynamicObject>::all_with(client.clone(), &resource("ProviderConfigUsage"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !usages
        .list_metadata(&ListParams::default())
        .await
        .expect("list ProviderConfigUsages")
        .items
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "provider-http's ProviderConfigUsages not collected after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let per_request = |n: u64| n as f64 / requests.max(1) as f64;
    ProviderHttpRun {
        version: version(dir),
        args: args.to_vec(),
        requests,
        done,
        stuck,
        wall_seconds: (last - start) as f64 / 1000.0,
        writes_per_request: per_request(apiserver::per_request(&writes)),
        writes_per_request_without_events: per_request(apiserver::per_request_without_events(
            &writes,
        )),
        events_per_request: per_request(apiserver::events(&writes)),
        writes,
        clerk_calls_per_request: per_request(clerk.total()),
        clerk,
        users_with_more_than_one_token: users_with_more_than_one_token(sim, phase),
        secrets_with_url,
        cpu_seconds: cpu,
        rss_bytes: rss,
        peak_rss_bytes: peak,
    }
}

/// Request `index` of `phase` as a DisposableRequest: the same Clerk create the operator
/// makes (`user_id`, `actor.sub`, an hour), its answer into a Secret of the request's name.
fn disposable_request(
    sim: &Simulator,
    phase: &str,
    index: usize,
    namespace: &str,
) -> DynamicObject {
    let name = format!("{phase}-{index}");
    let body = json!({
        "user_id": cluster::user_id(phase, index),
        "actor": { "sub": "user_benchSupport" },
        "expires_in_seconds": 3600,
    });
    serde_json::from_value(json!({
        "apiVersion": "http.m.crossplane.io/v1alpha2", "kind": "DisposableRequest",
        "metadata": { "name": name, "namespace": namespace, "labels": { PHASE_LABEL: phase } },
        "spec": {
            "providerConfigRef": { "kind": "ClusterProviderConfig", "name": PROVIDER_CONFIG },
            "forProvider": {
                "url": format!("{}/actor_tokens", sim.api_url()),
                "method": "POST",
                "headers": {
                    "Content-Type": ["application/json"],
                    "Clerk-API-Version": ["2026-05-12"],
                    "Authorization": [format!("Bearer {{{{ {KEY_SECRET}:{NAMESPACE}:secretKey }}}}")],
                },
                "body": body.to_string(),
                "secretInjectionConfigs": [{
                    "secretRef": { "name": name, "namespace": namespace },
                    "setOwnerReference": true,
                    "keyMappings": [
                        { "secretKey": "url", "responseJQ": ".body.url" },
                        { "secretKey": "token", "responseJQ": ".body.token" },
                        { "secretKey": "tokenId", "responseJQ": ".body.id" },
                    ],
                }],
            },
        },
    }))
    .unwrap()
}

/// The phase's Secrets that hold a sign-in link.
async fn secrets_with_url(client: &Client, namespaces: &[String], phase: &str) -> usize {
    let mut count = 0;
    for ns in namespaces {
        let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("list Secrets");
        count += secrets
            .items
            .iter()
            .filter(|s| s.name_any().starts_with(&format!("{phase}-")))
            .filter(|s| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get("url"))
                    .is_some_and(|u| u.0.starts_with(b"http"))
            })
            .count();
    }
    count
}

/// A watch on the phase's DisposableRequests: when each was first seen done
/// (`status.synced: true`) or stuck for good (see [`is_stuck`]), and which are gone.
#[derive(Clone, Default)]
struct Done {
    done: Arc<Mutex<HashMap<String, i64>>>,
    stuck: Arc<Mutex<HashMap<String, i64>>>,
    gone: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// crossplane's managed reconciler gives up on a resource whose create it started but whose
/// outcome it could not record (its annotation update lost a race): it won't create again,
/// lest it make a second external resource, until a person removes the annotation.
pub fn is_stuck(o: &serde_json::Value) -> bool {
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Synced"
                && c["status"] == "False"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("cannot determine creation result"))
        })
}

impl Done {
    async fn start(client: &Client, phase: &str) -> Done {
        let recorder = Done::default();
        let (done, stuck, gone) = (
            recorder.done.clone(),
            recorder.stuck.clone(),
            recorder.gone.clone(),
        );
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource("DisposableRequest"));
        let config = watcher::Config::default().labels(&format!("{PHASE_LABEL}={phase}"));
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Ok(Some(event)) = events.try_next().await {
                let now = now_ms();
                match event {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        if o.data["status"]["synced"] == json!(true) {
                            done.lock().unwrap().entry(key(&o)).or_insert(now);
                            stuck.lock().unwrap().remove(&key(&o));
                        } else if is_stuck(&o.data) {
                            stuck.lock().unwrap().entry(key(&o)).or_insert(now);
                        }
                    }
                    watcher::Event::Delete(o) => {
                        gone.lock().unwrap().insert(key(&o));
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
            .expect("the DisposableRequest watch started")
            .ok();
        recorder
    }

    /// Waits until each request is done or stuck, or `timeout`; returns (done, stuck). A
    /// stuck one is given 30 s more in case crossplane moves on after all.
    async fn wait_all(&self, keys: &[String], timeout: Duration) -> (usize, usize) {
        let deadline = Instant::now() + timeout;
        let mut all_settled_since: Option<Instant> = None;
        loop {
            let (done, stuck) = {
                let (done, stuck) = (self.done.lock().unwrap(), self.stuck.lock().unwrap());
                (
                    keys.iter().filter(|k| done.contains_key(*k)).count(),
                    keys.iter().filter(|k| stuck.contains_key(*k)).count(),
                )
            };
            if done == keys.len() || Instant::now() > deadline {
                return (done, stuck);
            }
            if done + stuck == keys.len() {
                let since = *all_settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    return (done, stuck);
                }
            } else {
                all_settled_since = None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn last(&self, keys: &[String]) -> Option<i64> {
        let done = self.done.lock().unwrap();
        keys.iter().filter_map(|k| done.get(k).copied()).max()
    }

    async fn wait_gone(&self, keys: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let count = {
                let gone = self.gone.lock().unwrap();
                keys.iter().filter(|k| gone.contains(*k)).count()
            };
            assert!(
                count == keys.len() || Instant::now() < deadline,
                "{} of {} DisposableRequests still there after {timeout:?}",
                keys.len() - count,
                keys.len()
            );
            if count == keys.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn key(o: &DynamicObject) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// provider-http as its own process, so its CPU time and memory can be read from /proc.
struct ProviderProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl ProviderProcess {
    fn start(dir: &Path, args: &[String], name: &str) -> ProviderProcess {
        let logs = repo_root().join("target/bench-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join(format!("provider-http-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(dir.join("provider"))
            .args(args)
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start provider-http");
        ProviderProcess {
            pid: child.id(),
            child,
            log,
        }
    }

    /// Waits until its DisposableRequest controller has started its workers (it has no
    /// readiness endpoint of its own: its log says so).
    async fn wait_running(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.lines().any(|l| {
                l.contains("Starting workers")
                    && l.contains("disposablerequest.http.m.crossplane.io")
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "provider-http's DisposableRequest controller not running after {timeout:?}; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid)
    }

    fn memory(&self) -> (u64, u64) {
        procfs::memory(self.pid)
    }

    /// SIGTERM; SIGKILL if it hasn't stopped after 10 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
