//! Kubernetes' standard conditions, as the operator sets them.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use schemars::{Schema, SchemaGenerator};

/// The one condition type every resource here reports.
pub const READY: &str = "Ready";

/// A condition with the given truth, reason and message, observed at `now`.
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

/// Puts `new` into `conditions`, keeping the old transition time when the status is unchanged
/// (so a condition's age tells how long it has held, as `kubectl` users expect).
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

    #[test]
    fn set_keeps_transition_time_while_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut conditions = vec![ready(false, "ClerkUnavailable", "down", Some(1), t0)];
        set(
            &mut conditions,
            ready(false, "ClerkRateLimited", "slow down", Some(1), t1),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "ClerkRateLimited");
        assert_eq!(conditions[0].last_transition_time.0, t0);
        set(&mut conditions, ready(true, "Issued", "ok", Some(1), t1));
        assert_eq!(conditions[0].last_transition_time.0, t1);
    }
}
