//! The Secret that carries a token's sign-in link: what it holds, and whose it is.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    jiff::Timestamp,
};
use kube::Resource;

use super::{
    decide::{DeliveredToken, SecretState},
    records::{parse_key, trust},
    seal::SealKey,
};
use crate::{
    api::{ActorTokenRequest, MANAGED_BY, MANAGED_BY_LABEL, SECRET_TYPE},
    clerk::KeyFingerprint,
};

/// Names the request a Secret belongs to, for people and for selecting.
pub const REQUEST_LABEL: &str = "actortokens.dev/request";

/// What the link's Secret holds. `url` and `token` are credentials; `tokenId`, the key's
/// fingerprint, the expiry and the seal are the token's durable record; the rest is context
/// for whoever reads the Secret.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub token_id: &'a str,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub key: Option<KeyFingerprint>,
    pub seal: &'a str,
}

/// The Secret for `request`, owned by it (a controller ownerReference), so that Kubernetes
/// deletes it with the request even if the operator is gone. Without `blockOwnerDeletion`:
/// the finalizer already holds the request until the Secret is dealt with, and setting it
/// would need `update` on `actortokenrequests/finalizers` where
/// OwnerReferencesPermissionEnforcement is on.
pub fn secret_for(request: &ActorTokenRequest, delivery: &Delivery<'_>) -> Secret {
    let mut labels = request.spec.secret_labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(
        REQUEST_LABEL.into(),
        request.metadata.name.clone().unwrap_or_default(),
    );
    let data: BTreeMap<String, ByteString> = [
        ("url", delivery.url.to_owned()),
        ("token", delivery.token.to_owned()),
        ("tokenId", delivery.token_id.to_owned()),
        ("userId", request.spec.user_id.clone()),
        ("actorId", request.spec.actor.sub.clone()),
        ("issuedAt", delivery.issued_at.to_string()),
        ("expiresAt", delivery.expires_at.to_string()),
        (
            "keyFingerprint",
            delivery.key.map(|k| k.to_string()).unwrap_or_default(),
        ),
        ("seal", delivery.seal.to_owned()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(request.secret_name()),
            namespace: request.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!request.spec.secret_annotations.is_empty())
                .then(|| request.spec.secret_annotations.clone()),
            owner_references: request.controller_owner_ref(&()).map(|owner| {
                vec![OwnerReference {
                    block_owner_deletion: None,
                    ..owner
                }]
            }),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Whose is this Secret? Ours only if it names this very request (by UID) as its controller,
/// and the token it records, if any, carries the operator's seal (else someone who may create
/// Secrets here wrote it, perhaps naming another request's token: it is left alone, never
/// adopted, and its token never revoked).
pub fn secret_state(
    request: &ActorTokenRequest,
    secret: Option<&Secret>,
    seal: &SealKey,
    now: Timestamp,
) -> SecretState {
    let Some(secret) = secret else {
        return SecretState::Absent;
    };
    let owned = request.metadata.uid.as_deref().is_some_and(|uid| {
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o: &OwnerReference| o.controller == Some(true) && o.uid == uid)
    });
    if !owned {
        return SecretState::Foreign;
    }
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let time = |key: &str| field(key).and_then(|t| t.parse::<Timestamp>().ok());
    let Some(token_id) = field("tokenId") else {
        return SecretState::Ours { delivered: None };
    };
    let delivered = DeliveredToken {
        token_id,
        issued_at: time("issuedAt"),
        expires_at: time("expiresAt"),
        key: parse_key(field("keyFingerprint").as_deref()),
        seal: field("seal"),
    };
    if trust(seal, request, &delivered.to_revoke(), now).is_trusted() {
        SecretState::Ours {
            delivered: Some(delivered),
        }
    } else {
        SecretState::Foreign
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": "support-1", "namespace": "team", "uid": "uid-1", "creationTimestamp": "2026-01-01T00:00:00Z" },
            "spec": {
                "userId": "user_abc",
                "actor": { "sub": "user_support" },
                "secretName": "link",
                "secretLabels": { "team": "support" },
                "secretAnnotations": { "ticket": "T-1" }
            }
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_100).unwrap()
    }

    fn seal_key() -> SealKey {
        SealKey::new(vec![3; 32], Timestamp::from_second(1_700_000_000).unwrap()).unwrap()
    }

    fn key() -> Option<KeyFingerprint> {
        Some("00000000000000aa".parse().unwrap())
    }

    /// The seal of act_1 for `request()`.
    fn sealed() -> String {
        crate::reconcile::records::seal(
            &seal_key(),
            &request(),
            &crate::reconcile::decide::TokenToRevoke {
                token_id: "act_1".into(),
                expires_at: Some(Timestamp::from_second(1_800_000_000).unwrap()),
                key: key(),
                seal: None,
            },
        )
    }

    fn delivery(seal: &str) -> Delivery<'_> {
        Delivery {
            url: "https://example/ticket",
            token: "tok",
            token_id: "act_1",
            issued_at: Timestamp::from_second(1_799_996_400).unwrap(),
            expires_at: Timestamp::from_second(1_800_000_000).unwrap(),
            key: key(),
            seal,
        }
    }

    #[test]
    fn the_secret_holds_the_link_and_its_context_and_is_owned_by_the_request() {
        let seal = sealed();
        let secret = secret_for(&request(), &delivery(&seal));
        assert_eq!(secret.metadata.name.as_deref(), Some("link"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(secret.type_.as_deref(), Some(SECRET_TYPE));
        let data = secret.data.as_ref().unwrap();
        let get = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        assert_eq!(get("url"), "https://example/ticket");
        assert_eq!(get("token"), "tok");
        assert_eq!(get("tokenId"), "act_1");
        assert_eq!(get("userId"), "user_abc");
        assert_eq!(get("actorId"), "user_support");
        assert_eq!(get("issuedAt"), "2027-01-15T07:00:00Z");
        assert_eq!(get("expiresAt"), "2027-01-15T08:00:00Z");
        assert_eq!(get("keyFingerprint"), "00000000000000aa");
        assert_eq!(get("seal"), seal);
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "support");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            secret.metadata.annotations.as_ref().unwrap()["ticket"],
            "T-1"
        );
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ActorTokenRequest", "uid-1", Some(true))
        );
        assert_eq!(
            owner.block_owner_deletion, None,
            "needs no finalizers update"
        );
    }

    #[test]
    fn only_a_secret_controlled_by_this_very_request_is_ours() {
        let request = request();
        let seal = sealed();
        let ours = secret_for(&request, &delivery(&seal));
        let state = |secret: Option<&Secret>| secret_state(&request, secret, &seal_key(), now());
        assert_eq!(
            state(Some(&ours)),
            SecretState::Ours {
                delivered: Some(DeliveredToken {
                    token_id: "act_1".into(),
                    issued_at: Some(Timestamp::from_second(1_799_996_400).unwrap()),
                    expires_at: Some(Timestamp::from_second(1_800_000_000).unwrap()),
                    key: key(),
                    seal: Some(seal.clone()),
                })
            }
        );
        assert_eq!(state(None), SecretState::Absent);

        let mut plain = ours.clone();
        plain.metadata.owner_references = None;
        assert_eq!(state(Some(&plain)), SecretState::Foreign);

        // A request of the same name that was deleted and created again is another request.
        let mut older = ours.clone();
        older.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-0".into();
        assert_eq!(state(Some(&older)), SecretState::Foreign);

        let mut not_controller = ours;
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(state(Some(&not_controller)), SecretState::Foreign);
    }

    #[test]
    fn a_secret_naming_a_token_the_operator_did_not_record_is_not_ours() {
        // Someone who may create Secrets here made the request's Secret first, owned by the
        // request, naming another request's token: its seal is missing or wrong.
        let request = request();
        let state = |secret: &Secret| secret_state(&request, Some(secret), &seal_key(), now());
        let mut forged = secret_for(&request, &delivery(""));
        assert_eq!(state(&forged), SecretState::Foreign);
        let seal = sealed();
        forged = secret_for(&request, &delivery(&seal));
        forged
            .data
            .as_mut()
            .unwrap()
            .insert("tokenId".into(), ByteString(b"act_victim".to_vec()));
        assert_eq!(state(&forged), SecretState::Foreign);
        // One holding no token at all is the request's, to be written over.
        let mut empty = secret_for(&request, &delivery(&seal));
        empty.data.as_mut().unwrap().remove("tokenId");
        assert_eq!(state(&empty), SecretState::Ours { delivered: None });
    }
}
