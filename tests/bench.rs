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

use harness::{apiserver, config::Config, heap, plot, procfs, stats};

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
apiserver_request_total{code="201",component="apiserver",dry_run="",group="authorization.k8s.io",resource="subjectaccessreviews",scope="cluster",subresource="",verb="POST",version="v1"} 5
apiserver_request_total_other{verb="POST",resource="secrets"} 99
"#;
    let writes = apiserver::parse_writes(text);
    assert_eq!(
        writes.into_iter().collect::<Vec<_>>(),
        vec![
            ("create secrets".to_owned(), 7),
            ("create secrets [409]".to_owned(), 2),
            ("create subjectaccessreviews".to_owned(), 5),
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
fn per_request_writes_leave_out_lease_renewals_reviews_and_optionally_events() {
    let writes = [
        ("create events".to_owned(), 10),
        ("create secrets".to_owned(), 10),
        ("update actortokenrequests/status".to_owned(), 10),
        ("patch actortokenrequests [409]".to_owned(), 2),
        ("update leases".to_owned(), 3),
        ("create subjectaccessreviews".to_owned(), 7),
        ("create selfsubjectaccessreviews".to_owned(), 1),
    ]
    .into();
    assert_eq!(apiserver::per_request(&writes), 32);
    assert_eq!(apiserver::per_request_without_events(&writes), 22);
    assert_eq!(apiserver::events(&writes), 10);
    assert_eq!(apiserver::subject_access_reviews(&writes), 7);
}

#[test]
fn a_bursts_bound_is_the_larger_of_clerks_limit_and_the_machines() {
    assert_eq!(Config::rate_limit_bound(1000, (100, 10)), 100.0);
    assert_eq!(Config::rate_limit_bound(100, (1000, 10)), 1.0);
}

#[test]
fn smaps_are_summed_by_kind_of_mapping() {
    let smaps = "\
55d0c0a00000-55d0c0c00000 r-xp 00000000 08:01 1234 /usr/local/bin/actor-token-operator
Size:               2048 kB
Rss:                1500 kB
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]
Size:               4096 kB
Rss:                4000 kB
7f0000000000-7f0004000000 rw-p 00000000 00:00 0
Size:              65536 kB
Rss:                3000 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Size:                132 kB
Rss:                  20 kB
";
    let b = procfs::parse_smaps(smaps);
    assert_eq!(b.rss, (1500 + 4000 + 3000 + 20) * 1024);
    assert_eq!(b.file_backed, 1500 * 1024);
    assert_eq!(b.anonymous, (4000 + 3000 + 20) * 1024);
    assert_eq!(b.stacks, 20 * 1024);
    assert_eq!((b.arena_mappings, b.arena_rss), (1, 3000 * 1024));
}

#[test]
fn glibcs_malloc_stats_are_read_from_the_last_report() {
    let log = "\
INFO reconcile done
Arena 0:
system bytes     =    1000
in use bytes     =     500
Arena 1:
system bytes     =    3000
in use bytes     =    1000
Total (incl. mmap):
system bytes     =    4100
in use bytes     =    1600
max mmap regions =       1
max mmap bytes   =     100
";
    let stats = procfs::parse_malloc_stats(log).unwrap();
    assert_eq!(
        (stats.arenas, stats.system_bytes, stats.in_use_bytes),
        (2, 4100, 1600)
    );
    assert_eq!(procfs::parse_malloc_stats("no report"), None);
}

#[test]
fn a_disposable_request_crossplane_gave_up_on_is_stuck() {
    let stuck = serde_json::json!({ "status": { "conditions": [
        { "type": "Ready", "status": "False", "reason": "Creating" },
        { "type": "Synced", "status": "False", "reason": "ReconcileError",
          "message": "cannot determine creation result - remove the crossplane.io/external-create-pending annotation if it is safe to proceed" }
    ]}});
    assert!(harness::provider_http::is_stuck(&stuck));
    let retrying = serde_json::json!({ "status": { "conditions": [
        { "type": "Synced", "status": "False", "reason": "ReconcileError", "message": "connection refused" }
    ]}});
    assert!(!harness::provider_http::is_stuck(&retrying));
    assert!(!harness::provider_http::is_stuck(&serde_json::json!({})));
}

#[test]
fn requests_of_a_phase_impersonate_users_of_their_own() {
    use harness::cluster::{is_user_of, user_id};
    assert_eq!(user_id("burst-policy", 7), "user_burstpolicyx7");
    assert!(is_user_of("user_burstpolicyx7", "burst-policy"));
    assert!(!is_user_of("user_burstpolicyx7", "burst"));
    assert!(!is_user_of("user_burstx7", "burst-policy"));
    assert!(!is_user_of("user_burstx", "burst"));
}

#[test]
fn the_counting_allocator_sees_what_a_value_holds() {
    let (v, held) = heap::held_by(|| vec![0u8; 1000]);
    assert_eq!((held.bytes, held.chunks), (1000, 1));
    drop(v);
    let (_, nothing) = heap::held_by(|| drop(vec![0u8; 1000]));
    assert_eq!(nothing, heap::Held::default());
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
