//! The results: one JSON file of every figure, a Markdown table against the issue's
//! targets, and the plot.

use std::fmt::Write;

use serde::Serialize;

use super::{
    config::Config,
    phases::{Burst, PacedExpiry, Peer, Restart, Revocation, Settled},
    plot,
};

#[derive(Serialize)]
pub struct Results {
    pub started_at: String,
    pub environment: Environment,
    pub config: Config,
    pub operator_args: Vec<String>,
    pub burst: Burst,
    pub resync: Restart,
    pub revocation: Revocation,
    pub paced_expiry: PacedExpiry,
    pub peer: Peer,
    /// Peer script's time per request over the operator's, in the burst.
    pub operator_speedup_over_peer: f64,
    pub settled: Settled,
    pub targets: Vec<Target>,
}

#[derive(Serialize)]
pub struct Environment {
    pub cpus: usize,
    pub load_average_before: String,
    pub load_average_after: String,
    pub git_commit: String,
    pub control_plane: &'static str,
}

/// One of the targets and what was measured against it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
    /// How far off, when missed.
    pub missed_by: Option<String>,
}

/// At most `limit`.
fn at_most(what: &str, measured: f64, limit: f64, unit: &str) -> Target {
    let met = measured <= limit;
    Target {
        what: what.into(),
        target: format!("≤ {}{}", num(limit), spaced(unit)),
        measured: format!("{}{}", num(measured), spaced(unit)),
        met,
        missed_by: (!met).then(|| {
            let ratio = if limit > 0.0 {
                format!(" ({:.2}×)", measured / limit)
            } else {
                String::new()
            };
            format!("{}{}{ratio}", num(measured - limit), spaced(unit))
        }),
    }
}

fn at_least(what: &str, measured: f64, floor: f64, unit: &str) -> Target {
    let met = measured >= floor;
    Target {
        what: what.into(),
        target: format!("≥ {}{}", num(floor), spaced(unit)),
        measured: format!("{}{}", num(measured), spaced(unit)),
        met,
        missed_by: (!met).then(|| format!("{}{} short", num(floor - measured), spaced(unit))),
    }
}

/// " ms" for "ms", "" for none, "×" glued on.
fn spaced(unit: &str) -> String {
    match unit {
        "" | "×" => unit.to_owned(),
        _ => format!(" {unit}"),
    }
}

fn num(x: f64) -> String {
    if x == x.trunc() || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

const MIB: f64 = 1024.0 * 1024.0;

pub fn targets(
    burst: &Burst,
    resync: &Restart,
    paced: &PacedExpiry,
    settled: &Settled,
    speedup: f64,
) -> Vec<Target> {
    vec![
        at_most(
            "Burst: first create → last Issued",
            burst.wall_seconds,
            1.1 * burst.rate_limit_bound_seconds,
            "s",
        ),
        at_most(
            "Burst: 429s answered by Clerk",
            burst.clerk.too_many_requests as f64,
            0.0,
            "",
        ),
        at_most(
            "API writes per issued request (Events not counted)",
            burst.writes_per_issued_without_events,
            3.0,
            "",
        ),
        at_most(
            "Resync of settled requests: API writes",
            crate::harness::apiserver::per_request(&resync.writes) as f64,
            0.0,
            "",
        ),
        at_most(
            "Resync of settled requests: Clerk calls",
            resync.clerk.total() as f64,
            0.0,
            "",
        ),
        at_most(
            "p99 create → Issued under the rate limit",
            paced.latency_ms.p99,
            300.0,
            "ms",
        ),
        at_most(
            "Revoke after expiresAt (worst)",
            paced.revoke_after_expiry_ms.max,
            1000.0,
            "ms",
        ),
        at_most(
            &format!("RSS with {} settled requests", settled.requests),
            settled.restart.rss_bytes as f64 / MIB,
            40.0,
            "MiB",
        ),
        at_least("Speed over the peer script", speedup, 10.0, "×"),
    ]
}

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let b = &r.burst;
    let _ = writeln!(md, "# `make bench` results\n");
    let _ = writeln!(
        md,
        "Run {} on {} CPUs (load average before: {}; after: {}), commit `{}`, {}. Operator: \
         the release binary, `{}`. Clerk: the simulator at {} requests per {} s per key, {} ms \
         added latency.\n",
        r.started_at,
        r.environment.cpus,
        r.environment.load_average_before,
        r.environment.load_average_after,
        r.environment.git_commit,
        r.environment.control_plane,
        r.operator_args.join(" "),
        r.config.clerk_limit_requests,
        r.config.clerk_limit_window_seconds,
        r.config.clerk_latency_ms
    );
    let _ = writeln!(md, "## Against the targets\n");
    let _ = writeln!(md, "| figure | target | measured | |");
    let _ = writeln!(md, "|---|---|---|---|");
    for t in &r.targets {
        let verdict = match &t.missed_by {
            None => "met".to_owned(),
            Some(by) => format!("**missed** by {by}"),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what, t.target, t.measured, verdict
        );
    }
    let _ = writeln!(md, "\n## Every figure\n");
    let _ = writeln!(md, "| phase | figure | value |");
    let _ = writeln!(md, "|---|---|---|");
    let mut row = |phase: &str, figure: &str, value: String| {
        let _ = writeln!(md, "| {phase} | {figure} | {value} |");
    };
    row(
        "burst",
        "requests / namespaces / Issued",
        format!("{} / {} / {}", b.requests, b.namespaces, b.issued),
    );
    row(
        "burst",
        "first create → last Issued",
        format!(
            "{:.2} s (rate-limit bound {:.1} s; creates sent in {:.2} s)",
            b.wall_seconds, b.rate_limit_bound_seconds, b.apply_seconds
        ),
    );
    row(
        "burst",
        "create → Issued p50 / p90 / p99 / max (watch, ms)",
        summary(&b.latency_ms, 0),
    );
    row(
        "burst",
        "create → Issued p50 / p90 / p99 / max (object timestamps, 1 s resolution)",
        summary(&b.latency_from_object_timestamps_s, 0) + " s",
    );
    row(
        "burst",
        "Clerk calls: creates / revokes / 429s / per request",
        format!(
            "{} / {} / {} / {:.2}",
            b.clerk.creates, b.clerk.revokes, b.clerk.too_many_requests, b.clerk_calls_per_request
        ),
    );
    row(
        "burst",
        "API writes per Issued (all / without Events; Leases not counted)",
        format!(
            "{:.2} / {:.2}",
            b.writes_per_issued, b.writes_per_issued_without_events
        ),
    );
    row(
        "burst",
        "API writes by verb and resource",
        writes(&b.writes),
    );
    row(
        "burst",
        "operator CPU / peak RSS",
        format!(
            "{:.2} CPU-s / {:.1} MiB",
            b.operator_cpu_seconds,
            b.operator_peak_rss_bytes as f64 / MIB
        ),
    );
    restart_rows(&mut row, "resync", &r.resync);
    let v = &r.revocation;
    row(
        "revocation",
        "requests deleted / revoked / gone",
        format!("{} / {} / {}", v.requests, v.revoked, v.gone),
    );
    row(
        "revocation",
        "first delete → last token revoked / last object gone",
        format!(
            "{:.2} s / {:.2} s",
            v.all_revoked_seconds, v.all_gone_seconds
        ),
    );
    row(
        "revocation",
        "Clerk revokes / 429s",
        format!("{} / {}", v.clerk.revokes, v.clerk.too_many_requests),
    );
    row(
        "revocation",
        "API writes by verb and resource",
        writes(&v.writes),
    );
    let p = &r.paced_expiry;
    row(
        "paced",
        "requests / per second / Issued",
        format!("{} / {} / {}", p.requests, p.per_second, p.issued),
    );
    row(
        "paced",
        "create → Issued p50 / p90 / p99 / max (ms)",
        summary(&p.latency_ms, 0),
    );
    row(
        "expiry",
        &format!(
            "revoke − expiresAt p50 / p90 / p99 / max (ms), expiresIn {} s",
            p.expires_in_seconds
        ),
        summary(&p.revoke_after_expiry_ms, 0),
    );
    row(
        "expiry",
        "phase Expired seen − expiresAt p50 / p90 / p99 / max (ms)",
        summary(&p.expired_phase_after_expiry_ms, 0),
    );
    row(
        "expiry",
        "revoked at expiry / already expired at Clerk / phase Expired",
        format!(
            "{} / {} / {}",
            p.revoked, p.expired_before_revoke, p.expired
        ),
    );
    let q = &r.peer;
    row(
        "peer script",
        "requests / Secrets written / wall time",
        format!(
            "{} / {} / {:.1} s",
            q.requests, q.secrets_written, q.wall_seconds
        ),
    );
    row(
        "peer script",
        "time per request, script ÷ operator",
        format!("{:.1}×", r.operator_speedup_over_peer),
    );
    let s = &r.settled;
    row(
        "settled",
        "requests / Secrets in their namespaces",
        format!("{} / {}", s.requests, s.secrets),
    );
    restart_rows(&mut row, "settled", &s.restart);
    let _ = writeln!(md, "\n![cumulative Issued over time](burst.svg)");
    md
}

fn restart_rows(row: &mut impl FnMut(&str, &str, String), phase: &str, r: &Restart) {
    row(
        phase,
        "operator restarted over requests",
        r.requests_in_cluster.to_string(),
    );
    row(
        phase,
        "start → /readyz / → every request reconciled",
        format!(
            "{:.2} s / {:.2} s ({} reconciles)",
            r.start_to_ready_seconds, r.start_to_reconciled_seconds, r.reconciles
        ),
    );
    row(
        phase,
        "API writes / Clerk calls",
        format!(
            "{} ({}) / {}",
            crate::harness::apiserver::per_request(&r.writes),
            writes(&r.writes),
            r.clerk.total()
        ),
    );
    row(
        phase,
        "RSS after the initial pass / peak / CPU",
        format!(
            "{:.1} MiB / {:.1} MiB / {:.2} CPU-s",
            r.rss_bytes as f64 / MIB,
            r.peak_rss_bytes as f64 / MIB,
            r.cpu_seconds
        ),
    );
}

fn summary(s: &super::stats::Summary, digits: usize) -> String {
    format!(
        "{:.d$} / {:.d$} / {:.d$} / {:.d$}",
        s.p50,
        s.p90,
        s.p99,
        s.max,
        d = digits
    )
}

fn writes(w: &super::apiserver::Writes) -> String {
    if w.is_empty() {
        return "none".into();
    }
    w.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes results.json, results.md and burst.svg into the results folder.
pub fn write(r: &Results) {
    let dir = &r.config.results_dir;
    std::fs::create_dir_all(dir).expect("create the results folder");
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(r).unwrap() + "\n",
    )
    .unwrap();
    std::fs::write(dir.join("results.md"), markdown(r)).unwrap();
    let title = format!(
        "{} ActorTokenRequests at once: cumulative Issued (--concurrency {})",
        r.burst.requests, r.config.concurrency
    );
    std::fs::write(
        dir.join("burst.svg"),
        plot::issued_over_time(
            &r.burst.issued_at_s,
            r.burst.requests,
            r.burst.rate_limit_bound_seconds,
            &title,
        ),
    )
    .unwrap();
    println!("{}", markdown(r));
    println!("results written to {}", dir.display());
}
