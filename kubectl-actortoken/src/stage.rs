//! Where a request is, read from its status: what `request` waits for next (the operator,
//! approval, the instance, Clerk, the Secret), or how it ended. Pure, so each case is a test.

use actor_token_operator::{
    api::{ActorTokenRequest, Phase, conditions},
    governance::{
        gate::{APPROVED, DENIED, decision},
        reason,
    },
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};

/// What the request waits for, or where it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The operator has not looked at this request yet (no status, or an older generation).
    Operator,
    /// The instance requires a second person's approval.
    Approval,
    /// The instance isn't ready (its key Secret, say).
    Instance { message: String },
    /// Clerk is being asked, or retried.
    Clerk { reason: String, message: String },
    /// Anything else the operator waits on, as it says it.
    Other { reason: String, message: String },
    /// Issued: the link is in this Secret.
    Issued { secret: String },
    /// It ended without a link, and none will come.
    Ended(Ending),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Denied { by: Option<String>, message: String },
    Failed { reason: String, message: String },
    Expired { at: Option<Timestamp> },
    Revoked { reason: String, message: String },
}

impl Stage {
    /// The spinner's text: what we wait for.
    pub fn waiting_for(&self) -> String {
        match self {
            Stage::Operator => "the operator to pick up the request".into(),
            Stage::Approval => "approval".into(),
            Stage::Instance { message } => format!("the Clerk instance: {message}"),
            Stage::Clerk { reason, message } => format!("Clerk ({reason}): {message}"),
            Stage::Other { reason, message } => format!("the operator ({reason}): {message}"),
            Stage::Issued { secret } => format!("the Secret {secret}"),
            Stage::Ended(ending) => ending.to_string(),
        }
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Denied { by, message } => write!(
                f,
                "denied by {}: {message}",
                by.as_deref().unwrap_or("an approver")
            ),
            Ending::Failed { reason, message } => write!(f, "failed ({reason}): {message}"),
            Ending::Expired { at: Some(at) } => {
                write!(f, "expired at {}", crate::human::timestamp(*at))
            }
            Ending::Expired { at: None } => write!(f, "expired"),
            Ending::Revoked { reason, message } => write!(f, "revoked ({reason}): {message}"),
        }
    }
}

fn find<'a>(request: &'a ActorTokenRequest, type_: &str) -> Option<&'a Condition> {
    request
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Where `request` is. A denial counts as soon as it is there (the operator will only make it
/// final); everything else as the operator last reported it.
pub fn of(request: &ActorTokenRequest) -> Stage {
    let status = request.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    if let Some(d) = decision(request).filter(|d| d.kind == DENIED) {
        // The operator may still discard a denial that can't stand (the requester's own, say);
        // until it has, and unless the phase says otherwise, the request is denied.
        if phase.is_none_or(|p| p == Phase::Denied || p == Phase::Pending) {
            return Stage::Ended(Ending::Denied {
                by: d.by.map(|u| u.username.clone()),
                message: d.message.to_string(),
            });
        }
    }
    let observed = status.and_then(|s| s.observed_generation);
    let generation = request.metadata.generation;
    let seen = match (observed, generation) {
        (Some(o), Some(g)) => o >= g,
        (Some(o), None) => o > 0,
        _ => false,
    };
    let ready = request
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY));
    let said = |c: Option<&Condition>| {
        c.map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    };
    match phase {
        Some(Phase::Issued) => Stage::Issued {
            secret: status
                .and_then(|s| s.secret_name.clone())
                .unwrap_or_else(|| request.secret_name()),
        },
        Some(Phase::Denied) => {
            let d = decision(request);
            let (_, message) = said(ready);
            Stage::Ended(Ending::Denied {
                by: d.as_ref().and_then(|d| d.by.map(|u| u.username.clone())),
                message: d.map(|d| d.message.to_string()).unwrap_or(message),
            })
        }
        Some(Phase::Failed) => {
            let (reason, message) = said(find(request, conditions::STALLED).or(ready));
            Stage::Ended(Ending::Failed { reason, message })
        }
        Some(Phase::Expired) => Stage::Ended(Ending::Expired {
            at: status.and_then(|s| s.expires_at.as_ref()).map(|t| t.0),
        }),
        Some(Phase::Revoked) => {
            let (reason, message) = said(find(request, conditions::REVOKED));
            Stage::Ended(Ending::Revoked { reason, message })
        }
        Some(Phase::Pending) | None if !seen => Stage::Operator,
        Some(Phase::Pending) | None => {
            let (reason, message) = said(ready);
            if reason == reason::AWAITING_APPROVAL {
                // An approval given but not yet acted on still reads AwaitingApproval for a
                // moment: it is Clerk's turn next.
                if find(request, APPROVED).is_some() {
                    return Stage::Clerk {
                        reason: "Approved".into(),
                        message: "approved; the operator asks Clerk next".into(),
                    };
                }
                Stage::Approval
            } else if reason.starts_with("Clerk") {
                Stage::Clerk { reason, message }
            } else if reason.starts_with("Instance") {
                Stage::Instance { message }
            } else if reason.is_empty() {
                Stage::Operator
            } else {
                Stage::Other { reason, message }
            }
        }
    }
}

/// Who approved (or denied) the request, as admission stamped it, if anyone did.
pub fn decided_by(request: &ActorTokenRequest) -> Option<(&'static str, String)> {
    let d = decision(request)?;
    Some((d.kind, d.by.map(|u| u.username.clone())?))
}

#[cfg(test)]
mod tests {
    use actor_token_operator::api::{ActorTokenRequestStatus, UserInfo};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn request(generation: i64, status: Option<ActorTokenRequestStatus>) -> ActorTokenRequest {
        let mut r: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": "t-1", "namespace": "support", "generation": generation },
            "spec": { "userId": "user_2customer", "actor": { "sub": "user_2alice" } }
        }))
        .unwrap();
        r.status = status;
        r
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(1_800_000_000).unwrap()),
        }
    }

    fn with(phase: Phase, conditions: Vec<Condition>) -> ActorTokenRequest {
        request(
            1,
            Some(ActorTokenRequestStatus {
                phase: Some(phase),
                observed_generation: Some(1),
                conditions,
                ..Default::default()
            }),
        )
    }

    fn waiting(reason: &str, message: &str) -> Vec<Condition> {
        vec![
            condition("Ready", "False", reason, message),
            condition("Reconciling", "True", reason, message),
        ]
    }

    #[test]
    fn a_request_the_operator_has_not_seen_waits_for_the_operator() {
        assert_eq!(of(&request(1, None)), Stage::Operator);
        // The CRD's status default: observedGeneration 0.
        let default = ActorTokenRequestStatus {
            observed_generation: Some(0),
            ..Default::default()
        };
        assert_eq!(of(&request(1, Some(default))), Stage::Operator);
    }

    #[test]
    fn awaiting_approval_waits_for_an_approver() {
        let r = with(
            Phase::Pending,
            waiting("AwaitingApproval", "needs approval"),
        );
        assert_eq!(of(&r), Stage::Approval);
        assert_eq!(of(&r).waiting_for(), "approval");
    }

    #[test]
    fn once_approved_it_is_clerks_turn_even_before_the_operator_says_so() {
        let mut conditions = waiting("AwaitingApproval", "needs approval");
        conditions.push(condition("Approved", "True", "KubectlActortoken", "ok"));
        let stage = of(&with(Phase::Pending, conditions));
        assert!(matches!(stage, Stage::Clerk { .. }), "{stage:?}");
    }

    #[test]
    fn clerk_and_instance_waits_say_why() {
        let r = with(
            Phase::Pending,
            waiting("ClerkUnavailable", "Clerk answered 503"),
        );
        assert_eq!(
            of(&r).waiting_for(),
            "Clerk (ClerkUnavailable): Clerk answered 503"
        );
        let r = with(
            Phase::Pending,
            waiting("InstanceNotReady", "Secret clerk-key not found"),
        );
        assert_eq!(
            of(&r),
            Stage::Instance {
                message: "Secret clerk-key not found".into()
            }
        );
        let r = with(Phase::Pending, waiting("Revoking", "revoking an old token"));
        assert!(matches!(of(&r), Stage::Other { .. }));
    }

    #[test]
    fn issued_points_at_the_secret_the_status_names() {
        let mut r = with(
            Phase::Issued,
            vec![condition("Ready", "True", "Issued", "")],
        );
        assert_eq!(
            of(&r),
            Stage::Issued {
                secret: "t-1".into()
            }
        );
        r.status.as_mut().unwrap().secret_name = Some("link".into());
        assert_eq!(
            of(&r),
            Stage::Issued {
                secret: "link".into()
            }
        );
    }

    #[test]
    fn denied_ends_with_who_and_why_as_soon_as_the_condition_is_there() {
        let bob = UserInfo {
            username: "bob".into(),
            ..Default::default()
        };
        let mut r = with(
            Phase::Pending,
            waiting("AwaitingApproval", "needs approval"),
        );
        let status = r.status.as_mut().unwrap();
        status.conditions.push(condition(
            "Denied",
            "True",
            "KubectlActortoken",
            "no ticket",
        ));
        status.decided_by = Some(bob);
        let expected = Stage::Ended(Ending::Denied {
            by: Some("bob".into()),
            message: "no ticket".into(),
        });
        assert_eq!(of(&r), expected);
        r.status.as_mut().unwrap().phase = Some(Phase::Denied);
        assert_eq!(of(&r), expected);
        assert_eq!(decided_by(&r), Some(("Denied", "bob".into())));
    }

    #[test]
    fn failed_expired_and_revoked_end_it() {
        let r = with(
            Phase::Failed,
            vec![
                condition("Ready", "False", "ClerkRejected", "user not found"),
                condition("Stalled", "True", "ClerkRejected", "user not found"),
            ],
        );
        assert_eq!(
            of(&r),
            Stage::Ended(Ending::Failed {
                reason: "ClerkRejected".into(),
                message: "user not found".into()
            })
        );
        let mut r = with(
            Phase::Expired,
            vec![condition("Expired", "True", "Expired", "")],
        );
        r.status.as_mut().unwrap().expires_at =
            Some(Time(Timestamp::from_second(1_800_000_000).unwrap()));
        assert_eq!(of(&r).waiting_for(), "expired at 2027-01-15T08:00:00Z");
        let r = with(
            Phase::Revoked,
            vec![condition(
                "Revoked",
                "True",
                "SecretDeleted",
                "the Secret was deleted",
            )],
        );
        assert_eq!(
            of(&r).waiting_for(),
            "revoked (SecretDeleted): the Secret was deleted"
        );
    }
}
