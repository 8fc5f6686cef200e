//! Where a token came from, written into its actor under the operator's own key
//! ([`PROVENANCE_KEY`]): Clerk copies the actor into the impersonation session and its
//! session token's `act` claim, so the application itself sees which request, who asked, who
//! approved and why; and the operator finds the sessions a request's tokens opened when it
//! revokes them, and ends those and no others. The whole object stays under [`MAX_BYTES`] of
//! JSON: a session token lives in a cookie.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::api::PROVENANCE_KEY;
use crate::api::{ActorTokenRequest, ProvenanceMode, UserInfo};

/// The most the provenance object can take as JSON, whatever the request holds.
pub const MAX_BYTES: usize = 1024;
/// Longest request name kept (Kubernetes allows 253; the UID identifies the request anyway).
const NAME_BYTES: usize = 128;
/// Longest username kept, for the requester and the approver.
const USER_BYTES: usize = 96;
/// Longest reason kept (the request's own `reason` holds up to 1024 characters).
const REASON_BYTES: usize = 128;

/// What the operator adds to a token's actor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub request: RequestIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The request a token was issued for. The UID is what identifies it (a request deleted and
/// created again under the same name is another request); it stays even where an instance
/// keeps provenance `Minimal`, since ending a token's sessions depends on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uid: String,
}

impl Provenance {
    /// The provenance of a token minted now for `request`, approved by `approver`; `None`
    /// for a request the API server hasn't given a UID (never the case for a stored object).
    pub fn of(
        request: &ActorTokenRequest,
        approver: Option<&UserInfo>,
        mode: ProvenanceMode,
    ) -> Option<Provenance> {
        let meta = &request.metadata;
        let uid = meta.uid.clone()?;
        Some(match mode {
            ProvenanceMode::Minimal => Provenance {
                request: RequestIdentity {
                    namespace: None,
                    name: None,
                    uid,
                },
                requester: None,
                approver: None,
                reason: None,
            },
            ProvenanceMode::Full => Provenance {
                request: RequestIdentity {
                    namespace: meta.namespace.clone(),
                    name: meta.name.as_deref().map(|n| cut(n, NAME_BYTES)),
                    uid,
                },
                requester: request
                    .spec
                    .requester
                    .as_ref()
                    .map(|r| cut(&r.username, USER_BYTES)),
                approver: approver.map(|a| cut(&a.username, USER_BYTES)),
                reason: request.spec.reason.as_deref().map(|r| cut(r, REASON_BYTES)),
            },
        })
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a Provenance serialises")
    }
}

/// Puts `provenance` into `actor` under [`PROVENANCE_KEY`], replacing anything there: a user
/// can't claim the operator's key.
pub fn stamp(actor: &mut Map<String, Value>, provenance: &Provenance) {
    actor.insert(PROVENANCE_KEY.to_owned(), provenance.to_value());
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

/// `text` cut to at most `max` bytes, on a character boundary, marked with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const UID: &str = "2f1e9c6a-0b55-4bd4-9c3e-3c1c3a5f7e10";

    fn request(name: &str, requester: &str, reason: Option<&str>) -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": name, "namespace": "support", "uid": UID },
            "spec": {
                "userId": "user_a", "actor": { "sub": "user_b" },
                "requester": { "username": requester }, "reason": reason
            }
        }))
        .unwrap()
    }

    fn approver(name: &str) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: None,
            groups: vec![],
        }
    }

    #[test]
    fn says_which_request_who_asked_who_approved_and_why() {
        let r = request("ticket-1", "alice@example.com", Some("TICKET-1"));
        let p = Provenance::of(&r, Some(&approver("bob@example.com")), ProvenanceMode::Full);
        assert_eq!(
            p.unwrap().to_value(),
            json!({
                "request": { "namespace": "support", "name": "ticket-1", "uid": UID },
                "requester": "alice@example.com",
                "approver": "bob@example.com",
                "reason": "TICKET-1"
            })
        );
    }

    #[test]
    fn minimal_keeps_only_what_revoking_needs() {
        let r = request("ticket-1", "alice@example.com", Some("TICKET-1"));
        let p = Provenance::of(&r, Some(&approver("bob")), ProvenanceMode::Minimal).unwrap();
        assert_eq!(p.to_value(), json!({ "request": { "uid": UID } }));
    }

    #[test]
    fn stays_within_its_bound_whatever_the_request_holds() {
        // The longest name Kubernetes allows, long usernames, and a reason of four-byte
        // characters and quotes (which JSON escapes): still small enough for a cookie.
        let name = "n".repeat(253);
        let long_user = format!("{}@example.com", "u".repeat(500));
        let reason = "\"🦀".repeat(300);
        let r = request(&name, &long_user, Some(&reason));
        let p = Provenance::of(&r, Some(&approver(&long_user)), ProvenanceMode::Full).unwrap();
        let bytes = serde_json::to_vec(&p.to_value()).unwrap().len();
        assert!(bytes <= MAX_BYTES, "{bytes} bytes");
        let name = p.request.name.as_deref().unwrap();
        assert!(name.ends_with('…') && name.len() <= NAME_BYTES);
        assert!(p.reason.as_deref().unwrap().ends_with('…'));
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghij", 8), "abcde…");
        let crabs = cut("🦀🦀🦀", 9);
        assert!(crabs.len() <= 9 && crabs.starts_with('🦀') && crabs.ends_with('…'));
    }

    #[test]
    fn a_forged_provenance_in_the_spec_is_overwritten() {
        let r = request("support-1", "alice", None);
        let mut actor = Map::new();
        actor.insert(
            PROVENANCE_KEY.into(),
            json!({ "request": { "uid": "someone-elses-uid" }, "approver": "me" }),
        );
        let p = Provenance::of(&r, None, ProvenanceMode::Full).unwrap();
        stamp(&mut actor, &p);
        assert_eq!(actor[PROVENANCE_KEY], p.to_value());
        assert_eq!(actor[PROVENANCE_KEY]["request"]["uid"], UID);
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
