//! The governance gate before a mint, carried out: `governance::judge` decides; this writes
//! what the verdict means to the request (a refusal, a wait for approval, a denial, a
//! decision taken away) and tells people in events and the audit log.

use kube::runtime::{controller::Action as Requeue, events::EventType};

use super::{
    Next,
    events::publish,
    status::{failed, show, write_or_refetch},
};
use crate::{
    api::{ActorTokenRequest, Phase, UserInfo, conditions::Standing},
    governance::{
        audit::{self, AuditEvent},
        judge::{Verdict, judge},
        reason,
    },
    reconcile::{Context, Error, instance::Resolved},
};

/// Through the gate, with the approver (if one was needed) for the token's provenance; or
/// stopped, with what to do next.
pub(super) enum Gate {
    Open { approver: Option<UserInfo> },
    Closed(Next),
}

pub(super) async fn pass(
    request: &ActorTokenRequest,
    resolved: &Resolved,
    ctx: &Context,
) -> Result<Gate, Error> {
    let verdict = judge(&ctx.client, request, &resolved.view(), &ctx.operator).await?;
    let next = match verdict {
        Verdict::Mint { approver } => return Ok(Gate::Open { approver }),
        Verdict::Refuse(refusal) => {
            let status = failed(request, refusal.reason, &refusal.message);
            if let Err(next) = write_or_refetch(request, status, ctx).await? {
                return Ok(Gate::Closed(next));
            }
            audit::record(
                AuditEvent::Refused,
                request,
                None,
                Some(refusal.reason),
                Some(&refusal.message),
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                refusal.reason,
                "Issue",
                refusal.message,
            )
            .await;
            Next::Done(Requeue::await_change())
        }
        Verdict::AwaitApproval => {
            let message = awaiting_message(request, resolved);
            let mut status = request.status.clone().unwrap_or_default();
            status.phase = Some(Phase::Pending);
            show(
                &mut status,
                request,
                Standing::Waiting {
                    reason: reason::AWAITING_APPROVAL,
                    message: &message,
                },
            );
            if let Err(next) = write_or_refetch(request, status, ctx).await? {
                return Ok(Gate::Closed(next));
            }
            // An approval (or a denial) is a change to the request: it wakes the reconcile.
            Next::Done(Requeue::await_change())
        }
        Verdict::Denied { by, message } => {
            let said = format!("Denied by {}: {message}", by.username);
            let mut status = request.status.clone().unwrap_or_default();
            status.phase = Some(Phase::Denied);
            show(&mut status, request, Standing::Denied { message: &said });
            if let Err(next) = write_or_refetch(request, status, ctx).await? {
                return Ok(Gate::Closed(next));
            }
            audit::record(
                AuditEvent::Denied,
                request,
                None,
                Some(reason::DENIED),
                Some(&message),
            );
            let note = format!(
                "{said} (requested by {}); no token was minted",
                requester_of(request)
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                reason::DENIED,
                "Approve",
                note,
            )
            .await;
            Next::Done(Requeue::await_change())
        }
        Verdict::Discard { condition, why } => {
            let mut status = request.status.clone().unwrap_or_default();
            status.conditions.retain(|c| c.type_ != condition);
            status.decided_by = None;
            let updated = match write_or_refetch(request, status, ctx).await? {
                Ok(updated) => updated,
                Err(next) => return Ok(Gate::Closed(next)),
            };
            let note = format!("The {condition} decision was taken away: {why}");
            audit::record(
                AuditEvent::DecisionDiscarded,
                request,
                None,
                Some(reason::DECISION_DISCARDED),
                Some(&why),
            );
            publish(
                ctx,
                request,
                EventType::Warning,
                reason::DECISION_DISCARDED,
                "Approve",
                note,
            )
            .await;
            // Decide again on what is left: most often, waiting for a valid approval.
            Next::Again(Box::new(updated))
        }
    };
    Ok(Gate::Closed(next))
}

fn requester_of(request: &ActorTokenRequest) -> &str {
    request
        .spec
        .requester
        .as_ref()
        .map(|r| r.username.as_str())
        .unwrap_or("nobody known")
}

/// What a waiting request says: who asked, whose approval it needs, and how to give it.
fn awaiting_message(request: &ActorTokenRequest, resolved: &Resolved) -> String {
    format!(
        "Requested by {}; waiting for approval by someone allowed to approve through {} \
         (RBAC verb `approve` on it), other than the requester: kubectl actortoken approve {} -n {}",
        requester_of(request),
        resolved.described,
        request.metadata.name.as_deref().unwrap_or_default(),
        request.metadata.namespace.as_deref().unwrap_or_default(),
    )
}
