//! /metrics (Prometheus text format, or OpenMetrics when asked for), /healthz and /readyz.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding, registry::Registry};

/// What /readyz answers from. Shared by the controllers and the lease loop.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    /// With leader election: how long a lease lasts, which is also how old the last
    /// answer from the API server may be for a standby to count as connected.
    lease: Option<Duration>,
    leading: AtomicBool,
    caches_synced: AtomicBool,
    api_answered_at: Mutex<Option<Instant>>,
}

/// A snapshot of [`Health`], judged by [`readiness`].
#[derive(Clone, Copy, Debug)]
pub struct HealthState {
    pub lease: Option<Duration>,
    pub leading: bool,
    pub caches_synced: bool,
    /// How long ago the lease loop last got an answer from the API server.
    pub api_answered_ago: Option<Duration>,
}

/// Ready (200) or not (503), and why, for a person reading /readyz.
pub fn readiness(state: HealthState) -> Result<&'static str, &'static str> {
    let Some(lease) = state.lease else {
        // Without leader election every replica reconciles: ready once its caches hold
        // what the API server listed.
        return if state.caches_synced {
            Ok("reconciling")
        } else {
            Err("caches not synced yet")
        };
    };
    match state.api_answered_ago {
        None => return Err("the API server has not answered yet"),
        Some(ago) if ago > lease => {
            return Err("the API server has not answered for a lease duration");
        }
        Some(_) => {}
    }
    match (state.leading, state.caches_synced) {
        (true, true) => Ok("leading"),
        (true, false) => Err("leading; caches not synced yet"),
        // A standby reaches the API server and keeps trying for the lease: ready to take over.
        (false, _) => Ok("standby"),
    }
}

impl Health {
    /// `lease`: the lease duration when leader election is on.
    pub fn new(lease: Option<Duration>) -> Self {
        Health {
            inner: Arc::new(HealthInner {
                lease,
                leading: AtomicBool::new(false),
                caches_synced: AtomicBool::new(false),
                api_answered_at: Mutex::new(None),
            }),
        }
    }

    pub fn set_caches_synced(&self) {
        self.inner.caches_synced.store(true, Ordering::Relaxed);
    }

    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::Relaxed);
    }

    /// The API server answered a read or write of the lease (the lease loop calls this).
    pub fn api_answered(&self) {
        *self.answered_at() = Some(Instant::now());
    }

    pub fn state(&self) -> HealthState {
        HealthState {
            lease: self.inner.lease,
            leading: self.inner.leading.load(Ordering::Relaxed),
            caches_synced: self.inner.caches_synced.load(Ordering::Relaxed),
            api_answered_ago: self.answered_at().map(|at| at.elapsed()),
        }
    }

    fn answered_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner
            .api_answered_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Health,
}

pub async fn serve(addr: SocketAddr, registry: Registry, health: Health) {
    let state = AppState {
        registry: Arc::new(registry),
        health,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%addr, %error, "cannot serve metrics and health");
            return;
        }
    };
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving /metrics, /healthz, /readyz");
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "metrics server stopped");
    }
}

/// The Prometheus text format (0.0.4), or OpenMetrics for a scraper that asks for it.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            encoding::text::encode(&mut body, &state.registry),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            encoding::prometheus_text::encode(&mut body, &state.registry),
            encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match readiness(state.health.state()) {
        Ok(why) => (StatusCode::OK, why),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn state(
        lease: Option<Duration>,
        leading: bool,
        synced: bool,
        ago: Option<u64>,
    ) -> HealthState {
        HealthState {
            lease,
            leading,
            caches_synced: synced,
            api_answered_ago: ago.map(Duration::from_secs),
        }
    }

    #[test]
    fn without_leader_election_ready_means_caches_synced() {
        assert!(readiness(state(None, false, false, None)).is_err());
        assert_eq!(readiness(state(None, false, true, None)), Ok("reconciling"));
    }

    #[test]
    fn a_standby_that_reaches_the_api_server_is_ready() {
        assert_eq!(
            readiness(state(Some(LEASE), false, false, Some(1))),
            Ok("standby")
        );
        assert!(readiness(state(Some(LEASE), false, false, None)).is_err());
        assert!(readiness(state(Some(LEASE), false, false, Some(16))).is_err());
    }

    #[test]
    fn a_leader_is_ready_once_its_caches_are_synced() {
        assert!(readiness(state(Some(LEASE), true, false, Some(1))).is_err());
        assert_eq!(
            readiness(state(Some(LEASE), true, true, Some(1))),
            Ok("leading")
        );
        assert!(readiness(state(Some(LEASE), true, true, Some(30))).is_err());
    }
}
