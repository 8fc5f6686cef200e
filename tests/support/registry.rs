//! A private OCI registry on 127.0.0.1, as a user's would be: `distribution`'s registry (built
//! from its Go module by hack/container-tools.sh), serving TLS with a certificate of its own CA
//! and requiring a login (htpasswd, bcrypt) for every pull and push. Stopped when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{
    containers::{run, tools},
    eventually, repo_root,
};

pub struct Registry {
    /// `127.0.0.1:<port>`: the registry part of image references and `oci://` URLs.
    pub host: String,
    pub username: String,
    pub password: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        make_certificates(path);
        let username = "ato-test".to_owned();
        let password = format!("{:032x}", rand::random::<u128>());
        let mut htpasswd = Command::new("htpasswd");
        htpasswd.args(["-B", "-b", "-n", &username, &password]);
        std::fs::write(path.join("htpasswd"), run(htpasswd, "htpasswd")).unwrap();
        // Clients find the CA as `certs.d/<host:port>/ca.crt` (podman, skopeo, containerd).
        let certs = path.join("certs.d").join(&host);
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(path.join("ca.crt"), certs.join("ca.crt")).unwrap();
        let config = serde_json::json!({
            "version": 0.1,
            "log": { "level": "info" },
            "storage": { "filesystem": { "rootdirectory": path.join("data") } },
            "http": {
                "addr": host,
                "secret": format!("{:032x}", rand::random::<u128>()),
                "tls": { "certificate": path.join("server.crt"), "key": path.join("server.key") },
            },
            "auth": { "htpasswd": { "realm": "actor-token-operator tests", "path": path.join("htpasswd") } },
        });
        // JSON is YAML.
        std::fs::write(path.join("config.yml"), config.to_string()).unwrap();
        let logs = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = std::fs::File::create(logs.join(format!("registry-{port}.log"))).unwrap();
        let child = Command::new(tools().registry_bin())
            .arg("serve")
            .arg(path.join("config.yml"))
            // Its OpenTelemetry exporter would otherwise try to reach a collector.
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the registry");
        let registry = Registry {
            host,
            username,
            password,
            child,
            dir,
        };
        eventually(
            Duration::from_secs(30),
            "the registry to answer",
            || async { (registry.status_without_login("/v2/") == Some(401)).then_some(()) },
        )
        .await;
        registry
    }

    /// The CA that signed the registry's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A `certs.d` folder holding the CA for this registry's host.
    pub fn certs_d(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The HTTP status of a GET of `path` with no credentials (None if there is no answer).
    pub fn status_without_login(&self, path: &str) -> Option<u16> {
        let out = Command::new("curl")
            .args([
                "--silent",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(self.ca_file())
            .arg(format!("https://{}{path}", self.host))
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|c| *c != 0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA, and a serving certificate it signs for IP 127.0.0.1.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        run(cmd, &format!("openssl {}", args[0]));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=registry-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}
