//! `list`: one line per request, in one table.

use actor_token_operator::api::{ActorTokenRequest, Phase};
use k8s_openapi::jiff::Timestamp;

use crate::{human, stage, table};

const HEADERS: [&str; 8] = [
    "NAME",
    "REQUESTER",
    "ACTOR",
    "USER",
    "PHASE",
    "APPROVER",
    "EXPIRES IN",
    "AGE",
];

/// The table of `requests` at `now`; with `namespaces`, a NAMESPACE column first (`-A`).
pub fn render(requests: &[ActorTokenRequest], namespaces: bool, now: Timestamp) -> String {
    let mut headers: Vec<&str> = Vec::new();
    if namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend(HEADERS);
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            let mut row = Vec::new();
            if namespaces {
                row.push(r.metadata.namespace.clone().unwrap_or_default());
            }
            row.extend(cells(r, now));
            row
        })
        .collect();
    table::render(&headers, &rows)
}

fn cells(r: &ActorTokenRequest, now: Timestamp) -> [String; 8] {
    let none = || "<none>".to_string();
    [
        r.metadata.name.clone().unwrap_or_default(),
        r.spec
            .requester
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_else(none),
        r.spec.actor.sub.clone(),
        r.spec.user_id.clone(),
        phase(r),
        match stage::decided_by(r) {
            Some(("Denied", by)) => format!("{by} (denied)"),
            Some((_, by)) => by,
            None => none(),
        },
        expires_in(r, now),
        r.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| human::age(t.0, now))
            .unwrap_or_else(none),
    ]
}

/// The phase, and while pending, why (`Pending/AwaitingApproval`), as `kubectl get pods`
/// shows a waiting container's reason.
fn phase(r: &ActorTokenRequest) -> String {
    match r.phase() {
        None => "Pending".into(),
        Some(Phase::Pending) => match stage::of(r) {
            stage::Stage::Operator => "Pending".into(),
            _ => match ready_reason(r) {
                Some(reason) => format!("Pending/{reason}"),
                None => "Pending".into(),
            },
        },
        Some(p) => format!("{p:?}"),
    }
}

fn ready_reason(r: &ActorTokenRequest) -> Option<String> {
    let status = r.status.as_ref()?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    (!ready.reason.is_empty()).then(|| ready.reason.clone())
}

/// How long the link still works: only an issued link has a time left; a pending request
/// shows what it asked for (`15m once issued`), a finished one `-`.
pub fn expires_in(r: &ActorTokenRequest, now: Timestamp) -> String {
    let expires_at = r.status.as_ref().and_then(|s| s.expires_at.as_ref());
    match (r.phase(), expires_at) {
        (Some(Phase::Issued), Some(at)) if at.0 > now => {
            human::relative(at.0, now).trim_start_matches("in ").into()
        }
        (Some(Phase::Issued), Some(_)) => "expiring".into(),
        (None | Some(Phase::Pending), _) => {
            format!("{} once issued", r.spec.expires_in.as_str())
        }
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use actor_token_operator::api::{ActorTokenRequestStatus, UserInfo};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn at(offset: i64) -> Time {
        Time(Timestamp::from_second(NOW + offset).unwrap())
    }

    fn request(name: &str, ns: &str) -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": name, "namespace": ns, "generation": 1,
                          "creationTimestamp": "2027-01-15T07:55:00Z" },
            "spec": { "userId": "user_2customer", "actor": { "sub": "user_2alice" }, "expiresIn": "15m",
                      "requester": { "username": "alice@example.com" } }
        }))
        .unwrap()
    }

    fn ready(reason: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: at(-10),
        }
    }

    #[test]
    fn one_line_per_request_with_who_asked_who_approved_and_time_left() {
        let mut issued = request("t-1", "support");
        issued.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Issued),
            observed_generation: Some(1),
            expires_at: Some(at(840)),
            decided_by: Some(UserInfo {
                username: "bob@example.com".into(),
                ..Default::default()
            }),
            conditions: vec![Condition {
                type_: "Approved".into(),
                status: "True".into(),
                ..ready("KubectlActortoken")
            }],
            ..Default::default()
        });
        let mut waiting = request("t-2", "support");
        waiting.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Pending),
            observed_generation: Some(1),
            conditions: vec![ready("AwaitingApproval")],
            ..Default::default()
        });
        let now = Timestamp::from_second(NOW).unwrap();
        let text = render(&[issued, waiting], false, now);
        assert_eq!(
            text,
            "NAME   REQUESTER           ACTOR         USER             PHASE                      APPROVER          EXPIRES IN        AGE\n\
             t-1    alice@example.com   user_2alice   user_2customer   Issued                     bob@example.com   14m               5m\n\
             t-2    alice@example.com   user_2alice   user_2customer   Pending/AwaitingApproval   <none>            15m once issued   5m\n"
        );
    }

    #[test]
    fn all_namespaces_adds_the_namespace_column() {
        let now = Timestamp::from_second(NOW).unwrap();
        let text = render(&[request("t-1", "team-a")], true, now);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("NAMESPACE   NAME"));
        assert!(lines.next().unwrap().starts_with("team-a      t-1"));
    }

    #[test]
    fn finished_requests_have_no_time_left_and_a_denial_says_so() {
        let now = Timestamp::from_second(NOW).unwrap();
        let mut expired = request("t-1", "support");
        expired.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Expired),
            expires_at: Some(at(-60)),
            ..Default::default()
        });
        assert_eq!(expires_in(&expired, now), "-");
        let mut late = expired.clone();
        late.status.as_mut().unwrap().phase = Some(Phase::Issued);
        assert_eq!(expires_in(&late, now), "expiring");

        let mut denied = request("t-3", "support");
        denied.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Denied),
            decided_by: Some(UserInfo {
                username: "bob".into(),
                ..Default::default()
            }),
            conditions: vec![Condition {
                type_: "Denied".into(),
                status: "True".into(),
                ..ready("KubectlActortoken")
            }],
            ..Default::default()
        });
        let text = render(&[denied], false, now);
        assert!(text.contains("Denied"), "{text}");
        assert!(text.contains("bob (denied)"), "{text}");
    }
}
