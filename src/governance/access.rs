//! Asks the API server what a user may do (SubjectAccessReview) and who the operator is
//! (SelfSubjectReview). Thin: the answers go to `gate`, which decides.

use k8s_openapi::api::{
    authentication::v1::SelfSubjectReview,
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};

use crate::api::{GROUP, InstanceKind, InstanceRef, UserInfo};

/// May `user` do `verb` on the instance `reference` names (as seen from `namespace`)?
pub async fn may_on_instance(
    client: &Client,
    user: &UserInfo,
    verb: &str,
    reference: &InstanceRef,
    namespace: &str,
) -> Result<bool, kube::Error> {
    let (resource, namespace) = match reference.kind {
        InstanceKind::ClusterClerkInstance => ("clusterclerkinstances", None),
        InstanceKind::ClerkInstance => ("clerkinstances", Some(namespace.to_owned())),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.username.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.into()),
                resource: Some(resource.into()),
                namespace,
                name: Some(reference.name.clone()),
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer
        .status
        .is_some_and(|s| s.allowed && s.denied != Some(true)))
}

/// The operator's own username, as the API server authenticates it: the one user whose
/// approvals never count.
pub async fn own_username(client: &Client) -> Result<String, kube::Error> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}
