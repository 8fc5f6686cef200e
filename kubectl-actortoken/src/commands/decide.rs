//! `approve NAME` and `deny NAME`: add an `Approved` or `Denied` condition through the status
//! subresource, keeping every other condition exactly as it is, and name ourselves in
//! `status.decidedBy` (admission stamps it too where its mutating policy is installed). The
//! admission policies judge it: not the requester, the right to `approve` on the instance, one
//! decision only, nothing else changed. Their refusal is printed in their own words.

use actor_token_operator::{
    api::ActorTokenRequest,
    governance::gate::{APPROVED, DENIED},
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    cluster::Cluster,
    error::{Error, from_kube, is_conflict, is_not_found},
    human,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Approved,
    Denied,
}

impl Kind {
    fn condition_type(self) -> &'static str {
        match self {
            Kind::Approved => APPROVED,
            Kind::Denied => DENIED,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Kind::Approved => "approved",
            Kind::Denied => "denied",
        }
    }
}

/// The condition's reason: says it was decided with this plugin (the person's own words go in
/// the message).
const REASON: &str = "KubectlActortoken";

/// How often a write that lost a race with the operator is tried again.
const ATTEMPTS: usize = 5;

/// The merge patch that adds the decision to `object`'s conditions (all kept as they are),
/// conditional on its resourceVersion.
pub fn decision_patch(
    object: &Value,
    kind: Kind,
    message: &str,
    me: &actor_token_operator::api::UserInfo,
    now: Timestamp,
) -> Value {
    let mut conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut condition = json!({
        "type": kind.condition_type(),
        "status": "True",
        "reason": REASON,
        "message": message,
        "lastTransitionTime": human::timestamp(now),
    });
    if let Some(generation) = object["metadata"]["generation"].as_i64() {
        condition["observedGeneration"] = json!(generation);
    }
    conditions.push(condition);
    json!({
        "metadata": { "resourceVersion": object["metadata"]["resourceVersion"] },
        "status": { "conditions": conditions, "decidedBy": me },
    })
}

/// What is already decided on `object`, for a hint when the API server refuses.
fn existing_decision(object: &Value) -> Option<String> {
    let conditions = object["status"]["conditions"].as_array()?;
    let decided = conditions.iter().find(|c| {
        matches!(c["type"].as_str(), Some(APPROVED) | Some(DENIED)) && c["status"] == "True"
    })?;
    let by = object["status"]["decidedBy"]["username"]
        .as_str()
        .unwrap_or("someone");
    Some(format!(
        "it is already {} by {by} at {}",
        decided["type"].as_str().unwrap_or_default(),
        decided["lastTransitionTime"].as_str().unwrap_or("?")
    ))
}

pub async fn run(
    cluster: &Cluster,
    name: &str,
    kind: Kind,
    message: Option<&str>,
) -> Result<(), Error> {
    let me = cluster.me().await?;
    let resource = ApiResource::erase::<ActorTokenRequest>(&());
    let api = Api::<DynamicObject>::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &resource,
    );
    let message = message
        .map(String::from)
        .unwrap_or_else(|| format!("{} with kubectl actortoken", kind.verb()));
    let context = || {
        format!(
            "{} actortokenrequest {}",
            match kind {
                Kind::Approved => "approving",
                Kind::Denied => "denying",
            },
            cluster.named(name)
        )
    };
    for _ in 0..ATTEMPTS {
        let current = match api.get(name).await {
            Ok(o) => serde_json::to_value(&o).map_err(|e| Error::Other(e.to_string()))?,
            Err(e) if is_not_found(&e) => {
                return Err(Error::NotFound(format!(
                    "actortokenrequest {} not found",
                    cluster.named(name)
                )));
            }
            Err(e) => return Err(from_kube(context(), e)),
        };
        let patch = decision_patch(&current, kind, &message, &me, Timestamp::now());
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                eprintln!(
                    "actortokenrequest {} {} by {}.",
                    cluster.named(name),
                    kind.verb(),
                    me.username
                );
                return Ok(());
            }
            // The operator wrote the status meanwhile: read it again and add to that.
            Err(e) if is_conflict(&e) => continue,
            Err(e) => {
                let error = from_kube(context(), e);
                return Err(match existing_decision(&current) {
                    Some(hint) => error.with_hint(hint),
                    None => error,
                });
            }
        }
    }
    Err(Error::Other(format!(
        "{}: the request kept changing while we wrote; try again",
        context()
    )))
}

#[cfg(test)]
mod tests {
    use actor_token_operator::api::UserInfo;

    use super::*;

    fn object() -> Value {
        json!({
            "metadata": { "name": "t-1", "resourceVersion": "42", "generation": 1 },
            "status": {
                "phase": "Pending",
                "conditions": [
                    { "type": "Ready", "status": "False", "reason": "AwaitingApproval", "message": "m",
                      "lastTransitionTime": "2026-11-30T15:40:05Z", "observedGeneration": 1,
                      "someFieldWeDoNotKnow": "kept" }
                ]
            }
        })
    }

    #[test]
    fn the_decision_is_added_and_every_condition_kept_exactly() {
        let bob = UserInfo {
            username: "bob".into(),
            uid: None,
            groups: vec!["leads".into(), "system:authenticated".into()],
        };
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let patch = decision_patch(&object(), Kind::Approved, "ok", &bob, now);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let conditions = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0], object()["status"]["conditions"][0]);
        assert_eq!(
            conditions[1],
            json!({ "type": "Approved", "status": "True", "reason": "KubectlActortoken", "message": "ok",
                    "lastTransitionTime": "2027-01-15T08:00:00Z", "observedGeneration": 1 })
        );
        assert_eq!(
            patch["status"]["decidedBy"],
            json!({ "username": "bob", "groups": ["leads", "system:authenticated"] })
        );
        // Nothing else of the status is in the patch, so nothing else can change.
        assert_eq!(patch["status"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn a_request_without_conditions_gets_its_first() {
        let me = UserInfo {
            username: "bob".into(),
            ..Default::default()
        };
        let bare = json!({ "metadata": { "resourceVersion": "1" }, "status": { "observedGeneration": 0 } });
        let patch = decision_patch(&bare, Kind::Denied, "no", &me, Timestamp::UNIX_EPOCH);
        let conditions = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["type"], "Denied");
    }

    #[test]
    fn an_existing_decision_is_named_for_the_hint() {
        assert_eq!(existing_decision(&object()), None);
        let mut decided = object();
        decided["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "type": "Approved", "status": "True", "lastTransitionTime": "2026-11-30T15:41:00Z"
            }));
        decided["status"]["decidedBy"] = json!({ "username": "bob" });
        assert_eq!(
            existing_decision(&decided).unwrap(),
            "it is already Approved by bob at 2026-11-30T15:41:00Z"
        );
    }
}
