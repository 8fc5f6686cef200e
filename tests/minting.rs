//! No endless minting: a request never loops mint → fail → revoke. A Secret the API server
//! will always refuse fails the request after one token, and no request mints more than
//! `MAX_TOKENS_PER_REQUEST` tokens over its life, whatever goes wrong.

mod support;

use actor_token_operator::{api::Phase, reconcile::decide::MAX_TOKENS_PER_REQUEST};
use clerk_sim::{Faults, TokenStatus};
use serde_json::json;
use support::env::{Env, ready_condition};

#[tokio::test]
async fn a_label_the_api_server_refuses_fails_the_request_after_one_token() {
    let mut env = Env::start("mint-label").await;
    // A label value the API server refuses (spaces, "!") but today's schema lets through.
    env.create_request(
        "mislabelled",
        json!({ "userId": "user_2mislabelled", "secretLabels": { "team": "support desk!" } }),
    )
    .await;
    let failed = env.wait_phase("mislabelled", Phase::Failed).await;
    let ready = ready_condition(&failed).unwrap();
    assert_eq!(ready.reason, "SecretRefused");
    assert!(
        ready.message.contains("support desk!") && ready.message.contains("Invalid value"),
        "the message says what was refused: {}",
        ready.message
    );
    env.settle("mislabelled").await;
    let tokens = env.sim.tokens();
    assert_eq!(tokens.len(), 1, "one token minted: {tokens:?}");
    assert_eq!(tokens[0].status, TokenStatus::Revoked);
    assert_eq!(failed.status.unwrap().tokens_minted, Some(1));
    env.assert_events("SecretRefused", 1).await;
    env.assert_no_credential_leaked().await;
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
