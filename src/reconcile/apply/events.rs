//! Events about a request: what happened to its token, for `kubectl events` and audit.
//! Never a credential in a note.

use kube::{
    Resource,
    runtime::events::{Event, EventType},
};
use tracing::warn;

use crate::{api::ActorTokenRequest, reconcile::Context};

/// Publishes an event about `request`. Best effort: an event that can't be written is
/// logged, and the step goes on.
pub(super) async fn publish(
    ctx: &Context,
    request: &ActorTokenRequest,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(with_who(request, note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &request.object_ref(&())).await {
        warn!(%error, reason, "could not publish an event");
    }
}

/// `note`, followed by who asked and who approved, so that every event about a request
/// names the people behind it.
fn with_who(request: &ActorTokenRequest, note: String) -> String {
    let Some(requester) = request.spec.requester.as_ref() else {
        return note;
    };
    let approver = request
        .status
        .as_ref()
        .and_then(|s| s.decided_by.as_ref())
        .map(|d| format!(", decided by {}", d.username))
        .unwrap_or_default();
    format!("{note} [requested by {}{approver}]", requester.username)
}
