//! Podman, skopeo and the operator's image as the image tests use them: the tools installed and
//! configured by `hack/container-tools.sh` (this worktree's storage under `.build/containers/`),
//! and the image built by `hack/image.sh` from the Dockerfile's runtime stage, on the local
//! stand-in base, with the operator binary these tests were built with.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Command, Output},
    sync::OnceLock,
};

use super::repo_root;

/// Where the container tools' configuration is, from `hack/container-tools.sh`.
pub struct Tools {
    env: BTreeMap<String, String>,
}

impl Tools {
    /// The registry binary (`distribution`), built from its Go module.
    pub fn registry_bin(&self) -> PathBuf {
        PathBuf::from(&self.env["REGISTRY_BIN"])
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for name in ["CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF"] {
            cmd.env(name, &self.env[name]);
        }
        cmd
    }
}

/// Installs (once per machine) and configures (once per test binary) the container tools.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("hack/container-tools.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run hack/container-tools.sh");
        assert!(
            out.status.success(),
            "hack/container-tools.sh failed (see the [container-tools] lines above)"
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_owned(), shell_unquote(value)))
            .collect();
        Tools { env }
    })
}

/// Undoes bash's `printf %q` for the paths it prints (backslash escapes only).
fn shell_unquote(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

pub fn podman() -> Command {
    tools().command("podman")
}

pub fn skopeo() -> Command {
    tools().command("skopeo")
}

/// Runs `cmd`, and fails the test with its output unless it succeeds; returns its stdout.
pub fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stdout and stderr, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The repository the tests' image is tagged in (as a user's `image.repository`); apart from
/// `make image-local`'s, which holds a release build.
pub const TEST_REPOSITORY: &str = "localhost/actor-token-operator-test";

/// The operator's image, `localhost/actor-token-operator-test:<crate version>` (the chart's
/// default tag), built once per test binary from the Dockerfile's runtime stage with the operator
/// binary of this test build (`BINARY=prebuilt`) on the local stand-in of distroless
/// cc-debian12 (`hack/base-images.sh runtime`).
pub fn test_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tag = format!("{TEST_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"));
        let out = tools()
            .command("bash")
            .arg(repo_root().join("hack/image.sh"))
            .args(["build", "--bases", "local", "--binary"])
            .arg(env!("CARGO_BIN_EXE_actor-token-operator"))
            .args(["--tag", &tag])
            .env("ATO_IMAGE_ENGINE", "buildah")
            .output()
            .expect("run hack/image.sh");
        assert!(
            out.status.success(),
            "hack/image.sh build failed:\n{}",
            text(&out)
        );
        tag
    })
}

/// `podman image inspect` of one image, as JSON.
pub fn inspect_image(image: &str) -> serde_json::Value {
    let mut cmd = podman();
    cmd.args(["image", "inspect", image]);
    let list: serde_json::Value =
        serde_json::from_str(&run(cmd, "podman image inspect")).expect("inspect output is JSON");
    list[0].clone()
}

/// An image's filesystem, as `podman export` of a container of it writes it.
pub struct ExportedImage {
    dir: tempfile::TempDir,
}

pub fn export_image(image: &str) -> ExportedImage {
    let mut create = podman();
    create.args(["create", "--quiet", image]);
    let container = run(create, "podman create").trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let export = podman()
        .args(["export", "--output"])
        .arg(dir.path().join("image.tar"))
        .arg(&container)
        .output()
        .expect("run podman export");
    let _ = podman().args(["rm", "--force", &container]).output();
    assert!(
        export.status.success(),
        "podman export failed: {}",
        text(&export)
    );
    ExportedImage { dir }
}

impl ExportedImage {
    fn archive(&self) -> PathBuf {
        self.dir.path().join("image.tar")
    }

    /// Every path in it, relative (`usr/local/bin/…`), folders without a trailing slash.
    pub fn files(&self) -> Vec<String> {
        let mut list = Command::new("tar");
        list.arg("--list").arg("--file").arg(self.archive());
        run(list, "tar --list")
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
            .filter(|l| !l.is_empty() && l != ".")
            .collect()
    }

    /// One file's content, as text.
    pub fn read(&self, path: &str) -> String {
        let mut extract = Command::new("tar");
        extract
            .arg("--extract")
            .arg("--to-stdout")
            .arg("--file")
            .arg(self.archive())
            .arg(path);
        run(extract, &format!("tar --extract {path}"))
    }
}

/// A folder readable by the container's user, holding `files` (name, content), mode 0644 as a
/// kubelet's projected volume has them.
pub fn readable_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}
