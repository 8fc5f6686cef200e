//! The `Ready` condition of ClerkInstances and ClusterClerkInstances: does the key Secret exist
//! and hold a well-formed key? Checked on every change and every few minutes (the Secret can
//! change without the instance changing).

use std::{sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action as Requeue,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{Error, instance::secret_key_from};
use crate::api::{
    ClerkInstance, ClerkInstanceSpec, ClerkInstanceStatus, ClusterClerkInstance, MANAGER,
    conditions,
};
use crate::governance::api_url::ApiUrlPolicy;

const RECHECK: Duration = Duration::from_secs(300);

/// What both kinds of instance have in common.
pub trait InstanceObject:
    Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn instance_spec(&self) -> &ClerkInstanceSpec;
    fn instance_status(&self) -> Option<&ClerkInstanceStatus>;
    /// Where the key Secret must be.
    fn key_namespace(&self, cluster_instance_namespace: &str) -> String;
    fn api(&self, client: Client) -> Api<Self>;
}

impl InstanceObject for ClerkInstance {
    fn instance_spec(&self) -> &ClerkInstanceSpec {
        &self.spec
    }
    fn instance_status(&self) -> Option<&ClerkInstanceStatus> {
        self.status.as_ref()
    }
    fn key_namespace(&self, _: &str) -> String {
        self.namespace().unwrap_or_default()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl InstanceObject for ClusterClerkInstance {
    fn instance_spec(&self) -> &ClerkInstanceSpec {
        &self.spec.instance
    }
    fn instance_status(&self) -> Option<&ClerkInstanceStatus> {
        self.status.as_ref()
    }
    fn key_namespace(&self, cluster_instance_namespace: &str) -> String {
        cluster_instance_namespace.to_owned()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

pub struct InstanceContext {
    pub client: Client,
    pub cluster_instance_namespace: String,
    /// Where a key may be sent.
    pub api_urls: ApiUrlPolicy,
}

pub async fn reconcile<K: InstanceObject>(
    instance: Arc<K>,
    ctx: Arc<InstanceContext>,
) -> Result<Requeue, Error> {
    let spec = instance.instance_spec();
    let namespace = instance.key_namespace(&ctx.cluster_instance_namespace);
    let reference = &spec.secret_key_ref;
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&reference.name)
        .await?;
    let url_refused = ctx.api_urls.check(&spec.api_url).err();
    let (ready, reason, message) = match secret.as_ref().map(|s| secret_key_from(s, &reference.key))
    {
        _ if url_refused.is_some() => (false, "ApiUrlNotAllowed", url_refused.unwrap_or_default()),
        None => (
            false,
            "SecretNotFound",
            format!("Secret {namespace}/{} does not exist", reference.name),
        ),
        Some(Err(problem)) => (
            false,
            "InvalidSecretKey",
            format!("Secret {namespace}/{} {problem}", reference.name),
        ),
        Some(Ok(key)) => (
            true,
            "Ready",
            format!(
                "Secret {namespace}/{} holds a {:?} key",
                reference.name,
                key.environment()
            ),
        ),
    };
    let generation = instance.meta().generation;
    let mut status = instance.instance_status().cloned().unwrap_or_default();
    status.observed_generation = generation;
    conditions::set(
        &mut status.conditions,
        conditions::ready(ready, reason, message, generation, Timestamp::now()),
    );
    if instance.instance_status() != Some(&status) {
        instance
            .api(ctx.client.clone())
            .patch_status(
                &instance.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": K::api_version(&()),
                    "kind": K::kind(&()),
                    "status": status,
                })),
            )
            .await?;
    }
    Ok(Requeue::requeue(RECHECK))
}

pub fn error_policy<K: InstanceObject>(
    _: Arc<K>,
    error: &Error,
    _: Arc<InstanceContext>,
) -> Requeue {
    tracing::warn!(%error, "instance status check failed");
    Requeue::requeue(Duration::from_secs(30))
}
