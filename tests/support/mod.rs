//! Test support shared by every integration test file: one local control plane per test run
//! (started by `make test`, or on demand when a single test file is run by hand) and one fresh
//! namespace per test, deleted when the test ends, whether it passed or not.
#![allow(dead_code)] // each test binary uses its own subset

pub mod admission;
pub mod containers;
pub mod env;
pub mod kubelet;
pub mod registry;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};

/// Runs `cmd` with `input` on its stdin: its stdout, or its stderr when it fails.
pub fn run_with_input(mut cmd: Command, input: &str) -> Result<String, String> {
    use std::{io::Write, process::Stdio};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {cmd:?}: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .map_err(|e| format!("write to {cmd:?}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `kubectl apply` of `object`, as the admin.
pub fn apply(object: &serde_json::Value) {
    let mut cmd = control_plane().kubectl();
    cmd.args(["apply", "-f", "-"]);
    if let Err(e) = run_with_input(cmd, &object.to_string()) {
        panic!("kubectl apply failed: {e}");
    }
}

/// A running control plane: where its kubeconfig is and which kubectl matches it.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub bin_dir: PathBuf,
    /// Its state folder (`ENVTEST_DIR`).
    pub state_dir: PathBuf,
    /// Started by this test process for itself alone (no `ENVTEST_DIR` given), so a test may
    /// disturb it (restart its API server) without touching anyone else's tests.
    pub private: bool,
}

impl ControlPlane {
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("helm"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// SIGKILLs kube-apiserver and starts it again on the same port and certificates, and
    /// returns once it is ready. Only on a [`ControlPlane::private`] plane: others' tests may
    /// be running on a shared one.
    pub fn restart_apiserver(&self) -> Result<(), String> {
        if !self.private {
            return Err(format!(
                "refusing to restart the shared control plane in {}; unset ENVTEST_DIR to give \
                 this test a private one",
                self.state_dir.display()
            ));
        }
        let out = Command::new("bash")
            .arg(repo_root().join("hack/envtest.sh"))
            .arg("restart-apiserver")
            .env("ENVTEST_DIR", &self.state_dir)
            .output()
            .map_err(|e| format!("could not run hack/envtest.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A client that acts as `user` (the admin impersonating them), with that user's RBAC
    /// and nothing more.
    pub async fn client_as(&self, user: &str) -> Client {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).expect("read the envtest kubeconfig");
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the envtest kubeconfig");
        config.auth_info.impersonate = Some(user.to_owned());
        Client::try_from(config).expect("build a kube client")
    }

    /// A client with the admin identity.
    pub async fn client(&self) -> Client {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).expect("read the envtest kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the envtest kubeconfig");
        Client::try_from(config).expect("build a kube client")
    }
}

/// Values every chart release on the test control plane sets: the plane already runs the
/// chart's admission policies (the test bed installs them from the chart; they are
/// cluster-wide objects that one release owns), and Clerk is the simulator, plain http on
/// loopback.
pub const TEST_BED_CHART_VALUES: &[&str] = &[
    "--set",
    "admissionPolicies.enabled=false",
    "--set-json",
    r#"clerk.apiHosts=["127.0.0.1"]"#,
    "--set",
    "clerk.allowInsecureHttp=true",
];

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane for this test run. `make test` starts one and passes its state folder in
/// `ENVTEST_DIR`; a test binary run on its own starts a private one that stops when the binary
/// exits (the control plane's supervisor watches this process).
pub fn control_plane() -> &'static ControlPlane {
    plane(false)
}

/// A control plane of this test binary's own, even where `ENVTEST_DIR` names a shared one:
/// for a test whose operator must serve every namespace, which on a shared plane would act on
/// other tests' requests. Call it before anything else touches the control plane.
pub fn private_control_plane() -> &'static ControlPlane {
    let plane = plane(true);
    assert!(plane.private, "the shared control plane was set up first");
    plane
}

fn plane(private: bool) -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let script = repo_root().join("hack/envtest.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg("start");
        let shared = std::env::var_os("ENVTEST_DIR").filter(|_| !private);
        let private = shared.is_none();
        let state = match shared {
            Some(dir) => PathBuf::from(dir),
            None => {
                let dir = repo_root()
                    .join("target/envtest")
                    .join(std::process::id().to_string());
                cmd.env("ENVTEST_DIR", &dir).env("ENVTEST_EPHEMERAL", "1");
                cmd.arg("--owner-pid").arg(std::process::id().to_string());
                dir
            }
        };
        let output = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "the local control plane did not start (see the [envtest] lines above); \
             try `make envtest` to see the failure on its own"
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let env =
            std::fs::read_to_string(state.join("env")).expect("read the control plane's env file");
        let bin_dir = env
            .lines()
            .find_map(|l| l.strip_prefix("BIN="))
            .map(PathBuf::from)
            .expect("BIN in the control plane's env file");
        ControlPlane {
            kubeconfig,
            bin_dir,
            state_dir: state,
            private,
        }
    })
}

/// A namespace of the test's own, deleted (without waiting) when dropped, even on panic.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let suffix: u32 = rand::random();
        let name = format!("{prefix}-{suffix:08x}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "actortokens.dev/test": "true" } }
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let plane = control_plane();
        let kubectl = |args: &[&str]| plane.kubectl().args(args).output();
        // Requests left with the operator's finalizer would hold the namespace in Terminating
        // for ever once the test's operator is gone, and keep the shared control plane's
        // namespace controller busy. Mark them deleted (so no operator re-adds a finalizer),
        // then release them. Fails harmlessly where the CRDs aren't installed.
        let ns = self.name.as_str();
        let _ = kubectl(&[
            "delete",
            "actortokenrequests",
            "--all",
            "-n",
            ns,
            "--wait=false",
        ]);
        if let Ok(out) = kubectl(&["get", "actortokenrequests", "-n", ns, "-o", "name"]) {
            for request in String::from_utf8_lossy(&out.stdout).lines() {
                let release = r#"{"metadata":{"finalizers":null}}"#;
                let _ = kubectl(&["patch", request, "-n", ns, "--type=merge", "-p", release]);
            }
        }
        let _ = kubectl(&[
            "delete",
            "namespace",
            ns,
            "--wait=false",
            "--ignore-not-found",
        ]);
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies the generated CRDs (once per test binary) and waits until they are served.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crds = repo_root().join("crds/actortokens.dev.yaml");
        let out = control_plane()
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&crds)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl apply of the CRDs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = control_plane()
            .kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
            .arg(&crds)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // Every test plane runs with the admission policies the chart ships on by default.
    admission::install_admission_policies();
}

/// The operator binary, run as a separate process against the control plane, with its
/// output captured so tests can read it (and check that no credential is in it).
pub struct Operator {
    child: std::process::Child,
    log: PathBuf,
}

pub struct OperatorOptions<'a> {
    pub namespaces: &'a [&'a str],
    pub cluster_instance_namespace: &'a str,
    /// Defaults to the admin kubeconfig.
    pub kubeconfig: Option<&'a Path>,
    pub extra_args: &'a [&'a str],
}

impl Operator {
    pub fn start(options: OperatorOptions<'_>) -> Operator {
        let plane = control_plane();
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!(
            "operator-{}-{:08x}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_actor-token-operator"));
        cmd.arg("run")
            .arg("--namespaces")
            .arg(options.namespaces.join(","))
            .arg("--cluster-instance-namespace")
            .arg(options.cluster_instance_namespace)
            .arg("--metrics-addr")
            .arg("127.0.0.1:0")
            // The Clerk simulator listens on plain http on loopback.
            .arg("--clerk-api-hosts=127.0.0.1")
            .arg("--allow-insecure-clerk-http")
            .args(options.extra_args)
            .env(
                "KUBECONFIG",
                options.kubeconfig.unwrap_or(&plane.kubeconfig),
            )
            .env("RUST_LOG", "info,actor_token_operator=debug,kube=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = cmd.spawn().expect("start the operator binary");
        Operator { child, log }
    }

    /// Everything the operator printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM), as the kubelet does, without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// The exit status once the process has exited, waiting up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the operator process") {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where it serves /metrics, /healthz and /readyz (read from its log); `None` until it
    /// serves.
    pub fn metrics_addr(&self) -> Option<String> {
        let output = self.output();
        let line = output.lines().find(|l| l.contains("serving /metrics"))?;
        let at = line.find("127.0.0.1:")?;
        Some(
            line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect(),
        )
    }

    /// GETs `path` from its metrics and health server: the status code and the body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let addr = self.metrics_addr()?;
        let answer = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
        let status = answer.status().as_u16();
        Some((status, answer.text().await.ok()?))
    }

    /// Waits until it answers /readyz with 200: its caches hold what the API server listed,
    /// so it acts on every change from now on.
    pub async fn wait_ready(&self) {
        eventually(
            Duration::from_secs(60),
            "the operator to be ready",
            || async {
                let (status, _) = self.get("/readyz").await?;
                (status == 200).then_some(())
            },
        )
        .await
    }

    /// Whether it finished a reconcile of `namespace/name` that started from resourceVersion
    /// `version` or later, i.e. that saw every write up to `version` (from its "reconciled"
    /// debug line).
    pub fn reconciled_since(&self, namespace: &str, name: &str, version: u64) -> bool {
        let request = format!("request={namespace}/{name}");
        self.output()
            .lines()
            .filter(|l| l.contains(&request) && l.contains(" reconciled "))
            .filter_map(|l| {
                let at = l.find("resource_version=")? + "resource_version=".len();
                let digits: String = l[at..]
                    .trim_start_matches('"')
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u64>().ok()
            })
            .any(|seen| seen >= version)
    }

    /// The value of one series from /metrics (see [`series_value`]); `None` until it
    /// serves, or if the series is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        series_value(&body, series)
    }
}

/// The value of `series` (name and labels exactly as printed) in a Prometheus text body.
/// A bare name of a family with labels gives the sum over its series, as PromQL's
/// `sum(name)` would.
pub fn series_value(body: &str, series: &str) -> Option<f64> {
    let value = |rest: &str| rest.strip_prefix(' ')?.trim().parse::<f64>().ok();
    if let Some(exact) = body.lines().find_map(|l| value(l.strip_prefix(series)?)) {
        return Some(exact);
    }
    if series.contains('{') {
        return None;
    }
    let labelled: Vec<f64> = body
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix('{'))
        .filter_map(|rest| value(&rest[rest.find('}')? + 1..]))
        .collect();
    (!labelled.is_empty()).then(|| labelled.iter().sum())
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
