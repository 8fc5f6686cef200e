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
/// names the people behind it; within what the API server takes, cutting the note, not the
/// names.
fn with_who(request: &ActorTokenRequest, note: String) -> String {
    let who = match request.spec.requester.as_ref() {
        Some(requester) => {
            let approver = request
                .status
                .as_ref()
                .and_then(|s| s.decided_by.as_ref())
                .map(|d| format!(", decided by {}", d.username))
                .unwrap_or_default();
            format!(" [requested by {}{approver}]", requester.username)
        }
        None => String::new(),
    };
    let mut note = fit(note, NOTE_MAX.saturating_sub(who.len()));
    note.push_str(&who);
    fit(note, NOTE_MAX)
}

/// The most the API server takes in an event's note.
const NOTE_MAX: usize = 1024;

/// `note` cut to at most `max` bytes (at a character boundary), marked with an ellipsis.
fn fit(mut note: String, max: usize) -> String {
    if note.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
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
    use super::{NOTE_MAX, fit};

    #[test]
    fn notes_fit_what_the_api_server_takes() {
        assert_eq!(fit("short".into(), NOTE_MAX), "short");
        let long = fit("é".repeat(2000), NOTE_MAX);
        assert!(long.len() <= 1024, "{}", long.len());
        assert!(long.ends_with('…'));
    }
}
