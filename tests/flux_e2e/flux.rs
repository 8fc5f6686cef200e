//! Flux itself: source-controller and kustomize-controller built from their Go modules
//! (hack/flux/build.sh), their CRDs, and the identities and RBAC a Flux install gives them
//! (flux-rbac.yaml), each run as a process of its own against the control plane with a
//! ServiceAccount token, as in a cluster.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::support::{ControlPlane, repo_root};

pub const NAMESPACE: &str = "flux-system";
pub const SOURCE_CONTROLLER: &str = "source-controller";
pub const KUSTOMIZE_CONTROLLER: &str = "kustomize-controller";

/// The folder hack/flux/build.sh fills: both binaries, `<name>.build-seconds`, and `crds/`.
pub fn build() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/flux/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run hack/flux/build.sh");
    assert!(
        out.status.success(),
        "building Flux's controllers failed (see the [flux-build] lines above)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// How long the cached build of a controller took, in seconds (written by hack/flux/build.sh).
pub fn build_seconds(bin: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(bin.join(format!("{name}.build-seconds")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The versions pinned in hack/flux/versions.env, by variable name.
pub fn pinned_versions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("hack/flux/versions.env")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.ends_with("_VERSION"))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Flux's CRDs (from the module zips), then the controllers' namespace, ServiceAccounts and
/// RBAC.
pub fn install(plane: &ControlPlane, bin: &Path) {
    let crds = bin.join("crds");
    let crds = crds.to_str().unwrap();
    kubectl(
        plane,
        &["apply", "--server-side", "--force-conflicts", "-f", crds],
    );
    kubectl(
        plane,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            crds,
        ],
    );
    let rbac = repo_root().join("tests/flux_e2e/flux-rbac.yaml");
    kubectl(
        plane,
        &["apply", "--server-side", "-f", rbac.to_str().unwrap()],
    );
}

/// A kubeconfig in `dir` that authenticates as the ServiceAccount `flux-system/name`, with a
/// token from the TokenRequest API, as the kubelet would mount it into the controller's Pod.
pub fn service_account_kubeconfig(plane: &ControlPlane, name: &str, dir: &Path) -> PathBuf {
    let token = kubectl(
        plane,
        &["-n", NAMESPACE, "create", "token", name, "--duration=6h"],
    );
    let admin = std::fs::read_to_string(&plane.kubeconfig).unwrap();
    let admin: Value = serde_saphyr::from_str(&admin).expect("parse the admin kubeconfig");
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "envtest", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        } }],
        "users": [{ "name": name, "user": { "token": token.trim() } }],
        "contexts": [{ "name": name, "context": { "cluster": "envtest", "user": name } }],
        "current-context": name,
    });
    let path = dir.join(format!("{name}.kubeconfig"));
    // JSON is YAML.
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

/// The user the API server sees behind `kubeconfig` (a SelfSubjectReview).
pub fn whoami(plane: &ControlPlane, kubeconfig: &Path) -> String {
    let out = Command::new(plane.bin_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .expect("run kubectl auth whoami");
    assert!(
        out.status.success(),
        "kubectl auth whoami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Flux controller process, its output in target/test-logs/; killed when dropped.
pub struct Controller {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    health_addr: String,
}

impl Controller {
    /// Starts `name` from `bin` as the identity of `kubeconfig` (they take no --kubeconfig
    /// flag: KUBECONFIG it is), with its metrics and health endpoints on 127.0.0.1 and
    /// `extra_args`.
    pub fn start(bin: &Path, name: &'static str, kubeconfig: &Path, extra_args: &[String]) -> Self {
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let health_addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin.join(name))
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr={health_addr}"))
            .arg("--enable-leader-election=false")
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            // What the Deployment sets from the Pod's namespace.
            .env("RUNTIME_NAMESPACE", NAMESPACE)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Controller {
            name,
            child,
            log,
            health_addr,
        }
    }

    /// Waits until its /readyz answers 200, or fails with its log if it exited.
    pub async fn wait_ready(&mut self) {
        let url = format!("http://{}/readyz", self.health_addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}):\n{}", self.name, self.output());
            }
            if let Ok(answer) = reqwest::get(&url).await
                && answer.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within 60 s; its log is {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// source-controller and kustomize-controller, running as Flux's own ServiceAccounts.
pub struct Flux {
    pub source: Controller,
    pub kustomize: Controller,
    /// The user kustomize-controller's requests reach the API server as.
    pub kustomize_identity: String,
    _state: tempfile::TempDir,
}

impl Flux {
    pub async fn start(plane: &ControlPlane, bin: &Path) -> Flux {
        let state = tempfile::tempdir().unwrap();
        let storage = state.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let source_kubeconfig = service_account_kubeconfig(plane, SOURCE_CONTROLLER, state.path());
        let kustomize_kubeconfig =
            service_account_kubeconfig(plane, KUSTOMIZE_CONTROLLER, state.path());
        let kustomize_identity = whoami(plane, &kustomize_kubeconfig);
        // Artifacts are served where kustomize-controller fetches them: --storage-adv-addr.
        let storage_addr = format!("127.0.0.1:{}", free_port());
        let mut source = Controller::start(
            bin,
            SOURCE_CONTROLLER,
            &source_kubeconfig,
            &[
                format!("--storage-path={}", storage.display()),
                format!("--storage-addr={storage_addr}"),
                format!("--storage-adv-addr={storage_addr}"),
            ],
        );
        let mut kustomize =
            Controller::start(bin, KUSTOMIZE_CONTROLLER, &kustomize_kubeconfig, &[]);
        source.wait_ready().await;
        kustomize.wait_ready().await;
        Flux {
            source,
            kustomize,
            kustomize_identity,
            _state: state,
        }
    }
}
