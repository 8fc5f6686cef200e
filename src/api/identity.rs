//! Who: a Kubernetes user as the API server authenticated them (the requester of a request, the
//! approver of a decision), and subjects as RBAC names them (in an instance's policy).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user as the API server saw them in the request that created or decided an object
/// (`request.userInfo`). Stamped by admission, never typed by people.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[schemars(length(min = 1, max = 512))]
    pub username: String,
    /// Absent for users who authenticate by client certificate, and for impersonated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 512)))]
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Are these the same person? Same username, or the same UID where both have one.
    pub fn same_person(&self, other: &UserInfo) -> bool {
        self.username == other.username
            || matches!((&self.uid, &other.uid), (Some(a), Some(b)) if a == b)
    }
}

/// A Kubernetes subject as RBAC names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)").message("namespace is required for a ServiceAccount, and only for one"))]
pub struct Subject {
    pub kind: SubjectKind,
    #[schemars(length(min = 1, max = 512))]
    pub name: String,
    /// The ServiceAccount's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

impl Subject {
    /// Does this subject name `user`, directly or through one of their groups?
    pub fn matches(&self, user: &UserInfo) -> bool {
        match self.kind {
            SubjectKind::User => user.username == self.name,
            SubjectKind::Group => user.groups.contains(&self.name),
            SubjectKind::ServiceAccount => {
                let namespace = self.namespace.as_deref().unwrap_or_default();
                user.username == format!("system:serviceaccount:{namespace}:{}", self.name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: Option<&str>, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: uid.map(String::from),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn the_same_person_by_name_or_by_uid() {
        let alice = user("alice", Some("u-1"), &[]);
        assert!(alice.same_person(&user("alice", None, &[])));
        // Renamed, but the identity provider's UID gives them away.
        assert!(alice.same_person(&user("alice2", Some("u-1"), &[])));
        assert!(!alice.same_person(&user("bob", Some("u-2"), &[])));
        // No UID on either side (client certificates): names decide.
        assert!(!user("alice", None, &[]).same_person(&user("bob", None, &[])));
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let alice = user("alice", None, &["support", "system:authenticated"]);
        let subject = |kind, name: &str, ns: Option<&str>| Subject {
            kind,
            name: name.into(),
            namespace: ns.map(String::from),
        };
        assert!(subject(SubjectKind::User, "alice", None).matches(&alice));
        assert!(!subject(SubjectKind::User, "bob", None).matches(&alice));
        assert!(subject(SubjectKind::Group, "support", None).matches(&alice));
        assert!(!subject(SubjectKind::Group, "admins", None).matches(&alice));
        let flux = user(
            "system:serviceaccount:flux-system:kustomize-controller",
            None,
            &[],
        );
        let sa = subject(
            SubjectKind::ServiceAccount,
            "kustomize-controller",
            Some("flux-system"),
        );
        assert!(sa.matches(&flux));
        assert!(!sa.matches(&alice));
        // A user named like a ServiceAccount is only one if the API server says so: the
        // username is what it authenticated.
        let other_ns = subject(
            SubjectKind::ServiceAccount,
            "kustomize-controller",
            Some("default"),
        );
        assert!(!other_ns.matches(&flux));
    }
}
