//! One operator, one Clerk simulator and one namespace for a test: the environment most
//! end-to-end tests start from.

use std::time::Duration;

use actor_token_operator::{
    api::{ActorTokenRequest, Phase},
    reconcile::seal::SealKey,
};
use clerk_sim::{Faults, SimConfig, Simulator};
use k8s_openapi::{
    api::{core::v1::Secret, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use super::{Operator, OperatorOptions, TestNamespace, control_plane, eventually, install_crds};

pub const KEY: &str = "sk_test_operatorTestKey0123456789";
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Env {
    pub client: Client,
    pub ns: TestNamespace,
    pub sim: Simulator,
    pub operator: Option<Operator>,
    pub requests: Api<ActorTokenRequest>,
    pub secrets: Api<Secret>,
}

impl Env {
    pub async fn start(prefix: &str) -> Env {
        Self::start_with(prefix, Faults::default()).await
    }

    /// A namespace with a ClerkInstance named `clerk` pointing at a fresh simulator, and an
    /// operator serving that namespace.
    pub async fn start_with(prefix: &str, faults: Faults) -> Env {
        Self::start_with_sim(
            prefix,
            SimConfig {
                faults,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn create_instance(&self, name: &str, key_secret: &str) {
        self.apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": key_secret, "namespace": self.ns.name },
            "stringData": { "secretKey": format!("{KEY}\n") }
        }))
        .await;
        self.apply(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ClerkInstance",
            "metadata": { "name": name, "namespace": self.ns.name },
            "spec": { "apiUrl": self.sim.api_url(), "secretKeyRef": { "name": key_secret, "key": "secretKey" } }
        }))
        .await;
    }

    /// (Re)starts the test's own operator process.
    pub fn start_operator(&mut self) {
        self.operator = Some(self.spawn_operator(&[]));
    }

    pub fn operator(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("operator running")
    }

    pub async fn apply(&self, object: Value) {
        super::apply(&object);
    }

    pub async fn create_request(&self, name: &str, spec: Value) -> ActorTokenRequest {
        let mut full = json!({ "userId": "user_2abcImpersonated", "actor": { "sub": "user_2xyzSupport" }, "instanceRef": { "kind": "ClerkInstance", "name": "clerk" } });
        merge(&mut full, spec);
        let request: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": name }, "spec": full,
        }))
        .unwrap();
        self.requests
            .create(&PostParams::default(), &request)
            .await
            .expect("create the request")
    }

    pub async fn wait_phase(&self, name: &str, phase: Phase) -> ActorTokenRequest {
        eventually(WAIT, &format!("{name} to be {phase:?}"), || async {
            self.requests
                .get_opt(name)
                .await
                .unwrap()
                .filter(|r| r.phase() == Some(phase))
        })
        .await
    }

    /// Waits until the request's Ready condition has `reason`, and returns the condition.
    pub async fn wait_reason(&self, name: &str, reason: &str) -> Condition {
        eventually(WAIT, &format!("{name} to be {reason}"), || async {
            let request = self.requests.get(name).await.unwrap();
            ready_condition(&request).filter(|c| c.reason == reason)
        })
        .await
    }

    /// Checks that exactly `expected` events with `reason` were published in the namespace.
    /// An event follows the status write it announces, so wait for it, then make sure no
    /// more come.
    pub async fn assert_events(&self, reason: &str, expected: usize) {
        let count = || async {
            let events = self.events().await;
            events
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .count()
        };
        eventually(WAIT, &format!("{expected} {reason} event(s)"), || async {
            (count().await >= expected).then_some(())
        })
        .await;
        self.settle_all().await;
        assert_eq!(count().await, expected, "{reason} events");
    }

    /// Returns once the test's operator has reconciled request `name` as it is now: a no-op
    /// change to it, then a reconcile that started from it (or later). Whatever the operator
    /// would do about the request's present state, it has done. For a check that something
    /// does *not* happen, in place of waiting a while.
    pub async fn settle(&self, name: &str) {
        let operator = self.operator.as_ref().expect("operator running");
        settle(&self.requests, &[operator], name).await
    }

    /// [`Env::settle`] for every request in the namespace.
    pub async fn settle_all(&self) {
        let list = self.requests.list(&ListParams::default()).await.unwrap();
        for request in list.items {
            if request.metadata.deletion_timestamp.is_none() {
                self.settle(&request.name_any()).await;
            }
        }
    }

    pub async fn wait_gone(&self, name: &str) {
        eventually(WAIT, &format!("{name} to be deleted"), || async {
            self.requests
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await
    }

    pub async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    pub fn live_tokens(&self) -> usize {
        self.sim.live_tokens().len()
    }

    /// No token or link the simulator ever issued appears in the operator's output, in an
    /// event, or in a request's status.
    pub async fn assert_no_credential_leaked(&mut self) {
        let output = self.operator().output();
        let events = serde_json::to_string(&self.events().await).unwrap();
        let statuses = serde_json::to_string(
            &self
                .requests
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|r| &r.status)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let tokens = self.sim.tokens();
        assert!(!tokens.is_empty(), "the test issued no token to look for");
        for token in tokens {
            for secret in [&token.token, &token.url] {
                assert!(
                    !output.contains(secret.as_str()),
                    "a credential is in the operator's output"
                );
                assert!(
                    !events.contains(secret.as_str()),
                    "a credential is in an event"
                );
                assert!(
                    !statuses.contains(secret.as_str()),
                    "a credential is in a status"
                );
            }
        }
        assert!(
            !output.contains(KEY) && !events.contains(KEY),
            "the secret key leaked"
        );
    }
}

/// Returns once each of `operators` has reconciled request `name` as it is now (see
/// [`Env::settle`]).
pub async fn settle(requests: &Api<ActorTokenRequest>, operators: &[&Operator], name: &str) {
    let nudge = json!({ "metadata": { "annotations": {
        "test.actortokens.dev/nudge": format!("{:08x}", rand::random::<u32>())
    } } });
    let nudged = requests
        .patch(name, &PatchParams::default(), &Patch::Merge(&nudge))
        .await
        .unwrap_or_else(|e| panic!("nudge {name}: {e}"));
    let version: u64 = nudged
        .resource_version()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion");
    let namespace = nudged.namespace().unwrap_or_default();
    for operator in operators {
        eventually(
            WAIT,
            &format!("a reconcile of {name} from version {version} on"),
            || async {
                operator
                    .reconciled_since(&namespace, name, version)
                    .then_some(())
            },
        )
        .await;
    }
}

/// A request's Ready condition.
pub fn ready_condition(request: &ActorTokenRequest) -> Option<Condition> {
    condition(request, "Ready")
}

/// A request's condition of `type_`.
pub fn condition(request: &ActorTokenRequest, type_: &str) -> Option<Condition> {
    let conditions = &request.status.as_ref()?.conditions;
    conditions.iter().find(|c| c.type_ == type_).cloned()
}

pub fn merge(base: &mut Value, patch: Value) {
    if let (Value::Object(base), Value::Object(patch)) = (base, patch) {
        for (k, v) in patch {
            base.insert(k, v);
        }
    }
}

pub fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

impl Env {
    /// Like [`Env::start_with`], with the whole simulator configuration in the test's hands
    /// (a fixed `seed`, say); its secret keys are replaced by [`KEY`].
    pub async fn start_with_sim(prefix: &str, config: SimConfig) -> Env {
        install_crds();
        let client = control_plane().client().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let sim = clerk_sim::start(SimConfig {
            secret_keys: vec![KEY.into()],
            ..config
        })
        .await
        .expect("start the Clerk simulator");
        let mut env = Env {
            requests: Api::namespaced(client.clone(), &ns.name),
            secrets: Api::namespaced(client.clone(), &ns.name),
            client,
            ns,
            sim,
            operator: None,
        };
        env.create_instance("clerk", "clerk-key").await;
        env.start_operator();
        env
    }

    /// An extra operator process serving this namespace, with the same arguments as
    /// [`Env::start_operator`] plus `extra_args`; the caller holds it (it stops when dropped).
    pub fn spawn_operator(&self, extra_args: &[&str]) -> Operator {
        let mut args = vec!["--clerk-timeout-seconds", "2"];
        args.extend_from_slice(extra_args);
        Operator::start(OperatorOptions {
            namespaces: &[&self.ns.name],
            cluster_instance_namespace: &self.ns.name,
            kubeconfig: None,
            extra_args: &args,
        })
    }

    /// The key the operators of this namespace seal their token records with (from the
    /// Secret the first of them created), to play an operator replica in a test.
    pub async fn seal_key(&self) -> SealKey {
        let secret = eventually(WAIT, "the token seal key Secret", || async {
            self.secrets
                .get_opt("actor-token-operator-token-seal")
                .await
                .unwrap()
        })
        .await;
        let key = secret.data.as_ref().unwrap()["sealKey"].0.clone();
        SealKey::new(key, secret.metadata.creation_timestamp.unwrap().0).unwrap()
    }

    /// A counter or gauge from the current operator's /metrics; `None` until it serves, or
    /// if the series is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.operator.as_ref()?.metric(series).await
    }

    /// No token or link the simulator issued appears in `text` (the output of an operator
    /// process that is no longer `env.operator`, say).
    pub fn assert_no_credential_in(&self, what: &str, text: &str) {
        for token in self.sim.tokens() {
            assert!(
                !text.contains(token.token.as_str()) && !text.contains(token.url.as_str()),
                "a credential is in {what}"
            );
        }
        assert!(!text.contains(KEY), "the secret key is in {what}");
    }
}
