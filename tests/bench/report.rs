//! The results: one JSON file of every figure, a Markdown table against the issue's
//! targets, and the plot.

use std::fmt::Write;

use serde::Serialize;

use super::{
    bare::Bare,
    config::Config,
    heap::{CachedRequest, Held},
    phases::{Burst, PacedExpiry, Peer, Restart, Revocation, Settled},
    plot,
    provider_http::ProviderHttpRun,
};

#[derive(Serialize)]
pub struct Results {
    pub started_at: String,
    pub environment: Environment,
    pub config: Config,
    pub operator_args: Vec<String>,
    /// The writes alone, at the operator's concurrency: the machine's own bound.
    pub bare: Bare,
    pub burst: Burst,
    /// The bare client and the burst again with `BENCH_ADMISSION_POLICIES` applied.
    pub with_policy: Option<WithPolicy>,
    /// The burst against a development key's limit.
    pub dev_key: Option<Burst>,
    pub resync: Restart,
    pub revocation: Revocation,
    pub paced_expiry: PacedExpiry,
    pub peer: Option<Peer>,
    pub provider_http: Vec<ProviderHttpRun>,
    pub settled: Settled,
    /// What one cached request holds on the heap (counted by the benchmark's allocator).
    pub cached_issued: CachedRequest,
    pub cached_expired: CachedRequest,
    /// The burst's time over the larger of the bare client's and Clerk's bound.
    pub burst_over_bound: f64,
    /// Peer script's time per request over the operator's, in the burst.
    pub operator_speedup_over_peer: Option<f64>,
    pub targets: Vec<Target>,
}

/// The runs with the admission policies in force.
#[derive(Serialize)]
pub struct WithPolicy {
    /// Which policies.
    pub policies: String,
    /// Whether a request created with it applied got the operator's finalizer from admission.
    pub adds_finalizer: bool,
    pub bare: Bare,
    pub burst: Burst,
}

impl Results {
    /// Works out the ratios and the verdicts against the targets.
    pub fn with_targets(mut self) -> Results {
        self.burst_over_bound = over_bound(&self.burst, &self.bare);
        self.operator_speedup_over_peer = self.peer.as_ref().map(|peer| {
            let per_request = |seconds: f64, n: usize| seconds / n.max(1) as f64;
            per_request(peer.wall_seconds, peer.requests)
                / per_request(self.burst.wall_seconds, self.burst.issued).max(1e-9)
        });
        self.targets = targets(&self);
        self
    }
}

/// A burst's time over the larger of its two bounds: Clerk's limit, and the machine's (the
/// bare client's time on as many requests).
pub fn over_bound(burst: &Burst, bare: &Bare) -> f64 {
    burst.wall_seconds / bound(burst.requests, burst.rate_limit_bound_seconds, bare).max(1e-9)
}

fn bound(requests: usize, clerk_bound: f64, bare: &Bare) -> f64 {
    if bare.requests == requests {
        clerk_bound.max(bare.wall_seconds)
    } else {
        clerk_bound
    }
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
            let ratio = if limit > 0.0 && unit != "×" {
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

fn targets(r: &Results) -> Vec<Target> {
    let burst = &r.burst;
    let mut targets = vec![
        at_most(
            "Burst: time over the larger of the machine's bound (bare client) and Clerk's",
            r.burst_over_bound,
            1.05,
            "×",
        ),
        at_most(
            "Burst: 429s answered by Clerk",
            burst.clerk.too_many_requests as f64,
            0.0,
            "",
        ),
    ];
    match &r.dev_key {
        Some(dev) => {
            targets.push(at_most(
                "Development key: time over Clerk's bound",
                over_bound(dev, &r.bare),
                1.05,
                "×",
            ));
            targets.push(at_most(
                "Development key: 429s answered by Clerk",
                dev.clerk.too_many_requests as f64,
                0.0,
                "",
            ));
        }
        None => targets.push(not_run("Development key: time over Clerk's bound")),
    }
    targets.push(at_most(
        "API writes per issue without the admission policy (Events apart)",
        burst.writes_per_issued_without_events,
        3.0,
        "",
    ));
    match &r.with_policy {
        Some(p) => targets.push(at_most(
            "API writes per issue with the admission policy (Events apart)",
            p.burst.writes_per_issued_without_events,
            2.0,
            "",
        )),
        None => targets.push(not_run(
            "API writes per issue with the admission policy (BENCH_ADMISSION_POLICIES)",
        )),
    }
    targets.extend([
        at_most(
            "Resync of settled requests: API writes",
            crate::harness::apiserver::per_request(&r.resync.writes) as f64,
            0.0,
            "",
        ),
        at_most(
            "Resync of settled requests: Clerk calls",
            r.resync.clerk.total() as f64,
            0.0,
            "",
        ),
        at_most(
            "p99 create → Issued under the rate limit",
            r.paced_expiry.latency_ms.p99,
            300.0,
            "ms",
        ),
        at_most(
            "Revoke after expiresAt (worst)",
            r.paced_expiry.revoke_after_expiry_ms.max,
            1000.0,
            "ms",
        ),
        at_most(
            &format!(
                "RSS with {} settled requests and their Secrets",
                r.settled.requests
            ),
            r.settled.restart.rss_bytes as f64 / MIB,
            40.0,
            "MiB",
        ),
        at_most(
            &format!(
                "{} settled requests: API writes after a restart",
                r.settled.requests
            ),
            crate::harness::apiserver::per_request(&r.settled.restart.writes) as f64,
            0.0,
            "",
        ),
    ]);
    match r.operator_speedup_over_peer {
        Some(speedup) => targets.push(at_least("Speed over the peer script", speedup, 10.0, "×")),
        None => targets.push(not_run("Speed over the peer script")),
    }
    targets
}

fn not_run(what: &str) -> Target {
    Target {
        what: what.into(),
        target: String::new(),
        measured: "not run".into(),
        met: false,
        missed_by: None,
    }
}

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# `make bench` results\n");
    let _ = writeln!(
        md,
        "Run {} on {} CPUs (load average before: {}; after: {}), commit `{}`, {}. Operator: \
         the {} binary, `{}`. Clerk: the simulator at {} requests per {} s per key, {} ms \
         added latency.\n",
        r.started_at,
        r.environment.cpus,
        r.environment.load_average_before,
        r.environment.load_average_after,
        r.environment.git_commit,
        r.environment.control_plane,
        if cfg!(debug_assertions) {
            "debug (not a figure to quote)"
        } else {
            "release"
        },
        r.operator_args.join(" "),
        r.config.clerk_limit_requests,
        r.config.clerk_limit_window_seconds,
        r.config.clerk_latency_ms
    );
    let _ = writeln!(md, "## Against the targets\n");
    let _ = writeln!(md, "| figure | target | measured | |");
    let _ = writeln!(md, "|---|---|---|---|");
    for t in &r.targets {
        let verdict = match (&t.missed_by, t.measured.as_str()) {
            (_, "not run") => "not run".to_owned(),
            (None, _) => "met".to_owned(),
            (Some(by), _) => format!("**missed** by {by}"),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what, t.target, t.measured, verdict
        );
    }
    side_by_side(&mut md, r);
    at_rest(&mut md, r);
    every_figure(&mut md, r);
    let _ = writeln!(md, "\n![cumulative Issued over time](burst.svg)");
    md
}

/// One row of the side-by-side table.
struct Row {
    run: String,
    requests: usize,
    done: String,
    seconds: f64,
    /// The larger of Clerk's bound and the machine's (bare client) for as many requests; none
    /// for the bare client, which is the machine's bound.
    bound: Option<f64>,
    writes: f64,
    events: Option<f64>,
    reviews: Option<f64>,
    clerk: Option<f64>,
    served_twice: Option<usize>,
    too_many: Option<u64>,
    cpu: Option<f64>,
    peak_rss: Option<u64>,
}

/// The same burst through every contender, in one table.
fn side_by_side(md: &mut String, r: &Results) {
    use super::apiserver;
    let per = |n: u64, d: usize| n as f64 / d.max(1) as f64;
    let bare_row = |name: &str, b: &Bare| Row {
        run: name.into(),
        requests: b.requests,
        done: b.issued.to_string(),
        seconds: b.wall_seconds,
        bound: None,
        writes: per(apiserver::per_request_without_events(&b.writes), b.issued),
        events: Some(per(apiserver::events(&b.writes), b.issued)),
        reviews: Some(per(apiserver::subject_access_reviews(&b.writes), b.issued)),
        clerk: None,
        served_twice: None,
        too_many: None,
        cpu: None,
        peak_rss: None,
    };
    let burst_row = |name: &str, b: &Burst| Row {
        run: name.into(),
        requests: b.requests,
        done: b.issued.to_string(),
        seconds: b.wall_seconds,
        bound: Some(bound(b.requests, b.rate_limit_bound_seconds, &r.bare)),
        writes: b.writes_per_issued_without_events,
        events: Some(b.events_per_issued),
        reviews: Some(b.subject_access_reviews_per_issued),
        clerk: Some(b.clerk_calls_per_request),
        served_twice: Some(b.users_with_more_than_one_token),
        too_many: Some(b.clerk.too_many_requests),
        cpu: Some(b.operator_cpu_seconds),
        peak_rss: Some(b.operator_peak_rss_bytes),
    };
    let mut rows = vec![
        burst_row("operator", &r.burst),
        bare_row("bare client (the writes alone)", &r.bare),
    ];
    if let Some(p) = &r.with_policy {
        rows.push(burst_row("operator, admission policy", &p.burst));
        rows.push(bare_row("bare client, admission policy", &p.bare));
    }
    for run in &r.provider_http {
        rows.push(Row {
            run: format!(
                "provider-http {} {}",
                run.version,
                if run.args.is_empty() {
                    "(defaults)".to_owned()
                } else {
                    format!("`{}`", run.args.join(" "))
                }
            ),
            requests: run.requests,
            done: if run.stuck > 0 {
                format!("{} ({} stuck until a person steps in)", run.done, run.stuck)
            } else {
                run.done.to_string()
            },
            seconds: run.wall_seconds,
            bound: Some(bound(
                run.requests,
                r.config.rate_limit_bound_seconds(run.requests),
                &r.bare,
            )),
            writes: run.writes_per_request_without_events,
            events: Some(run.events_per_request),
            reviews: Some(per(
                apiserver::subject_access_reviews(&run.writes),
                run.requests,
            )),
            clerk: Some(run.clerk_calls_per_request),
            served_twice: Some(run.users_with_more_than_one_token),
            too_many: Some(run.clerk.too_many_requests),
            cpu: Some(run.cpu_seconds),
            peak_rss: Some(run.peak_rss_bytes),
        });
    }
    if let Some(peer) = &r.peer {
        rows.push(Row {
            run: format!("peer script (`{}`)", peer.script),
            requests: peer.requests,
            done: peer.secrets_written.to_string(),
            seconds: peer.wall_seconds,
            bound: Some(bound(
                peer.requests,
                r.config.rate_limit_bound_seconds(peer.requests),
                &r.bare,
            )),
            writes: per(
                apiserver::per_request_without_events(&peer.writes),
                peer.requests,
            ),
            events: Some(per(apiserver::events(&peer.writes), peer.requests)),
            reviews: None,
            clerk: Some(per(peer.clerk.total(), peer.requests)),
            served_twice: None,
            too_many: Some(peer.clerk.too_many_requests),
            cpu: None,
            peak_rss: None,
        });
    }
    if let Some(dev) = &r.dev_key {
        rows.push(burst_row("operator, development key (100 per 10 s)", dev));
    }
    let _ = writeln!(md, "\n## The same burst, side by side\n");
    let _ = writeln!(
        md,
        "Time: first create → last done (`Issued`; a DisposableRequest's `status.synced`). \
         Bound: the larger of Clerk's limit ({} per {} s; 100 per 10 s for the development \
         key) and the bare client's time on as many requests. API writes are the API \
         server's own counts (`apiserver_request_total`), Leases, Events and reviews apart. \
         CPU and peak RSS are the controller process's, from /proc, over the burst.\n",
        r.config.clerk_limit_requests, r.config.clerk_limit_window_seconds
    );
    let _ = writeln!(
        md,
        "| run | requests | done | time | × bound | API writes / request | Events / request | \
         SARs / request | Clerk calls / request | users with 2+ tokens | 429s | CPU | peak RSS |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} s | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            row.run,
            row.requests,
            row.done,
            row.seconds,
            match row.bound {
                Some(bound) => format!("{:.2}× (of {bound:.1} s)", row.seconds / bound.max(1e-9)),
                None => "the machine's bound".into(),
            },
            row.writes,
            opt(row.events.map(|v| format!("{v:.2}"))),
            opt(row.reviews.map(|v| format!("{v:.2}"))),
            opt(row.clerk.map(|v| format!("{v:.2}"))),
            opt(row.served_twice.map(|v| v.to_string())),
            opt(row.too_many.map(|v| v.to_string())),
            opt(row.cpu.map(|v| format!("{v:.1} CPU-s"))),
            opt(row.peak_rss.map(|v| format!("{:.0} MiB", v as f64 / MIB))),
        );
    }
}

/// Memory at rest: the settled requests, by phase of the restart and by kind of mapping.
fn at_rest(md: &mut String, r: &Results) {
    let s = &r.settled.restart;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / MIB);
    let _ = writeln!(md, "\n## Memory at rest\n");
    let _ = writeln!(
        md,
        "The operator restarted over {} requests ({} settled with their {} Secrets), from \
         /proc/PID/status and /proc/PID/smaps:\n",
        s.requests_in_cluster, r.settled.requests, r.settled.secrets
    );
    let _ = writeln!(md, "| when | RSS |");
    let _ = writeln!(md, "|---|---|");
    let _ = writeln!(
        md,
        "| /readyz first 200 (caches filled) | {} |",
        mib(s.rss_at_ready_bytes)
    );
    let _ = writeln!(md, "| every request reconciled | {} |", mib(s.rss_bytes));
    let _ = writeln!(md, "| peak | {} |", mib(s.peak_rss_bytes));
    let b = &s.resident;
    let _ = writeln!(
        md,
        "| of which anonymous (heap, arenas, stacks) / file-backed (code) | {} / {} |",
        mib(b.anonymous),
        mib(b.file_backed)
    );
    let _ = writeln!(
        md,
        "| of which in {} malloc arena mapping(s) of 64 MiB | {} |",
        b.arena_mappings,
        mib(b.arena_rss)
    );
    if let Some(m) = &s.malloc {
        let _ = writeln!(
            md,
            "| of which glibc malloc holds / has in use by live allocations ({} arenas; \
             `malloc_stats()` via gdb) | {} / {} |",
            m.arenas,
            mib(m.system_bytes),
            mib(m.in_use_bytes)
        );
    }
    let _ = writeln!(
        md,
        "\nOne cached request's heap (the benchmark's counting allocator, decoding the API \
         server's JSON as the watch does; bytes asked for / allocations, to which glibc's malloc \
         adds 8 to 24 bytes each):\n"
    );
    let _ = writeln!(
        md,
        "| request | as decoded | managedFields emptied (before) | as cached now |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    let held = |h: &Held| format!("{} B / {}", h.bytes, h.chunks);
    for (what, c) in [
        ("Issued, at rest", &r.cached_issued),
        ("Expired record", &r.cached_expired),
    ] {
        let _ = writeln!(
            md,
            "| {what}{} | {} | {} | {} |",
            if c.at_rest { " (compact)" } else { "" },
            held(&c.decoded),
            held(&c.managed_fields_emptied),
            held(&c.cached)
        );
    }
}

fn every_figure(md: &mut String, r: &Results) {
    let _ = writeln!(md, "\n## Every figure\n");
    let _ = writeln!(md, "| phase | figure | value |");
    let _ = writeln!(md, "|---|---|---|");
    let mut row = |phase: &str, figure: &str, value: String| {
        let _ = writeln!(md, "| {phase} | {figure} | {value} |");
    };
    let b = &r.bare;
    row(
        "bare",
        "requests / Issued / finalizer patches",
        format!("{} / {} / {}", b.requests, b.issued, b.finalizer_patches),
    );
    row(
        "bare",
        "first create → last Issued",
        format!("{:.2} s at --concurrency {}", b.wall_seconds, b.concurrency),
    );
    row("bare", "API writes by verb and resource", writes(&b.writes));
    burst_rows(&mut row, "burst", &r.burst);
    if let Some(p) = &r.with_policy {
        row(
            "policy",
            "policies / add the finalizer at create",
            format!("`{}` / {}", p.policies, p.adds_finalizer),
        );
        row(
            "policy bare",
            "first create → last Issued / finalizer patches",
            format!(
                "{:.2} s / {}",
                p.bare.wall_seconds, p.bare.finalizer_patches
            ),
        );
        row(
            "policy bare",
            "API writes by verb and resource",
            writes(&p.bare.writes),
        );
        burst_rows(&mut row, "policy burst", &p.burst);
    }
    if let Some(dev) = &r.dev_key {
        burst_rows(&mut row, "dev key", dev);
    }
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
    if let Some(q) = &r.peer {
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
            format!("{:.1}×", r.operator_speedup_over_peer.unwrap_or(0.0)),
        );
        row(
            "peer script",
            "API writes by verb and resource",
            writes(&q.writes),
        );
    }
    for run in &r.provider_http {
        let phase = format!("provider-http {}", run.args.join(" "));
        row(
            &phase,
            "requests / done / stuck until a person steps in / Secrets with a url / time to the last done",
            format!(
                "{} / {} / {} / {} / {:.1} s",
                run.requests, run.done, run.stuck, run.secrets_with_url, run.wall_seconds
            ),
        );
        row(
            &phase,
            "Clerk creates / 429s / users with 2+ tokens",
            format!(
                "{} / {} / {}",
                run.clerk.creates, run.clerk.too_many_requests, run.users_with_more_than_one_token
            ),
        );
        row(
            &phase,
            "API writes by verb and resource",
            writes(&run.writes),
        );
        row(
            &phase,
            "CPU / RSS at the end / peak RSS",
            format!(
                "{:.2} CPU-s / {:.1} MiB / {:.1} MiB",
                run.cpu_seconds,
                run.rss_bytes as f64 / MIB,
                run.peak_rss_bytes as f64 / MIB
            ),
        );
    }
    let s = &r.settled;
    row(
        "settled",
        "requests / Secrets in their namespaces",
        format!("{} / {}", s.requests, s.secrets),
    );
    restart_rows(&mut row, "settled", &s.restart);
}

fn burst_rows(row: &mut impl FnMut(&str, &str, String), phase: &str, b: &Burst) {
    row(
        phase,
        "requests / namespaces / Issued",
        format!("{} / {} / {}", b.requests, b.namespaces, b.issued),
    );
    row(
        phase,
        "first create → last Issued",
        format!(
            "{:.2} s (rate-limit bound {:.1} s; creates sent in {:.2} s)",
            b.wall_seconds, b.rate_limit_bound_seconds, b.apply_seconds
        ),
    );
    row(
        phase,
        "create → Issued p50 / p90 / p99 / max (watch, ms)",
        summary(&b.latency_ms, 0),
    );
    row(
        phase,
        "create → Issued p50 / p90 / p99 / max (object timestamps, 1 s resolution)",
        summary(&b.latency_from_object_timestamps_s, 0) + " s",
    );
    row(
        phase,
        "Clerk calls: creates / revokes / 429s / per request / users with 2+ tokens",
        format!(
            "{} / {} / {} / {:.2} / {}",
            b.clerk.creates,
            b.clerk.revokes,
            b.clerk.too_many_requests,
            b.clerk_calls_per_request,
            b.users_with_more_than_one_token
        ),
    );
    row(
        phase,
        "API writes per Issued (all / without Events; Leases and reviews not counted)",
        format!(
            "{:.2} / {:.2}",
            b.writes_per_issued, b.writes_per_issued_without_events
        ),
    );
    row(
        phase,
        "Events / SubjectAccessReviews per Issued",
        format!(
            "{:.2} / {:.2}",
            b.events_per_issued, b.subject_access_reviews_per_issued
        ),
    );
    row(phase, "API writes by verb and resource", writes(&b.writes));
    row(
        phase,
        "operator CPU / peak RSS",
        format!(
            "{:.2} CPU-s / {:.1} MiB",
            b.operator_cpu_seconds,
            b.operator_peak_rss_bytes as f64 / MIB
        ),
    );
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
    let bare = plot::Series {
        label: "bare client: the writes alone",
        issued_s: &r.bare.issued_at_s,
        colour: "#2ca02c",
    };
    std::fs::write(
        dir.join("burst.svg"),
        plot::issued_over_time_with(
            &r.burst.issued_at_s,
            &[bare],
            r.burst.requests,
            r.burst.rate_limit_bound_seconds,
            &title,
        ),
    )
    .unwrap();
    println!("{}", markdown(r));
    println!("results written to {}", dir.display());
}
