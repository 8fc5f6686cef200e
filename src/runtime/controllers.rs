//! Controller wiring: which objects are watched, how many reconciles run at once, shutdown.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, future::join_all};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    runtime::{
        Controller,
        controller::Config,
        events::{Recorder, Reporter},
        watcher,
    },
};

use super::{Settings, server::Health};
use crate::{
    api::{
        ActorTokenRequest, ClerkInstance, ClusterClerkInstance, MANAGED_BY, MANAGED_BY_LABEL,
        MANAGER,
    },
    clerk::{ClientOptions, ClientPool},
    metrics::Metrics,
    reconcile::{
        self, Context,
        instance::Instances,
        instance_status::{self, InstanceContext},
    },
};

pub async fn run(
    client: Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    health: Health,
) -> anyhow::Result<()> {
    let pool = ClientPool::new(ClientOptions {
        request_timeout: settings.clerk_timeout,
        ..Default::default()
    })?;
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
        Instances::new(
            client.clone(),
            pool,
            settings.cluster_instance_namespace.clone(),
        ),
        metrics,
    ));
    let instance_ctx = Arc::new(InstanceContext {
        client: client.clone(),
        cluster_instance_namespace: settings.cluster_instance_namespace.clone(),
    });

    // One request controller per namespace served (or one for all), each also watching the
    // Secrets it wrote, so a deleted Secret is noticed at once.
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let secrets_watch =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let mut controllers = Vec::new();
    for scope in &scopes {
        let (requests, secrets, instances) = match scope {
            Some(ns) => (
                Api::<ActorTokenRequest>::namespaced(client.clone(), ns),
                Api::<Secret>::namespaced(client.clone(), ns),
                Api::<ClerkInstance>::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
        let ctx = ctx.clone();
        controllers.push(
            Controller::new(requests, watcher::Config::default())
                .owns(secrets, secrets_watch.clone())
                .with_config(Config::default().concurrency(settings.concurrency))
                .graceful_shutdown_on(shutdown_signal())
                .run(reconcile::reconcile, reconcile::error_policy, ctx)
                .for_each(|_| async {})
                .boxed(),
        );
        controllers.push(
            Controller::new(instances, watcher::Config::default())
                .graceful_shutdown_on(shutdown_signal())
                .run(
                    instance_status::reconcile,
                    instance_status::error_policy,
                    instance_ctx.clone(),
                )
                .for_each(|_| async {})
                .boxed(),
        );
    }
    controllers.push(
        Controller::new(
            Api::<ClusterClerkInstance>::all(client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown_signal())
        .run(
            instance_status::reconcile,
            instance_status::error_policy,
            instance_ctx,
        )
        .for_each(|_| async {})
        .boxed(),
    );
    health.set_ready();
    join_all(controllers).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}
