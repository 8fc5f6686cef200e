//! `ClerkInstance` (namespaced) and `ClusterClerkInstance` (cluster-wide): where to reach a
//! Clerk instance and which Secret holds its secret key, as cert-manager has Issuer and
//! ClusterIssuer. A ClerkInstance's key Secret is in its own namespace; a
//! ClusterClerkInstance's is in the operator's namespace. So no request can make the operator
//! read a Secret from another namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InstancePolicy, SpecDuration};

/// A Clerk instance usable by ActorTokenRequests in the same namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "actortokens.dev",
    version = "v1alpha1",
    kind = "ClerkInstance",
    namespaced,
    status = "ClerkInstanceStatus",
    category = "clerk",
    printcolumn = r#"{"name":"API URL","type":"string","jsonPath":".spec.apiUrl"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[kube(derive = "PartialEq")]
#[serde(rename_all = "camelCase")]
pub struct ClerkInstanceSpec {
    /// Clerk's Backend API base URL.
    #[serde(default = "default_api_url")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub api_url: String,

    /// The Secret key and entry holding the instance's secret key (`sk_test_…` or `sk_live_…`).
    pub secret_key_ref: SecretKeyRef,

    /// How many requests the operator may send per period. Default: what Clerk allows the key,
    /// 100 per 10s for a development (`sk_test_`) key, 1000 per 10s for a production one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// The longest `expiresIn` a request may ask of this instance (default and most: 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expires_in: Option<SpecDuration>,

    /// The longest `sessionMaxDuration` a request may ask of this instance (default and most: 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_duration: Option<SpecDuration>,

    /// Who may impersonate whom through this instance, approval, provenance and cleanup.
    #[serde(flatten)]
    pub policy: InstancePolicy,
}

/// A cluster-wide Clerk instance; its key Secret is in the operator's own namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "actortokens.dev",
    version = "v1alpha1",
    kind = "ClusterClerkInstance",
    status = "ClerkInstanceStatus",
    category = "clerk",
    printcolumn = r#"{"name":"API URL","type":"string","jsonPath":".spec.apiUrl"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[kube(derive = "PartialEq")]
#[serde(rename_all = "camelCase")]
pub struct ClusterClerkInstanceSpec {
    #[serde(flatten)]
    pub instance: ClerkInstanceSpec,

    /// Only requests in namespaces whose labels match may use this instance. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

fn default_api_url() -> String {
    "https://api.clerk.com/v1".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The entry in the Secret's data.
    #[serde(default = "default_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_key() -> String {
    "secretKey".into()
}

/// At most `requests` calls to Clerk in any window of `period`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RateLimitSpec {
    #[schemars(range(min = 1, max = 100000))]
    pub requests: i32,
    pub period: SpecDuration,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClerkInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}
