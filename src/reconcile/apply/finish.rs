//! Ending a request's token: at its expiry, when its Secret is deleted, and when the request
//! itself is deleted (the finalizer).

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
    revoke::{revoke, revoke_recorded},
    secrets::delete_secret,
    status::{refetch, set_finalizers, show, write_or_refetch},
};
use crate::{
    api::{ActorTokenRequest, FINALIZER, Phase, conditions::Standing},
    governance::audit::{self, AuditEvent},
    reconcile::{
        Context, Error,
        decide::TokenToRevoke,
        error::{is_conflict, is_not_found},
    },
};

pub(super) async fn expire(
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
    audit::record(
        AuditEvent::Revoked,
        request,
        token.as_ref().map(|t| t.token_id.as_str()),
        Some("SecretDeleted"),
        None,
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
    audit::record(
        AuditEvent::Revoked,
        request,
        revoke.as_ref().map(|t| t.token_id.as_str()),
        Some("RequestDeleted"),
        None,
    );
    // The link is dead now; the Secret goes last, so that its delete event finds the request
    // gone instead of waking a second finalize on a cached copy (a second revoke). Should this
    // fail, Kubernetes' garbage collector deletes it with its owner all the same.
    if let Err(error) = delete_secret(request, secret, ctx).await {
        warn!(%error, "could not delete the Secret of a deleted request; its owner reference will");
    }
    Ok(Next::Done(Requeue::await_change()))
}
