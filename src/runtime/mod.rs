//! The running operator: controllers wired to the cluster, the health and metrics server,
//! logging, and shutdown on SIGTERM.

mod controllers;
mod server;
mod telemetry;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
pub use telemetry::{LogFormat, init_logging};

use crate::metrics::Metrics;

pub struct Settings {
    /// Namespaces to serve; all when empty.
    pub namespaces: Vec<String>,
    pub cluster_instance_namespace: String,
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    pub clerk_timeout: Duration,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = server::Health::default();
    let server = tokio::spawn(server::serve(
        settings.metrics_addr,
        registry,
        health.clone(),
    ));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespaces = ?settings.namespaces,
        cluster_instance_namespace = %settings.cluster_instance_namespace,
        "starting"
    );
    let result = controllers::run(client, &settings, metrics, health).await;
    server.abort();
    tracing::info!("stopped");
    result
}
