//! Ending the impersonation sessions a request's tokens opened: once a link has been used,
//! Clerk can't revoke its token any more, but the session it opened lives on (up to the
//! request's `sessionMaxDuration`) unless it is ended.

use tracing::info;

use crate::{
    api::ActorTokenRequest,
    clerk::{ClerkClient, ClerkError, SessionRevokeOutcome},
    governance::provenance::opened_by,
    reconcile::Context,
};

/// Ends every active session of the request's user that a token of this very request opened
/// (by the request's UID in the provenance its actor carries), and no other; returns how many
/// it ended. Every call (each page of the list, each revoke) goes through the instance's rate
/// limiters like any other. On failure, how many it ended before.
pub(super) async fn end_sessions(
    request: &ActorTokenRequest,
    client: &ClerkClient,
    ctx: &Context,
) -> Result<u32, (u32, ClerkError)> {
    let Some(uid) = request.metadata.uid.as_deref() else {
        return Ok(0);
    };
    let sessions = client
        .list_active_sessions(&request.spec.user_id)
        .await
        .map_err(|e| (0, e))?;
    let mut ended = 0;
    for session in sessions
        .iter()
        .filter(|session| opened_by(session.actor.as_ref(), uid))
    {
        match client
            .revoke_session(&session.id)
            .await
            .map_err(|e| (ended, e))?
        {
            SessionRevokeOutcome::Revoked => {
                info!(session_id = %session.id, "impersonation session ended");
                ctx.metrics.sessions_ended.inc();
                ended += 1;
            }
            // Ended meanwhile, on its own or by someone else.
            SessionRevokeOutcome::NotActive | SessionRevokeOutcome::NotFound => {}
        }
    }
    Ok(ended)
}
