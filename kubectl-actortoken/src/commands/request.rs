//! `request USER_ID --actor CLERK_ID ...`: creates the request as the user, then waits — for
//! the operator, for approval (saying who could give it), for Clerk, for the Secret — and
//! prints or opens the link.

use std::time::Duration;

use actor_token_operator::api::ActorTokenRequest;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::{
    Api,
    api::{ListParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;

use crate::{
    approvers::{self, Rbac, Target},
    cli::RequestArgs,
    cluster::Cluster,
    error::{Error, from_kube, is_forbidden},
    progress::Progress,
    stage::{self, Ending, Stage},
};

pub async fn run(cluster: &Cluster, args: RequestArgs) -> Result<(), Error> {
    let me = cluster.me().await?;
    let request = build(&args, &me)?;
    let created = cluster
        .requests()
        .create(&PostParams::default(), &request)
        .await
        .map_err(|e| {
            from_kube(
                format!(
                    "creating an actortokenrequest in namespace {}",
                    cluster.namespace
                ),
                e,
            )
        })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    eprintln!(
        "actortokenrequest {} created: {} as {}, for {}.",
        cluster.named(&name),
        created.spec.user_id,
        created.spec.actor.sub,
        created.spec.expires_in.as_str()
    );
    if args.no_wait {
        println!("{name}");
        return Ok(());
    }
    let link = wait_for_link(cluster, &created, &me.username, args.timeout).await?;
    super::url::deliver(&link, args.open)
}

/// The request to create. The requester is stamped from the API server's own answer (the
/// admission policies check it is exactly the user, and fill it in where we would not).
fn build(
    args: &RequestArgs,
    me: &actor_token_operator::api::UserInfo,
) -> Result<ActorTokenRequest, Error> {
    let mut spec = json!({
        "requester": me,
        "userId": args.user_id,
        "actor": { "sub": args.actor },
        "reason": args.reason,
    });
    if let Some(expires_in) = &args.expires_in {
        spec["expiresIn"] = json!(expires_in);
    }
    if let Some(instance) = &args.instance {
        spec["instanceRef"] = json!(instance);
    }
    let metadata = match &args.name {
        Some(name) => json!({ "name": name }),
        None => json!({ "generateName": generate_name(&args.user_id) }),
    };
    serde_json::from_value(json!({
        "apiVersion": "actortokens.dev/v1alpha1",
        "kind": "ActorTokenRequest",
        "metadata": metadata,
        "spec": spec,
    }))
    .map_err(|e| Error::Usage(format!("not a valid request: {e}")))
}

/// A name prefix people can read: the user ID in DNS form (`user_2Abc` → `user-2abc-`).
fn generate_name(user_id: &str) -> String {
    let mut base: String = user_id
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    base.truncate(40);
    let base = base.trim_matches('-');
    if base.is_empty() {
        "actortoken-".into()
    } else {
        format!("{base}-")
    }
}

/// Follows the request until its link is readable, it ends without one, or `timeout` passes.
async fn wait_for_link(
    cluster: &Cluster,
    created: &ActorTokenRequest,
    me: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let name = created.metadata.name.clone().unwrap_or_default();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut updates = watcher(cluster.requests(), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut progress = Progress::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // Only for a Secret that is late: every other change comes through the watch.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut latest = created.clone();
    // Looked up once, the first time the request waits for approval.
    let mut approvers_found: Option<Option<Vec<approvers::Approver>>> = None;
    loop {
        match stage::of(&latest) {
            Stage::Issued { secret } => {
                if let Some(link) = super::url::read(cluster, &latest, &secret).await? {
                    progress.finish();
                    eprintln!("Issued: the sign-in link works until {}.", until(&latest));
                    return Ok(link);
                }
                progress.waiting_for(&format!("the Secret {secret}"));
            }
            Stage::Ended(Ending::Denied { by, message }) => {
                return Err(Error::Denied { by, message });
            }
            Stage::Ended(ending) => {
                return Err(Error::Over(format!(
                    "{} ended without a link: {ending}",
                    cluster.named(&name)
                )));
            }
            Stage::Approval => {
                let target = Target::of(&latest.spec.instance_ref, &cluster.namespace);
                if approvers_found.is_none() {
                    let found = who_may_approve(cluster, &target, me).await;
                    progress.note(&approvers::explain(
                        found.as_deref(),
                        &target,
                        &name,
                        &cluster.namespace,
                    ));
                    approvers_found = Some(found);
                }
                let found = approvers_found.as_ref().and_then(|f| f.as_deref());
                progress.waiting_for(&approvers::short(found, &target));
            }
            other => progress.waiting_for(&other.waiting_for()),
        }
        tokio::select! {
            _ = &mut deadline => {
                return Err(Error::TimedOut {
                    after: timeout,
                    what: format!("{} (the request {} stays; kubectl actortoken url {name} reads its link later)",
                        progress.current(), cluster.named(&name)),
                });
            }
            update = updates.try_next() => match update {
                Ok(Some(request)) => latest = request,
                Ok(None) => return Err(Error::Other("the watch on the request ended".into())),
                Err(watcher::Error::InitialListFailed(e)) | Err(watcher::Error::WatchStartFailed(e)) if is_forbidden(&e) => {
                    return Err(from_kube(format!("watching actortokenrequest {}", cluster.named(&name)), e)
                        .with_hint(format!("waiting needs RBAC list and watch on actortokenrequests; --no-wait returns at once, and kubectl actortoken url {name} reads the link later")));
                }
                // Anything else is retried by the watcher's backoff.
                Err(_) => {}
            },
            _ = tick.tick() => {}
        }
        if latest.metadata.deletion_timestamp.is_some() {
            return Err(Error::Over(format!(
                "{} is being deleted: no link will come",
                cluster.named(&name)
            )));
        }
    }
}

fn until(request: &ActorTokenRequest) -> String {
    request
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .map(|t| crate::human::timestamp(t.0))
        .unwrap_or_else(|| "it expires".into())
}

/// The subjects RBAC lets approve on `target`, if the user may read RBAC; `None` if not.
async fn who_may_approve(
    cluster: &Cluster,
    target: &Target,
    me: &str,
) -> Option<Vec<approvers::Approver>> {
    let client = &cluster.client;
    let lp = ListParams::default();
    let cluster_roles = Api::<ClusterRole>::all(client.clone())
        .list(&lp)
        .await
        .ok()?;
    let cluster_role_bindings = Api::<ClusterRoleBinding>::all(client.clone())
        .list(&lp)
        .await
        .ok()?;
    let (roles, role_bindings) = match &target.namespace {
        Some(ns) => (
            Api::<Role>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .ok()?
                .items,
            Api::<RoleBinding>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .ok()?
                .items,
        ),
        None => Default::default(),
    };
    let rbac = Rbac {
        cluster_roles: cluster_roles.items,
        cluster_role_bindings: cluster_role_bindings.items,
        roles,
        role_bindings,
    };
    Some(approvers::find(&rbac, target, Some(me)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_dns_names_from_the_user_id() {
        assert_eq!(generate_name("user_2AbcDef"), "user-2abcdef-");
        assert_eq!(generate_name("___"), "actortoken-");
        assert!(generate_name(&"user_".repeat(20)).len() <= 41);
    }
}
