//! The Helm chart: it lints and renders what its values say, and what it installs is enough
//! for the operator to work, for real: the operator binary runs as a local process with a
//! token of the chart's ServiceAccount (the local control plane runs no Pods) and serves
//! requests against the Clerk simulator, with no RBAC refusal in its log. And the
//! ServiceAccount can't do what it has no need to.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use actor_token_operator::api::{ActorTokenRequest, ClerkInstance, ClusterClerkInstance, Phase};
use k8s_openapi::api::{core::v1::Secret, events::v1::Event};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    Operator, OperatorOptions, TestNamespace, control_plane, eventually, install_crds, repo_root,
};

const RENDER_NAMESPACE: &str = "ato-system";
const KEY: &str = "sk_test_chart_key";

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

/// `helm template` of the chart as release `rel` in RENDER_NAMESPACE, one JSON value per object.
fn render(values: &[&str]) -> Vec<Value> {
    let mut cmd = control_plane().helm();
    cmd.args(["template", "rel"])
        .arg(chart())
        .args(["--namespace", RENDER_NAMESPACE])
        .args(values);
    let yaml = run(cmd, "helm template");
    serde_saphyr::from_multiple::<Value>(&yaml)
        .expect("helm template renders YAML")
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn container_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The resources a (Cluster)Role's rules name, e.g. "secrets", "actortokenrequests/status".
fn resources(role: &Value) -> Vec<String> {
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn the_chart_lints_and_renders_the_values_given() {
    let namespaced = ["--set-json", r#"watchNamespaces=["a","b"]"#];
    for values in [&[][..], &namespaced[..]] {
        let mut cmd = control_plane().helm();
        cmd.args(["lint", "--strict"]).arg(chart()).args(values);
        let out = run(cmd, "helm lint");
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }

    // Default: all namespaces, cluster-wide RBAC.
    let docs = render(&["--set", "concurrency=7", "--set", "logFormat=json"]);
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
        ]
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(pod["serviceAccountName"], "rel-actor-token-operator");
    assert_eq!(container["image"], "actor-token-operator:0.1.0");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let pod_name = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        of_kind(&docs, "ServiceAccount")[0]["metadata"]["name"],
        "rel-actor-token-operator"
    );
    assert_eq!(
        of_kind(&docs, "Service")[0]["spec"]["ports"][0]["port"],
        8080
    );
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());

    let cluster_roles = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    let granted = resources(cluster_roles[0]);
    for resource in [
        "actortokenrequests",
        "actortokenrequests/status",
        "clerkinstances",
        "clusterclerkinstances",
        "secrets",
        "events",
    ] {
        assert!(
            granted.iter().any(|g| g == resource),
            "the ClusterRole lacks {resource}: {granted:?}"
        );
    }
    assert_eq!(of_kind(&docs, "ClusterRoleBinding").len(), 1);
    assert!(of_kind(&docs, "Role").is_empty() && of_kind(&docs, "RoleBinding").is_empty());
    assert!(
        !serde_json::to_string(&docs).unwrap().contains(r#""*""#),
        "no wildcard in any rule"
    );

    // watchNamespaces: a Role per namespace, and only ClusterClerkInstances cluster-wide.
    let docs = render(&namespaced);
    assert!(
        container_args(of_kind(&docs, "Deployment")[0]).contains(&"--namespaces=a,b".to_owned())
    );
    let cluster_roles = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(
        resources(cluster_roles[0]),
        ["clusterclerkinstances", "clusterclerkinstances/status"]
    );
    let where_ = |kind: &str| -> Vec<(String, String)> {
        let mut found: Vec<_> = of_kind(&docs, kind)
            .iter()
            .map(|r| {
                (
                    r["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    r["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let expected: Vec<(String, String)> = [
        ("a", "rel-actor-token-operator"),
        (
            "ato-system",
            "rel-actor-token-operator-cluster-instance-keys",
        ),
        ("b", "rel-actor-token-operator"),
    ]
    .iter()
    .map(|(n, r)| (n.to_string(), r.to_string()))
    .collect();
    assert_eq!(where_("Role"), expected);
    assert_eq!(where_("RoleBinding"), expected);
    let keys = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == RENDER_NAMESPACE)
        .unwrap();
    assert_eq!(
        keys["rules"],
        json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] }])
    );
}

/// Uninstalls a release when dropped.
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = control_plane()
            .helm()
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

/// Deletes a cluster-scoped object when dropped.
struct ClusterObject {
    resource: &'static str,
    name: String,
}

impl Drop for ClusterObject {
    fn drop(&mut self) {
        let _ = control_plane()
            .kubectl()
            .args([
                "delete",
                self.resource,
                &self.name,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

/// If the test fails with requests still holding the operator's finalizer, lets them go, so
/// their namespace can be deleted.
struct ReleaseFinalizers {
    namespace: String,
}

impl Drop for ReleaseFinalizers {
    fn drop(&mut self) {
        let Ok(out) = control_plane()
            .kubectl()
            .args([
                "get",
                "actortokenrequests",
                "-n",
                &self.namespace,
                "-o",
                "name",
            ])
            .output()
        else {
            return;
        };
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = control_plane()
                .kubectl()
                .args([
                    "patch",
                    name,
                    "-n",
                    &self.namespace,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ])
                .output();
        }
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

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
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
    install_crds();
    let client = control_plane().client().await;
    // One after the other: a cluster-wide operator would also serve the other scope's requests.
    for scope in [Scope::Namespaced, Scope::ClusterWide] {
        install_and_serve(&client, scope).await;
    }
}

async fn install_and_serve(client: &Client, scope: Scope) {
    eprintln!("== chart installed with scope {scope:?}");
    let release_ns = TestNamespace::create(client, "chart-rel").await;
    let request_ns = TestNamespace::create(client, "chart-req").await;
    let other_ns = TestNamespace::create(client, "chart-other").await;
    let _finalizers = ReleaseFinalizers {
        namespace: request_ns.name.clone(),
    };
    let suffix = release_ns.name.rsplit('-').next().unwrap().to_owned();

    // Install.
    let release = Release {
        name: format!("ato-{suffix}"),
        namespace: release_ns.name.clone(),
    };
    let service_account = format!("{}-actor-token-operator", release.name);
    let mut install = control_plane().helm();
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
    install.args(["--set", "concurrency=2", "--set", "logFormat=json"]);
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
        })
        .collect();
    assert_eq!(
        extra_args,
        [
            "--concurrency=2",
            "--log-format=json",
            "--clerk-timeout-seconds=10"
        ]
    );

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

    // Clerk, and instances of both kinds: a ClusterClerkInstance whose key is in the release
    // namespace, and a ClerkInstance with its key beside it in the request namespace.
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
    Api::<Secret>::namespaced(client.clone(), &release.namespace)
        .create(&pp, &key_secret("clerk-key"))
        .await
        .unwrap();
    Api::<Secret>::namespaced(client.clone(), &request_ns.name)
        .create(&pp, &key_secret("clerk-key"))
        .await
        .unwrap();
    let cluster_instance = ClusterObject {
        resource: "clusterclerkinstances.actortokens.dev",
        name: format!("chart-{suffix}"),
    };
    let spec = json!({ "apiUrl": sim.api_url(), "secretKeyRef": { "name": "clerk-key" } });
    let cluster_instances = Api::<ClusterClerkInstance>::all(client.clone());
    cluster_instances
        .create(
            &pp,
            &object(json!({
                "apiVersion": "actortokens.dev/v1alpha1",
                "kind": "ClusterClerkInstance",
                "metadata": { "name": cluster_instance.name },
                "spec": spec,
            })),
        )
        .await
        .unwrap();
    let instances = Api::<ClerkInstance>::namespaced(client.clone(), &request_ns.name);
    instances
        .create(
            &pp,
            &object(json!({
                "apiVersion": "actortokens.dev/v1alpha1",
                "kind": "ClerkInstance",
                "metadata": { "name": "local" },
                "spec": spec,
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
    eventually(
        Duration::from_secs(60),
        "the ClusterClerkInstance to be Ready",
        || async {
            let i = cluster_instances.get(&cluster_instance.name).await.ok()?;
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
            cluster_instance.name.as_str(),
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
    assert_eq!(sim.live_tokens().len(), 2);
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

    // Deleting revokes and removes the finalizer (and the Secret).
    for name in ["via-cluster-instance", "via-instance"] {
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

    // The ServiceAccount's name shows in a log only in an RBAC refusal ("... is forbidden:
    // User "system:serviceaccount:..." cannot ..."). Other refusals can happen here, such as
    // events for requests in a namespace being deleted, left over by other tests.
    let sa = format!(
        "system:serviceaccount:{}:{service_account}",
        release.namespace
    );
    let log = operator.output();
    assert!(
        !log.contains(&sa),
        "RBAC refused the operator something:\n{log}"
    );
    drop(operator);

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
    assert!(!can_i(
        &sa,
        "delete",
        "actortokenrequests.actortokens.dev",
        req
    ));
    assert!(can_i(&sa, "get", "secrets", rel));
    assert!(can_i(&sa, "create", "secrets", req));
    match scope {
        Scope::Namespaced => {
            assert!(
                !can_i(&sa, "list", "secrets", rel),
                "key Secrets are read by name"
            );
            assert!(
                !can_i(&sa, "create", "secrets", rel),
                "key Secrets are only read"
            );
            assert!(
                !can_i(&sa, "get", "secrets", other),
                "no Secret outside the watched namespaces"
            );
            assert!(!can_i(
                &sa,
                "list",
                "actortokenrequests.actortokens.dev",
                other
            ));
        }
        // RBAC can't limit Secrets to the operator's label: all of them, in every namespace.
        Scope::ClusterWide => assert!(can_i(&sa, "get", "secrets", other)),
    }

    run(
        {
            let mut cmd = control_plane().helm();
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
            "clusterrole,clusterrolebinding",
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
