//! Carries out the [`Step`] `decide` chose: Clerk calls, status writes, Secret writes, the
//! finalizer, events. Thin on purpose: every choice is made in `decide` (the step, and how
//! to go on once an answer is in); each file here does one job.
//!
//! - `gate`: who may impersonate whom, and approval, checked before every mint
//! - `issue`: mint, deliver, mark issued
//! - `revoke`: revoke at Clerk, keep what can't be revoked yet in `pendingRevokes`
//! - `finish`: expiry, a deleted Secret, the finalizer
//! - `secrets`: writing and deleting the link's Secret
//! - `status`: status and finalizer writes, conditional on the version decided on
//! - `events`: events about a request

mod events;
mod finish;
mod gate;
mod issue;
mod revoke;
mod secrets;
mod status;

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{ResourceExt, runtime::controller::Action as Requeue};

use self::status::{newer_than_cached, refetch, set_finalizers};
use super::{Context, Error, decide::Step, error::is_conflict};
use crate::api::{ActorTokenRequest, FINALIZER};

/// Where the request a decision was made on came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The watch cache: it may lag behind the API server, even behind our own last write.
    Cached,
    /// The API server, just now (our own write's answer, or a read).
    Fresh,
}

/// After a step: stop here (and maybe look again later), or decide again on the object as
/// it now is.
pub enum Next {
    Done(Requeue),
    Again(Box<ActorTokenRequest>),
}

pub async fn apply(
    step: Step,
    request: &ActorTokenRequest,
    view: View,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let now = Timestamp::now();
    match step {
        Step::Wait { until: Some(at) } => Ok(Next::Done(Requeue::requeue(until(at, now)))),
        Step::Wait { until: None } => Ok(Next::Done(Requeue::await_change())),
        Step::AddFinalizer => add_finalizer(request, ctx).await,
        Step::Issue => issue::issue(request, view, ctx).await,
        Step::FailSecretConflict => {
            issue::fail_secret_conflict(request, None, ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        Step::MarkIssued(delivered) => {
            // Most often the cache just lags behind our own `Issued` write: a read is cheaper
            // than a write refused with a conflict.
            if let Some(newer) = newer_than_cached(request, view, ctx).await? {
                return Ok(newer);
            }
            issue::mark_issued(request, &delivered, ctx).await
        }
        Step::RevokeUndelivered { token_id } => revoke::set_aside(request, &token_id, ctx).await,
        Step::RevokePending => revoke::revoke_pending(request, secret, ctx).await,
        Step::Expire {
            token_id,
            delete_secret,
        } => {
            let secret = delete_secret.then_some(secret).flatten();
            finish::expire(request, token_id, secret, ctx).await
        }
        Step::RevokeForDeletedSecret { token } => {
            finish::revoke_for_deleted_secret(request, token, ctx).await
        }
        Step::Finalize {
            revoke,
            delete_secret,
        } => {
            let secret = delete_secret.then_some(secret).flatten();
            finish::finalize(request, revoke, secret, ctx).await
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

/// How long until `at`, at least a second (a requeue in the past would spin).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let left = at.duration_since(now);
    Duration::try_from(left)
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}
