//! Writing a request's status and metadata. Every status write is a full replace at the
//! resourceVersion the decision was made on, so a decision taken on a stale view (an old
//! watch cache, a second operator) loses with a 409 instead of overwriting what someone else
//! recorded.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::controller::Action as Requeue,
};
use serde_json::json;
use tracing::warn;

use super::{Next, View};
use crate::{
    api::{
        ActorTokenRequest, ActorTokenRequestStatus, MANAGER, Phase,
        conditions::{self, Standing},
    },
    reconcile::{Context, Error, error::is_conflict},
};

pub(super) fn api(request: &ActorTokenRequest, ctx: &Context) -> Api<ActorTokenRequest> {
    Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default())
}

/// Sets the finalizers, at the resourceVersion `request` was read at.
pub(super) async fn set_finalizers(
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

/// The status of a request that can't be served as written.
pub(super) fn failed(
    request: &ActorTokenRequest,
    reason: &str,
    message: &str,
) -> ActorTokenRequestStatus {
    let mut status = request.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Failed);
    show(&mut status, request, Standing::Failed { reason, message });
    status
}

pub(super) fn waiting_status(
    request: &ActorTokenRequest,
    error: &Error,
) -> ActorTokenRequestStatus {
    waiting_status_of(request.status.clone().unwrap_or_default(), request, error)
}

/// Shows why a request is waiting. A finished request (a token set aside for revoking is all
/// that is left to do) keeps showing how it finished: the retry is the operator's business.
pub(super) fn waiting_status_of(
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
/// Returns whether that was news (the status changed).
pub(super) async fn set_waiting(request: &ActorTokenRequest, error: &Error, ctx: &Context) -> bool {
    let status = waiting_status(request, error);
    if request.status.as_ref() == Some(&status) {
        return false;
    }
    match write_status(request, status, ctx).await {
        Ok(_) => true,
        Err(e) => {
            if !is_conflict(&e) {
                warn!(error = %e, "could not write the status");
            }
            false
        }
    }
}

/// Sets the conditions for `standing`, observed at the request's generation, in the same write.
pub(super) fn show(
    status: &mut ActorTokenRequestStatus,
    request: &ActorTokenRequest,
    standing: Standing<'_>,
) {
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
pub(super) async fn write_status(
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
pub(super) async fn update_durably(
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

/// Writes the status; when someone changed the request first, gives back the step to take
/// instead: decide again on the request as it now is.
pub(super) async fn write_or_refetch(
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

/// Writes the status, then decides again on what the API server answered (or on the request
/// as it now is, if someone changed it first).
pub(super) async fn write_and_decide_again(
    request: &ActorTokenRequest,
    status: ActorTokenRequestStatus,
    ctx: &Context,
) -> Result<Next, Error> {
    Ok(match write_or_refetch(request, status, ctx).await? {
        Ok(updated) => Next::Again(Box::new(updated)),
        Err(next) => next,
    })
}

pub(crate) async fn refetch(request: &ActorTokenRequest, ctx: &Context) -> Result<Next, Error> {
    match api(request, ctx).get_opt(&request.name_any()).await? {
        Some(fresh) => Ok(Next::Again(Box::new(fresh))),
        None => Ok(Next::Done(Requeue::await_change())),
    }
}

/// For a decision made on the watch cache: the request as the API server has it now, if that
/// is not what the decision saw (decide again on it then).
pub(super) async fn newer_than_cached(
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

/// The latest any token of ours can expire: when a token's own expiry is unknown.
pub(super) fn latest_expiry() -> Timestamp {
    Timestamp::now()
        + SignedDuration::try_from(crate::api::duration::MAX_DURATION).unwrap_or_default()
}
