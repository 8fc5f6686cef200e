//! The operator under test as the chart runs it: the release binary (a `--release` test
//! build's `CARGO_BIN_EXE_`), serving every namespace, logging at `info`, as its own process
//! so its RSS and CPU time can be read from /proc. (tests/support's `Operator` serves listed
//! namespaces at debug level and doesn't expose the process.)

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use super::procfs;
use crate::support::{control_plane, repo_root};

pub struct OperatorProcess {
    child: Child,
    pub pid: u32,
    port: u16,
    started: Instant,
    pub log: PathBuf,
    pub args: Vec<String>,
}

impl OperatorProcess {
    pub fn start(
        cluster_instance_namespace: &str,
        concurrency: u16,
        extra_args: &[String],
        name: &str,
    ) -> Self {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--cluster-instance-namespace".into(),
            cluster_instance_namespace.into(),
            "--concurrency".into(),
            concurrency.to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{port}"),
            // As the chart runs it: the Lease's renewals are counted apart from the requests'.
            "--leader-election".into(),
            // The Clerk simulators listen on plain http on loopback.
            "--clerk-api-hosts=127.0.0.1".into(),
            "--allow-insecure-clerk-http".into(),
        ];
        args.extend_from_slice(extra_args);
        let dir = repo_root().join("target/bench-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("operator-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_actor-token-operator"))
            .args(&args)
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start the operator binary");
        OperatorProcess {
            pid: child.id(),
            child,
            port,
            started,
            log,
            args,
        }
    }

    /// Waits until /readyz answers 200; returns how long after the start that was.
    pub async fn wait_ready(&self, timeout: Duration) -> Duration {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return self.started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "operator not ready after {timeout:?}; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A metric from the operator's /metrics: the sum of all its series (e.g. reconciles of
    /// every result), or `None` when it has none yet.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let body = reqwest::get(&url).await.ok()?.text().await.ok()?;
        let values: Vec<f64> = body
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let value = match rest.strip_prefix('{') {
                    Some(labelled) => labelled.split_once("} ")?.1,
                    None => rest.strip_prefix(' ')?,
                };
                value.split_whitespace().next()?.parse().ok()
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Reconciles the operator has finished since it started.
    pub async fn reconciles(&self) -> f64 {
        self.metric("actor_token_operator_reconciles_total")
            .await
            .unwrap_or(0.0)
    }

    /// Waits until the operator has reconciled at least `n` requests and then done nothing
    /// more for `quiet`; returns how long after the start the last of them finished.
    pub async fn wait_reconciled(&self, n: usize, quiet: Duration, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        let mut last = (self.reconciles().await, self.started.elapsed());
        let mut still_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.reconciles().await;
            if now != last.0 {
                last = (now, self.started.elapsed());
                still_since = Instant::now();
            } else if now >= n as f64 && still_since.elapsed() >= quiet {
                return last.1;
            }
            assert!(
                Instant::now() < deadline,
                "operator reconciled {now} of {n} requests in {timeout:?}; see {}",
                self.log.display()
            );
        }
    }

    /// (resident now, peak resident) in bytes.
    pub fn memory(&self) -> (u64, u64) {
        procfs::memory(self.pid)
    }

    /// User + system CPU time used so far.
    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid)
    }

    /// Where its resident memory is (heap, stacks, code).
    pub fn resident_breakdown(&self) -> procfs::ResidentBreakdown {
        procfs::resident_breakdown(self.pid)
    }

    /// SIGTERM, as a rolling update would; SIGKILL if it hasn't stopped after 10 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}
