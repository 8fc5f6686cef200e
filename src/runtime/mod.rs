//! The running operator: controllers wired to the cluster (behind leader election when it
//! is on), the health and metrics server, logging, and shutdown on SIGTERM.

mod controllers;
pub mod leader;
mod seal_key;
pub mod server;
mod telemetry;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
pub use telemetry::{LogFormat, init_logging};
use tokio::sync::watch;

use crate::metrics::Metrics;
use leader::LeaseSettings;

pub struct Settings {
    /// Namespaces to serve; all when empty.
    pub namespaces: Vec<String>,
    pub cluster_instance_namespace: String,
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    pub clerk_timeout: Duration,
    /// Reconcile only while holding this Lease; `None`: always (a single replica).
    pub leader_election: Option<LeaseSettings>,
    /// Where a Clerk secret key may be sent.
    pub api_urls: crate::governance::api_url::ApiUrlPolicy,
    /// The Secret, in `cluster_instance_namespace`, holding the token seal key.
    pub seal_secret: String,
    /// How long in-flight reconciles may take to finish after SIGTERM before the process
    /// stops them: keep it under the pod's termination grace period.
    pub shutdown_timeout: Duration,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = server::Health::new(settings.leader_election.as_ref().map(|l| l.duration));
    let server = tokio::spawn(server::serve(
        settings.metrics_addr,
        registry,
        health.clone(),
    ));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespaces = ?settings.namespaces,
        cluster_instance_namespace = %settings.cluster_instance_namespace,
        leader_election = settings.leader_election.is_some(),
        "starting"
    );
    let shutdown = Shutdown::on_signal();
    let controllers = || {
        controllers::run(
            client.clone(),
            &settings,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        )
    };
    let result = match settings.leader_election.clone() {
        None => {
            metrics.set_leader(true);
            controllers().await
        }
        Some(lease) => {
            leader::run_elected(
                client.clone(),
                lease,
                health.clone(),
                &metrics,
                shutdown.clone(),
                controllers,
            )
            .await
        }
    };
    server.abort();
    tracing::info!("stopped");
    result
}

/// Set once SIGTERM or Ctrl-C arrives. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn on_signal() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            tracing::info!("shutting down");
            let _ = tx.send(true);
            // Keep the sender, so receivers never see a closed channel.
            std::future::pending::<()>().await;
        });
        Shutdown(rx)
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested.
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|requested| *requested).await;
    }
}
