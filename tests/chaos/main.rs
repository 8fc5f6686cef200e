//! Fault runs: many requests while the operator is SIGKILLed and restarted, Clerk answers
//! 5xx and 429 and drops create answers, and (in the full run) kube-apiserver restarts. The
//! verdict comes from invariants checked against the simulator's full list of tokens and the
//! requests' objects; see `verdict`. Settings: `plan::Settings` (`CHAOS_*` variables).
//!
//! - `a_short_fault_run_keeps_every_invariant` runs in `make test` (~50 requests, 3 kills).
//! - `full_fault_run` is `make chaos` (500 requests, 20 kills, an apiserver restart); it
//!   needs a private control plane (no `ENVTEST_DIR`) and writes its report to
//!   `CHAOS_RESULTS_DIR`.

#[path = "../support/mod.rs"]
mod support;

mod observe;
mod plan;
mod report;
mod run;
mod verdict;

use plan::Settings;
use report::Report;

fn conclude(report: &Report) {
    let table = report.markdown();
    println!("{table}");
    if let Some(dir) = std::env::var("CHAOS_RESULTS_DIR")
        .ok()
        .filter(|_| report.name == "full")
    {
        let dir = support::repo_root().join(dir);
        std::fs::create_dir_all(&dir).expect("create the results folder");
        let json = serde_json::to_string_pretty(report).unwrap();
        std::fs::write(dir.join("chaos-full.md"), &table).expect("write the report");
        std::fs::write(dir.join("chaos-full.json"), json).expect("write the report");
        println!("report written to {}", dir.display());
    }
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "invariants broken (seed {}; operator logs: {:?}):\n{}",
        report.seed,
        report.operator_logs,
        failures
            .iter()
            .map(|(row, problems)| format!("- {row}:\n    {}", problems.join("\n    ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fault_run_keeps_every_invariant() {
    let report = run::run(Settings::short().with_env()).await;
    assert!(
        report.faults.kills > 0 && report.faults.server_errors > 0,
        "faults were injected"
    );
    conclude(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long and restarts kube-apiserver: `make chaos`"]
async fn full_fault_run() {
    let report = run::run(Settings::full().with_env()).await;
    conclude(&report);
}
