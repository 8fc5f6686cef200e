//! The operator end to end: its binary against the local control plane and the Clerk
//! simulator. Each test has its own namespace, simulator and operator process.

mod support;

use std::time::Duration;

use actor_token_operator::api::{ActorTokenRequest, FINALIZER, Phase, SECRET_TYPE};
use clerk_sim::{Faults, SimConfig, Simulator, TokenStatus};
use k8s_openapi::api::{core::v1::Secret, events::v1::Event};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use support::{Operator, OperatorOptions, TestNamespace, control_plane, eventually, install_crds};

const KEY: &str = "sk_test_operatorTestKey0123456789";
const WAIT: Duration = Duration::from_secs(60);

struct Env {
    client: Client,
    ns: TestNamespace,
    sim: Simulator,
    operator: Option<Operator>,
    requests: Api<ActorTokenRequest>,
    secrets: Api<Secret>,
}

impl Env {
    async fn start(prefix: &str) -> Env {
        Self::start_with(prefix, Faults::default()).await
    }

    /// A namespace with a ClerkInstance named `clerk` pointing at a fresh simulator, and an
    /// operator serving that namespace.
    async fn start_with(prefix: &str, faults: Faults) -> Env {
        install_crds();
        let client = control_plane().client().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let sim = clerk_sim::start(SimConfig { secret_keys: vec![KEY.into()], faults, ..Default::default() })
            .await
            .expect("start the Clerk simulator");
        let env = Env {
            requests: Api::namespaced(client.clone(), &ns.name),
            secrets: Api::namespaced(client.clone(), &ns.name),
            client,
            ns,
            sim,
            operator: None,
        };
        env.create_instance("clerk", "clerk-key").await;
        let mut env = env;
        env.start_operator();
        env
    }

    async fn create_instance(&self, name: &str, key_secret: &str) {
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

    fn start_operator(&mut self) {
        self.operator = Some(Operator::start(OperatorOptions {
            namespaces: &[&self.ns.name],
            cluster_instance_namespace: &self.ns.name,
            kubeconfig: None,
            extra_args: &["--clerk-timeout-seconds", "2"],
        }));
    }

    fn operator(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("operator running")
    }

    async fn apply(&self, object: Value) {
        let out = control_plane()
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(object.to_string().as_bytes())?;
                child.wait_with_output()
            })
            .expect("run kubectl apply");
        assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    async fn create_request(&self, name: &str, spec: Value) -> ActorTokenRequest {
        let mut full = json!({ "userId": "user_2abcImpersonated", "actor": { "sub": "user_2xyzSupport" }, "instanceRef": { "kind": "ClerkInstance", "name": "clerk" } });
        merge(&mut full, spec);
        let request: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1", "kind": "ActorTokenRequest",
            "metadata": { "name": name }, "spec": full,
        }))
        .unwrap();
        self.requests.create(&PostParams::default(), &request).await.expect("create the request")
    }

    async fn wait_phase(&self, name: &str, phase: Phase) -> ActorTokenRequest {
        eventually(WAIT, &format!("{name} to be {phase:?}"), || async {
            self.requests.get_opt(name).await.unwrap().filter(|r| r.phase() == Some(phase))
        })
        .await
    }

    async fn wait_gone(&self, name: &str) {
        eventually(WAIT, &format!("{name} to be deleted"), || async {
            self.requests.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await
    }

    async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    fn live_tokens(&self) -> usize {
        self.sim.live_tokens().len()
    }

    /// No token or link the simulator ever issued appears in the operator's output, in an
    /// event, or in a request's status.
    async fn assert_no_credential_leaked(&mut self) {
        let output = self.operator().output();
        let events = serde_json::to_string(&self.events().await).unwrap();
        let statuses = serde_json::to_string(&self.requests.list(&ListParams::default()).await.unwrap().items.iter().map(|r| &r.status).collect::<Vec<_>>()).unwrap();
        let tokens = self.sim.tokens();
        assert!(!tokens.is_empty(), "the test issued no token to look for");
        for token in tokens {
            for secret in [&token.token, &token.url] {
                assert!(!output.contains(secret.as_str()), "a credential is in the operator's output");
                assert!(!events.contains(secret.as_str()), "a credential is in an event");
                assert!(!statuses.contains(secret.as_str()), "a credential is in a status");
            }
        }
        assert!(!output.contains(KEY) && !events.contains(KEY), "the secret key leaked");
    }
}

fn merge(base: &mut Value, patch: Value) {
    if let (Value::Object(base), Value::Object(patch)) = (base, patch) {
        for (k, v) in patch {
            base.insert(k, v);
        }
    }
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn a_request_is_issued_into_a_secret_and_revoked_on_delete() {
    let mut env = Env::start("issue").await;
    env.create_request("support-1", json!({ "secretLabels": { "team": "support" }, "reason": "TICKET-1" })).await;
    let issued = env.wait_phase("support-1", Phase::Issued).await;

    let status = issued.status.clone().unwrap();
    let token_id = status.token_id.clone().expect("token ID recorded");
    assert_eq!(status.secret_name.as_deref(), Some("support-1"));
    assert!(status.issued_at.is_some() && status.expires_at.is_some());
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Issued"));
    assert!(issued.metadata.finalizers.as_ref().unwrap().contains(&FINALIZER.to_string()));

    // Exactly one token, as asked, and the Secret carries its link.
    let tokens = env.sim.tokens();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    assert_eq!(token.id, token_id);
    assert_eq!(token.user_id, "user_2abcImpersonated");
    assert_eq!(token.actor["sub"], "user_2xyzSupport");
    assert_eq!(token.expires_in_seconds, 3600);
    assert_eq!(token.session_max_duration_in_seconds, 1800);
    let secret = env.secrets.get("support-1").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some(SECRET_TYPE));
    assert_eq!(secret_text(&secret, "url"), token.url);
    assert_eq!(secret_text(&secret, "token"), token.token);
    assert_eq!(secret_text(&secret, "tokenId"), token_id);
    assert_eq!(secret_text(&secret, "userId"), "user_2abcImpersonated");
    assert_eq!(secret_text(&secret, "actorId"), "user_2xyzSupport");
    assert!(!secret_text(&secret, "expiresAt").is_empty());
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["team"], "support");
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("ActorTokenRequest", issued.metadata.uid.as_deref().unwrap(), Some(true)));
    let issued_events = env.events().await.into_iter().filter(|e| e.reason.as_deref() == Some("Issued")).count();
    assert_eq!(issued_events, 1);

    // A settled request costs nothing when reconciled again.
    let calls_before = env.sim.stats();
    let rv = issued.metadata.resource_version.clone();
    env.operator().kill();
    env.start_operator();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.requests.get("support-1").await.unwrap().metadata.resource_version, rv, "no write for a settled request");
    assert_eq!(env.sim.stats(), calls_before, "no Clerk call for a settled request");

    env.requests.delete("support-1", &DeleteParams::default()).await.unwrap();
    env.wait_gone("support-1").await;
    assert_eq!(env.sim.token(&token_id).unwrap().status, TokenStatus::Revoked);
    assert!(env.secrets.get_opt("support-1").await.unwrap().is_none(), "the Secret is deleted");
    env.assert_no_credential_leaked().await;
}
