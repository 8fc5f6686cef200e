//! The governance check before a mint, end to end: reads what the gate needs (the namespace's
//! labels where the instance selects namespaces; the API server's answers on `use` and
//! `approve`), then lets the pure `gate` decide. Each question is asked only when the answer
//! can change the verdict.

use k8s_openapi::{api::core::v1::Namespace, jiff::Timestamp};
use kube::{Api, Client};

use super::{
    access,
    gate::{self, Approval, InstanceView, Refusal},
};
use crate::api::{APPROVE_VERB, ActorTokenRequest, USE_VERB, UserInfo};

/// What may happen to a request that is about to be issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Mint; `approver` goes into the token's provenance.
    Mint { approver: Option<UserInfo> },
    /// Wait for an approver; nothing is minted.
    AwaitApproval,
    /// Never, as asked: the request fails.
    Refuse(Refusal),
    /// An approver said no.
    Denied { by: UserInfo, message: String },
    /// Take the decision away (it can't stand), say why, and wait for a valid one.
    Discard {
        condition: &'static str,
        why: String,
    },
}

pub async fn judge(
    client: &Client,
    request: &ActorTokenRequest,
    instance: &InstanceView<'_>,
    operator: &str,
) -> Result<Verdict, kube::Error> {
    let namespace = request.metadata.namespace.as_deref().unwrap_or_default();
    let labels = match instance.namespace_selector {
        Some(_) => Api::<Namespace>::all(client.clone())
            .get_opt(namespace)
            .await?
            .and_then(|ns| ns.metadata.labels)
            .or_else(|| Some(Default::default())),
        None => None,
    };
    let requester = match gate::check_request(request, instance, labels.as_ref()) {
        Ok(requester) => requester,
        Err(refusal) => return Ok(Verdict::Refuse(refusal)),
    };
    let reference = &request.spec.instance_ref;
    if !access::may_on_instance(client, requester, USE_VERB, reference, namespace).await? {
        return Ok(Verdict::Refuse(gate::use_forbidden(requester, instance)));
    }
    let decider_may_approve = match gate::decision(request).and_then(|d| d.by) {
        Some(decider) => Some(
            access::may_on_instance(client, decider, APPROVE_VERB, reference, namespace).await?,
        ),
        None => None,
    };
    let approval = gate::approval(
        request,
        requester,
        instance,
        decider_may_approve,
        operator,
        Timestamp::now(),
    );
    Ok(match approval {
        Approval::NotNeeded => Verdict::Mint { approver: None },
        Approval::Approved { by } => Verdict::Mint {
            approver: Some(by.clone()),
        },
        Approval::Awaiting => Verdict::AwaitApproval,
        Approval::Denied { by, message } => Verdict::Denied {
            by: by.clone(),
            message: message.to_owned(),
        },
        Approval::Discard { condition, why } => Verdict::Discard { condition, why },
    })
}
