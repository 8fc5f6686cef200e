//! The `clerk-sim` binary: start-up line, flags, clean exit on SIGTERM, no secrets in logs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{answer, client};
use serde_json::json;

const SECRET: &str = "sk_test_binary_secret_value";

/// The simulator process, killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_clerk-sim"))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim_end()
        .strip_prefix("clerk-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, base)
}

fn terminate(mut running: Running) -> (std::process::ExitStatus, String) {
    let child = &mut running.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "clerk-sim did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (exit, stderr)
}

#[tokio::test]
async fn serves_the_api_and_stops_cleanly_on_sigterm_without_logging_secrets() {
    let (child, base) = spawn(&[
        "--secret-key",
        SECRET,
        "--secret-key",
        "sk_live_other",
        "--seed",
        "3",
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let created = answer(
        client()
            .post(format!("{base}/v1/actor_tokens"))
            .bearer_auth(SECRET)
            .body(json!({"user_id": "u", "actor": {"sub": "a"}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, 200);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let token = created.body["token"].as_str().unwrap().to_owned();
    let revoked = answer(
        client()
            .post(format!("{base}/v1/actor_tokens/{id}/revoke"))
            .bearer_auth("sk_live_other")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(revoked.status, 200);
    let wrong = client()
        .post(format!("{base}/v1/actor_tokens"))
        .bearer_auth("sk_test_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let tokens = answer(
        client()
            .get(format!("{base}/__sim/tokens"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tokens.body[0]["status"], "revoked");

    let (exit, stderr) = terminate(child);
    assert!(exit.success(), "{exit:?}\n{stderr}");
    assert!(
        stderr.contains("api request"),
        "logs go to stderr: {stderr}"
    );
    for secret in [
        SECRET,
        "sk_live_other",
        "sk_test_nope",
        token.as_str(),
        "tickets/accept",
    ] {
        assert!(
            !stderr.contains(secret),
            "stderr shows {secret:?}:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn fault_flags_apply() {
    let (child, base) = spawn(&[
        "--secret-key",
        SECRET,
        "--too-many-requests-share",
        "1",
        "--retry-after-seconds",
        "9",
        "--rate-limit",
        "5/10",
        "--latency-ms",
        "1..3",
        "--rejected-user",
        "user_gone",
    ]);
    let faults = answer(
        client()
            .get(format!("{base}/__sim/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        faults.body,
        json!({"latency": {"min_ms": 1, "max_ms": 3}, "server_error_share": 0.0, "too_many_requests_share": 1.0,
               "retry_after_seconds": 9, "rate_limit": {"per_key": {"requests": 5, "window_seconds": 10}},
               "drop_create_share": 0.0, "rejected_users": ["user_gone"]})
    );
    let a = client()
        .post(format!("{base}/v1/actor_tokens"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 429);
    assert_eq!(a.headers()["retry-after"], "9");
    let (exit, _) = terminate(child);
    assert!(exit.success());
}

#[test]
fn port_and_env_vars_are_honoured() {
    // Find a free port, then ask for it through the environment.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_clerk-sim"))
            .env("CLERK_SIM_PORT", port.to_string())
            .env("CLERK_SIM_SECRET_KEYS", format!("{SECRET},sk_live_two"))
            .env("CLERK_SIM_RATE_LIMIT", "clerk")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim_end(),
        format!("clerk-sim listening on http://127.0.0.1:{port}")
    );
    let (exit, stderr) = terminate(child);
    assert!(exit.success());
    assert!(
        !stderr.contains(SECRET) && !stderr.contains("sk_live_two"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        &["--server-error-share", "2"][..],
        &["--rate-limit", "5"],
        &["--latency-ms", "9..1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_clerk-sim"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_does_not_show_secret_keys_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_clerk-sim"))
        .arg("--help")
        .env("CLERK_SIM_SECRET_KEYS", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--secret-key") && !help.contains(SECRET),
        "{help}"
    );
}
