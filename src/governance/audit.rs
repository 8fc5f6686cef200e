//! One log line per change of a request's standing, for a SIEM: who asked, who approved, whom
//! they impersonate as whom, and what happened. With `--log-format json` each is one JSON
//! object; select them by `target == "audit"`. Never a token, a link or a key: token IDs only.

use kube::ResourceExt;

use crate::api::ActorTokenRequest;

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// First seen by the operator.
    Requested,
    /// Refused by a governance check (no token).
    Refused,
    Approved,
    Denied,
    /// A decision that could not stand was taken away.
    DecisionDiscarded,
    Issued,
    Revoked,
    Expired,
    /// Failed for another reason (Clerk refused, the Secret could not be written...).
    Failed,
    /// A finished request deleted by the operator (`deleteFinishedAfter`).
    Deleted,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Requested => "requested",
            AuditEvent::Refused => "refused",
            AuditEvent::Approved => "approved",
            AuditEvent::Denied => "denied",
            AuditEvent::DecisionDiscarded => "decision-discarded",
            AuditEvent::Issued => "issued",
            AuditEvent::Revoked => "revoked",
            AuditEvent::Expired => "expired",
            AuditEvent::Failed => "failed",
            AuditEvent::Deleted => "deleted",
        }
    }
}

/// Logs `event` for `request`; `reason` is the condition reason where there is one, `detail`
/// a short human note (never a credential).
pub fn record(
    event: AuditEvent,
    request: &ActorTokenRequest,
    token_id: Option<&str>,
    reason: Option<&str>,
    detail: Option<&str>,
) {
    let status = request.status.as_ref();
    tracing::info!(
        target: "audit",
        event = event.as_str(),
        request = %format!("{}/{}", request.namespace().unwrap_or_default(), request.name_any()),
        uid = request.metadata.uid.as_deref().unwrap_or_default(),
        requester = request.spec.requester.as_ref().map(|r| r.username.as_str()).unwrap_or_default(),
        approver = status.and_then(|s| s.decided_by.as_ref()).map(|d| d.username.as_str()).unwrap_or_default(),
        user_id = request.spec.user_id.as_str(),
        actor = request.spec.actor.sub.as_str(),
        instance = %format!("{:?}/{}", request.spec.instance_ref.kind, request.spec.instance_ref.name),
        token_id = token_id.unwrap_or_default(),
        reason = reason.unwrap_or_default(),
        detail = detail.unwrap_or_default(),
        "audit"
    );
}
