//! Ending a request's token: at its expiry, when its Secret is deleted, and when the request
//! itself is deleted (the finalizer). Revoking ends the impersonation too: a token whose link
//! was used can't be revoked any more, so the sessions it opened are ended instead.

use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::{
    ResourceExt,
    runtime::{controller::Action as Requeue, events::EventType},
};
use tracing::warn;

use super::{
    Next,
    events::publish,
    revoke::{attempt, revoke_recorded, still_trying, told},
    secrets::delete_secret,
    sessions::end_sessions,
    status::{refetch, set_finalizers, show, update_durably, write_or_refetch},
};
use crate::{
    api::{ActorTokenRequest, FINALIZER, Phase, conditions::Standing},
    clerk::ClerkClient,
    governance::audit::{self, AuditEvent},
    reconcile::{
        Context, Error,
        decide::{
            Sweep, TokenToRevoke,
            revoke::{TokenEnd, sweep_needed},
        },
        error::{is_conflict, is_not_found},
        records::parse_key,
    },
};

pub(super) async fn expire(
    request: &ActorTokenRequest,
    token: Option<TokenToRevoke>,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    if let Some(token) = &token {
        // Past expiry Clerk no longer accepts the token, so one try is enough; it only
        // matters if Clerk's clock is behind ours.
        attempt(request, token, "expired", ctx).await;
    }
    delete_secret(request, secret, ctx).await?;
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Expired);
    if let Some(token) = token {
        status.token_id = Some(token.token_id);
        status.key_fingerprint = token.key.map(|k| k.to_string());
        status.token_seal = token.seal;
    }
    let message =
        "The sign-in link expired; its Secret was deleted. Create a new request for a new link.";
    show(&mut status, request, Standing::Expired { message });
    let token_id = status.token_id.clone();
    if let Err(next) = write_or_refetch(request, status, ctx).await? {
        return Ok(next);
    }
    audit::record(
        AuditEvent::Expired,
        request,
        token_id.as_deref(),
        None,
        None,
    );
    publish(
        ctx,
        request,
        EventType::Normal,
        "Expired",
        "Expire",
        message.into(),
    )
    .await;
    Ok(Next::Done(Requeue::await_change()))
}

pub(super) async fn revoke_for_deleted_secret(
    request: &ActorTokenRequest,
    token: Option<TokenToRevoke>,
    sweep: Option<Sweep>,
    ctx: &Context,
) -> Result<Next, Error> {
    let (end, ended) = revoke_and_end_sessions(
        request,
        token.as_ref(),
        sweep.as_ref(),
        None,
        "secret-deleted",
        ctx,
    )
    .await?;
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Revoked);
    status.revoked_at = Some(Time(Timestamp::now()));
    if let Some(ended) = ended {
        status.sessions_ended = Some(ended);
    }
    let message = format!(
        "Secret {} was deleted. {} Create a new request for a new link.",
        request.secret_name(),
        told(token.as_ref(), end, ended)
    );
    show(
        &mut status,
        request,
        Standing::Revoked {
            reason: "SecretDeleted",
            message: &message,
        },
    );
    if let Err(next) = write_or_refetch(request, status, ctx).await? {
        return Ok(next);
    }
    audit::record(
        AuditEvent::Revoked,
        request,
        token.as_ref().map(|t| t.token_id.as_str()),
        Some("SecretDeleted"),
        Some(&message),
    );
    publish(
        ctx,
        request,
        EventType::Warning,
        "SecretDeleted",
        "Revoke",
        message,
    )
    .await;
    Ok(Next::Done(Requeue::await_change()))
}

pub(super) async fn finalize(
    request: &ActorTokenRequest,
    revoke: Option<TokenToRevoke>,
    sweep: Option<Sweep>,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let (end, ended) = revoke_and_end_sessions(
        request,
        revoke.as_ref(),
        sweep.as_ref(),
        secret,
        "deleted",
        ctx,
    )
    .await?;
    let finalizers = request
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match set_finalizers(request, finalizers, ctx).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) if is_conflict(&e) => return refetch(request, ctx).await,
        Err(e) => return Err(e.into()),
    }
    // A request that still held a token was revoked; any other was simply deleted.
    let event = match revoke {
        Some(_) => AuditEvent::Revoked,
        None => AuditEvent::Deleted,
    };
    audit::record(
        event,
        request,
        revoke.as_ref().map(|t| t.token_id.as_str()),
        Some("RequestDeleted"),
        Some(&told(revoke.as_ref(), end, ended)),
    );
    // What revoking came to, where people look once the request is gone: its events. (An
    // expired token was reported as RevokeAbandoned already.)
    if matches!(end, Some(TokenEnd::RevokedUnused | TokenEnd::NotRevocable))
        || ended.is_some_and(|n| n > 0)
    {
        let reason = if ended.is_some_and(|n| n > 0) {
            "SessionsEnded"
        } else {
            "Revoked"
        };
        let note = told(revoke.as_ref(), end, ended);
        publish(ctx, request, EventType::Normal, reason, "Revoke", note).await;
    }
    // The link is dead now; the Secret goes last, so that its delete event finds the request
    // gone instead of waking a second finalize on a cached copy (a second revoke). Should this
    // fail, Kubernetes' garbage collector deletes it with its owner all the same.
    if let Err(error) = delete_secret(request, secret, ctx).await {
        warn!(%error, "could not delete the Secret of a deleted request; its owner reference will");
    }
    Ok(Next::Done(Requeue::await_change()))
}

/// Revokes `token` (until it is certainly dead), then ends the sessions the request's tokens
/// opened if `sweep` says they may exist. Returns how the token ended and, if sessions were
/// looked for, how many were ended in all (this time and on earlier tries, from the status).
/// When the sessions can't be ended now, the dead token is forgotten (its record cleared,
/// and `secret`, ours, holding its link, deleted) so that the retry only looks for sessions.
async fn revoke_and_end_sessions(
    request: &ActorTokenRequest,
    token: Option<&TokenToRevoke>,
    sweep: Option<&Sweep>,
    secret: Option<&Secret>,
    cause: &'static str,
    ctx: &Context,
) -> Result<(Option<TokenEnd>, Option<u32>), Error> {
    let (end, client) = match token {
        Some(token) => {
            let (end, client) = revoke_recorded(request, token, cause, ctx).await?;
            (Some(end), client)
        }
        None => (None, None),
    };
    if !sweep.is_some_and(|sweep| sweep_needed(sweep, end, Timestamp::now())) {
        return Ok((end, None));
    }
    let before = request
        .status
        .as_ref()
        .and_then(|s| s.sessions_ended)
        .unwrap_or(0);
    let token_id = token.map_or_else(String::new, |t| t.token_id.clone());
    let client = match client {
        Some(client) => client,
        None => session_client(request, ctx).await.inspect_err(|error| {
            warn!(%error, "no Clerk instance to end sessions with");
        })?,
    };
    match end_sessions(request, &client, ctx).await {
        Ok(ended) => Ok((end, Some(before + ended))),
        Err((ended, source)) => {
            // The token is done with: keep count of what was ended so far, forget the token
            // (its link is dead), and try again for the sessions alone.
            if token.is_some() {
                delete_secret(request, secret, ctx).await?;
            }
            let total = before + ended;
            let error = Error::Sessions { token_id, source };
            let counted = update_durably(request, ctx, |status| {
                status.sessions_ended = (total > 0).then_some(total);
                status.token_id = None;
                status.key_fingerprint = None;
                status.token_seal = None;
            })
            .await;
            match counted {
                Ok(updated) => {
                    let about = token.map_or("", |t| t.token_id.as_str());
                    still_trying(&updated, about, &error, ctx).await;
                }
                Err(e) => warn!(error = %e, "could not record the sessions still to end"),
            }
            Err(error)
        }
    }
}

/// A client of the request's instance, through the key that issued its token where known.
async fn session_client(request: &ActorTokenRequest, ctx: &Context) -> Result<ClerkClient, Error> {
    let key = parse_key(
        request
            .status
            .as_ref()
            .and_then(|s| s.key_fingerprint.as_deref()),
    );
    ctx.instances.for_revoke(request, key).await
}
