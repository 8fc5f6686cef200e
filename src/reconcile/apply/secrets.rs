//! Writing and deleting the Secret that carries a token's link. Only ever a Secret written
//! for this very request: anyone else's is left exactly as it is.

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PostParams, Preconditions},
};

use crate::{
    api::{ActorTokenRequest, MANAGER},
    reconcile::{
        Context, Error,
        decide::{
            SecretState,
            issue::{Delivery, refusal_is_final},
        },
        error::{is_already_exists, is_conflict, is_not_found, refusal_code},
        secret::{self, secret_for, secret_state},
    },
};

pub(super) fn secrets(request: &ActorTokenRequest, ctx: &Context) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default())
}

/// Writes the link's Secret: creates it, or, in place of one of this request's that holds no
/// token, deletes that one (at its exact version) and creates it anew. A Secret of anyone
/// else's is left as it is, and so is one holding a token. When a write fails, the Secret is
/// read again (the write may have happened all the same), so the caller can decide on what
/// it holds; the write's error goes with it, to show why the request waits.
pub(super) async fn deliver(
    request: &ActorTokenRequest,
    delivery: &secret::Delivery<'_>,
    ctx: &Context,
) -> (Delivery, Option<Error>) {
    let secrets = secrets(request, ctx);
    let desired = secret_for(request, delivery);
    let name = request.secret_name();
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let error = |source| Error::Secret {
        name: name.clone(),
        source,
    };
    let failure = match secrets.create(&pp, &desired).await {
        Ok(_) => return (Delivery::Written, None),
        Err(e) if is_already_exists(&e) => match secrets.get_opt(&name).await {
            Ok(Some(existing)) => {
                match secret_state(request, Some(&existing), &ctx.seal, Timestamp::now()) {
                    SecretState::Ours { delivered: None } => {
                        // No `update` on Secrets: a delete at this very version, then a create.
                        // A second operator doing the same loses one of the two with a conflict.
                        match delete_exactly(&secrets, &existing).await {
                            Ok(()) => match secrets.create(&pp, &desired).await {
                                Ok(_) => return (Delivery::Written, None),
                                Err(e) => e,
                            },
                            Err(e) => e,
                        }
                    }
                    SecretState::Ours { delivered: Some(_) } => {
                        return (Delivery::HoldsAnotherToken, None);
                    }
                    SecretState::Foreign | SecretState::Absent => {
                        return (Delivery::NameTaken, None);
                    }
                }
            }
            // Deleted in between: the caller revokes, and tries again from the top.
            Ok(None) => kube::Error::Api(Box::new(
                kube::core::Status::failure("Secret vanished while being written", "Conflict")
                    .with_code(409),
            )),
            Err(e) => e,
        },
        Err(e) => e,
    };
    let found = match secrets.get_opt(&name).await {
        Ok(secret) => Some(secret_state(
            request,
            secret.as_ref(),
            &ctx.seal,
            Timestamp::now(),
        )),
        Err(_) => None,
    };
    let for_good = refusal_code(&failure).is_some_and(refusal_is_final);
    (Delivery::Failed { found, for_good }, Some(error(failure)))
}

/// Deletes `secret`, the very one seen as ours (by UID); gone already counts as done.
pub(super) async fn delete_secret(
    request: &ActorTokenRequest,
    secret: Option<&Secret>,
    ctx: &Context,
) -> Result<(), Error> {
    let Some(secret) = secret else { return Ok(()) };
    let name = secret.name_any();
    // The precondition makes sure it is the very Secret we saw as ours that goes.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match secrets(request, ctx).delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(source) => Err(Error::Secret { name, source }),
    }
}

/// Deletes `secret` only as it was seen: same UID, same resourceVersion.
async fn delete_exactly(secrets: &Api<Secret>, secret: &Secret) -> Result<(), kube::Error> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: secret.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    secrets.delete(&secret.name_any(), &dp).await.map(|_| ())
}
