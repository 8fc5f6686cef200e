//! `make bench`: the operator's speed and cost at scale, measured on a control plane of the
//! benchmark's own (so the API server's write counters hold only its writes) against the
//! Clerk simulator set up like a production instance. See README.md, "Performance".

pub mod apiserver;
pub mod cluster;
pub mod config;
pub mod operator;
pub mod phases;
pub mod plot;
pub mod report;
pub mod stats;

use std::time::Duration;

use actor_token_operator::api::ClusterClerkInstance;
use clerk_sim::{Faults, Latency, RateLimit, SimConfig, Simulator};
use kube::{Api, Client};

use self::{
    cluster::Recorder,
    config::Config,
    operator::OperatorProcess,
    report::{Environment, Results},
};
use crate::support::{control_plane, eventually, install_crds, repo_root};

/// Production keys (`sk_live_`), so the operator's default limit is Clerk's production one.
const KEY: &str = "sk_live_benchmarkKey0123456789";
const PEER_KEY: &str = "sk_live_benchmarkPeerKey012345";
const BULK_KEY: &str = "sk_live_benchmarkBulkKey012345";
const OPERATOR_NS: &str = "actor-token-operator";

pub async fn run(config: Config) -> Results {
    let started_at = jiff::Timestamp::now().to_string();
    let load_before = load_average();
    install_crds();
    let client = control_plane().client().await;

    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    };
    let burst_ns = names("burst", config.namespaces);
    let peer_ns = names("peer", config.namespaces);
    let settled_ns = names("settled", config.namespaces);
    let paced_ns = "paced".to_owned();
    for ns in [OPERATOR_NS.to_owned(), paced_ns.clone()]
        .iter()
        .chain(&burst_ns)
        .chain(&peer_ns)
        .chain(&settled_ns)
    {
        cluster::create_namespace(&client, ns).await;
    }

    // Clerk as the issue sets it up: a production instance's limit and 50 ms added latency.
    let clerk_faults = Faults {
        latency: Some(Latency::fixed(Duration::from_millis(
            config.clerk_latency_ms,
        ))),
        rate_limit: Some(RateLimit::per_key(
            config.clerk_limit_requests,
            Duration::from_secs(config.clerk_limit_window_seconds),
        )),
        ..Faults::default()
    };
    let sim = start_sim(KEY, clerk_faults.clone()).await;
    let peer_sim = start_sim(PEER_KEY, clerk_faults).await;
    // Only for issuing the settled requests quickly (setup, not measured).
    let bulk_sim = start_sim(BULK_KEY, Faults::default()).await;
    let limit = (
        config.clerk_limit_requests,
        config.clerk_limit_window_seconds,
    );
    cluster::create_instance(&client, OPERATOR_NS, "clerk", &sim.api_url(), KEY, limit).await;
    cluster::create_instance(
        &client,
        OPERATOR_NS,
        "bulk",
        &bulk_sim.api_url(),
        BULK_KEY,
        (100_000, 10),
    )
    .await;
    let recorder = Recorder::start(&client).await;

    let operator = OperatorProcess::start(
        OPERATOR_NS,
        config.concurrency,
        &config.operator_args,
        "burst",
    );
    operator.wait_ready(Duration::from_secs(120)).await;
    wait_instance_ready(&client, "clerk").await;
    wait_instance_ready(&client, "bulk").await;
    let operator_args = operator.args.clone();

    println!("== burst: {} requests at once", config.requests);
    let burst = phases::burst(&config, &client, &recorder, &sim, &operator, &burst_ns).await;
    println!("== resync: restart over {} settled requests", burst.issued);
    let sims = [&sim, &bulk_sim];
    let (resync, operator) =
        phases::restart(&config, &client, &sims, operator, OPERATOR_NS, "resync").await;
    println!("== revocation: delete them all");
    let revocation = phases::revocation(&client, &recorder, &sim, &burst_ns).await;
    println!(
        "== paced requests ({}/s) expiring after {} s",
        config.paced_per_second, config.expires_in_seconds
    );
    let paced_expiry = phases::paced_expiry(&config, &client, &recorder, &sim, &paced_ns).await;
    println!("== peer script over {} requests", config.peer_requests);
    let peer = phases::peer(&config, &client, &peer_sim, PEER_KEY, &peer_ns).await;
    println!("== {} settled requests", config.settled);
    let (settled, operator) = phases::settled(
        &config,
        &client,
        &recorder,
        &sims,
        operator,
        OPERATOR_NS,
        &settled_ns,
    )
    .await;
    operator.stop();

    let per_request = |seconds: f64, n: usize| seconds / n.max(1) as f64;
    let speedup = per_request(peer.wall_seconds, peer.requests)
        / per_request(burst.wall_seconds, burst.issued).max(1e-9);
    let targets = report::targets(&burst, &resync, &paced_expiry, &settled, speedup);
    let results = Results {
        started_at,
        environment: Environment {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average_before: load_before,
            load_average_after: load_average(),
            git_commit: git_commit(),
            control_plane: "a control plane of the benchmark's own (etcd, kube-apiserver, \
                            kube-controller-manager) on the same machine",
        },
        config,
        operator_args,
        burst,
        resync,
        revocation,
        paced_expiry,
        peer,
        operator_speedup_over_peer: speedup,
        settled,
        targets,
    };
    report::write(&results);
    results
}

async fn start_sim(key: &str, faults: Faults) -> Simulator {
    clerk_sim::start(SimConfig {
        secret_keys: vec![key.into()],
        faults,
        ..SimConfig::default()
    })
    .await
    .expect("start a Clerk simulator")
}

async fn wait_instance_ready(client: &Client, name: &str) {
    let api = Api::<ClusterClerkInstance>::all(client.clone());
    eventually(
        Duration::from_secs(60),
        &format!("ClusterClerkInstance {name} Ready"),
        || async {
            let instance = api.get(name).await.ok()?;
            let ready = instance
                .status?
                .conditions
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await;
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
