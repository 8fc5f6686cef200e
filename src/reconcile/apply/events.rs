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
        note: Some(fit(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &request.object_ref(&())).await {
        warn!(%error, reason, "could not publish an event");
    }
}

/// The API server takes event notes of at most 1024 bytes: longer ones are cut (at a
/// character boundary), marked with an ellipsis.
fn fit(mut note: String) -> String {
    const MAX: usize = 1024;
    if note.len() > MAX {
        let mut cut = MAX - '…'.len_utf8();
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    note
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn notes_fit_what_the_api_server_takes() {
        assert_eq!(fit("short".into()), "short");
        let long = fit("é".repeat(2000));
        assert!(long.len() <= 1024, "{}", long.len());
        assert!(long.ends_with('…'));
    }
}
