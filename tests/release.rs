//! Releases: one version for the crate, the image and the chart, checked against the tag
//! before anything is built; release notes from CHANGELOG.md; the krew manifest filled in with
//! the release's archives; and a release workflow that tests and checks before it publishes.
//! (actionlint checks the workflows themselves in `make test`: hack/lint-workflows.sh.)

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::repo_root;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run_script(script: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of what hack/release/check-version.sh reads (Cargo.toml, Chart.yaml) and of the
/// script, with `edit` applied to Chart.yaml, so a disagreement can be tried without touching
/// the repository.
fn checkout_with_chart(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, change: &dyn Fn(&str) -> String| {
        let to = dir.path().join(from);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let content = std::fs::read_to_string(repo_root().join(from)).unwrap();
        std::fs::write(to, change(&content)).unwrap();
    };
    copy("Cargo.toml", &|s| s.to_owned());
    copy("hack/release/check-version.sh", &|s| s.to_owned());
    copy("charts/actor-token-operator/Chart.yaml", &edit);
    dir
}

#[test]
fn a_release_tag_must_be_v_and_the_one_version() {
    let script = repo_root().join("hack/release/check-version.sh");
    let good = run_script(&script, &[&format!("v{VERSION}")]);
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert_eq!(text(&good.stdout).trim(), VERSION);

    let mut parts = VERSION.split(['.', '-']);
    let (major, minor, patch): (u64, u64, u64) = (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let next = format!("{major}.{minor}.{}", patch + 1);
    for (tag, expected) in [
        (
            format!("v{next}"),
            format!("the tag v{next} is not v + Cargo.toml's version {VERSION}"),
        ),
        (
            VERSION.to_owned(),
            format!("the tag {VERSION} does not start with v"),
        ),
        (
            "v1.2".to_owned(),
            "is not v followed by a semantic version".to_owned(),
        ),
    ] {
        let out = run_script(&script, &[&tag]);
        assert!(!out.status.success(), "{tag} was accepted");
        assert!(
            text(&out.stderr).contains(&expected),
            "{tag}: {expected:?} not in {}",
            text(&out.stderr)
        );
    }

    // A chart whose version or appVersion strays from the crate's is refused, saying which.
    for (field, line) in [
        ("version", format!("version: {next}")),
        ("appVersion", format!("appVersion: \"{next}\"")),
    ] {
        let checkout = checkout_with_chart(|chart| {
            chart
                .lines()
                .map(|l| {
                    if l.starts_with(&format!("{field}:")) {
                        line.clone()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        let out = run_script(
            &checkout.path().join("hack/release/check-version.sh"),
            &[&format!("v{VERSION}")],
        );
        assert!(!out.status.success(), "a chart {field} of {next} passed");
        let expected = format!(
            "charts/actor-token-operator/Chart.yaml: {field} {next} is not Cargo.toml's version {VERSION}"
        );
        assert!(
            text(&out.stderr).contains(&expected),
            "{expected:?} not in {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn release_notes_come_from_the_changelog() {
    let script = repo_root().join("hack/release/changelog-section.sh");
    let unreleased = run_script(&script, &["Unreleased"]);
    assert!(unreleased.status.success(), "{}", text(&unreleased.stderr));
    let notes = text(&unreleased.stdout);
    assert!(notes.contains("### Added"), "{notes}");
    assert!(
        !notes.contains("## ["),
        "only that version's section: {notes}"
    );
    let missing = run_script(&script, &["99.0.0"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("CHANGELOG.md has no notes under '## [99.0.0]'"),
        "{}",
        text(&missing.stderr)
    );
}

fn workflow(name: &str) -> Value {
    let path = repo_root().join(".github/workflows").join(name);
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect(),
        _ => vec![],
    }
}

/// Every job `job` waits for, directly or through others.
fn all_needs(jobs: &serde_json::Map<String, Value>, job: &str) -> Vec<String> {
    let mut found = vec![];
    let mut todo = needs(&jobs[job]);
    while let Some(next) = todo.pop() {
        if !found.contains(&next) {
            todo.extend(needs(&jobs[&next]));
            found.push(next);
        }
    }
    found
}

#[test]
fn the_release_workflow_checks_the_tag_and_tests_before_it_publishes() {
    let release = workflow("release.yml");
    // serde_saphyr reads YAML 1.2: `on` is a string key.
    assert_eq!(
        release["on"]["push"]["tags"],
        serde_json::json!(["v*.*.*"]),
        "releases are version tags"
    );
    let jobs = release["jobs"].as_object().unwrap();
    let check = jobs["version"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains(r#"hack/release/check-version.sh "${TAG}""#))
        })
        .expect("the version job runs hack/release/check-version.sh on the tag");
    assert_eq!(check["env"]["TAG"], "${{ github.ref_name }}");
    assert_eq!(
        jobs["test"]["uses"], "./.github/workflows/ci.yml",
        "a release runs the same make test as CI"
    );
    let ci = workflow("ci.yml");
    assert!(
        ci["jobs"]["test"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["run"] == "make test"),
        "CI runs make test"
    );
    for (name, job) in jobs {
        if name == "version" {
            continue;
        }
        let before = all_needs(jobs, name);
        assert!(
            before.contains(&"version".to_owned()),
            "{name} waits for the version check"
        );
        let publishes =
            job["permissions"]["packages"] == "write" || job["permissions"]["contents"] == "write";
        if publishes {
            assert!(
                before.contains(&"test".to_owned()),
                "{name} publishes, so it waits for make test"
            );
        }
    }
    // Only the jobs that publish may write, and only the signing ones get an OIDC token.
    assert_eq!(release["permissions"]["contents"], "read");
    for (name, job) in jobs {
        if job["permissions"]["id-token"] == "write" {
            assert!(
                ["image-index", "chart"].contains(&name.as_str()),
                "{name} has an OIDC token"
            );
        }
    }
}

/// hack/release/krew-manifest, built once.
fn krew_manifest() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out_dir = repo_root().join("target/release-tools");
        std::fs::create_dir_all(&out_dir).unwrap();
        let bin = out_dir.join("krew-manifest");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(repo_root().join("hack/release/krew-manifest"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=readonly")
            .env("CGO_ENABLED", "0")
            .status()
            .expect("run go build (Go 1.26 builds the release tools)");
        assert!(
            status.success(),
            "building hack/release/krew-manifest failed"
        );
        bin
    })
}

/// Writes an archive for each `os_arch` into `dist`, and returns their sha256 sums.
fn archives(dist: &Path, platforms: &[&str]) -> BTreeMap<String, String> {
    std::fs::create_dir_all(dist).unwrap();
    platforms
        .iter()
        .map(|p| {
            let name = format!("kubectl-actortoken_{p}.tar.gz");
            let content = format!("not really an archive for {p}");
            std::fs::write(dist.join(&name), &content).unwrap();
            let sum: String = Sha256::digest(content.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (name, sum)
        })
        .collect()
}

fn fill(manifest: &Path, dist: &Path) -> Output {
    Command::new(krew_manifest())
        .arg("-manifest")
        .arg(manifest)
        .args([
            "-version",
            "v9.8.7",
            "-base-url",
            "https://dl.example/v9.8.7/",
        ])
        .arg(dist)
        .output()
        .unwrap()
}

#[test]
fn the_krew_manifest_gets_the_release_version_uris_and_sums() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("actortoken.yaml");
    std::fs::copy(
        repo_root().join("tests/fixtures/krew-plugin.yaml"),
        &manifest,
    )
    .unwrap();
    let dist = dir.path().join("dist");
    let sums = archives(&dist, &["linux_amd64", "windows_amd64"]);
    let out = fill(&manifest, &dist);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let filled = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        filled.contains("Kept as the author wrote it.") && filled.contains("# A krew manifest"),
        "the author's text and comments stay:\n{filled}"
    );
    let filled: Value = serde_saphyr::from_str(&filled).unwrap();
    assert_eq!(filled["spec"]["version"], "v9.8.7");
    for (i, platform) in ["linux_amd64", "windows_amd64"].iter().enumerate() {
        let entry = &filled["spec"]["platforms"][i];
        let name = format!("kubectl-actortoken_{platform}.tar.gz");
        assert_eq!(entry["uri"], format!("https://dl.example/v9.8.7/{name}"));
        assert_eq!(entry["sha256"], sums[&name].as_str());
    }
    assert_eq!(
        filled["spec"]["platforms"][1]["bin"],
        "kubectl-actortoken.exe"
    );

    // The manifest and the release's build matrix must agree, both ways.
    for (platforms, expected) in [
        (
            &["linux_amd64"][..],
            "spec.platforms[1] (windows/amd64): no kubectl-actortoken_windows_amd64.tar.gz",
        ),
        (
            &["linux_amd64", "windows_amd64", "darwin_arm64"][..],
            "kubectl-actortoken_darwin_arm64.tar.gz: no platform in the manifest names it",
        ),
    ] {
        let dist = tempfile::tempdir().unwrap();
        archives(dist.path(), platforms);
        let out = fill(&manifest, dist.path());
        assert!(!out.status.success(), "{platforms:?} was accepted");
        assert!(
            text(&out.stderr).contains(expected),
            "{expected:?} not in {}",
            text(&out.stderr)
        );
    }

    // The plugin's own manifest, once it is in the repository, is one the release can fill.
    let ours = repo_root().join("plugins/actortoken.yaml");
    if ours.exists() {
        let copy = dir.path().join("ours.yaml");
        std::fs::copy(&ours, &copy).unwrap();
        let ours: Value = serde_saphyr::from_str(&std::fs::read_to_string(&ours).unwrap())
            .expect("plugins/actortoken.yaml is YAML");
        let platforms: Vec<String> = ours["spec"]["platforms"]
            .as_array()
            .expect("plugins/actortoken.yaml has spec.platforms")
            .iter()
            .map(|p| {
                let labels = &p["selector"]["matchLabels"];
                format!(
                    "{}_{}",
                    labels["os"].as_str().unwrap(),
                    labels["arch"].as_str().unwrap()
                )
            })
            .collect();
        // The release builds an archive for exactly these platforms.
        let mut built: Vec<String> =
            workflow("release.yml")["jobs"]["plugin"]["strategy"]["matrix"]["include"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "{}_{}",
                        m["os"].as_str().unwrap(),
                        m["arch"].as_str().unwrap()
                    )
                })
                .collect();
        let mut named = platforms.clone();
        built.sort();
        named.sort();
        assert_eq!(
            built, named,
            "the release workflow's plugin matrix and plugins/actortoken.yaml's platforms"
        );
        let dist = tempfile::tempdir().unwrap();
        archives(
            dist.path(),
            &platforms.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let out = fill(&copy, dist.path());
        assert!(
            out.status.success(),
            "plugins/actortoken.yaml: {}",
            text(&out.stderr)
        );
    }
}
