//! The token records a request carries, checked against their seals before anything is
//! decided on them: `status.tokenId` (with its key and seal) and each `status.pendingRevokes`
//! entry. (The Secret's record is checked where the Secret is read, `secret::secret_state`.)
//! Pure.

use k8s_openapi::jiff::Timestamp;

use super::{
    decide::TokenToRevoke,
    seal::{SealKey, TokenRecord, Trust},
};
use crate::{
    api::{ActorTokenRequest, PendingRevoke, Phase},
    clerk::KeyFingerprint,
};

/// A request with only the token records the operator wrote, and the IDs of those it
/// didn't (dropped from `request`).
#[derive(Clone, Debug)]
pub struct Vetted {
    pub request: ActorTokenRequest,
    pub untrusted: Vec<String>,
}

/// Checks every token record in `request`'s status against its seal, at `now`.
pub fn vet(request: &ActorTokenRequest, key: &SealKey, now: Timestamp) -> Vetted {
    let mut vetted = request.clone();
    let mut untrusted = Vec::new();
    if let Some(status) = vetted.status.as_mut() {
        if let Some(token_id) = status.token_id.clone() {
            let record = TokenToRevoke {
                token_id: token_id.clone(),
                expires_at: status.expires_at.as_ref().map(|t| t.0),
                key: parse_key(status.key_fingerprint.as_deref()),
                seal: status.token_seal.clone(),
            };
            if !trust(key, request, &record, now).is_trusted() {
                untrusted.push(token_id);
                status.token_id = None;
                status.token_seal = None;
                status.key_fingerprint = None;
                status.issued_at = None;
                status.expires_at = None;
                // Issued on the word of a forged record: decide again from the Secret.
                if status.phase == Some(Phase::Issued) {
                    status.phase = Some(Phase::Pending);
                }
            }
        }
        status.pending_revokes.retain(|pending| {
            let trusted = trust(key, request, &pending_token(pending), now).is_trusted();
            if !trusted {
                untrusted.push(pending.token_id.clone());
            }
            trusted
        });
    }
    Vetted {
        request: vetted,
        untrusted,
    }
}

/// How far the record of `token` in `request` can be trusted at `now`.
pub fn trust(
    key: &SealKey,
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    now: Timestamp,
) -> Trust {
    let uid = request.metadata.uid.as_deref().unwrap_or_default();
    key.trust(
        &record(uid, token),
        token.seal.as_deref(),
        request.metadata.creation_timestamp.as_ref().map(|t| t.0),
        now,
    )
}

/// The seal for the record of `token` in `request`.
pub fn seal(key: &SealKey, request: &ActorTokenRequest, token: &TokenToRevoke) -> String {
    let uid = request.metadata.uid.as_deref().unwrap_or_default();
    key.seal(&record(uid, token))
}

/// A `pendingRevokes` entry as a token to revoke.
pub fn pending_token(pending: &PendingRevoke) -> TokenToRevoke {
    TokenToRevoke {
        token_id: pending.token_id.clone(),
        expires_at: Some(pending.expires_at.0),
        key: parse_key(pending.key_fingerprint.as_deref()),
        seal: pending.seal.clone(),
    }
}

/// A token to revoke as a `pendingRevokes` entry; `latest` stands in for an unknown expiry.
pub fn pending_entry(token: &TokenToRevoke, latest: Timestamp) -> PendingRevoke {
    PendingRevoke {
        token_id: token.token_id.clone(),
        expires_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            token.expires_at.unwrap_or(latest),
        ),
        key_fingerprint: token.key.map(|k| k.to_string()),
        seal: token.seal.clone(),
    }
}

pub fn parse_key(text: Option<&str>) -> Option<KeyFingerprint> {
    text.and_then(|k| k.parse().ok())
}

fn record<'a>(uid: &'a str, token: &'a TokenToRevoke) -> TokenRecord<'a> {
    TokenRecord {
        request_uid: uid,
        token_id: &token.token_id,
        expires_at: token.expires_at,
        key: token.key,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::api::ActorTokenRequestStatus;

    fn key() -> SealKey {
        SealKey::new(vec![9; 32], Timestamp::from_second(1_700_000_000).unwrap()).unwrap()
    }

    fn soon() -> Timestamp {
        Timestamp::from_second(1_700_000_100).unwrap()
    }

    fn request(created: i64) -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": {
                "name": "r", "namespace": "team", "uid": "uid-1",
                "creationTimestamp": Timestamp::from_second(created).unwrap().to_string(),
            },
            "spec": { "userId": "user_abc", "actor": { "sub": "user_support" } }
        }))
        .unwrap()
    }

    fn token(id: &str) -> TokenToRevoke {
        TokenToRevoke {
            token_id: id.into(),
            expires_at: Some(Timestamp::from_second(1_800_000_000).unwrap()),
            key: Some("00000000000000aa".parse().unwrap()),
            seal: None,
        }
    }

    fn issued(mut r: ActorTokenRequest, token: &TokenToRevoke) -> ActorTokenRequest {
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Issued),
            token_id: Some(token.token_id.clone()),
            expires_at: token.expires_at.map(Time),
            key_fingerprint: token.key.map(|k| k.to_string()),
            token_seal: token.seal.clone(),
            ..Default::default()
        });
        r
    }

    #[test]
    fn records_the_operator_sealed_are_kept() {
        let key = key();
        let r = request(1_750_000_000);
        let mut t = token("act_1");
        t.seal = Some(seal(&key, &r, &t));
        let mut pending = token("act_0");
        pending.seal = Some(seal(&key, &r, &pending));
        let mut r = issued(r, &t);
        r.status.as_mut().unwrap().pending_revokes =
            vec![pending_entry(&pending, Timestamp::UNIX_EPOCH)];
        let vetted = vet(&r, &key, soon());
        assert!(vetted.untrusted.is_empty());
        assert_eq!(vetted.request.status, r.status);
    }

    #[test]
    fn a_token_id_written_by_someone_else_is_dropped_and_named() {
        let key = key();
        let r = request(1_750_000_000);
        // Another request's token, in this request's status: no seal, or this one's seal.
        let mut mine = token("act_mine");
        mine.seal = Some(seal(&key, &r, &mine));
        let mut forged = token("act_victim");
        forged.seal = mine.seal.clone();
        let mut r = issued(r, &forged);
        r.status.as_mut().unwrap().pending_revokes = vec![
            pending_entry(&token("act_victim_2"), Timestamp::UNIX_EPOCH),
            pending_entry(&mine, Timestamp::UNIX_EPOCH),
        ];
        let vetted = vet(&r, &key, soon());
        assert_eq!(vetted.untrusted, vec!["act_victim", "act_victim_2"]);
        let status = vetted.request.status.unwrap();
        assert_eq!(status.token_id, None);
        assert_eq!(
            status.phase,
            Some(Phase::Pending),
            "decided again from the Secret"
        );
        assert_eq!(status.pending_revokes.len(), 1);
        assert_eq!(status.pending_revokes[0].token_id, "act_mine");
    }

    #[test]
    fn an_unsealed_record_from_before_the_key_is_trusted() {
        let r = issued(request(1_600_000_000), &token("act_old"));
        let vetted = vet(&r, &key(), soon());
        assert!(vetted.untrusted.is_empty());
        assert_eq!(
            vetted.request.status.unwrap().token_id.as_deref(),
            Some("act_old")
        );
    }
}
