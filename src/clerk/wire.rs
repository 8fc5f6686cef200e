//! What goes over the wire: the bodies the client sends and the answers it reads, as Clerk's
//! OpenAPI spec (version 2026-05-12) describes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::classify::describe_json_error;
use super::error::ClerkError;
use super::secret::Credential;

/// The body of `POST /v1/actor_tokens`, serialised exactly as the spec's request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewActorToken {
    /// The user being impersonated.
    pub user_id: String,
    /// The impersonator: must hold `sub` (the actor's user ID); every other key is passed
    /// through unchanged and ends up in the session token's `act` claim.
    pub actor: serde_json::Map<String, serde_json::Value>,
    /// How long the token can be used.
    pub expires_in_seconds: u64,
    /// How long the session it opens lasts.
    pub session_max_duration_in_seconds: u64,
}

/// An actor token's status, as Clerk reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum ActorTokenStatus {
    /// Not used yet: the only status that can be revoked.
    Pending,
    /// Someone signed in with it.
    Accepted,
    Revoked,
    /// A status this client doesn't know.
    Other(String),
}

impl From<String> for ActorTokenStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "pending" => ActorTokenStatus::Pending,
            "accepted" => ActorTokenStatus::Accepted,
            "revoked" => ActorTokenStatus::Revoked,
            _ => ActorTokenStatus::Other(value),
        }
    }
}

impl fmt::Display for ActorTokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActorTokenStatus::Pending => "pending",
            ActorTokenStatus::Accepted => "accepted",
            ActorTokenStatus::Revoked => "revoked",
            ActorTokenStatus::Other(other) => other,
        })
    }
}

/// A freshly created actor token. `token` and `url` are credentials, and Clerk hands them
/// out only once.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedActorToken {
    pub id: String,
    pub status: ActorTokenStatus,
    pub user_id: String,
    pub token: Credential,
    pub url: Credential,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

/// What Clerk answered to a revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Clerk revoked the pending token: its link was never used.
    Revoked,
    /// 400: the token was not pending: accepted (its link was used and may have opened a
    /// session), already revoked, or expired. After an attempt whose answer was lost this can
    /// also be the client's own earlier revoke.
    NotPending,
    /// 404: Clerk doesn't know the token, through this key. Proof that it is dead only when
    /// this key is the one that made it.
    NotFound,
}

/// A session, as `GET /v1/sessions` lists it: only what the operator reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub status: String,
    /// The actor of an impersonation session: Clerk copies the actor token's `actor` into
    /// it. `None` for the user's own sessions.
    #[serde(default)]
    pub actor: Option<serde_json::Value>,
}

/// What Clerk answered to ending a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRevokeOutcome {
    /// Clerk ended the session.
    Revoked,
    /// 400: the session was no longer active (it ended or expired meanwhile).
    NotActive,
    /// 404: Clerk doesn't know the session (any more).
    NotFound,
}

#[derive(Deserialize)]
struct ActorTokenBody {
    id: String,
    status: ActorTokenStatus,
    user_id: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    url: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// Parses the `ActorToken` answer to a create. A 2xx whose body can't be used still means
/// the token exists, so the error carries its ID when the body shows one.
pub(crate) fn parse_issued(status: u16, body: &[u8]) -> Result<IssuedActorToken, ClerkError> {
    let invalid = |detail: String| ClerkError::InvalidAnswer {
        status,
        detail,
        token_id: serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
            .filter(|id| !id.is_empty()),
    };
    let parsed: ActorTokenBody =
        serde_json::from_slice(body).map_err(|e| invalid(describe_json_error(&e)))?;
    if parsed.id.is_empty() {
        return Err(invalid("the token ID is empty".to_owned()));
    }
    let (Some(token), Some(url)) = (parsed.token, parsed.url) else {
        return Err(invalid("the answer holds no token or url".to_owned()));
    };
    let created_at = unix_timestamp(parsed.created_at)
        .ok_or_else(|| invalid("created_at is out of range".to_owned()))?;
    let updated_at = unix_timestamp(parsed.updated_at)
        .ok_or_else(|| invalid("updated_at is out of range".to_owned()))?;
    Ok(IssuedActorToken {
        id: parsed.id,
        status: parsed.status,
        user_id: parsed.user_id,
        token: Credential::new(token),
        url: Credential::new(url),
        created_at,
        updated_at,
    })
}

/// Parses one page of `GET /v1/sessions`. The spec's answer is an array of sessions; with
/// `paginated=true` Clerk wraps pages as `{"data": [...], "total_count": n}`, so both are read.
pub(crate) fn parse_session_page(status: u16, body: &[u8]) -> Result<Vec<Session>, ClerkError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Page {
        Plain(Vec<Session>),
        Wrapped { data: Vec<Session> },
    }
    match serde_json::from_slice::<Page>(body) {
        Ok(Page::Plain(sessions) | Page::Wrapped { data: sessions }) => Ok(sessions),
        Err(e) => Err(ClerkError::InvalidAnswer {
            status,
            detail: format!("not a list of sessions: {}", describe_json_error(&e)),
            token_id: None,
        }),
    }
}

/// Reads a Clerk timestamp. The spec says only "Unix timestamp"; Clerk's README for this
/// project says seconds, while Clerk's other objects use milliseconds. Values of 10^11 and
/// more are read as milliseconds (10^11 s is the year 5138, 10^11 ms is 1973), so both work.
pub(crate) fn unix_timestamp(value: i64) -> Option<jiff::Timestamp> {
    const MILLIS_FROM: i64 = 100_000_000_000;
    if value.unsigned_abs() >= MILLIS_FROM as u64 {
        jiff::Timestamp::from_millisecond(value).ok()
    } else {
        jiff::Timestamp::from_second(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_actor_token_serialises_as_the_spec_body() {
        let mut actor = serde_json::Map::new();
        actor.insert("sub".into(), json!("user_actor"));
        actor.insert("reason".into(), json!({"ticket": 42, "tags": ["a", "b"]}));
        let request = NewActorToken {
            user_id: "user_target".into(),
            actor,
            expires_in_seconds: 600,
            session_max_duration_in_seconds: 300,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "user_id": "user_target",
                "actor": {"sub": "user_actor", "reason": {"ticket": 42, "tags": ["a", "b"]}},
                "expires_in_seconds": 600,
                "session_max_duration_in_seconds": 300,
            })
        );
    }

    fn answer(overrides: serde_json::Value) -> Vec<u8> {
        let mut body = json!({
            "object": "actor_token",
            "id": "act_123",
            "status": "pending",
            "user_id": "user_target",
            "actor": {"sub": "user_actor"},
            "token": "SECRETTOKEN",
            "url": "https://accounts.example/ticket=SECRETTOKEN",
            "created_at": 1_778_580_000,
            "updated_at": 1_778_580_001,
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        serde_json::to_vec(&body).unwrap()
    }

    #[test]
    fn parses_the_actor_token_answer() {
        let issued = parse_issued(200, &answer(json!({}))).unwrap();
        assert_eq!(issued.id, "act_123");
        assert_eq!(issued.status, ActorTokenStatus::Pending);
        assert_eq!(issued.user_id, "user_target");
        assert_eq!(issued.token.expose(), "SECRETTOKEN");
        assert_eq!(
            issued.url.expose(),
            "https://accounts.example/ticket=SECRETTOKEN"
        );
        assert_eq!(issued.created_at.as_second(), 1_778_580_000);
        assert_eq!(issued.updated_at.as_second(), 1_778_580_001);
        let shown = format!("{issued:?}");
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");

        // Milliseconds, as Clerk uses elsewhere, give the same instant.
        let issued = parse_issued(
            200,
            &answer(json!({"created_at": 1_778_580_000_123i64, "status": "weird"})),
        )
        .unwrap();
        assert_eq!(issued.created_at.as_millisecond(), 1_778_580_000_123);
        assert_eq!(issued.status, ActorTokenStatus::Other("weird".into()));
    }

    #[test]
    fn an_unusable_create_answer_keeps_the_token_id_and_hides_credentials() {
        let err = parse_issued(200, &answer(json!({"url": null}))).unwrap_err();
        assert_eq!(err.token_id(), Some("act_123"));
        assert!(err.outcome_unknown());
        assert_eq!(err.reason(), "ClerkInvalidAnswer");

        // A credential in a field of the wrong type must not be quoted.
        let err = parse_issued(201, &answer(json!({"created_at": "SECRETTOKEN"}))).unwrap_err();
        assert_eq!(err.token_id(), Some("act_123"));
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        }

        let err = parse_issued(200, b"<html>oops</html>").unwrap_err();
        assert_eq!(err.token_id(), None);
        assert!(matches!(err, ClerkError::InvalidAnswer { status: 200, .. }));

        let err = parse_issued(200, &answer(json!({"id": ""}))).unwrap_err();
        assert_eq!(err.token_id(), None);
    }

    fn session(id: &str, actor: serde_json::Value) -> serde_json::Value {
        json!({
            "object": "session", "id": id, "user_id": "user_1", "client_id": "client_1",
            "actor": actor, "status": "active", "last_active_at": 1, "expire_at": 2,
            "abandon_at": 3, "updated_at": 1, "created_at": 1,
        })
    }

    #[test]
    fn a_session_page_is_read_plain_or_wrapped() {
        let plain = json!([
            session("sess_1", json!({"sub": "user_a"})),
            session("sess_2", json!(null))
        ]);
        let sessions = parse_session_page(200, plain.to_string().as_bytes()).unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].id, "sess_1");
        assert_eq!(sessions[0].actor, Some(json!({"sub": "user_a"})));
        assert_eq!(sessions[1].actor, None);
        let wrapped = json!({"data": [session("sess_3", json!(null))], "total_count": 1});
        let sessions = parse_session_page(200, wrapped.to_string().as_bytes()).unwrap();
        assert_eq!(sessions[0].id, "sess_3");
        let err = parse_session_page(200, b"{\"errors\":[]}").unwrap_err();
        assert!(matches!(err, ClerkError::InvalidAnswer { .. }), "{err:?}");
    }

    #[test]
    fn timestamps_in_seconds_or_milliseconds() {
        assert_eq!(unix_timestamp(0).unwrap().as_second(), 0);
        assert_eq!(
            unix_timestamp(99_999_999_999).unwrap().as_second(),
            99_999_999_999
        );
        assert_eq!(
            unix_timestamp(100_000_000_000).unwrap().as_millisecond(),
            100_000_000_000
        );
        assert!(unix_timestamp(i64::MAX).is_none());
    }
}
