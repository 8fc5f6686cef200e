//! May this request have a token now? Pure: from the request, its instance's policy and what
//! was observed (the namespace's labels, the API server's answers to access reviews), to a
//! verdict. The admission policies the chart ships refuse most of this at the door; the
//! operator asks again here, just before every mint, so that a missing or broken policy never
//! opens the gate.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector},
    jiff::{SignedDuration, Timestamp},
};

use super::{reason, selector};
use crate::api::{ActorTokenRequest, InstancePolicy, UserInfo};

/// Condition types an approver adds through the status subresource.
pub const APPROVED: &str = "Approved";
pub const DENIED: &str = "Denied";

/// How far in the future an approval's time may lie before it is not believed (clock skew).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What the gate reads of the request's instance.
#[derive(Clone, Copy, Debug)]
pub struct InstanceView<'a> {
    /// How people name it: `ClusterClerkInstance default`, `ClerkInstance team/clerk`.
    pub described: &'a str,
    pub policy: &'a InstancePolicy,
    /// A ClusterClerkInstance's `namespaceSelector`.
    pub namespace_selector: Option<&'a LabelSelector>,
}

/// Why a request can't have a token, for good: shown as the reason of its `Failed` standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

fn refuse(reason: &'static str, message: String) -> Refusal {
    Refusal { reason, message }
}

/// The checks that need nothing but the request, its instance and its namespace's labels
/// (`None` when the instance has no selector, so they were not read). Gives the requester.
pub fn check_request<'r>(
    request: &'r ActorTokenRequest,
    instance: &InstanceView<'_>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<&'r UserInfo, Refusal> {
    let spec = &request.spec;
    let namespace = request.metadata.namespace.as_deref().unwrap_or_default();
    let Some(requester) = spec.requester.as_ref() else {
        return Err(refuse(
            reason::REQUESTER_UNKNOWN,
            "spec.requester is not set, so nobody can tell who asked: the request was made \
             before this operator version, or without its admission policies. Delete it and \
             create it again."
                .into(),
        ));
    };
    if let Some(selector) = instance.namespace_selector {
        let empty = BTreeMap::new();
        if !selector::matches(selector, namespace_labels.unwrap_or(&empty)) {
            return Err(refuse(
                reason::NAMESPACE_NOT_ALLOWED,
                format!(
                    "{} does not serve namespace {namespace} (its namespaceSelector does not match the namespace's labels)",
                    instance.described
                ),
            ));
        }
    }
    if let Some(users) = &instance.policy.users {
        if users.deny.contains(&spec.user_id) {
            return Err(refuse(
                reason::USER_NOT_ALLOWED,
                format!(
                    "{} may not impersonate {}: the instance's users.deny lists it",
                    instance.described, spec.user_id
                ),
            ));
        }
        if let Some(allow) = &users.allow
            && !allow.contains(&spec.user_id)
        {
            return Err(refuse(
                reason::USER_NOT_ALLOWED,
                format!(
                    "{} may not impersonate {}: the instance's users.allow does not list it",
                    instance.described, spec.user_id
                ),
            ));
        }
    }
    if let Some(bindings) = &instance.policy.actor_bindings {
        let bound = bindings.iter().any(|b| {
            b.subjects.iter().any(|s| s.matches(requester)) && b.actors.contains(&spec.actor.sub)
        });
        if !bound {
            return Err(refuse(
                reason::ACTOR_NOT_ALLOWED,
                format!(
                    "{} may not act as {} through {}: no entry of its actorBindings binds them",
                    requester.username, spec.actor.sub, instance.described
                ),
            ));
        }
    }
    Ok(requester)
}

/// The refusal for a requester the API server says may not `use` the instance.
pub fn use_forbidden(requester: &UserInfo, instance: &InstanceView<'_>) -> Refusal {
    refuse(
        reason::USE_FORBIDDEN,
        format!(
            "{} may not use {} (RBAC verb `use` on it is needed to request through it)",
            requester.username, instance.described
        ),
    )
}

/// An approver's decision, as found in the request's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// `Approved` or `Denied`.
    pub kind: &'static str,
    /// Who decided, as admission stamped it; `None` if nothing says.
    pub by: Option<&'a UserInfo>,
    pub at: Timestamp,
    pub message: &'a str,
}

/// The decision on a request, if an approver made one (a `Denied` wins over an `Approved`,
/// which admission never lets both be).
pub fn decision(request: &ActorTokenRequest) -> Option<Decision<'_>> {
    let status = request.status.as_ref()?;
    let find = |kind: &'static str| {
        status
            .conditions
            .iter()
            .find(|c: &&Condition| c.type_ == kind && c.status == "True")
            .map(|c| Decision {
                kind,
                by: status.decided_by.as_ref(),
                at: c.last_transition_time.0,
                message: &c.message,
            })
    };
    find(DENIED).or_else(|| find(APPROVED))
}

/// What the approval gate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval<'a> {
    /// No approval needed: not required by the instance, or the requester is exempt.
    NotNeeded,
    /// Required, and none given yet.
    Awaiting,
    /// A valid approval by this person.
    Approved { by: &'a UserInfo },
    /// An approver said no, with this message.
    Denied { by: &'a UserInfo, message: &'a str },
    /// A decision that can't stand (self-approval, no right to approve, too old, by nobody
    /// known): take it away and say why; a valid one may be given again.
    Discard {
        condition: &'static str,
        why: String,
    },
}

/// Judges the approval of a request whose other checks passed. `decider_may_approve` is the
/// API server's answer to "may the decider `approve` on this instance?", asked only when there
/// is a decision; `operator` is the operator's own username, which never decides.
pub fn approval<'a>(
    request: &'a ActorTokenRequest,
    requester: &UserInfo,
    instance: &InstanceView<'_>,
    decider_may_approve: Option<bool>,
    operator: &str,
    now: Timestamp,
) -> Approval<'a> {
    let policy = instance.policy.approval.as_ref();
    let required = policy.is_some_and(|p| p.required);
    let exempt = policy.is_some_and(|p| p.exempt.iter().any(|s| s.matches(requester)));
    let Some(decision) = decision(request) else {
        return if required && !exempt {
            Approval::Awaiting
        } else {
            Approval::NotNeeded
        };
    };
    let discard = |why: String| Approval::Discard {
        condition: decision.kind,
        why,
    };
    let Some(by) = decision.by else {
        return discard(format!(
            "the {} condition names no decider (status.decidedBy is missing)",
            decision.kind
        ));
    };
    if by.same_person(requester) {
        return discard(format!(
            "{} is the requester, and may not decide on their own request",
            by.username
        ));
    }
    if by.username == operator {
        return discard(format!(
            "{} is the operator itself, which never decides",
            by.username
        ));
    }
    if decider_may_approve != Some(true) {
        return discard(format!(
            "{} may not approve requests through {} (RBAC verb `approve` on it is needed)",
            by.username, instance.described
        ));
    }
    if decision.kind == DENIED {
        return Approval::Denied {
            by,
            message: decision.message,
        };
    }
    if !required || exempt {
        return Approval::NotNeeded;
    }
    let valid_for = policy
        .and_then(|p| p.valid_for.to_duration().ok())
        .unwrap_or(Duration::from_secs(3600));
    let age = now.duration_since(decision.at);
    if age < -SignedDuration::try_from(CLOCK_SKEW).unwrap_or_default() {
        return discard(format!(
            "the approval by {} is dated in the future ({})",
            by.username, decision.at
        ));
    }
    if age > SignedDuration::try_from(valid_for).unwrap_or_default() {
        return discard(format!(
            "the approval by {} is older than the instance's approval.validFor ({}); approve again",
            by.username,
            crate::api::duration::humanize(valid_for)
        ));
    }
    Approval::Approved { by }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use serde_json::json;

    use super::*;
    use crate::api::{
        ActorBinding, ActorTokenRequestStatus, ApprovalPolicy, SpecDuration, Subject, SubjectKind,
        UserPolicy,
    };

    const NOW: i64 = 1_800_000_000;
    const OPERATOR: &str = "system:serviceaccount:ato:actor-token-operator";

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(NOW + offset).unwrap()
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: None,
            groups: vec!["support".into(), "system:authenticated".into()],
        }
    }

    fn request() -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": "t-1", "namespace": "support", "uid": "u-1" },
            "spec": {
                "userId": "user_customer",
                "actor": { "sub": "user_alice" },
                "requester": { "username": "alice", "groups": ["support", "system:authenticated"] }
            }
        }))
        .unwrap()
    }

    fn view(policy: &InstancePolicy) -> InstanceView<'_> {
        InstanceView {
            described: "ClusterClerkInstance default",
            policy,
            namespace_selector: None,
        }
    }

    fn subject(kind: SubjectKind, name: &str) -> Subject {
        Subject {
            kind,
            name: name.into(),
            namespace: None,
        }
    }

    #[test]
    fn a_request_without_a_requester_is_refused_with_what_to_do() {
        let mut r = request();
        r.spec.requester = None;
        let refusal = check_request(&r, &view(&InstancePolicy::default()), None).unwrap_err();
        assert_eq!(refusal.reason, reason::REQUESTER_UNKNOWN);
        assert!(refusal.message.contains("create it again"), "{refusal:?}");
    }

    #[test]
    fn an_open_instance_lets_the_requester_through() {
        let r = request();
        let requester = check_request(&r, &view(&InstancePolicy::default()), None).unwrap();
        assert_eq!(requester.username, "alice");
    }

    #[test]
    fn the_namespace_selector_keeps_other_namespaces_out() {
        let policy = InstancePolicy::default();
        let selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "actortokens.dev/support".into(),
                operator: "Exists".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let instance = InstanceView {
            namespace_selector: Some(&selector),
            ..view(&policy)
        };
        let labelled: BTreeMap<_, _> = [("actortokens.dev/support".to_string(), "".to_string())]
            .into_iter()
            .collect();
        assert!(check_request(&request(), &instance, Some(&labelled)).is_ok());
        let refusal = check_request(&request(), &instance, Some(&BTreeMap::new())).unwrap_err();
        assert_eq!(refusal.reason, reason::NAMESPACE_NOT_ALLOWED);
        assert!(refusal.message.contains("support"), "{refusal:?}");
        // Labels that could not be read refuse too.
        assert!(check_request(&request(), &instance, None).is_err());
    }

    #[test]
    fn denied_users_are_out_of_reach_and_an_allow_list_is_exclusive() {
        let deny = InstancePolicy {
            users: Some(UserPolicy {
                allow: None,
                deny: vec!["user_customer".into()],
            }),
            ..Default::default()
        };
        let refusal = check_request(&request(), &view(&deny), None).unwrap_err();
        assert_eq!(refusal.reason, reason::USER_NOT_ALLOWED);
        assert!(refusal.message.contains("users.deny"), "{refusal:?}");

        let allow = |ids: &[&str]| InstancePolicy {
            users: Some(UserPolicy {
                allow: Some(ids.iter().map(|s| s.to_string()).collect()),
                deny: vec![],
            }),
            ..Default::default()
        };
        assert!(check_request(&request(), &view(&allow(&["user_customer"])), None).is_ok());
        let refusal = check_request(&request(), &view(&allow(&["user_other"])), None).unwrap_err();
        assert!(refusal.message.contains("users.allow"), "{refusal:?}");
    }

    #[test]
    fn with_actor_bindings_a_requester_acts_only_as_who_they_are_bound_to() {
        let policy = InstancePolicy {
            actor_bindings: Some(vec![
                ActorBinding {
                    subjects: vec![subject(SubjectKind::User, "alice")],
                    actors: vec!["user_alice".into()],
                },
                ActorBinding {
                    subjects: vec![subject(SubjectKind::Group, "leads")],
                    actors: vec!["user_lead".into()],
                },
            ]),
            ..Default::default()
        };
        assert!(check_request(&request(), &view(&policy), None).is_ok());
        let mut as_bob = request();
        as_bob.spec.actor.sub = "user_bob".into();
        let refusal = check_request(&as_bob, &view(&policy), None).unwrap_err();
        assert_eq!(refusal.reason, reason::ACTOR_NOT_ALLOWED);
        assert!(
            refusal.message.contains("alice") && refusal.message.contains("user_bob"),
            "{refusal:?}"
        );
        // A binding of another group's actor doesn't extend to alice.
        let mut as_lead = request();
        as_lead.spec.actor.sub = "user_lead".into();
        assert!(check_request(&as_lead, &view(&policy), None).is_err());
    }

    fn requiring(exempt: Vec<Subject>) -> InstancePolicy {
        InstancePolicy {
            approval: Some(ApprovalPolicy {
                required: true,
                valid_for: SpecDuration::new("1h"),
                exempt,
            }),
            ..Default::default()
        }
    }

    fn decided(kind: &str, by: Option<UserInfo>, age: i64) -> ActorTokenRequest {
        let mut r = request();
        r.status = Some(ActorTokenRequestStatus {
            decided_by: by,
            conditions: vec![Condition {
                type_: kind.into(),
                status: "True".into(),
                reason: "ByBob".into(),
                message: "ticket checked".into(),
                observed_generation: None,
                last_transition_time: Time(at(-age)),
            }],
            ..Default::default()
        });
        r
    }

    fn judge<'a>(
        r: &'a ActorTokenRequest,
        policy: &InstancePolicy,
        may: Option<bool>,
    ) -> Approval<'a> {
        let requester = r.spec.requester.clone().unwrap();
        approval(r, &requester, &view(policy), may, OPERATOR, at(0))
    }

    #[test]
    fn approval_is_awaited_only_where_the_instance_requires_it() {
        let r = request();
        assert_eq!(
            judge(&r, &InstancePolicy::default(), None),
            Approval::NotNeeded
        );
        assert_eq!(judge(&r, &requiring(vec![]), None), Approval::Awaiting);
    }

    #[test]
    fn an_exempt_requester_needs_no_approval() {
        let policy = requiring(vec![subject(SubjectKind::Group, "support")]);
        assert_eq!(judge(&request(), &policy, None), Approval::NotNeeded);
    }

    #[test]
    fn a_valid_approval_by_someone_else_with_the_right_opens_the_gate() {
        let r = decided(APPROVED, Some(user("bob")), 60);
        assert_eq!(
            judge(&r, &requiring(vec![]), Some(true)),
            Approval::Approved { by: &user("bob") }
        );
    }

    #[test]
    fn an_approval_that_cannot_stand_is_discarded_with_the_reason() {
        let policy = requiring(vec![]);
        let cases = [
            (
                decided(APPROVED, Some(user("alice")), 60),
                Some(true),
                "requester",
            ),
            (
                decided(APPROVED, Some(user(OPERATOR)), 60),
                Some(true),
                "operator",
            ),
            (
                decided(APPROVED, Some(user("carol")), 60),
                Some(false),
                "may not approve",
            ),
            (
                decided(APPROVED, Some(user("carol")), 60),
                None,
                "may not approve",
            ),
            (decided(APPROVED, None, 60), Some(true), "names no decider"),
            (
                decided(APPROVED, Some(user("bob")), 3601),
                Some(true),
                "validFor",
            ),
            (
                decided(APPROVED, Some(user("bob")), -3600),
                Some(true),
                "future",
            ),
        ];
        for (r, may, why) in cases {
            match judge(&r, &policy, may) {
                Approval::Discard {
                    condition,
                    why: said,
                } => {
                    assert_eq!(condition, APPROVED);
                    assert!(said.contains(why), "{said} should say {why}");
                }
                other => panic!("{why}: expected a discard, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_same_person_by_uid_may_not_approve_either() {
        let mut r = decided(
            APPROVED,
            Some(UserInfo {
                username: "alice@corp".into(),
                uid: Some("uid-a".into()),
                groups: vec![],
            }),
            60,
        );
        r.spec.requester.as_mut().unwrap().uid = Some("uid-a".into());
        assert!(matches!(
            judge(&r, &requiring(vec![]), Some(true)),
            Approval::Discard { .. }
        ));
    }

    #[test]
    fn a_valid_denial_is_final_even_where_approval_is_not_required() {
        let r = decided(DENIED, Some(user("bob")), 60);
        let denied = Approval::Denied {
            by: &user("bob"),
            message: "ticket checked",
        };
        assert_eq!(judge(&r, &requiring(vec![]), Some(true)), denied);
        assert_eq!(judge(&r, &InstancePolicy::default(), Some(true)), denied);
        // A denial by someone without the right doesn't stop anything.
        assert!(matches!(
            judge(&r, &requiring(vec![]), Some(false)),
            Approval::Discard {
                condition: DENIED,
                ..
            }
        ));
        // An old denial stays a denial: only approvals go stale.
        let old = decided(DENIED, Some(user("bob")), 86_400);
        assert!(matches!(
            judge(&old, &requiring(vec![]), Some(true)),
            Approval::Denied { .. }
        ));
    }

    #[test]
    fn a_denial_wins_over_an_approval() {
        let mut r = decided(APPROVED, Some(user("bob")), 60);
        let mut denied = r.status.as_ref().unwrap().conditions[0].clone();
        denied.type_ = DENIED.into();
        r.status.as_mut().unwrap().conditions.push(denied);
        assert_eq!(decision(&r).unwrap().kind, DENIED);
    }
}
