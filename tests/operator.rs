//! The operator end to end: its binary against the local control plane and the Clerk
//! simulator. Each test has its own namespace, simulator and operator process.

mod support;

use std::time::Duration;

use actor_token_operator::api::{FINALIZER, Phase, SECRET_TYPE};
use clerk_sim::TokenStatus;
use kube::api::DeleteParams;
use serde_json::json;
use support::env::{Env, condition, ready_condition, secret_text};

#[tokio::test]
async fn a_request_is_issued_into_a_secret_and_revoked_on_delete() {
    let mut env = Env::start("issue").await;
    env.create_request(
        "support-1",
        json!({ "secretLabels": { "team": "support" }, "reason": "TICKET-1" }),
    )
    .await;
    let issued = env.wait_phase("support-1", Phase::Issued).await;

    let status = issued.status.clone().unwrap();
    let token_id = status.token_id.clone().expect("token ID recorded");
    assert_eq!(status.secret_name.as_deref(), Some("support-1"));
    assert!(status.issued_at.is_some() && status.expires_at.is_some());
    let ready = ready_condition(&issued).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Issued")
    );
    assert!(
        issued
            .metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&FINALIZER.to_string())
    );

    // Exactly one token, as asked, and the Secret carries its link.
    let tokens = env.sim.tokens();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    assert_eq!(token.id, token_id);
    assert_eq!(token.user_id, "user_2abcImpersonated");
    assert_eq!(token.actor["sub"], "user_2xyzSupport");
    assert_eq!(token.expires_in_seconds, 3600);
    assert_eq!(token.session_max_duration_in_seconds, 1800);
    let secret = env.secrets.get("support-1").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some(SECRET_TYPE));
    assert_eq!(secret_text(&secret, "url"), token.url);
    assert_eq!(secret_text(&secret, "token"), token.token);
    assert_eq!(secret_text(&secret, "tokenId"), token_id);
    assert_eq!(secret_text(&secret, "userId"), "user_2abcImpersonated");
    assert_eq!(secret_text(&secret, "actorId"), "user_2xyzSupport");
    assert!(!secret_text(&secret, "expiresAt").is_empty());
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["team"], "support");
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        (
            "ActorTokenRequest",
            issued.metadata.uid.as_deref().unwrap(),
            Some(true)
        )
    );
    env.assert_events("Issued", 1).await;

    // A settled request costs nothing when reconciled again.
    let calls_before = env.sim.stats();
    let rv = env
        .requests
        .get("support-1")
        .await
        .unwrap()
        .metadata
        .resource_version;
    env.operator().kill();
    env.start_operator();
    // The new process reconciles every request it finds at start.
    support::eventually(
        support::env::WAIT,
        "a reconcile by the new operator",
        || async {
            let reconciles = env.metric("actor_token_operator_reconciles_total").await?;
            (reconciles >= 1.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        env.requests
            .get("support-1")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv,
        "no write for a settled request"
    );
    assert_eq!(
        env.sim.stats(),
        calls_before,
        "no Clerk call for a settled request"
    );

    env.requests
        .delete("support-1", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("support-1").await;
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Revoked
    );
    assert!(
        env.secrets.get_opt("support-1").await.unwrap().is_none(),
        "the Secret is deleted"
    );
    assert!(
        !env.operator().output().contains('\u{1b}'),
        "text logs written to a file carry no colour codes"
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn an_expired_link_is_revoked_and_its_secret_deleted() {
    let mut env = Env::start("expiry").await;
    env.create_request("short", json!({ "expiresIn": "4s" }))
        .await;
    let issued = env.wait_phase("short", Phase::Issued).await;
    let token_id = issued.status.as_ref().unwrap().token_id.clone().unwrap();
    assert!(env.secrets.get_opt("short").await.unwrap().is_some());

    let expired = env.wait_phase("short", Phase::Expired).await;
    assert_eq!(
        condition(&expired, "Expired").map(|c| c.status),
        Some("True".into())
    );
    assert!(
        ready_condition(&expired).is_none(),
        "a finished request has no Ready condition"
    );
    assert!(
        env.secrets.get_opt("short").await.unwrap().is_none(),
        "the Secret is deleted at expiry"
    );
    assert_ne!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Pending,
        "no live token after expiry"
    );
    assert_eq!(env.live_tokens(), 0);
    // The request stays, as a record, until someone deletes it.
    assert!(env.requests.get_opt("short").await.unwrap().is_some());
    assert_eq!(
        env.sim.stats().create.total,
        1,
        "an expired request is not issued again"
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn a_foreign_secret_is_never_touched() {
    let env = Env::start("conflict").await;
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "taken", "namespace": env.ns.name, "labels": { "owner": "someone" } },
        "stringData": { "password": "hunter2" }
    }))
    .await;
    let before = env.secrets.get("taken").await.unwrap();
    env.create_request("wants-taken", json!({ "secretName": "taken" }))
        .await;
    let failed = env.wait_phase("wants-taken", Phase::Failed).await;
    let ready = ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "SecretConflict");
    assert!(ready.message.contains("taken"), "{}", ready.message);
    let after = env.secrets.get("taken").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the foreign Secret is unchanged"
    );
    assert_eq!(after.data, before.data);
    assert_eq!(
        env.sim.stats().create.total,
        0,
        "no token is minted for a request that can't deliver it"
    );
    env.assert_events("SecretConflict", 1).await;

    // Deleting the request leaves the foreign Secret alone too.
    env.requests
        .delete("wants-taken", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("wants-taken").await;
    assert_eq!(
        env.secrets
            .get("taken")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before.metadata.resource_version
    );
}

#[tokio::test]
async fn deleting_the_secret_revokes_the_token_and_mints_no_other() {
    let mut env = Env::start("secret-deleted").await;
    env.create_request("support-2", json!({})).await;
    let issued = env.wait_phase("support-2", Phase::Issued).await;
    let token_id = issued.status.as_ref().unwrap().token_id.clone().unwrap();
    env.secrets
        .delete("support-2", &DeleteParams::default())
        .await
        .unwrap();

    let revoked = env.wait_phase("support-2", Phase::Revoked).await;
    let status = revoked.status.as_ref().unwrap();
    let revoked_condition = condition(&revoked, "Revoked").unwrap();
    assert_eq!(
        (
            revoked_condition.status.as_str(),
            revoked_condition.reason.as_str()
        ),
        ("True", "SecretDeleted")
    );
    assert!(ready_condition(&revoked).is_none());
    assert!(status.revoked_at.is_some());
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Revoked
    );
    env.settle("support-2").await;
    assert_eq!(
        env.sim.stats().create.total,
        1,
        "a new link is a new request"
    );
    assert!(env.secrets.get_opt("support-2").await.unwrap().is_none());
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn a_request_deleted_while_clerk_is_down_is_released_once_its_sessions_are_over() {
    let mut env = Env::start("clerk-down").await;
    env.create_request(
        "doomed",
        json!({ "expiresIn": "12s", "sessionMaxDuration": "5s" }),
    )
    .await;
    let issued = env.wait_phase("doomed", Phase::Issued).await;
    let expires_at = issued
        .status
        .as_ref()
        .unwrap()
        .expires_at
        .clone()
        .unwrap()
        .0;
    env.sim.set_faults(clerk_sim::Faults {
        server_error_share: 1.0,
        ..Default::default()
    });
    env.requests
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();

    // The finalizer holds the object while the token may be live, and says why...
    let waiting = env.wait_reason("doomed", "ClerkUnavailable").await;
    assert!(
        waiting.message.contains("Clerk is unavailable"),
        "{}",
        waiting.message
    );
    let events = env.events().await;
    let retrying = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("RevokeRetrying"))
        .expect("an event says the operator is still trying");
    assert!(
        retrying
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("still trying"),
        "{retrying:?}"
    );
    assert!(env.sim.stats().revoke.total >= 1, "the operator tried");
    // ...then, its token expired, whether a session it may have opened is still on: it lets
    // go only once any such session has ended too (sessionMaxDuration after the expiry).
    env.wait_gone("doomed").await;
    let sessions_over = expires_at + k8s_openapi::jiff::SignedDuration::from_secs(5);
    assert!(
        k8s_openapi::jiff::Timestamp::now() >= sessions_over,
        "released only after every session the token could have opened was over"
    );
    env.assert_events("RevokeAbandoned", 1).await;
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn a_clerk_instance_only_reads_its_own_namespace() {
    let mut env = Env::start("cross-ns").await;
    // A key Secret of the same name exists elsewhere; the instance in this namespace must
    // not be able to use it.
    let client = env.client.clone();
    let other = support::TestNamespace::create(&client, "cross-ns-other").await;
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "elsewhere-key", "namespace": other.name },
        "stringData": { "secretKey": support::env::KEY }
    }))
    .await;
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "borrower", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "elsewhere-key", "key": "secretKey" } }
    }))
    .await;
    env.create_request(
        "borrowing",
        json!({ "instanceRef": { "kind": "ClerkInstance", "name": "borrower" } }),
    )
    .await;
    let waiting = env.wait_reason("borrowing", "InstanceNotReady").await;
    assert!(
        waiting
            .message
            .contains(&format!("{}/elsewhere-key", env.ns.name)),
        "{}",
        waiting.message
    );
    assert_eq!(env.sim.stats().create.total, 0);
    // The instance's own status says the same.
    let instances =
        kube::Api::<actor_token_operator::api::ClerkInstance>::namespaced(client, &env.ns.name);
    let ready = support::eventually(support::env::WAIT, "instance status", || async {
        let i = instances.get("borrower").await.unwrap();
        i.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNotFound")
    );
    let _ = env.operator();
}

#[tokio::test]
async fn a_refused_key_is_reported_and_retried_once_fixed() {
    let mut env = Env::start("unauthorized").await;
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "clerk-key", "namespace": env.ns.name },
        "stringData": { "secretKey": "sk_test_revokedKeyNotKnownToClerk" }
    }))
    .await;
    env.create_request("locked-out", json!({})).await;
    let condition = env.wait_reason("locked-out", "ClerkUnauthorized").await;
    assert_eq!(condition.status, "False");
    assert!(
        !condition.message.contains("sk_test_"),
        "the key is not in the message"
    );
    let request = env.requests.get("locked-out").await.unwrap();
    assert_eq!(
        request.phase(),
        Some(Phase::Pending),
        "a refused key is not final"
    );
    assert!(
        !env.operator()
            .output()
            .contains("sk_test_revokedKeyNotKnownToClerk")
    );
}

#[tokio::test]
async fn deleting_a_namespace_full_of_requests_finishes() {
    let env = Env::start("ns-delete").await;
    for i in 0..5 {
        env.create_request(&format!("r{i}"), json!({})).await;
    }
    for i in 0..5 {
        env.wait_phase(&format!("r{i}"), Phase::Issued).await;
    }
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone());
    namespaces
        .delete(&env.ns.name, &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(
        Duration::from_secs(90),
        "the namespace to be gone",
        || async {
            namespaces
                .get_opt(&env.ns.name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        env.live_tokens(),
        0,
        "every token was revoked on the way out"
    );
}

#[tokio::test]
async fn clerk_refusing_a_request_fails_it_once_with_clerks_message() {
    let mut env = Env::start_with(
        "rejected",
        clerk_sim::Faults {
            rejected_users: vec!["user_2gone".into()],
            ..Default::default()
        },
    )
    .await;
    env.create_request("for-nobody", json!({ "userId": "user_2gone" }))
        .await;
    let failed = env.wait_phase("for-nobody", Phase::Failed).await;
    let ready = ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "ClerkRejected");
    assert!(
        ready.message.contains("form_param_value_invalid"),
        "{}",
        ready.message
    );
    assert!(
        ready
            .message
            .contains("No user was found with id user_2gone"),
        "{}",
        ready.message
    );
    env.settle("for-nobody").await;
    assert_eq!(
        env.sim.stats().create.total,
        1,
        "a refused request is not retried"
    );
    env.assert_events("ClerkRejected", 1).await;
    assert!(env.sim.tokens().is_empty());
    // A failed request is released without any Clerk call.
    env.requests
        .delete("for-nobody", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("for-nobody").await;
    assert_eq!(env.sim.stats().revoke.total, 0);
    let _ = env.operator();
}

#[tokio::test]
async fn fixing_the_instance_wakes_a_waiting_request_at_once() {
    let env = Env::start("wake").await;
    // A refused key is retried only every 5 minutes...
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "clerk-key", "namespace": env.ns.name },
        "stringData": { "secretKey": "sk_test_oldKeyRevokedByClerk" }
    }))
    .await;
    env.create_request("patient", json!({})).await;
    env.wait_reason("patient", "ClerkUnauthorized").await;
    // ...but pointing the instance at a Secret with a good key is noticed straight away.
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "clerk-key-rotated", "namespace": env.ns.name },
        "stringData": { "secretKey": support::env::KEY }
    }))
    .await;
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": { "apiUrl": env.sim.api_url(), "secretKeyRef": { "name": "clerk-key-rotated", "key": "secretKey" } }
    }))
    .await;
    let started = std::time::Instant::now();
    env.wait_phase("patient", Phase::Issued).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "woken by the instance change, not by the 5-minute retry"
    );
}
