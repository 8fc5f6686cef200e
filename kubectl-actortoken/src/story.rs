//! `describe`: a request's whole story — who asked, for whom and why, who decided, where the
//! link is, when it ends, its conditions and its events. Never the link itself.

use actor_token_operator::{
    api::{ActorTokenRequest, Phase, UserInfo},
    governance::gate::decision,
};
use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};

use crate::{human, stage, table};

fn who(user: &UserInfo) -> String {
    let groups: Vec<&str> = user
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "system:authenticated")
        .collect();
    let mut text = user.username.clone();
    if let Some(uid) = &user.uid {
        text.push_str(&format!(" (uid {uid})"));
    }
    if !groups.is_empty() {
        text.push_str(&format!(" [groups: {}]", groups.join(", ")));
    }
    text
}

fn when(at: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", human::timestamp(at), human::relative(at, now))
}

/// When an event happened: its eventTime, else the time of its latest repeat or creation.
fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The story of `request`, with its `events`, told at `now`.
pub fn tell(request: &ActorTokenRequest, events: &[Event], now: Timestamp) -> String {
    let spec = &request.spec;
    let status = request.status.clone().unwrap_or_default();
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", request.metadata.name.clone().unwrap_or_default()),
        (
            "Namespace",
            request.metadata.namespace.clone().unwrap_or_default(),
        ),
        (
            "Phase",
            status
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Pending".into()),
        ),
        ("User", format!("{} (impersonated)", spec.user_id)),
        ("Actor", spec.actor.sub.clone()),
        (
            "Instance",
            format!("{:?} {}", spec.instance_ref.kind, spec.instance_ref.name),
        ),
        (
            "Reason",
            spec.reason.clone().unwrap_or_else(|| "<none>".into()),
        ),
        (
            "Requested by",
            match (&spec.requester, &request.metadata.creation_timestamp) {
                (Some(r), Some(t)) => format!("{} at {}", who(r), when(t.0, now)),
                (Some(r), None) => who(r),
                (None, _) => "<unknown: no spec.requester>".into(),
            },
        ),
    ];
    match decision(request) {
        Some(d) => {
            let label = if d.kind == "Denied" {
                "Denied by"
            } else {
                "Approved by"
            };
            let by = d.by.map(who).unwrap_or_else(|| "<unknown>".into());
            let mut text = format!("{by} at {}", when(d.at, now));
            if !d.message.is_empty() {
                text.push_str(&format!(": {}", d.message));
            }
            fields.push((label, text));
        }
        None => {
            if matches!(stage::of(request), stage::Stage::Approval) {
                fields.push(("Approved by", "<nobody yet: awaiting approval>".into()));
            }
        }
    }
    fields.push((
        "Link",
        match status.phase {
            Some(Phase::Issued) => format!(
                "in Secret {} (kubectl actortoken url {})",
                status
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| request.secret_name()),
                request.metadata.name.as_deref().unwrap_or_default()
            ),
            Some(Phase::Pending) | None => format!(
                "not issued yet: waiting for {}",
                stage::of(request).waiting_for()
            ),
            Some(_) => "none (finished)".into(),
        },
    ));
    if let Some(t) = &status.issued_at {
        fields.push(("Issued", when(t.0, now)));
    }
    fields.push((
        "Ends",
        match (status.phase, &status.expires_at) {
            (Some(Phase::Expired), Some(t)) => format!("expired {}", when(t.0, now)),
            (_, Some(t)) => when(t.0, now),
            (Some(Phase::Pending) | None, None) => format!(
                "{} after it is issued (session up to {})",
                spec.expires_in.as_str(),
                spec.session_max_duration.as_str()
            ),
            (_, None) => "-".into(),
        },
    ));
    if let Some(t) = &status.revoked_at {
        fields.push(("Revoked", when(t.0, now)));
    }
    if let Some(id) = &status.token_id {
        fields.push(("Token ID", format!("{id} (Clerk's ID, not a credential)")));
    }
    if !status.pending_revokes.is_empty() {
        fields.push((
            "To revoke",
            status
                .pending_revokes
                .iter()
                .map(|p| p.token_id.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if let Some(lost) = status.lost_tokens.filter(|n| *n > 0) {
        fields.push((
            "Lost tokens",
            format!("{lost} (answers lost; they live until they expire)"),
        ));
    }
    // As `kubectl describe`: one column for values, two spaces after the longest label.
    let width = fields
        .iter()
        .map(|(k, _)| k.len() + 1)
        .max()
        .unwrap_or(0)
        .max(13)
        + 2;
    let mut out = String::new();
    for (key, value) in &fields {
        out.push_str(&format!("{:width$}{value}\n", format!("{key}:")));
    }

    out.push_str("Conditions:\n");
    if status.conditions.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    human::age(c.last_transition_time.0, now),
                    c.message.clone(),
                ]
            })
            .collect();
        indent(
            &mut out,
            &table::render(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], &rows),
        );
    }

    out.push_str("Events:\n");
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| event_time(e));
    if events.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    event_time(e)
                        .map(|t| human::age(t, now))
                        .unwrap_or_else(|| "<unknown>".into()),
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.reporting_controller.clone().unwrap_or_default(),
                    e.note.clone().unwrap_or_default(),
                ]
            })
            .collect();
        indent(
            &mut out,
            &table::render(&["AGE", "TYPE", "REASON", "FROM", "MESSAGE"], &rows),
        );
    }
    out
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use actor_token_operator::api::ActorTokenRequestStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(NOW + offset).unwrap()
    }

    fn request() -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": "t-1", "namespace": "support", "generation": 1,
                          "creationTimestamp": "2027-01-15T07:50:00Z" },
            "spec": { "userId": "user_2customer", "actor": { "sub": "user_2alice" }, "expiresIn": "15m",
                      "reason": "TICKET-7", "instanceRef": { "kind": "ClerkInstance", "name": "clerk" },
                      "requester": { "username": "alice@example.com", "groups": ["support", "system:authenticated"] } }
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str, t: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(at(t)),
        }
    }

    fn event(reason: &str, note: &str, t: i64) -> Event {
        Event {
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some("Normal".into()),
            reporting_controller: Some("actor-token-operator".into()),
            event_time: Some(MicroTime(at(t))),
            ..Default::default()
        }
    }

    #[test]
    fn an_issued_request_tells_who_asked_who_approved_where_the_link_is_and_when_it_ends() {
        let mut r = request();
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Issued),
            observed_generation: Some(1),
            token_id: Some("act_123".into()),
            secret_name: Some("t-1".into()),
            issued_at: Some(Time(at(-60))),
            expires_at: Some(Time(at(840))),
            decided_by: Some(UserInfo {
                username: "bob@example.com".into(),
                groups: vec!["leads".into()],
                ..Default::default()
            }),
            conditions: vec![
                condition(
                    "Approved",
                    "True",
                    "KubectlActortoken",
                    "ticket checked",
                    -120,
                ),
                condition("Ready", "True", "Issued", "issued; expires at …", -60),
            ],
            ..Default::default()
        });
        let events = [
            event("Issued", "token act_123 issued", -60),
            event("Approved", "approved by bob@example.com", -120),
        ];
        let text = tell(&r, &events, at(0));
        for line in [
            "Phase:         Issued",
            "User:          user_2customer (impersonated)",
            "Reason:        TICKET-7",
            "Requested by:  alice@example.com [groups: support] at 2027-01-15T07:50:00Z (10m ago)",
            "Approved by:   bob@example.com [groups: leads] at 2027-01-15T07:58:00Z (2m ago): ticket checked",
            "Link:          in Secret t-1 (kubectl actortoken url t-1)",
            "Ends:          2027-01-15T08:14:00Z (in 14m)",
            "Token ID:      act_123 (Clerk's ID, not a credential)",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Events in the order they happened.
        let approved = text.find("approved by bob").unwrap();
        let issued = text.find("token act_123 issued").unwrap();
        assert!(approved < issued, "{text}");
    }

    #[test]
    fn a_waiting_request_says_what_it_waits_for_and_how_long_it_will_last() {
        let mut r = request();
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Pending),
            observed_generation: Some(1),
            conditions: vec![condition(
                "Ready",
                "False",
                "AwaitingApproval",
                "needs approval",
                -5,
            )],
            ..Default::default()
        });
        let text = tell(&r, &[], at(0));
        assert!(
            text.contains("Approved by:   <nobody yet: awaiting approval>"),
            "{text}"
        );
        assert!(
            text.contains("Link:          not issued yet: waiting for approval"),
            "{text}"
        );
        assert!(
            text.contains("Ends:          15m after it is issued (session up to 30m)"),
            "{text}"
        );
        assert!(text.contains("Events:\n  <none>\n"), "{text}");
    }

    #[test]
    fn a_denied_request_says_by_whom_and_why() {
        let mut r = request();
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(Phase::Denied),
            observed_generation: Some(1),
            decided_by: Some(UserInfo {
                username: "bob@example.com".into(),
                ..Default::default()
            }),
            conditions: vec![condition(
                "Denied",
                "True",
                "KubectlActortoken",
                "no ticket",
                -5,
            )],
            ..Default::default()
        });
        let text = tell(&r, &[], at(0));
        assert!(text.contains("Denied by:     bob@example.com at"), "{text}");
        assert!(text.contains("no ticket"), "{text}");
        assert!(text.contains("Link:          none (finished)"), "{text}");
    }
}
