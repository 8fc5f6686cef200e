//! Why a reconcile failed, in terms a user can act on: each error maps to the reason of the
//! request's `Ready` condition.

use crate::clerk::{ClerkError, KeyFingerprint};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// The instance, its key Secret or the key in it is missing or malformed. Fixable by the
    /// platform team; retried.
    #[error("{0}")]
    InstanceNotReady(String),

    /// The instance's `apiUrl` is not one the operator may send a key to.
    #[error("{0}")]
    ApiUrlNotAllowed(String),

    #[error(transparent)]
    Clerk(#[from] ClerkError),

    /// The Secret could not be written or deleted for a reason other than a conflict.
    #[error("Secret {name}: {source}")]
    Secret { name: String, source: kube::Error },

    /// A revoke went through a key other than the one that issued the token, and that key
    /// doesn't know it: the instance now points elsewhere. Not a success: the token is kept
    /// and revoked through its own key when possible, until it expires.
    #[error(
        "token {token_id} was issued with key {issued_by}, but its instance now uses key \
         {asked_with}, which does not know it; still trying to revoke it (it expires at {expires_at})"
    )]
    OtherKey {
        token_id: String,
        issued_by: KeyFingerprint,
        asked_with: KeyFingerprint,
        expires_at: String,
    },

    /// Ending the impersonation sessions a request's token opened failed.
    #[error("ending the sessions token {token_id} opened: {source}")]
    Sessions {
        token_id: String,
        source: ClerkError,
    },
}

impl Error {
    /// Whether this error can end a reconcile that minted a token (its answer lost, or its
    /// Secret not written): the next mint must wait for the backoff.
    pub fn may_follow_a_mint(&self) -> bool {
        match self {
            Error::Clerk(e) => e.outcome_unknown(),
            Error::Secret { .. } => true,
            _ => false,
        }
    }

    /// What the API server said, in its own words, for a refused write; else the whole error.
    pub fn refusal(&self) -> String {
        match self {
            Error::Secret {
                name,
                source: kube::Error::Api(status),
            } => format!("Secret {name}: {}", status.message),
            other => other.to_string(),
        }
    }

    /// The condition reason that tells a user what is wrong.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::Secret { .. } => "KubernetesError",
            Error::InstanceNotReady(_) => "InstanceNotReady",
            Error::ApiUrlNotAllowed(_) => "ApiUrlNotAllowed",
            Error::Clerk(e) | Error::Sessions { source: e, .. } => e.reason(),
            Error::OtherKey { .. } => "KeyChanged",
        }
    }
}

/// True when a Kubernetes write lost an optimistic-concurrency race (HTTP 409).
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_conflict())
}

pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

pub fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_already_exists())
}

/// The HTTP status of an API server's refusal, if it was one.
pub fn refusal_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
