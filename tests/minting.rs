//! No endless minting: a request never loops mint → fail → revoke. A Secret the API server
//! will always refuse (here: turned away by the cluster's admission policy) fails the request after one token, and no request mints more than
//! `MAX_TOKENS_PER_REQUEST` tokens over its life, whatever goes wrong.

mod support;

use actor_token_operator::{api::Phase, reconcile::decide::MAX_TOKENS_PER_REQUEST};
use clerk_sim::{Faults, TokenStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use support::{
    env::{Env, WAIT, ready_condition},
    eventually,
};

#[tokio::test]
async fn a_secret_the_api_server_refuses_fails_the_request_after_one_token() {
    let mut env = Env::start("mint-refused").await;
    // The cluster's own rule, as an admission policy on Secrets in this namespace: the API
    // server turns the link's Secret away however often it is written.
    let ns = env.ns.name.clone();
    let policy = format!("mint-refused-{ns}");
    env.apply(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": { "name": policy },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": { "resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]
            }] },
            "validations": [{
                "expression": "object.metadata.?labels.?team.orValue('') != 'support-desk'",
                "message": "no Secrets for team support-desk here"
            }]
        }
    }))
    .await;
    env.apply(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": { "name": policy },
        "spec": {
            "policyName": policy, "validationActions": ["Deny"],
            "matchResources": { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } } }
        }
    }))
    .await;
    // A new policy takes effect a moment later: wait until it turns a Secret away.
    eventually(WAIT, "the policy to refuse Secrets", || async {
        let probe: Secret = serde_json::from_value(
            json!({ "metadata": { "name": "probe", "labels": { "team": "support-desk" } } }),
        )
        .unwrap();
        match env.secrets.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(status)) if status.code == 422 => Some(()),
            Ok(_) => {
                env.secrets
                    .delete("probe", &DeleteParams::default())
                    .await
                    .unwrap();
                None
            }
            Err(e) => panic!("probing the policy: {e}"),
        }
    })
    .await;
    env.create_request(
        "refused",
        json!({ "userId": "user_2refused", "secretLabels": { "team": "support-desk" } }),
    )
    .await;
    let failed = env.wait_phase("refused", Phase::Failed).await;
    let ready = ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "SecretRefused");
    assert!(
        ready
            .message
            .contains("no Secrets for team support-desk here"),
        "the message says what refused it: {}",
        ready.message
    );
    env.settle("refused").await;
    let tokens = env.sim.tokens();
    assert_eq!(tokens.len(), 1, "one token minted: {tokens:?}");
    assert_eq!(tokens[0].status, TokenStatus::Revoked);
    assert_eq!(failed.status.unwrap().tokens_minted, Some(1));
    env.assert_events("SecretRefused", 1).await;
    env.assert_no_credential_leaked().await;
    // Left behind, it would only match this test's namespace, which is gone by then.
    for kind in [
        "validatingadmissionpolicybinding",
        "validatingadmissionpolicy",
    ] {
        let _ = support::control_plane()
            .kubectl()
            .args(["delete", kind, &policy, "--ignore-not-found"])
            .status();
    }
}

#[tokio::test]
async fn a_request_mints_no_more_than_its_share_whatever_goes_wrong() {
    // Every create's answer is lost: each attempt may leave a token no one can revoke.
    let env = Env::start_with(
        "mint-cap",
        Faults {
            drop_create_share: 1.0,
            ..Faults::default()
        },
    )
    .await;
    env.create_request("unlucky", json!({})).await;
    let failed = env.wait_phase("unlucky", Phase::Failed).await;
    let ready = ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "MintLimitReached");
    let status = failed.status.clone().unwrap();
    assert_eq!(status.tokens_minted, Some(MAX_TOKENS_PER_REQUEST));
    assert_eq!(status.lost_tokens, Some(MAX_TOKENS_PER_REQUEST));
    env.settle("unlucky").await;
    assert_eq!(
        env.sim.stats().create.total,
        u64::from(MAX_TOKENS_PER_REQUEST),
        "no create after the last one allowed"
    );
    assert_eq!(
        env.metric("actor_token_operator_tokens_minted_total").await,
        Some(f64::from(MAX_TOKENS_PER_REQUEST))
    );
    assert_eq!(
        env.metric("actor_token_operator_mint_limits_reached_total")
            .await,
        Some(1.0)
    );
}
