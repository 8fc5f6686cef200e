//! What Clerk is asked for: the token a request's spec describes, within what its instance
//! allows, its actor stamped with where it came from (`provenance`).

use std::time::Duration;

use crate::{
    api::{ActorTokenRequestSpec, duration::humanize},
    clerk::NewActorToken,
    governance::provenance::{Provenance, stamp},
};

/// What a request may ask of its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_expires_in: Duration,
    pub max_session_duration: Duration,
}

/// The token to ask Clerk for, or why this instance can't serve the request as written. The
/// actor is the spec's, with `provenance` under the operator's own key: whatever the spec
/// put there is overwritten, so no request can pass for another.
pub fn plan_token(
    spec: &ActorTokenRequestSpec,
    limits: &Limits,
    provenance: &Provenance,
) -> Result<NewActorToken, String> {
    let expires_in = spec
        .expires_in
        .to_duration()
        .map_err(|e| format!("spec.expiresIn: {e}"))?;
    let session = spec
        .session_max_duration
        .to_duration()
        .map_err(|e| format!("spec.sessionMaxDuration: {e}"))?;
    if expires_in > limits.max_expires_in {
        return Err(format!(
            "spec.expiresIn {} is longer than this instance allows ({})",
            spec.expires_in,
            humanize(limits.max_expires_in)
        ));
    }
    if session > limits.max_session_duration {
        return Err(format!(
            "spec.sessionMaxDuration {} is longer than this instance allows ({})",
            spec.session_max_duration,
            humanize(limits.max_session_duration)
        ));
    }
    let mut actor = spec.actor.to_clerk();
    stamp(&mut actor, provenance);
    Ok(NewActorToken {
        user_id: spec.user_id.clone(),
        actor,
        expires_in_seconds: expires_in.as_secs(),
        session_max_duration_in_seconds: session.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{api::ActorTokenRequest, governance::provenance::PROVENANCE_KEY};

    fn provenance(r: &ActorTokenRequest) -> Provenance {
        Provenance::of(r, None, crate::api::ProvenanceMode::Full).unwrap()
    }

    fn any_length() -> Limits {
        Limits {
            max_expires_in: Duration::from_secs(86400),
            max_session_duration: Duration::from_secs(86400),
        }
    }

    fn request() -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": "support-1234", "namespace": "team", "uid": "u-1" },
            "spec": { "userId": "user_abc", "actor": { "sub": "user_support" } }
        }))
        .unwrap()
    }

    #[test]
    fn plans_the_token_clerk_is_asked_for() {
        let mut r = request();
        r.spec
            .actor
            .extra
            .insert("reason".into(), json!("TICKET-1"));
        let limits = Limits {
            max_expires_in: Duration::from_secs(86400),
            max_session_duration: Duration::from_secs(86400),
        };
        let token = plan_token(&r.spec, &limits, &provenance(&r)).unwrap();
        assert_eq!(token.user_id, "user_abc");
        assert_eq!(token.expires_in_seconds, 3600);
        assert_eq!(token.session_max_duration_in_seconds, 1800);
        assert_eq!(token.actor.get("sub"), Some(&json!("user_support")));
        assert_eq!(token.actor.get("reason"), Some(&json!("TICKET-1")));
    }

    #[test]
    fn an_instance_may_allow_less_than_a_day() {
        let r = request();
        let tight = Limits {
            max_expires_in: Duration::from_secs(900),
            max_session_duration: Duration::from_secs(86400),
        };
        let error = plan_token(&r.spec, &tight, &provenance(&r)).unwrap_err();
        assert!(
            error.contains("spec.expiresIn 1h") && error.contains("15m"),
            "{error}"
        );
        let tight = Limits {
            max_expires_in: Duration::from_secs(86400),
            max_session_duration: Duration::from_secs(600),
        };
        assert!(
            plan_token(&r.spec, &tight, &provenance(&r))
                .unwrap_err()
                .contains("sessionMaxDuration")
        );
    }

    #[test]
    fn the_actor_carries_the_requests_provenance() {
        let r = request();
        let token = plan_token(&r.spec, &any_length(), &provenance(&r)).unwrap();
        assert_eq!(
            token.actor[PROVENANCE_KEY],
            json!({ "request": { "namespace": "team", "name": "support-1234", "uid": "u-1" } })
        );
    }

    #[test]
    fn a_provenance_forged_in_the_spec_does_not_survive() {
        let mut r = request();
        r.spec.actor.extra.insert(
            PROVENANCE_KEY.into(),
            json!({ "request": { "namespace": "other", "name": "victim", "uid": "victim-uid" } }),
        );
        let token = plan_token(&r.spec, &any_length(), &provenance(&r)).unwrap();
        assert_eq!(token.actor[PROVENANCE_KEY]["request"]["uid"], json!("u-1"));
        assert!(
            !serde_json::Value::Object(token.actor)
                .to_string()
                .contains("victim")
        );
    }
}
