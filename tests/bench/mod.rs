//! `make bench`: the operator's speed and cost at scale, measured on a control plane of the
//! benchmark's own (so the API server's write counters hold only its writes) against the
//! Clerk simulator set up like a production instance. See README.md, "Performance".

pub mod admission;
pub mod apiserver;
pub mod bare;
pub mod cluster;
pub mod config;
pub mod heap;
pub mod operator;
pub mod phases;
pub mod plot;
pub mod procfs;
pub mod provider_http;
pub mod report;
pub mod stats;

use std::time::Duration;

use actor_token_operator::api::ClusterClerkInstance;
use clerk_sim::{Faults, Latency, RateLimit, SimConfig, Simulator};
use kube::{Api, Client};

use self::{
    cluster::{Recorder, Requester},
    config::Config,
    operator::OperatorProcess,
    phases::BurstRun,
    report::{Environment, Results},
};
use crate::support::{control_plane, eventually, install_crds, repo_root};

/// Production keys (`sk_live_`), so the operator's default limit is Clerk's production one.
const KEY: &str = "sk_live_benchmarkKey0123456789";
const PEER_KEY: &str = "sk_live_benchmarkPeerKey012345";
const BULK_KEY: &str = "sk_live_benchmarkBulkKey012345";
const PROVIDER_HTTP_KEY: &str = "sk_live_benchmarkHttpKey012345";
/// A development key (`sk_test_`): Clerk allows it 100 requests per 10 s, and so does the
/// operator by default.
const DEV_KEY: &str = "sk_test_benchmarkDevKey0123456";
const DEV_LIMIT: (u32, u64) = (100, 10);
const OPERATOR_NS: &str = "actor-token-operator";

pub async fn run(config: Config) -> Results {
    let started_at = jiff::Timestamp::now().to_string();
    let load_before = load_average();
    install_crds();
    let client = control_plane().client().await;
    // Where the admission policies aren't in force (every namespace but the policy runs'), a
    // request carries its requester as the client types it: the benchmark's own identity,
    // which the operator's SubjectAccessReview then finds allowed to `use` the instances (a
    // cluster admin).
    let typed = Requester::Typed(cluster::own_identity(&client).await);

    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    };
    let bare_ns = names("bare", config.namespaces);
    let burst_ns = names("burst", config.namespaces);
    let policy_ns = names("policy", config.namespaces);
    let dev_ns = names("dev", config.namespaces);
    let peer_ns = names("peer", config.namespaces);
    let http_ns = names("phttp", config.namespaces);
    let settled_ns = names("settled", config.namespaces);
    let paced_ns = "paced".to_owned();
    for ns in [OPERATOR_NS.to_owned(), paced_ns.clone()]
        .iter()
        .chain(&bare_ns)
        .chain(&burst_ns)
        .chain(&dev_ns)
        .chain(&peer_ns)
        .chain(&http_ns)
        .chain(&settled_ns)
    {
        cluster::create_namespace(&client, ns, false).await;
    }
    for ns in &policy_ns {
        cluster::create_namespace(&client, ns, true).await;
    }
    assert!(
        !cluster::admission_adds_finalizer(&client, &burst_ns[0]).await,
        "the admission policies act in {}, labelled {}=off: the runs without them would \
         measure them",
        burst_ns[0],
        admission::POLICIES_OFF_LABEL
    );

    // Clerk as the issue sets it up: a production instance's limit and 50 ms added latency.
    let latency = Some(Latency::fixed(Duration::from_millis(
        config.clerk_latency_ms,
    )));
    let clerk_faults = Faults {
        latency,
        rate_limit: Some(RateLimit::per_key(
            config.clerk_limit_requests,
            Duration::from_secs(config.clerk_limit_window_seconds),
        )),
        ..Faults::default()
    };
    let sim = start_sim(KEY, clerk_faults.clone()).await;
    let peer_sim = start_sim(PEER_KEY, clerk_faults.clone()).await;
    let http_sim = start_sim(PROVIDER_HTTP_KEY, clerk_faults).await;
    // A development instance: Clerk's own limits for an `sk_test_` key.
    let dev_sim = start_sim(
        DEV_KEY,
        Faults {
            latency,
            rate_limit: Some(RateLimit::Clerk),
            ..Faults::default()
        },
    )
    .await;
    // Only for issuing the settled requests quickly (setup, not measured).
    let bulk_sim = start_sim(BULK_KEY, Faults::default()).await;
    let limit = (
        config.clerk_limit_requests,
        config.clerk_limit_window_seconds,
    );
    cluster::create_instance(
        &client,
        OPERATOR_NS,
        "clerk",
        &sim.api_url(),
        KEY,
        Some(limit),
    )
    .await;
    cluster::create_instance(
        &client,
        OPERATOR_NS,
        "bulk",
        &bulk_sim.api_url(),
        BULK_KEY,
        Some((100_000, 10)),
    )
    .await;
    // No rateLimit: the operator's default for a development key is what is measured.
    cluster::create_instance(
        &client,
        OPERATOR_NS,
        "dev",
        &dev_sim.api_url(),
        DEV_KEY,
        None,
    )
    .await;
    let provider_http = config.runs("provider-http").then(|| {
        println!("== provider-http: build (cached by version)");
        provider_http::build()
    });
    if let Some(dir) = &provider_http {
        provider_http::install(&client, dir, PROVIDER_HTTP_KEY).await;
    }
    let recorder = Recorder::start(&client).await;

    println!(
        "== bare client: the writes alone for {} requests, {} at once",
        config.requests, config.concurrency
    );
    let bare = bare::run(&config, &client, &recorder, "bare", &bare_ns, &typed).await;

    let operator = OperatorProcess::start(
        OPERATOR_NS,
        config.concurrency,
        &config.operator_args,
        "burst",
    );
    operator.wait_ready(Duration::from_secs(120)).await;
    for instance in ["clerk", "bulk", "dev"] {
        wait_instance_ready(&client, instance).await;
    }
    let operator_args = operator.args.clone();

    println!("== burst: {} requests at once", config.requests);
    let burst = phases::burst(
        BurstRun {
            phase: "burst",
            instance: "clerk",
            requests: config.requests,
            clerk_limit: limit,
            namespaces: &burst_ns,
            requester: &typed,
        },
        &client,
        &recorder,
        &sim,
        &operator,
    )
    .await;
    println!("== resync: restart over {} settled requests", burst.issued);
    let sims = [&sim, &bulk_sim, &dev_sim];
    let (resync, operator) =
        phases::restart(&config, &client, &sims, operator, OPERATOR_NS, "resync").await;
    println!("== revocation: delete them all");
    let revocation = phases::revocation(&client, &recorder, &sim, &burst_ns).await;

    let dev_key = if config.runs("dev-key") {
        println!(
            "== development key: {} requests at once, Clerk allows 100 per 10 s",
            config.dev_requests
        );
        let dev = phases::burst(
            BurstRun {
                phase: "dev-key",
                instance: "dev",
                requests: config.dev_requests,
                clerk_limit: DEV_LIMIT,
                namespaces: &dev_ns,
                requester: &typed,
            },
            &client,
            &recorder,
            &dev_sim,
            &operator,
        )
        .await;
        Some(dev)
    } else {
        None
    };
    operator.stop();
    // Measured: no need to revoke 1,000 tokens at a development key's pace.
    cluster::discard_phase(&client, &dev_ns, "dev-key").await;

    let with_policy = if config.admission_policies {
        println!("== the chart's admission policies in force: bare client and burst again");
        let adds_finalizer =
            admission::wait_in_force(|| cluster::admission_adds_finalizer(&client, &policy_ns[0]))
                .await;
        let bare = bare::run(
            &config,
            &client,
            &recorder,
            "bare-policy",
            &policy_ns,
            &Requester::Stamped,
        )
        .await;
        let operator = OperatorProcess::start(
            OPERATOR_NS,
            config.concurrency,
            &config.operator_args,
            "policy",
        );
        operator.wait_ready(Duration::from_secs(120)).await;
        let burst = phases::burst(
            BurstRun {
                phase: "burst-policy",
                instance: "clerk",
                requests: config.requests,
                clerk_limit: limit,
                namespaces: &policy_ns,
                requester: &Requester::Stamped,
            },
            &client,
            &recorder,
            &sim,
            &operator,
        )
        .await;
        operator.stop();
        cluster::discard_phase(&client, &policy_ns, "burst-policy").await;
        Some(report::WithPolicy {
            policies: "the chart's (helm template)".to_owned(),
            adds_finalizer,
            bare,
            burst,
        })
    } else {
        None
    };

    let operator = OperatorProcess::start(
        OPERATOR_NS,
        config.concurrency,
        &config.operator_args,
        "paced",
    );
    operator.wait_ready(Duration::from_secs(120)).await;
    println!(
        "== paced requests ({}/s) expiring after {} s",
        config.paced_per_second, config.expires_in_seconds
    );
    let paced_expiry =
        phases::paced_expiry(&config, &client, &recorder, &sim, &paced_ns, &typed).await;
    let peer = if config.runs("peer") {
        println!("== peer script over {} requests", config.peer_requests);
        Some(phases::peer(&config, &client, &peer_sim, PEER_KEY, &peer_ns).await)
    } else {
        None
    };
    let mut provider_http_runs = Vec::new();
    if let Some(dir) = &provider_http {
        for (i, args) in config.provider_http_runs.iter().enumerate() {
            println!(
                "== provider-http {}: {} DisposableRequests at once",
                if args.is_empty() {
                    "with its defaults".to_owned()
                } else {
                    args.join(" ")
                },
                config.provider_http_requests
            );
            provider_http_runs.push(
                provider_http::run(
                    dir,
                    args,
                    &client,
                    &http_sim,
                    config.provider_http_requests,
                    &http_ns,
                    if i == 0 { "phttp" } else { "phttpb" },
                    &format!("run{i}"),
                )
                .await,
            );
        }
    }
    println!("== {} settled requests", config.settled);
    let (settled, operator) = phases::settled(
        &config,
        &client,
        &recorder,
        &sims,
        operator,
        OPERATOR_NS,
        &settled_ns,
        &typed,
    )
    .await;
    operator.stop();
    // What one cached request holds, whole and compact: an issued one with its Secret and an
    // expired record, as the API server has them.
    let cached_issued = heap::cached_request(&cluster::object_json(
        "actortokenrequest",
        &settled_ns[0],
        "settled-0",
    ));
    let cached_expired = heap::cached_request(&cluster::object_json(
        "actortokenrequest",
        &paced_ns,
        "paced-0",
    ));

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
        bare,
        burst,
        with_policy,
        dev_key,
        resync,
        revocation,
        paced_expiry,
        peer,
        provider_http: provider_http_runs,
        settled,
        cached_issued,
        cached_expired,
        burst_over_bound: 0.0,
        operator_speedup_over_peer: None,
        targets: Vec::new(),
    }
    .with_targets();
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
