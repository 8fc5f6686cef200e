//! Carries out what `decide` chose: Clerk calls, status writes, Secret writes, the finalizer,
//! events. Thin on purpose; the choices are made in `decide`.
//!
//! Every status write is a full replace at the resourceVersion the decision was made on, so a
//! decision taken on a stale view (an old watch cache, a second operator) loses with a 409
//! instead of overwriting what someone else recorded.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action as Requeue,
        events::{Event, EventType},
    },
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Context, Error,
    decide::{
        Action, DeliveredToken, SecretState, TokenToRevoke, may_give_up_revoking, plan_token,
    },
    error::{is_already_exists, is_conflict, is_not_found},
    secret::{Delivery, secret_for, secret_state},
};
use crate::{
    api::{
        ActorTokenRequest, ActorTokenRequestStatus, FINALIZER, MANAGER, PendingRevoke, Phase,
        conditions::{self, Standing},
    },
    clerk::{ClerkClient, ClerkError, RevokeOutcome},
};

/// Where the request a decision was made on came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The watch cache: it may lag behind the API server, even behind our own last write.
    Cached,
    /// The API server, just now (our own write's answer, or a read).
    Fresh,
}

/// After an action: stop here (and maybe look again later), or decide again on the object as
/// it now is.
pub enum Next {
    Done(Requeue),
    Again(Box<ActorTokenRequest>),
}

pub async fn apply(
    action: Action,
    request: &ActorTokenRequest,
    view: View,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let now = Timestamp::now();
    match action {
        Action::Wait { until: Some(at) } => Ok(Next::Done(Requeue::requeue(until(at, now)))),
        Action::Wait { until: None } => Ok(Next::Done(Requeue::await_change())),
        Action::AddFinalizer => add_finalizer(request, ctx).await,
        Action::Issue => issue(request, view, ctx).await,
        Action::FailSecretConflict => {
            fail_secret_conflict(request, None, ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        Action::MarkIssued(delivered) => {
            // Most often the cache just lags behind our own `Issued` write: a read is cheaper
            // than a write refused with a conflict.
            if let Some(newer) = newer_than_cached(request, view, ctx).await? {
                return Ok(newer);
            }
            mark_issued(request, &delivered, ctx).await
        }
        Action::RevokeUndelivered { token_id } => set_aside(request, &token_id, ctx).await,
        Action::RevokePending => revoke_pending(request, secret, ctx).await,
        Action::Expire {
            token_id,
            delete_secret,
        } => {
            expire(
                request,
                token_id,
                delete_secret.then_some(secret).flatten(),
                ctx,
            )
            .await
        }
        Action::RevokeForDeletedSecret { token } => {
            revoke_for_deleted_secret(request, token, ctx).await
        }
        Action::Finalize {
            revoke,
            delete_secret,
        } => {
            finalize(
                request,
                revoke,
                delete_secret.then_some(secret).flatten(),
                ctx,
            )
            .await
        }
    }
}

async fn add_finalizer(request: &ActorTokenRequest, ctx: &Context) -> Result<Next, Error> {
    let mut finalizers = request.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    match set_finalizers(request, finalizers, ctx).await {
        Ok(updated) => Ok(Next::Again(Box::new(updated))),
        Err(e) if is_conflict(&e) => refetch(request, ctx).await,
        Err(e) => Err(e.into()),
    }
}

/// Sets the finalizers, at the resourceVersion `request` was read at.
async fn set_finalizers(
    request: &ActorTokenRequest,
    finalizers: Vec<String>,
    ctx: &Context,
) -> Result<ActorTokenRequest, kube::Error> {
    let patch = json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": request.resource_version() }
    });
    api(request, ctx)
        .patch(
            &request.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

async fn issue(request: &ActorTokenRequest, view: View, ctx: &Context) -> Result<Next, Error> {
    // The controller's cache can lag behind our own last write. A token minted on a stale view
    // loses its race and must be revoked again; one read first is cheaper. A view just read
    // or written needs none (the usual case: the finalizer was added a moment ago).
    if let Some(newer) = newer_than_cached(request, view, ctx).await? {
        return Ok(newer);
    }
    let resolved = match ctx.instances.resolve(request).await {
        Ok(resolved) => resolved,
        Err(error) => {
            set_waiting(request, &error, ctx).await;
            return Err(error);
        }
    };
    let new_token = match plan_token(&request.spec, &resolved.limits) {
        Ok(token) => token,
        Err(problem) => {
            let status = failed(request, "DurationNotAllowed", &problem);
            write_status(request, status, ctx).await?;
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
    let unrecorded =
        |cause| revoke_unrecorded(request, &resolved.client, &token.id, expires_at, cause, ctx);
    match deliver(request, &delivery, ctx).await {
        Delivered::Written => {}
        Delivered::Conflict => {
            let revoked = revoke(&resolved.client, &token.id, "secret-conflict", ctx).await;
            let minted = revoked.map_err(|_| PendingRevoke {
                token_id: token.id.clone(),
                expires_at: Time(expires_at),
            });
            fail_secret_conflict(request, Some(minted), ctx).await?;
            return Ok(Next::Done(Requeue::await_change()));
        }
        Delivered::Twin => {
            // Another operator delivered its token first: ours must not stay live.
            warn!(token_id = %token.id, "another token was delivered first; revoking this one");
            unrecorded("lost-race").await;
            return refetch(request, ctx).await;
        }
        Delivered::Failed(error) => {
            // The write may have happened all the same: only the Secret knows.
            match secrets(request, ctx).get_opt(&request.secret_name()).await {
                Ok(secret) => match secret_state(request, secret.as_ref()) {
                    SecretState::Ours {
                        delivered: Some(found),
                    } if found.token_id == token.id => {}
                    _ => {
                        unrecorded("delivery-failed").await;
                        set_waiting(request, &error, ctx).await;
                        return Err(error);
                    }
                },
                Err(read_error) => {
                    // Can't tell: set it aside. Revoking it also deletes its Secret, if the
                    // link did arrive, so no dead link is ever marked issued.
                    warn!(token_id = %token.id, %read_error, "delivery unknown; setting the token aside");
                    set_aside_unrevoked(request, &token.id, expires_at, ctx).await;
                    return Err(error);
                }
            }
        }
    }
    info!(token_id = %token.id, "token delivered");
    mark_issued(request, &delivered, ctx).await
}

/// A create that didn't produce a token.
async fn create_failed(
    request: &ActorTokenRequest,
    error: ClerkError,
    client: &ClerkClient,
    expires_in_seconds: u64,
    ctx: &Context,
) -> Result<Next, Error> {
    if error.is_final() {
        let message = format!("Clerk rejected the token request: {error}");
        write_status(request, failed(request, error.reason(), &message), ctx).await?;
        publish(
            ctx,
            request,
            EventType::Warning,
            error.reason(),
            "Issue",
            message,
        )
        .await;
        return Ok(Next::Done(Requeue::await_change()));
    }
    if error.outcome_unknown() {
        if let Some(token_id) = error.token_id() {
            // Clerk made a token but its answer was unusable: we know its ID, so revoke it.
            let dies = Timestamp::now() + SignedDuration::from_secs(expires_in_seconds as i64);
            revoke_unrecorded(request, client, token_id, dies, "unusable-answer", ctx).await;
        } else {
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
            return Err(error.into());
        }
    }
    let error = Error::Clerk(error);
    set_waiting(request, &error, ctx).await;
    Err(error)
}

enum Delivered {
    Written,
    /// The name is taken by a Secret that isn't this request's.
    Conflict,
    /// This request's Secret already holds another token's link.
    Twin,
    Failed(Error),
}

/// Writes the link's Secret: creates it, or replaces one of this request's that holds no
/// token. A Secret of anyone else's is left exactly as it is, and so is one holding a token.
async fn deliver(request: &ActorTokenRequest, delivery: &Delivery<'_>, ctx: &Context) -> Delivered {
    let secrets = secrets(request, ctx);
    let desired = secret_for(request, delivery);
    let name = request.secret_name();
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let failed = |source| {
        Delivered::Failed(Error::Secret {
            name: name.clone(),
            source,
        })
    };
    match secrets.create(&pp, &desired).await {
        Ok(_) => return Delivered::Written,
        Err(e) if is_already_exists(&e) => {}
        Err(e) => return failed(e),
    }
    let existing = match secrets.get_opt(&name).await {
        Ok(existing) => existing,
        Err(e) => return failed(e),
    };
    match existing {
        Some(existing) => match secret_state(request, Some(&existing)) {
            SecretState::Ours { delivered: None } => {
                let mut replacement = desired;
                replacement.metadata.resource_version = existing.metadata.resource_version;
                match secrets.replace(&name, &pp, &replacement).await {
                    Ok(_) => Delivered::Written,
                    Err(e) => failed(e),
                }
            }
            SecretState::Ours { delivered: Some(_) } => Delivered::Twin,
            _ => Delivered::Conflict,
        },
        // Deleted in between: try once more from the top on the next reconcile.
        None => failed(kube::Error::Api(Box::new(
            kube::core::Status::failure("Secret vanished while being written", "Conflict")
                .with_code(409),
        ))),
    }
}

/// Records the delivered token and marks the request issued, in one status write.
async fn mark_issued(
    request: &ActorTokenRequest,
    delivered: &DeliveredToken,
    ctx: &Context,
) -> Result<Next, Error> {
    let mut status = request.status.clone().unwrap_or_default();
    let expires_at = delivered.expires_at.unwrap_or_else(latest_expiry);
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
    if let Err(next) = write_or_refetch(request, status, ctx).await? {
        return Ok(next);
    }
    ctx.metrics.tokens_issued.inc();
    publish(ctx, request, EventType::Normal, "Issued", "Issue", message).await;
    Ok(Next::Done(Requeue::requeue(until(
        expires_at,
        Timestamp::now(),
    ))))
}

/// Moves a recorded token whose link never reached a Secret to `pendingRevokes`, so that a
/// new one can be issued. Conditional: if another operator is delivering it right now, its
/// write wins and this step is decided again.
async fn set_aside(
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
    Ok(match write_or_refetch(request, status, ctx).await? {
        Ok(updated) => Next::Again(Box::new(updated)),
        Err(next) => next,
    })
}

/// Revokes every token set aside; those Clerk can't be asked about now stay for the retry. A
/// revoked token whose link is in our Secret takes the Secret with it, so a dead link is never
/// marked issued.
async fn revoke_pending(
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
    if let SecretState::Ours {
        delivered: Some(delivered),
    } = secret_state(request, secret)
        && revoked.contains(&delivered.token_id)
    {
        delete_secret(request, secret, ctx).await?;
    }
    if let Some(error) = failure {
        let status = waiting_status_of(status, request, &error);
        if let Err(e) = write_status(request, status, ctx).await {
            warn!(error = %e, "could not write the status");
        }
        return Err(error);
    }
    Ok(match write_or_refetch(request, status, ctx).await? {
        Ok(updated) => Next::Again(Box::new(updated)),
        Err(next) => next,
    })
}

/// Sets a token aside for revoking without trying to revoke it first: when it isn't known
/// whether its link reached the Secret (`revoke_pending` deals with both cases).
async fn set_aside_unrevoked(
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
async fn revoke_unrecorded(
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

async fn expire(
    request: &ActorTokenRequest,
    token_id: Option<String>,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    if let Some(token_id) = &token_id {
        // Past expiry Clerk no longer accepts the token, so one try is enough; it only
        // matters if Clerk's clock is behind ours.
        if let Some(client) = ctx.instances.for_revoke(request).await {
            revoke(&client, token_id, "expired", ctx).await.ok();
        }
    }
    delete_secret(request, secret, ctx).await?;
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Expired);
    status.token_id = token_id.or(status.token_id);
    let message =
        "The sign-in link expired; its Secret was deleted. Create a new request for a new link.";
    show(&mut status, request, Standing::Expired { message });
    if let Err(next) = write_or_refetch(request, status, ctx).await? {
        return Ok(next);
    }
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

async fn revoke_for_deleted_secret(
    request: &ActorTokenRequest,
    token: Option<TokenToRevoke>,
    ctx: &Context,
) -> Result<Next, Error> {
    if let Some(token) = &token {
        revoke_recorded(request, token, "secret-deleted", ctx).await?;
    }
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Revoked);
    status.revoked_at = Some(Time(Timestamp::now()));
    let message = format!(
        "Secret {} was deleted, so the token was revoked. Create a new request for a new link.",
        request.secret_name()
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

async fn finalize(
    request: &ActorTokenRequest,
    revoke: Option<TokenToRevoke>,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    if let Some(token) = &revoke {
        revoke_recorded(request, token, "deleted", ctx).await?;
    }
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
    // The link is dead now; the Secret goes last, so that its delete event finds the request
    // gone instead of waking a second finalize on a cached copy (a second revoke). Should this
    // fail, Kubernetes' garbage collector deletes it with its owner all the same.
    if let Err(error) = delete_secret(request, secret, ctx).await {
        warn!(%error, "could not delete the Secret of a deleted request; its owner reference will");
    }
    Ok(Next::Done(Requeue::await_change()))
}

/// Revokes the request's recorded token (or gives up on it); while that fails, the request
/// shows why it waits.
async fn revoke_recorded(
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
/// protects anything (see `decide::may_give_up_revoking`).
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
async fn revoke(
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

async fn delete_secret(
    request: &ActorTokenRequest,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<(), Error> {
    let Some(secret) = secret else { return Ok(()) };
    // The precondition makes sure it is the very Secret we saw as ours that goes.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let name = secret.name_any();
    match secrets(request, ctx).delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(source) => Err(Error::Secret { name, source }),
    }
}

/// Fails a request whose Secret name is taken. `minted`: the token made before the conflict
/// showed, revoked (`Ok`) or still to revoke (`Err`); `None` when none was made.
async fn fail_secret_conflict(
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

fn failed(request: &ActorTokenRequest, reason: &str, message: &str) -> ActorTokenRequestStatus {
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Failed);
    show(&mut status, request, Standing::Failed { reason, message });
    status
}

fn waiting_status(request: &ActorTokenRequest, error: &Error) -> ActorTokenRequestStatus {
    waiting_status_of(request.status.clone().unwrap_or_default(), request, error)
}

/// Shows why a request is waiting. A finished request (a token set aside for revoking is all
/// that is left to do) keeps showing how it finished: the retry is the operator's business.
fn waiting_status_of(
    mut status: ActorTokenRequestStatus,
    request: &ActorTokenRequest,
    error: &Error,
) -> ActorTokenRequestStatus {
    let phase = *status.phase.get_or_insert(Phase::Pending);
    if !phase.is_settled() {
        let message = error.to_string();
        let reason = error.reason();
        show(
            &mut status,
            request,
            Standing::Waiting {
                reason,
                message: &message,
            },
        );
    }
    status
}

/// Shows why the request is waiting. Best effort: the error itself is what gets retried.
async fn set_waiting(request: &ActorTokenRequest, error: &Error, ctx: &Context) {
    if let Err(e) = write_status(request, waiting_status(request, error), ctx).await
        && !is_conflict(&e)
    {
        warn!(error = %e, "could not write the status");
    }
}

/// Sets the conditions for `standing`, observed at the request's generation, in the same write.
fn show(status: &mut ActorTokenRequestStatus, request: &ActorTokenRequest, standing: Standing<'_>) {
    let generation = request.metadata.generation;
    status.observed_generation = generation;
    conditions::show(
        &mut status.conditions,
        standing,
        generation,
        Timestamp::now(),
    );
}

/// Replaces the status at the resourceVersion `request` was read at; no write at all when
/// nothing changed.
async fn write_status(
    request: &ActorTokenRequest,
    status: ActorTokenRequestStatus,
    ctx: &Context,
) -> Result<ActorTokenRequest, kube::Error> {
    if request.status.as_ref() == Some(&status) {
        return Ok(request.clone());
    }
    let mut updated = request.clone();
    updated.status = Some(status);
    updated.metadata.managed_fields = None;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    api(request, ctx)
        .replace_status(&request.name_any(), &pp, &updated)
        .await
}

/// Applies `change` to the freshest status and writes it, retrying on conflicts: for facts
/// that must not be lost to a race (a token to revoke, a lost token counted).
async fn update_durably(
    request: &ActorTokenRequest,
    ctx: &Context,
    change: impl Fn(&mut ActorTokenRequestStatus),
) -> Result<ActorTokenRequest, Error> {
    let mut current = request.clone();
    let mut attempts = 0;
    loop {
        let mut status = current.status.clone().unwrap_or_default();
        change(&mut status);
        match write_status(&current, status, ctx).await {
            Ok(updated) => return Ok(updated),
            Err(e) if is_conflict(&e) && attempts < 5 => {
                attempts += 1;
                current = api(request, ctx).get(&request.name_any()).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The latest any token of ours can expire: when a token's own expiry is unknown.
fn latest_expiry() -> Timestamp {
    Timestamp::now()
        + SignedDuration::try_from(crate::api::duration::MAX_DURATION).unwrap_or_default()
}

/// For a decision made on the watch cache: the request as the API server has it now, if that
/// is not what the decision saw (decide again on it then).
async fn newer_than_cached(
    request: &ActorTokenRequest,
    view: View,
    ctx: &Context,
) -> Result<Option<Next>, Error> {
    if view == View::Fresh {
        return Ok(None);
    }
    let Some(fresh) = api(request, ctx).get_opt(&request.name_any()).await? else {
        return Ok(Some(Next::Done(Requeue::await_change())));
    };
    Ok((fresh.resource_version() != request.resource_version())
        .then(|| Next::Again(Box::new(fresh))))
}

/// Writes the status; when someone changed the request first, gives back the step to take
/// instead: decide again on the request as it now is.
async fn write_or_refetch(
    request: &ActorTokenRequest,
    status: ActorTokenRequestStatus,
    ctx: &Context,
) -> Result<Result<ActorTokenRequest, Next>, Error> {
    match write_status(request, status, ctx).await {
        Ok(updated) => Ok(Ok(updated)),
        Err(e) if is_conflict(&e) => refetch(request, ctx).await.map(Err),
        Err(e) => Err(e.into()),
    }
}

async fn refetch(request: &ActorTokenRequest, ctx: &Context) -> Result<Next, Error> {
    match api(request, ctx).get_opt(&request.name_any()).await? {
        Some(fresh) => Ok(Next::Again(Box::new(fresh))),
        None => Ok(Next::Done(Requeue::await_change())),
    }
}

async fn publish(
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

fn api(request: &ActorTokenRequest, ctx: &Context) -> Api<ActorTokenRequest> {
    Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default())
}

fn secrets(request: &ActorTokenRequest, ctx: &Context) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default())
}

/// How long until `at`, at least a second (a requeue in the past would spin).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let left = at.duration_since(now);
    Duration::try_from(left)
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}
