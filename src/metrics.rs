//! The operator's Prometheus metrics. Counts and durations only: no label ever carries a
//! token, a link or a key.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: &'static str,
}

pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub tokens_issued: Counter,
    /// Revokes that Clerk confirmed or that found nothing live, by why they were made.
    pub tokens_revoked: Family<CauseLabel, Counter>,
    /// Creates whose answer was lost: tokens that may be live and that no one can revoke.
    pub tokens_lost: Counter,
    /// Tokens the operator stopped trying to revoke (Clerk unreachable until they expired,
    /// or their instance gone).
    pub revokes_abandoned: Counter,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            reconciles: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            tokens_issued: Counter::default(),
            tokens_revoked: Family::default(),
            tokens_lost: Counter::default(),
            revokes_abandoned: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("actor_token_operator");
        r.register(
            "reconciles",
            "Reconciles of ActorTokenRequests",
            metrics.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciles, by condition reason",
            metrics.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            metrics.reconcile_duration.clone(),
        );
        r.register(
            "tokens_issued",
            "Actor tokens issued and delivered in a Secret",
            metrics.tokens_issued.clone(),
        );
        r.register(
            "tokens_revoked",
            "Actor tokens revoked, by cause",
            metrics.tokens_revoked.clone(),
        );
        r.register(
            "tokens_lost",
            "Creates whose answer was lost: tokens that may be live until they expire and can't be revoked",
            metrics.tokens_lost.clone(),
        );
        r.register(
            "revokes_abandoned",
            "Tokens the operator stopped trying to revoke because they had expired or their instance was gone",
            metrics.revokes_abandoned.clone(),
        );
        metrics
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn revoked(&self, cause: &'static str) {
        self.tokens_revoked
            .get_or_create(&CauseLabel { cause })
            .inc();
    }
}
