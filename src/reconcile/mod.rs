//! Reconciling an ActorTokenRequest: observe, `decide` (pure), `apply` (adapters), repeat
//! until a step says to stop.

pub mod apply;
pub mod decide;
mod error;
pub mod instance;
pub mod instance_status;
pub mod secret;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use error::Error;
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    runtime::{controller::Action as Requeue, events::Recorder},
};
use tracing::{Instrument, debug, warn};

use self::{
    apply::{Next, View},
    decide::{Action, decide},
    instance::Instances,
};
use crate::{api::ActorTokenRequest, metrics::Metrics};

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub instances: Instances,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per request (by UID), for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        instances: Instances,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            recorder,
            instances,
            metrics,
            failures: Mutex::default(),
        }
    }
}

/// A decision loop is short: add finalizer → issue → done, or revoke → re-issue → done.
/// More steps than this means two writers are fighting; back off instead of spinning.
const MAX_STEPS: usize = 8;

pub async fn reconcile(
    request: Arc<ActorTokenRequest>,
    ctx: Arc<Context>,
) -> Result<Requeue, Error> {
    let started = Instant::now();
    let mut current = (*request).clone();
    let result = async {
        // The first view comes from the watch cache; every later one from the API server
        // itself (our own write's answer, or a read after a conflict).
        let mut view = View::Cached;
        for _ in 0..MAX_STEPS {
            let secret = observe_secret(&current, &ctx).await?;
            let state = secret::secret_state(&current, secret.as_ref());
            let action = decide(&current, &state, Timestamp::now());
            if !matches!(action, Action::Wait { .. }) {
                debug!(?action, "acting");
            }
            match apply::apply(action, &current, view, secret.as_ref(), &ctx).await? {
                Next::Done(requeue) => return Ok(requeue),
                Next::Again(updated) => {
                    current = *updated;
                    view = View::Fresh;
                }
            }
        }
        warn!("request kept changing under the operator; backing off");
        Ok(Requeue::requeue(Duration::from_secs(5)))
    }
    .instrument(tracing::info_span!(
        "reconcile",
        request = %format!("{}/{}", request.namespace().unwrap_or_default(), request.name_any())
    ))
    .await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_ok());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap()
            .remove(&request.uid().unwrap_or_default());
    }
    result
}

/// The request's Secret, read from the API server, not a cache: `decide` revokes tokens when
/// a Secret looks deleted, and a stale cache must never make it look so. A settled request
/// that isn't being deleted needs no look at all.
async fn observe_secret(
    request: &ActorTokenRequest,
    ctx: &Context,
) -> Result<Option<Secret>, Error> {
    let settled = request.phase().is_some_and(|p| p.is_settled());
    if settled && request.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    if !decide::has_finalizer(request) {
        return Ok(None);
    }
    let secrets =
        Api::<Secret>::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default());
    Ok(secrets.get_opt(&request.secret_name()).await?)
}

/// Retry with exponential backoff and jitter, except where Clerk said when (429), or where a
/// fix by a person is needed first (a refused key: retried slowly). A request being deleted
/// is retried no later than its token's expiry, when the finalizer may let go.
pub fn error_policy(request: Arc<ActorTokenRequest>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap();
        let n = failures
            .entry(request.uid().unwrap_or_default())
            .or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ReasonLabel {
            reason: error.reason().into(),
        })
        .inc();
    let mut delay = match error {
        Error::Clerk(e) if e.retry_after().is_some() => e.retry_after().unwrap_or_default(),
        Error::Clerk(crate::clerk::ClerkError::Unauthorized { .. }) => Duration::from_secs(300),
        _ => backoff(attempt, rand::random::<f64>()),
    };
    if request.metadata.deletion_timestamp.is_some()
        && let Some(expires_at) = request.status.as_ref().and_then(|s| s.expires_at.as_ref())
    {
        let left =
            Duration::try_from(expires_at.0.duration_since(Timestamp::now())).unwrap_or_default();
        delay = delay.min(left.max(Duration::from_secs(1)));
    }
    warn!(
        request = %format!("{}/{}", request.namespace().unwrap_or_default(), request.name_any()),
        error = %error, reason = error.reason(), attempt, retry_in = ?delay, "reconcile failed"
    );
    Requeue::requeue(delay)
}

/// Exponential from 1s, capped at 5 minutes, with "equal jitter" (half fixed, half random) so
/// that many requests failing together don't retry together.
pub fn backoff(attempt: u32, random: f64) -> Duration {
    let exp = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = exp.min(Duration::from_secs(300));
    capped.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(150));
    }
}
