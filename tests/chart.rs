//! The Helm chart: it declares the crate's version and ships the CRDs; it lints and renders
//! what its values say; its schema rejects a wrong value at `helm install` with a clear
//! message; the API server accepts every object it renders; and what it installs is enough
//! for the operator to work, for real: the operator binary runs as a local process with a
//! token of the chart's ServiceAccount (the local control plane runs no Pods) and serves
//! requests against the Clerk simulator, with no RBAC refusal in its log. And the
//! ServiceAccount can't do what it has no need to.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use actor_token_operator::api::{ActorTokenRequest, ClerkInstance, ClusterClerkInstance, Phase};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Secret, events::v1::Event};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};
use support::{
    Operator, OperatorOptions, TEST_BED_CHART_VALUES, TestNamespace, control_plane, eventually,
    install_crds, repo_root,
};

/// Whether the operator binary on this branch has the `--leader-election` flags the chart
/// passes (they come with the leader-election work in src/runtime). When true, the test that
/// installs the chart runs the operator with the Deployment's leader-election flags, so the
/// chart's Lease rules are exercised; when false those flags are left out. The test fails,
/// saying so, when this disagrees with the binary's `run --help`.
const LEADER_ELECTION: bool = true;

/// The Helm major versions the chart is tested with (hack/build-tools.sh builds both, from
/// hack/versions.env): many clusters are still driven by Helm 3.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Helm {
    V3,
    V4,
}

const HELMS: [Helm; 2] = [Helm::V3, Helm::V4];

impl Helm {
    /// `helm` of this major version, talking to the test control plane.
    fn command(self) -> Command {
        let plane = control_plane();
        let binary = match self {
            Helm::V3 => "helm3",
            Helm::V4 => "helm",
        };
        let mut cmd = Command::new(plane.bin_dir.join(binary));
        cmd.arg("--kubeconfig").arg(&plane.kubeconfig);
        cmd
    }

    /// The version hack/versions.env pins for it.
    fn pinned_version(self) -> String {
        let key = match self {
            Helm::V3 => "HELM3_VERSION=",
            Helm::V4 => "HELM_VERSION=",
        };
        std::fs::read_to_string(repo_root().join("hack/versions.env"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in hack/versions.env"))
            .to_owned()
    }
}

const RENDER_NAMESPACE: &str = "ato-system";
const KEY: &str = "sk_test_chart_key";
/// The chart's default Lease name (values.yaml `leaderElection.leaseName`).
const LEASE: &str = "actor-token-operator";

fn chart() -> PathBuf {
    repo_root().join("charts/actor-token-operator")
}

/// Runs `cmd`, fails the test with its output unless it succeeds, and returns its stdout.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `helm template` (Helm 4) of the chart as release `release` in `namespace`, as YAML.
fn render_yaml(release: &str, namespace: &str, values: &[String]) -> String {
    render_yaml_with(Helm::V4, release, namespace, values)
}

fn render_yaml_with(helm: Helm, release: &str, namespace: &str, values: &[String]) -> String {
    let mut cmd = helm.command();
    cmd.args(["template", release])
        .arg(chart())
        .args(["--namespace", namespace])
        .args(values);
    run(cmd, "helm template")
}

/// `helm template` of the chart as release `rel` in RENDER_NAMESPACE, one JSON value per object.
fn render(values: &[String]) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&render_yaml("rel", RENDER_NAMESPACE, values))
        .expect("helm template renders YAML")
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn args(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// Every optional part switched on and the non-default RBAC mode: Roles in the `watch`
/// namespaces only, a ServiceMonitor, a PrometheusRule, the Grafana dashboard's ConfigMap, a
/// NetworkPolicy and a ClusterClerkInstance.
fn non_default_values(watch: [&str; 2], instance: &str) -> Vec<String> {
    args(&[
        "--set-json",
        &format!(r#"watchNamespaces=["{}","{}"]"#, watch[0], watch[1]),
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.grafanaDashboard.enabled=true",
        "--set-json",
        r#"metrics.serviceMonitor.labels={"release":"prometheus"}"#,
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        r#"networkPolicy.apiServer.cidrs=["10.0.0.1/32"]"#,
        "--set-json",
        r#"networkPolicy.apiServer.ports=[6443]"#,
        "--set-json",
        r#"networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
        "--set",
        "clusterClerkInstance.create=true",
        "--set",
        &format!("clusterClerkInstance.name={instance}"),
        "--set",
        "clusterClerkInstance.secretKeyRef.name=clerk-key",
        "--set-json",
        r#"clusterClerkInstance.rateLimit={"requests":50,"period":"10s"}"#,
        "--set",
        "clusterClerkInstance.maxExpiresIn=1h",
    ])
}

/// The ClusterRoles the chart binds to the operator (not those it offers people to bind).
fn operator_cluster_roles(docs: &[Value]) -> Vec<&Value> {
    of_kind(docs, "ClusterRole")
        .into_iter()
        .filter(|r| r["metadata"]["labels"]["actortokens.dev/role-for"] != "people")
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn container_args(deployment: &Value) -> Vec<String> {
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
}

/// A (Cluster)Role's rules as "group resource[names] verb" lines, sorted, for exact comparison.
fn grants(role: &Value) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let names = rule["resourceNames"]
            .as_array()
            .map(|_| format!("[{}]", strings(&rule["resourceNames"]).join(",")))
            .unwrap_or_default();
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    lines.insert(format!("{group} {resource}{names} {verb}"));
                }
            }
        }
    }
    lines
}

fn lines(expected: &[&str]) -> BTreeSet<String> {
    expected.iter().map(|l| l.to_string()).collect()
}

/// What the operator does to namespaced objects where it serves requests (see the code each
/// rule names in templates/_helpers.tpl).
const NAMESPACED_GRANTS: &[&str] = &[
    "actortokens.dev actortokenrequests get",
    "actortokens.dev actortokenrequests list",
    "actortokens.dev actortokenrequests watch",
    "actortokens.dev actortokenrequests patch",
    "actortokens.dev actortokenrequests issue",
    "actortokens.dev actortokenrequests delete",
    "actortokens.dev actortokenrequests/status update",
    "actortokens.dev clerkinstances get",
    "actortokens.dev clerkinstances list",
    "actortokens.dev clerkinstances watch",
    "actortokens.dev clerkinstances/status patch",
    " secrets get",
    " secrets list",
    " secrets watch",
    " secrets create",
    " secrets delete",
    "events.k8s.io events create",
    "events.k8s.io events patch",
];
const CLUSTER_GRANTS: &[&str] = &[
    "authorization.k8s.io subjectaccessreviews create",
    " namespaces get",
    "actortokens.dev clusterclerkinstances get",
    "actortokens.dev clusterclerkinstances list",
    "actortokens.dev clusterclerkinstances watch",
    "actortokens.dev clusterclerkinstances/status patch",
];
const LEASE_GRANTS: &[&str] = &[
    "coordination.k8s.io leases[actor-token-operator] get",
    "coordination.k8s.io leases[actor-token-operator] update",
    "coordination.k8s.io leases create",
];

/// The Dockerfile's ENTRYPOINT, as a list.
fn dockerfile_entrypoint() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("the Dockerfile has an ENTRYPOINT");
    serde_json::from_str(line).expect("ENTRYPOINT in exec form")
}

#[test]
fn the_chart_declares_the_crate_version_and_ships_the_crds() {
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let chart_yaml: Value = serde_saphyr::from_str(&chart_yaml).unwrap();
    assert_eq!(chart_yaml["apiVersion"], "v2", "Helm 3 and 4 read API v2");
    assert_eq!(
        chart_yaml["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml's appVersion (the default image tag) must be Cargo.toml's version"
    );
    // One version for crate, image and chart: a chart change ships in the next release.
    assert_eq!(
        chart_yaml["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml's version must be Cargo.toml's version (hack/release/check-version.sh)"
    );

    // The same CRD files as the top-level crds/ (tests/crds.rs checks their content against
    // the Rust types).
    let listing = |dir: &Path| -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    assert!(
        listing(&repo_root().join("crds")) == listing(&chart().join("crds")),
        "charts/actor-token-operator/crds/ differs from crds/: run `make crds`"
    );
}

#[test]
fn the_chart_lints_and_renders_the_values_given() {
    let non_default = non_default_values(["a", "b"], "chart-render");
    for helm in HELMS {
        for values in [&[][..], &non_default[..]] {
            let mut cmd = helm.command();
            cmd.args(["lint", "--strict"]).arg(chart()).args(values);
            let out = run(cmd, &format!("helm lint ({helm:?})"));
            assert!(out.contains("0 chart(s) failed"), "{helm:?}: {out}");
        }
    }
    // Helm 3 and Helm 4 render the chart alike, so what follows holds for both.
    for values in [&[][..], &non_default[..]] {
        let objects = |helm| {
            serde_saphyr::from_multiple::<Value>(&render_yaml_with(
                helm,
                "rel",
                RENDER_NAMESPACE,
                values,
            ))
            .unwrap()
        };
        assert_eq!(objects(Helm::V3), objects(Helm::V4), "values {values:?}");
    }

    // Default: all namespaces, cluster-wide RBAC, two replicas with leader election.
    let docs = render(&args(&[
        "--set",
        "concurrency=7",
        "--set",
        "logFormat=json",
    ]));
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let deployment = deployments[0];
    assert_eq!(
        container_args(deployment),
        [
            "run",
            "--cluster-instance-namespace=ato-system",
            "--concurrency=7",
            "--log-format=json",
            "--metrics-addr=0.0.0.0:8080",
            "--clerk-timeout-seconds=10",
            "--shutdown-timeout-seconds=30",
            "--clerk-api-hosts=api.clerk.com",
            "--leader-election",
            "--leader-election-namespace=ato-system",
            "--leader-election-lease=actor-token-operator",
            "--leader-election-lease-seconds=15",
        ]
    );
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["serviceAccountName"], "rel-actor-token-operator");
    assert_eq!(container["image"], "actor-token-operator:0.1.0");
    assert_eq!(
        strings(&container["command"]),
        dockerfile_entrypoint(),
        "the Deployment runs the binary where the Dockerfile puts it"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let env = container["env"].as_array().unwrap();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["runAsUser"], 65532,
        "the image's user"
    );
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": selector },
        }])
    );
    let budgets = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(budgets.len(), 1);
    assert_eq!(budgets[0]["spec"]["minAvailable"], 1);
    assert_eq!(budgets[0]["spec"]["selector"]["matchLabels"], *selector);
    assert_eq!(
        of_kind(&docs, "ServiceAccount")[0]["metadata"]["name"],
        "rel-actor-token-operator"
    );
    let service = of_kind(&docs, "Service")[0];
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["selector"], *selector);
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "NetworkPolicy",
        "ClusterClerkInstance",
    ] {
        assert!(of_kind(&docs, kind).is_empty(), "no {kind} by default");
    }

    let cluster_roles = operator_cluster_roles(&docs);
    assert_eq!(cluster_roles.len(), 1);
    let mut expected = lines(CLUSTER_GRANTS);
    expected.extend(lines(NAMESPACED_GRANTS));
    assert_eq!(grants(cluster_roles[0]), expected);
    assert_eq!(of_kind(&docs, "ClusterRoleBinding").len(), 1);
    // Roles for people, bound by nobody: exactly what each job needs.
    let people: std::collections::BTreeMap<String, BTreeSet<String>> =
        of_kind(&docs, "ClusterRole")
            .into_iter()
            .filter(|r| r["metadata"]["labels"]["actortokens.dev/role-for"] == "people")
            .map(|r| {
                (
                    r["metadata"]["name"].as_str().unwrap().to_owned(),
                    grants(r),
                )
            })
            .collect();
    let read_events = [
        "events.k8s.io events get",
        "events.k8s.io events list",
        "events.k8s.io events watch",
    ];
    let with_events = |extra: &[&str]| {
        let mut all = lines(extra);
        all.extend(lines(&read_events));
        all
    };
    assert_eq!(
        people,
        [
            (
                "rel-actor-token-operator-requester".to_owned(),
                with_events(&[
                    "actortokens.dev actortokenrequests create",
                    "actortokens.dev actortokenrequests get",
                    "actortokens.dev actortokenrequests list",
                    "actortokens.dev actortokenrequests watch",
                    "actortokens.dev actortokenrequests delete",
                ])
            ),
            (
                "rel-actor-token-operator-link-reader".to_owned(),
                lines(&[" secrets get"])
            ),
            (
                "rel-actor-token-operator-use-default".to_owned(),
                lines(&["actortokens.dev clusterclerkinstances[default] use"])
            ),
            (
                "rel-actor-token-operator-approve-default".to_owned(),
                with_events(&[
                    "actortokens.dev clusterclerkinstances[default] approve",
                    "actortokens.dev actortokenrequests get",
                    "actortokens.dev actortokenrequests list",
                    "actortokens.dev actortokenrequests watch",
                    "actortokens.dev actortokenrequests/status get",
                    "actortokens.dev actortokenrequests/status update",
                    "actortokens.dev actortokenrequests/status patch",
                ])
            ),
        ]
        .into_iter()
        .collect()
    );
    // In the release namespace, the Lease only.
    let roles = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], RENDER_NAMESPACE);
    assert_eq!(grants(roles[0]), lines(LEASE_GRANTS));
    let bindings = of_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0]["roleRef"]["name"], roles[0]["metadata"]["name"]);
    assert!(
        !serde_json::to_string(&docs).unwrap().contains(r#""*""#),
        "no wildcard in any rule"
    );

    // One replica: no budget (it would block every drain); no leader election: no flags and
    // no Lease rules.
    let docs = render(&args(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ]));
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    assert!(
        !container_args(of_kind(&docs, "Deployment")[0])
            .iter()
            .any(|a| a.starts_with("--leader-election"))
    );
    assert!(of_kind(&docs, "Role").is_empty());

    // watchNamespaces: a Role per namespace, and only ClusterClerkInstances cluster-wide. And
    // the optional parts.
    let docs = render(&non_default);
    assert!(
        container_args(of_kind(&docs, "Deployment")[0]).contains(&"--namespaces=a,b".to_owned())
    );
    let cluster_roles = operator_cluster_roles(&docs);
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(grants(cluster_roles[0]), lines(CLUSTER_GRANTS));
    let by_place = |kind: &str| -> Vec<(String, String, BTreeSet<String>)> {
        let mut found: Vec<_> = of_kind(&docs, kind)
            .iter()
            .map(|r| {
                (
                    r["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    r["metadata"]["name"].as_str().unwrap().to_owned(),
                    if kind == "Role" {
                        grants(r)
                    } else {
                        BTreeSet::new()
                    },
                )
            })
            .collect();
        found.sort();
        found
    };
    let keys = lines(&[" secrets get", " secrets create"]);
    let expected = |with_rules: bool| {
        let rules = |r: BTreeSet<String>| if with_rules { r } else { BTreeSet::new() };
        vec![
            (
                "a".to_owned(),
                "rel-actor-token-operator".to_owned(),
                rules(lines(NAMESPACED_GRANTS)),
            ),
            (
                "ato-system".to_owned(),
                "rel-actor-token-operator-cluster-instance-keys".to_owned(),
                rules(keys.clone()),
            ),
            (
                "ato-system".to_owned(),
                "rel-actor-token-operator-leader-election".to_owned(),
                rules(lines(LEASE_GRANTS)),
            ),
            (
                "b".to_owned(),
                "rel-actor-token-operator".to_owned(),
                rules(lines(NAMESPACED_GRANTS)),
            ),
        ]
    };
    assert_eq!(by_place("Role"), expected(true));
    assert_eq!(by_place("RoleBinding"), expected(false));

    let monitors = of_kind(&docs, "ServiceMonitor");
    assert_eq!(monitors.len(), 1);
    let monitor = monitors[0];
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], *selector);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // Their content is checked in tests/monitoring.rs.
    assert_eq!(of_kind(&docs, "PrometheusRule").len(), 1);
    let dashboards = of_kind(&docs, "ConfigMap");
    assert_eq!(dashboards.len(), 1);
    assert_eq!(
        dashboards[0]["metadata"]["labels"]["grafana_dashboard"],
        "1"
    );

    let policies = of_kind(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 1);
    let policy = &policies[0]["spec"];
    assert_eq!(policy["podSelector"]["matchLabels"], *selector);
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["ingress"],
        json!([{
            "from": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } }],
            "ports": [{ "protocol": "TCP", "port": 8080 }],
        }]),
        "only scrapers, only to the metrics port"
    );
    let egress = policy["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 3, "DNS, the API server, Clerk: {egress:?}");
    assert_eq!(
        egress[0]["ports"],
        json!([{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }])
    );
    assert_eq!(
        egress[1],
        json!({ "to": [{ "ipBlock": { "cidr": "10.0.0.1/32" } }], "ports": [{ "protocol": "TCP", "port": 6443 }] })
    );
    assert_eq!(
        egress[2]["ports"],
        json!([{ "protocol": "TCP", "port": 443 }])
    );

    // No scrapers named: the policy admits no one.
    let docs_closed = render(&args(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        r#"networkPolicy.apiServer.cidrs=["10.0.0.1/32"]"#,
    ]));
    let closed = &of_kind(&docs_closed, "NetworkPolicy")[0]["spec"];
    assert_eq!(closed["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(closed["ingress"], json!([]));

    let instances = of_kind(&docs, "ClusterClerkInstance");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["metadata"]["name"], "chart-render");
    assert_eq!(
        instances[0]["spec"],
        json!({
            "apiUrl": "https://api.clerk.com/v1",
            "secretKeyRef": { "name": "clerk-key", "key": "secretKey" },
            "rateLimit": { "requests": 50, "period": "10s" },
            "maxExpiresIn": "1h",
        })
    );
}

#[tokio::test]
async fn a_wrong_value_fails_helm_install_with_a_clear_message() {
    let client = control_plane().client().await;
    let ns = TestNamespace::create(&client, "chart-values").await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "logFormat=yaml"],
            "at '/logFormat': value must be one of 'text', 'json'",
        ),
        (
            &["--set", "replicas=3"],
            "additional properties 'replicas' not allowed",
        ),
        (
            &["--set", "replicaCount=two"],
            "at '/replicaCount': got string, want integer",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of 'IfNotPresent', 'Always', 'Never'",
        ),
        (
            &["--set-json", r#"watchNamespaces=["Not_A_Namespace"]"#],
            "at '/watchNamespaces/0': 'Not_A_Namespace' does not match pattern",
        ),
        (
            &["--set", "leaderElection.leaseSeconds=15"],
            "at '/leaderElection': additional properties 'leaseSeconds' not allowed",
        ),
        (
            &["--set", "networkPolicy.enabled=true"],
            "networkPolicy.apiServer.cidrs is required when networkPolicy.enabled is true",
        ),
        (
            &[
                "--set-json",
                r#"metrics.prometheusRule.disabled=["ActorTokensLost"]"#,
            ],
            "at '/metrics/prometheusRule/disabled/0': value must be one of 'ActorTokenLost'",
        ),
        (
            &["--set", "metrics.prometheusRule.selector=job=operator"],
            "at '/metrics/prometheusRule/selector': 'job=operator' does not match pattern",
        ),
    ];
    for helm in HELMS {
        for (values, expected) in cases {
            let out = helm
                .command()
                .args(["install", "wrong"])
                .arg(chart())
                .args(["--namespace", &ns.name])
                .args(*values)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{helm:?}: {values:?} was accepted");
            assert!(
                stderr.contains(expected),
                "{helm:?}, {values:?}: expected {expected:?} in:\n{stderr}"
            );
        }
    }
    // Helm keeps a Secret per release revision, whatever its state: none was made.
    let releases = run(
        {
            let mut cmd = control_plane().kubectl();
            cmd.args([
                "get",
                "secrets",
                "-l",
                "owner=helm",
                "-o",
                "name",
                "-n",
                &ns.name,
            ]);
            cmd
        },
        "kubectl get secrets",
    );
    assert_eq!(releases.trim(), "", "nothing was installed");
}

/// Registers the stand-in ServiceMonitor and PrometheusRule CRDs (see the files).
fn install_monitoring_crds() {
    for crd in ["servicemonitor-crd.yaml", "prometheusrule-crd.yaml"] {
        install_fixture_crd(&repo_root().join("tests/fixtures").join(crd));
    }
}

fn install_fixture_crd(crd: &Path) {
    for (what, verb) in [
        (
            "apply",
            &["apply", "--server-side", "--force-conflicts", "-f"][..],
        ),
        (
            "wait",
            &["wait", "--for=condition=Established", "--timeout=60s", "-f"][..],
        ),
    ] {
        let mut cmd = control_plane().kubectl();
        cmd.args(verb).arg(crd);
        run(cmd, &format!("kubectl {what} of {}", crd.display()));
    }
}

#[tokio::test]
async fn the_api_server_accepts_what_the_chart_renders() {
    install_crds();
    install_monitoring_crds();
    let client = control_plane().client().await;
    let release_ns = TestNamespace::create(&client, "chart-dry").await;
    let watch_a = TestNamespace::create(&client, "chart-dry-a").await;
    let watch_b = TestNamespace::create(&client, "chart-dry-b").await;
    let suffix = release_ns.name.rsplit('-').next().unwrap();
    let release = format!("dry-{suffix}");
    let dir = tempfile::tempdir().unwrap();
    for (name, values) in [
        ("default", vec![]),
        (
            "non-default",
            non_default_values(
                [&watch_a.name, &watch_b.name],
                &format!("chart-dry-{suffix}"),
            ),
        ),
    ] {
        let yaml = render_yaml(&release, &release_ns.name, &values);
        let objects = serde_saphyr::from_multiple::<Value>(&yaml)
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
            .count();
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        // kubectl validates fields strictly by default: an unknown field is an error too.
        let mut cmd = control_plane().kubectl();
        cmd.args(["apply", "--dry-run=server", "-f"]).arg(&file);
        let out = run(
            cmd,
            &format!("kubectl apply --dry-run=server ({name} values)"),
        );
        assert_eq!(
            out.matches("(server dry run)").count(),
            objects,
            "{name}: every object accepted:\n{out}"
        );
    }
}

/// Uninstalls a release when dropped, with the Helm that last handled it.
struct Release {
    name: String,
    namespace: String,
    helm: Helm,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self
            .helm
            .command()
            .args([
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// `kubectl auth can-i` as `user`: true for "yes", false for "no".
fn can_i(user: &str, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut cmd = control_plane().kubectl();
    cmd.args(["auth", "can-i", verb, resource, "--as", user]);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    let out = cmd.output().expect("run kubectl auth can-i");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl auth can-i {verb} {resource}: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A kubeconfig for the admin kubeconfig's cluster that authenticates with `token`.
fn token_kubeconfig(token: &str, dir: &Path) -> PathBuf {
    let admin = std::fs::read_to_string(&control_plane().kubeconfig).unwrap();
    let admin: Value = serde_saphyr::from_str(&admin).expect("parse the admin kubeconfig");
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "envtest", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        } }],
        "users": [{ "name": "chart-sa", "user": { "token": token } }],
        "contexts": [{ "name": "chart-sa", "context": { "cluster": "envtest", "user": "chart-sa" } }],
        "current-context": "chart-sa",
    });
    let path = dir.join("kubeconfig");
    // JSON is YAML.
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

/// A client that is the ServiceAccount whose kubeconfig this is.
async fn client_from(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

/// Whether the operator binary accepts `--leader-election`.
fn binary_has_leader_election() -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_actor-token-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run actor-token-operator run --help");
    String::from_utf8_lossy(&out.stdout).contains("--leader-election")
}

#[derive(Clone, Copy, Debug)]
enum Scope {
    /// `watchNamespaces: [the request namespace]`: Roles per namespace.
    Namespaced,
    /// The default: all namespaces, a ClusterRole.
    ClusterWide,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_charts_service_account_can_run_the_operator_and_nothing_more() {
    assert_eq!(
        binary_has_leader_election(),
        LEADER_ELECTION,
        "the operator binary {} --leader-election: set LEADER_ELECTION in tests/chart.rs to match",
        if LEADER_ELECTION { "lacks" } else { "has" }
    );
    install_crds();
    let client = control_plane().client().await;
    // One after the other: a cluster-wide operator would also serve the other scope's requests.
    for helm in HELMS {
        for scope in [Scope::Namespaced, Scope::ClusterWide] {
            install_and_serve(&client, helm, scope).await;
        }
    }
}

async fn install_and_serve(client: &Client, helm: Helm, scope: Scope) {
    eprintln!("== chart installed by {helm:?} with scope {scope:?}");
    let release_ns = TestNamespace::create(client, "chart-rel").await;
    let request_ns = TestNamespace::create(client, "chart-req").await;
    let other_ns = TestNamespace::create(client, "chart-other").await;
    let suffix = release_ns.name.rsplit('-').next().unwrap().to_owned();

    // Clerk, and the key Secrets the instances will name: a ClusterClerkInstance's in the
    // release namespace, a ClerkInstance's beside it in the request namespace.
    let sim = clerk_sim::start(clerk_sim::SimConfig {
        secret_keys: vec![KEY.into()],
        ..Default::default()
    })
    .await
    .expect("start the Clerk simulator");
    let key_secret = |name: &str| -> Secret {
        object(json!({ "metadata": { "name": name }, "stringData": { "secretKey": KEY } }))
    };
    let pp = PostParams::default();
    for ns in [&release_ns.name, &request_ns.name] {
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&pp, &key_secret("clerk-key"))
            .await
            .unwrap();
    }

    // Install, with the chart's own ClusterClerkInstance.
    let release = Release {
        name: format!("ato-{suffix}"),
        namespace: release_ns.name.clone(),
        helm,
    };
    let cluster_instance = format!("chart-{suffix}");
    let service_account = format!("{}-actor-token-operator", release.name);
    let mut install = helm.command();
    install
        .args(["install", &release.name])
        .arg(chart())
        .args(["--namespace", &release.namespace]);
    if let Scope::Namespaced = scope {
        install.args([
            "--set-json",
            &format!(r#"watchNamespaces=["{}"]"#, request_ns.name),
        ]);
    }
    install.args([
        "--set",
        "concurrency=2",
        "--set",
        "logFormat=json",
        "--set",
        "clusterClerkInstance.create=true",
        "--set",
        &format!("clusterClerkInstance.name={cluster_instance}"),
        "--set",
        &format!("clusterClerkInstance.apiUrl={}", sim.api_url()),
        "--set",
        "clusterClerkInstance.secretKeyRef.name=clerk-key",
    ]);
    install.args(TEST_BED_CHART_VALUES);
    run(install, "helm install");

    // The Deployment is stored (nothing runs it here); run what it would run, as its
    // ServiceAccount, with its arguments.
    let deployment: Value = serde_json::from_str(&run(
        {
            let mut cmd = control_plane().kubectl();
            cmd.args([
                "get",
                "deployment",
                &service_account,
                "-n",
                &release.namespace,
                "-o",
                "json",
            ]);
            cmd
        },
        "kubectl get deployment",
    ))
    .unwrap();
    let args = container_args(&deployment);
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .map(str::to_owned)
    };
    assert_eq!(
        flag("cluster-instance-namespace").as_deref(),
        Some(release.namespace.as_str())
    );
    assert_eq!(
        flag("leader-election-namespace").as_deref(),
        Some(release.namespace.as_str())
    );
    assert_eq!(flag("leader-election-lease").as_deref(), Some(LEASE));
    let namespaces = flag("namespaces");
    match scope {
        Scope::Namespaced => assert_eq!(namespaces.as_deref(), Some(request_ns.name.as_str())),
        Scope::ClusterWide => assert_eq!(namespaces, None),
    }
    // Start passes --namespaces, --cluster-instance-namespace and a free --metrics-addr itself.
    let extra_args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| {
            *a != "run"
                && ![
                    "--namespaces=",
                    "--cluster-instance-namespace=",
                    "--metrics-addr=",
                ]
                .iter()
                .any(|p| a.starts_with(p))
                && (LEADER_ELECTION || !a.starts_with("--leader-election"))
        })
        .collect();
    let mut expected = vec![
        "--concurrency=2".to_owned(),
        "--log-format=json".to_owned(),
        "--clerk-timeout-seconds=10".to_owned(),
        "--shutdown-timeout-seconds=30".to_owned(),
        "--clerk-api-hosts=127.0.0.1".to_owned(),
        "--allow-insecure-clerk-http".to_owned(),
    ];
    if LEADER_ELECTION {
        expected.extend([
            "--leader-election".to_owned(),
            format!("--leader-election-namespace={}", release.namespace),
            format!("--leader-election-lease={LEASE}"),
            "--leader-election-lease-seconds=15".to_owned(),
        ]);
    }
    assert_eq!(extra_args, expected);

    let token = run(
        {
            let mut cmd = control_plane().kubectl();
            cmd.args([
                "create",
                "token",
                &service_account,
                "-n",
                &release.namespace,
                "--duration=1h",
            ]);
            cmd
        },
        "kubectl create token",
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = token_kubeconfig(token.trim(), dir.path());

    // A ClerkInstance in the request namespace (the ClusterClerkInstance is the chart's).
    let instances = Api::<ClerkInstance>::namespaced(client.clone(), &request_ns.name);
    instances
        .create(
            &pp,
            &object(json!({
                "apiVersion": "actortokens.dev/v1alpha1",
                "kind": "ClerkInstance",
                "metadata": { "name": "local" },
                "spec": { "apiUrl": sim.api_url(), "secretKeyRef": { "name": "clerk-key" } },
            })),
        )
        .await
        .unwrap();

    // Even with cluster-wide RBAC, serve only this test's namespace: the control plane is
    // shared, and an operator serving every namespace would act on other tests' requests.
    let watched = [request_ns.name.as_str()];
    let operator = Operator::start(OperatorOptions {
        namespaces: &watched,
        cluster_instance_namespace: &release.namespace,
        kubeconfig: Some(&kubeconfig),
        extra_args: &extra_args,
    });

    // Instance status: the key Secrets were read, and the status written.
    let ready = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    let cluster_instances = Api::<ClusterClerkInstance>::all(client.clone());
    eventually(
        Duration::from_secs(60),
        "the chart's ClusterClerkInstance to be Ready",
        || async {
            let i = cluster_instances.get(&cluster_instance).await.ok()?;
            ready(&i.status?.conditions).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the ClerkInstance to be Ready",
        || async {
            let i = instances.get("local").await.ok()?;
            ready(&i.status?.conditions).then_some(())
        },
    )
    .await;

    // Requests, one per instance kind.
    let requests = Api::<ActorTokenRequest>::namespaced(client.clone(), &request_ns.name);
    for (name, kind, instance) in [
        (
            "via-cluster-instance",
            "ClusterClerkInstance",
            cluster_instance.as_str(),
        ),
        ("via-instance", "ClerkInstance", "local"),
    ] {
        let request = object(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": name },
            "spec": {
                "userId": "user_chart",
                "actor": { "sub": "user_support" },
                "instanceRef": { "kind": kind, "name": instance },
                "reason": "chart test",
            }
        }));
        requests.create(&pp, &request).await.unwrap();
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), &request_ns.name);
    for name in ["via-cluster-instance", "via-instance"] {
        eventually(
            Duration::from_secs(60),
            &format!("request {name} to be Issued"),
            || async {
                (requests.get(name).await.ok()?.phase() == Some(Phase::Issued)).then_some(())
            },
        )
        .await;
        let secret = secrets.get(name).await.expect("the link's Secret exists");
        assert!(secret.data.unwrap().contains_key("url"));
    }
    // A request whose instance comes later: it waits, and is issued from the cache once the
    // instance appears (reading the request afresh first).
    requests
        .create(
            &pp,
            &object(json!({
                "apiVersion": "actortokens.dev/v1alpha1",
                "kind": "ActorTokenRequest",
                "metadata": { "name": "via-late-instance" },
                "spec": {
                    "userId": "user_chart",
                    "actor": { "sub": "user_support" },
                    "instanceRef": { "kind": "ClerkInstance", "name": "late" },
                },
            })),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "via-late-instance to wait for its instance",
        || async {
            let request = requests.get("via-late-instance").await.ok()?;
            let status = request.status?;
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "InstanceNotReady")
                .then_some(())
        },
    )
    .await;
    instances
        .create(
            &pp,
            &object(json!({
                "apiVersion": "actortokens.dev/v1alpha1",
                "kind": "ClerkInstance",
                "metadata": { "name": "late" },
                "spec": { "apiUrl": sim.api_url(), "secretKeyRef": { "name": "clerk-key" } },
            })),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "via-late-instance to be Issued",
        || async {
            (requests.get("via-late-instance").await.ok()?.phase() == Some(Phase::Issued))
                .then_some(())
        },
    )
    .await;
    assert_eq!(sim.live_tokens().len(), 3);
    // Events were published.
    let events = Api::<Event>::namespaced(client.clone(), &request_ns.name);
    eventually(Duration::from_secs(30), "an Issued event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Issued"))
            .then_some(())
    })
    .await;
    if LEADER_ELECTION {
        // The operator holds the chart's Lease, in the release namespace.
        let lease = Api::<Lease>::namespaced(client.clone(), &release.namespace)
            .get(LEASE)
            .await
            .expect("the operator created the chart's Lease");
        let written = lease.metadata.resource_version.clone();
        let holder = lease.spec.and_then(|s| s.holder_identity);
        assert!(
            holder.is_some_and(|h| !h.is_empty()),
            "the Lease has a holder"
        );
        // And renews it.
        let leases = Api::<Lease>::namespaced(client.clone(), &release.namespace);
        eventually(
            Duration::from_secs(30),
            "a renewal of the Lease",
            || async {
                let lease = leases.get(LEASE).await.ok()?;
                (lease.metadata.resource_version != written).then_some(())
            },
        )
        .await;
    }

    // Deleting revokes and removes the finalizer (and the Secret).
    for name in ["via-cluster-instance", "via-instance", "via-late-instance"] {
        requests
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(60),
        "the requests to be gone",
        || async {
            requests
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert!(sim.live_tokens().is_empty(), "every token was revoked");

    // An RBAC refusal names the ServiceAccount ("... is forbidden: User
    // "system:serviceaccount:..." cannot ..."); the operator also logs who it is at start.
    // Other refusals can happen here, such as events for requests in a namespace being
    // deleted, left over by other tests.
    let sa = format!(
        "system:serviceaccount:{}:{service_account}",
        release.namespace
    );
    let log = operator.output();
    assert!(
        !log.lines()
            .any(|l| l.contains(&sa) && l.contains("forbidden")),
        "RBAC refused the operator something:\n{log}"
    );
    drop(operator);

    // Every grant is used: what the ServiceAccount did, from the API server's audit log,
    // justifies each verb of each rule the chart installed. A grant nothing used is one to
    // drop (or, if the code does need it, a path this test should exercise).
    let used = audit_calls(&sa);
    let mut unused = Vec::new();
    for role in installed_roles(&release.name) {
        for grant in role.grants {
            let justified = NEEDED_BUT_NOT_EXERCISED.contains(&grant.line.as_str())
                || used
                    .iter()
                    .any(|call| grant.allows(role.namespace.as_deref(), call));
            if !justified {
                unused.push(format!("{} {}: {}", role.kind, role.name, grant.line));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "the chart grants what the operator never did in this run:\n{}\nit did:\n{}",
        unused.join("\n"),
        used.iter()
            .map(|c| format!("{c:?}"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // What the ServiceAccount can't do.
    let (rel, req, other) = (
        Some(release.namespace.as_str()),
        Some(request_ns.name.as_str()),
        Some(other_ns.name.as_str()),
    );
    assert!(!can_i(&sa, "create", "deployments", rel));
    assert!(!can_i(
        &sa,
        "create",
        "clusterclerkinstances.actortokens.dev",
        None
    ));
    assert!(
        !can_i(&sa, "update", "actortokenrequests.actortokens.dev", req),
        "the spec is never written"
    );
    // Deleting a request is a person's (or a GitOps tool's) decision; the operator deletes
    // only finished ones whose instance asks for it (deleteFinishedAfter).
    assert!(can_i(
        &sa,
        "delete",
        "actortokenrequests.actortokens.dev",
        req
    ));
    assert!(can_i(&sa, "get", "secrets", rel));
    assert!(can_i(&sa, "create", "secrets", req));
    // The Lease: its own, by name, in the release namespace only.
    let lease = format!("leases.coordination.k8s.io/{LEASE}");
    assert!(can_i(&sa, "update", &lease, rel));
    assert!(!can_i(
        &sa,
        "update",
        "leases.coordination.k8s.io/other",
        rel
    ));
    assert!(!can_i(&sa, "list", "leases.coordination.k8s.io", rel));
    assert!(!can_i(&sa, "create", "leases.coordination.k8s.io", req));
    match scope {
        Scope::Namespaced => {
            assert!(
                !can_i(&sa, "list", "secrets", rel),
                "key Secrets are read by name"
            );
            for verb in ["update", "patch", "delete"] {
                assert!(
                    !can_i(&sa, verb, "secrets", rel),
                    "key Secrets are only read (and the seal key made once): {verb}"
                );
            }
            assert!(!can_i(
                &sa,
                "list",
                "actortokenrequests.actortokens.dev",
                other
            ));
            // And for real: as the ServiceAccount, reading a Secret in a namespace it does not
            // serve is refused.
            Api::<Secret>::namespaced(client.clone(), &other_ns.name)
                .create(&pp, &key_secret("not-yours"))
                .await
                .unwrap();
            let as_operator = client_from(&kubeconfig).await;
            let refused = Api::<Secret>::namespaced(as_operator, &other_ns.name)
                .get("not-yours")
                .await
                .expect_err("the operator read a Secret outside its namespaces");
            assert!(
                matches!(&refused, kube::Error::Api(s) if s.is_forbidden()),
                "expected 403 Forbidden, got {refused}"
            );
        }
        // RBAC can't limit Secrets to the operator's label: all of them, in every namespace.
        Scope::ClusterWide => assert!(can_i(&sa, "get", "secrets", other)),
    }

    run(
        {
            let mut cmd = helm.command();
            cmd.args([
                "uninstall",
                &release.name,
                "--namespace",
                &release.namespace,
            ]);
            cmd
        },
        "helm uninstall",
    );
    let out = control_plane()
        .kubectl()
        .args([
            "get",
            "clusterrole,clusterrolebinding,clusterclerkinstances.actortokens.dev",
            "-l",
            &format!("app.kubernetes.io/instance={}", release.name),
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cluster-scoped objects left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn helm_3_and_helm_4_are_the_pinned_releases() {
    for helm in HELMS {
        let mut cmd = helm.command();
        cmd.args(["version", "--template", "{{ .Version }}"]);
        let version = run(cmd, "helm version");
        assert_eq!(version.trim(), helm.pinned_version(), "{helm:?}");
    }
}

/// Chart.yaml's kubeVersion is enforced by both Helms: below it nothing is rendered.
#[test]
fn the_chart_refuses_a_kubernetes_older_than_it_supports() {
    for helm in HELMS {
        let template = |kube: &str| {
            helm.command()
                .args(["template", "rel"])
                .arg(chart())
                .args(["--kube-version", kube])
                .output()
                .unwrap()
        };
        let old = template("1.35.9");
        let stderr = String::from_utf8_lossy(&old.stderr);
        assert!(!old.status.success(), "{helm:?} rendered for 1.35");
        assert!(
            stderr.contains(">=1.36.0-0") && stderr.contains("v1.35.9"),
            "{helm:?}: {stderr}"
        );
        let supported = template("1.36.0");
        assert!(
            supported.status.success(),
            "{helm:?}: {}",
            String::from_utf8_lossy(&supported.stderr)
        );
    }
}

/// `helm history` of a release, as (revision, status) pairs.
fn history(helm: Helm, release: &Release) -> Vec<(u64, String)> {
    let mut cmd = helm.command();
    cmd.args([
        "history",
        &release.name,
        "--namespace",
        &release.namespace,
        "-o",
        "json",
    ]);
    let entries: Vec<Value> = serde_json::from_str(&run(cmd, "helm history")).unwrap();
    entries
        .iter()
        .map(|e| {
            (
                e["revision"].as_u64().unwrap(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Upgrading changes what the operator runs with and, what matters most, what it may do:
/// narrowing `watchNamespaces` takes away the Secret access everywhere else that the
/// cluster-wide release granted. With each Helm, and across them (a Helm 3 release upgraded
/// by Helm 4, as a cluster moving to Helm 4 does it); then uninstalled by the upgrader.
#[tokio::test]
async fn an_upgrade_narrows_what_the_operator_may_do() {
    install_crds();
    let client = control_plane().client().await;
    for (installer, upgrader) in [
        (Helm::V3, Helm::V3),
        (Helm::V4, Helm::V4),
        (Helm::V3, Helm::V4),
    ] {
        upgrade(&client, installer, upgrader).await;
    }
}

async fn upgrade(client: &Client, installer: Helm, upgrader: Helm) {
    eprintln!("== installed by {installer:?}, upgraded by {upgrader:?}");
    let release_ns = TestNamespace::create(client, "chart-up").await;
    let served = TestNamespace::create(client, "chart-up-req").await;
    let other = TestNamespace::create(client, "chart-up-other").await;
    let suffix = release_ns.name.rsplit('-').next().unwrap().to_owned();
    let mut release = Release {
        name: format!("up-{suffix}"),
        namespace: release_ns.name.clone(),
        helm: installer,
    };
    let fullname = format!("{}-actor-token-operator", release.name);
    let sa = format!("system:serviceaccount:{}:{fullname}", release.namespace);
    let helm_in = |helm: Helm, verb: &str, values: &[&str]| {
        let mut cmd = helm.command();
        cmd.args([verb, &release.name])
            .arg(chart())
            .args(["--namespace", &release.namespace])
            .args(TEST_BED_CHART_VALUES)
            .args(values);
        cmd
    };
    let deployment_args = || {
        let mut cmd = control_plane().kubectl();
        cmd.args([
            "get",
            "deployment",
            &fullname,
            "-n",
            &release.namespace,
            "-o",
            "json",
        ]);
        container_args(&serde_json::from_str(&run(cmd, "kubectl get deployment")).unwrap())
    };

    run(
        helm_in(installer, "install", &["--set", "concurrency=2"]),
        "helm install",
    );
    assert!(deployment_args().contains(&"--concurrency=2".to_owned()));
    assert!(can_i(&sa, "get", "secrets", Some(&other.name)));

    // A wrong value is refused at upgrade too, and leaves the release as it was.
    let refused = helm_in(upgrader, "upgrade", &["--set", "logFormat=yaml"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("at '/logFormat'"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    run(
        helm_in(
            upgrader,
            "upgrade",
            &[
                "--set",
                "concurrency=3",
                "--set-json",
                &format!(r#"watchNamespaces=["{}"]"#, served.name),
            ],
        ),
        "helm upgrade",
    );
    release.helm = upgrader;
    assert_eq!(
        history(upgrader, &release),
        [(1, "superseded".to_owned()), (2, "deployed".to_owned())]
    );
    let args = deployment_args();
    assert!(args.contains(&"--concurrency=3".to_owned()), "{args:?}");
    assert!(
        args.contains(&format!("--namespaces={}", served.name)),
        "{args:?}"
    );
    // RBAC's authorizer follows its watch of roles and bindings: wait for it.
    eventually(
        Duration::from_secs(30),
        "the operator to lose Secret access outside the served namespace",
        || async { (!can_i(&sa, "get", "secrets", Some(&other.name))).then_some(()) },
    )
    .await;
    assert!(!can_i(
        &sa,
        "list",
        "actortokenrequests.actortokens.dev",
        Some(&other.name)
    ));
    assert!(can_i(&sa, "create", "secrets", Some(&served.name)));
    assert!(can_i(
        &sa,
        "list",
        "clusterclerkinstances.actortokens.dev",
        None
    ));

    let mut uninstall = upgrader.command();
    uninstall.args([
        "uninstall",
        &release.name,
        "--namespace",
        &release.namespace,
    ]);
    run(uninstall, "helm uninstall");
    let mut left = control_plane().kubectl();
    left.args([
        "get",
        "clusterrole,clusterrolebinding",
        "-l",
        &format!("app.kubernetes.io/instance={}", release.name),
        "-o",
        "name",
    ]);
    assert_eq!(
        run(left, "kubectl get").trim(),
        "",
        "cluster-scoped objects left"
    );
    let mut roles = control_plane().kubectl();
    roles.args([
        "get",
        "roles,rolebindings",
        "-n",
        &served.name,
        "-o",
        "name",
    ]);
    assert_eq!(
        run(roles, "kubectl get").trim(),
        "",
        "Roles left in {}",
        served.name
    );
}

/// Grants the operator needs on paths this test can't make happen at will, each with why.
const NEEDED_BUT_NOT_EXERCISED: &[&str] = &[
    // kube's event recorder patches an event's series when the same event is published twice
    // for the same version of a request: a retry that fails the same way before any write.
    "events.k8s.io events patch",
    // A virtual verb, never an API call: the admission policies ask the authorizer whether
    // whoever writes a request's status holds it (src/admission/cel.rs `is_operator`). This
    // test's status writes, through the test bed's policies, pass because it does.
    "actortokens.dev actortokenrequests issue",
    // A ClusterClerkInstance's namespaceSelector is matched against the request's namespace
    // (governance/judge.rs); this test's instance has none. tests/governance.rs covers it.
    " namespaces get",
    // Finished requests are deleted where an instance sets deleteFinishedAfter
    // (reconcile/apply/cleanup.rs); this test's instance doesn't. tests/governance.rs covers it.
    "actortokens.dev actortokenrequests delete",
];

/// One API call, as the audit log has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    namespace: Option<String>,
    group: String,
    /// `resource` or `resource/subresource`
    resource: String,
    name: Option<String>,
    verb: String,
}

/// Every call `user` made that RBAC allowed, from the control plane's audit log (which
/// hack/envtest.sh writes for ServiceAccounts only).
fn audit_calls(user: &str) -> Vec<Call> {
    let path = control_plane().state_dir.join("audit.log");
    let log = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no audit log at {} ({e}): the control plane predates audit logging; \
             restart it (make envtest-stop)",
            path.display()
        )
    });
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["user"]["username"] == user)
        .filter(|event| event["annotations"]["authorization.k8s.io/decision"] == "allow")
        .filter_map(|event| {
            let object = &event["objectRef"];
            let resource = object["resource"].as_str()?;
            let text = |v: &Value| v.as_str().map(str::to_owned);
            Some(Call {
                namespace: text(&object["namespace"]),
                group: text(&object["apiGroup"]).unwrap_or_default(),
                resource: match object["subresource"].as_str() {
                    Some(sub) => format!("{resource}/{sub}"),
                    None => resource.to_owned(),
                },
                name: text(&object["name"]),
                verb: text(&event["verb"])?,
            })
        })
        .collect()
}

struct InstalledRole {
    kind: String,
    name: String,
    /// A Role's namespace; `None` for a ClusterRole.
    namespace: Option<String>,
    grants: Vec<Grant>,
}

struct Grant {
    /// "group resource verb", as in NAMESPACED_GRANTS (names left out).
    line: String,
    group: String,
    resource: String,
    verb: String,
    names: Option<Vec<String>>,
}

impl Grant {
    /// Whether this grant, in a role of `namespace` (`None`: cluster-wide), allows `call`.
    fn allows(&self, namespace: Option<&str>, call: &Call) -> bool {
        self.group == call.group
            && self.resource == call.resource
            && self.verb == call.verb
            && (namespace.is_none() || namespace == call.namespace.as_deref())
            && self
                .names
                .as_ref()
                .is_none_or(|names| call.name.as_ref().is_some_and(|n| names.contains(n)))
    }
}

/// The Roles and ClusterRoles the release installed, rule by rule.
fn installed_roles(release: &str) -> Vec<InstalledRole> {
    let out = run(
        {
            let mut cmd = control_plane().kubectl();
            cmd.args([
                "get",
                "clusterroles,roles",
                "-A",
                "-l",
                // The operator's roles, not those the chart offers people to bind.
                &format!("app.kubernetes.io/instance={release},actortokens.dev/role-for!=people"),
                "-o",
                "json",
            ]);
            cmd
        },
        "kubectl get roles",
    );
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|role| {
            let mut grants = Vec::new();
            for rule in role["rules"].as_array().unwrap() {
                let names = rule["resourceNames"]
                    .as_array()
                    .map(|_| strings(&rule["resourceNames"]));
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            grants.push(Grant {
                                line: format!("{group} {resource} {verb}"),
                                group: group.clone(),
                                resource: resource.clone(),
                                verb,
                                names: names.clone(),
                            });
                        }
                    }
                }
            }
            InstalledRole {
                kind: role["kind"].as_str().unwrap().to_owned(),
                name: role["metadata"]["name"].as_str().unwrap().to_owned(),
                namespace: role["metadata"]["namespace"].as_str().map(str::to_owned),
                grants,
            }
        })
        .collect()
}
