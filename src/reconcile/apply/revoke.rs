//! Revoking tokens at Clerk, and keeping each one accounted for while that fails: set aside
//! in `status.pendingRevokes` until Clerk confirms, or until the token is dead anyway (the
//! decision is `decide::revoke`'s).

use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
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
    api::{ActorTokenRequest, PendingRevoke},
    clerk::{ClerkClient, ClerkError, RevokeOutcome},
    reconcile::{
        Context, Error,
        decide::{
            TokenToRevoke,
            revoke::{may_give_up_revoking, secret_goes_with},
        },
        secret::secret_state,
    },
};

/// Moves a recorded token whose link never reached a Secret to `pendingRevokes`, so that a
/// new one can be issued. Conditional: if another operator is delivering it right now, its
/// write wins and this step is decided again.
pub(super) async fn set_aside(
    request: &ActorTokenRequest,
    token_id: &str,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let expires_at = status
        .expires_at
        .take()
        .unwrap_or_else(|| Time(latest_expiry()));
    status.pending_revokes.push(PendingRevoke {
        token_id: token_id.to_owned(),
        expires_at,
    });
    status.token_id = None;
    status.issued_at = None;
    write_and_decide_again(request, status, ctx).await
}

/// Revokes every token set aside; those Clerk can't be asked about now stay for the retry. A
/// revoked token whose link is in our Secret takes the Secret with it, so a dead link is never
/// marked issued.
pub(super) async fn revoke_pending(
    request: &ActorTokenRequest,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let mut failure = None;
    let mut revoked = Vec::new();
    for pending in std::mem::take(&mut status.pending_revokes) {
        let dies = Some(pending.expires_at.0);
        match revoke_or_give_up(request, &pending.token_id, dies, "set-aside", ctx).await {
            Ok(()) => revoked.push(pending.token_id),
            Err(error) => {
                status.pending_revokes.push(pending);
                failure = Some(error);
            }
        }
    }
    if secret_goes_with(&secret_state(request, secret), &revoked) {
        delete_secret(request, secret, ctx).await?;
    }
    if let Some(error) = failure {
        let status = waiting_status_of(status, request, &error);
        if let Err(e) = write_status(request, status, ctx).await {
            warn!(error = %e, "could not write the status");
        }
        return Err(error);
    }
    write_and_decide_again(request, status, ctx).await
}

/// Sets a token aside for revoking without trying to revoke it first: when it isn't known
/// whether its link reached the Secret (`revoke_pending` deals with both cases).
pub(super) async fn set_aside_unrevoked(
    request: &ActorTokenRequest,
    token_id: &str,
    expires_at: Timestamp,
    ctx: &Context,
) {
    if let Err(e) = record_pending_revoke(request, token_id, expires_at, ctx).await {
        token_lost(request, token_id, &e.to_string(), expires_at, ctx).await;
    }
}

/// Adds a token to `pendingRevokes`, on the freshest status, whoever else wrote it.
async fn record_pending_revoke(
    request: &ActorTokenRequest,
    token_id: &str,
    expires_at: Timestamp,
    ctx: &Context,
) -> Result<ActorTokenRequest, Error> {
    let pending = PendingRevoke {
        token_id: token_id.to_owned(),
        expires_at: Time(expires_at),
    };
    update_durably(request, ctx, |status| {
        status.pending_revokes.push(pending.clone())
    })
    .await
}

/// A token that can't be this request's recorded one (a race lost, an unusable answer):
/// revoke it now, or if Clerk can't be asked now, set it aside in `pendingRevokes` (on the
/// freshest status, whoever else wrote it) so it is revoked later, not forgotten.
pub(super) async fn revoke_unrecorded(
    request: &ActorTokenRequest,
    client: &ClerkClient,
    token_id: &str,
    expires_at: Timestamp,
    cause: &'static str,
    ctx: &Context,
) {
    let Err(error) = revoke(client, token_id, cause, ctx).await else {
        return;
    };
    match record_pending_revoke(request, token_id, expires_at, ctx).await {
        Ok(_) => warn!(token_id, %error, "revoke failed; token set aside to revoke later"),
        Err(e) => {
            let why = format!("could not be revoked ({error}) nor recorded ({e})");
            token_lost(request, token_id, &why, expires_at, ctx).await;
        }
    }
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

/// Revokes the request's recorded token (or gives up on it); while that fails, the request
/// shows why it waits.
pub(super) async fn revoke_recorded(
    request: &ActorTokenRequest,
    token: &TokenToRevoke,
    cause: &'static str,
    ctx: &Context,
) -> Result<(), Error> {
    let result = revoke_or_give_up(request, &token.token_id, token.expires_at, cause, ctx).await;
    if let Err(error) = &result {
        set_waiting(request, error, ctx).await;
    }
    result
}

/// Revokes a token that may be live, or, when that fails, decides whether holding on still
/// protects anything (see `decide::revoke::may_give_up_revoking`).
async fn revoke_or_give_up(
    request: &ActorTokenRequest,
    token_id: &str,
    expires_at: Option<Timestamp>,
    cause: &'static str,
    ctx: &Context,
) -> Result<(), Error> {
    let client = ctx.instances.for_revoke(request).await;
    let error = match &client {
        Some(client) => match revoke(client, token_id, cause, ctx).await {
            Ok(()) => return Ok(()),
            Err(error) => Error::Clerk(error),
        },
        None => Error::InstanceNotReady("no Clerk instance to revoke the token with".into()),
    };
    if !may_give_up_revoking(expires_at, Timestamp::now(), client.is_some()) {
        return Err(error);
    }
    ctx.metrics.revokes_abandoned.inc();
    let note = format!(
        "Could not revoke token {token_id} ({error}); letting go, since {}.",
        if client.is_some() {
            "it has expired"
        } else {
            "its Clerk instance and key are gone"
        }
    );
    warn!(token_id, %error, "giving up on revoking");
    publish(
        ctx,
        request,
        EventType::Warning,
        "RevokeAbandoned",
        "Revoke",
        note,
    )
    .await;
    Ok(())
}

/// One revoke. A token that is no longer pending, or unknown to Clerk, has nothing live to
/// revoke: that counts as done.
pub(super) async fn revoke(
    client: &ClerkClient,
    token_id: &str,
    cause: &'static str,
    ctx: &Context,
) -> Result<(), ClerkError> {
    let outcome = client.revoke_actor_token(token_id).await?;
    info!(token_id, cause, ?outcome, "token revoked");
    if outcome == RevokeOutcome::Revoked {
        ctx.metrics.revoked(cause);
    }
    Ok(())
}
