//! Why a reconcile failed, in terms a user can act on: each error maps to the reason of the
//! request's `Ready` condition.

use crate::clerk::ClerkError;

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
}

impl Error {
    /// The condition reason that tells a user what is wrong.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::Secret { .. } => "KubernetesError",
            Error::InstanceNotReady(_) => "InstanceNotReady",
            Error::ApiUrlNotAllowed(_) => "ApiUrlNotAllowed",
            Error::Clerk(e) => e.reason(),
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
