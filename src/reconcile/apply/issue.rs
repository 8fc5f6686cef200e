//! Issuing: mint a token, deliver its link in the Secret (its durable record), mark the
//! request issued. How the sequence goes on after each answer is decided in
//! `decide::issue`; this carries it out. Every token minted is counted in
//! `status.tokensMinted`, in the status write that follows it.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::runtime::{controller::Action as Requeue, events::EventType};
use tracing::{info, warn};

use super::{
    Next, View,
    events::publish,
    gate::{self, Gate},
    revoke::{revoke_unrecorded, set_aside_unrevoked},
    secrets::deliver,
    status::{
        failed, newer_than_cached, refetch, set_waiting, show, update_durably, waiting_status_of,
        write_or_refetch, write_status,
    },
    until,
};
use crate::{
    api::{ActorTokenRequest, ActorTokenRequestStatus, PendingRevoke, Phase, conditions::Standing},
    clerk::{ClerkClient, ClerkError},
    governance::{
        audit::{self, AuditEvent},
        provenance::Provenance,
    },
    reconcile::{
        Context, Error,
        decide::{
            DeliveredToken, MAX_TOKENS_PER_REQUEST, TokenToRevoke,
            issue::{AfterCreateFailure, AfterDelivery, after_create_failure, after_delivery},
            plan_token, tokens_minted,
        },
        records::{pending_entry, seal},
        secret::Delivery,
    },
};

pub(super) async fn issue(
    request: &ActorTokenRequest,
    view: View,
    ctx: &Context,
) -> Result<Next, Error> {
    // The controller's cache can lag behind our own last write. A token minted on a stale view
    // loses its race and must be revoked again; one read first is cheaper. A view just read
    // or written needs none (the usual case: the finalizer was added a moment ago).
    if let Some(newer) = newer_than_cached(request, view, ctx).await? {
        return Ok(newer);
    }
    if request.phase().is_none() {
        audit::record(AuditEvent::Requested, request, None, None, None);
    }
    // A mint that failed a moment ago waits out its backoff, even when the failure's own
    // status write wakes the request at once: no burst of tokens for one request.
    if let Some(wait) = ctx.mint_wait(request) {
        return Ok(Next::Deferred(Requeue::requeue(wait)));
    }
    let resolved = match ctx.instances.resolve(request).await {
        Ok(resolved) => resolved,
        Err(error) => {
            set_waiting(request, &error, ctx).await;
            return Err(error);
        }
    };
    // Who may impersonate whom, and whether a second person agreed: checked again here,
    // just before the mint, whatever admission let in.
    let approver = match gate::pass(request, &resolved, ctx).await? {
        Gate::Open { approver } => approver,
        Gate::Closed(next) => return Ok(next),
    };
    let mode = resolved.policy.provenance.unwrap_or_default();
    let Some(provenance) = Provenance::of(request, approver.as_ref(), mode) else {
        return Ok(Next::Done(Requeue::await_change()));
    };
    let new_token = match plan_token(&request.spec, &resolved.limits, &provenance) {
        Ok(token) => token,
        Err(problem) => {
            let status = failed(request, "DurationNotAllowed", &problem);
            write_status(request, status, ctx).await?;
            audit::record(
                AuditEvent::Refused,
                request,
                None,
                Some("DurationNotAllowed"),
                Some(&problem),
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                "DurationNotAllowed",
                "Issue",
                problem,
            )
            .await;
            return Ok(Next::Done(Requeue::await_change()));
        }
    };

    let client = &resolved.client;
    let token = match client.create_actor_token(&new_token).await {
        Ok(token) => token,
        Err(error) => {
            let expires_in = new_token.expires_in_seconds;
            return create_failed(request, error, client, expires_in, ctx).await;
        }
    };
    ctx.metrics.tokens_minted.inc();
    // Whole seconds, as the status stores them, so the Secret and the status agree.
    let issued_at =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let expires_at = issued_at + SignedDuration::from_secs(new_token.expires_in_seconds as i64);
    let mut record = TokenToRevoke {
        token_id: token.id.clone(),
        expires_at: Some(expires_at),
        key: Some(client.key_fingerprint()),
        seal: None,
    };
    let sealed = seal(&ctx.seal, request, &record);
    record.seal = Some(sealed.clone());
    let delivered = DeliveredToken {
        token_id: token.id.clone(),
        issued_at: Some(issued_at),
        expires_at: Some(expires_at),
        key: record.key,
        seal: record.seal.clone(),
    };

    // The Secret is the token's durable record: from its create on, a restart finds the token
    // there. Its name is the lock against a second operator minting for the same request.
    let delivery = Delivery {
        url: token.url.expose(),
        token: token.token.expose(),
        token_id: &token.id,
        issued_at,
        expires_at,
        key: record.key,
        seal: &sealed,
    };
    let (delivery, write_error) = deliver(request, &delivery, ctx).await;
    let unrecorded = |cause| revoke_unrecorded(request, client, &token.id, expires_at, cause, ctx);
    match after_delivery(&delivery, &token.id) {
        AfterDelivery::MarkIssued => {
            info!(token_id = %token.id, "token delivered");
            mark_issued(request, &delivered, true, ctx).await
        }
        AfterDelivery::RevokeAndFailConflict => {
            let minted = minted_outcome(unrecorded("secret-conflict").await, &record);
            fail_secret_conflict(request, Some(minted), ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        AfterDelivery::RevokeAndFailRefused => {
            let minted = minted_outcome(unrecorded("secret-refused").await, &record);
            let why = write_error
                .as_ref()
                .map_or_else(|| "refused".to_owned(), Error::refusal);
            fail_secret_refused(request, &why, &token.id, minted, ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        AfterDelivery::RevokeAndDecideAgain => {
            // Another operator delivered its token first: ours must not stay live.
            warn!(token_id = %token.id, "another token was delivered first; revoking this one");
            unrecorded("lost-race").await;
            count_minted(request, None, ctx).await;
            refetch(request, ctx).await
        }
        AfterDelivery::RevokeAndRetry => {
            unrecorded("delivery-failed").await;
            let error = write_error.unwrap_or_else(|| unwritten(request));
            count_minted(request, Some(&error), ctx).await;
            Err(error)
        }
        AfterDelivery::SetAside => {
            // Can't tell: set it aside. Revoking it also deletes its Secret, if the link did
            // arrive, so no dead link is ever marked issued.
            warn!(token_id = %token.id, "delivery unknown; setting the token aside");
            set_aside_unrevoked(request, &record, ctx).await;
            let error = write_error.unwrap_or_else(|| unwritten(request));
            count_minted(request, Some(&error), ctx).await;
            Err(error)
        }
    }
}

/// A minted token after its revoke: revoked (`Ok`), or still to revoke (`Err`, recorded in
/// `pendingRevokes` by `revoke_unrecorded` already).
fn minted_outcome(revoked: bool, record: &TokenToRevoke) -> Result<(), PendingRevoke> {
    if revoked {
        Ok(())
    } else {
        Err(pending_entry(record, super::status::latest_expiry()))
    }
}

/// `deliver` gives its error with every failed write; this stands in should it not.
fn unwritten(request: &ActorTokenRequest) -> Error {
    Error::Secret {
        name: request.secret_name(),
        source: kube::Error::Api(Box::new(kube::core::Status::failure(
            "the Secret could not be written",
            "Unknown",
        ))),
    }
}

/// One more token minted, counted on the freshest status; with `waiting`, also shows why
/// the request waits, in the same write.
async fn count_minted(request: &ActorTokenRequest, waiting: Option<&Error>, ctx: &Context) {
    let counted = update_durably(request, ctx, |status| {
        if let Some(error) = waiting {
            *status = waiting_status_of(status.clone(), request, error);
        }
        add_minted(status);
    })
    .await;
    if let Err(e) = counted {
        warn!(error = %e, "could not count a minted token in the status");
    }
}

fn add_minted(status: &mut ActorTokenRequestStatus) {
    status.tokens_minted = Some(status.tokens_minted.unwrap_or(0).saturating_add(1));
}

/// A create that didn't produce a usable token.
async fn create_failed(
    request: &ActorTokenRequest,
    error: ClerkError,
    client: &ClerkClient,
    expires_in_seconds: u64,
    ctx: &Context,
) -> Result<Next, Error> {
    match after_create_failure(&error) {
        AfterCreateFailure::Fail => {
            let message = format!("Clerk rejected the token request: {error}");
            write_status(request, failed(request, error.reason(), &message), ctx).await?;
            audit::record(
                AuditEvent::Failed,
                request,
                None,
                Some(error.reason()),
                Some(&message),
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                error.reason(),
                "Issue",
                message,
            )
            .await;
            Ok(Next::Done(Requeue::await_change()))
        }
        AfterCreateFailure::RevokeUnusable { token_id } => {
            // Clerk made a token but its answer was unusable: we know its ID, so revoke it.
            ctx.metrics.tokens_minted.inc();
            let dies = Timestamp::now() + SignedDuration::from_secs(expires_in_seconds as i64);
            revoke_unrecorded(request, client, &token_id, dies, "unusable-answer", ctx).await;
            let error = Error::Clerk(error);
            count_minted(request, Some(&error), ctx).await;
            Err(error)
        }
        AfterCreateFailure::CountLost => {
            // A token may exist that no one can name, so no one can revoke: count it.
            ctx.metrics.tokens_lost.inc();
            ctx.metrics.tokens_minted.inc();
            let waiting = Error::Clerk(error.clone());
            let counted = update_durably(request, ctx, |status| {
                *status = waiting_status_of(status.clone(), request, &waiting);
                status.lost_tokens = Some(status.lost_tokens.unwrap_or(0) + 1);
                add_minted(status);
            })
            .await;
            if let Err(e) = counted {
                warn!(error = %e, "could not count a lost token in the status");
            }
            publish(
                ctx,
                request,
                EventType::Warning,
                "TokenAnswerLost",
                "Issue",
                "Clerk's answer to a token create was lost; a token may exist that cannot be revoked and will stay valid until it expires. Retrying."
                    .into(),
            )
            .await;
            Err(error.into())
        }
        AfterCreateFailure::Retry => {
            let error = Error::Clerk(error);
            set_waiting(request, &error, ctx).await;
            Err(error)
        }
    }
}

/// Records the delivered token (with its key and seal) and marks the request issued, in one
/// status write. `minted_now`: it was minted by this very step (count it); else it was found
/// in the Secret, minted before.
pub(super) async fn mark_issued(
    request: &ActorTokenRequest,
    delivered: &DeliveredToken,
    minted_now: bool,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let expires_at = delivered
        .expires_at
        .unwrap_or_else(super::status::latest_expiry);
    status.phase = Some(Phase::Issued);
    status.token_id = Some(delivered.token_id.clone());
    status.key_fingerprint = delivered.key.map(|k| k.to_string());
    status.token_seal = delivered.seal.clone();
    status.secret_name = Some(request.secret_name());
    status.issued_at = delivered.issued_at.map(Time);
    status.expires_at = Some(Time(expires_at));
    status.revoked_at = None;
    if minted_now {
        add_minted(&mut status);
    } else {
        status.tokens_minted = Some(tokens_minted(request).max(1));
    }
    let message = format!(
        "The sign-in link is in Secret {}; it works until {expires_at}",
        request.secret_name(),
    );
    show(&mut status, request, Standing::Issued { message: &message });
    if let Err(next) = write_or_refetch(request, status, ctx).await? {
        return Ok(next);
    }
    ctx.metrics.tokens_issued.inc();
    audit::record(
        AuditEvent::Issued,
        request,
        Some(&delivered.token_id),
        None,
        None,
    );
    publish(ctx, request, EventType::Normal, "Issued", "Issue", message).await;
    Ok(Next::Done(Requeue::requeue(until(
        expires_at,
        Timestamp::now(),
    ))))
}

/// Fails a request whose Secret name is taken. `minted`: the token made before the conflict
/// showed, revoked (`Ok`) or set aside to revoke (`Err`); `None` when none was made.
pub(super) async fn fail_secret_conflict(
    request: &ActorTokenRequest,
    minted: Option<Result<(), PendingRevoke>>,
    ctx: &Context,
) -> Result<(), Error> {
    let message = format!(
        "Secret {} already exists and was not written by this request; it was left untouched. \
         Create a new request with another spec.secretName.",
        request.secret_name()
    );
    let status = with_minted(failed(request, "SecretConflict", &message), minted);
    write_or_update(request, status, ctx).await?;
    publish(
        ctx,
        request,
        EventType::Warning,
        "SecretConflict",
        "Issue",
        message,
    )
    .await;
    Ok(())
}

/// Fails a request whose Secret the API server refuses for good (`why`, in its words): one
/// token was minted for it, and revoked (or set aside to be).
async fn fail_secret_refused(
    request: &ActorTokenRequest,
    why: &str,
    token_id: &str,
    minted: Result<(), PendingRevoke>,
    ctx: &Context,
) -> Result<(), Error> {
    let revoked = if minted.is_ok() {
        "was revoked"
    } else {
        "is being revoked"
    };
    let message = format!(
        "The API server refused the link's Secret and will refuse it again: {why}. Token \
         {token_id}, minted for it, {revoked}. Fix what was refused (spec.secretName, \
         spec.secretLabels, spec.secretAnnotations, or the namespace's quota or policy) and \
         create a new request."
    );
    let status = with_minted(failed(request, "SecretRefused", &message), Some(minted));
    write_or_update(request, status, ctx).await?;
    publish(
        ctx,
        request,
        EventType::Warning,
        "SecretRefused",
        "Issue",
        message,
    )
    .await;
    Ok(())
}

/// The request has minted its share of tokens: fail it, mint no more.
pub(super) async fn fail_mint_limit(
    request: &ActorTokenRequest,
    ctx: &Context,
) -> Result<Next, Error> {
    let message = format!(
        "This request has minted {} tokens, the most one request may, and none of them is \
         issued (each was revoked, or is counted in status.lostTokens). Create a new request.",
        tokens_minted(request).max(MAX_TOKENS_PER_REQUEST)
    );
    write_status(request, failed(request, "MintLimitReached", &message), ctx).await?;
    ctx.metrics.mint_limits_reached.inc();
    publish(
        ctx,
        request,
        EventType::Warning,
        "MintLimitReached",
        "Issue",
        message,
    )
    .await;
    Ok(Next::Done(Requeue::await_change()))
}

/// `status` with a token minted in this step counted, and kept in `pendingRevokes` if it
/// couldn't be revoked; when it was revoked, the time.
fn with_minted(
    mut status: ActorTokenRequestStatus,
    minted: Option<Result<(), PendingRevoke>>,
) -> ActorTokenRequestStatus {
    match minted {
        Some(Ok(())) => {
            status.revoked_at = Some(Time(Timestamp::now()));
            add_minted(&mut status);
        }
        // Set aside on the freshest status already; the write below is made on that one.
        Some(Err(_)) => add_minted(&mut status),
        None => {}
    }
    status
}

/// Writes a final status: at the version decided on, or, when a token was set aside
/// meanwhile (the version moved), on the freshest status.
async fn write_or_update(
    request: &ActorTokenRequest,
    status: ActorTokenRequestStatus,
    ctx: &Context,
) -> Result<(), Error> {
    match write_status(request, status.clone(), ctx).await {
        Ok(_) => Ok(()),
        Err(e) if crate::reconcile::error::is_conflict(&e) => {
            update_durably(request, ctx, |fresh| {
                let pending = std::mem::take(&mut fresh.pending_revokes);
                *fresh = status.clone();
                fresh.pending_revokes = pending;
            })
            .await
            .map(|_| ())
        }
        Err(e) => Err(e.into()),
    }
}
