//! Watching a run from outside: every token any request's objects ever named (watching the
//! requests and their Secrets through every apiserver restart), and every moment one user had
//! two live tokens in the simulator (polled).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actor_token_operator::api::{ActorTokenRequest, FINALIZER};
use clerk_sim::{Simulator, TokenStatus};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;

use super::verdict::{Account, LiveGroups};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// What a request's objects say, read the way the operator's users would read them.
pub fn account_of(request: &ActorTokenRequest, secret: Option<&Secret>) -> Account {
    let status = request.status.clone().unwrap_or_default();
    let uid = request.uid();
    let owned = secret.filter(|s| {
        s.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
    });
    let text = |key: &str| {
        owned
            .and_then(|s| s.data.as_ref()?.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Account {
        phase: status.phase,
        reason: status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.reason.clone()),
        token_id: status.token_id,
        pending_revokes: status
            .pending_revokes
            .into_iter()
            .map(|p| p.token_id)
            .collect(),
        secret_token_id: text("tokenId"),
        secret_url: text("url"),
        has_finalizer: request.finalizers().iter().any(|f| f == FINALIZER),
    }
}

/// request name → every token ID its status or its own Secret ever named.
pub type Named = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

pub struct Observer {
    pub named: Named,
    pub live_groups: Arc<Mutex<LiveGroups>>,
    /// Poll rounds of the simulator, to show the continuous check really ran.
    pub polls: Arc<Mutex<u64>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Observer {
    pub fn start(
        requests: Api<ActorTokenRequest>,
        secrets: Api<Secret>,
        sim: Arc<Simulator>,
    ) -> Observer {
        let named: Named = Arc::default();
        let live_groups: Arc<Mutex<LiveGroups>> = Arc::default();
        let polls: Arc<Mutex<u64>> = Arc::default();
        let mut tasks = Vec::new();

        let ledger = named.clone();
        tasks.push(tokio::spawn(async move {
            // Errors (an apiserver restart) are retried with backoff inside the stream.
            let mut stream = watcher(requests, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                if let Ok(request) = event {
                    let account = account_of(&request, None);
                    note(&ledger, &request.name_any(), account.names());
                }
            }
        }));

        let ledger = named.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = watcher(secrets, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(secret) = event else { continue };
                // Only a Secret a request controls is that request's record.
                let owner = secret
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "ActorTokenRequest")
                    .map(|o| o.name.clone());
                let token_id = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("tokenId"))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok());
                if let (Some(owner), Some(token_id)) = (owner, token_id) {
                    note(&ledger, &owner, [token_id.as_str()]);
                }
            }
        }));

        let groups = live_groups.clone();
        let rounds = polls.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let at = now_ms();
                let mut live: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for token in sim.tokens() {
                    if token.status == TokenStatus::Pending {
                        live.entry(token.user_id).or_default().push(token.id);
                    }
                }
                {
                    let mut groups = groups.lock().unwrap();
                    for (user, mut ids) in live {
                        if ids.len() >= 2 {
                            ids.sort();
                            groups.entry((user, ids)).or_insert(at);
                        }
                    }
                }
                *rounds.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));

        Observer {
            named,
            live_groups,
            polls,
            tasks,
        }
    }

    pub fn named(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.named.lock().unwrap().clone()
    }

    /// Stops watching, and returns what was seen.
    pub fn stop(self) -> (BTreeMap<String, BTreeSet<String>>, LiveGroups, u64) {
        for task in &self.tasks {
            task.abort();
        }
        let named = self.named();
        let groups = self.live_groups.lock().unwrap().clone();
        let polls = *self.polls.lock().unwrap();
        (named, groups, polls)
    }
}

fn note<'a>(ledger: &Named, request: &str, ids: impl IntoIterator<Item = &'a str>) {
    let mut ledger = ledger.lock().unwrap();
    let entry = ledger.entry(request.to_owned()).or_default();
    for id in ids {
        entry.insert(id.to_owned());
    }
}

/// Every request and its Secret as they are now: name → account.
pub async fn accounts(
    requests: &Api<ActorTokenRequest>,
    secrets: &Api<Secret>,
) -> Result<BTreeMap<String, Account>, kube::Error> {
    let requests = requests.list(&Default::default()).await?.items;
    let secrets: BTreeMap<String, Secret> = secrets
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    Ok(requests
        .iter()
        .map(|r| {
            let secret = secrets.get(&r.secret_name());
            (r.name_any(), account_of(r, secret))
        })
        .collect())
}
