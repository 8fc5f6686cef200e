//! What the request cache keeps of a request at rest: enough to decide that it must wait,
//! not the whole object. Pure. The reconciler decides on a compact request as it would on
//! the whole one; when that decision is anything but to wait (or a finished request's time to
//! be deleted has come), it reads the whole object from the API server first, so that no
//! write, Clerk call or audit record is ever built from a compact form's missing fields.
//!
//! Why: with thousands of requests at rest, their specs, conditions, labels and annotations
//! are most of the operator's memory (4.5 KiB per request measured by `make bench`), while
//! deciding that a request at rest must wait reads a handful of fields. A request at rest
//! changes only through a new watch event, and that event brings the whole object, which is
//! compacted again only if it is still at rest.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use super::decide::has_finalizer;
use crate::{
    api::{ActorTokenRequest, ActorTokenRequestStatus, Phase, conditions},
    governance::cleanup::{GITOPS_ANNOTATIONS, GITOPS_LABELS},
};

/// What the cache keeps of each request the watch delivers: never its managedFields, which
/// the operator never reads (dropped, not emptied: an emptied Vec keeps its capacity), and a
/// request at rest in compact form.
pub fn for_cache(request: &mut ActorTokenRequest) {
    request.metadata.managed_fields = None;
    compact(request);
}

/// Whether `request`, as the API server sent it, is at rest: nothing will happen to it until
/// a new watch event, but for an issued token's expiry and a finished request's cleanup
/// time, both of which the compact form keeps. At rest means: finished (Expired, Revoked,
/// Failed, Denied), or Issued with its token and expiry recorded; the finalizer on; not being
/// deleted; no token waiting to be revoked; its spec observed.
pub fn is_at_rest(request: &ActorTokenRequest) -> bool {
    let Some(status) = &request.status else {
        return false;
    };
    let phase_at_rest = match status.phase {
        Some(phase) if phase.is_settled() => true,
        Some(Phase::Issued) => status.token_id.is_some() && status.expires_at.is_some(),
        _ => false,
    };
    phase_at_rest
        && request.metadata.deletion_timestamp.is_none()
        && status.pending_revokes.is_empty()
        && has_finalizer(request)
        && status.observed_generation == request.metadata.generation
}

/// Strips a request at rest down to what deciding that it must wait reads; leaves any other
/// request as it is. Kept: name, namespace, UID, resourceVersion, generation, creation time
/// (the seals read it), finalizers, the labels and annotations by which a GitOps tool marks
/// what it manages (cleanup never deletes those); the spec's instance, Secret name and
/// durations; the status' token record (ID, key, seal, times), phase, Secret name, counts,
/// observed generation, and the conditions that say when it finished (without messages).
/// Dropped: whom it impersonates, the actor, the reason, the requester, the Secret's labels and
/// annotations, the request's other labels and annotations, owner references, every other
/// condition, the decider.
pub fn compact(request: &mut ActorTokenRequest) {
    if !is_at_rest(request) {
        return;
    }
    let meta = std::mem::take(&mut request.metadata);
    request.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp,
        finalizers: meta.finalizers,
        labels: only(meta.labels, &GITOPS_LABELS),
        annotations: only(meta.annotations, &GITOPS_ANNOTATIONS),
        ..ObjectMeta::default()
    };
    let spec = &mut request.spec;
    // An empty userId marks the object compact: the API server never admits one.
    spec.user_id = String::new();
    spec.requester = None;
    spec.actor.sub = String::new();
    spec.actor.extra = BTreeMap::new();
    spec.secret_labels = BTreeMap::new();
    spec.secret_annotations = BTreeMap::new();
    spec.reason = None;
    if let Some(status) = request.status.take() {
        request.status = Some(ActorTokenRequestStatus {
            phase: status.phase,
            token_id: status.token_id,
            key_fingerprint: status.key_fingerprint,
            token_seal: status.token_seal,
            secret_name: status.secret_name,
            issued_at: status.issued_at,
            expires_at: status.expires_at,
            revoked_at: status.revoked_at,
            lost_tokens: status.lost_tokens,
            tokens_minted: status.tokens_minted,
            observed_generation: status.observed_generation,
            conditions: status
                .conditions
                .into_iter()
                .filter(says_when_finished)
                .map(|c| Condition {
                    message: String::new(),
                    ..c
                })
                .collect(),
            ..ActorTokenRequestStatus::default()
        });
    }
}

/// Whether a cached request is the compact form [`compact`] made.
pub fn is_compact(request: &ActorTokenRequest) -> bool {
    request.spec.user_id.is_empty()
}

/// The conditions `governance::cleanup::finished_at` reads.
fn says_when_finished(condition: &Condition) -> bool {
    condition.status == "True"
        && [
            conditions::EXPIRED,
            conditions::REVOKED,
            conditions::STALLED,
        ]
        .contains(&condition.type_.as_str())
}

/// `map` with only the given keys, `None` when none of them is there (an empty map still
/// allocates).
fn only(map: Option<BTreeMap<String, String>>, keys: &[&str]) -> Option<BTreeMap<String, String>> {
    let kept: BTreeMap<_, _> = map?
        .into_iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::jiff::Timestamp;
    use serde_json::{Value, json};

    use super::*;
    use crate::{
        api::FINALIZER,
        governance::cleanup,
        reconcile::{
            decide::{DeliveredToken, SecretState, Step, TokenToRevoke, decide},
            records,
            seal::SealKey,
        },
    };

    const CREATED: &str = "2026-11-29T10:00:00Z";
    const EXPIRES: &str = "2026-11-29T10:15:01Z";

    fn key() -> SealKey {
        SealKey::new(vec![7; 32], "2026-11-01T00:00:00Z".parse().unwrap()).unwrap()
    }

    fn token() -> TokenToRevoke {
        TokenToRevoke {
            token_id: "act_1".into(),
            expires_at: Some(EXPIRES.parse().unwrap()),
            key: Some("0123456789abcdef".parse().unwrap()),
            seal: None,
        }
    }

    /// A request as the API server sends it, with everything a real one carries, its token
    /// record sealed with [`key`].
    fn request(status: Value) -> ActorTokenRequest {
        let mut r: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": {
                "name": "support-1", "namespace": "team", "uid": "uid-1",
                "resourceVersion": "42", "generation": 1,
                "creationTimestamp": CREATED,
                "finalizers": [FINALIZER],
                "labels": { "team": "support", "kustomize.toolkit.fluxcd.io/name": "atr" },
                "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{…}" },
                "managedFields": [{ "manager": "kubectl", "operation": "Apply" }]
            },
            "spec": {
                "requester": { "username": "alice", "groups": ["support"] },
                "userId": "user_customer", "actor": { "sub": "user_agent", "name": "Ann" },
                "expiresIn": "15m", "reason": "https://tickets.example.com/1",
                "secretName": "link", "secretLabels": { "a": "b" },
                "instanceRef": { "kind": "ClerkInstance", "name": "main" }
            },
            "status": status
        }))
        .unwrap();
        let seal = records::seal(&key(), &r, &token());
        if let Some(status) = r.status.as_mut().filter(|s| s.token_id.is_some()) {
            status.token_seal = Some(seal);
            status.key_fingerprint = token().key.map(|k| k.to_string());
        }
        r
    }

    fn issued() -> Value {
        json!({
            "phase": "Issued", "tokenId": "act_1", "secretName": "link",
            "issuedAt": "2026-11-29T10:00:01Z", "expiresAt": EXPIRES,
            "observedGeneration": 1, "tokensMinted": 1,
            "decidedBy": { "username": "bob" },
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Issued",
                "message": "The sign-in link is in Secret link", "observedGeneration": 1,
                "lastTransitionTime": "2026-11-29T10:00:01Z"
            }]
        })
    }

    fn finished(phase: &str, condition: &str) -> Value {
        let mut status = issued();
        status["phase"] = json!(phase);
        status["conditions"] = json!([
            { "type": "Ready", "status": "False", "reason": phase, "message": "done",
              "lastTransitionTime": "2026-11-29T10:15:02Z" },
            { "type": condition, "status": "True", "reason": phase, "message": "done",
              "lastTransitionTime": "2026-11-29T10:15:02Z" }
        ]);
        status
    }

    fn at_rest() -> Vec<Value> {
        vec![
            issued(),
            finished("Expired", "Expired"),
            finished("Revoked", "Revoked"),
            finished("Failed", "Stalled"),
            finished("Denied", "Stalled"),
        ]
    }

    fn compacted(mut r: ActorTokenRequest) -> ActorTokenRequest {
        for_cache(&mut r);
        r
    }

    #[test]
    fn requests_at_rest_keep_nothing_of_who_is_impersonated_or_why() {
        for status in at_rest() {
            let r = compacted(request(status.clone()));
            assert!(is_compact(&r), "{status}");
            let text = serde_json::to_string(&r).unwrap();
            for gone in [
                "user_customer",
                "user_agent",
                "alice",
                "bob",
                "tickets.example.com",
                "last-applied",
                "\"team\":\"support\"",
                "managedFields",
                "done",
            ] {
                assert!(!text.contains(gone), "{gone} kept in {text}");
            }
        }
    }

    #[test]
    fn what_deciding_to_wait_reads_is_kept() {
        let whole = request(finished("Expired", "Expired"));
        let r = compacted(whole.clone());
        assert_eq!(
            (
                &r.metadata.name,
                &r.metadata.namespace,
                &r.metadata.uid,
                &r.metadata.resource_version,
                r.metadata.generation,
                &r.metadata.creation_timestamp,
                &r.metadata.finalizers
            ),
            (
                &whole.metadata.name,
                &whole.metadata.namespace,
                &whole.metadata.uid,
                &whole.metadata.resource_version,
                whole.metadata.generation,
                &whole.metadata.creation_timestamp,
                &whole.metadata.finalizers
            )
        );
        assert_eq!(r.spec.instance_ref, whole.spec.instance_ref);
        assert_eq!(r.secret_name(), "link");
        let (s, w) = (r.status.unwrap(), whole.status.unwrap());
        assert_eq!(
            (
                &s.phase,
                &s.token_id,
                &s.key_fingerprint,
                &s.token_seal,
                &s.expires_at,
                &s.issued_at,
                s.tokens_minted
            ),
            (
                &w.phase,
                &w.token_id,
                &w.key_fingerprint,
                &w.token_seal,
                &w.expires_at,
                &w.issued_at,
                w.tokens_minted
            )
        );
    }

    #[test]
    fn requests_that_may_be_acted_on_are_kept_whole() {
        let with = |status: Value, change: fn(&mut ActorTokenRequest)| {
            let mut r = request(status);
            change(&mut r);
            r
        };
        let cases = [
            (
                "pending",
                with(
                    json!({ "phase": "Pending", "observedGeneration": 1 }),
                    |_| {},
                ),
            ),
            ("no status", with(issued(), |r| r.status = None)),
            (
                "being deleted",
                with(finished("Expired", "Expired"), |r| {
                    r.metadata.deletion_timestamp = r.metadata.creation_timestamp.clone()
                }),
            ),
            (
                "a revoke pending",
                with(finished("Expired", "Expired"), |r| {
                    r.status.as_mut().unwrap().pending_revokes =
                        vec![records::pending_entry(&token(), EXPIRES.parse().unwrap())]
                }),
            ),
            (
                "without the finalizer",
                with(finished("Expired", "Expired"), |r| {
                    r.metadata.finalizers = None
                }),
            ),
            (
                "spec not observed",
                with(finished("Expired", "Expired"), |r| {
                    r.metadata.generation = Some(2)
                }),
            ),
            (
                "issued, no token recorded",
                with(issued(), |r| r.status.as_mut().unwrap().token_id = None),
            ),
        ];
        for (what, r) in cases {
            let mut kept = r.clone();
            compact(&mut kept);
            assert_eq!(
                serde_json::to_value(&kept).unwrap(),
                serde_json::to_value(&r).unwrap(),
                "{what}"
            );
            assert!(!is_compact(&kept), "{what}");
        }
    }

    /// The decision on the compact form is the decision on the whole object whenever that is
    /// to wait, and is never to wait when the whole object's is not (the reconciler reads the
    /// whole object for anything else): for every phase at rest, Secret state and time.
    #[test]
    fn the_compact_form_waits_exactly_when_the_whole_object_does() {
        let key = key();
        let delivered = |token_id: &str| {
            Some(DeliveredToken {
                token_id: token_id.into(),
                issued_at: None,
                expires_at: Some(EXPIRES.parse().unwrap()),
                key: token().key,
                seal: None,
            })
        };
        let secrets = [
            SecretState::Absent,
            SecretState::Foreign,
            SecretState::Ours { delivered: None },
            SecretState::Ours {
                delivered: delivered("act_1"),
            },
            SecretState::Ours {
                delivered: delivered("act_2"),
            },
        ];
        let times = [
            "2026-11-29T10:05:00Z",
            EXPIRES,
            "2026-11-29T11:00:00Z",
            "2026-11-30T12:00:00Z",
        ];
        for status in at_rest() {
            let whole = request(status.clone());
            let compact = compacted(whole.clone());
            for secret in &secrets {
                for now in times {
                    let now: Timestamp = now.parse().unwrap();
                    let on = |r: &ActorTokenRequest| {
                        let vetted = records::vet(r, &key, now);
                        assert!(vetted.untrusted.is_empty(), "the seal still checks");
                        decide(&vetted.request, secret, false, now)
                    };
                    let (on_compact, on_whole) = (on(&compact), on(&whole));
                    let waits = |s: &Step| matches!(s, Step::Wait { .. });
                    assert_eq!(
                        waits(&on_compact),
                        waits(&on_whole),
                        "{status} {secret:?} {now}"
                    );
                    if waits(&on_whole) {
                        assert_eq!(on_compact, on_whole, "{status} {secret:?} {now}");
                    }
                }
            }
        }
    }

    /// Cleanup reads when a request finished and whether a GitOps tool manages it: the
    /// compact form says the same, so a managed request is never deleted on its word.
    #[test]
    fn cleanup_is_timed_on_the_compact_form_as_on_the_whole_object() {
        let after = Some(Duration::from_secs(3600));
        for status in at_rest().into_iter().skip(1) {
            let mut unmanaged = request(status.clone());
            unmanaged.metadata.labels = None;
            let managed = request(status.clone());
            assert!(cleanup::delete_at(&compacted(unmanaged.clone()), after).is_some());
            assert!(cleanup::delete_at(&compacted(managed.clone()), after).is_none());
            for whole in [unmanaged, managed] {
                let compact = compacted(whole.clone());
                assert_eq!(
                    cleanup::delete_at(&compact, after),
                    cleanup::delete_at(&whole, after),
                    "{status}"
                );
                assert_eq!(
                    cleanup::managed_by_gitops(&compact),
                    cleanup::managed_by_gitops(&whole)
                );
            }
        }
    }
}
