//! `whoami`: what the current user may do here — request through which instances, approve
//! which, read links where — from the API server's own answers (SelfSubjectReview,
//! SelfSubjectAccessReviews, SelfSubjectRulesReview). Pure: the answers in, the report out.

use std::collections::BTreeSet;

use actor_token_operator::api::{APPROVE_VERB, GROUP, USE_VERB};
use k8s_openapi::api::authorization::v1::ResourceRule;

use crate::table;

/// One instance and what the user may do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceAccess {
    /// `ClusterClerkInstance` or `ClerkInstance`.
    pub kind: &'static str,
    pub name: String,
    pub may_use: bool,
    pub may_approve: bool,
    /// `None` when the instance could not be read.
    pub approval_required: Option<bool>,
}

/// Everything `whoami` found out.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub username: String,
    pub groups: Vec<String>,
    pub namespace: String,
    pub create_requests: bool,
    pub list_requests: bool,
    pub delete_requests: bool,
    pub read_secrets: bool,
    pub decide: bool,
    pub instances: Vec<InstanceAccess>,
    /// Things the report could not see, said plainly.
    pub notes: Vec<String>,
}

/// Instance names that `rules` (a SelfSubjectRulesReview's) grant `use` or `approve` on, for
/// `resource`; `true` if some rule grants it on every instance (no `resourceNames`).
pub fn names_in_rules(rules: &[ResourceRule], resource: &str) -> (BTreeSet<String>, bool) {
    let mut names = BTreeSet::new();
    let mut every = false;
    for rule in rules {
        let any = |list: Option<&Vec<String>>, want: &str| {
            list.is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
        };
        let verbs = rule
            .verbs
            .iter()
            .any(|v| v == USE_VERB || v == APPROVE_VERB || v == "*");
        if !verbs
            || !any(rule.api_groups.as_ref(), GROUP)
            || !any(rule.resources.as_ref(), resource)
        {
            continue;
        }
        match rule.resource_names.as_deref() {
            None | Some([]) => every = true,
            Some(list) => names.extend(list.iter().cloned()),
        }
    }
    (names, every)
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

pub fn render(report: &Report) -> String {
    let groups: Vec<&str> = report
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "system:authenticated")
        .collect();
    let mut out = format!("You are {}", report.username);
    if !groups.is_empty() {
        out.push_str(&format!(" (groups: {})", groups.join(", ")));
    }
    out.push_str(&format!("\n\nIn namespace {} you may:\n", report.namespace));
    let rows = [
        (
            "request links",
            "create actortokenrequests",
            report.create_requests,
        ),
        (
            "follow requests",
            "list actortokenrequests",
            report.list_requests,
        ),
        (
            "revoke requests",
            "delete actortokenrequests",
            report.delete_requests,
        ),
        ("read links", "get secrets", report.read_secrets),
        (
            "approve or deny",
            "update actortokenrequests/status",
            report.decide,
        ),
    ]
    .map(|(what, rbac, may)| vec![what.to_string(), yes(may), format!("({rbac})")]);
    for line in table::render(&["WHAT", "MAY", "RBAC"], &rows)
        .lines()
        .skip(1)
    {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("\nInstances:\n");
    if report.instances.is_empty() {
        out.push_str("  <none you may see or use>\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.kind.to_string(),
                    i.name.clone(),
                    yes(i.may_use),
                    match (i.may_approve, report.decide) {
                        (true, false) => "verb only".into(),
                        (may, _) => yes(may),
                    },
                    match i.approval_required {
                        Some(b) => yes(b),
                        None => "?".into(),
                    },
                ]
            })
            .collect();
        let text = table::render(
            &["KIND", "NAME", "REQUEST", "APPROVE", "APPROVAL REQUIRED"],
            &rows,
        );
        for line in text.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        if report.instances.iter().any(|i| i.may_approve) && !report.decide {
            out.push_str(
                "  (\"verb only\": approving also needs update on actortokenrequests/status here)\n",
            );
        }
    }
    for note in &report.notes {
        out.push_str(&format!("\nNote: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> ResourceRule {
        serde_json::from_value(json!({
            "apiGroups": groups, "resources": resources, "verbs": verbs, "resourceNames": names
        }))
        .unwrap()
    }

    #[test]
    fn rules_name_the_instances_a_user_may_use_or_approve() {
        let rules = [
            rule(
                &["actortokens.dev"],
                &["clerkinstances"],
                &["use"],
                &["clerk"],
            ),
            rule(
                &["actortokens.dev"],
                &["clerkinstances"],
                &["approve"],
                &["prod"],
            ),
            rule(
                &["actortokens.dev"],
                &["clerkinstances"],
                &["get"],
                &["hidden"],
            ),
            rule(
                &["actortokens.dev"],
                &["clusterclerkinstances"],
                &["use"],
                &["default"],
            ),
        ];
        let (names, every) = names_in_rules(&rules, "clerkinstances");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["clerk", "prod"]);
        assert!(!every);
        let (names, _) = names_in_rules(&rules, "clusterclerkinstances");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["default"]);
    }

    #[test]
    fn a_rule_without_names_or_with_wildcards_grants_every_instance() {
        let (_, every) = names_in_rules(&[rule(&["*"], &["*"], &["*"], &[])], "clerkinstances");
        assert!(every);
    }

    #[test]
    fn the_report_reads_as_what_one_may_do() {
        let report = Report {
            username: "alice@example.com".into(),
            groups: vec!["support".into(), "system:authenticated".into()],
            namespace: "support".into(),
            create_requests: true,
            list_requests: true,
            delete_requests: true,
            read_secrets: true,
            decide: false,
            instances: vec![
                InstanceAccess {
                    kind: "ClusterClerkInstance",
                    name: "default".into(),
                    may_use: false,
                    may_approve: false,
                    approval_required: Some(false),
                },
                InstanceAccess {
                    kind: "ClerkInstance",
                    name: "clerk".into(),
                    may_use: true,
                    may_approve: true,
                    approval_required: Some(true),
                },
            ],
            notes: vec!["you may not list ClusterClerkInstances".into()],
        };
        let text = render(&report);
        assert!(text.starts_with("You are alice@example.com (groups: support)\n"));
        for line in [
            "  request links     yes   (create actortokenrequests)",
            "  read links        yes   (get secrets)",
            "  approve or deny   no    (update actortokenrequests/status)",
            "  ClusterClerkInstance   default   no        no          no",
            "  ClerkInstance          clerk     yes       verb only   yes",
            "Note: you may not list ClusterClerkInstances",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
