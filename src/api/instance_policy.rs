//! What an instance allows: which Clerk users may be impersonated, who may act as whom, whether
//! a second person must approve, what goes into the session token, and how long finished
//! requests stay. Checked by the admission policies the chart ships and again by the operator
//! before every mint.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SpecDuration, Subject};

/// Clerk user IDs that may, or may not, be impersonated through this instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPolicy {
    /// If set, only these users may be impersonated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 1000),
        inner(length(min = 6, max = 64), regex(pattern = r"^user_[A-Za-z0-9]+$"))
    )]
    pub allow: Option<Vec<String>>,
    /// Never these users, even for someone who may impersonate anyone: admins, staff accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 1000),
        inner(length(min = 6, max = 64), regex(pattern = r"^user_[A-Za-z0-9]+$"))
    )]
    pub deny: Vec<String>,
}

/// Who may act as whom: the requesters in `subjects` may only appear as one of `actors` (Clerk
/// user IDs) in the session token's `act` claim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorBinding {
    #[schemars(length(min = 1, max = 100))]
    pub subjects: Vec<Subject>,
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 64)))]
    pub actors: Vec<String>,
}

/// A second person approves each request before a token is minted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// Requests through this instance wait for an `Approved` condition before anything is minted.
    pub required: bool,
    /// How long an approval stays good; an older one must be given again. Default 1h.
    #[serde(default = "default_valid_for")]
    pub valid_for: SpecDuration,
    /// Requesters whose requests need no further approval: typically a GitOps controller's
    /// ServiceAccount, where the reviewed pull request was the approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub exempt: Vec<Subject>,
}

fn default_valid_for() -> SpecDuration {
    SpecDuration::new("1h")
}

/// Whether the operator writes who asked, why and who approved into the token's actor (and so
/// into the session token's `act` claim). The request's UID is always written: ending the
/// sessions a token opened depends on it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProvenanceMode {
    #[default]
    Full,
    /// Only the request's UID.
    Minimal,
}

/// The policy fields shared by ClerkInstance and ClusterClerkInstance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstancePolicy {
    /// Which Clerk users may be impersonated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserPolicy>,
    /// If set, each requester may only act as the Clerk users bound to them here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub actor_bindings: Option<Vec<ActorBinding>>,
    /// Whether a second person must approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// What the operator adds to the actor: `Full` (default) or `Minimal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ProvenanceMode>,
    /// Delete finished requests (Expired, Revoked, Failed, Denied) this long after they
    /// finished. Never a request a GitOps tool manages: it would create it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_finished_after: Option<SpecDuration>,
}
