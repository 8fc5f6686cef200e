//! Reconciling an ActorTokenRequest: observe, `decide` (pure), `apply` (adapters), repeat
//! until a step says to stop.

pub mod apply;
pub mod compact;
pub mod decide;
mod error;
pub mod fairness;
pub mod instance;
pub mod instance_status;
pub mod records;
pub mod seal;
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
    decide::{Step, decide, retry::retry_delay},
    fairness::{FairShare, Work},
    instance::Instances,
    seal::SealKey,
};
use crate::{
    api::{ActorTokenRequest, Phase},
    metrics::Metrics,
};

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub instances: Instances,
    pub metrics: Arc<Metrics>,
    /// The operator's own username: it never approves, so a decision by it never counts.
    pub operator: String,
    /// The key the operator seals its token records with.
    pub seal: SealKey,
    /// Each namespace's share of the reconcile slots.
    pub fair_share: Arc<FairShare>,
    /// Consecutive failures per request (by UID), for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Per request (by UID) whose last reconcile minted a token and failed: no new mint
    /// before this time, whatever wakes it (its own status write would at once).
    mint_not_before: Mutex<HashMap<String, Instant>>,
}

impl Context {
    /// How long `request` must still wait before minting again, after a failed mint.
    pub fn mint_wait(&self, request: &ActorTokenRequest) -> Option<Duration> {
        let uid = request.uid()?;
        let not_before = *self.mint_not_before.lock().unwrap().get(&uid)?;
        not_before.checked_duration_since(Instant::now())
    }

    pub fn new(
        client: Client,
        recorder: Recorder,
        instances: Instances,
        metrics: Arc<Metrics>,
        operator: String,
        seal: SealKey,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            recorder,
            instances,
            metrics,
            operator,
            seal,
            fair_share: FairShare::new(concurrency),
            failures: Mutex::default(),
            mint_not_before: Mutex::default(),
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
    // Past its namespace's share of the slots, come back shortly having done nothing (no API
    // call): the slot goes to another namespace meanwhile.
    let namespace = request.namespace().unwrap_or_default();
    let Some(_slot) = ctx.fair_share.enter(&namespace, work(&request)) else {
        ctx.metrics.reconciles_deferred.inc();
        let delay = Duration::from_millis(500).mul_f64(1.0 + rand::random::<f64>());
        return Ok(Requeue::requeue(delay));
    };
    let started = Instant::now();
    let mut current = (*request).clone();
    let span = tracing::info_span!(
        "reconcile",
        request = %format!("{}/{}", request.namespace().unwrap_or_default(), request.name_any())
    );
    let mut deferred = false;
    let result = async {
        // The first view comes from the watch cache; every later one from the API server
        // itself (our own write's answer, or a read after a conflict).
        let mut view = View::Cached;
        for _ in 0..MAX_STEPS {
            let secret = observe_secret(&current, &ctx).await?;
            // Only records the operator wrote are acted on (see `seal`).
            let now = Timestamp::now();
            let vetted = records::vet(&current, &ctx.seal, now);
            let state = secret::secret_state(&vetted.request, secret.as_ref(), &ctx.seal, now);
            let untrusted = !vetted.untrusted.is_empty();
            let step = decide(&vetted.request, &state, untrusted, now);
            // A compact request (see `compact`) is only ever left to wait: anything else is
            // decided again on the whole object.
            if compact::is_compact(&current) && !matches!(step, Step::Wait { .. }) {
                match apply::refetch(&current, &ctx).await? {
                    Next::Again(whole) => {
                        current = *whole;
                        view = View::Fresh;
                        continue;
                    }
                    Next::Done(requeue) | Next::Deferred(requeue) => return Ok(requeue),
                }
            }
            if !matches!(step, Step::Wait { .. }) {
                debug!(?step, "acting");
            }
            match apply::apply(step, &current, &vetted, view, secret.as_ref(), &ctx).await? {
                Next::Done(requeue) => return Ok(requeue),
                Next::Deferred(requeue) => {
                    deferred = true;
                    return Ok(requeue);
                }
                Next::Again(updated) => {
                    current = *updated;
                    view = View::Fresh;
                }
            }
        }
        warn!("request kept changing under the operator; backing off");
        Ok(Requeue::requeue(Duration::from_secs(5)))
    }
    .instrument(span.clone())
    .await;
    // The version this reconcile started from: whatever was written before it, it saw.
    span.in_scope(|| {
        debug!(
            resource_version = request.resource_version().unwrap_or_default(),
            ok = result.is_ok(),
            "reconciled"
        )
    });
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_ok());
    // A reconcile put off by a backoff is no success: the backoff keeps growing.
    if result.is_ok() && !deferred {
        let uid = request.uid().unwrap_or_default();
        ctx.failures.lock().unwrap().remove(&uid);
        ctx.mint_not_before.lock().unwrap().remove(&uid);
    }
    result
}

/// What a reconcile of `request` will most likely do, as far as the cached copy tells: for
/// the namespace's share of the slots, revocations come before issuing.
fn work(request: &ActorTokenRequest) -> Work {
    let status = request.status.as_ref();
    let revoking = request.metadata.deletion_timestamp.is_some()
        || status.is_some_and(|s| !s.pending_revokes.is_empty())
        || request.phase() == Some(Phase::Issued);
    if revoking { Work::Revoke } else { Work::Issue }
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

/// When to look again after a failed reconcile: `decide::retry` says how long.
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
    // A request being deleted may be let go once its token is dead: look again by then.
    let left_before_expiry = request
        .metadata
        .deletion_timestamp
        .as_ref()
        .and(request.status.as_ref().and_then(|s| s.expires_at.as_ref()))
        .map(|expires_at| {
            Duration::try_from(expires_at.0.duration_since(Timestamp::now())).unwrap_or_default()
        });
    let delay = retry_delay(error, attempt, rand::random::<f64>(), left_before_expiry);
    if error.may_follow_a_mint() {
        ctx.mint_not_before
            .lock()
            .unwrap()
            .insert(request.uid().unwrap_or_default(), Instant::now() + delay);
    }
    warn!(
        request = %format!("{}/{}", request.namespace().unwrap_or_default(), request.name_any()),
        error = %error, reason = error.reason(), attempt, retry_in = ?delay, "reconcile failed"
    );
    Requeue::requeue(delay)
}
