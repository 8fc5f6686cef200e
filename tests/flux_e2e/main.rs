//! `make e2e-gitops`: the GitOps flow with Flux itself (issue 15). source-controller and
//! kustomize-controller, built from their Go modules (hack/flux/build.sh), run as processes
//! against the control plane as Flux's own ServiceAccounts, fetch a Git repository served over
//! smart HTTP on 127.0.0.1, and apply, wait on and prune `ActorTokenRequest`s that the test
//! commits, while the operator binary and the Clerk simulator do the rest.
//!
//! Steps 2 and the denied half of 3 go through the approval gate (approval.rs), with people
//! acting beside Flux as themselves (people.rs); the others are in steps.rs.
//!
//! Every step runs through two Kustomizations side by side: one with `wait: true` alone
//! (kstatus) and one with the `healthCheckExprs` of examples/gitops/flux/kustomization.yaml.
//!
//! The ignored test is the flow (minutes, and two large Go builds the first time); the others
//! check the harness's own parts and run in `make test`. With `FLUX_E2E_RESULTS_DIR` set (the
//! make target sets it) the report goes there.

#[path = "../support/mod.rs"]
mod support;

mod approval;
mod flow;
mod flux;
mod git;
mod objects;
mod people;
mod report;
mod steps;

use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long, and builds Flux's controllers the first time: `make e2e-gitops`"]
async fn flux_applies_waits_on_and_prunes_requests() {
    let start = Instant::now();
    let mut flow = flow::Flow::start().await;
    steps::applied_request_is_ready_only_once_issued(&mut flow).await;
    approval::reviewed_request_needs_no_further_approval(&mut flow).await;
    steps::refused_request_fails_fast(&mut flow).await;
    approval::denied_request_fails_fast(&mut flow).await;
    steps::expired_request_keeps_kustomization_ready(&mut flow).await;
    steps::edited_request_is_refused_and_replaced(&mut flow).await;
    steps::deleted_file_revokes_the_token(&mut flow).await;

    // Nothing Flux or the operator wrote or logged holds a credential.
    flow.env.assert_no_credential_leaked().await;
    for controller in [&flow.flux.source, &flow.flux.kustomize] {
        flow.env
            .assert_no_credential_in(controller.name, &controller.output());
    }
    flow.clean_up().await;

    flow.report.wall_seconds = start.elapsed().as_secs_f64();
    println!("{}", flow.report.markdown());
    if let Ok(dir) = std::env::var("FLUX_E2E_RESULTS_DIR") {
        let dir = support::repo_root().join(dir);
        flow.report.write(&dir);
        println!("report written to {}", dir.display());
    }
}

#[tokio::test]
async fn the_git_server_serves_a_clone_over_smart_http() {
    let root = tempfile::tempdir().unwrap();
    let (repo, first) = git::Repo::create(root.path(), "r", &[("a/README.md", "hello\n")]);
    let server = git::GitServer::start(root.path()).await;
    repo.write("a/b.yaml", "kind: Nothing\n");
    let second = repo.commit("second");
    assert_ne!(first.sha, second.sha);
    let url = server.url("r");
    let clone = root.path().join("clone");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("git")
            .args(["-c", "protocol.version=2", "clone", "--quiet", &url])
            .arg(&clone)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .map(|out| (out, clone))
    })
    .await
    .unwrap()
    .expect("run git clone");
    let (out, clone) = out;
    assert!(
        out.status.success(),
        "git clone failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("a/b.yaml")).unwrap(),
        "kind: Nothing\n"
    );
    // The refs advertisement of the smart protocol, which go-git requires.
    let answer = reqwest::get(format!(
        "{}/info/refs?service=git-upload-pack",
        server.url("r")
    ))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );
    let body = answer.text().await.unwrap();
    assert!(body.contains(&second.sha), "advertises the pushed commit");
}

#[test]
fn a_cgi_answer_is_split_into_status_headers_and_body() {
    let answer = git::parse_cgi(
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: never\r\n\r\nnot here\n\n",
    )
    .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.headers,
        vec![
            ("Content-Type".to_owned(), "text/plain".to_owned()),
            ("Expires".to_owned(), "never".to_owned())
        ]
    );
    assert_eq!(answer.body, b"not here\n\n");
    // Bare LF line ends, no Status: 200.
    let answer =
        git::parse_cgi(b"Content-Type: application/x-git-upload-pack-result\n\n\x00\x01PACK")
            .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"\x00\x01PACK");
    assert!(git::parse_cgi(b"Content-Type: text/plain").is_err());
    assert!(git::parse_cgi(b"no colon here\r\n\r\n").is_err());
}

#[test]
fn a_request_file_holds_the_spec_and_no_namespace() {
    let file = flow::RequestFile::new("user_2abc", "15m", "https://tickets.example.com/9");
    let object: serde_json::Value = serde_saphyr::from_str(&file.yaml("ks-ticket-9")).unwrap();
    assert_eq!(
        object,
        serde_json::json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": "ks-ticket-9" },
            "spec": {
                "userId": "user_2abc", "actor": { "sub": "user_2xyzSupport" }, "expiresIn": "15m",
                "instanceRef": { "kind": "ClerkInstance", "name": "clerk" },
                "reason": "https://tickets.example.com/9",
            },
        })
    );
}

#[test]
fn the_kustomizations_are_the_shipped_example_pointed_at_the_test() {
    let pipeline = |health| objects::Pipeline {
        health,
        name: "k".into(),
        folder: "kstatus",
        prefix: "ks",
    };
    let cel = objects::kustomization(&pipeline(objects::HealthCheck::Cel), "src", "ns", "20s");
    assert_eq!(cel["spec"]["healthCheckExprs"].as_array().unwrap().len(), 1);
    assert_eq!(cel["spec"]["path"], "./kstatus");
    assert_eq!(cel["spec"]["targetNamespace"], "ns");
    assert_eq!(cel["spec"]["sourceRef"]["name"], "src");
    assert_eq!(cel["metadata"]["namespace"], "flux-system");
    let kstatus =
        objects::kustomization(&pipeline(objects::HealthCheck::Kstatus), "src", "ns", "20s");
    assert!(kstatus["spec"].get("healthCheckExprs").is_none());
    assert_eq!(kstatus["spec"]["wait"], true);
    assert_eq!(kstatus["spec"]["prune"], true);
}
