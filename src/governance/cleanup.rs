//! Deleting finished requests, where an instance asks for it. Never a request a GitOps tool
//! manages: the tool would apply it again, and a new token would be minted.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{ActorTokenRequest, conditions};

/// Labels and annotations by which Argo CD and Flux mark what they manage.
pub const GITOPS_LABELS: [&str; 4] = [
    // Argo CD's default tracking label (`application.resourceTrackingMethod: label`).
    "app.kubernetes.io/instance",
    "argocd.argoproj.io/instance",
    // Flux's kustomize-controller and helm-controller.
    "kustomize.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/name",
];
pub const GITOPS_ANNOTATIONS: [&str; 1] = [
    // Argo CD's annotation tracking (`annotation` and `annotation+label`).
    "argocd.argoproj.io/tracking-id",
];

/// Is this request applied and kept by a GitOps tool?
pub fn managed_by_gitops(request: &ActorTokenRequest) -> bool {
    let meta = &request.metadata;
    let has = |map: &Option<std::collections::BTreeMap<String, String>>, keys: &[&str]| {
        map.as_ref()
            .is_some_and(|m| keys.iter().any(|k| m.contains_key(*k)))
    };
    has(&meta.labels, &GITOPS_LABELS) || has(&meta.annotations, &GITOPS_ANNOTATIONS)
}

/// When the request finished: the transition time of the condition its final phase shows.
pub fn finished_at(request: &ActorTokenRequest) -> Option<Timestamp> {
    let status = request.status.as_ref()?;
    if !status.phase?.is_settled() {
        return None;
    }
    status
        .conditions
        .iter()
        .filter(|c| {
            c.status == "True"
                && [
                    conditions::EXPIRED,
                    conditions::REVOKED,
                    conditions::STALLED,
                ]
                .contains(&c.type_.as_str())
        })
        .map(|c| c.last_transition_time.0)
        .max()
}

/// When a finished request should be deleted, given the instance's `deleteFinishedAfter`;
/// `None`: never (not finished, no such setting, or managed by a GitOps tool).
pub fn delete_at(request: &ActorTokenRequest, after: Option<Duration>) -> Option<Timestamp> {
    let after = SignedDuration::try_from(after?).ok()?;
    if managed_by_gitops(request) || request.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some(finished_at(request)? + after)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use serde_json::json;

    use super::*;
    use crate::api::{ActorTokenRequestStatus, Phase};

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn finished(phase: Phase, condition: &str) -> ActorTokenRequest {
        let mut r: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": "t", "namespace": "ns" },
            "spec": { "userId": "user_a", "actor": { "sub": "user_b" } }
        }))
        .unwrap();
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(phase),
            conditions: vec![Condition {
                type_: condition.into(),
                status: "True".into(),
                reason: "R".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(at(0)),
            }],
            ..Default::default()
        });
        r
    }

    #[test]
    fn finished_requests_go_after_the_instance_says() {
        for (phase, condition) in [
            (Phase::Expired, conditions::EXPIRED),
            (Phase::Revoked, conditions::REVOKED),
            (Phase::Failed, conditions::STALLED),
            (Phase::Denied, conditions::STALLED),
        ] {
            let r = finished(phase, condition);
            assert_eq!(delete_at(&r, Some(HOUR)), Some(at(3600)), "{phase:?}");
            assert_eq!(delete_at(&r, None), None, "{phase:?}");
        }
        // Not finished: never.
        let issued = finished(Phase::Issued, conditions::READY);
        assert_eq!(delete_at(&issued, Some(HOUR)), None);
    }

    #[test]
    fn a_request_a_gitops_tool_manages_is_never_deleted() {
        for (label, annotation) in [
            (Some("app.kubernetes.io/instance"), None),
            (Some("kustomize.toolkit.fluxcd.io/name"), None),
            (None, Some("argocd.argoproj.io/tracking-id")),
        ] {
            let mut r = finished(Phase::Expired, conditions::EXPIRED);
            if let Some(l) = label {
                r.metadata.labels = Some([(l.to_string(), "app".to_string())].into());
            }
            if let Some(a) = annotation {
                r.metadata.annotations = Some([(a.to_string(), "app:x/y".to_string())].into());
            }
            assert!(managed_by_gitops(&r));
            assert_eq!(delete_at(&r, Some(HOUR)), None);
        }
        let mut other = finished(Phase::Expired, conditions::EXPIRED);
        other.metadata.labels = Some([("team".to_string(), "support".to_string())].into());
        assert!(!managed_by_gitops(&other));
    }
}
