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
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &request.object_ref(&())).await {
        warn!(%error, reason, "could not publish an event");
    }
}
