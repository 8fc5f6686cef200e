//! Controller wiring: which objects are watched, how many reconciles run at once, shutdown.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, future::join_all};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use anyhow::Context as _;

use super::{Settings, Shutdown, server::Health};
use crate::{
    api::{
        ActorTokenRequest, ClerkInstance, ClusterClerkInstance, InstanceKind, MANAGED_BY,
        MANAGED_BY_LABEL, MANAGER,
    },
    clerk::{ClientOptions, ClientPool},
    governance::access,
    metrics::Metrics,
    reconcile::{
        self, Context,
        decide::waits_on_instance,
        instance::Instances,
        instance_status::{self, InstanceContext},
    },
};

pub async fn run(
    client: Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let pool = ClientPool::observed(
        ClientOptions {
            request_timeout: settings.clerk_timeout,
            ..Default::default()
        },
        metrics.clone(),
    )?;
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // Who the operator is to the API server: approvals by this user never count.
    let operator = access::own_username(&client)
        .await
        .context("asking the API server who the operator is (SelfSubjectReview)")?;
    tracing::info!(%operator, "authenticated");
    let seal = super::seal_key::load_or_create(
        client.clone(),
        &settings.cluster_instance_namespace,
        &settings.seal_secret,
    )
    .await?;
    // On shutdown, no Clerk call waits or retries any more: in-flight reconciles end soon.
    tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move {
            shutdown.requested().await;
            pool.drain();
        }
    });
    let ctx = Arc::new(Context::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
        Instances::new(
            client.clone(),
            pool,
            settings.cluster_instance_namespace.clone(),
            settings.api_urls.clone(),
        ),
        metrics.clone(),
        operator,
        seal,
        usize::from(settings.concurrency),
    ));
    let instance_ctx = Arc::new(InstanceContext {
        client: client.clone(),
        cluster_instance_namespace: settings.cluster_instance_namespace.clone(),
        api_urls: settings.api_urls.clone(),
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
    // Each controller's main cache; /readyz waits for all of them to be filled.
    let mut caches = Vec::new();
    for scope in &scopes {
        let (requests, secrets, instances) = match scope {
            Some(ns) => (
                Api::<ActorTokenRequest>::namespaced(client.clone(), ns),
                Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), ns),
                Api::<ClerkInstance>::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
        let ctx = ctx.clone();
        // The cache keeps requests without their managedFields, which the operator never
        // reads, and a request at rest in a compact form: memory at 10,000s of requests.
        let (store, writer) = reflector::store();
        let requests = watcher(requests, watcher::Config::default())
            .default_backoff()
            .modify(reconcile::compact::for_cache)
            .reflect(writer)
            .applied_objects();
        let controller = Controller::for_stream(requests, store);
        // Only an owned Secret's metadata is needed to find its request: no link is held in
        // memory, nor decoded on every Secret event.
        let secrets = watcher(secrets, secrets_watch.clone())
            .default_backoff()
            .touched_objects();
        // A request waiting for its instance (missing, not ready, key refused) is retried
        // with backoff; a change to the instance wakes it at once instead.
        let (waiting_on_namespaced, waiting_on_cluster) = (controller.store(), controller.store());
        metrics.requests.watch(controller.store());
        caches.push(filled(controller.store()));
        controllers.push(
            controller
                .owns_stream(secrets)
                .watches(
                    instances.clone(),
                    watcher::Config::default(),
                    move |instance: ClerkInstance| {
                        waiting(
                            &waiting_on_namespaced,
                            InstanceKind::ClerkInstance,
                            instance.namespace(),
                            &instance.name_any(),
                        )
                    },
                )
                .watches(
                    Api::<ClusterClerkInstance>::all(client.clone()),
                    watcher::Config::default(),
                    move |instance: ClusterClerkInstance| {
                        waiting(
                            &waiting_on_cluster,
                            InstanceKind::ClusterClerkInstance,
                            None,
                            &instance.name_any(),
                        )
                    },
                )
                .with_config(Config::default().concurrency(settings.concurrency))
                .graceful_shutdown_on(shutdown.clone().requested())
                .run(reconcile::reconcile, reconcile::error_policy, ctx)
                .for_each(|_| async {})
                .boxed(),
        );
        let controller = Controller::new(instances, watcher::Config::default());
        caches.push(filled(controller.store()));
        controllers.push(
            controller
                .graceful_shutdown_on(shutdown.clone().requested())
                .run(
                    instance_status::reconcile,
                    instance_status::error_policy,
                    instance_ctx.clone(),
                )
                .for_each(|_| async {})
                .boxed(),
        );
    }
    let controller = Controller::new(
        Api::<ClusterClerkInstance>::all(client.clone()),
        watcher::Config::default(),
    );
    caches.push(filled(controller.store()));
    controllers.push(
        controller
            .graceful_shutdown_on(shutdown.clone().requested())
            .run(
                instance_status::reconcile,
                instance_status::error_policy,
                instance_ctx,
            )
            .for_each(|_| async {})
            .boxed(),
    );
    let synced = async {
        if join_all(caches).await.into_iter().all(|ready| ready) {
            tracing::info!("caches synced");
            health.set_caches_synced();
        }
        std::future::pending::<()>().await
    };
    // Controllers end only on shutdown: in-flight reconciles finish first, none start. Those
    // still running after the shutdown timeout are dropped, as a kill would (the loss window
    // the README describes), rather than outlive the pod's grace period.
    let deadline = async {
        shutdown.clone().requested().await;
        tokio::time::sleep(settings.shutdown_timeout).await;
        tracing::warn!(timeout = ?settings.shutdown_timeout, "reconciles still running at the shutdown timeout; stopping them");
    };
    tokio::select! {
        _ = join_all(controllers) => {}
        _ = synced => {}
        _ = deadline => {}
    }
    Ok(())
}

/// Resolves once `store` holds what the API server listed (false if it never will).
fn filled<K>(store: Store<K>) -> futures::future::BoxFuture<'static, bool>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    async move { store.wait_until_ready().await.is_ok() }.boxed()
}

/// The requests in `store` that wait on this instance.
fn waiting(
    store: &Store<ActorTokenRequest>,
    kind: InstanceKind,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<ActorTokenRequest>> {
    store
        .state()
        .iter()
        .filter(|request| waits_on_instance(request, kind, namespace.as_deref(), name))
        .map(|request| ObjectRef::from_obj(&**request))
        .collect()
}
