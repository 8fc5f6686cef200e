//! `whoami`: asks the API server what the current user may do (SelfSubjectAccessReviews, and a
//! SelfSubjectRulesReview to find instances one may use without listing them).

use std::collections::BTreeSet;

use actor_token_operator::api::{
    APPROVE_VERB, ClerkInstance, ClusterClerkInstance, GROUP, InstancePolicy, USE_VERB,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};

use crate::{
    access::{self, InstanceAccess, Report},
    cluster::Cluster,
    error::{Error, from_kube, is_forbidden},
};

struct Ask<'a> {
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    verb: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

async fn may(cluster: &Cluster, ask: Ask<'_>) -> Result<bool, Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(ask.group.into()),
                resource: Some(ask.resource.into()),
                subresource: ask.subresource.map(String::from),
                verb: Some(ask.verb.into()),
                namespace: ask.namespace.map(String::from),
                name: ask.name.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(cluster.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            from_kube(
                "asking the API server what you may do (SelfSubjectAccessReview)",
                e,
            )
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

fn in_ns<'a>(cluster: &'a Cluster, group: &'a str, resource: &'a str, verb: &'a str) -> Ask<'a> {
    Ask {
        group,
        resource,
        subresource: None,
        verb,
        namespace: Some(&cluster.namespace),
        name: None,
    }
}

fn needs_approval(policy: &InstancePolicy) -> bool {
    policy.approval.as_ref().is_some_and(|a| a.required)
}

pub async fn run(cluster: &Cluster) -> Result<(), Error> {
    let me = cluster.me().await?;
    let ns = cluster.namespace.as_str();
    let mut report = Report {
        username: me.username,
        groups: me.groups,
        namespace: ns.into(),
        create_requests: may(
            cluster,
            in_ns(cluster, GROUP, "actortokenrequests", "create"),
        )
        .await?,
        list_requests: may(cluster, in_ns(cluster, GROUP, "actortokenrequests", "list")).await?,
        delete_requests: may(
            cluster,
            in_ns(cluster, GROUP, "actortokenrequests", "delete"),
        )
        .await?,
        read_secrets: may(cluster, in_ns(cluster, "", "secrets", "get")).await?,
        decide: may(
            cluster,
            Ask {
                subresource: Some("status"),
                ..in_ns(cluster, GROUP, "actortokenrequests", "update")
            },
        )
        .await?,
        ..Default::default()
    };

    // The instances: those one may list, and those one's RBAC rules name.
    let rules = Api::<SelfSubjectRulesReview>::all(cluster.client.clone())
        .create(
            &PostParams::default(),
            &SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some(ns.into()),
                },
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            from_kube(
                "asking the API server for your rules (SelfSubjectRulesReview)",
                e,
            )
        })?
        .status
        .map(|s| s.resource_rules)
        .unwrap_or_default();

    let mut instances = Vec::new();
    for (kind, resource) in [
        ("ClusterClerkInstance", "clusterclerkinstances"),
        ("ClerkInstance", "clerkinstances"),
    ] {
        let (mut names, every) = access::names_in_rules(&rules, resource);
        let listed: Result<Vec<(String, bool)>, kube::Error> = if kind == "ClusterClerkInstance" {
            Api::<ClusterClerkInstance>::all(cluster.client.clone())
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .map(|i| {
                            let required = needs_approval(&i.spec.instance.policy);
                            (i.metadata.name.unwrap_or_default(), required)
                        })
                        .collect()
                })
        } else {
            Api::<ClerkInstance>::namespaced(cluster.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .map(|i| {
                            (
                                i.metadata.name.unwrap_or_default(),
                                needs_approval(&i.spec.policy),
                            )
                        })
                        .collect()
                })
        };
        let known = match listed {
            Ok(list) => list,
            Err(e) if is_forbidden(&e) => {
                report.notes.push(format!(
                    "you may not list {resource}{}: only those your RBAC rules name are shown{}",
                    if kind == "ClerkInstance" {
                        format!(" in {ns}")
                    } else {
                        String::new()
                    },
                    if every {
                        format!(", and you may use or approve any {kind}")
                    } else {
                        String::new()
                    }
                ));
                Vec::new()
            }
            Err(e) => return Err(from_kube(format!("listing {resource}"), e)),
        };
        names.extend(known.iter().map(|(n, _)| n.clone()));
        let names: BTreeSet<String> = names;
        for name in names {
            let ask = |verb| Ask {
                group: GROUP,
                resource,
                subresource: None,
                verb,
                namespace: (kind == "ClerkInstance").then_some(ns),
                name: Some(name.as_str()),
            };
            instances.push(InstanceAccess {
                kind,
                approval_required: known.iter().find(|(n, _)| *n == name).map(|(_, r)| *r),
                may_use: may(cluster, ask(USE_VERB)).await?,
                may_approve: may(cluster, ask(APPROVE_VERB)).await?,
                name,
            });
        }
    }
    report.instances = instances;
    print!("{}", access::render(&report));
    Ok(())
}
