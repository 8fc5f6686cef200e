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
        core::v1::{
            Container, EnvVar, PodSecurityContext, PodSpec, Probe, Secret, SecurityContext,
        },
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::Value;

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

/// The one container of a Pod spec (the chart's Pod has one; more would need a shared network
/// and IPC namespace, which this stand-in does not make).
pub fn the_container(spec: &PodSpec) -> Result<&Container, String> {
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err("init containers are not supported".into());
    }
    match spec.containers.as_slice() {
        [container] => Ok(container),
        other => Err(format!("{} containers; one is supported", other.len())),
    }
}

/// The securityContext in force for a container: the container's own fields, else the Pod's
/// (as the API documents each field).
#[derive(Debug, Default, PartialEq)]
pub struct EffectiveSecurity {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `RuntimeDefault` (or unset: the kubelet's default is Unconfined, but the API's
    /// Restricted profile requires one), `Unconfined`.
    pub seccomp: Option<String>,
    pub supplemental_groups: Vec<i64>,
}

pub fn effective_security(
    pod: Option<&PodSecurityContext>,
    container: Option<&SecurityContext>,
) -> Result<EffectiveSecurity, String> {
    let unsupported = |what: &str| Err(format!("securityContext.{what} is not supported here"));
    let default_pod = PodSecurityContext::default();
    let default_container = SecurityContext::default();
    // Every field, by name: a field added to the API fails to compile here until it is handled.
    let PodSecurityContext {
        app_armor_profile: pod_app_armor,
        fs_group,
        fs_group_change_policy: _, // only matters for volumes, which are refused below
        run_as_group: pod_group,
        run_as_non_root: pod_non_root,
        run_as_user: pod_user,
        se_linux_change_policy: _,
        se_linux_options: pod_selinux,
        seccomp_profile: pod_seccomp,
        supplemental_groups,
        supplemental_groups_policy,
        sysctls,
        windows_options: _,
    } = pod.unwrap_or(&default_pod);
    let SecurityContext {
        allow_privilege_escalation,
        app_armor_profile,
        capabilities,
        privileged,
        proc_mount,
        read_only_root_filesystem,
        run_as_group,
        run_as_non_root,
        run_as_user,
        se_linux_options,
        seccomp_profile,
        windows_options: _,
    } = container.unwrap_or(&default_container);
    if pod_app_armor.is_some() || app_armor_profile.is_some() {
        return unsupported("appArmorProfile");
    }
    if pod_selinux.is_some() || se_linux_options.is_some() {
        return unsupported("seLinuxOptions");
    }
    if sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
        return unsupported("sysctls");
    }
    if proc_mount.as_deref().is_some_and(|m| m != "Default") {
        return unsupported("procMount");
    }
    if supplemental_groups_policy
        .as_deref()
        .is_some_and(|p| p != "Merge")
    {
        return unsupported("supplementalGroupsPolicy");
    }
    let seccomp = match seccomp_profile.as_ref().or(pod_seccomp.as_ref()) {
        None => None,
        Some(profile) => match profile.type_.as_str() {
            "RuntimeDefault" | "Unconfined" => Some(profile.type_.clone()),
            other => return unsupported(&format!("seccompProfile.type {other}")),
        },
    };
    let (cap_add, cap_drop) = match capabilities {
        None => (vec![], vec![]),
        Some(c) => (
            c.add.clone().unwrap_or_default(),
            c.drop.clone().unwrap_or_default(),
        ),
    };
    let mut groups = supplemental_groups.clone().unwrap_or_default();
    // The kubelet adds fsGroup to the container's groups.
    groups.extend(fs_group);
    Ok(EffectiveSecurity {
        run_as_user: run_as_user.or(*pod_user),
        run_as_group: run_as_group.or(*pod_group),
        run_as_non_root: run_as_non_root.or(*pod_non_root).unwrap_or(false),
        read_only_root_filesystem: read_only_root_filesystem.unwrap_or(false),
        allow_privilege_escalation: *allow_privilege_escalation,
        privileged: privileged.unwrap_or(false),
        cap_add,
        cap_drop,
        seccomp,
        supplemental_groups: groups,
    })
}

/// podman's flags for a securityContext. `image_user` is the image's `USER`, which the
/// kubelet checks against `runAsNonRoot` when `runAsUser` is not set.
pub fn security_flags(
    security: &EffectiveSecurity,
    image_user: &str,
) -> Result<Vec<String>, String> {
    let mut flags = vec![];
    if security.run_as_non_root {
        // The kubelet's check: a numeric non-zero uid, or it refuses to start the container.
        let uid = match security.run_as_user {
            Some(uid) => uid,
            None => image_user
                .split(':')
                .next()
                .and_then(|u| u.parse().ok())
                .ok_or_else(|| {
                    format!("runAsNonRoot and the image's user {image_user:?} is not numeric")
                })?,
        };
        if uid == 0 {
            return Err("runAsNonRoot and the container would run as root (uid 0)".into());
        }
    }
    match (security.run_as_user, security.run_as_group) {
        (Some(u), Some(g)) => flags.push(format!("--user={u}:{g}")),
        (Some(u), None) => flags.push(format!("--user={u}")),
        (None, Some(g)) => {
            let user = image_user.split(':').next().unwrap_or("0");
            flags.push(format!("--user={user}:{g}"));
        }
        (None, None) => {}
    }
    for group in &security.supplemental_groups {
        flags.push(format!("--group-add={group}"));
    }
    if security.read_only_root_filesystem {
        // podman mounts tmpfs on /tmp, /var/tmp and /run of a read-only container; a kubelet
        // mounts nothing there.
        flags.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if security.allow_privilege_escalation == Some(false) {
        flags.push("--security-opt=no-new-privileges".into());
    }
    if security.privileged {
        flags.push("--privileged".into());
    }
    for cap in &security.cap_drop {
        flags.push(format!("--cap-drop={cap}"));
    }
    for cap in &security.cap_add {
        flags.push(format!("--cap-add={cap}"));
    }
    match security.seccomp.as_deref() {
        // podman's default profile is the runtime's default.
        Some("RuntimeDefault") => {}
        Some("Unconfined") | None => flags.push("--security-opt=seccomp=unconfined".into()),
        Some(other) => return Err(format!("seccompProfile {other}")),
    }
    Ok(flags)
}

/// A Kubernetes quantity (`500m`, `128Mi`, `1G`, `2`) as a number.
pub fn quantity(value: &str) -> Result<f64, String> {
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(suffix, factor)| Some((value.strip_suffix(suffix)?, *factor)))
        .unwrap_or((value, 1.0));
    number
        .parse::<f64>()
        .map(|n| n * factor)
        .map_err(|_| format!("not a quantity: {value:?}"))
}

/// podman's flags for `resources`: limits become cgroup limits, the CPU request the CPU
/// weight, as the kubelet sets them; a memory request only matters to the scheduler.
pub fn resource_flags(container: &Container) -> Result<Vec<String>, String> {
    let mut flags = vec![];
    let Some(resources) = &container.resources else {
        return Ok(flags);
    };
    if resources.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err("resources.claims are not supported".into());
    }
    for (name, value) in resources.limits.iter().flatten() {
        let amount = quantity(&value.0)?;
        match name.as_str() {
            "memory" => flags.push(format!("--memory={}", amount.round() as u64)),
            "cpu" => flags.push(format!("--cpus={amount}")),
            other => return Err(format!("resources.limits.{other} is not supported")),
        }
    }
    for (name, value) in resources.requests.iter().flatten() {
        let amount = quantity(&value.0)?;
        match name.as_str() {
            // The kubelet's milli-CPU to shares: 1 CPU is 1024 shares, at least 2.
            "cpu" => flags.push(format!(
                "--cpu-shares={}",
                ((amount * 1024.0).round() as u64).max(2)
            )),
            "memory" | "ephemeral-storage" => {}
            other => return Err(format!("resources.requests.{other} is not supported")),
        }
    }
    Ok(flags)
}

/// The environment the kubelet gives the container: the `kubernetes` Service's variables
/// (pointing at the API server as this node reaches it), then the container's `env`, with
/// `fieldRef`s resolved from the Pod.
pub fn environment(
    pod: &PodIdentity,
    spec: &PodSpec,
    container: &Container,
    node: &Node,
) -> Result<Vec<(String, String)>, String> {
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err("envFrom is not supported".into());
    }
    let (host, port) = (&node.api_host, node.api_port);
    let mut env: Vec<(String, String)> = vec![
        ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()),
        ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
        (
            format!("KUBERNETES_PORT_{port}_TCP"),
            format!("tcp://{host}:{port}"),
        ),
        (format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
        (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.to_string()),
        (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.clone()),
    ];
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let value = match (value, value_from) {
            (Some(value), None) => value.clone(),
            (None, None) => String::new(),
            (_, Some(source)) => {
                let Some(field) = &source.field_ref else {
                    return Err(format!("env {name}: only fieldRef sources are supported"));
                };
                match field.field_path.as_str() {
                    "metadata.name" => pod.name.clone(),
                    "metadata.namespace" => pod.namespace.clone(),
                    "spec.serviceAccountName" => {
                        spec.service_account_name.clone().unwrap_or_default()
                    }
                    "status.podIP" | "status.hostIP" => POD_IP.into(),
                    other => return Err(format!("env {name}: fieldRef {other} is not supported")),
                }
            }
        };
        if value.contains("$(") {
            return Err(format!("env {name}: $(VAR) references are not supported"));
        }
        env.push((name.clone(), value));
    }
    Ok(env)
}

/// Everything `podman run` needs after `run`, but the name and the ServiceAccount folder: the
/// translation of the Pod spec, with no side effects.
pub fn podman_run_args(
    pod: &PodIdentity,
    spec: &PodSpec,
    node: &Node,
    image_user: &str,
) -> Result<Vec<String>, String> {
    let container = the_container(spec)?;
    if container
        .volume_mounts
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        || container
            .volume_devices
            .as_ref()
            .is_some_and(|v| !v.is_empty())
    {
        return Err("volume mounts are not supported".into());
    }
    if container.lifecycle.is_some() {
        return Err("lifecycle hooks are not supported".into());
    }
    if container.startup_probe.is_some() {
        return Err("startup probes are not supported".into());
    }
    let image = container
        .image
        .as_deref()
        .ok_or("the container has no image")?;
    let mut args = vec![
        "--network=host".to_owned(),
        // The kubelet pulled (or found) the image already.
        "--pull=never".to_owned(),
    ];
    // SIGTERM, then SIGKILL once the grace period has passed (`podman stop` waits this long).
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    args.push(format!("--stop-timeout={grace}"));
    let security = effective_security(
        spec.security_context.as_ref(),
        container.security_context.as_ref(),
    )?;
    args.extend(security_flags(&security, image_user)?);
    args.extend(resource_flags(container)?);
    for (name, value) in environment(pod, spec, container, node)? {
        args.push(format!("--env={name}={value}"));
    }
    if let Some(dir) = &container.working_dir {
        args.push(format!("--workdir={dir}"));
    }
    // `command` replaces the image's ENTRYPOINT and `args` its CMD; a command without args
    // runs without the image's CMD.
    match (&container.command, &container.args) {
        (Some(command), args_) => {
            args.push(format!(
                "--entrypoint={}",
                serde_json::to_string(command).unwrap()
            ));
            args.push(image.to_owned());
            args.extend(args_.iter().flatten().cloned());
        }
        (None, Some(container_args)) => {
            args.push(image.to_owned());
            args.extend(container_args.iter().cloned());
        }
        (None, None) => args.push(image.to_owned()),
    }
    if args.iter().any(|a| a.contains("$(")) {
        return Err("$(VAR) references in command or args are not supported".into());
    }
    Ok(args)
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
