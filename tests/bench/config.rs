//! What the benchmark runs, from `BENCH_*` environment variables; the defaults are the
//! numbers issue 5 asks for.

use std::path::PathBuf;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    /// ActorTokenRequests in the burst (`BENCH_REQUESTS`).
    pub requests: usize,
    /// Namespaces they are spread over (`BENCH_NAMESPACES`).
    pub namespaces: usize,
    /// Requests created at a steady pace below the rate limit, each expiring after
    /// `expires_in_seconds` (`BENCH_EXPIRING`, `BENCH_EXPIRES_IN_SECONDS`).
    pub expiring: usize,
    pub expires_in_seconds: u64,
    /// How many of them are created per second (`BENCH_PACED_PER_SECOND`).
    pub paced_per_second: f64,
    /// Settled requests (and their Secrets) for the footprint at rest (`BENCH_SETTLED`).
    pub settled: usize,
    /// Requests the peer script handles (`BENCH_PEER_REQUESTS`, default: `requests`).
    pub peer_requests: usize,
    /// The operator's `--concurrency`: the chart's default unless `BENCH_CONCURRENCY` says.
    pub concurrency: u16,
    /// `--concurrency` while the settled requests are being issued (setup only, not measured;
    /// `BENCH_SETUP_CONCURRENCY`).
    pub setup_concurrency: u16,
    /// The simulated Clerk instance: its per-key limit and added latency.
    pub clerk_limit_requests: u32,
    pub clerk_limit_window_seconds: u64,
    pub clerk_latency_ms: u64,
    /// Requests in the burst against a development key's limit (100 per 10 s), where Clerk is
    /// the bound (`BENCH_DEV_REQUESTS`, default: `requests`).
    pub dev_requests: usize,
    /// DisposableRequests in each of provider-http's bursts (`BENCH_PROVIDER_HTTP_REQUESTS`,
    /// default: `requests`).
    pub provider_http_requests: usize,
    /// provider-http's settings, one burst each (`BENCH_PROVIDER_HTTP_RUNS`, `;`-separated
    /// argument lists; an empty list is its defaults).
    pub provider_http_runs: Vec<Vec<String>>,
    /// Whether the bare client and the operator's burst run a second time with the chart's
    /// admission policies in force (`BENCH_ADMISSION_POLICIES=chart`; unset or empty: not).
    pub admission_policies: bool,
    /// Parts left out of this run (`BENCH_SKIP`, comma-separated: `dev-key`, `peer`,
    /// `provider-http`), for quick runs while developing.
    pub skip: Vec<String>,
    /// More arguments for `actor-token-operator run` (`BENCH_OPERATOR_ARGS`, split at
    /// whitespace), e.g. `--leader-election` as the chart sets it.
    pub operator_args: Vec<String>,
    /// Where the figures go (`BENCH_RESULTS`, default `tests/bench/results`).
    #[serde(skip)]
    pub results_dir: PathBuf,
}

/// The chart's `concurrency` value (charts/actor-token-operator/values.yaml).
fn chart_concurrency() -> u16 {
    let path = crate::support::repo_root().join("charts/actor-token-operator/values.yaml");
    let values: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).expect("the chart's values.yaml"))
            .expect("values.yaml is YAML");
    values["concurrency"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .expect("values.yaml sets concurrency")
}

impl Config {
    pub fn from_env() -> Config {
        let requests = var("BENCH_REQUESTS", 1000);
        Config {
            requests,
            namespaces: var("BENCH_NAMESPACES", 10).max(1),
            expiring: var("BENCH_EXPIRING", 100),
            expires_in_seconds: var("BENCH_EXPIRES_IN_SECONDS", 30),
            paced_per_second: var("BENCH_PACED_PER_SECOND", 10.0),
            settled: var("BENCH_SETTLED", 10_000),
            peer_requests: var("BENCH_PEER_REQUESTS", requests),
            concurrency: var("BENCH_CONCURRENCY", chart_concurrency()),
            setup_concurrency: var("BENCH_SETUP_CONCURRENCY", 16),
            clerk_limit_requests: 1000,
            clerk_limit_window_seconds: 10,
            clerk_latency_ms: 50,
            dev_requests: var("BENCH_DEV_REQUESTS", requests),
            provider_http_requests: var("BENCH_PROVIDER_HTTP_REQUESTS", requests),
            provider_http_runs: std::env::var("BENCH_PROVIDER_HTTP_RUNS")
                .unwrap_or_else(|_| ";--max-reconcile-rate=100".into())
                .split(';')
                .map(|args| args.split_whitespace().map(str::to_owned).collect())
                .collect(),
            admission_policies: match std::env::var("BENCH_ADMISSION_POLICIES")
                .unwrap_or_default()
                .trim()
            {
                "chart" => true,
                "" => false,
                other => panic!(
                    "BENCH_ADMISSION_POLICIES={other:?}: `chart` (the chart's policies, as the \
                     test bed installs them) or empty"
                ),
            },
            skip: std::env::var("BENCH_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            operator_args: std::env::var("BENCH_OPERATOR_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            results_dir: std::env::var_os("BENCH_RESULTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::support::repo_root().join("tests/bench/results")),
        }
    }

    /// The fastest `n` requests can be issued under the simulated Clerk's limit, in seconds:
    /// one create per request at the limit's sustained rate.
    pub fn rate_limit_bound_seconds(&self, n: usize) -> f64 {
        Config::rate_limit_bound(
            n,
            (self.clerk_limit_requests, self.clerk_limit_window_seconds),
        )
    }

    /// The same under any limit of (requests, window seconds).
    pub fn rate_limit_bound(n: usize, (requests, window_seconds): (u32, u64)) -> f64 {
        n as f64 * window_seconds as f64 / f64::from(requests.max(1))
    }

    /// Whether `part` runs (not named in `BENCH_SKIP`).
    pub fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|s| s == part)
    }
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}
