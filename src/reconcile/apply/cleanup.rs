//! Deleting finished requests where their instance asks for it (`deleteFinishedAfter`).
//! `governance::cleanup` decides when (and never for a request a GitOps tool manages); this
//! deletes, exactly the version decided on, and lets the finalizer do the rest.

use k8s_openapi::jiff::Timestamp;
use kube::{
    ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::{controller::Action as Requeue, events::EventType},
};

use super::{
    Next,
    events::publish,
    status::{api, refetch},
    until,
};
use crate::{
    api::ActorTokenRequest,
    governance::{
        audit::{self, AuditEvent},
        cleanup,
    },
    reconcile::{Context, Error, compact, error::is_not_found},
};

/// For a finished request: delete it if its time has come, else wake at that time (or never).
pub(super) async fn settled(request: &ActorTokenRequest, ctx: &Context) -> Result<Next, Error> {
    let after = ctx.instances.delete_finished_after(request).await?;
    let Some(at) = cleanup::delete_at(request, after) else {
        return Ok(Next::Done(Requeue::await_change()));
    };
    let now = Timestamp::now();
    if at > now {
        return Ok(Next::Done(Requeue::requeue(until(at, now))));
    }
    // Deleted and audited as the API server has it, never on a compact form's word.
    if compact::is_compact(request) {
        return refetch(request, ctx).await;
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: request.metadata.uid.clone(),
            resource_version: request.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api(request, ctx).delete(&request.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_conflict() => {
            // Changed since it was judged: look again on the next event.
            return Ok(Next::Done(Requeue::await_change()));
        }
        Err(e) if is_not_found(&e) => return Ok(Next::Done(Requeue::await_change())),
        Err(e) => return Err(e.into()),
    }
    audit::record(
        AuditEvent::Deleted,
        request,
        None,
        Some("DeleteFinishedAfter"),
        None,
    );
    publish(
        ctx,
        request,
        EventType::Normal,
        "Deleted",
        "Cleanup",
        "The request finished and its instance's deleteFinishedAfter has passed: deleted.".into(),
    )
    .await;
    Ok(Next::Done(Requeue::await_change()))
}
