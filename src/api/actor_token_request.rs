//! `ActorTokenRequest`: one request for one Clerk actor token, i.e. one sign-in link that lets
//! an actor (support staff) act as a user for a bounded time.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PROVENANCE_KEY, SpecDuration, UserInfo};

/// What a user applies: impersonate `userId` as `actor` for `expiresIn`. The spec can't be
/// changed once created: a changed request is a new request, never a second token for the old.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "actortokens.dev",
    version = "v1alpha1",
    kind = "ActorTokenRequest",
    namespaced,
    status = "ActorTokenRequestStatus",
    shortname = "atr",
    category = "clerk",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Requester","type":"string","jsonPath":".spec.requester.username"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.userId"}"#,
    printcolumn = r#"{"name":"Actor","type":"string","jsonPath":".spec.actor.sub"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: create a new ActorTokenRequest instead"))]
#[serde(rename_all = "camelCase")]
pub struct ActorTokenRequestSpec {
    /// Who created the request, as the API server authenticated them. Filled in by the
    /// admission policy on create; a value that differs from the creating user is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<UserInfo>,

    /// The Clerk user to impersonate (`user_…`).
    #[schemars(length(min = 6, max = 64), regex(pattern = r"^user_[A-Za-z0-9]+$"))]
    pub user_id: String,

    /// Who impersonates: `sub` is the impersonating Clerk user's ID. Up to 15 more keys
    /// (identifiers) with string values are kept as given; Clerk copies the whole actor into the
    /// session token's `act` claim.
    pub actor: Actor,

    /// How long the sign-in link can be used. Default 1h, at most 24h.
    #[serde(default = "default_expires_in")]
    pub expires_in: SpecDuration,

    /// How long the session the link opens may last. Default 30m, at most 24h.
    #[serde(default = "default_session_max_duration")]
    pub session_max_duration: SpecDuration,

    /// The Clerk instance to ask. Default: the ClusterClerkInstance named `default`.
    #[serde(default)]
    pub instance_ref: InstanceRef,

    /// The Secret to write the sign-in link into, in the request's namespace. Default: the
    /// request's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("!format.dns1123Subdomain().validate(self).hasValue()").message("secretName must be a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, no empty part (e.g. 'a..b')"))]
    pub secret_name: Option<String>,

    /// Labels for the Secret (at most 32). The `actortokens.dev/` prefix is the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[x_kube(
        validation = Rule::new("self.all(k, !format.qualifiedName().validate(k).hasValue())").message("secretLabels: each key must be a label key: an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
        validation = Rule::new("self.all(k, !format.labelValue().validate(self[k]).hasValue())").message("secretLabels: each value must be a label value: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (or empty)"),
        validation = Rule::new("self.all(k, !k.startsWith('actortokens.dev/') && k != 'app.kubernetes.io/managed-by')").message("secretLabels: keys under actortokens.dev/ and app.kubernetes.io/managed-by are set by the operator"),
    )]
    pub secret_labels: BTreeMap<String, String>,

    /// Annotations for the Secret (at most 32, each value up to 4096 characters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(
        validation = Rule::new("self.all(k, !format.qualifiedName().validate(k).hasValue())").message("secretAnnotations: each key must be an annotation key: an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
    )]
    pub secret_annotations: BTreeMap<String, String>,

    /// Why: free text for people and audit, such as a ticket link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

fn default_expires_in() -> SpecDuration {
    SpecDuration::new("1h")
}

fn default_session_max_duration() -> SpecDuration {
    SpecDuration::new("30m")
}

/// The impersonating party. `sub` is required; every other key is passed to Clerk unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Actor {
    pub sub: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Actor {
    /// The actor as Clerk's API takes it: one JSON object holding `sub` and the extra keys.
    pub fn to_clerk(&self) -> serde_json::Map<String, Value> {
        let mut map: serde_json::Map<String, Value> = self.extra.clone().into_iter().collect();
        map.insert("sub".into(), Value::String(self.sub.clone()));
        map
    }
}

/// At most this many keys in `actor`, `sub` included.
pub const ACTOR_MAX_KEYS: usize = 16;
/// The longest value of an `actor` key. With the key count, it bounds a request's size: the
/// operator caches every request, and a session token lives in a cookie.
pub const ACTOR_MAX_VALUE: usize = 256;

impl JsonSchema for Actor {
    fn schema_name() -> Cow<'static, str> {
        "Actor".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // A map of bounded strings, not an object with `sub` among its properties: CEL can
        // iterate a map's keys, never an object's unknown fields, and a map's values are
        // bounded by the schema itself.
        json_schema!({
            "type": "object",
            "description": "Who impersonates: `sub` is the impersonating Clerk user's ID. Other keys (strings) are kept as given; Clerk copies the whole actor into the session token's `act` claim.",
            "required": ["sub"],
            "maxProperties": ACTOR_MAX_KEYS,
            "additionalProperties": { "type": "string", "maxLength": ACTOR_MAX_VALUE },
            "x-kubernetes-validations": [
                {
                    "rule": "self.sub.size() >= 1 && self.sub.size() <= 64",
                    "message": "actor.sub, the impersonating Clerk user's ID, must be 1 to 64 characters"
                },
                {
                    "rule": format!("!('{PROVENANCE_KEY}' in self)"),
                    "message": format!("actor.{PROVENANCE_KEY} is written by the operator (who asked, why, who approved): leave it out")
                },
                {
                    "rule": "self.all(k, k.size() <= 64 && k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
                    "message": "actor keys must be identifiers: up to 64 letters, digits and _, not starting with a digit"
                }
            ]
        })
    }
}

/// Which Clerk instance issues the token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct InstanceRef {
    #[serde(default)]
    pub kind: InstanceKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl Default for InstanceRef {
    fn default() -> Self {
        Self {
            kind: InstanceKind::ClusterClerkInstance,
            name: "default".into(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum InstanceKind {
    /// A ClerkInstance in the request's own namespace.
    ClerkInstance,
    /// A cluster-wide ClusterClerkInstance.
    #[default]
    ClusterClerkInstance,
}

/// Where a request is in its life. `Issued` is the only phase with a usable link; the last
/// four are final.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Waiting for a token (or for the instance, or for Clerk).
    Pending,
    /// The Secret holds a live sign-in link.
    Issued,
    /// The link's time ran out; the token was revoked if unused and the Secret deleted.
    Expired,
    /// The token was revoked before it expired (its Secret was deleted).
    Revoked,
    /// The request can't be served as written (see the Ready condition).
    Failed,
    /// An approver said no (the `Denied` condition); nothing was minted.
    Denied,
}

impl Phase {
    /// Final phases: nothing more will happen until the request is deleted.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Phase::Expired | Phase::Revoked | Phase::Failed | Phase::Denied
        )
    }
}

/// What the operator has done for a request. Never holds a token or a link.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorTokenRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Clerk's ID of the token issued for this request (not a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The fingerprint of the Clerk secret key that issued `tokenId` (a digest, never the
    /// key): a revoke through another key proves nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The operator's seal on the record of `tokenId` (an HMAC over the request's UID, the
    /// token's ID, its expiry and `keyFingerprint`): the operator revokes no token on the
    /// word of a record it didn't write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_seal: Option<String>,
    /// The Secret holding the sign-in link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    /// When the sign-in link stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    /// Tokens Clerk may have created for this request whose answer never arrived (the
    /// connection dropped). Clerk can't list tokens, so these can't be revoked: each stays
    /// usable by whoever holds its link (no one does) until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_tokens: Option<u32>,
    /// Tokens minted for this request so far, whatever became of them. At most 3 over its
    /// life: past that the request fails (`MintLimitReached`) instead of minting again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_minted: Option<u32>,
    /// Impersonation sessions this request's tokens opened that the operator ended when it
    /// revoked them (the link had been used, so the token itself could no longer be revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_ended: Option<u32>,
    /// Tokens made for this request that are not (or no longer) its recorded token and still
    /// have to be revoked: the loser of a race between two operators, or a token whose link
    /// never reached its Secret. Kept here so that no restart or failed call forgets them;
    /// each goes once Clerk confirms it is revoked, or once it has expired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_revokes: Vec<PendingRevoke>,
    /// Who approved or denied the request (the `Approved` or `Denied` condition), stamped by
    /// admission from the user who added the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<UserInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A token to revoke, and when it dies anyway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevoke {
    pub token_id: String,
    pub expires_at: Time,
    /// The fingerprint of the key that issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The operator's seal on this record (see `status.tokenSeal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

impl ActorTokenRequest {
    /// The Secret this request writes: `spec.secretName`, else the request's own name.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }

    pub fn phase(&self) -> Option<Phase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
}
