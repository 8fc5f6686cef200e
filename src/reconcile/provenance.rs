//! Where a token came from, written into the actor Clerk is sent. Clerk copies the actor into
//! the impersonation session (and its session token's `act` claim), so the application can see
//! who acts and why, and the operator can find the sessions a request's token opened when it
//! revokes them, and end those and no others.
//!
//! It sits under one key of the operator's own, [`PROVENANCE_KEY`], which a user's actor can't
//! claim: [`stamp`] overwrites whatever the spec put there.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::ActorTokenRequest;

/// The key in the actor that holds the provenance.
pub const PROVENANCE_KEY: &str = "actortokens.dev";

/// What the operator adds to a token's actor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub request: RequestIdentity,
}

/// The request a token was issued for. The UID is what identifies it (a request deleted and
/// created again under the same name is another request); it stays even where an instance
/// turns descriptive fields off, since revoking depends on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uid: String,
}

impl Provenance {
    /// The provenance of a token for `request`; `None` for a request the API server hasn't
    /// given a UID (never the case for a stored object).
    pub fn of(request: &ActorTokenRequest) -> Option<Provenance> {
        Some(Provenance {
            request: RequestIdentity {
                namespace: request.metadata.namespace.clone(),
                name: request.metadata.name.clone(),
                uid: request.metadata.uid.clone()?,
            },
        })
    }

    /// The same with only what revoking needs: the request's UID.
    pub fn without_descriptions(self) -> Provenance {
        Provenance {
            request: RequestIdentity {
                namespace: None,
                name: None,
                uid: self.request.uid,
            },
        }
    }
}

/// Puts `provenance` into `actor` under [`PROVENANCE_KEY`], replacing anything there.
pub fn stamp(actor: &mut Map<String, Value>, provenance: &Provenance) {
    let value = serde_json::to_value(provenance).expect("a Provenance serialises");
    actor.insert(PROVENANCE_KEY.to_owned(), value);
}

/// Was the session whose actor is `session_actor` opened by a token of the request with UID
/// `request_uid`? Only the UID under the operator's key counts: a customer's own session has
/// no actor, and another request's token carries another UID.
pub fn opened_by(session_actor: Option<&Value>, request_uid: &str) -> bool {
    session_actor
        .and_then(|actor| actor.get(PROVENANCE_KEY))
        .and_then(|provenance| provenance.get("request"))
        .and_then(|request| request.get("uid"))
        .and_then(Value::as_str)
        .is_some_and(|uid| !uid.is_empty() && uid == request_uid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": "support-1", "namespace": "team", "uid": "uid-1" },
            "spec": { "userId": "user_abc", "actor": { "sub": "user_support" } }
        }))
        .unwrap()
    }

    #[test]
    fn the_actor_names_the_request() {
        let mut actor = Map::new();
        actor.insert("sub".into(), json!("user_support"));
        stamp(&mut actor, &Provenance::of(&request()).unwrap());
        assert_eq!(
            Value::Object(actor),
            json!({
                "sub": "user_support",
                "actortokens.dev": { "request": { "namespace": "team", "name": "support-1", "uid": "uid-1" } }
            })
        );
        let mut bare = Map::new();
        stamp(
            &mut bare,
            &Provenance::of(&request()).unwrap().without_descriptions(),
        );
        assert_eq!(
            bare[PROVENANCE_KEY],
            json!({ "request": { "uid": "uid-1" } })
        );
    }

    #[test]
    fn a_forged_provenance_in_the_spec_is_overwritten() {
        let mut actor = Map::new();
        actor.insert(
            PROVENANCE_KEY.into(),
            json!({ "request": { "uid": "someone-elses-uid" }, "approver": "me" }),
        );
        stamp(&mut actor, &Provenance::of(&request()).unwrap());
        assert_eq!(
            actor[PROVENANCE_KEY],
            json!({ "request": { "namespace": "team", "name": "support-1", "uid": "uid-1" } })
        );
    }

    #[test]
    fn a_session_is_this_requests_only_by_its_uid() {
        let stamped = |uid: &str| json!({ "sub": "user_support", "actortokens.dev": { "request": { "uid": uid, "name": "support-1" } } });
        assert!(opened_by(Some(&stamped("uid-1")), "uid-1"));
        assert!(!opened_by(Some(&stamped("uid-2")), "uid-1"));
        // The customer's own session, someone else's impersonation, a look-alike key.
        assert!(!opened_by(None, "uid-1"));
        assert!(!opened_by(Some(&json!({ "sub": "user_support" })), "uid-1"));
        assert!(!opened_by(
            Some(&json!({ "sub": "x", "actortokens.dev/request": { "uid": "uid-1" } })),
            "uid-1"
        ));
        assert!(!opened_by(
            Some(&json!({ "actortokens.dev": { "request": "uid-1" } })),
            "uid-1"
        ));
        assert!(!opened_by(Some(&stamped("")), ""));
    }
}
