//! Admission policies given to the benchmark (`BENCH_ADMISSION_POLICIES`): applied to its
//! control plane for the runs that measure them, removed after. The policies themselves are
//! not the benchmark's: it measures what they change (a finalizer put on at create, so an
//! issue costs one write less; the SubjectAccessReviews the governance checks send).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::config::AdmissionPolicies;
use crate::support::{admission::rendered_policies, control_plane, repo_root};

/// The manifest to apply: the chart's policies rendered into target/bench-logs/, or the
/// one given.
pub fn manifest(policies: &AdmissionPolicies) -> PathBuf {
    match policies {
        AdmissionPolicies::Manifest(path) => path.clone(),
        AdmissionPolicies::Chart => {
            let dir = repo_root().join("target/bench-logs");
            std::fs::create_dir_all(&dir).expect("create target/bench-logs");
            let path = dir.join("admission-policies.yaml");
            std::fs::write(&path, rendered_policies())
                .expect("write the chart's admission policies");
            path
        }
    }
}

/// Applies the manifest (server-side) and waits until its policies act on new requests (the
/// API server loads policies a moment after they are stored): `acts` probes it, e.g. with a
/// dry-run create. Returns whether they acted within 30 s; a policy that never does is
/// reported, not fatal.
pub async fn apply<F, Fut>(manifest: &Path, acts: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    kubectl(&["apply", "--server-side", "-f"], manifest);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if acts().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            println!(
                "   the admission policies in {} put no finalizer on a new request within 30 s",
                manifest.display()
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes what [`apply`] applied.
pub fn remove(manifest: &Path) {
    kubectl(
        &["delete", "--ignore-not-found", "--wait=true", "-f"],
        manifest,
    );
}

fn kubectl(args: &[&str], manifest: &Path) {
    let out = control_plane()
        .kubectl()
        .args(args)
        .arg(manifest)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {} {}: {}",
        args.join(" "),
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
