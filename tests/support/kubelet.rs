//! A stand-in for the kubelet, which this test bed doesn't have: it runs a Pod template's
//! container (a Deployment's, as the chart renders it) with podman on the host network, against
//! the test control plane, the way a kubelet would run it:
//! - the image pulled per `imagePullPolicy`, with the credentials of the Secrets the Pod names
//!   in `imagePullSecrets`;
//! - command, args, env (with the downward API's `fieldRef`s), working dir;
//! - the ServiceAccount's token (TokenRequest API), the cluster CA and the namespace mounted at
//!   `/var/run/secrets/kubernetes.io/serviceaccount/`, and `KUBERNETES_SERVICE_HOST`/`_PORT`
//!   (here 127.0.0.1 and the API server's port; its serving certificate names IP 127.0.0.1);
//! - the Pod's and container's `securityContext`, merged as Kubernetes merges them, turned into
//!   podman's flags; `resources.limits` into cgroup limits; `terminationGracePeriodSeconds`
//!   into the stop timeout (SIGTERM, then SIGKILL once it has passed);
//! - and it probes the container's liveness and readiness probes as the kubelet's prober does.
//!
//! Anything in the spec it can't honour (an unknown securityContext field, a volume, a lifecycle
//! hook, an env source) is an error, so that a chart change can't go silently unexercised.
//! Unlike Pods, containers on one host network share its ports: two replicas need two ports.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, PodSpec, Probe, Secret},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::Value;

pub mod translate;
use translate::podman_run_args;
pub use translate::the_container;

use super::{
    ControlPlane,
    containers::{self, podman, readable_dir, run, text},
};

/// Where the ServiceAccount volume goes, as the kubelet mounts it.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The Pod's IP: on the host network, the host's loopback address.
const POD_IP: &str = "127.0.0.1";

/// What the node knows: how Pods reach the API server, and which registry CAs it trusts.
pub struct Node {
    pub api_host: String,
    pub api_port: u16,
    pub cluster_ca: Vec<u8>,
    /// Folders of CA certificates per registry (`<dir>/<host:port>/ca.crt`), as containerd's
    /// and podman's `certs.d` hold them.
    pub registry_certs: Option<PathBuf>,
}

impl Node {
    /// The node of the test control plane: the API server's address from its admin
    /// kubeconfig, its CA from its state folder.
    pub fn of(plane: &ControlPlane) -> Node {
        let kubeconfig = std::fs::read_to_string(&plane.kubeconfig).unwrap();
        let kubeconfig: Value = serde_saphyr::from_str(&kubeconfig).unwrap();
        let server = kubeconfig["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap();
        let authority = server.strip_prefix("https://").unwrap();
        let (host, port) = authority.rsplit_once(':').unwrap();
        let cluster_ca = std::fs::read(plane.state_dir.join("pki/ca.crt"))
            .expect("the control plane's CA certificate");
        Node {
            api_host: host.to_owned(),
            api_port: port.parse().unwrap(),
            cluster_ca,
            registry_certs: None,
        }
    }
}

/// The Deployment in a `helm template` rendering.
pub fn rendered_deployment(yaml: &str) -> Deployment {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("helm template renders YAML");
    let mut deployments = docs.into_iter().filter(|d| d["kind"] == "Deployment");
    let deployment = deployments.next().expect("the chart renders a Deployment");
    assert!(deployments.next().is_none(), "one Deployment");
    serde_json::from_value(deployment).expect("a valid Deployment")
}

/// A Pod as the kubelet knows it when it starts its containers.
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
}

/// The kubelet's image pull: per `imagePullPolicy`, with the `.dockerconfigjson` of each Secret
/// the Pod names in `imagePullSecrets` (read from the API server, as the kubelet reads them).
/// Err holds podman's answer when the registry refuses.
pub fn pull_image(spec: &PodSpec, namespace: &str, node: &Node) -> Result<(), String> {
    let container = the_container(spec)?;
    let image = container.image.as_deref().ok_or("no image")?;
    let policy = container.image_pull_policy.as_deref().unwrap_or_else(|| {
        // The API server's default: Always for `:latest` or no tag, else IfNotPresent.
        if image.ends_with(":latest") || !image.rsplit('/').next().unwrap().contains(':') {
            "Always"
        } else {
            "IfNotPresent"
        }
    });
    let present = podman()
        .args(["image", "exists", image])
        .status()
        .expect("run podman image exists")
        .success();
    match policy {
        "IfNotPresent" if present => return Ok(()),
        "Never" if present => return Ok(()),
        "Never" => {
            return Err(format!(
                "{image} is not present and imagePullPolicy is Never"
            ));
        }
        _ => {}
    }
    // containers-auth.json has the format of .dockerconfigjson: merge the Secrets' `auths`.
    let mut auths = serde_json::Map::new();
    for secret in spec.image_pull_secrets.iter().flatten() {
        let out = super::control_plane()
            .kubectl()
            .args(["get", "secret", &secret.name, "-n", namespace, "-o", "json"])
            .output()
            .expect("run kubectl get secret");
        // The kubelet goes on without a pull secret it can't read.
        if !out.status.success() {
            continue;
        }
        let secret: Secret = serde_json::from_slice(&out.stdout).unwrap();
        if secret.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
            continue;
        }
        let Some(config) = secret
            .data
            .and_then(|d| d.get(".dockerconfigjson").cloned())
        else {
            continue;
        };
        if let Ok(Value::Object(config)) = serde_json::from_slice::<Value>(&config.0)
            && let Some(Value::Object(entries)) = config.get("auths")
        {
            auths.extend(entries.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth.json");
    std::fs::write(
        &authfile,
        serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap(),
    )
    .unwrap();
    let mut pull = podman();
    pull.args(["pull", "--quiet", "--authfile"]).arg(&authfile);
    if let Some(certs) = &node.registry_certs {
        pull.arg("--cert-dir").arg(certs.join(registry_host(image)));
    }
    let out = pull.arg(image).output().expect("run podman pull");
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

/// The registry part of an image reference (`host:port` of `host:port/repo:tag`).
pub fn registry_host(image: &str) -> &str {
    image.split('/').next().unwrap()
}

/// How a probe went: the HTTP status and body, or why there was none.
#[derive(Debug)]
pub enum ProbeAnswer {
    Http { status: u16, body: String },
    NoAnswer(String),
}

impl ProbeAnswer {
    /// The prober's verdict: an HTTP status from 200 to 399 is a success.
    pub fn succeeded(&self) -> bool {
        matches!(self, ProbeAnswer::Http { status, .. } if (200..400).contains(status))
    }
}

/// A container run from a Pod spec; removed when dropped.
pub struct RunningPod {
    pub name: String,
    pub namespace: String,
    pub container_name: String,
    pub spec: PodSpec,
    pub started: Instant,
    _service_account: tempfile::TempDir,
}

impl RunningPod {
    /// Starts the Pod's container: a ServiceAccount token from the TokenRequest API mounted
    /// where the kubelet mounts it (unless `automountServiceAccountToken: false`), and the
    /// spec's settings as [`podman_run_args`] translates them. The image must be present (see
    /// [`pull_image`]).
    pub fn start(pod: PodIdentity, spec: &PodSpec, node: &Node) -> RunningPod {
        let container = the_container(spec).unwrap_or_else(|e| panic!("{e}"));
        let image = container.image.as_deref().unwrap();
        let image_user = containers::inspect_image(image)["Config"]["User"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let args = podman_run_args(&pod, spec, node, &image_user)
            .unwrap_or_else(|e| panic!("the Pod spec can't be run as a kubelet would: {e}"));
        let service_account = spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let token = run(
            {
                let mut cmd = super::control_plane().kubectl();
                cmd.args([
                    "create",
                    "token",
                    &service_account,
                    "-n",
                    &pod.namespace,
                    "--duration=1h",
                ]);
                cmd
            },
            "kubectl create token",
        );
        let volume = readable_dir(&[
            ("token", token.trim().as_bytes()),
            ("ca.crt", &node.cluster_ca),
            ("namespace", pod.namespace.as_bytes()),
        ]);
        let container_name = format!("{}-{}", pod.name, container.name);
        let mut cmd = podman();
        // The label lets hack/test.sh remove containers a killed test left behind.
        cmd.args(["run", "--detach", "--name", &container_name])
            .arg("--label=actortokens.dev/test=true");
        if spec.automount_service_account_token != Some(false) {
            cmd.arg(format!(
                "--volume={}:{SERVICE_ACCOUNT_DIR}:ro",
                volume.path().display()
            ));
        }
        cmd.args(&args);
        run(cmd, &format!("podman run of {container_name}"));
        RunningPod {
            name: pod.name,
            namespace: pod.namespace,
            container_name,
            spec: spec.clone(),
            started: Instant::now(),
            _service_account: volume,
        }
    }

    fn container(&self) -> &Container {
        the_container(&self.spec).unwrap()
    }

    /// `podman inspect` of the container.
    pub fn inspect(&self) -> Value {
        let mut cmd = podman();
        cmd.args(["container", "inspect", &self.container_name]);
        let list: Value = serde_json::from_str(&run(cmd, "podman container inspect")).unwrap();
        list[0].clone()
    }

    /// The container's main process as the host sees it (0 once it has exited).
    pub fn pid(&self) -> u64 {
        self.inspect()["State"]["Pid"].as_u64().unwrap_or(0)
    }

    /// `/proc/<pid>/status` of the container's process: `Uid`, `CapEff`, `NoNewPrivs`, ….
    pub fn process_status(&self) -> BTreeMap<String, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the container's process runs");
        status
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// The mount options of the container's root filesystem, as its process sees them.
    pub fn root_mount_options(&self) -> Vec<String> {
        let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap();
        let root = mountinfo
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            // The last mount on "/" is the one the process sees.
            .rfind(|fields| fields.get(4) == Some(&"/"))
            .expect("a root mount");
        root[5].split(',').map(str::to_owned).collect()
    }

    /// A cgroup v1 setting of the container's process (`memory`, `memory.limit_in_bytes`).
    pub fn cgroup_value(&self, controller: &str, file: &str) -> Option<String> {
        let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid())).ok()?;
        let path = cgroups.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })?;
        let file = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(path.trim_start_matches('/'))
            .join(file);
        std::fs::read_to_string(file)
            .ok()
            .map(|v| v.trim().to_owned())
    }

    /// The container's port of that name or number, as a probe names it.
    pub fn port(&self, port: &IntOrString) -> u16 {
        match port {
            IntOrString::Int(n) => *n as u16,
            IntOrString::String(name) => self
                .container()
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port as u16)
                .unwrap_or_else(|| panic!("no container port named {name}")),
        }
    }

    pub fn liveness_probe(&self) -> &Probe {
        self.container()
            .liveness_probe
            .as_ref()
            .expect("a liveness probe")
    }

    pub fn readiness_probe(&self) -> &Probe {
        self.container()
            .readiness_probe
            .as_ref()
            .expect("a readiness probe")
    }

    /// One try of `probe`, as the kubelet's prober makes it: an HTTP GET to the Pod's IP and
    /// the probe's port and path, with its headers, within its timeout (default 1 s).
    pub async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        let action = probe
            .http_get
            .as_ref()
            .expect("only httpGet probes are supported here");
        assert!(
            probe.exec.is_none() && probe.grpc.is_none() && probe.tcp_socket.is_none(),
            "one probe action"
        );
        let scheme = action.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = action.host.as_deref().unwrap_or(POD_IP);
        let url = format!(
            "{scheme}://{host}:{}{}",
            self.port(&action.port),
            action.path.as_deref().unwrap_or("/")
        );
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1) as u64);
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        let mut request = client.get(&url).header("User-Agent", "kube-probe/1.37");
        for header in action.http_headers.iter().flatten() {
            request = request.header(&header.name, &header.value);
        }
        match request.send().await {
            Ok(answer) => ProbeAnswer::Http {
                status: answer.status().as_u16(),
                body: answer.text().await.unwrap_or_default(),
            },
            Err(e) => ProbeAnswer::NoAnswer(e.to_string()),
        }
    }

    /// How long the kubelet lets a probe fail before it acts: the initial delay and
    /// `failureThreshold` periods (defaults 0, 3 and 10 s).
    pub fn patience(probe: &Probe) -> Duration {
        let delay = probe.initial_delay_seconds.unwrap_or(0) as u64;
        let period = probe.period_seconds.unwrap_or(10) as u64;
        let failures = probe.failure_threshold.unwrap_or(3) as u64;
        Duration::from_secs(delay + failures * period)
    }

    /// Everything the container printed.
    pub fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.container_name])
            .output()
            .expect("run podman logs");
        text(&out)
    }

    /// Stops the container as the kubelet stops a Pod: SIGTERM, then SIGKILL once
    /// `terminationGracePeriodSeconds` have passed. Returns the exit code and how long it took.
    pub fn stop(&self) -> (i64, Duration) {
        let started = Instant::now();
        run(
            {
                let mut cmd = podman();
                cmd.args(["stop", &self.container_name]);
                cmd
            },
            "podman stop",
        );
        let took = started.elapsed();
        let code = self.inspect()["State"]["ExitCode"].as_i64().unwrap();
        (code, took)
    }

    /// Whether the container is still running.
    pub fn running(&self) -> bool {
        self.inspect()["State"]["Running"]
            .as_bool()
            .unwrap_or(false)
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time=0", &self.container_name])
            .output();
    }
}

/// A Pod name as a Deployment's ReplicaSet gives them: `<deployment>-<hash>-<suffix>`.
pub fn pod_name(deployment: &str) -> String {
    let hash: u32 = rand::random();
    let suffix: u32 = rand::random();
    format!("{deployment}-{hash:08x}-{:05x}", suffix & 0xfffff)
}
