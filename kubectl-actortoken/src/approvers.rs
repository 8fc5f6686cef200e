//! Who could approve a request: the RBAC subjects bound to roles that grant the virtual verb
//! `approve` on its instance. Best effort, for the person waiting: it reads RBAC as RBAC
//! evaluates it (roles, bindings, wildcards, resourceNames), but knows nothing of other
//! authorizers (webhooks, `system:masters`' bypass), so it is a hint, never a gate.

use actor_token_operator::api::{APPROVE_VERB, GROUP, InstanceKind, InstanceRef};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};

/// The instance whose `approve` right is looked for, as RBAC names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `clerkinstances` or `clusterclerkinstances`.
    pub resource: &'static str,
    pub name: String,
    /// The request's namespace, where a ClerkInstance lives (and RoleBindings can grant).
    pub namespace: Option<String>,
}

impl Target {
    pub fn of(instance: &InstanceRef, namespace: &str) -> Target {
        match instance.kind {
            InstanceKind::ClusterClerkInstance => Target {
                resource: "clusterclerkinstances",
                name: instance.name.clone(),
                namespace: None,
            },
            InstanceKind::ClerkInstance => Target {
                resource: "clerkinstances",
                name: instance.name.clone(),
                namespace: Some(namespace.into()),
            },
        }
    }

    /// How people name it: `ClerkInstance clerk in namespace support`.
    pub fn described(&self) -> String {
        match &self.namespace {
            None => format!("ClusterClerkInstance {}", self.name),
            Some(ns) => format!("ClerkInstance {} in namespace {ns}", self.name),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// The rule names the verb, the resource and the group.
    Explicit,
    /// Through a `*` (cluster-admin and the like).
    Wildcard,
}

fn rule_grants(rule: &PolicyRule, target: &Target) -> Option<Grant> {
    let has = |list: &[String], want: &str| -> Option<Grant> {
        if list.iter().any(|x| x == want) {
            Some(Grant::Explicit)
        } else if list.iter().any(|x| x == "*") {
            Some(Grant::Wildcard)
        } else {
            None
        }
    };
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let grants = [
        has(groups, GROUP)?,
        has(resources, target.resource)?,
        has(&rule.verbs, APPROVE_VERB)?,
    ];
    let names = rule.resource_names.as_deref().unwrap_or_default();
    if !names.is_empty() && !names.contains(&target.name) {
        return None;
    }
    grants.into_iter().max()
}

fn rules_grant(rules: Option<&Vec<PolicyRule>>, target: &Target) -> Option<Grant> {
    rules?.iter().filter_map(|r| rule_grants(r, target)).min()
}

/// Someone who may approve, and the role that lets them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Approver {
    grant: Grant,
    /// `User bob@example.com`, `Group support-leads`, `ServiceAccount ns/name`.
    pub subject: String,
    /// `ClusterRole cluster-admin`, `Role approvers`.
    pub via: String,
}

fn subject(s: &Subject) -> String {
    match (s.kind.as_str(), &s.namespace) {
        ("ServiceAccount", Some(ns)) => format!("ServiceAccount {ns}/{}", s.name),
        (kind, _) => format!("{kind} {}", s.name),
    }
}

/// What was read of RBAC (whatever the user may list; missing kinds are empty).
#[derive(Default)]
pub struct Rbac {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Roles and RoleBindings of the target's namespace.
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// The subjects that may `approve` on `target`, explicit grants first, without the requester
/// (who may never approve their own request).
pub fn find(rbac: &Rbac, target: &Target, requester: Option<&str>) -> Vec<Approver> {
    let cluster_role = |name: &str| {
        rbac.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| rules_grant(r.rules.as_ref(), target))
    };
    let role = |name: &str| {
        rbac.roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| rules_grant(r.rules.as_ref(), target))
    };
    let mut out = Vec::new();
    let mut add = |grant: Grant, subjects: Option<&Vec<Subject>>, via: String| {
        for s in subjects.into_iter().flatten() {
            if s.kind == "User" && Some(s.name.as_str()) == requester {
                continue;
            }
            out.push(Approver {
                grant,
                subject: subject(s),
                via: via.clone(),
            });
        }
    };
    for binding in &rbac.cluster_role_bindings {
        if let Some(grant) = cluster_role(&binding.role_ref.name) {
            add(
                grant,
                binding.subjects.as_ref(),
                format!("ClusterRole {}", binding.role_ref.name),
            );
        }
    }
    // A RoleBinding grants only within its namespace: never a cluster-scoped instance.
    if target.namespace.is_some() {
        for binding in &rbac.role_bindings {
            let name = &binding.role_ref.name;
            let grant = match binding.role_ref.kind.as_str() {
                "ClusterRole" => cluster_role(name),
                _ => role(name),
            };
            if let Some(grant) = grant {
                add(
                    grant,
                    binding.subjects.as_ref(),
                    format!("{} {name}", binding.role_ref.kind),
                );
            }
        }
    }
    out.sort();
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.subject.clone()));
    out
}

/// The lines that tell the person waiting who can approve, and what they run.
pub fn explain(
    approvers: Option<&[Approver]>,
    target: &Target,
    request: &str,
    namespace: &str,
) -> String {
    let who = match approvers {
        Some([]) => format!(
            "nobody found in RBAC with verb {APPROVE_VERB} on {} (other authorizers may allow someone)",
            target.described()
        ),
        Some(list) => list
            .iter()
            .map(|a| format!("{} ({})", a.subject, a.via))
            .collect::<Vec<_>>()
            .join(", "),
        None => format!(
            "someone with RBAC verb {APPROVE_VERB} on {} (you may not read RBAC, so they can't be named here)",
            target.described()
        ),
    };
    format!(
        "Approval needed: requests through {} wait for a second person.\n  \
         Who can approve: {who}\n  \
         They run: kubectl actortoken approve {request} -n {namespace}",
        target.described()
    )
}

/// The spinner's short form: `approval by User bob, Group leads`.
pub fn short(approvers: Option<&[Approver]>, target: &Target) -> String {
    match approvers {
        Some(list) if !list.is_empty() => {
            let mut names: Vec<&str> = list.iter().map(|a| a.subject.as_str()).collect();
            let more = names.len().saturating_sub(3);
            names.truncate(3);
            let mut text = format!("approval by {}", names.join(", "));
            if more > 0 {
                text.push_str(&format!(" or {more} more"));
            }
            text
        }
        _ => format!(
            "approval by someone with RBAC verb {APPROVE_VERB} on {}",
            target.described()
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target_ns() -> Target {
        Target::of(
            &InstanceRef {
                kind: InstanceKind::ClerkInstance,
                name: "clerk".into(),
            },
            "support",
        )
    }

    fn target_cluster() -> Target {
        Target::of(&InstanceRef::default(), "support")
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        serde_json::from_value(json!({
            "apiGroups": groups, "resources": resources, "verbs": verbs, "resourceNames": names
        }))
        .unwrap()
    }

    fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            rules: Some(rules),
            ..Default::default()
        }
    }

    fn role(name: &str, rules: Vec<PolicyRule>) -> Role {
        Role {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("support".into()),
                ..Default::default()
            },
            rules: Some(rules),
        }
    }

    fn subjects(list: &[(&str, &str)]) -> serde_json::Value {
        json!(
            list.iter()
                .map(|(k, n)| if *k == "ServiceAccount" {
                    json!({ "kind": k, "name": n, "namespace": "ci" })
                } else {
                    json!({ "kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io" })
                })
                .collect::<Vec<_>>()
        )
    }

    fn crb(role: &str, who: &[(&str, &str)]) -> ClusterRoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{role}-binding") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": subjects(who)
        }))
        .unwrap()
    }

    fn rb(kind: &str, role: &str, who: &[(&str, &str)]) -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{role}-binding"), "namespace": "support" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role },
            "subjects": subjects(who)
        }))
        .unwrap()
    }

    fn names(list: &[Approver]) -> Vec<&str> {
        list.iter().map(|a| a.subject.as_str()).collect()
    }

    #[test]
    fn a_role_naming_the_instance_grants_and_others_do_not() {
        let rbac = Rbac {
            roles: vec![
                role(
                    "approve-clerk",
                    vec![rule(
                        &["actortokens.dev"],
                        &["clerkinstances"],
                        &["approve"],
                        &["clerk"],
                    )],
                ),
                role(
                    "approve-other",
                    vec![rule(
                        &["actortokens.dev"],
                        &["clerkinstances"],
                        &["approve"],
                        &["other"],
                    )],
                ),
                role(
                    "use-clerk",
                    vec![rule(
                        &["actortokens.dev"],
                        &["clerkinstances"],
                        &["use"],
                        &[],
                    )],
                ),
            ],
            role_bindings: vec![
                rb(
                    "Role",
                    "approve-clerk",
                    &[("User", "bob"), ("Group", "leads")],
                ),
                rb("Role", "approve-other", &[("User", "dave")]),
                rb("Role", "use-clerk", &[("User", "alice")]),
            ],
            ..Default::default()
        };
        let found = find(&rbac, &target_ns(), Some("alice"));
        assert_eq!(names(&found), ["Group leads", "User bob"]);
        assert_eq!(found[1].via, "Role approve-clerk");
    }

    #[test]
    fn the_requester_is_never_offered_as_an_approver() {
        let rbac = Rbac {
            cluster_roles: vec![cluster_role(
                "approvers",
                vec![rule(
                    &["actortokens.dev"],
                    &["clusterclerkinstances"],
                    &["approve"],
                    &[],
                )],
            )],
            cluster_role_bindings: vec![crb("approvers", &[("User", "alice"), ("User", "bob")])],
            ..Default::default()
        };
        let found = find(&rbac, &target_cluster(), Some("alice"));
        assert_eq!(names(&found), ["User bob"]);
    }

    #[test]
    fn role_bindings_never_grant_a_cluster_scoped_instance() {
        let approvers = cluster_role(
            "approvers",
            vec![rule(
                &["actortokens.dev"],
                &["clusterclerkinstances", "clerkinstances"],
                &["approve"],
                &[],
            )],
        );
        let rbac = Rbac {
            cluster_roles: vec![approvers],
            role_bindings: vec![rb("ClusterRole", "approvers", &[("User", "bob")])],
            ..Default::default()
        };
        assert!(find(&rbac, &target_cluster(), None).is_empty());
        // The same ClusterRole bound in the namespace grants a ClerkInstance there.
        assert_eq!(names(&find(&rbac, &target_ns(), None)), ["User bob"]);
    }

    #[test]
    fn wildcards_grant_but_come_after_explicit_grants() {
        let rbac = Rbac {
            cluster_roles: vec![
                cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"], &[])]),
                cluster_role(
                    "approvers",
                    vec![rule(
                        &["actortokens.dev"],
                        &["clusterclerkinstances"],
                        &["approve"],
                        &["default"],
                    )],
                ),
                cluster_role("other-group", vec![rule(&["apps"], &["*"], &["*"], &[])]),
            ],
            cluster_role_bindings: vec![
                crb("cluster-admin", &[("Group", "system:masters")]),
                crb("approvers", &[("ServiceAccount", "approver-bot")]),
                crb("other-group", &[("User", "ops")]),
            ],
            ..Default::default()
        };
        let found = find(&rbac, &target_cluster(), None);
        assert_eq!(
            names(&found),
            ["ServiceAccount ci/approver-bot", "Group system:masters"]
        );
    }

    #[test]
    fn the_explanation_names_approvers_or_the_verb_to_look_for() {
        let target = target_ns();
        let named = explain(
            Some(&[Approver {
                grant: Grant::Explicit,
                subject: "User bob".into(),
                via: "Role approve-clerk".into(),
            }]),
            &target,
            "t-1",
            "support",
        );
        assert!(named.contains("Who can approve: User bob (Role approve-clerk)"));
        assert!(named.contains("kubectl actortoken approve t-1 -n support"));
        let unknown = explain(None, &target, "t-1", "support");
        assert!(unknown.contains(
            "someone with RBAC verb approve on ClerkInstance clerk in namespace support"
        ));
        assert!(unknown.contains("kubectl actortoken approve t-1 -n support"));
    }

    #[test]
    fn the_spinner_names_at_most_three() {
        let target = target_cluster();
        let many: Vec<Approver> = (0..5)
            .map(|i| Approver {
                grant: Grant::Explicit,
                subject: format!("User u{i}"),
                via: "ClusterRole x".into(),
            })
            .collect();
        assert_eq!(
            short(Some(&many), &target),
            "approval by User u0, User u1, User u2 or 2 more"
        );
        assert_eq!(
            short(None, &target),
            "approval by someone with RBAC verb approve on ClusterClerkInstance default"
        );
    }
}
