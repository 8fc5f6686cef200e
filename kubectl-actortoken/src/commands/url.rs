//! `url NAME [--open]`: the sign-in link of an issued request, from its Secret.

use actor_token_operator::api::ActorTokenRequest;
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::Api;

use crate::{
    browser,
    cluster::Cluster,
    error::{Error, from_kube, is_forbidden},
    human,
    stage::{self, Ending, Stage},
};

pub async fn run(cluster: &Cluster, name: &str, open: bool) -> Result<(), Error> {
    let request = super::get_request(cluster, name).await?;
    let link = match stage::of(&request) {
        Stage::Issued { secret } => {
            if let Some(at) = request.status.as_ref().and_then(|s| s.expires_at.as_ref())
                && at.0 <= Timestamp::now()
            {
                return Err(Error::Over(format!(
                    "the link of {} expired at {}",
                    cluster.named(name),
                    human::timestamp(at.0)
                )));
            }
            read(cluster, &request, &secret).await?.ok_or_else(|| {
                Error::Over(format!(
                    "the Secret {secret} of {} is gone: the operator revokes its token",
                    cluster.named(name)
                ))
            })?
        }
        Stage::Ended(Ending::Denied { by, message }) => return Err(Error::Denied { by, message }),
        Stage::Ended(ending) => {
            return Err(Error::Over(format!(
                "{} has no link: {ending}",
                cluster.named(name)
            )));
        }
        waiting => {
            return Err(Error::NotYet(format!(
                "{} is not issued yet: it waits for {}",
                cluster.named(name),
                waiting.waiting_for()
            )));
        }
    };
    deliver(&link, open)
}

/// Prints the link on stdout (on purpose: it is what was asked for), or opens it.
pub fn deliver(link: &str, open: bool) -> Result<(), Error> {
    if open {
        let opener = browser::open(link)?;
        eprintln!("Opened the sign-in link with {}.", opener.described());
    } else {
        println!("{link}");
    }
    Ok(())
}

/// The link in the request's Secret: `None` if the Secret (or its `url`) is not there. A
/// Secret that is not this request's own (no controller reference to it) is not trusted.
pub async fn read(
    cluster: &Cluster,
    request: &ActorTokenRequest,
    secret: &str,
) -> Result<Option<String>, Error> {
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &cluster.namespace);
    let found = secrets.get_opt(secret).await.map_err(|e| {
        let forbidden = is_forbidden(&e);
        let error = from_kube(format!("reading Secret {}", cluster.named(secret)), e);
        if forbidden {
            error.with_hint(format!(
                "reading links needs RBAC get on secrets in namespace {} (the chart's link-reader ClusterRole, bound there)",
                cluster.namespace
            ))
        } else {
            error
        }
    })?;
    let Some(found) = found else {
        return Ok(None);
    };
    let owned = found
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == request.metadata.uid.as_ref());
    if !owned {
        return Err(Error::Other(format!(
            "Secret {} is not owned by actortokenrequest {}: not reading a link from it",
            cluster.named(secret),
            cluster.named(request.metadata.name.as_deref().unwrap_or_default())
        )));
    }
    Ok(found
        .data
        .as_ref()
        .and_then(|d| d.get("url"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned()))
}
