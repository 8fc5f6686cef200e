//! The kubelet stand-in's reading of a Pod spec: which podman flags, environment and command
//! line give its container what the spec says. Pure: no process is started here, and a field
//! it can't honour is an error.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSecurityContext, PodSpec, SecurityContext};

use super::{Node, POD_IP, PodIdentity};

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
