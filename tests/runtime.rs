//! What an operator serves for people and Prometheus: /healthz, /readyz and /metrics, with
//! the metric families a dashboard or an alert relies on, and no credential among them.

mod support;

use std::time::Duration;

use actor_token_operator::api::Phase;
use serde_json::json;
use support::{
    env::{Env, WAIT},
    eventually, series_value,
};

#[tokio::test]
async fn health_and_metrics_describe_an_issued_request_and_hold_no_credential() {
    let env = Env::start("rt-metrics").await;
    let operator = env.operator.as_ref().unwrap();
    let (status, body) = eventually(WAIT, "/healthz to answer", || operator.get("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // Without leader election: ready once the caches are synced.
    eventually(WAIT, "/readyz to be 200", || async {
        operator
            .get("/readyz")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;

    // A slow instance: 2 calls per second at most, a burst of 1, so the second create waits
    // for the rate limiter (half a second: less than the operator waits before it goes and
    // comes back instead).
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "slow", "namespace": env.ns.name },
        "spec": {
            "apiUrl": env.sim.api_url(),
            "secretKeyRef": { "name": "clerk-key", "key": "secretKey" },
            "rateLimit": { "requests": 3, "period": "1s" }
        }
    }))
    .await;
    for (name, user) in [("watched-1", "user_2rtOne"), ("watched-2", "user_2rtTwo")] {
        env.create_request(
            name,
            json!({ "userId": user, "expiresIn": "10m", "instanceRef": { "kind": "ClerkInstance", "name": "slow" } }),
        )
        .await;
    }
    env.wait_phase("watched-1", Phase::Issued).await;
    env.wait_phase("watched-2", Phase::Issued).await;

    let body = eventually(WAIT, "/metrics to count both issues", || async {
        let (status, body) = operator.get("/metrics").await?;
        assert_eq!(status, 200);
        (series_value(&body, r#"actor_token_operator_requests{phase="Issued"}"#) == Some(2.0))
            .then_some(body)
    })
    .await;
    let value = |series: &str| {
        series_value(&body, series).unwrap_or_else(|| panic!("{series} missing from\n{body}"))
    };
    assert!(value(r#"actor_token_operator_reconciles_total{result="success"}"#) >= 2.0);
    assert!(value("actor_token_operator_reconcile_duration_seconds_count") >= 2.0);
    assert_eq!(value("actor_token_operator_tokens_issued_total"), 2.0);
    assert_eq!(
        value(r#"actor_token_operator_clerk_requests_total{operation="create",code="200"}"#),
        2.0
    );
    assert_eq!(
        value(r#"actor_token_operator_clerk_request_duration_seconds_count{operation="create"}"#),
        2.0
    );
    assert!(value("actor_token_operator_clerk_rate_limit_waits_total") >= 1.0);
    assert!(value("actor_token_operator_clerk_rate_limit_wait_seconds_total") > 0.2);
    assert_eq!(
        value(r#"actor_token_operator_requests{phase="Pending"}"#),
        0.0
    );
    assert_eq!(value("actor_token_operator_leader"), 1.0);
    for name in ["watched-1", "watched-2"] {
        let left = value(&format!(
            r#"actor_token_operator_token_expires_in_seconds{{namespace="{}",name="{name}"}}"#,
            env.ns.name
        ));
        assert!(left > 500.0 && left <= 600.0, "{name}: {left}s left of 10m");
    }
    env.assert_no_credential_in("/metrics", &body);

    // Deleted: the revoke is counted, and the request's expiry series goes with it.
    env.requests
        .delete("watched-1", &Default::default())
        .await
        .unwrap();
    env.wait_gone("watched-1").await;
    let body = eventually(WAIT, "/metrics to show one Issued request", || async {
        let (_, body) = operator.get("/metrics").await?;
        (series_value(&body, r#"actor_token_operator_requests{phase="Issued"}"#) == Some(1.0))
            .then_some(body)
    })
    .await;
    assert!(!body.contains(r#"name="watched-1""#), "{body}");
    assert!(
        series_value(
            &body,
            r#"actor_token_operator_clerk_requests_total{operation="revoke",code="200"}"#
        ) >= Some(1.0),
        "{body}"
    );

    // A scraper asking for OpenMetrics gets it.
    let addr = operator.metrics_addr().unwrap();
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(answer.text().await.unwrap().trim_end().ends_with("# EOF"));
}
