//! The machine's own bound (issue 14): a bare client with no operator logic that makes, for
//! each request of the burst, only the writes an issue can't do without — the finalizer patch
//! (unless admission already put the finalizer there), the Secret create and the status
//! write — at the operator's concurrency, against the same control plane. No Clerk call, no
//! read of the Secret, no decision, no Event: whatever the operator takes beyond this client's
//! time is its own overhead (or Clerk's limit).
//!
//! It runs while no operator does, over requests of its own phase, and cleans up after itself
//! (without revoking anything: its tokens are made up).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actor_token_operator::api::{ActorTokenRequest, FINALIZER, MANAGED_BY, MANAGED_BY_LABEL};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::{
    apiserver::{self, Writes},
    cluster::{self, NewRequest, PHASE_LABEL, Recorder, Requester, now_ms},
    config::Config,
};

const LONG: Duration = Duration::from_secs(1800);

#[derive(Clone, Debug, Serialize)]
pub struct Bare {
    pub requests: usize,
    pub concurrency: u16,
    pub issued: usize,
    /// From the first create sent to the last `Issued` seen (the same clock as the burst's).
    pub wall_seconds: f64,
    /// Writes it made (the benchmark's creates taken out).
    pub writes: Writes,
    pub writes_per_issued: f64,
    /// Finalizer patches it had to make (0 when admission adds the finalizer).
    pub finalizer_patches: usize,
    /// Whether the admission policies were in force for this run (they stamped the requester
    /// and the finalizer).
    pub with_admission_policy: bool,
    /// Seconds from the first create to each `Issued`, for the plot.
    #[serde(skip)]
    pub issued_at_s: Vec<f64>,
}

/// Runs the bare client over `config.requests` new requests of phase `phase` (created as the
/// burst creates them, 32 in flight, with the same requester), then deletes them.
pub async fn run(
    config: &Config,
    client: &Client,
    recorder: &Recorder,
    phase: &'static str,
    namespaces: &[String],
    requester: &Requester,
) -> Bare {
    let requests = cluster::requests(config.requests, namespaces, phase, "clerk", "1h", requester);
    let keys: Vec<String> = requests.iter().map(NewRequest::key).collect();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(serve(
        client.clone(),
        phase,
        usize::from(config.concurrency),
        ready_tx,
        stop_rx,
    ));
    ready_rx.await.expect("the bare client's watch started");

    let writes_before = apiserver::snapshot();
    let start = now_ms();
    cluster::create_all(client, &requests, 32).await;
    let issued = recorder
        .wait_all(&keys, LONG, |s| s.issued_ms.is_some())
        .await;
    let issued_ms: Vec<i64> = keys
        .iter()
        .filter_map(|k| recorder.get(k).issued_ms)
        .collect();
    let last = issued_ms.iter().copied().max().unwrap_or(start);
    let _ = stop_tx.send(());
    let finalizer_patches = worker.await.expect("the bare client");
    let own = [("create actortokenrequests", config.requests as u64)];
    let writes = apiserver::without(
        apiserver::delta(&writes_before, &apiserver::snapshot()),
        &own,
    );
    cluster::discard_phase(client, namespaces, phase).await;
    Bare {
        requests: config.requests,
        concurrency: config.concurrency,
        issued,
        wall_seconds: (last - start) as f64 / 1000.0,
        writes_per_issued: apiserver::per_request(&writes) as f64 / issued.max(1) as f64,
        writes,
        finalizer_patches,
        with_admission_policy: requester.stamped_by_admission(),
        issued_at_s: issued_ms
            .iter()
            .map(|t| (t - start) as f64 / 1000.0)
            .collect(),
    }
}

/// Watches the phase's requests and issues each new one with `concurrency` in flight, until
/// told to stop; returns how many finalizer patches it made.
async fn serve(
    client: Client,
    phase: &'static str,
    concurrency: usize,
    ready: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> usize {
    let api = Api::<ActorTokenRequest>::all(client.clone());
    let selector = format!("{PHASE_LABEL}={phase}");
    let (queue_tx, mut queue_rx) = mpsc::unbounded_channel::<ActorTokenRequest>();
    let watch = tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut seen = std::collections::HashSet::new();
        let mut events = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .boxed();
        while let Ok(Some(event)) = events.try_next().await {
            match event {
                watcher::Event::InitDone => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                watcher::Event::Apply(r) | watcher::Event::InitApply(r) => {
                    // Each request once: the client's own writes come back as events too.
                    let new = seen.insert(r.uid().unwrap_or_default());
                    if new && queue_tx.send(r).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    loop {
        tokio::select! {
            next = queue_rx.recv() => {
                let Some(request) = next else { break };
                let permit = slots.clone().acquire_owned().await.unwrap();
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let patched = issue(&client, request).await;
                    drop(permit);
                    patched
                }));
            }
            _ = &mut stop => break,
        }
    }
    watch.abort();
    let mut patches = 0;
    for task in tasks {
        patches += usize::from(task.await.unwrap_or(false));
    }
    patches
}

/// The writes of one issue, as the operator makes them: a conditional finalizer patch if the
/// finalizer isn't there yet, the Secret (same keys, labels and owner as the operator's), and
/// one status replace at the resourceVersion just written. Returns whether it patched.
async fn issue(client: &Client, request: ActorTokenRequest) -> bool {
    let namespace = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let api = Api::<ActorTokenRequest>::namespaced(client.clone(), &namespace);
    let mut request = request;
    let patched = !request.finalizers().iter().any(|f| f == FINALIZER);
    if patched {
        let mut finalizers = request.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": request.resource_version() }
        });
        request = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("bare client: finalizer on {namespace}/{name}: {e}"));
    }
    // To the second, as the operator's `Time`s are written.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
    let expires = now + jiff::SignedDuration::from_hours(1);
    let token_id = format!(
        "act_bare{}",
        request.uid().unwrap_or_default().replace('-', "")
    );
    let data: BTreeMap<&str, String> = [
        ("url", format!("https://bench.invalid/v1/tickets/accept?ticket={token_id}0123456789abcdef0123456789abcdef")),
        ("token", format!("{token_id}0123456789abcdef0123456789abcdef")),
        ("tokenId", token_id.clone()),
        ("userId", request.spec.user_id.clone()),
        ("actorId", request.spec.actor.sub.clone()),
        ("issuedAt", now.to_string()),
        ("expiresAt", expires.to_string()),
    ]
    .into();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": { MANAGED_BY_LABEL: MANAGED_BY, "actortokens.dev/request": name },
            "ownerReferences": [request.controller_owner_ref(&())],
        },
        "type": "actortokens.dev/actor-token",
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("bare client: Secret {namespace}/{name}: {e}"));
    let message = format!("The sign-in link is in Secret {name}; it works until {expires}");
    let generation = request.metadata.generation;
    request.status = Some(
        serde_json::from_value(json!({
            "phase": "Issued",
            "tokenId": token_id,
            "secretName": name,
            "issuedAt": now.to_string(),
            "expiresAt": expires.to_string(),
            "observedGeneration": generation,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Issued", "message": message,
                "observedGeneration": generation, "lastTransitionTime": now.to_string(),
            }],
        }))
        .unwrap(),
    );
    request.metadata.managed_fields = None;
    let pp = PostParams {
        field_manager: Some("bench-bare-client".into()),
        ..Default::default()
    };
    api.replace_status(&name, &pp, &request)
        .await
        .unwrap_or_else(|e| panic!("bare client: status of {namespace}/{name}: {e}"));
    patched
}
