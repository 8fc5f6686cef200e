//! The measurements, one function per phase of the list. Each takes the running
//! operator and simulators and returns its figures.

use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use actor_token_operator::api::{ActorTokenRequest, Phase};
use clerk_sim::{Simulator, Stats, TokenStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, api::ListParams};
use serde::Serialize;

use super::{
    apiserver::{self, Writes},
    cluster::{self, NewRequest, Recorder, Requester, now_ms},
    config::Config,
    operator::OperatorProcess,
    procfs,
    stats::{Summary, summarize},
};
use crate::support::{control_plane, repo_root};

const LONG: Duration = Duration::from_secs(1800);

/// Clerk calls the simulator received between two readings of its stats.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClerkCalls {
    pub creates: u64,
    pub revokes: u64,
    pub other: u64,
    /// Answers 429 (rate limited), over every operation.
    pub too_many_requests: u64,
}

impl ClerkCalls {
    pub fn between(before: &Stats, after: &Stats) -> ClerkCalls {
        let d = |a: &clerk_sim::OpStats, b: &clerk_sim::OpStats| a.total - b.total;
        let r = |a: &clerk_sim::OpStats, b: &clerk_sim::OpStats| a.count(429) - b.count(429);
        ClerkCalls {
            creates: d(&after.create, &before.create),
            revokes: d(&after.revoke, &before.revoke),
            other: d(&after.other, &before.other),
            too_many_requests: r(&after.create, &before.create)
                + r(&after.revoke, &before.revoke)
                + r(&after.other, &before.other),
        }
    }

    pub fn total(&self) -> u64 {
        self.creates + self.revokes + self.other
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Burst {
    /// Which run: `burst` (production key), `burst-policy` (with the admission policy),
    /// `dev-key` (a development key's limit).
    pub phase: &'static str,
    pub requests: usize,
    pub namespaces: usize,
    pub issued: usize,
    /// Whether the admission policies were in force for this run (they stamped the requester
    /// and the finalizer).
    pub with_admission_policy: bool,
    /// The simulated Clerk's limit for this run's key: (requests, window seconds).
    pub clerk_limit: (u32, u64),
    /// From the first create sent to the last `Issued` seen.
    pub wall_seconds: f64,
    pub rate_limit_bound_seconds: f64,
    /// Seconds the creates themselves took to send (all at once, 32 in flight).
    pub apply_seconds: f64,
    /// create→Issued per request, ms: the create's answer to the watch showing `Issued`.
    pub latency_ms: Summary,
    /// The same from the objects' own timestamps (creationTimestamp → the Ready condition's
    /// lastTransitionTime), which have one-second resolution.
    pub latency_from_object_timestamps_s: Summary,
    pub clerk: ClerkCalls,
    pub clerk_calls_per_request: f64,
    /// Users (one per request) for whom the simulator holds more than one token.
    pub users_with_more_than_one_token: usize,
    /// Writes the operator made (the benchmark's own creates taken out), by verb and resource;
    /// Lease renewals and reviews are listed but not counted per request.
    pub writes: Writes,
    pub writes_per_issued: f64,
    pub writes_per_issued_without_events: f64,
    pub events_per_issued: f64,
    /// SubjectAccessReviews sent per issued request (calls, not stored writes).
    pub subject_access_reviews_per_issued: f64,
    pub operator_cpu_seconds: f64,
    pub operator_peak_rss_bytes: u64,
    /// Seconds from the first create to each `Issued`, for the plot.
    #[serde(skip)]
    pub issued_at_s: Vec<f64>,
}

/// One burst: which requests, against which instance and limit.
pub struct BurstRun<'a> {
    pub phase: &'static str,
    pub instance: &'static str,
    pub requests: usize,
    pub clerk_limit: (u32, u64),
    pub namespaces: &'a [String],
    /// Typed by the benchmark, or stamped by the admission policy.
    pub requester: &'a Requester,
}

/// `run.requests` requests over the namespaces, created at once.
pub async fn burst(
    run: BurstRun<'_>,
    client: &Client,
    recorder: &Recorder,
    sim: &Simulator,
    operator: &OperatorProcess,
) -> Burst {
    let requests = cluster::requests(
        run.requests,
        run.namespaces,
        run.phase,
        run.instance,
        "1h",
        run.requester,
    );
    let keys: Vec<String> = requests.iter().map(NewRequest::key).collect();
    let (writes_before, sim_before) = (apiserver::snapshot(), sim.stats());
    let cpu_before = operator.cpu_seconds();

    let start = now_ms();
    let created = cluster::create_all(client, &requests, 32).await;
    let applied = now_ms();
    let issued = recorder
        .wait_all(&keys, LONG, |s| s.issued_ms.is_some())
        .await;
    let cpu = operator.cpu_seconds() - cpu_before;
    let (_, peak_rss) = operator.memory();
    let seen: Vec<_> = keys.iter().map(|k| (k, recorder.get(k))).collect();
    let last = seen
        .iter()
        .filter_map(|(_, s)| s.issued_ms)
        .max()
        .unwrap_or(start);
    let latency: Vec<f64> = seen
        .iter()
        .filter_map(|(k, s)| Some((s.issued_ms? - created[*k]) as f64))
        .collect();
    let issued_at_s = seen
        .iter()
        .filter_map(|(_, s)| Some((s.issued_ms? - start) as f64 / 1000.0))
        .collect();

    // Events follow the status write they announce: let the last ones land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let own = [("create actortokenrequests", run.requests as u64)];
    let writes = apiserver::without(
        apiserver::delta(&writes_before, &apiserver::snapshot()),
        &own,
    );
    let clerk = ClerkCalls::between(&sim_before, &sim.stats());
    let objects = cluster::list_phase(client, run.phase).await;
    let per_issued = |n: u64| n as f64 / issued.max(1) as f64;
    Burst {
        phase: run.phase,
        requests: run.requests,
        namespaces: run.namespaces.len(),
        issued,
        with_admission_policy: run.requester.stamped_by_admission(),
        clerk_limit: run.clerk_limit,
        wall_seconds: (last - start) as f64 / 1000.0,
        rate_limit_bound_seconds: Config::rate_limit_bound(run.requests, run.clerk_limit),
        apply_seconds: (applied - start) as f64 / 1000.0,
        latency_ms: summarize(&latency),
        latency_from_object_timestamps_s: summarize(&object_latencies(&objects)),
        clerk_calls_per_request: clerk.total() as f64 / run.requests.max(1) as f64,
        clerk,
        users_with_more_than_one_token: users_with_more_than_one_token(sim, run.phase),
        writes_per_issued: per_issued(apiserver::per_request(&writes)),
        writes_per_issued_without_events: per_issued(apiserver::per_request_without_events(
            &writes,
        )),
        events_per_issued: per_issued(apiserver::events(&writes)),
        subject_access_reviews_per_issued: per_issued(apiserver::subject_access_reviews(&writes)),
        writes,
        operator_cpu_seconds: cpu,
        operator_peak_rss_bytes: peak_rss,
        issued_at_s,
    }
}

/// Users of `phase` for whom the simulator made more than one token: a request served twice.
/// (Each request impersonates a user of its own: [`cluster::user_id`].)
pub fn users_with_more_than_one_token(sim: &Simulator, phase: &str) -> usize {
    let mut per_user: HashMap<String, usize> = HashMap::new();
    let tokens = sim.tokens();
    for token in tokens
        .iter()
        .filter(|t| cluster::is_user_of(&t.user_id, phase))
    {
        *per_user.entry(token.user_id.clone()).or_default() += 1;
    }
    per_user.values().filter(|n| **n > 1).count()
}

/// creationTimestamp → the Issued condition's lastTransitionTime, in seconds.
fn object_latencies(objects: &[ActorTokenRequest]) -> Vec<f64> {
    objects
        .iter()
        .filter_map(|r| {
            let created = r.metadata.creation_timestamp.as_ref()?.0;
            let ready = r
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.reason == "Issued")?;
            Some(
                ready
                    .last_transition_time
                    .0
                    .duration_since(created)
                    .as_secs_f64(),
            )
        })
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct Restart {
    pub requests_in_cluster: usize,
    /// Start of the process to /readyz answering 200.
    pub start_to_ready_seconds: f64,
    /// Start of the process to the last reconcile of the initial pass over every request.
    pub start_to_reconciled_seconds: f64,
    pub reconciles: f64,
    pub writes: Writes,
    pub clerk: ClerkCalls,
    /// Resident memory once every request was reconciled, and the peak so far.
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Resident memory when /readyz first answered 200 (its caches filled, no reconcile
    /// finished yet), from /proc/PID/status.
    pub rss_at_ready_bytes: u64,
    /// Where the resident memory was once every request was reconciled (/proc/PID/smaps).
    pub resident: procfs::ResidentBreakdown,
    /// glibc malloc's account of the heap then (gdb calling `malloc_stats()`; none without
    /// gdb).
    pub malloc: Option<procfs::MallocStats>,
    pub cpu_seconds: f64,
}

/// Stops `operator` and starts a fresh one over the requests already in the cluster; counts
/// what the new one writes and asks Clerk while it catches up.
pub async fn restart(
    config: &Config,
    client: &Client,
    sims: &[&Simulator],
    operator: OperatorProcess,
    operator_ns: &str,
    name: &str,
) -> (Restart, OperatorProcess) {
    operator.stop();
    let in_cluster = Api::<ActorTokenRequest>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("list requests")
        .items
        .len();
    let writes_before = apiserver::snapshot();
    let sims_before: Vec<Stats> = sims.iter().map(|s| s.stats()).collect();
    let operator =
        OperatorProcess::start(operator_ns, config.concurrency, &config.operator_args, name);
    let ready = operator.wait_ready(Duration::from_secs(120)).await;
    let (rss_at_ready, _) = operator.memory();
    let reconciled = operator
        .wait_reconciled(in_cluster, Duration::from_secs(3), LONG)
        .await;
    let (rss, peak) = operator.memory();
    let resident = operator.resident_breakdown();
    let malloc = procfs::malloc_stats(operator.pid, &operator.log);
    let writes = apiserver::delta(&writes_before, &apiserver::snapshot());
    let mut clerk = ClerkCalls::default();
    for (sim, before) in sims.iter().zip(&sims_before) {
        let c = ClerkCalls::between(before, &sim.stats());
        clerk.creates += c.creates;
        clerk.revokes += c.revokes;
        clerk.other += c.other;
        clerk.too_many_requests += c.too_many_requests;
    }
    let restart = Restart {
        requests_in_cluster: in_cluster,
        start_to_ready_seconds: ready.as_secs_f64(),
        start_to_reconciled_seconds: reconciled.as_secs_f64(),
        reconciles: operator.reconciles().await,
        writes,
        clerk,
        rss_bytes: rss,
        peak_rss_bytes: peak,
        rss_at_ready_bytes: rss_at_ready,
        resident,
        malloc,
        cpu_seconds: operator.cpu_seconds(),
    };
    (restart, operator)
}

#[derive(Clone, Debug, Serialize)]
pub struct Revocation {
    pub requests: usize,
    /// From the first delete call to the last token revoked in the simulator.
    pub all_revoked_seconds: f64,
    /// From the first delete call to the last request gone from the API server.
    pub all_gone_seconds: f64,
    pub revoked: usize,
    pub gone: usize,
    pub clerk: ClerkCalls,
    /// Writes the operator made (the benchmark's delete-collection calls taken out).
    pub writes: Writes,
}

/// Deletes every burst request at once.
pub async fn revocation(
    client: &Client,
    recorder: &Recorder,
    sim: &Simulator,
    namespaces: &[String],
) -> Revocation {
    let objects = cluster::list_phase(client, "burst").await;
    let keys: Vec<String> = objects.iter().map(cluster::key_of).collect();
    let token_ids: Vec<String> = objects
        .iter()
        .filter_map(|r| r.status.as_ref()?.token_id.clone())
        .collect();
    let (writes_before, sim_before) = (apiserver::snapshot(), sim.stats());

    let start = now_ms();
    cluster::delete_phase(client, namespaces, "burst").await;
    let gone = recorder
        .wait_all(&keys, LONG, |s| s.gone_ms.is_some())
        .await;
    let deadline = Instant::now() + LONG;
    let revoked_at = loop {
        let times: Vec<Option<i64>> = token_ids
            .iter()
            .map(|id| sim.token(id).and_then(|t| t.revoked_at_ms))
            .collect();
        if times.iter().all(Option::is_some) || Instant::now() > deadline {
            break times;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let last_gone = keys
        .iter()
        .filter_map(|k| recorder.get(k).gone_ms)
        .max()
        .unwrap_or(start);
    let last_revoked = revoked_at.iter().flatten().max().copied().unwrap_or(start);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let own = [(
        "deletecollection actortokenrequests",
        namespaces.len() as u64,
    )];
    Revocation {
        requests: keys.len(),
        all_revoked_seconds: (last_revoked - start) as f64 / 1000.0,
        all_gone_seconds: (last_gone - start) as f64 / 1000.0,
        revoked: revoked_at.iter().flatten().count(),
        gone,
        clerk: ClerkCalls::between(&sim_before, &sim.stats()),
        writes: apiserver::without(
            apiserver::delta(&writes_before, &apiserver::snapshot()),
            &own,
        ),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PacedExpiry {
    pub requests: usize,
    pub per_second: f64,
    pub expires_in_seconds: u64,
    pub issued: usize,
    /// create→Issued while the request rate is well under the rate limit, ms.
    pub latency_ms: Summary,
    /// The simulator's revoke time minus the request's `status.expiresAt`, ms.
    pub revoke_after_expiry_ms: Summary,
    /// When the watch saw phase `Expired` minus `status.expiresAt`, ms: an upper bound on
    /// the revoke's delay for every request, including those Clerk had already expired.
    pub expired_phase_after_expiry_ms: Summary,
    /// Tokens revoked by the operator at expiry.
    pub revoked: usize,
    /// Tokens Clerk itself had already let expire when the operator's revoke came (the
    /// operator records `expiresAt` rounded to the second, Clerk counts from its own clock).
    pub expired_before_revoke: usize,
    /// Requests that reached phase `Expired`.
    pub expired: usize,
    pub clerk: ClerkCalls,
}

/// Requests created at a steady pace below the rate limit, each expiring soon: latency when
/// not queued, and how precisely expiry revokes.
pub async fn paced_expiry(
    config: &Config,
    client: &Client,
    recorder: &Recorder,
    sim: &Simulator,
    namespace: &str,
    requester: &Requester,
) -> PacedExpiry {
    let expires_in = format!("{}s", config.expires_in_seconds);
    let requests = cluster::requests(
        config.expiring,
        &[namespace.to_owned()],
        "paced",
        "clerk",
        &expires_in,
        requester,
    );
    let keys: Vec<String> = requests.iter().map(NewRequest::key).collect();
    let sim_before = sim.stats();
    let start = tokio::time::Instant::now();
    let gap = Duration::from_secs_f64(1.0 / config.paced_per_second.max(0.001));
    let mut creates = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let (client, request) = (client.clone(), request.clone());
        creates.push(tokio::spawn(async move {
            cluster::create_one(&client, &request, 100_000 + i).await
        }));
    }
    let mut created = HashMap::new();
    for create in creates {
        let (key, at) = create.await.expect("create task");
        created.insert(key, at);
    }
    let issued = recorder
        .wait_all(&keys, LONG, |s| s.issued_ms.is_some())
        .await;
    let latency: Vec<f64> = keys
        .iter()
        .filter_map(|k| Some((recorder.get(k).issued_ms? - created[k]) as f64))
        .collect();

    // Expiry: wait for every request to show Expired, then read the revokes Clerk recorded.
    let expired = recorder
        .wait_all(
            &keys,
            Duration::from_secs(config.expires_in_seconds + 120),
            |s| s.expired_ms.is_some(),
        )
        .await;
    let objects = cluster::list_phase(client, "paced").await;
    let mut delays = Vec::new();
    let mut phase_delays = Vec::new();
    let mut expired_first = 0;
    for request in &objects {
        let Some(status) = &request.status else {
            continue;
        };
        let (Some(id), Some(expires_at)) = (&status.token_id, &status.expires_at) else {
            continue;
        };
        if let Some(seen) = recorder.get(&cluster::key_of(request)).expired_ms {
            phase_delays.push((seen - expires_at.0.as_millisecond()) as f64);
        }
        match sim.token(id) {
            Some(t) if t.status == TokenStatus::Revoked => {
                if let Some(at) = t.revoked_at_ms {
                    delays.push((at - expires_at.0.as_millisecond()) as f64);
                }
            }
            Some(t) if t.status == TokenStatus::Expired => expired_first += 1,
            _ => {}
        }
    }
    PacedExpiry {
        requests: config.expiring,
        per_second: config.paced_per_second,
        expires_in_seconds: config.expires_in_seconds,
        issued,
        latency_ms: summarize(&latency),
        revoked: delays.len(),
        revoke_after_expiry_ms: summarize(&delays),
        expired_phase_after_expiry_ms: summarize(&phase_delays),
        expired_before_revoke: expired_first,
        expired: objects
            .iter()
            .filter(|r| r.phase() == Some(Phase::Expired))
            .count()
            .max(expired),
        clerk: ClerkCalls::between(&sim_before, &sim.stats()),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Peer {
    pub requests: usize,
    pub wall_seconds: f64,
    pub secrets_written: usize,
    pub clerk: ClerkCalls,
    /// Writes it made, by verb and resource.
    pub writes: Writes,
    pub script: &'static str,
}

/// What a user writes instead of an operator: hack/bench/peer.sh, one request after the
/// other, against a simulator set up like the operator's.
pub async fn peer(
    config: &Config,
    client: &Client,
    sim: &Simulator,
    key: &str,
    namespaces: &[String],
) -> Peer {
    let plane = control_plane();
    let mut input = String::new();
    for i in 0..config.peer_requests {
        let ns = &namespaces[i % namespaces.len()];
        input.push_str(&format!("{ns} peer-{i} user_bench{i} user_benchSupport\n"));
    }
    let (writes_before, sim_before) = (apiserver::snapshot(), sim.stats());
    let start = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo_root().join("hack/bench/peer.sh"))
        .env("CLERK_API_URL", sim.api_url())
        .env("CLERK_SECRET_KEY", key)
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("KUBECTL", plane.bin_dir.join("kubectl"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hack/bench/peer.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wait for the peer script");
    let wall = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the peer script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets = count_secrets(client, namespaces, |name| name.starts_with("peer-")).await;
    Peer {
        requests: config.peer_requests,
        wall_seconds: wall,
        secrets_written: secrets,
        clerk: ClerkCalls::between(&sim_before, &sim.stats()),
        writes: apiserver::delta(&writes_before, &apiserver::snapshot()),
        script: "hack/bench/peer.sh",
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Settled {
    pub requests: usize,
    pub secrets: usize,
    /// How long issuing them took (setup, with `setup_concurrency` and a simulator without
    /// latency or limit; not a figure to compare).
    pub setup_seconds: f64,
    pub setup_concurrency: u16,
    pub restart: Restart,
}

/// `config.settled` requests issued and settled, then an operator restarted over them.
#[allow(clippy::too_many_arguments)]
pub async fn settled(
    config: &Config,
    client: &Client,
    recorder: &Recorder,
    sims: &[&Simulator],
    operator: OperatorProcess,
    operator_ns: &str,
    namespaces: &[String],
    requester: &Requester,
) -> (Settled, OperatorProcess) {
    operator.stop();
    let setup = OperatorProcess::start(
        operator_ns,
        config.setup_concurrency,
        &config.operator_args,
        "settle",
    );
    setup.wait_ready(Duration::from_secs(120)).await;
    let requests = cluster::requests(
        config.settled,
        namespaces,
        "settled",
        "bulk",
        "24h",
        requester,
    );
    let keys: Vec<String> = requests.iter().map(NewRequest::key).collect();
    let start = Instant::now();
    cluster::create_all(client, &requests, 32).await;
    let issued = recorder
        .wait_all(&keys, LONG * 2, |s| s.issued_ms.is_some())
        .await;
    let setup_seconds = start.elapsed().as_secs_f64();
    assert_eq!(issued, keys.len(), "settled requests issued");
    let secrets = count_secrets(client, namespaces, |_| true).await;
    let (restart, operator) = restart(config, client, sims, setup, operator_ns, "settled").await;
    (
        Settled {
            requests: config.settled,
            secrets,
            setup_seconds,
            setup_concurrency: config.setup_concurrency,
            restart,
        },
        operator,
    )
}

/// The Secrets in `namespaces` whose name passes `pick`.
async fn count_secrets(
    client: &Client,
    namespaces: &[String],
    pick: impl Fn(&str) -> bool,
) -> usize {
    let mut count = 0;
    for ns in namespaces {
        count += Api::<Secret>::namespaced(client.clone(), ns)
            .list_metadata(&ListParams::default())
            .await
            .expect("list Secrets")
            .items
            .iter()
            .filter(|s| pick(&s.name_any()))
            .count();
    }
    count
}
