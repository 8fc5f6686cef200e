//! The image and the chart as a user with a private registry gets them: pushed to an OCI
//! registry that requires a login (`distribution`'s, on 127.0.0.1 with TLS), the chart
//! installed with `helm install oci://…` with the image from that registry, and the image
//! pulled as a kubelet pulls it, with the credentials of the Secret the Pod names in
//! `imagePullSecrets`, and refused without them; then run, and serving.

mod support;

use std::{path::Path, process::Command, time::Duration};

use actor_token_operator::api::{ActorTokenRequest, Phase};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{Api, api::PostParams};
use serde_json::json;
use support::{
    TestNamespace,
    containers::{inspect_image, podman, run, skopeo, test_image, text},
    control_plane, eventually, install_crds,
    kubelet::{self, Node, PodIdentity, ProbeAnswer, RunningPod, pod_name},
    registry::Registry,
    repo_root,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const KEY: &str = "sk_test_registryTestKey0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// helm with the registry's CA, the logins of `config/registry.json` and a download cache of
/// `config`'s own (empty at first, so that a chart installed comes from the registry).
fn helm(registry: &Registry, config: &Path, verb: &[&str]) -> Command {
    let mut cmd = control_plane().helm();
    cmd.args(verb)
        .arg("--registry-config")
        .arg(config.join("registry.json"))
        .arg("--content-cache")
        .arg(config.join("content"))
        .arg("--ca-file")
        .arg(registry.ca_file());
    cmd
}

/// The registry refused for want of a login: it answered 401 with a Basic challenge, which
/// each client words its own way.
fn refused(out: &std::process::Output) -> bool {
    !out.status.success() && says_unauthorized(&text(out))
}

fn says_unauthorized(said: &str) -> bool {
    let said = said.to_lowercase();
    [
        "unauthorized",
        "authentication required",
        "basic credential not found",
    ]
    .iter()
    .any(|words| said.contains(words))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_installs_chart_and_image_from_a_private_registry() {
    install_crds();
    let built = test_image();
    let registry = Registry::start().await;
    let repository = format!("{}/actor-token-operator", registry.host);
    let image = format!("{repository}:{VERSION}");
    // The pulled copy goes when the test ends: each run's registry has a port of its own, so
    // its images would pile up in the container storage.
    let _pulled = RemoveImage(image.clone());
    let login = format!("{}:{}", registry.username, registry.password);
    let certs = registry.certs_d().join(&registry.host);

    // The image: a push without the login is refused, with it accepted.
    let push = |creds: Option<&str>| {
        let mut cmd = skopeo();
        cmd.args(["copy", "--quiet", "--dest-cert-dir"]).arg(&certs);
        if let Some(creds) = creds {
            cmd.args(["--dest-creds", creds]);
        }
        cmd.arg(format!("containers-storage:{built}"))
            .arg(format!("docker://{image}"));
        cmd.output().expect("run skopeo copy")
    };
    let anonymous = push(None);
    assert!(
        refused(&anonymous),
        "an anonymous push: {}",
        text(&anonymous)
    );
    let pushed = push(Some(&login));
    assert!(pushed.status.success(), "skopeo copy: {}", text(&pushed));

    // The chart: packaged, pushed as an OCI artifact after `helm registry login`.
    let config = tempfile::tempdir().unwrap();
    let mut package = control_plane().helm();
    package
        .arg("package")
        .arg(repo_root().join("charts/actor-token-operator"))
        .arg("--destination")
        .arg(config.path());
    run(package, "helm package");
    let archive = config
        .path()
        .join(format!("actor-token-operator-{VERSION}.tgz"));
    let charts = format!("oci://{}/charts", registry.host);
    let chart = format!("{charts}/actor-token-operator");
    let anonymous = helm(&registry, config.path(), &["push"])
        .arg(&archive)
        .arg(&charts)
        .output()
        .unwrap();
    assert!(
        refused(&anonymous),
        "an anonymous chart push: {}",
        text(&anonymous)
    );
    let mut login_cmd = helm(
        &registry,
        config.path(),
        &[
            "registry",
            "login",
            &registry.host,
            "--username",
            &registry.username,
        ],
    );
    login_cmd.args(["--password", &registry.password]);
    run(login_cmd, "helm registry login");
    let mut push_chart = helm(&registry, config.path(), &["push"]);
    push_chart.arg(&archive).arg(&charts);
    run(push_chart, "helm push");

    // A user's helm, on another machine: without a login the registry refuses the chart.
    let user = tempfile::tempdir().unwrap();
    let anonymous = helm(&registry, user.path(), &["show", "chart"])
        .arg(&chart)
        .args(["--version", VERSION])
        .output()
        .unwrap();
    assert!(
        refused(&anonymous),
        "an anonymous chart pull: {}",
        text(&anonymous)
    );
    let mut login_cmd = helm(
        &registry,
        user.path(),
        &[
            "registry",
            "login",
            &registry.host,
            "--username",
            &registry.username,
        ],
    );
    login_cmd.args(["--password", &registry.password]);
    run(login_cmd, "helm registry login");

    // A user's install: the chart from the registry, pointed at the image in it, with a pull
    // Secret for it.
    let client = control_plane().client().await;
    let release_ns = TestNamespace::create(&client, "registry-rel").await;
    let request_ns = TestNamespace::create(&client, "registry-req").await;
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
    let mut pull_secret = control_plane().kubectl();
    pull_secret.args([
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        &release_ns.name,
        &format!("--docker-server={}", registry.host),
        &format!("--docker-username={}", registry.username),
        &format!("--docker-password={}", registry.password),
    ]);
    run(pull_secret, "kubectl create secret docker-registry");
    let release = format!("reg-{suffix}");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let instance = format!("registry-{suffix}");
    let mut install = helm(&registry, user.path(), &["install", &release]);
    install.arg(&chart).args([
        "--version",
        VERSION,
        "--namespace",
        &release_ns.name,
        "--set",
        &format!("image.repository={repository}"),
        "--set-json",
        r#"imagePullSecrets=[{"name":"regcred"}]"#,
        "--set-json",
        &format!(r#"watchNamespaces=["{}"]"#, request_ns.name),
        "--set",
        "replicaCount=1",
        // One container on the host network: a port of its own (see tests/image.rs).
        "--set",
        &format!("metrics.port={metrics_port}"),
        "--set",
        "clusterClerkInstance.create=true",
        "--set",
        &format!("clusterClerkInstance.name={instance}"),
        "--set",
        &format!("clusterClerkInstance.apiUrl={}", sim.api_url()),
        "--set",
        "clusterClerkInstance.secretKeyRef.name=clerk-key",
    ]);
    run(install, "helm install oci://");
    let _uninstall = Uninstall {
        release: release.clone(),
        namespace: release_ns.name.clone(),
    };
    let mut metadata = control_plane().helm();
    metadata.args([
        "get",
        "metadata",
        &release,
        "-n",
        &release_ns.name,
        "-o",
        "json",
    ]);
    let metadata: serde_json::Value =
        serde_json::from_str(&run(metadata, "helm get metadata")).unwrap();
    assert_eq!(
        metadata["version"], VERSION,
        "the chart came from the registry"
    );

    // The Pod as the API server stores it: the image from the registry, its tag the chart's
    // appVersion, and the pull Secret.
    let deployment: Deployment = serde_json::from_str(&run(
        {
            let mut cmd = control_plane().kubectl();
            cmd.args([
                "get",
                "deployment",
                &format!("{release}-actor-token-operator"),
                "-n",
                &release_ns.name,
                "-o",
                "json",
            ]);
            cmd
        },
        "kubectl get deployment",
    ))
    .unwrap();
    let spec = deployment.spec.template.spec.expect("a Pod spec");
    let container = kubelet::the_container(&spec).unwrap();
    assert_eq!(container.image.as_deref(), Some(image.as_str()));
    let names: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["regcred"]);

    // The kubelet's pull: without the Secret's credentials the registry refuses it; with them
    // it gets the very image that was built.
    let mut node = Node::of(control_plane());
    node.registry_certs = Some(registry.certs_d());
    let _ = podman().args(["rmi", "--force", &image]).output();
    let mut without_secret = spec.clone();
    without_secret.image_pull_secrets = None;
    let refusal = kubelet::pull_image(&without_secret, &release_ns.name, &node)
        .expect_err("pulled without credentials");
    assert!(says_unauthorized(&refusal), "{refusal}");
    kubelet::pull_image(&spec, &release_ns.name, &node).expect("the pull with the Secret");
    assert_eq!(inspect_image(&image)["Id"], inspect_image(built)["Id"]);

    // And it runs as the chart's Pod: it leads, and issues a token.
    let pod = RunningPod::start(
        PodIdentity {
            name: pod_name(&format!("{release}-actor-token-operator")),
            namespace: release_ns.name.clone(),
        },
        &spec,
        &node,
    );
    eventually(WAIT, "the Pod to be ready and leading", || async {
        match pod.probe(pod.readiness_probe()).await {
            ProbeAnswer::Http { status: 200, body } if body.contains("leading") => Some(()),
            _ => None,
        }
    })
    .await;
    let requests = Api::<ActorTokenRequest>::namespaced(client.clone(), &request_ns.name);
    let request: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1",
        "kind": "ActorTokenRequest",
        "metadata": { "name": "from-the-registry" },
        "spec": {
            "userId": "user_2registry",
            "actor": { "sub": "user_2registrySupport" },
            "instanceRef": { "kind": "ClusterClerkInstance", "name": instance },
        }
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    eventually(WAIT, "the request to be Issued", || async {
        (requests.get("from-the-registry").await.ok()?.phase() == Some(Phase::Issued)).then_some(())
    })
    .await;
    assert_eq!(sim.live_tokens().len(), 1);
    pod.stop();
}

/// Uninstalls a release when dropped.
struct Uninstall {
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = control_plane()
            .helm()
            .args(["uninstall", &self.release, "--namespace", &self.namespace])
            .output();
    }
}

/// Removes an image from the container storage when dropped.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "--force", &self.0]).output();
    }
}
