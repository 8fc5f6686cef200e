//! The benchmark's objects in the cluster, and a watch that notes when each request was seen
//! `Issued` and when it was seen gone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actor_token_operator::api::{ActorTokenRequest, ClusterClerkInstance, Phase};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
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

pub async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// A ClusterClerkInstance `name` for the simulator at `api_url`, its key Secret in the
/// operator's namespace, with an explicit rate limit.
pub async fn create_instance(
    client: &Client,
    operator_ns: &str,
    name: &str,
    api_url: &str,
    key: &str,
    limit: (u32, u64),
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
    let instance: ClusterClerkInstance = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClusterClerkInstance",
        "metadata": { "name": name },
        "spec": {
            "apiUrl": api_url,
            "secretKeyRef": { "name": format!("{name}-key"), "key": "secretKey" },
            "rateLimit": { "requests": limit.0, "period": format!("{}s", limit.1) }
        }
    }))
    .unwrap();
    Api::<ClusterClerkInstance>::all(client.clone())
        .create(&PostParams::default(), &instance)
        .await
        .expect("create the ClusterClerkInstance");
}

/// One request to create: where, what it's called, for which phase and instance.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub namespace: String,
    pub name: String,
    pub phase: &'static str,
    pub instance: &'static str,
    pub expires_in: String,
}

impl NewRequest {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn object(&self, index: usize) -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": {
                "name": self.name, "namespace": self.namespace,
                "labels": { PHASE_LABEL: self.phase }
            },
            "spec": {
                "userId": format!("user_bench{index}"),
                "actor": { "sub": "user_benchSupport" },
                "expiresIn": self.expires_in,
                "instanceRef": { "kind": "ClusterClerkInstance", "name": self.instance },
                "reason": "benchmark"
            }
        }))
        .unwrap()
    }
}

/// `n` requests named `{phase}-{i}`, spread round-robin over `namespaces`.
pub fn requests(
    n: usize,
    namespaces: &[String],
    phase: &'static str,
    instance: &'static str,
    expires_in: &str,
) -> Vec<NewRequest> {
    (0..n)
        .map(|i| NewRequest {
            namespace: namespaces[i % namespaces.len()].clone(),
            name: format!("{phase}-{i}"),
            phase,
            instance,
            expires_in: expires_in.to_owned(),
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
