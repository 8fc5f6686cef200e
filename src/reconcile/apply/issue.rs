//! Issuing: mint a token, deliver its link in the Secret (its durable record), mark the
//! request issued. How the sequence goes on after each answer is decided in
//! `decide::issue`; this carries it out.

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
    revoke::{revoke, revoke_unrecorded, set_aside_unrevoked},
    secrets::deliver,
    status::{
        failed, newer_than_cached, refetch, set_waiting, show, update_durably, waiting_status_of,
        write_or_refetch, write_status,
    },
    until,
};
use crate::{
    api::{ActorTokenRequest, PROVENANCE_KEY, PendingRevoke, Phase, conditions::Standing},
    clerk::{ClerkClient, ClerkError},
    governance::{
        audit::{self, AuditEvent},
        provenance,
    },
    reconcile::{
        Context, Error,
        decide::{
            DeliveredToken,
            issue::{AfterCreateFailure, AfterDelivery, after_create_failure, after_delivery},
            plan_token,
        },
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
    let new_token = match plan_token(&request.spec, &resolved.limits) {
        Ok(mut token) => {
            let mode = resolved.policy.provenance.unwrap_or_default();
            let provenance = provenance::of(request, approver.as_ref(), mode);
            token
                .actor
                .insert(PROVENANCE_KEY.into(), provenance.to_value());
            token
        }
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

    let token = match resolved.client.create_actor_token(&new_token).await {
        Ok(token) => token,
        Err(error) => {
            let expires_in = new_token.expires_in_seconds;
            return create_failed(request, error, &resolved.client, expires_in, ctx).await;
        }
    };
    // Whole seconds, as the status stores them, so the Secret and the status agree.
    let issued_at =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let expires_at = issued_at + SignedDuration::from_secs(new_token.expires_in_seconds as i64);
    let delivered = DeliveredToken {
        token_id: token.id.clone(),
        issued_at: Some(issued_at),
        expires_at: Some(expires_at),
    };

    // The Secret is the token's durable record: from its create on, a restart finds the token
    // there. Its name is the lock against a second operator minting for the same request.
    let delivery = Delivery {
        url: token.url.expose(),
        token: token.token.expose(),
        token_id: &token.id,
        issued_at,
        expires_at,
    };
    let (delivery, write_error) = deliver(request, &delivery, ctx).await;
    let unrecorded =
        |cause| revoke_unrecorded(request, &resolved.client, &token.id, expires_at, cause, ctx);
    match after_delivery(&delivery, &token.id) {
        AfterDelivery::MarkIssued => {
            info!(token_id = %token.id, "token delivered");
            mark_issued(request, &delivered, ctx).await
        }
        AfterDelivery::RevokeAndFailConflict => {
            let revoked = revoke(&resolved.client, &token.id, "secret-conflict", ctx).await;
            let minted = revoked.map_err(|_| PendingRevoke {
                token_id: token.id.clone(),
                expires_at: Time(expires_at),
            });
            fail_secret_conflict(request, Some(minted), ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        AfterDelivery::RevokeAndDecideAgain => {
            // Another operator delivered its token first: ours must not stay live.
            warn!(token_id = %token.id, "another token was delivered first; revoking this one");
            unrecorded("lost-race").await;
            refetch(request, ctx).await
        }
        AfterDelivery::RevokeAndRetry => {
            unrecorded("delivery-failed").await;
            let error = write_error.unwrap_or_else(|| unwritten(request));
            set_waiting(request, &error, ctx).await;
            Err(error)
        }
        AfterDelivery::SetAside => {
            // Can't tell: set it aside. Revoking it also deletes its Secret, if the link did
            // arrive, so no dead link is ever marked issued.
            warn!(token_id = %token.id, "delivery unknown; setting the token aside");
            set_aside_unrevoked(request, &token.id, expires_at, ctx).await;
            Err(write_error.unwrap_or_else(|| unwritten(request)))
        }
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
            let dies = Timestamp::now() + SignedDuration::from_secs(expires_in_seconds as i64);
            revoke_unrecorded(request, client, &token_id, dies, "unusable-answer", ctx).await;
            let error = Error::Clerk(error);
            set_waiting(request, &error, ctx).await;
            Err(error)
        }
        AfterCreateFailure::CountLost => {
            // A token may exist that no one can name, so no one can revoke: count it.
            ctx.metrics.tokens_lost.inc();
            let waiting = Error::Clerk(error.clone());
            let counted = update_durably(request, ctx, |status| {
                *status = waiting_status_of(status.clone(), request, &waiting);
                status.lost_tokens = Some(status.lost_tokens.unwrap_or(0) + 1);
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

/// Records the delivered token and marks the request issued, in one status write.
pub(super) async fn mark_issued(
    request: &ActorTokenRequest,
    delivered: &DeliveredToken,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let expires_at = delivered
        .expires_at
        .unwrap_or_else(super::status::latest_expiry);
    status.phase = Some(Phase::Issued);
    status.token_id = Some(delivered.token_id.clone());
    status.secret_name = Some(request.secret_name());
    status.issued_at = delivered.issued_at.map(Time);
    status.expires_at = Some(Time(expires_at));
    status.revoked_at = None;
    let message = format!(
        "The sign-in link is in Secret {}; it works until {expires_at}",
        request.secret_name(),
    );
    show(&mut status, request, Standing::Issued { message: &message });
    let approver = status.decided_by.as_ref().map(|d| d.username.clone());
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
    // Who asked and who agreed, for whoever reads the events.
    let who = match (&request.spec.requester, approver) {
        (Some(requester), Some(approver)) => format!(
            "Issued for {} (approved by {approver}). ",
            requester.username
        ),
        (Some(requester), None) => format!("Issued for {}. ", requester.username),
        (None, _) => String::new(),
    };
    publish(
        ctx,
        request,
        EventType::Normal,
        "Issued",
        "Issue",
        format!("{who}{message}"),
    )
    .await;
    Ok(Next::Done(Requeue::requeue(until(
        expires_at,
        Timestamp::now(),
    ))))
}

/// Fails a request whose Secret name is taken. `minted`: the token made before the conflict
/// showed, revoked (`Ok`) or still to revoke (`Err`); `None` when none was made.
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
    let mut status = failed(request, "SecretConflict", &message);
    match minted {
        Some(Ok(())) => status.revoked_at = Some(Time(Timestamp::now())),
        Some(Err(unrevoked)) => status.pending_revokes.push(unrevoked),
        None => {}
    }
    write_status(request, status, ctx).await?;
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
