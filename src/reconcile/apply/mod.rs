//! Carries out the [`Step`] `decide` chose: Clerk calls, status writes, Secret writes, the
//! finalizer, events. Thin on purpose: every choice is made in `decide` (the step, and how
//! to go on once an answer is in); each file here does one job.
//!
//! - `cleanup`: deleting finished requests where the instance asks for it
//! - `gate`: who may impersonate whom, and approval, checked before every mint
//! - `issue`: mint, deliver, mark issued
//! - `revoke`: revoke at Clerk, keep what can't be revoked yet in `pendingRevokes`
//! - `sessions`: end the impersonation sessions a request's tokens opened
//! - `finish`: expiry, a deleted Secret, the finalizer
//! - `secrets`: writing and deleting the link's Secret
//! - `status`: status and finalizer writes, conditional on the version decided on
//! - `events`: events about a request

mod cleanup;
mod events;
mod finish;
mod gate;
mod issue;
mod revoke;
mod secrets;
mod sessions;
mod status;

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{ResourceExt, runtime::controller::Action as Requeue};

use tracing::warn;

pub(crate) use self::status::refetch;
use self::status::{newer_than_cached, set_finalizers};
use super::{Context, Error, decide::Step, error::is_conflict, records::Vetted};
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
    /// Nothing was tried: a backoff still runs (come back then; it is no success).
    Deferred(Requeue),
    Again(Box<ActorTokenRequest>),
}

/// Carries out `step` on the request `read` from the cache or the API server, as `vetted`:
/// every step but dropping untrusted records acts on the request without them.
pub async fn apply(
    step: Step,
    read: &ActorTokenRequest,
    vetted: &Vetted,
    view: View,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<Next, Error> {
    let now = Timestamp::now();
    let request = &vetted.request;
    match step {
        Step::Wait { until: Some(at) } => Ok(Next::Done(Requeue::requeue(until(at, now)))),
        Step::Wait { until: None }
            if request.phase().is_some_and(|p| p.is_settled())
                && request.metadata.deletion_timestamp.is_none() =>
        {
            cleanup::settled(request, ctx).await
        }
        Step::Wait { until: None } => Ok(Next::Done(Requeue::await_change())),
        Step::AddFinalizer => add_finalizer(request, ctx).await,
        Step::DropUntrusted => drop_untrusted(read, vetted, ctx).await,
        Step::Issue => issue::issue(request, view, ctx).await,
        Step::FailSecretConflict => {
            issue::fail_secret_conflict(request, None, ctx).await?;
            Ok(Next::Done(Requeue::await_change()))
        }
        Step::FailMintLimit => issue::fail_mint_limit(request, ctx).await,
        Step::MarkIssued(delivered) => {
            // Most often the cache just lags behind our own `Issued` write: a read is cheaper
            // than a write refused with a conflict.
            if let Some(newer) = newer_than_cached(request, view, ctx).await? {
                return Ok(newer);
            }
            issue::mark_issued(request, &delivered, false, ctx).await
        }
        Step::RevokeUndelivered(token) => revoke::set_aside(request, &token, ctx).await,
        Step::RevokePending => revoke::revoke_pending(request, secret, ctx).await,
        Step::Expire {
            token,
            delete_secret,
        } => {
            let secret = delete_secret.then_some(secret).flatten();
            finish::expire(request, token, secret, ctx).await
        }
        Step::RevokeForDeletedSecret { token, sweep } => {
            finish::revoke_for_deleted_secret(request, token, sweep, ctx).await
        }
        Step::Finalize {
            revoke,
            sweep,
            delete_secret,
        } => {
            let secret = delete_secret.then_some(secret).flatten();
            finish::finalize(request, revoke, sweep, secret, ctx).await
        }
    }
}

/// Drops from `read`'s status the token records the operator didn't write (`vetted` is
/// `read` without them), with a Warning event naming them: no token is revoked on their word.
async fn drop_untrusted(
    read: &ActorTokenRequest,
    vetted: &Vetted,
    ctx: &Context,
) -> Result<Next, Error> {
    let status = vetted.request.status.clone().unwrap_or_default();
    let next = status::write_and_decide_again(read, status, ctx).await?;
    ctx.metrics
        .token_records_rejected
        .inc_by(vetted.untrusted.len() as u64);
    warn!(token_ids = ?vetted.untrusted, "token records the operator did not write were dropped");
    let note = format!(
        "Ignored token record(s) {} in the status: not written by the operator (no valid \
         seal). No token was revoked on their account.",
        vetted.untrusted.join(", ")
    );
    events::publish(
        ctx,
        read,
        kube::runtime::events::EventType::Warning,
        "TokenRecordRejected",
        "Verify",
        note,
    )
    .await;
    Ok(next)
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
