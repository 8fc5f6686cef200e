//! Kubernetes' standard conditions, as the operator sets them, in the scheme GitOps tools read
//! (kstatus, which Flux uses, and Argo CD's health scripts):
//!
//! | standing  | Ready            | Reconciling | Stalled | other          |
//! |-----------|------------------|-------------|---------|----------------|
//! | Waiting   | False, why       | True        | –       | –              |
//! | Issued    | True             | –           | –       | –              |
//! | Failed    | False, why       | –           | True    | –              |
//! | Denied    | False, `Denied`  | –           | True    | –              |
//! | Expired   | –                | –           | –       | `Expired=True` |
//! | Revoked   | –                | –           | –       | `Revoked=True` |
//!
//! A finished request (expired or revoked) carries no Ready condition: kstatus reads
//! `Ready=False` as "in progress" whatever its reason, which would hold a Flux Kustomization
//! in progress forever. `Reconciling` and `Stalled` are never both true.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use schemars::{Schema, SchemaGenerator};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const EXPIRED: &str = "Expired";
pub const REVOKED: &str = "Revoked";
/// The reason a denied request shows.
pub const DENIED_REASON: &str = "Denied";

/// Every condition type the operator manages on a request; others are left alone.
const MANAGED: [&str; 5] = [READY, RECONCILING, STALLED, EXPIRED, REVOKED];

/// Where a request stands, as its conditions tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing<'a> {
    /// Not there yet: waiting on an instance, retrying Clerk, revoking before it lets go.
    Waiting { reason: &'a str, message: &'a str },
    /// The link is in its Secret and works.
    Issued { message: &'a str },
    /// Won't get there without a new request (Clerk refused, the Secret name is taken...).
    Failed { reason: &'a str, message: &'a str },
    /// An approver said no: final, like a failure, with the approver's words.
    Denied { message: &'a str },
    /// Done: the link's time ran out.
    Expired { message: &'a str },
    /// Done: the token was revoked before its time (e.g. its Secret was deleted).
    Revoked { reason: &'a str, message: &'a str },
}

impl Standing<'_> {
    /// The conditions this standing is shown by, as (type, status, reason, message).
    fn conditions(&self) -> Vec<(&'static str, bool, &str, &str)> {
        match *self {
            Standing::Waiting { reason, message } => vec![
                (READY, false, reason, message),
                (RECONCILING, true, reason, message),
            ],
            Standing::Issued { message } => vec![(READY, true, "Issued", message)],
            Standing::Failed { reason, message } => vec![
                (READY, false, reason, message),
                (STALLED, true, reason, message),
            ],
            Standing::Denied { message } => vec![
                (READY, false, DENIED_REASON, message),
                (STALLED, true, DENIED_REASON, message),
            ],
            Standing::Expired { message } => vec![(EXPIRED, true, "Expired", message)],
            Standing::Revoked { reason, message } => vec![(REVOKED, true, reason, message)],
        }
    }
}

/// Makes `conditions` show `standing`: the managed conditions it needs are set, the other
/// managed ones removed, and a condition whose status holds keeps its transition time (so its
/// age tells how long it has held, as `kubectl` users expect).
pub fn show(
    conditions: &mut Vec<Condition>,
    standing: Standing<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let wanted = standing.conditions();
    conditions.retain(|c| {
        !MANAGED.contains(&c.type_.as_str()) || wanted.iter().any(|(t, ..)| *t == c.type_)
    });
    for (type_, status, reason, message) in wanted {
        set(
            conditions,
            Condition {
                type_: type_.into(),
                status: if status { "True" } else { "False" }.into(),
                reason: reason.into(),
                message: message.into(),
                observed_generation: generation,
                last_transition_time: Time(now),
            },
        );
    }
}

/// Puts `new` into `conditions`, keeping the old transition time when the status is unchanged.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// A condition with the given truth, reason and message, observed at `now` (for resources
/// whose only condition is Ready: the Clerk instances).
pub fn ready(
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: READY.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// The schema of a conditions list: k8s-openapi's Condition, as a map keyed by `type` so that
/// server-side apply merges conditions one by one.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn shown(conditions: &[Condition]) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        v.sort();
        v
    }

    fn row(t: &str, s: &str, r: &str) -> (String, String, String) {
        (t.into(), s.into(), r.into())
    }

    #[test]
    fn each_standing_is_shown_by_exactly_the_conditions_of_the_scheme() {
        let cases = [
            (
                Standing::Waiting {
                    reason: "InstanceNotReady",
                    message: "m",
                },
                vec![
                    row(READY, "False", "InstanceNotReady"),
                    row(RECONCILING, "True", "InstanceNotReady"),
                ],
            ),
            (
                Standing::Issued { message: "m" },
                vec![row(READY, "True", "Issued")],
            ),
            (
                Standing::Failed {
                    reason: "ClerkRejected",
                    message: "m",
                },
                vec![
                    row(READY, "False", "ClerkRejected"),
                    row(STALLED, "True", "ClerkRejected"),
                ],
            ),
            (
                Standing::Expired { message: "m" },
                vec![row(EXPIRED, "True", "Expired")],
            ),
            (
                Standing::Revoked {
                    reason: "SecretDeleted",
                    message: "m",
                },
                vec![row(REVOKED, "True", "SecretDeleted")],
            ),
        ];
        for (standing, expected) in &cases {
            // From any earlier standing, the result is the same set.
            for (earlier, _) in &cases {
                let mut conditions = Vec::new();
                show(&mut conditions, *earlier, Some(1), t(1));
                show(&mut conditions, *standing, Some(2), t(2));
                assert_eq!(&shown(&conditions), expected, "{earlier:?} -> {standing:?}");
                assert!(conditions.iter().all(|c| c.observed_generation == Some(2)));
            }
        }
    }

    #[test]
    fn transition_time_moves_only_when_a_status_changes() {
        let mut conditions = Vec::new();
        let waiting = |reason| Standing::Waiting {
            reason,
            message: "m",
        };
        show(&mut conditions, waiting("ClerkUnavailable"), Some(1), t(1));
        show(&mut conditions, waiting("ClerkRateLimited"), Some(1), t(2));
        assert!(conditions.iter().all(|c| c.last_transition_time.0 == t(1)));
        assert!(conditions.iter().all(|c| c.reason == "ClerkRateLimited"));
        show(
            &mut conditions,
            Standing::Issued { message: "m" },
            Some(1),
            t(3),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time.0, t(3));
    }

    #[test]
    fn conditions_of_others_are_kept() {
        let mut conditions = vec![ready(true, "x", "m", Some(1), t(1))];
        conditions[0].type_ = "example.com/Audited".into();
        show(
            &mut conditions,
            Standing::Expired { message: "m" },
            Some(1),
            t(2),
        );
        assert!(conditions.iter().any(|c| c.type_ == "example.com/Audited"));
    }
}
