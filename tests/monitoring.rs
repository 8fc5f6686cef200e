//! What the chart ships for monitoring: the PrometheusRule's alerts and the Grafana dashboard.
//! Both are checked with Prometheus' own parsers (hack/promcheck: the rule-file check of
//! `promtool check rules`, and PromQL for every dashboard query), and every metric they query
//! must be one a running operator exports on /metrics, so a renamed or misspelt metric fails
//! here instead of leaving an alert that never fires or a panel that stays empty.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use actor_token_operator::api::Phase;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use support::{control_plane, env::Env, eventually, repo_root};

const ALERTS: [&str; 6] = [
    "ActorTokenLost",
    "ActorTokenRevokeAbandoned",
    "ActorTokenPastExpiry",
    "ActorTokenOperatorNoSingleLeader",
    "ActorTokenClerkUnauthorized",
    "ActorTokenClerkErrors",
];

fn chart() -> PathBuf {
    repo_root().join("charts/actor-token-operator")
}

fn dashboard_file() -> PathBuf {
    chart().join("dashboards/actor-token-operator.json")
}

/// The checker, built once and cached by hack/promcheck.sh.
fn promcheck() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("hack/promcheck.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run hack/promcheck.sh");
        assert!(
            out.status.success(),
            "building promcheck failed (see the [promcheck] lines above)"
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// What promcheck found in files that passed: the metric names their queries select.
#[derive(Debug)]
struct Checked {
    queries: u64,
    metrics: BTreeSet<String>,
}

/// `promcheck rules|dashboard file`: the metrics queried, or its complaints.
fn check(kind: &str, file: &Path) -> Result<Checked, String> {
    let out = Command::new(promcheck())
        .arg(kind)
        .arg(file)
        .output()
        .expect("run promcheck");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let report: Value = serde_json::from_slice(&out.stdout).expect("promcheck prints JSON");
    Ok(Checked {
        queries: report["queries"].as_u64().unwrap(),
        metrics: report["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_owned())
            .collect(),
    })
}

/// The names a PromQL query can select in an OpenMetrics exposition: each sample's name, and
/// for each family declared by `# TYPE`, the sample names its type has (a counter's `_total`,
/// a histogram's `_bucket`, `_sum` and `_count`, …).
fn series_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// /metrics as Prometheus scrapes it: OpenMetrics, which it asks for first.
async fn scrape(operator: &support::Operator) -> Option<String> {
    let addr = operator.metrics_addr()?;
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .ok()?;
    answer.status().is_success().then_some(())?;
    answer.text().await.ok()
}

/// The metrics a running operator exports. A family with labels shows only once something
/// was counted under a label, so the operator is put through what a working day brings first:
/// a token issued and revoked, and a key Clerk refuses (a failed reconcile). Computed once
/// per test binary.
async fn exported_metrics() -> &'static BTreeSet<String> {
    static NAMES: tokio::sync::OnceCell<BTreeSet<String>> = tokio::sync::OnceCell::const_new();
    NAMES
        .get_or_init(|| async {
            let env = Env::start("monitoring").await;
            env.create_request("issued", json!({})).await;
            env.wait_phase("issued", Phase::Issued).await;
            env.requests
                .delete("issued", &DeleteParams::default())
                .await
                .unwrap();
            env.wait_gone("issued").await;
            env.apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "unknown-key", "namespace": env.ns.name },
                "stringData": { "secretKey": "sk_test_notAKeyTheSimulatorKnows0123456789" }
            }))
            .await;
            env.apply(json!({
                "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
                "metadata": { "name": "refused", "namespace": env.ns.name },
                "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "unknown-key" } }
            }))
            .await;
            env.create_request(
                "refused",
                json!({ "instanceRef": { "kind": "ClerkInstance", "name": "refused" } }),
            )
            .await;
            env.wait_reason("refused", "ClerkUnauthorized").await;

            // Let go of the refused request while the operator runs (its finalizer).
            env.requests
                .delete("refused", &DeleteParams::default())
                .await
                .unwrap();
            env.wait_gone("refused").await;

            let operator = env.operator.as_ref().expect("the operator runs");
            let after_that = [
                "actor_token_operator_reconciles_total",
                "actor_token_operator_reconcile_errors_total",
                "actor_token_operator_tokens_revoked_total",
                "actor_token_operator_clerk_requests_total",
                "actor_token_operator_clerk_request_duration_seconds_bucket",
                "actor_token_operator_requests",
            ];
            eventually(
                Duration::from_secs(60),
                &format!("the operator's /metrics to show {after_that:?}"),
                || async {
                    let names = series_names(&scrape(operator).await?);
                    after_that
                        .iter()
                        .all(|n| names.contains(*n))
                        .then_some(names)
                },
            )
            .await
        })
        .await
}

/// Fails, naming them, if `used` holds a metric that is not in `exported`.
fn assert_only_exported(what: &str, used: &BTreeSet<String>, exported: &BTreeSet<String>) {
    let unknown: Vec<_> = used.difference(exported).collect();
    assert!(
        unknown.is_empty(),
        "{what} queries metrics the operator does not export: {unknown:?}\n(it exports {exported:?})"
    );
}

fn helm_template(values: &[&str], template: &str) -> Value {
    let out = control_plane()
        .helm()
        .args(["template", "rel"])
        .arg(chart())
        .args(["--namespace", "monitoring", "--show-only", template])
        .args(values)
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("one YAML object")
}

fn alert_names(rule: &Value) -> Vec<String> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_alert_rules_pass_the_rule_file_checks_and_query_only_exported_metrics() {
    let exported = exported_metrics().await;
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 2] = [
        (
            "defaults",
            &["--set", "metrics.prometheusRule.enabled=true"],
        ),
        (
            "selector, alert labels, one alert left out",
            &[
                "--set",
                "metrics.prometheusRule.enabled=true",
                "--set",
                r#"metrics.prometheusRule.selector=job="kubernetes-pods"\,app_kubernetes_io_instance=~"ato|ato-.+""#,
                "--set-json",
                r#"metrics.prometheusRule.alertLabels={"team":"identity"}"#,
                "--set-json",
                r#"metrics.prometheusRule.disabled=["ActorTokenClerkErrors"]"#,
            ],
        ),
    ];
    for (name, values) in cases {
        let rule = helm_template(values, "templates/prometheusrule.yaml");
        assert_eq!(rule["kind"], "PrometheusRule");
        // The rule file Prometheus gets is the PrometheusRule's spec (JSON is YAML).
        let file = dir.path().join("rules.yaml");
        std::fs::write(&file, serde_json::to_vec_pretty(&rule["spec"]).unwrap()).unwrap();
        let checked = check("rules", &file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_only_exported(&format!("the rules ({name})"), &checked.metrics, exported);

        let names = alert_names(&rule);
        let rules: Vec<&Value> = rule["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        if name == "defaults" {
            assert_eq!(names, ALERTS);
            for r in &rules {
                assert!(
                    r["expr"].as_str().unwrap().contains(
                        r#"job="rel-actor-token-operator-metrics",namespace="monitoring""#
                    ),
                    "by default every rule selects what the chart's ServiceMonitor scrapes: {r}"
                );
            }
        } else {
            assert_eq!(names, ALERTS[..5]);
            for r in &rules {
                assert_eq!(r["labels"]["team"], "identity");
                assert!(
                    r["expr"].as_str().unwrap().contains(
                        r#"job="kubernetes-pods",app_kubernetes_io_instance=~"ato|ato-.+""#
                    ),
                    "{r}"
                );
            }
        }
        assert_eq!(checked.queries, names.len() as u64);
        for r in &rules {
            assert!(
                ["warning", "critical"].contains(&r["labels"]["severity"].as_str().unwrap()),
                "{r}"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    r["annotations"][annotation].is_string(),
                    "{annotation}: {r}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_dashboard_is_valid_json_and_queries_only_exported_metrics() {
    let exported = exported_metrics().await;
    let text = std::fs::read_to_string(dashboard_file()).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let checked = check("dashboard", &dashboard_file()).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked.queries >= 10, "{checked:?}");
    assert_only_exported("the dashboard", &checked.metrics, exported);
    // Every panel draws from the dashboard's data-source variable, so that it works in any
    // Grafana it is imported into.
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {}",
                panel["title"]
            );
        }
    }

    // The chart ships the same file in a ConfigMap for Grafana's sidecar.
    let config_map = helm_template(
        &["--set", "metrics.grafanaDashboard.enabled=true"],
        "templates/grafana-dashboard.yaml",
    );
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(config_map["metadata"]["namespace"], "monitoring");
    let shipped: Value = serde_json::from_str(
        config_map["data"]["actor-token-operator.json"]
            .as_str()
            .unwrap(),
    )
    .expect("the ConfigMap holds JSON");
    assert_eq!(shipped, dashboard);
    let elsewhere = helm_template(
        &[
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.grafanaDashboard.namespace=grafana",
        ],
        "templates/grafana-dashboard.yaml",
    );
    assert_eq!(elsewhere["metadata"]["namespace"], "grafana");
}

/// The check is as strict as `promtool check rules`, and stricter about metric names: these
/// must fail, each with a message that says why.
#[test]
fn promcheck_refuses_broken_rules_and_dashboards() {
    let dir = tempfile::tempdir().unwrap();
    let rules = |name: &str, body: &str| -> String {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, body).unwrap();
        check("rules", &file).expect_err(&format!("{name} was accepted"))
    };
    let group = |rule: &str| format!("groups:\n  - name: g\n    rules:\n{rule}");
    for (name, rule, expected) in [
        (
            "bad-promql",
            "      - alert: A\n        expr: sum(rate(x[5m])\n",
            "unclosed left parenthesis",
        ),
        (
            "unknown-field",
            "      - alert: A\n        expr: up\n        severity: page\n",
            "field severity not found",
        ),
        (
            "bad-template",
            "      - alert: A\n        expr: up\n        annotations:\n          d: '{{ $value | nosuchfunction }}'\n",
            "nosuchfunction",
        ),
        (
            "duplicate",
            "      - alert: A\n        expr: up\n      - alert: A\n        expr: up == 0\n",
            "duplicate rule",
        ),
        (
            "name-pattern",
            "      - alert: A\n        expr: '{__name__=~\"actor_token_operator_.+\"} > 0'\n",
            "name each metric",
        ),
    ] {
        let err = rules(name, &group(rule));
        assert!(err.contains(expected), "{name}: {expected:?} not in {err}");
    }

    let dashboard = |name: &str, body: &str| -> String {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, body).unwrap();
        check("dashboard", &file).expect_err(&format!("{name} was accepted"))
    };
    let with_query = |expr: &str| {
        format!(
            r#"{{"uid": "u", "title": "t", "schemaVersion": 39, "panels": [{{"id": 1, "type": "timeseries", "title": "p", "targets": [{{"refId": "A", "expr": {}}}]}}]}}"#,
            serde_json::to_string(expr).unwrap()
        )
    };
    for (name, body, expected) in [
        ("not-json", "{\"uid\": ".to_owned(), "not dashboard JSON"),
        (
            "bad-query",
            with_query("rate(x[$__rate_interval]"),
            "unclosed left parenthesis",
        ),
        (
            "nameless",
            with_query(r#"sum({job=~"$job"})"#),
            "names no metric",
        ),
    ] {
        let err = dashboard(name, &body);
        assert!(err.contains(expected), "{name}: {expected:?} not in {err}");
    }
    // Grafana's variables are filled in before parsing: a good query passes.
    let file = dir.path().join("good.json");
    std::fs::write(
        &file,
        with_query(r#"sum(rate(x_total{job=~"$job",ns="${namespace}"}[$__rate_interval]))"#),
    )
    .unwrap();
    let checked = check("dashboard", &file).unwrap();
    assert_eq!(checked.metrics, BTreeSet::from(["x_total".to_owned()]));
}
