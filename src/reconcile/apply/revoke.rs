//! Revoking tokens at Clerk, and keeping each one accounted for until it is certainly dead
//! (`decide::revoke::judge` says when): set aside in `status.pendingRevokes` while Clerk, the
//! instance or the key that made it can't be asked.

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::{
    Next,
    events::publish,
    secrets::delete_secret,
    status::{
        latest_expiry, set_waiting, update_durably, waiting_status_of, write_and_decide_again,
        write_status,
    },
};
use crate::{
    api::ActorTokenRequest,
    clerk::{ClerkClient, RevokeOutcome},
    reconcile::{
        Context, Error,
        decide::{
            TokenToRevoke,
            revoke::{TokenEnd, Unconfirmed, Verdict, describe, judge, secret_goes_with},
        },
        records::{pending_entry, pending_token, seal},
        secret::secret_state,
    },
};

/// One try at revoking `token`, and what it proves.
pub(super) struct Attempt {
    pub verdict: Verdict,
    /// The client it went through, if one could be had (to end sessions with, next).
    pub client: Option<ClerkClient>,
    /// Why it proved nothing, when it didn't.
    pub error: Option<Error>,
}

/// Tries to revoke `token` through the key that made it where possible, and judges the
/// answer. A token found dead only by its expiry is let go with a `RevokeAbandoned` warning.
pub(super) async fn attempt(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    cause: &'static str,
    ctx: &Context,
) -> Attempt {
    let (answer, error, client) = match ctx.instances.for_revoke(request, token.key).await {
        Ok(client) => match client.revoke_actor_token(&token.token_id).await {
            Ok(outcome) => (Some(outcome), None, Some(client)),
            Err(error) => (None, Some(Error::Clerk(error)), Some(client)),
        },
        Err(error) => (None, Some(error), None),
    };
    let asked_with = client.as_ref().map(ClerkClient::key_fingerprint);
    let verdict = judge(
        answer,
        token.key,
        asked_with,
        token.expires_at,
        Timestamp::now(),
    );
    info!(token_id = %token.token_id, cause, ?answer, ?verdict, "revoke tried");
    if answer == Some(RevokeOutcome::Revoked) {
        ctx.metrics.revoked(cause);
    }
    let error = match &verdict {
        Verdict::KeepTrying(Unconfirmed::OtherKey {
            issued_by,
            asked_with,
        }) => Some(Error::OtherKey {
            token_id: token.token_id.clone(),
            issued_by: *issued_by,
            asked_with: *asked_with,
            expires_at: token
                .expires_at
                .map_or_else(|| "an unknown time".to_owned(), |at| at.to_string()),
        }),
        Verdict::Done(TokenEnd::Expired) => {
            ctx.metrics.revokes_abandoned.inc();
            let why = error
                .as_ref()
                .map_or_else(String::new, |e| format!(" ({e})"));
            warn!(token_id = %token.token_id, %why, "giving up on revoking: the token has expired");
            let note = format!(
                "Could not revoke token {}{why}; letting go, since it has expired.",
                token.token_id
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                "RevokeAbandoned",
                "Revoke",
                note,
            )
            .await;
            None
        }
        Verdict::Done(_) => None,
        Verdict::KeepTrying(Unconfirmed::Unreachable) => error,
    };
    Attempt {
        verdict,
        client,
        error,
    }
}

/// Revokes the request's recorded token until it is certainly dead; while it isn't, the
/// request shows why it waits (and an event says the operator is still trying).
pub(super) async fn revoke_recorded(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    cause: &'static str,
    ctx: &Context,
) -> Result<(TokenEnd, Option<ClerkClient>), Error> {
    let attempt = attempt(request, token, cause, ctx).await;
    match attempt.verdict {
        Verdict::Done(end) => Ok((end, attempt.client)),
        Verdict::KeepTrying(_) => {
            let error = attempt.error.unwrap_or_else(|| {
                Error::InstanceNotReady("no Clerk instance to revoke the token with".into())
            });
            still_trying(request, &token.token_id, &error, ctx).await;
            Err(error)
        }
    }
}

/// Shows why a revoke waits; says so in an event when that is news.
pub(super) async fn still_trying(
    request: &ActorTokenRequest,
    token_id: &str,
    error: &Error,
    ctx: &Context,
) {
    if set_waiting(request, error, ctx).await {
        let note = if token_id.is_empty() {
            format!(
                "Could not end the sessions this request's tokens opened yet ({error}); still trying."
            )
        } else {
            format!("Could not revoke token {token_id} yet ({error}); still trying.")
        };
        publish(
            ctx,
            request,
            EventType::Warning,
            "RevokeRetrying",
            "Revoke",
            note,
        )
        .await;
    }
}

/// Moves a recorded token whose link never reached a Secret to `pendingRevokes` (with its
/// key and seal), so that a new one can be issued. Conditional: if another operator is
/// delivering it right now, its write wins and this step is decided again.
pub(super) async fn set_aside(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    status
        .pending_revokes
        .push(pending_entry(token, latest_expiry()));
    status.token_id = None;
    status.key_fingerprint = None;
    status.token_seal = None;
    status.issued_at = None;
    status.expires_at = None;
    write_and_decide_again(request, status, ctx).await
}

/// Revokes every token set aside; those not certainly dead stay for the retry. A revoked
/// token whose link is in our Secret takes the Secret with it, so a dead link is never marked
/// issued.
pub(super) async fn revoke_pending(
    request: &ActorTokenRequest,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let mut failure = None;
    let mut revoked = Vec::new();
    for pending in std::mem::take(&mut status.pending_revokes) {
        let token = pending_token(&pending);
        let attempt = attempt(request, &token, "set-aside", ctx).await;
        match attempt.verdict {
            Verdict::Done(_) => revoked.push(pending.token_id),
            Verdict::KeepTrying(_) => {
                status.pending_revokes.push(pending);
                failure = attempt.error.or(failure);
            }
        }
    }
    if secret_goes_with(
        &secret_state(request, secret, &ctx.seal, Timestamp::now()),
        &revoked,
    ) {
        delete_secret(request, secret, ctx).await?;
    }
    if !status.pending_revokes.is_empty() {
        let error = failure.unwrap_or_else(|| {
            Error::InstanceNotReady("no Clerk instance to revoke the token with".into())
        });
        let status = waiting_status_of(status, request, &error);
        if let Err(e) = write_status(request, status, ctx).await {
            warn!(error = %e, "could not write the status");
        }
        return Err(error);
    }
    write_and_decide_again(request, status, ctx).await
}

/// A token minted for this request that can't be its recorded one (a race lost, an unusable
/// answer, a Secret that couldn't be written): revoke it now through `client` (the one that
/// made it), or if Clerk can't be asked now, set it aside in `pendingRevokes` (on the
/// freshest status, whoever else wrote it) so it is revoked later, not forgotten. Returns
/// whether Clerk answered.
pub(super) async fn revoke_unrecorded(
    request: &ActorTokenRequest,
    client: &ClerkClient,
    token_id: &str,
    expires_at: Timestamp,
    cause: &'static str,
    ctx: &Context,
) -> bool {
    match client.revoke_actor_token(token_id).await {
        Ok(outcome) => {
            info!(token_id, cause, ?outcome, "token revoked");
            if outcome == RevokeOutcome::Revoked {
                ctx.metrics.revoked(cause);
            }
            true
        }
        Err(error) => {
            let token = TokenToRevoke {
                token_id: token_id.to_owned(),
                expires_at: Some(expires_at),
                key: Some(client.key_fingerprint()),
                seal: None,
            };
            match record_pending_revoke(request, &token, ctx).await {
                Ok(_) => warn!(token_id, %error, "revoke failed; token set aside to revoke later"),
                Err(e) => {
                    let why = format!("could not be revoked ({error}) nor recorded ({e})");
                    token_lost(request, token_id, &why, expires_at, ctx).await;
                }
            }
            false
        }
    }
}

/// Sets a token aside for revoking without trying to revoke it first: when it isn't known
/// whether its link reached the Secret (`revoke_pending` deals with both cases).
pub(super) async fn set_aside_unrevoked(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    ctx: &Context,
) {
    if let Err(e) = record_pending_revoke(request, token, ctx).await {
        let expires_at = token.expires_at.unwrap_or_else(latest_expiry);
        token_lost(request, &token.token_id, &e.to_string(), expires_at, ctx).await;
    }
}

/// Adds a token to `pendingRevokes`, sealed, on the freshest status, whoever else wrote it.
async fn record_pending_revoke(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    ctx: &Context,
) -> Result<ActorTokenRequest, Error> {
    let mut token = token.clone();
    token.seal = Some(seal(&ctx.seal, request, &token));
    let pending = pending_entry(&token, latest_expiry());
    update_durably(request, ctx, |status| {
        status.pending_revokes.push(pending.clone())
    })
    .await
}

/// A token that is live and recorded nowhere: count it, say so, and let it expire.
async fn token_lost(
    request: &ActorTokenRequest,
    token_id: &str,
    why: &str,
    expires_at: Timestamp,
    ctx: &Context,
) {
    ctx.metrics.tokens_lost.inc();
    warn!(token_id, why, "token lost");
    let note = format!("Token {token_id} {why}; it stays valid until {expires_at}.");
    publish(
        ctx,
        request,
        EventType::Warning,
        "TokenLost",
        "Revoke",
        note,
    )
    .await;
}

/// The words for what revoking `token` came to.
pub(super) fn told(
    token: Option<&TokenToRevoke>,
    end: Option<TokenEnd>,
    ended: Option<u32>,
) -> String {
    describe(token.map(|t| t.token_id.as_str()), end, ended)
}
