//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! reconciles, with client-go's rules:
//!
//! - A standby takes a lease whose holder is empty, or whose record it has seen unchanged for
//!   the lease duration *by its own clock* (renew times written by another machine's clock
//!   are never compared with ours, so clock skew can't shorten a lease).
//! - The leader renews every retry period. If it has not renewed for the renew deadline
//!   (two thirds of the lease duration, counted from before the last successful renew was
//!   sent), it stops reconciling at once: a standby can't take the lease before a whole
//!   lease duration after it saw that renew, so the two never reconcile together.
//! - On shutdown the leader first lets its controllers finish what they are doing (renewing
//!   meanwhile), then clears the holder, so a standby takes over at its next poll.
//!
//! Verbs used: get, create, update. A renew is one update of the Lease last written; only a
//! conflict makes it read the Lease again.

use std::{future::Future, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tracing::{debug, error, info, warn};

use super::{Shutdown, server::Health};
use crate::metrics::Metrics;

/// Which Lease, and who we are.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

/// `POD_NAME` when set (the chart sets it from the pod's name), else `<hostname>-<pid>`.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The lease duration, the renew deadline and the retry period, in client-go's default
/// proportions (15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl Timings {
    pub fn for_lease(lease: Duration) -> Timings {
        Timings {
            lease,
            renew_deadline: lease * 2 / 3,
            retry: (lease * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Write this spec: take the lease, or renew ours.
    Write(LeaseSpec),
    /// Another holder's lease is still running.
    HeldBy(String),
}

/// Decides whether `identity` may write the lease `current` (None: no Lease yet), and what
/// to write. `expired`: the current record has been seen unchanged for its whole duration.
pub fn claim(
    current: Option<&LeaseSpec>,
    identity: &str,
    expired: bool,
    now: Timestamp,
    lease: Duration,
) -> Claim {
    let holder = current
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    let ours = holder == Some(identity);
    if let Some(other) = holder
        && !ours
        && !expired
    {
        return Claim::HeldBy(other.to_owned());
    }
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    Claim::Write(LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(i32::try_from(lease.as_secs()).unwrap_or(i32::MAX)),
        renew_time: Some(MicroTime(now)),
        acquire_time: if ours {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..current.cloned().unwrap_or_default()
    })
}

/// The spec that gives the lease up: no holder, so a standby takes it at once.
pub fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        acquire_time: None,
        ..current.clone()
    }
}

/// The Lease as last seen, and when (by our clock) its record last changed.
struct Observed {
    lease: Lease,
    changed_at: Instant,
}

impl Observed {
    /// The holder's lease has run out: its record has not changed for the duration it
    /// states (or ours, if it states none).
    fn expired(&self, now: Instant, default: Duration) -> bool {
        let duration = self
            .lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(default);
        now >= self.changed_at + duration
    }
}

/// The result of one attempt to take or renew the lease.
#[derive(Debug, PartialEq)]
enum Attempt {
    Held,
    HeldBy(String),
    /// Someone wrote the Lease between our read and our write; read again.
    Conflict,
}

/// Talks to the API server about one Lease.
struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
    /// We hold the lease as `observed` shows: a renew can write without reading first.
    holding: bool,
}

impl Elector {
    fn new(client: Client, settings: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            holding: false,
        }
    }

    fn observe(&mut self, lease: Lease) {
        let now = Instant::now();
        match &mut self.observed {
            Some(seen) if seen.lease.spec == lease.spec => seen.lease = lease,
            _ => {
                self.observed = Some(Observed {
                    lease,
                    changed_at: now,
                })
            }
        }
    }

    async fn attempt(&mut self) -> Result<Attempt, kube::Error> {
        if !self.holding {
            match self.api.get_opt(&self.settings.name).await? {
                Some(lease) => self.observe(lease),
                None => return self.create().await,
            }
        }
        let observed = self
            .observed
            .as_ref()
            .expect("observed above or when taken");
        let expired = observed.expired(Instant::now(), self.settings.duration);
        let claim = claim(
            observed.lease.spec.as_ref(),
            &self.settings.identity,
            expired,
            Timestamp::now(),
            self.settings.duration,
        );
        let spec = match claim {
            Claim::HeldBy(holder) => {
                self.holding = false;
                return Ok(Attempt::HeldBy(holder));
            }
            Claim::Write(spec) => spec,
        };
        let mut lease = observed.lease.clone();
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(written);
                self.holding = true;
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.holding = false;
                Ok(Attempt::Conflict)
            }
            Err(error) => {
                self.holding = false;
                Err(error)
            }
        }
    }

    async fn create(&mut self) -> Result<Attempt, kube::Error> {
        let Claim::Write(spec) = claim(
            None,
            &self.settings.identity,
            false,
            Timestamp::now(),
            self.settings.duration,
        ) else {
            unreachable!("a missing lease is free");
        };
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..Default::default()
            },
            spec: Some(spec),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(written);
                self.holding = true;
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Clears the holder if it is still us. Best effort: on failure the lease simply runs
    /// out. A renew cut short when the controllers stopped may have landed meanwhile, so a
    /// conflict is read and retried once.
    async fn release(&mut self) {
        for _ in 0..2 {
            let Some(observed) = &self.observed else {
                return;
            };
            let Some(spec) = observed.lease.spec.as_ref() else {
                return;
            };
            if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
                return;
            }
            let mut lease = observed.lease.clone();
            lease.spec = Some(released(spec, Timestamp::now()));
            self.holding = false;
            let error = match self
                .api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    info!(lease = %self.settings.name, "released the leader lease");
                    return;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    match self.api.get_opt(&self.settings.name).await {
                        Ok(Some(current)) => {
                            self.observe(current);
                            continue;
                        }
                        Ok(None) => return,
                        Err(error) => error,
                    }
                }
                Err(error) => error,
            };
            warn!(lease = %self.settings.name, %error, "could not release the leader lease; it runs out by itself");
            return;
        }
        warn!(lease = %self.settings.name, "the leader lease kept changing; not released, it runs out by itself");
    }
}

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipLost {
    #[error("lease {lease} was taken by {holder}")]
    TakenBy { lease: String, holder: String },
    #[error("could not renew lease {lease} within the renew deadline ({deadline:?})")]
    NotRenewed { lease: String, deadline: Duration },
}

/// Waits for the lease, then runs `lead` (the controllers, which stop when `shutdown` is
/// requested) while renewing it. Returns when `lead` returns (the lease is then released),
/// when shutdown is requested before the lease was won, or with an error the moment the
/// lease is lost (`lead` is dropped at once: in-flight reconciles are abandoned, as on a
/// crash; the caller exits non-zero and comes back as a fresh standby).
pub async fn run_elected<F, Fut>(
    client: Client,
    settings: LeaseSettings,
    health: Health,
    metrics: &Metrics,
    shutdown: Shutdown,
    lead: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let timings = Timings::for_lease(settings.duration);
    info!(
        lease = %format!("{}/{}", settings.namespace, settings.name),
        identity = %settings.identity,
        ?timings,
        "waiting for the leader lease"
    );
    let mut elector = Elector::new(client, settings);
    let Some(won_at) = acquire(&mut elector, &health, timings, &shutdown).await else {
        return Ok(());
    };
    info!(lease = %elector.settings.name, identity = %elector.settings.identity, "leading");
    metrics.set_leader(true);
    health.set_leading(true);

    let result = tokio::select! {
        result = lead() => Ok(result),
        lost = keep(&mut elector, &health, timings, won_at) => Err(lost),
    };
    metrics.set_leader(false);
    health.set_leading(false);
    match result {
        Ok(result) => {
            elector.release().await;
            result
        }
        Err(lost) => {
            error!(error = %lost, "lost the leader lease; stopped reconciling");
            Err(lost.into())
        }
    }
}

/// Tries for the lease every retry period until it is ours (returns when the winning write
/// was sent) or shutdown is requested (None).
async fn acquire(
    elector: &mut Elector,
    health: &Health,
    timings: Timings,
    shutdown: &Shutdown,
) -> Option<Instant> {
    let mut last_holder: Option<String> = None;
    loop {
        if shutdown.is_requested() {
            return None;
        }
        let started = Instant::now();
        match elector.attempt().await {
            Ok(Attempt::Held) => {
                health.api_answered();
                return Some(started);
            }
            Ok(Attempt::HeldBy(holder)) => {
                health.api_answered();
                if last_holder.as_ref() != Some(&holder) {
                    info!(%holder, "another replica leads; standing by");
                    last_holder = Some(holder);
                }
            }
            Ok(Attempt::Conflict) => {
                health.api_answered();
                debug!("lease written by someone else meanwhile; trying again");
            }
            // Not even an API error (forbidden, namespace missing) counts as answered: a
            // standby that can't read the lease can't take over, so it is not ready.
            Err(error) => warn!(%error, "could not read or write the leader lease"),
        }
        tokio::select! {
            _ = sleep(timings.retry) => {}
            _ = shutdown.clone().requested() => return None,
        }
    }
}

/// Renews the lease every retry period; returns the moment it is lost: taken by another
/// holder, or not renewed within the renew deadline.
async fn keep(
    elector: &mut Elector,
    health: &Health,
    timings: Timings,
    mut renewed_at: Instant,
) -> LeadershipLost {
    let lease = elector.settings.name.clone();
    let mut next = renewed_at + timings.retry;
    loop {
        let deadline = renewed_at + timings.renew_deadline;
        sleep_until(next.min(deadline)).await;
        let started = Instant::now();
        if started >= deadline {
            return LeadershipLost::NotRenewed {
                lease,
                deadline: timings.renew_deadline,
            };
        }
        match timeout_at(deadline, elector.attempt()).await {
            Err(_elapsed) => {
                return LeadershipLost::NotRenewed {
                    lease,
                    deadline: timings.renew_deadline,
                };
            }
            Ok(Ok(Attempt::Held)) => {
                health.api_answered();
                renewed_at = started;
                next = started + timings.retry;
            }
            Ok(Ok(Attempt::HeldBy(holder))) => return LeadershipLost::TakenBy { lease, holder },
            Ok(Ok(Attempt::Conflict)) => {
                health.api_answered();
                next = Instant::now() + Duration::from_millis(50);
            }
            Ok(Err(error)) => {
                warn!(%error, "could not renew the leader lease; retrying until the renew deadline");
                next = Instant::now() + timings.retry / 4;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn held_by(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime("2025-12-31T23:00:00Z".parse().unwrap())),
            renew_time: Some(MicroTime("2025-12-31T23:59:59Z".parse().unwrap())),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[test]
    fn timings_keep_client_go_proportions() {
        assert_eq!(
            Timings::for_lease(LEASE),
            Timings {
                lease: LEASE,
                renew_deadline: Duration::from_secs(10),
                retry: Duration::from_secs(2),
            }
        );
        let short = Timings::for_lease(Duration::from_secs(6));
        assert!(short.renew_deadline < short.lease);
        assert!(short.retry < short.renew_deadline);
    }

    #[test]
    fn a_missing_or_empty_lease_is_taken() {
        for current in [
            None,
            Some(LeaseSpec::default()),
            Some(released(&held_by("b", 3), now())),
        ] {
            let Claim::Write(spec) = claim(current.as_ref(), "a", false, now(), LEASE) else {
                panic!("{current:?} not taken");
            };
            assert_eq!(spec.holder_identity.as_deref(), Some("a"));
            assert_eq!(spec.lease_duration_seconds, Some(15));
            assert_eq!(spec.renew_time, Some(MicroTime(now())));
            assert_eq!(spec.acquire_time, Some(MicroTime(now())));
        }
    }

    #[test]
    fn another_holders_live_lease_is_left_alone() {
        assert_eq!(
            claim(Some(&held_by("b", 1)), "a", false, now(), LEASE),
            Claim::HeldBy("b".into())
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_counted_as_a_transition() {
        let Claim::Write(spec) = claim(Some(&held_by("b", 1)), "a", true, now(), LEASE) else {
            panic!("not taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.acquire_time, Some(MicroTime(now())));
    }

    #[test]
    fn renewing_keeps_the_acquire_time_and_transitions() {
        let current = held_by("a", 4);
        let Claim::Write(spec) = claim(Some(&current), "a", false, now(), LEASE) else {
            panic!("not renewed");
        };
        assert_eq!(spec.acquire_time, current.acquire_time);
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.renew_time, Some(MicroTime(now())));
    }

    #[test]
    fn releasing_clears_the_holder() {
        let spec = released(&held_by("a", 4), now());
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.lease_transitions, Some(4));
    }

    #[tokio::test]
    async fn another_holders_lease_runs_out_by_our_clock_after_its_duration() {
        let observed = Observed {
            lease: Lease {
                metadata: Default::default(),
                spec: Some(LeaseSpec {
                    lease_duration_seconds: Some(6),
                    ..held_by("b", 1)
                }),
            },
            changed_at: Instant::now(),
        };
        assert!(!observed.expired(Instant::now() + Duration::from_secs(5), LEASE));
        assert!(observed.expired(Instant::now() + Duration::from_secs(6), LEASE));
    }
}
