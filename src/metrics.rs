//! The operator's Prometheus metrics. Counts, durations and request names only: no label
//! ever carries a token, a link or a key, and every label's values are a small closed set,
//! except the namespace/name pairs of [`RequestsCollector`], one per `Issued` request.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};

use crate::{
    api::{ActorTokenRequest, Phase},
    clerk::{CallKind, CallObserver, CallOutcome},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClerkCallLabels {
    /// `create` or `revoke`.
    pub operation: &'static str,
    /// The HTTP status (`201`, `429`, …), or `timeout`, `connect`, `transport`.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

pub struct Metrics {
    /// Reconciles of requests, by result.
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub tokens_issued: Counter,
    /// Tokens Clerk made (or may have made: an answer lost), delivered or not.
    pub tokens_minted: Counter,
    /// Requests failed for having minted as many tokens as one request may.
    pub mint_limits_reached: Counter,
    /// Impersonation sessions ended because their request's token was revoked after use.
    pub sessions_ended: Counter,
    /// Token records in a status that the operator didn't write (no valid seal), ignored.
    pub token_records_rejected: Counter,
    /// Reconciles put off because their namespace had its share of the slots.
    pub reconciles_deferred: Counter,
    /// Revokes that Clerk confirmed or that found nothing live, by why they were made.
    pub tokens_revoked: Family<CauseLabel, Counter>,
    /// Creates whose answer was lost: tokens that may be live and that no one can revoke.
    pub tokens_lost: Counter,
    /// Tokens the operator stopped trying to revoke (Clerk unreachable until they expired,
    /// or their instance gone).
    pub revokes_abandoned: Counter,
    /// HTTP attempts to Clerk (each retry is one), by operation and answer.
    pub clerk_requests: Family<ClerkCallLabels, Counter>,
    pub clerk_request_duration: Family<OperationLabel, Histogram>,
    /// Attempts that had to wait for the client-side rate limiter, and how long in all.
    pub clerk_rate_limit_waits: Counter,
    pub clerk_rate_limit_wait_seconds: Counter<f64>,
    /// 1 while this replica reconciles (holds the lease, or runs without leader election).
    pub leader: Gauge,
    /// Requests by phase and issued tokens' time left, read from the controllers' caches.
    pub requests: RequestsCollector,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            tokens_issued: Counter::default(),
            tokens_minted: Counter::default(),
            mint_limits_reached: Counter::default(),
            sessions_ended: Counter::default(),
            token_records_rejected: Counter::default(),
            reconciles_deferred: Counter::default(),
            tokens_revoked: Family::default(),
            tokens_lost: Counter::default(),
            revokes_abandoned: Counter::default(),
            clerk_requests: Family::default(),
            clerk_request_duration: Family::new_with_constructor(|| {
                Histogram::new([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            clerk_rate_limit_waits: Counter::default(),
            clerk_rate_limit_wait_seconds: Counter::default(),
            leader: Gauge::default(),
            requests: RequestsCollector::default(),
        };
        let r = registry.sub_registry_with_prefix("actor_token_operator");
        r.register(
            "reconciles",
            "Reconciles of ActorTokenRequests, by result (success or error)",
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
            "tokens_minted",
            "Actor tokens Clerk made (or may have made: an answer lost), delivered or not",
            metrics.tokens_minted.clone(),
        );
        r.register(
            "mint_limits_reached",
            "Requests failed because they had minted as many tokens as one request may",
            metrics.mint_limits_reached.clone(),
        );
        r.register(
            "sessions_ended",
            "Impersonation sessions ended because their request's token was revoked after its link was used",
            metrics.sessions_ended.clone(),
        );
        r.register(
            "token_records_rejected",
            "Token records in a request's status not written by the operator (no valid seal), ignored",
            metrics.token_records_rejected.clone(),
        );
        r.register(
            "reconciles_deferred",
            "Reconciles put off for a moment because their namespace had its share of the reconcile slots",
            metrics.reconciles_deferred.clone(),
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
        r.register(
            "clerk_requests",
            "HTTP attempts to Clerk's Backend API (each retry counts), by operation and HTTP status or failure (timeout, connect, transport)",
            metrics.clerk_requests.clone(),
        );
        r.register(
            "clerk_request_duration_seconds",
            "How long one HTTP attempt to Clerk took, by operation",
            metrics.clerk_request_duration.clone(),
        );
        r.register(
            "clerk_rate_limit_waits",
            "Attempts to Clerk that waited for the per-key client-side rate limiter",
            metrics.clerk_rate_limit_waits.clone(),
        );
        r.register(
            "clerk_rate_limit_wait_seconds",
            "Seconds spent waiting for the per-key client-side rate limiter",
            metrics.clerk_rate_limit_wait_seconds.clone(),
        );
        r.register(
            "leader",
            "1 while this replica reconciles (holds the leader lease, or runs without leader election), else 0",
            metrics.leader.clone(),
        );
        r.register_collector(Box::new(metrics.requests.clone()));
        metrics
    }

    /// Counts a finished reconcile by its result, and how long it took.
    pub fn observe_reconcile(&self, took: Duration, success: bool) {
        self.reconcile_duration.observe(took.as_secs_f64());
        let result = if success { "success" } else { "error" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn revoked(&self, cause: &'static str) {
        self.tokens_revoked
            .get_or_create(&CauseLabel { cause })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

impl CallObserver for Metrics {
    fn call_finished(&self, kind: CallKind, outcome: CallOutcome, took: Duration) {
        self.clerk_requests
            .get_or_create(&ClerkCallLabels {
                operation: kind.label(),
                code: outcome.label(),
            })
            .inc();
        self.clerk_request_duration
            .get_or_create(&OperationLabel {
                operation: kind.label(),
            })
            .observe(took.as_secs_f64());
    }

    fn rate_limit_waited(&self, waited: Duration) {
        self.clerk_rate_limit_waits.inc();
        self.clerk_rate_limit_wait_seconds
            .inc_by(waited.as_secs_f64());
    }
}

/// Computes, at scrape time, from the request controllers' caches (no API call):
/// `actor_token_operator_requests{phase}` and, for each `Issued` request,
/// `actor_token_operator_token_expires_in_seconds{namespace,name}`. A replica that runs no
/// controllers (a standby) has no caches and reports neither, so sums over replicas count
/// each request once.
///
/// Per-request series are bounded by the tokens live at once, vanish when a request leaves
/// `Issued`, and name the request to look at: a value below zero is a token the operator
/// has not expired yet (alert on it).
#[derive(Clone, Default)]
pub struct RequestsCollector {
    stores: Arc<RwLock<Vec<Store<ActorTokenRequest>>>>,
}

impl std::fmt::Debug for RequestsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestsCollector").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    name: String,
}

/// Every phase, in the order they are reported. A request with no phase yet (just created,
/// not reconciled) counts as `Pending`.
const PHASES: [Phase; 6] = [
    Phase::Pending,
    Phase::Issued,
    Phase::Expired,
    Phase::Revoked,
    Phase::Failed,
    Phase::Denied,
];

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Issued => "Issued",
        Phase::Expired => "Expired",
        Phase::Revoked => "Revoked",
        Phase::Failed => "Failed",
        Phase::Denied => "Denied",
    }
}

/// What the collector reports for some requests at one moment.
#[derive(Debug, PartialEq)]
pub struct RequestGauges {
    /// A count per phase, every phase included.
    pub by_phase: [(&'static str, i64); 6],
    /// The seconds left of each issued token, sorted by namespace and name.
    pub expiring: Vec<TokenExpiry>,
}

#[derive(Debug, PartialEq)]
pub struct TokenExpiry {
    pub namespace: String,
    pub name: String,
    pub seconds_left: f64,
}

pub fn request_gauges(requests: &[Arc<ActorTokenRequest>], now: Timestamp) -> RequestGauges {
    let mut by_phase = PHASES.map(|p| (phase_label(p), 0));
    let mut expiring = Vec::new();
    for request in requests {
        let phase = request.phase().unwrap_or(Phase::Pending);
        if let Some(slot) = by_phase.iter_mut().find(|(l, _)| *l == phase_label(phase)) {
            slot.1 += 1;
        }
        if phase == Phase::Issued
            && let Some(expires_at) = request.status.as_ref().and_then(|s| s.expires_at.as_ref())
        {
            expiring.push(TokenExpiry {
                namespace: request.namespace().unwrap_or_default(),
                name: request.name_any(),
                seconds_left: expires_at.0.duration_since(now).as_secs_f64(),
            });
        }
    }
    expiring.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    RequestGauges { by_phase, expiring }
}

impl RequestsCollector {
    /// Reports the requests in `store` too (the runtime calls this for each controller).
    pub fn watch(&self, store: Store<ActorTokenRequest>) {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(store);
    }
}

impl Collector for RequestsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests: Vec<Arc<ActorTokenRequest>> = {
            let stores = self
                .stores
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if stores.is_empty() {
                return Ok(());
            }
            stores.iter().flat_map(|s| s.state()).collect()
        };
        let RequestGauges { by_phase, expiring } = request_gauges(&requests, Timestamp::now());

        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "requests",
            "ActorTokenRequests the operator serves, by phase (from its cache; a standby reports none)",
            None,
            gauge.metric_type(),
        )?;
        for (phase, count) in by_phase {
            ConstGauge::new(count).encode(family.encode_family(&PhaseLabel { phase })?)?;
        }

        let gauge = ConstGauge::new(0f64);
        let mut family = encoder.encode_descriptor(
            "token_expires_in_seconds",
            "Seconds until the token of each Issued request expires (negative: past due and not yet expired by the operator)",
            None,
            gauge.metric_type(),
        )?;
        for token in expiring {
            let labels = RequestLabels {
                namespace: token.namespace,
                name: token.name,
            };
            ConstGauge::new(token.seconds_left).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn request(namespace: &str, name: &str, status: serde_json::Value) -> Arc<ActorTokenRequest> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
                "metadata": { "name": name, "namespace": namespace },
                "spec": { "userId": "user_1", "actor": { "sub": "user_2" } },
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn phases_are_counted_and_only_issued_tokens_have_an_expiry_series() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let requests = [
            request("a", "new", serde_json::json!({})),
            request("a", "pending", serde_json::json!({ "phase": "Pending" })),
            request(
                "b",
                "issued",
                serde_json::json!({ "phase": "Issued", "expiresAt": "2026-01-01T00:10:00Z" }),
            ),
            request(
                "a",
                "late",
                serde_json::json!({ "phase": "Issued", "expiresAt": "2025-12-31T23:59:00Z" }),
            ),
            request(
                "a",
                "expired",
                serde_json::json!({ "phase": "Expired", "expiresAt": "2025-12-31T23:00:00Z" }),
            ),
        ];
        let RequestGauges { by_phase, expiring } = request_gauges(&requests, now);
        assert_eq!(
            by_phase,
            [
                ("Pending", 2),
                ("Issued", 2),
                ("Expired", 1),
                ("Revoked", 0),
                ("Failed", 0),
                ("Denied", 0)
            ]
        );
        assert_eq!(
            expiring,
            vec![
                TokenExpiry {
                    namespace: "a".into(),
                    name: "late".into(),
                    seconds_left: -60.0
                },
                TokenExpiry {
                    namespace: "b".into(),
                    name: "issued".into(),
                    seconds_left: 600.0
                },
            ]
        );
    }

    #[test]
    fn a_replica_without_caches_reports_no_request_series() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.set_leader(false);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(!text.contains("actor_token_operator_requests"), "{text}");
        assert!(text.contains("actor_token_operator_leader 0"), "{text}");
    }

    #[test]
    fn clerk_calls_are_counted_by_operation_and_code() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.call_finished(
            CallKind::Create,
            CallOutcome::Status(201),
            Duration::from_millis(30),
        );
        metrics.call_finished(
            CallKind::Revoke,
            CallOutcome::Timeout,
            Duration::from_secs(2),
        );
        metrics.rate_limit_waited(Duration::from_millis(500));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            r#"actor_token_operator_clerk_requests_total{operation="create",code="201"} 1"#,
            r#"actor_token_operator_clerk_requests_total{operation="revoke",code="timeout"} 1"#,
            r#"actor_token_operator_clerk_request_duration_seconds_count{operation="create"} 1"#,
            "actor_token_operator_clerk_rate_limit_waits_total 1",
            "actor_token_operator_clerk_rate_limit_wait_seconds_total 0.5",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
