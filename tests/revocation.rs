//! What revoking means, end to end: a used link's sessions are ended, and only those; a
//! token is let go only once it is certainly dead (not because its instance can't be read
//! just now, nor on a "not found" through another key); and nobody can point the operator at
//! someone else's token, neither through a planted Secret nor through the status.

mod support;

use actor_token_operator::{
    api::{ActorTokenRequest, Phase},
    clerk::SecretKey,
    governance::provenance::PROVENANCE_KEY,
};
use clerk_sim::{SessionStatus, SimConfig, TokenStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{
    admission::POLICIES_OFF_LABEL,
    control_plane,
    env::{Env, KEY, WAIT, condition, ready_condition},
    eventually,
};

fn token_of(request: &ActorTokenRequest) -> String {
    request
        .status
        .as_ref()
        .and_then(|s| s.token_id.clone())
        .expect("a token recorded")
}

/// Waits until the event with `reason` shows up, and returns its note.
async fn event_note(env: &Env, reason: &str) -> String {
    eventually(WAIT, &format!("a {reason} event"), || async {
        env.events()
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.note)
    })
    .await
}

/// Waits until `name` is held by the finalizer with a Ready condition of `reason` (and fails
/// at once if it is gone: let go).
async fn wait_held(env: &Env, name: &str, reason: &str) -> String {
    eventually(
        WAIT,
        &format!("{name} held, waiting with {reason}"),
        || async {
            let request = env
                .requests
                .get_opt(name)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name} was let go while its token may be live"));
            assert!(request.metadata.deletion_timestamp.is_some());
            ready_condition(&request)
                .filter(|c| c.reason == reason)
                .map(|c| c.message)
        },
    )
    .await
}

#[tokio::test]
async fn revoking_a_used_link_ends_the_sessions_it_opened_and_no_other() {
    let mut env = Env::start("rev-sessions").await;
    let user = "user_2sessionsTarget";
    env.create_request("used", json!({ "userId": user })).await;
    env.create_request("other", json!({ "userId": user })).await;
    let used = env.wait_phase("used", Phase::Issued).await;
    let other = env.wait_phase("other", Phase::Issued).await;

    // The actor Clerk got names the request it came from.
    let token = env.sim.token(&token_of(&used)).unwrap();
    assert_eq!(
        token.actor[PROVENANCE_KEY]["request"],
        json!({ "namespace": env.ns.name, "name": "used", "uid": used.uid().unwrap() })
    );

    // Both links are opened: two impersonations of the same user.
    let mine = env.sim.accept(&token_of(&used)).unwrap();
    let theirs = env.sim.accept(&token_of(&other)).unwrap();

    env.requests
        .delete("used", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("used").await;
    assert_eq!(
        env.sim.session(&mine.id).unwrap().status,
        SessionStatus::Revoked,
        "the session the deleted request's link opened is ended"
    );
    assert_eq!(
        env.sim.session(&theirs.id).unwrap().status,
        SessionStatus::Active,
        "another request's session of the same user is left alone"
    );
    let note = event_note(&env, "SessionsEnded").await;
    assert!(
        note.contains("its link was used") && note.contains("1 session it opened was ended"),
        "{note}"
    );
    assert_eq!(
        env.metric("actor_token_operator_sessions_ended_total")
            .await,
        Some(1.0)
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn an_unused_link_is_revoked_and_no_session_is_looked_for() {
    let mut env = Env::start("rev-unused").await;
    env.create_request("unused", json!({})).await;
    let issued = env.wait_phase("unused", Phase::Issued).await;
    env.requests
        .delete("unused", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("unused").await;
    assert_eq!(
        env.sim.token(&token_of(&issued)).unwrap().status,
        TokenStatus::Revoked
    );
    let note = event_note(&env, "Revoked").await;
    assert!(note.contains("its link was never used"), "{note}");
    assert_eq!(
        env.sim.stats().list_sessions.total,
        0,
        "a link never used opened no session: nothing to look for"
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn deleting_the_secret_of_a_used_link_ends_its_session() {
    let mut env = Env::start("rev-secret").await;
    env.create_request("watched", json!({})).await;
    let issued = env.wait_phase("watched", Phase::Issued).await;
    let session = env.sim.accept(&token_of(&issued)).unwrap();
    env.secrets
        .delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let revoked = env.wait_phase("watched", Phase::Revoked).await;
    assert_eq!(
        env.sim.session(&session.id).unwrap().status,
        SessionStatus::Revoked
    );
    assert_eq!(revoked.status.as_ref().unwrap().sessions_ended, Some(1));
    let message = condition(&revoked, "Revoked").unwrap().message;
    assert!(
        message.contains("its link was used") && message.contains("1 session it opened was ended"),
        "{message}"
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn a_token_is_not_let_go_while_its_instance_cannot_be_read() {
    let mut env = Env::start("rev-unreadable").await;
    env.create_request("kept", json!({})).await;
    let issued = env.wait_phase("kept", Phase::Issued).await;
    let token_id = token_of(&issued);

    // A restart with its instance and key gone: nothing in this process ever held a client.
    env.operator().kill();
    let instances = Api::<actor_token_operator::api::ClerkInstance>::namespaced(
        env.client.clone(),
        &env.ns.name,
    );
    instances
        .delete("clerk", &DeleteParams::default())
        .await
        .unwrap();
    env.secrets
        .delete("clerk-key", &DeleteParams::default())
        .await
        .unwrap();
    env.start_operator();
    env.requests
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();

    // Held, saying why, with the token live: a retry, not a release.
    let message = wait_held(&env, "kept", "InstanceNotReady").await;
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Pending
    );

    // Once the instance is back, the token is revoked and the request let go.
    env.create_instance("clerk", "clerk-key").await;
    env.wait_gone("kept").await;
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Revoked
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn not_found_through_another_key_is_not_a_revoke() {
    let mut env = Env::start("rev-otherkey").await;
    env.create_request("moved", json!({})).await;
    let issued = env.wait_phase("moved", Phase::Issued).await;
    let token_id = token_of(&issued);
    let status = issued.status.clone().unwrap();
    assert_eq!(
        status.key_fingerprint,
        Some(SecretKey::parse(KEY).unwrap().fingerprint().to_string()),
        "the status names the key that issued the token"
    );
    let secret = env.secrets.get("moved").await.unwrap();
    assert_eq!(
        support::env::secret_text(&secret, "keyFingerprint"),
        status.key_fingerprint.clone().unwrap()
    );

    // The instance is pointed at another Clerk instance, with another key, and the operator
    // restarted: it has no client of the old key any more.
    const OTHER_KEY: &str = "sk_test_anotherInstanceKey987654321";
    let elsewhere = clerk_sim::start(SimConfig {
        secret_keys: vec![OTHER_KEY.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    env.operator().kill();
    env.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "other-key", "namespace": env.ns.name },
        "stringData": { "secretKey": OTHER_KEY }
    }))
    .await;
    env.apply(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
        "metadata": { "name": "clerk", "namespace": env.ns.name },
        "spec": { "apiUrl": elsewhere.api_url(), "secretKeyRef": { "name": "other-key" } }
    }))
    .await;
    env.start_operator();
    env.requests
        .delete("moved", &DeleteParams::default())
        .await
        .unwrap();

    // The other Clerk doesn't know the token: that is said, and the token kept.
    let message = wait_held(&env, "moved", "KeyChanged").await;
    assert!(message.contains(&token_id), "{message}");
    assert!(
        elsewhere.stats().revoke.total >= 1,
        "asked the new instance"
    );
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Pending
    );
    let held = env.requests.get("moved").await.unwrap();
    assert_eq!(
        held.status.unwrap().token_id.as_deref(),
        Some(token_id.as_str()),
        "still recorded"
    );

    // Pointed back, the token is revoked where it lives.
    env.create_instance("clerk", "clerk-key").await;
    env.wait_gone("moved").await;
    assert_eq!(
        env.sim.token(&token_id).unwrap().status,
        TokenStatus::Revoked
    );
}

/// A user who may create Secrets (and requests) in the namespace, and delete requests.
async fn mallory(env: &Env, rules: Value) -> kube::Client {
    let user = format!("mallory-{}", env.ns.name);
    env.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": { "name": "mallory", "namespace": env.ns.name },
        "rules": rules
    }))
    .await;
    env.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "mallory", "namespace": env.ns.name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mallory" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))
    .await;
    let client = control_plane().client_as(&user).await;
    // RBAC takes effect a moment after the binding is written.
    let secrets = Api::<Secret>::namespaced(client.clone(), &env.ns.name);
    eventually(WAIT, "mallory's rights to take effect", || async {
        secrets.list(&Default::default()).await.ok()
    })
    .await;
    client
}

#[tokio::test]
async fn a_planted_secret_naming_another_requests_token_gets_nothing_revoked() {
    let mut env = Env::start("rev-planted").await;
    // Requests from before the operator's seal key count as an upgrade's; these come after.
    env.seal_key().await;
    env.create_request("victim", json!({})).await;
    let victim = env.wait_phase("victim", Phase::Issued).await;
    let victim_token = token_of(&victim);

    let client = mallory(
        &env,
        json!([
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "list"] },
            { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests"], "verbs": ["create", "get", "delete"] },
            // A requester like any other, as far as admission can tell.
            { "apiGroups": ["actortokens.dev"], "resources": ["clerkinstances"], "verbs": ["use"], "resourceNames": ["not-yet"] }
        ]),
    )
    .await;
    // Mallory's request waits (its instance doesn't exist yet), so she can plant its Secret
    // first: owned by her request, naming the victim's token.
    let requests = Api::<ActorTokenRequest>::namespaced(client.clone(), &env.ns.name);
    let planted_for: ActorTokenRequest = serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
        "metadata": { "name": "bait" },
        "spec": {
            "userId": "user_2abcImpersonated", "actor": { "sub": "user_2xyzSupport" },
            "instanceRef": { "kind": "ClerkInstance", "name": "not-yet" }
        }
    }))
    .unwrap();
    let bait = requests
        .create(&PostParams::default(), &planted_for)
        .await
        .unwrap();
    let planted: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "bait",
            "labels": { "app.kubernetes.io/managed-by": "actor-token-operator" },
            "ownerReferences": [{
                "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
                "name": "bait", "uid": bait.uid().unwrap(), "controller": true
            }]
        },
        "type": "actortokens.dev/actor-token",
        "stringData": {
            "tokenId": victim_token, "url": "https://example.invalid/", "token": "x",
            "expiresAt": "2099-01-01T00:00:00Z"
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, &env.ns.name)
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();

    // The operator doesn't take it as the request's: the request fails, the Secret untouched.
    let failed = env.wait_phase("bait", Phase::Failed).await;
    assert_eq!(ready_condition(&failed).unwrap().reason, "SecretConflict");
    requests
        .delete("bait", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("bait").await;
    assert_eq!(
        env.sim.token(&victim_token).unwrap().status,
        TokenStatus::Pending,
        "the victim's token is untouched"
    );
    assert_eq!(
        env.wait_phase("victim", Phase::Issued).await.metadata.uid,
        victim.metadata.uid
    );
    env.assert_no_credential_leaked().await;
}

#[tokio::test]
async fn a_token_id_written_into_the_status_gets_nothing_revoked() {
    let env = Env::start("rev-status").await;
    // Requests from before the operator's seal key count as an upgrade's; these come after.
    env.seal_key().await;
    env.create_request("victim", json!({ "userId": "user_2victim" }))
        .await;
    env.create_request("tampered", json!({ "userId": "user_2tampered" }))
        .await;
    let victim_token = token_of(&env.wait_phase("victim", Phase::Issued).await);
    let own_token = token_of(&env.wait_phase("tampered", Phase::Issued).await);

    // Someone who may write requests' status puts the victim's token where tokens wait to be
    // revoked, and into the status as the request's own token.
    let client = mallory(
        &env,
        json!([
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["list"] },
            { "apiGroups": ["actortokens.dev"], "resources": ["actortokenrequests/status"], "verbs": ["patch", "update"] }
        ]),
    )
    .await;
    let requests = Api::<ActorTokenRequest>::namespaced(client, &env.ns.name);
    let in_an_hour =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(1);
    let forged = json!({ "status": {
        "pendingRevokes": [{ "tokenId": victim_token, "expiresAt": in_an_hour.to_string() }]
    } });
    // The admission policies refuse such a write; the seals are what stands where they don't
    // reach (a namespace they skip, a cluster without them). Here they skip this namespace
    // from now on, as soon as the API server sees its new label.
    support::admission::apply_yaml(
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": env.ns.name, "labels": { POLICIES_OFF_LABEL: "off" } } })
            .to_string(),
    );
    eventually(WAIT, "the forged status to get past admission", || async {
        requests
            .patch_status("tampered", &PatchParams::default(), &Patch::Merge(&forged))
            .await
            .ok()
    })
    .await;

    let note = event_note(&env, "TokenRecordRejected").await;
    assert!(note.contains(&victim_token), "{note}");
    env.settle("tampered").await;
    let after = env.requests.get("tampered").await.unwrap();
    let status = after.status.unwrap();
    assert!(
        status.pending_revokes.is_empty(),
        "the forged entry is dropped"
    );
    assert_eq!(status.token_id.as_deref(), Some(own_token.as_str()));
    assert_eq!(
        env.sim.token(&victim_token).unwrap().status,
        TokenStatus::Pending,
        "the victim's token is untouched"
    );
    assert_eq!(
        env.sim.token(&own_token).unwrap().status,
        TokenStatus::Pending
    );

    // The request's own token, swapped for the victim's and expired by the forger: the
    // operator neither expires nor revokes on that word.
    let swapped = json!({ "status": {
        "tokenId": victim_token,
        "expiresAt": k8s_openapi::jiff::Timestamp::now().to_string()
    } });
    requests
        .patch_status("tampered", &PatchParams::default(), &Patch::Merge(&swapped))
        .await
        .unwrap();
    env.requests
        .delete("tampered", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("tampered").await;
    assert_eq!(
        env.sim.token(&victim_token).unwrap().status,
        TokenStatus::Pending,
        "the victim's token is untouched"
    );
    assert_eq!(
        env.sim.token(&own_token).unwrap().status,
        TokenStatus::Revoked,
        "the request's own token (from its Secret) is what was revoked"
    );
}
