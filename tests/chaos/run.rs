//! Drives one fault run: a namespace, a Clerk simulator with faults on, the operator binary
//! (SIGKILLed and restarted on schedule), the requests created and later deleted, and the
//! facts the verdict needs, gathered on the way.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actor_token_operator::api::{ActorTokenRequest, ClerkInstance};
use clerk_sim::{Faults, RateLimit, SimConfig, Simulator};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use tokio::time::{Instant, sleep, sleep_until};

use super::{
    observe::{self, Observer, now_ms},
    plan::{Fault, PlannedRequest, Schedule, Settings},
    report::{FaultCounts, Report},
    verdict::{
        self, Account, CreateWindow, Incarnation, IssueState, Orphans, Outage, double_tokens,
        leftovers_after_delete,
    },
};
use crate::support::{
    ControlPlane, Operator, OperatorOptions, TestNamespace, control_plane, env::KEY, install_crds,
};

/// The operator process of the run, and every start and kill of it.
struct OperatorRuns {
    namespace: String,
    current: Option<Operator>,
    incarnations: Vec<Incarnation>,
    logs: Vec<String>,
}

impl OperatorRuns {
    fn start(namespace: &str) -> OperatorRuns {
        let mut runs = OperatorRuns {
            namespace: namespace.to_owned(),
            current: None,
            incarnations: Vec::new(),
            logs: Vec::new(),
        };
        runs.spawn();
        runs
    }

    fn spawn(&mut self) {
        let ns = self.namespace.as_str();
        let operator = Operator::start(OperatorOptions {
            namespaces: &[ns],
            cluster_instance_namespace: ns,
            kubeconfig: None,
            extra_args: &["--clerk-timeout-seconds", "2"],
        });
        self.incarnations.push(Incarnation {
            started_ms: now_ms(),
            killed_ms: None,
        });
        self.logs.push(operator.log_path().display().to_string());
        self.current = Some(operator);
    }

    fn kill(&mut self) {
        if let Some(mut operator) = self.current.take() {
            operator.kill();
            if let Some(run) = self.incarnations.last_mut() {
                run.killed_ms = Some(now_ms());
            }
        }
    }
}

/// Clerk's 429 bursts may overlap: the faults go back to normal when the last one ends.
struct Bursts {
    sim: Arc<Simulator>,
    normal: Faults,
    active: AtomicUsize,
}

impl Bursts {
    fn begin(&self) {
        if self.active.fetch_add(1, Ordering::SeqCst) == 0 {
            self.sim.set_faults(Faults {
                too_many_requests_share: 1.0,
                retry_after_seconds: 1,
                ..self.normal.clone()
            });
        }
    }

    fn end(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.sim.set_faults(self.normal.clone());
        }
    }
}

struct Faulting {
    plane: &'static ControlPlane,
    bursts: Arc<Bursts>,
    operator: OperatorRuns,
    counts: FaultCounts,
    /// When the last fault of the current phase ended (Unix ms).
    last_fault_ms: i64,
    background: Vec<tokio::task::JoinHandle<i64>>,
    outages: Arc<std::sync::Mutex<Vec<Outage>>>,
}

impl Faulting {
    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::KillOperator { restart_after } => {
                self.operator.kill();
                sleep(restart_after).await;
                self.operator.spawn();
                self.counts.kills += 1;
                self.last_fault_ms = self.last_fault_ms.max(now_ms());
            }
            Fault::RestartApiserver => {
                let plane = self.plane;
                let outages = self.outages.clone();
                println!("chaos: restarting kube-apiserver");
                self.counts.apiserver_restarts += 1;
                self.background.push(tokio::task::spawn_blocking(move || {
                    let started = now_ms();
                    plane
                        .restart_apiserver()
                        .unwrap_or_else(|e| panic!("restarting kube-apiserver failed: {e}"));
                    let ready = now_ms();
                    outages.lock().unwrap().push(Outage {
                        from_ms: started,
                        to_ms: ready,
                    });
                    println!(
                        "chaos: kube-apiserver back after {:.1} s",
                        (ready - started) as f64 / 1000.0
                    );
                    ready
                }));
            }
            Fault::TooManyRequests { lasting } => {
                self.counts.bursts += 1;
                let bursts = self.bursts.clone();
                bursts.begin();
                self.background.push(tokio::spawn(async move {
                    sleep(lasting).await;
                    bursts.end();
                    now_ms()
                }));
            }
        }
    }

    /// Runs `faults` at their offsets from `t0`, then waits for those still under way.
    async fn play(&mut self, t0: Instant, faults: &[(Duration, Fault)]) {
        for &(offset, fault) in faults {
            sleep_until(t0 + offset).await;
            self.inject(fault).await;
        }
        for task in std::mem::take(&mut self.background) {
            let ended = task.await.expect("a fault task panicked");
            self.last_fault_ms = self.last_fault_ms.max(ended);
        }
    }
}

fn request_object(planned: &PlannedRequest) -> ActorTokenRequest {
    serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": planned.name },
        "spec": {
            "userId": planned.user_id,
            "actor": { "sub": "user_2chaosSupport" },
            "instanceRef": { "kind": "ClerkInstance", "name": "clerk" },
            "reason": "chaos run",
        },
    }))
    .expect("a valid request")
}

/// Creates `object` through any apiserver outage: retries until it exists.
async fn create_surely<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("could not create an object for two minutes: {e}"),
        }
    }
}

async fn delete_surely(api: &Api<ActorTokenRequest>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("could not delete {name} for two minutes: {e}"),
        }
    }
}

async fn setup_instance(client: &Client, namespace: &str, sim: &Simulator) {
    let key: Secret = serde_json::from_value(json!({
        "metadata": { "name": "clerk-key" },
        "stringData": { "secretKey": KEY },
    }))
    .unwrap();
    create_surely(&Api::namespaced(client.clone(), namespace), &key).await;
    let instance: ClerkInstance = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk" },
        "spec": { "apiUrl": sim.api_url(), "secretKeyRef": { "name": "clerk-key", "key": "secretKey" } },
    }))
    .unwrap();
    create_surely(&Api::namespaced(client.clone(), namespace), &instance).await;
}

/// Polls `accounts` until `done` holds or `deadline` passes; returns the last accounts and
/// when `done` first held.
async fn wait_for(
    requests: &Api<ActorTokenRequest>,
    secrets: &Api<Secret>,
    deadline: Instant,
    mut done: impl FnMut(&BTreeMap<String, Account>) -> bool,
) -> (BTreeMap<String, Account>, Option<i64>) {
    let mut last = BTreeMap::new();
    loop {
        if let Ok(accounts) = observe::accounts(requests, secrets).await {
            if done(&accounts) {
                return (accounts, Some(now_ms()));
            }
            last = accounts;
        }
        if Instant::now() > deadline {
            return (last, None);
        }
        sleep(Duration::from_millis(250)).await;
    }
}

pub async fn run(settings: Settings) -> Report {
    println!(
        "chaos ({}): seed {} (replay with CHAOS_SEED={})",
        settings.name, settings.seed, settings.seed
    );
    let plane = control_plane();
    if settings.apiserver_restarts > 0 && !plane.private {
        panic!(
            "this run restarts kube-apiserver, which would disturb every other test on the shared \
             control plane in {}: run it without ENVTEST_DIR (`make chaos` does), or with \
             CHAOS_APISERVER_RESTARTS=0",
            plane.state_dir.display()
        );
    }
    install_crds();
    let client = plane.client().await;
    let ns = TestNamespace::create(&client, &format!("chaos-{}", settings.name)).await;
    let delete_over = Duration::from_secs_f64((settings.requests as f64 / 10.0).max(3.0));
    let schedule = Schedule::draw(&settings, delete_over);
    let normal = Faults {
        server_error_share: settings.server_error_share,
        drop_create_share: settings.drop_create_share,
        rate_limit: Some(RateLimit::Clerk),
        rejected_users: schedule
            .requests
            .iter()
            .filter(|r| r.rejected)
            .map(|r| r.user_id.clone())
            .collect(),
        ..Faults::default()
    };
    let sim = Arc::new(
        clerk_sim::start(SimConfig {
            secret_keys: vec![KEY.into()],
            faults: normal.clone(),
            seed: Some(settings.seed),
            ..SimConfig::default()
        })
        .await
        .expect("start the Clerk simulator"),
    );
    setup_instance(&client, &ns.name, &sim).await;
    let requests: Api<ActorTokenRequest> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let observer = Observer::start(requests.clone(), secrets.clone(), sim.clone());
    let mut faulting = Faulting {
        plane,
        bursts: Arc::new(Bursts {
            sim: sim.clone(),
            normal,
            active: AtomicUsize::new(0),
        }),
        operator: OperatorRuns::start(&ns.name),
        counts: FaultCounts::default(),
        last_fault_ms: now_ms(),
        background: Vec::new(),
        outages: Arc::default(),
    };

    // Issue phase: requests created at a steady pace while the faults play.
    let started = Instant::now();
    let t0 = Instant::now();
    let creator = {
        let api = requests.clone();
        let planned = schedule.requests.clone();
        tokio::spawn(async move {
            for request in &planned {
                sleep_until(t0 + request.at).await;
                create_surely(&api, &request_object(request)).await;
            }
        })
    };
    faulting.play(t0, &schedule.issue_faults).await;
    creator.await.expect("creating the requests");
    let issue_last_fault = faulting.last_fault_ms;
    let issue_kills = faulting.counts.kills;
    println!(
        "chaos: {} requests created, {} issue-phase faults injected in {:.0?}; waiting for them to settle",
        schedule.requests.len(),
        schedule.issue_faults.len(),
        started.elapsed()
    );
    let deadline = Instant::now() + settings.converge_timeout;
    let (issue_accounts, issue_converged) = wait_for(&requests, &secrets, deadline, |accounts| {
        IssueState::check(
            &schedule.requests,
            accounts,
            &sim.tokens(),
            &observer.named(),
        )
        .settled()
    })
    .await;
    let issue_state = IssueState::check(
        &schedule.requests,
        &issue_accounts,
        &sim.tokens(),
        &observer.named(),
    );

    // Delete phase: every request deleted at once, the operator killed a few more times.
    let d0 = Instant::now();
    faulting.last_fault_ms = now_ms();
    let deleter = {
        let api = requests.clone();
        let names: Vec<String> = schedule.requests.iter().map(|r| r.name.clone()).collect();
        tokio::spawn(async move {
            for name in &names {
                delete_surely(&api, name).await;
            }
        })
    };
    faulting.play(d0, &schedule.delete_faults).await;
    deleter.await.expect("deleting the requests");
    let delete_last_fault = faulting.last_fault_ms;
    let deadline = Instant::now() + settings.converge_timeout;
    let (remaining, all_gone) = wait_for(&requests, &secrets, deadline, |accounts| {
        accounts.is_empty()
    })
    .await;

    // A moment for the watchers and the poller to see the last changes.
    sleep(Duration::from_millis(500)).await;
    let (named, live_groups, polls) = observer.stop();
    faulting.operator.kill();
    let tokens = sim.tokens();
    let stats = sim.stats();
    let window = CreateWindow {
        before_kill_ms: settings.create_window.as_millis() as i64,
        // A create the process sent just before it died is still made, a moment later.
        after_kill_ms: 250,
    };
    let incarnations = faulting.operator.incarnations.clone();
    let ever_named = named.values().flatten().cloned().collect();
    let outages = faulting.outages.lock().unwrap().clone();
    let orphans = Orphans::find(&tokens, &ever_named, &incarnations, &outages, window);
    let request_of_user: BTreeMap<String, String> = schedule
        .requests
        .iter()
        .map(|r| (r.user_id.clone(), r.name.clone()))
        .collect();
    let doubles = double_tokens(&live_groups, &request_of_user, &orphans);
    let (named_left_live, finalizers_left) = leftovers_after_delete(&tokens, &named, &remaining);

    let mut counts = faulting.counts;
    counts.delete_kills = counts.kills - issue_kills;
    counts.kills = issue_kills;
    for op in [&stats.create, &stats.revoke] {
        counts.server_errors += op.count(500) + op.count(502) + op.count(503);
        counts.too_many_requests += op.count(429);
    }
    counts.dropped_answers = stats.create.dropped;
    let explained_by_kill: Vec<(String, i64)> = orphans
        .explained
        .iter()
        .filter_map(|(id, (_, why))| match why {
            verdict::Explanation::Killed { gap_ms, .. } => Some((id.clone(), *gap_ms)),
            verdict::Explanation::AnswerDropped => None,
        })
        .collect();
    Report {
        name: settings.name.to_owned(),
        seed: settings.seed,
        requests: schedule.requests.len(),
        rejected: schedule.requests.iter().filter(|r| r.rejected).count(),
        faults: counts,
        tokens_made: tokens.len(),
        issue_state,
        issue_converged_after: issue_converged.map(|at| at - issue_last_fault),
        delete_converged_after: all_gone.map(|at| at - delete_last_fault),
        double_tokens: doubles,
        unexplained_orphans: orphans
            .unexplained
            .iter()
            .map(|(id, user)| orphan_story(id, user, &tokens, &incarnations, &request_of_user))
            .collect(),
        explained_dropped: orphans.dropped(),
        explained_killed: explained_by_kill,
        named_left_live,
        finalizers_left,
        polls,
        operator_logs: faulting.operator.logs.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
        create_window_ms: window.before_kill_ms,
        apiserver_outages: outages,
    }
}

/// A precise account of an unexplained orphan, for whoever hunts the bug: the request, every
/// token of it with when it was made, and the kills around.
fn orphan_story(
    id: &str,
    user: &str,
    tokens: &[clerk_sim::SimToken],
    incarnations: &[Incarnation],
    request_of_user: &BTreeMap<String, String>,
) -> String {
    let at =
        |ms: i64| jiff::Timestamp::from_millisecond(ms).map_or(ms.to_string(), |t| t.to_string());
    let request = request_of_user.get(user).map_or("?", String::as_str);
    let mine: Vec<&clerk_sim::SimToken> = tokens.iter().filter(|t| t.user_id == user).collect();
    let made: Vec<String> = mine
        .iter()
        .map(|t| {
            format!(
                "{} made {} ({}{})",
                t.id,
                at(t.created_at_ms),
                t.status.as_str(),
                if t.answer_dropped {
                    ", answer dropped"
                } else {
                    ""
                }
            )
        })
        .collect();
    let first = mine
        .iter()
        .map(|t| t.created_at_ms)
        .min()
        .unwrap_or_default();
    let last = mine
        .iter()
        .map(|t| t.created_at_ms)
        .max()
        .unwrap_or_default();
    let kills: Vec<String> = incarnations
        .iter()
        .filter_map(|r| r.killed_ms)
        .filter(|k| *k >= first - 10_000 && *k <= last + 10_000)
        .map(at)
        .collect();
    format!(
        "{request}: {id} is live and no object of the request ever named it. Its tokens: {}. \
         Operator kills from 10 s before to 10 s after: {}",
        made.join("; "),
        if kills.is_empty() {
            "none".into()
        } else {
            kills.join(", ")
        }
    )
}
