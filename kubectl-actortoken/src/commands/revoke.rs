//! `revoke NAME`: deletes the request and waits until it is gone (its finalizer lets go only
//! once the operator has revoked the token) and its Secret with it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Preconditions},
    runtime::wait::{await_condition, conditions},
};

use crate::{
    cluster::Cluster,
    error::{Error, from_kube, is_forbidden},
    progress::Progress,
};

pub async fn run(cluster: &Cluster, name: &str, timeout: Duration) -> Result<(), Error> {
    let request = super::get_request(cluster, name).await?;
    let uid = request.metadata.uid.clone().unwrap_or_default();
    let token = request.status.as_ref().and_then(|s| s.token_id.clone());
    let secret_name = request
        .status
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .unwrap_or_else(|| request.secret_name());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    cluster
        .requests()
        .delete(name, &params)
        .await
        .map_err(|e| {
            from_kube(
                format!("deleting actortokenrequest {}", cluster.named(name)),
                e,
            )
        })?;
    let mut progress = Progress::new();
    let within = |what: String| async move {
        Error::TimedOut {
            after: timeout,
            what,
        }
    };

    progress.waiting_for("the operator to revoke the token and release the request");
    let gone = await_condition(cluster.requests(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Error::Other(format!("watching the request: {e}"))),
        Err(_) => return Err(within(progress.current().to_string()).await),
    }

    // The Secret goes before the request lets go (or with it, by its ownerReference). Someone
    // who may not read Secrets is told so rather than kept waiting.
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &cluster.namespace);
    let secret_note = match secrets.get_opt(&secret_name).await {
        Ok(None) => format!("Secret {secret_name} deleted"),
        Ok(Some(secret)) => {
            let owned = secret
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid);
            if owned {
                progress.waiting_for(&format!("Secret {secret_name} to be deleted"));
                let secret_uid = secret.metadata.uid.clone().unwrap_or_default();
                let gone = secret_deleted(&secrets, &secret_name, &secret_uid);
                match tokio::time::timeout(timeout, gone).await {
                    Ok(Ok(())) => format!("Secret {secret_name} deleted"),
                    Ok(Err(e)) => {
                        return Err(from_kube(
                            format!("reading Secret {}", cluster.named(&secret_name)),
                            e,
                        ));
                    }
                    Err(_) => return Err(within(progress.current().to_string()).await),
                }
            } else {
                format!("Secret {secret_name} is not this request's (left alone)")
            }
        }
        Err(e) if is_forbidden(&e) => {
            format!("Secret {secret_name}: you may not read Secrets here, the operator deletes it")
        }
        Err(e) => {
            return Err(from_kube(
                format!("reading Secret {}", cluster.named(&secret_name)),
                e,
            ));
        }
    };
    progress.finish();
    let token = match token {
        Some(id) => format!("token {id} revoked"),
        None => "no token was live".into(),
    };
    eprintln!(
        "actortokenrequest {} revoked: {token}, request gone, {secret_note}.",
        cluster.named(name)
    );
    Ok(())
}

/// Resolves once the Secret with `uid` is gone. Polled with `get`, not watched: the role that
/// reads links grants `get` alone (a watch needs `list`), and the operator deletes the Secret
/// just after it lets the request go, so the wait is short.
async fn secret_deleted(secrets: &Api<Secret>, name: &str, uid: &str) -> Result<(), kube::Error> {
    let mut pause = Duration::from_millis(100);
    loop {
        match secrets.get_opt(name).await? {
            Some(secret) if secret.metadata.uid.as_deref() == Some(uid) => {}
            _ => return Ok(()),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
