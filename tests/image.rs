//! The operator's image, and the chart's Pod run from it for real. The image is the
//! Dockerfile's runtime stage on the local stand-in of distroless cc-debian12 (no public image
//! can be pulled here), holding the operator binary of this test build. The Pod is what
//! `helm template` renders for the values a user sets, run by the kubelet stand-in of
//! `support::kubelet` with podman on the host network, against the test control plane, as the
//! chart's ServiceAccount: security context, probes, leader election and hand-over, and a token
//! issued and revoked through it against the Clerk simulator.

mod support;

use std::time::Duration;

use actor_token_operator::api::{ActorTokenRequest, Phase};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use support::{
    TestNamespace,
    containers::{TEST_REPOSITORY, export_image, inspect_image, run, test_image},
    control_plane, eventually, install_crds,
    kubelet::{self, Node, PodIdentity, ProbeAnswer, RunningPod, pod_name, rendered_deployment},
    repo_root, series_value,
};

const KEY: &str = "sk_test_imageTestKey0123456789";
const WAIT: Duration = Duration::from_secs(60);

fn chart() -> std::path::PathBuf {
    repo_root().join("charts/actor-token-operator")
}

#[test]
fn the_image_holds_the_binary_on_glibc_and_nothing_to_run_but_it() {
    let image = test_image();
    let config = &inspect_image(image)["Config"];
    assert_eq!(config["User"], "65532:65532", "runs as distroless' nonroot");
    assert_eq!(
        config["Entrypoint"],
        json!(["/usr/local/bin/actor-token-operator"]),
        "the path the chart's `command` names"
    );
    assert_eq!(config["Cmd"], json!(["run"]));

    let export = export_image(image);
    let files = export.files();
    for wanted in [
        "usr/local/bin/actor-token-operator",
        "etc/ssl/certs/ca-certificates.crt",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        "lib64/ld-linux-x86-64.so.2",
        "etc/passwd",
        "etc/group",
    ] {
        assert!(
            files.iter().any(|f| f == wanted),
            "{wanted} is in the image"
        );
    }
    // No shell, no package manager, no other program: nothing to run but the operator.
    let programs: Vec<&String> = files
        .iter()
        .filter(|f| {
            ["bin/", "sbin/", "usr/bin/", "usr/sbin/", "usr/local/bin/"]
                .iter()
                .any(|dir| f.starts_with(dir) && f.len() > dir.len())
        })
        .collect();
    assert_eq!(
        programs,
        ["usr/local/bin/actor-token-operator"],
        "the only program"
    );
    let passwd = export.read("etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    assert!(
        export
            .read("etc/group")
            .lines()
            .any(|l| l == "nonroot:x:65532:")
    );
    // The CA bundle Clerk's certificate is checked against: the whole Mozilla set.
    let bundle = export.read("etc/ssl/certs/ca-certificates.crt");
    assert!(bundle.matches("BEGIN CERTIFICATE").count() > 100);
}

/// The values a user sets to run the chart from this image, serving one namespace with the
/// chart's ClusterClerkInstance pointed at the simulator.
struct UserValues {
    release: String,
    namespace: String,
    request_namespace: String,
    instance: String,
    api_url: String,
}

impl UserValues {
    fn args(&self, rbac: bool) -> Vec<String> {
        [
            "--set",
            &format!("image.repository={TEST_REPOSITORY}"),
            "--set-json",
            &format!(r#"watchNamespaces=["{}"]"#, self.request_namespace),
            "--set",
            "clusterClerkInstance.create=true",
            "--set",
            &format!("clusterClerkInstance.name={}", self.instance),
            "--set",
            &format!("clusterClerkInstance.apiUrl={}", self.api_url),
            "--set",
            "clusterClerkInstance.secretKeyRef.name=clerk-key",
            "--set",
            &format!("rbac.create={rbac}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `helm install` (or `upgrade`) of the chart with these values.
    fn helm(&self, verb: &str, rbac: bool) {
        let mut cmd = control_plane().helm();
        cmd.args([verb, &self.release])
            .arg(chart())
            .args(["--namespace", &self.namespace])
            .args(self.args(rbac));
        run(cmd, &format!("helm {verb}"));
    }

    /// The Pod template `helm template` renders with these values, and the metrics port given:
    /// Pods have a network namespace each, but containers on one host network share its ports,
    /// so each replica here gets its own `metrics.port` (a value a user may set too).
    fn pod_template(&self, metrics_port: u16) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        let mut cmd = control_plane().helm();
        cmd.args(["template", &self.release])
            .arg(chart())
            .args(["--namespace", &self.namespace])
            .args(self.args(true))
            .args(["--set", &format!("metrics.port={metrics_port}")]);
        let deployment = rendered_deployment(&run(cmd, "helm template"));
        deployment.spec.template
    }

    fn deployment_name(&self) -> String {
        format!("{}-actor-token-operator", self.release)
    }
}

/// Uninstalls a release when dropped.
struct Release<'a>(&'a UserValues);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = control_plane()
            .helm()
            .args([
                "uninstall",
                &self.0.release,
                "--namespace",
                &self.0.namespace,
            ])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replica of the chart's Deployment, run as its Pod would be.
fn start_replica(values: &UserValues, node: &Node) -> RunningPod {
    let template = values.pod_template(free_port());
    let spec = template.spec.expect("a Pod spec");
    RunningPod::start(
        PodIdentity {
            name: pod_name(&values.deployment_name()),
            namespace: values.namespace.clone(),
        },
        &spec,
        node,
    )
}

async fn answer(pod: &RunningPod, readiness: bool) -> ProbeAnswer {
    let probe = if readiness {
        pod.readiness_probe()
    } else {
        pod.liveness_probe()
    };
    pod.probe(probe).await
}

/// Waits until the readiness probe answers `status` with `word`, and returns when.
async fn wait_readiness(pod: &RunningPod, status: u16, word: &str) {
    eventually(
        WAIT,
        &format!("{}'s readiness probe to answer {status} {word}", pod.name),
        || async {
            match answer(pod, true).await {
                ProbeAnswer::Http { status: s, body } if s == status && body.contains(word) => {
                    Some(())
                }
                _ => None,
            }
        },
    )
    .await
}

async fn metric(pod: &RunningPod, series: &str) -> Option<f64> {
    let port = pod.port(&pod.liveness_probe().http_get.as_ref().unwrap().port);
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    series_value(&body, series)
}

async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt("actor-token-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The process runs exactly as the chart's securityContext and resources say, read from the
/// kernel's view of it, not from podman's configuration.
fn assert_runs_as_the_chart_says(pod: &RunningPod) {
    let container = kubelet::the_container(&pod.spec).unwrap();
    let chart = kubelet::translate::effective_security(
        pod.spec.security_context.as_ref(),
        container.security_context.as_ref(),
    )
    .unwrap();
    // What the chart says (values.yaml), which users rely on.
    assert_eq!(chart.run_as_user, Some(65532));
    assert_eq!(chart.run_as_group, Some(65532));
    assert!(chart.run_as_non_root && chart.read_only_root_filesystem);
    assert_eq!(chart.allow_privilege_escalation, Some(false));
    assert_eq!(chart.cap_drop, ["ALL"]);
    assert!(chart.cap_add.is_empty() && !chart.privileged);
    assert_eq!(chart.seccomp.as_deref(), Some("RuntimeDefault"));

    // What the kernel says of the running process.
    let status = pod.process_status();
    let ids = |id: i64| format!("{id}\t{id}\t{id}\t{id}");
    assert_eq!(
        status["Uid"],
        ids(chart.run_as_user.unwrap()),
        "real, effective, saved, fs uid"
    );
    assert_eq!(status["Gid"], ids(chart.run_as_group.unwrap()));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status[set], "0000000000000000",
            "{set}: no capability at all"
        );
    }
    assert_eq!(status["NoNewPrivs"], "1", "no privilege escalation");
    assert_eq!(
        status["Seccomp"], "2",
        "a seccomp filter (the runtime's default profile)"
    );
    assert!(
        pod.root_mount_options().iter().any(|o| o == "ro"),
        "the root filesystem is mounted read-only: {:?}",
        pod.root_mount_options()
    );
    // And its cgroup holds the chart's limits.
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    let memory = kubelet::translate::quantity(&limits["memory"].0).unwrap();
    assert_eq!(
        pod.cgroup_value("memory", "memory.limit_in_bytes")
            .as_deref(),
        Some(memory.to_string().as_str()),
        "memory limit"
    );
    let cpu = kubelet::translate::quantity(&limits["cpu"].0).unwrap();
    let quota: f64 = pod
        .cgroup_value("cpu", "cpu.cfs_quota_us")
        .unwrap()
        .parse()
        .unwrap();
    let period: f64 = pod
        .cgroup_value("cpu", "cpu.cfs_period_us")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(quota / period, cpu, "CPU limit");
}

async fn create_request(requests: &Api<ActorTokenRequest>, name: &str, user: &str, instance: &str) {
    let request: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1",
        "kind": "ActorTokenRequest",
        "metadata": { "name": name },
        "spec": {
            "userId": user,
            "actor": { "sub": "user_2imageSupport" },
            "instanceRef": { "kind": "ClusterClerkInstance", "name": instance },
            "reason": "image test",
        }
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
}

async fn wait_issued(requests: &Api<ActorTokenRequest>, name: &str) -> String {
    eventually(WAIT, &format!("{name} to be Issued"), || async {
        let request = requests.get(name).await.ok()?;
        (request.phase() == Some(Phase::Issued))
            .then(|| request.status?.token_id)
            .flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_charts_pod_runs_as_the_chart_says_elects_one_leader_and_hands_over() {
    install_crds();
    let image = test_image();
    let client = control_plane().client().await;
    let release_ns = TestNamespace::create(&client, "image-rel").await;
    let request_ns = TestNamespace::create(&client, "image-req").await;
    let suffix = release_ns.name.rsplit('-').next().unwrap().to_owned();
    let sim = clerk_sim::start(clerk_sim::SimConfig {
        secret_keys: vec![KEY.into()],
        ..Default::default()
    })
    .await
    .expect("start the Clerk simulator");
    let key: Secret = serde_json::from_value(json!({
        "metadata": { "name": "clerk-key" }, "stringData": { "secretKey": KEY }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &release_ns.name)
        .create(&PostParams::default(), &key)
        .await
        .unwrap();

    let values = UserValues {
        release: format!("img-{suffix}"),
        namespace: release_ns.name.clone(),
        request_namespace: request_ns.name.clone(),
        instance: format!("image-{suffix}"),
        api_url: sim.api_url(),
    };
    // First without the chart's RBAC (a user who grants it separately and hasn't yet): the
    // Pods start but can't read their Lease or list anything.
    values.helm("install", false);
    let _release = Release(&values);
    let node = Node::of(control_plane());
    let replicas = [start_replica(&values, &node), start_replica(&values, &node)];
    for pod in &replicas {
        assert_eq!(
            kubelet::the_container(&pod.spec).unwrap().image.as_deref(),
            Some(image),
            "the chart's image: image.repository and the tag defaulting to appVersion"
        );
        assert_runs_as_the_chart_says(pod);
    }

    // Before the caches sync: alive (the kubelet would not restart it), not ready.
    for pod in &replicas {
        let patience = RunningPod::patience(pod.liveness_probe());
        eventually(
            patience,
            "the liveness probe to succeed in time",
            || async { answer(pod, false).await.succeeded().then_some(()) },
        )
        .await;
        eventually(WAIT, "the operator to be refused its Lease", || async {
            pod.logs()
                .contains("could not read or write the leader lease")
                .then_some(())
        })
        .await;
        match answer(pod, true).await {
            ProbeAnswer::Http { status: 503, body } => assert!(!body.is_empty(), "503 says why"),
            other => panic!("ready before it can work: {other:?}"),
        }
        assert!(answer(pod, false).await.succeeded());
        assert!(pod.running());
    }

    // With the chart's RBAC: one leads (its caches synced), the other stands by; both ready.
    values.helm("upgrade", true);
    let leader_name = eventually(WAIT, "a leader", || async {
        lease_holder(&client, &values.namespace).await
    })
    .await;
    let (leader, standby) = match replicas.iter().position(|p| p.name == leader_name) {
        Some(0) => (&replicas[0], &replicas[1]),
        Some(1) => (&replicas[1], &replicas[0]),
        _ => panic!("the Lease holder {leader_name} is neither replica"),
    };
    wait_readiness(leader, 200, "leading").await;
    wait_readiness(standby, 200, "standby").await;
    for pod in &replicas {
        assert!(answer(pod, false).await.succeeded(), "alive after the sync");
    }
    assert_eq!(
        metric(leader, "actor_token_operator_leader").await,
        Some(1.0)
    );
    assert_eq!(
        metric(standby, "actor_token_operator_leader").await,
        Some(0.0)
    );

    // A request issued through the leader.
    let requests = Api::<ActorTokenRequest>::namespaced(client.clone(), &request_ns.name);
    create_request(
        &requests,
        "before",
        "user_2beforeHandover",
        &values.instance,
    )
    .await;
    let before = wait_issued(&requests, "before").await;

    // The kubelet stops the leader's Pod: SIGTERM, SIGKILL after the grace period.
    let grace = leader.spec.termination_grace_period_seconds.unwrap();
    assert_eq!(
        leader.inspect()["Config"]["StopTimeout"].as_i64(),
        Some(grace),
        "podman stop waits the chart's terminationGracePeriodSeconds before SIGKILL"
    );
    let (exit_code, took) = leader.stop();
    assert_eq!(
        exit_code, 0,
        "the leader exited by itself on SIGTERM (137 would be the SIGKILL after {grace} s)"
    );
    assert!(took < Duration::from_secs(grace as u64));
    assert!(
        leader.logs().contains("released the leader lease"),
        "the leader released the Lease on its way out:\n{}",
        leader.logs()
    );
    let standby_name = standby.name.clone();
    eventually(WAIT, "the standby to take the Lease", || async {
        (lease_holder(&client, &values.namespace).await.as_ref() == Some(&standby_name))
            .then_some(())
    })
    .await;
    wait_readiness(standby, 200, "leading").await;

    // A request issued through the new leader; each request holds exactly one live token.
    create_request(&requests, "after", "user_2afterHandover", &values.instance).await;
    let after = wait_issued(&requests, "after").await;
    let mut live: Vec<String> = sim.live_tokens().into_iter().map(|t| t.id).collect();
    live.sort();
    let mut expected = vec![before.clone(), after.clone()];
    expected.sort();
    assert_eq!(live, expected, "one live token per request, none else");

    // Deleting a request revokes its token through the new leader.
    requests
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the request to be gone", || async {
        requests
            .get_opt("before")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        sim.token(&before).map(|t| t.status),
        Some(clerk_sim::TokenStatus::Revoked)
    );
    let live: Vec<String> = sim.live_tokens().into_iter().map(|t| t.id).collect();
    assert_eq!(live, [after]);

    // No token or link in either container's output.
    for pod in &replicas {
        let logs = pod.logs();
        for token in sim.tokens() {
            assert!(!logs.contains(&token.token) && !logs.contains(&token.url));
        }
        assert!(!logs.contains(KEY));
    }
    // Stop the new leader before the namespace goes (its finalizers are let go then).
    standby.stop();
}
