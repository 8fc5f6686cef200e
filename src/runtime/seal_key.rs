//! The key the operator seals its token records with (see `reconcile::seal`): a Secret in the
//! operator's own namespace, made by the first replica that needs it and read by every later
//! one, across restarts and upgrades. Only the operator reads it; whoever may read Secrets in
//! that namespace (where the Clerk keys of ClusterClerkInstances are too) could forge seals.

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, Client, api::PostParams};
use serde_json::json;
use tracing::info;

use crate::{api::MANAGER, reconcile::seal::SealKey};

/// The Secret's entry holding the key.
const ENTRY: &str = "sealKey";

/// Reads the sealing key from Secret `name` in `namespace`, creating it with a fresh random
/// key if it doesn't exist. Two replicas starting at once both try to create it: one wins,
/// the other reads what it wrote.
pub async fn load_or_create(
    client: Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<SealKey> {
    let secrets = Api::<Secret>::namespaced(client, namespace);
    for _ in 0..3 {
        if let Some(secret) = secrets.get_opt(name).await? {
            return parse(&secret, namespace, name);
        }
        let fresh: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": { "app.kubernetes.io/name": "actor-token-operator" },
                "annotations": { "actortokens.dev/purpose": "seals the operator's token records; deleting it makes the operator ignore every record it sealed before" },
            },
            "type": "Opaque",
        }))?;
        let mut fresh = fresh;
        fresh.data = Some(
            [(ENTRY.to_owned(), ByteString(SealKey::generate()))]
                .into_iter()
                .collect(),
        );
        let pp = PostParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match secrets.create(&pp, &fresh).await {
            Ok(created) => {
                info!(secret = %format!("{namespace}/{name}"), "created the token seal key");
                return parse(&created, namespace, name);
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("Secret {namespace}/{name} could be neither read nor created")
}

fn parse(secret: &Secret, namespace: &str, name: &str) -> anyhow::Result<SealKey> {
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get(ENTRY))
        .ok_or_else(|| anyhow::anyhow!("Secret {namespace}/{name} has no entry {ENTRY}"))?;
    let since = secret
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    SealKey::new(key.0.clone(), since)
        .map_err(|e| anyhow::anyhow!("Secret {namespace}/{name}: {e}"))
}
