//! Where a token came from, written into its actor under the operator's own key
//! (`actortokens.dev`): Clerk copies the actor into the impersonation session's `act` claim,
//! so the application itself sees which request, who asked, who approved and why. The whole
//! object stays under [`MAX_BYTES`] of JSON: a session token lives in a cookie.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ActorTokenRequest, ProvenanceMode, UserInfo};

/// The most the provenance object can take as JSON, whatever the request holds.
pub const MAX_BYTES: usize = 1024;
/// Longest request name kept (Kubernetes allows 253; the UID identifies the request anyway).
const NAME_BYTES: usize = 128;
/// Longest username kept, for the requester and the approver.
const USER_BYTES: usize = 96;
/// Longest reason kept (the request's own `reason` holds up to 1024 characters).
const REASON_BYTES: usize = 128;

/// The request a token was made for. Always written: ending the sessions a token opened
/// depends on finding them by the request's UID.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

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

/// The provenance of a token minted now for `request`, approved by `approver`.
pub fn of(
    request: &ActorTokenRequest,
    approver: Option<&UserInfo>,
    mode: ProvenanceMode,
) -> Provenance {
    let meta = &request.metadata;
    let identity = RequestIdentity {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: cut(meta.name.as_deref().unwrap_or_default(), NAME_BYTES),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    match mode {
        ProvenanceMode::Minimal => Provenance {
            request: identity,
            requester: None,
            approver: None,
            reason: None,
        },
        ProvenanceMode::Full => Provenance {
            request: identity,
            requester: request
                .spec
                .requester
                .as_ref()
                .map(|r| cut(&r.username, USER_BYTES)),
            approver: approver.map(|a| cut(&a.username, USER_BYTES)),
            reason: request.spec.reason.as_deref().map(|r| cut(r, REASON_BYTES)),
        },
    }
}

impl Provenance {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("provenance serialises")
    }
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

    fn request(name: &str, requester: &str, reason: Option<&str>) -> ActorTokenRequest {
        serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": name, "namespace": "support", "uid": "2f1e9c6a-0b55-4bd4-9c3e-3c1c3a5f7e10" },
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
        let p = of(&r, Some(&approver("bob@example.com")), ProvenanceMode::Full);
        assert_eq!(
            p.to_value(),
            json!({
                "request": { "namespace": "support", "name": "ticket-1", "uid": "2f1e9c6a-0b55-4bd4-9c3e-3c1c3a5f7e10" },
                "requester": "alice@example.com",
                "approver": "bob@example.com",
                "reason": "TICKET-1"
            })
        );
    }

    #[test]
    fn minimal_keeps_only_the_request() {
        let r = request("ticket-1", "alice@example.com", Some("TICKET-1"));
        let p = of(&r, Some(&approver("bob")), ProvenanceMode::Minimal);
        assert_eq!(p.to_value().as_object().unwrap().len(), 1);
        assert_eq!(p.request.uid, "2f1e9c6a-0b55-4bd4-9c3e-3c1c3a5f7e10");
    }

    #[test]
    fn stays_within_its_bound_whatever_the_request_holds() {
        // The longest name Kubernetes allows, long usernames, and a reason of four-byte
        // characters and quotes (which JSON escapes): still small enough for a cookie.
        let name = "n".repeat(253);
        let long_user = format!("{}@example.com", "u".repeat(500));
        let reason = "\"🦀".repeat(300);
        let r = request(&name, &long_user, Some(&reason));
        let p = of(&r, Some(&approver(&long_user)), ProvenanceMode::Full);
        let bytes = serde_json::to_vec(&p.to_value()).unwrap().len();
        assert!(bytes <= MAX_BYTES, "{bytes} bytes");
        assert!(p.request.name.ends_with('…') && p.request.name.len() <= NAME_BYTES);
        assert!(p.reason.as_deref().unwrap().ends_with('…'));
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghij", 8), "abcde…");
        let crabs = "🦀🦀🦀";
        let cut = cut(crabs, 9);
        assert!(
            cut.len() <= 9 && cut.starts_with('🦀') && cut.ends_with('…'),
            "{cut}"
        );
    }
}
