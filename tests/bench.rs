//! `make bench`: how fast and how cheap the operator is at scale (issue 5). One ignored test
//! runs the whole benchmark; the other tests here check the benchmark's own arithmetic.
//!
//! ```sh
//! make bench                                  # the issue's numbers (takes several minutes)
//! BENCH_REQUESTS=100 BENCH_SETTLED=200 make bench   # a quick run
//! ```

mod support;

#[path = "bench/mod.rs"]
mod harness;

use harness::{apiserver, config::Config, plot, stats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, minutes long: run it with `make bench`"]
async fn benchmark() {
    assert!(
        std::env::var_os("ENVTEST_DIR").is_none(),
        "the benchmark counts every write the API server answers, so it starts a control \
         plane of its own: unset ENVTEST_DIR (`make bench` does)"
    );
    harness::run(Config::from_env()).await;
}

#[test]
fn api_server_writes_are_read_by_verb_and_resource() {
    let text = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="actortokens.dev",resource="actortokenrequests",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="actortokens.dev",resource="actortokenrequests",scope="resource",subresource="",verb="PATCH",version="v1alpha1"} 1.0
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 40
apiserver_request_total_other{verb="POST",resource="secrets"} 99
"#;
    let writes = apiserver::parse_writes(text);
    assert_eq!(
        writes.into_iter().collect::<Vec<_>>(),
        vec![
            ("create secrets".to_owned(), 7),
            ("create secrets [409]".to_owned(), 2),
            ("patch actortokenrequests".to_owned(), 1),
            ("update actortokenrequests/status".to_owned(), 3),
        ]
    );
}

#[test]
fn write_deltas_leave_out_what_did_not_move_and_the_benchmarks_own() {
    let before = [
        ("create secrets".to_owned(), 5),
        ("create events".to_owned(), 1),
    ]
    .into();
    let after = [
        ("create secrets".to_owned(), 8),
        ("create events".to_owned(), 1),
        ("create actortokenrequests".to_owned(), 4),
    ]
    .into();
    let delta = apiserver::delta(&before, &after);
    assert_eq!(apiserver::total(&delta), 7);
    let operator = apiserver::without(delta, &[("create actortokenrequests", 4)]);
    assert_eq!(
        operator.into_iter().collect::<Vec<_>>(),
        vec![("create secrets".to_owned(), 3)]
    );
}

#[test]
fn per_request_writes_leave_out_lease_renewals_and_optionally_events() {
    let writes = [
        ("create events".to_owned(), 10),
        ("create secrets".to_owned(), 10),
        ("update actortokenrequests/status".to_owned(), 10),
        ("patch actortokenrequests [409]".to_owned(), 2),
        ("update leases".to_owned(), 3),
    ]
    .into();
    assert_eq!(apiserver::per_request(&writes), 32);
    assert_eq!(apiserver::per_request_without_events(&writes), 22);
}

#[test]
fn percentiles_are_nearest_rank() {
    let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    let s = stats::summarize(&samples);
    assert_eq!(
        (s.count, s.p50, s.p90, s.p99, s.max),
        (100, 50.0, 90.0, 99.0, 100.0)
    );
    assert_eq!(stats::summarize(&[]).p99, 0.0);
    assert_eq!(stats::summarize(&[7.0]).p50, 7.0);
}

#[test]
fn the_rate_limit_bound_is_one_create_per_request_at_the_sustained_rate() {
    let config = Config::from_env();
    assert_eq!(config.clerk_limit_requests, 1000);
    assert_eq!(config.rate_limit_bound_seconds(1000), 10.0);
    assert_eq!(config.rate_limit_bound_seconds(250), 2.5);
}

#[test]
fn the_plot_draws_the_bound_and_one_step_per_request() {
    let svg = plot::issued_over_time(&[0.5, 1.0, 2.0], 3, 4.0, "a <title>");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("a &lt;title&gt;"));
    // Three requests: three vertical steps on the Issued line.
    let issued_line = svg
        .lines()
        .find(|l| l.contains("#1f77b4") && l.starts_with("<path"))
        .unwrap();
    assert_eq!(issued_line.matches(" V").count(), 3);
    assert!(svg.contains("rate-limit bound (3 in 4.0 s)"));
}
