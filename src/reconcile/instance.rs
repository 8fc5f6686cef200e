//! From a request's `instanceRef` to a Clerk client: the instance object, its key Secret (in
//! the instance's namespace, or the operator's for a ClusterClerkInstance) and its limits.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::{Api, Client};

use super::{Error, decide::Limits};
use crate::{
    api::{
        ActorTokenRequest, ClerkInstance, ClerkInstanceSpec, ClusterClerkInstance, InstanceKind,
        InstancePolicy, InstanceRef,
    },
    clerk::{ClerkClient, ClientPool, KeyFingerprint, RateLimit, SecretKey},
    governance::{api_url::ApiUrlPolicy, gate::InstanceView},
};

/// How long a read `deleteFinishedAfter` is trusted.
const FINISHED_AFTER_FRESH: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Resolved {
    pub client: ClerkClient,
    pub limits: Limits,
    /// How people name the instance: `ClusterClerkInstance default`.
    pub described: String,
    /// Who may impersonate whom through it.
    pub policy: InstancePolicy,
    /// A ClusterClerkInstance's `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
}

impl Resolved {
    /// What the governance gate reads of the instance.
    pub fn view(&self) -> InstanceView<'_> {
        InstanceView {
            described: &self.described,
            policy: &self.policy,
            namespace_selector: self.namespace_selector.as_ref(),
        }
    }
}

/// Where an instance lives, as a map key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InstanceId {
    kind: InstanceKind,
    namespace: Option<String>,
    name: String,
}

pub struct Instances {
    client: Client,
    pool: ClientPool,
    /// The namespace of ClusterClerkInstances' key Secrets: the operator's own.
    cluster_secret_namespace: String,
    /// Where a key may be sent.
    api_urls: ApiUrlPolicy,
    /// Each instance's `deleteFinishedAfter`, as last read and when: finished requests are
    /// reconciled by the thousand after a restart, and each instance is read once for all.
    finished_after: Mutex<HashMap<InstanceId, (Instant, Option<Duration>)>>,
    /// The last client that worked for each instance, so that a token can still be revoked
    /// after its instance or key Secret is gone (a namespace being deleted removes Secrets
    /// before the requests' finalizers have run).
    last_known: Mutex<HashMap<InstanceId, ClerkClient>>,
    /// The last client seen for each key, so that a token is revoked through the key that
    /// made it after its instance was pointed at another.
    by_key: Mutex<HashMap<KeyFingerprint, ClerkClient>>,
}

impl Instances {
    pub fn new(
        client: Client,
        pool: ClientPool,
        cluster_secret_namespace: String,
        api_urls: ApiUrlPolicy,
    ) -> Self {
        Self {
            client,
            pool,
            cluster_secret_namespace,
            api_urls,
            finished_after: Mutex::default(),
            last_known: Mutex::default(),
            by_key: Mutex::default(),
        }
    }

    /// How long after they finish the request's instance keeps finished requests
    /// (`deleteFinishedAfter`); `None`: for good, or no such instance. Read at most once a
    /// minute per instance.
    pub async fn delete_finished_after(
        &self,
        request: &ActorTokenRequest,
    ) -> Result<Option<Duration>, Error> {
        let namespace = request.metadata.namespace.clone().unwrap_or_default();
        let id = instance_id(&request.spec.instance_ref, &namespace);
        if let Some((read, after)) = self.finished_after.lock().unwrap().get(&id)
            && read.elapsed() < FINISHED_AFTER_FRESH
        {
            return Ok(*after);
        }
        let after = match self.instance_spec(&id).await {
            Ok((spec, ..)) => spec
                .policy
                .delete_finished_after
                .and_then(|d| d.to_duration().ok()),
            Err(Error::InstanceNotReady(_)) => None,
            Err(error) => return Err(error),
        };
        self.finished_after
            .lock()
            .unwrap()
            .insert(id, (Instant::now(), after));
        Ok(after)
    }

    /// The client and limits of the request's instance, read afresh (used to issue).
    pub async fn resolve(&self, request: &ActorTokenRequest) -> Result<Resolved, Error> {
        let namespace = request.metadata.namespace.clone().unwrap_or_default();
        let id = instance_id(&request.spec.instance_ref, &namespace);
        let (spec, namespace_selector, secret_namespace) = self.instance_spec(&id).await?;
        // Checked before the key is even read: it goes nowhere it may not.
        self.api_urls
            .check(&spec.api_url)
            .map_err(|why| Error::ApiUrlNotAllowed(format!("{}: {why}", describe(&id))))?;
        let key = self.secret_key(&spec, &secret_namespace, &id).await?;
        let rate_limit = match &spec.rate_limit {
            Some(limit) => Some(RateLimit {
                requests: limit.requests.max(1) as u32,
                period: limit.period.to_duration().map_err(|e| {
                    Error::InstanceNotReady(format!(
                        "{} has an invalid spec.rateLimit.period: {e}",
                        describe(&id)
                    ))
                })?,
            }),
            None => None,
        };
        let client = self
            .pool
            .client(&describe(&id), &spec.api_url, &key, rate_limit)
            .map_err(|e| Error::InstanceNotReady(format!("{}: {e}", describe(&id))))?;
        let described = describe(&id);
        self.last_known.lock().unwrap().insert(id, client.clone());
        self.by_key
            .lock()
            .unwrap()
            .insert(client.key_fingerprint(), client.clone());
        Ok(Resolved {
            client,
            limits: limits(&spec),
            described,
            policy: spec.policy,
            namespace_selector,
        })
    }

    /// A client to revoke a token of `request` that `key` issued: the instance as it is now
    /// if it still uses that key, else the last client seen with that key, else the
    /// instance's current client (whose "not found" then proves nothing), else the last one
    /// that worked for the instance. An error when none can be had just now (the instance or
    /// its key can't be read, and this process never used them): a reason to try again,
    /// never to let go.
    pub async fn for_revoke(
        &self,
        request: &ActorTokenRequest,
        key: Option<KeyFingerprint>,
    ) -> Result<ClerkClient, Error> {
        let current = self.resolve(request).await.map(|resolved| resolved.client);
        if let Ok(client) = &current
            && key.is_none_or(|key| client.key_fingerprint() == key)
        {
            return current;
        }
        if let Some(key) = key
            && let Some(known) = self.by_key.lock().unwrap().get(&key).cloned()
        {
            tracing::info!(%key, "revoking through the key that issued the token");
            return Ok(known);
        }
        match current {
            Ok(client) => Ok(client),
            Err(error) => {
                let namespace = request.metadata.namespace.clone().unwrap_or_default();
                let id = instance_id(&request.spec.instance_ref, &namespace);
                match self.last_known.lock().unwrap().get(&id).cloned() {
                    Some(known) => {
                        tracing::info!(%error, "instance unavailable; revoking with its last known client");
                        Ok(known)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// The instance's spec, a ClusterClerkInstance's namespaceSelector, and where its key is.
    async fn instance_spec(
        &self,
        id: &InstanceId,
    ) -> Result<(ClerkInstanceSpec, Option<LabelSelector>, String), Error> {
        let not_found = || Error::InstanceNotReady(format!("{} does not exist", describe(id)));
        match (&id.kind, &id.namespace) {
            (InstanceKind::ClerkInstance, Some(ns)) => {
                let instance = Api::<ClerkInstance>::namespaced(self.client.clone(), ns)
                    .get_opt(&id.name)
                    .await?
                    .ok_or_else(not_found)?;
                Ok((instance.spec, None, ns.clone()))
            }
            _ => {
                let instance = Api::<ClusterClerkInstance>::all(self.client.clone())
                    .get_opt(&id.name)
                    .await?
                    .ok_or_else(not_found)?;
                Ok((
                    instance.spec.instance,
                    instance.spec.namespace_selector,
                    self.cluster_secret_namespace.clone(),
                ))
            }
        }
    }

    async fn secret_key(
        &self,
        spec: &ClerkInstanceSpec,
        namespace: &str,
        id: &InstanceId,
    ) -> Result<SecretKey, Error> {
        let reference = &spec.secret_key_ref;
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(&reference.name)
            .await?
            .ok_or_else(|| {
                Error::InstanceNotReady(format!(
                    "{}: its key Secret {namespace}/{} does not exist",
                    describe(id),
                    reference.name
                ))
            })?;
        secret_key_from(&secret, &reference.key).map_err(|problem| {
            Error::InstanceNotReady(format!(
                "{}: Secret {namespace}/{} {problem}",
                describe(id),
                reference.name
            ))
        })
    }
}

/// The secret key in `entry` of a key Secret, or what is wrong with it (never its value).
pub fn secret_key_from(secret: &Secret, entry: &str) -> Result<SecretKey, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(entry))
        .ok_or_else(|| format!("has no entry `{entry}`"))?;
    let text = std::str::from_utf8(&bytes.0).map_err(|_| format!("entry `{entry}` is not text"))?;
    SecretKey::parse(text).map_err(|e| format!("entry `{entry}`: {e}"))
}

fn instance_id(reference: &InstanceRef, request_namespace: &str) -> InstanceId {
    InstanceId {
        kind: reference.kind,
        namespace: match reference.kind {
            InstanceKind::ClerkInstance => Some(request_namespace.to_owned()),
            InstanceKind::ClusterClerkInstance => None,
        },
        name: reference.name.clone(),
    }
}

fn describe(id: &InstanceId) -> String {
    match &id.namespace {
        Some(ns) => format!("ClerkInstance {ns}/{}", id.name),
        None => format!("ClusterClerkInstance {}", id.name),
    }
}

/// The instance's ceilings, never above the API's own 24h.
pub fn limits(spec: &ClerkInstanceSpec) -> Limits {
    let ceiling = |d: &Option<crate::api::SpecDuration>| {
        d.as_ref()
            .and_then(|d| d.to_duration().ok())
            .unwrap_or(crate::api::duration::MAX_DURATION)
    };
    Limits {
        max_expires_in: ceiling(&spec.max_expires_in),
        max_session_duration: ceiling(&spec.max_session_duration),
    }
}
