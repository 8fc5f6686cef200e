//! The flow of issue 15, one function per step, each as a pull request would drive it: files
//! change in Git, Flux applies or prunes, the operator acts, and what Flux says is checked.
//!
//! Step 2 and the denied half of step 3 go through the approval gate: approval.rs.

use std::time::Instant;

use actor_token_operator::api::Phase;
use clerk_sim::TokenStatus;

use super::{
    flow::{
        Flow, REJECTED_USER, RequestFile, STEP_WAIT, TIMEOUT, condition_message, managers,
        requester, token_id,
    },
    objects::KustomizationStatus,
};

/// The immutability rule's message (the CRD's CEL rule on `spec`).
const IMMUTABLE: &str = "spec is immutable: create a new ActorTokenRequest instead";
const TICKET: RequestFile = RequestFile {
    user_id: "user_2abcImpersonated",
    actor: "user_2xyzSupport",
    expires_in: "1h",
    reason: "https://tickets.example.com/1",
    instance: "clerk",
};

/// Step 1. A merged file is applied by kustomize-controller; while no operator serves the
/// request, the health check (kstatus, and the CEL of the example) keeps it in progress until
/// it times out; once the operator issues it, the Kustomization turns Ready, never before.
pub async fn applied_request_is_ready_only_once_issued(flow: &mut Flow) {
    flow.write_request("ticket-1", &TICKET);
    let merged = flow
        .merge("Ticket 1: support acts as user_2abc for an hour")
        .await;
    let revision = merged.commit.revision.clone();

    for p in flow.pipelines.clone() {
        let name = p.request_name("ticket-1");
        let request = flow
            .wait_request(&name, "to be applied by Flux", |_| true)
            .await;
        assert!(
            managers(&request)
                .iter()
                .any(|m| m == "kustomize-controller"),
            "{name} is written by kustomize-controller: {:?}",
            managers(&request)
        );
        assert_eq!(
            requester(&request),
            Some(flow.flux.kustomize_identity.as_str()),
            "{name}: admission stamped Flux's identity as the requester"
        );
        // Unserved: the CRD's status default, a generation not yet observed.
        let status = request.status.clone().unwrap_or_default();
        assert_eq!(status.phase, None, "{name} is unserved");
        assert_eq!(
            status.observed_generation,
            Some(0),
            "{name}: the status default"
        );
    }
    let timed_out = flow
        .wait_all(
            "the health check to time out on the unserved request",
            |p, k| {
                let c = k.failed_at(&revision, "HealthCheckFailed")?;
                (c.message.contains(&p.request_name("ticket-1"))
                    && c.message.contains("InProgress"))
                .then(|| c.message.clone())
            },
        )
        .await;
    for (p, (message, _)) in flow.pipelines.clone().iter().zip(timed_out) {
        flow.report.evidence(
            "1",
            "operator down: the health check times out",
            p.health,
            &message,
        );
        let request = flow.request(&p.request_name("ticket-1")).await.unwrap();
        assert_eq!(request.phase(), None, "nothing served it meanwhile");
    }

    flow.env.start_operator();
    let started = Instant::now();
    // The Kustomization is read first, then the request: one found Ready at this revision
    // while the request read after it is not Issued was Ready too early.
    let ready = flow
        .wait_all(
            "the Kustomizations to be Ready once the request is Issued",
            |p, k| {
                k.ready_at(&revision)
                    .then(|| (p.request_name("ticket-1"), k.clone()))
            },
        )
        .await;
    for (p, ((name, k), at)) in flow.pipelines.clone().iter().zip(ready) {
        let request = flow.request(&name).await.unwrap();
        assert_eq!(
            request.phase(),
            Some(Phase::Issued),
            "{name} once {} is Ready",
            p.name
        );
        let issued_at = request
            .status
            .as_ref()
            .unwrap()
            .issued_at
            .clone()
            .unwrap()
            .0;
        let ready_since: jiff::Timestamp = k
            .ready
            .as_ref()
            .unwrap()
            .last_transition_time
            .parse()
            .unwrap();
        assert!(
            ready_since >= issued_at,
            "{} turned Ready at {ready_since}, before {name} was issued at {issued_at}",
            p.name
        );
        flow.env
            .secrets
            .get(&name)
            .await
            .expect("the request's Secret");
        flow.report.figure(
            "1",
            "operator started → Kustomization Ready",
            p.health,
            at - started,
        );
        flow.report
            .evidence("1", "Ready", p.health, &k.ready.unwrap().message);
    }
    // From here on, the example's own timeout: failing fast is measured against it.
    flow.set_timeout(TIMEOUT).await;
}

/// Step 3 (Clerk's half). A request Clerk refuses fails the Kustomization at once, before
/// its timeout. Flux's message names the request and its status ('Failed'), never the
/// status's message: the reason stays on the request (`kubectl describe atr`).
/// Deleting the file clears it.
pub async fn refused_request_fails_fast(flow: &mut Flow) {
    flow.write_request(
        "refused",
        &RequestFile::new(REJECTED_USER, "1h", "https://tickets.example.com/2"),
    );
    let merged = flow.merge("Ticket 2: a user Clerk doesn't know").await;
    let revision = merged.commit.revision.clone();
    let namespace = flow.env.ns.name.clone();
    let failed = flow
        .wait_all("the Kustomizations to fail on the refused request", |p, k| {
            let c = k.failed_at(&revision, "HealthCheckFailed")?;
            let stalled = format!(
                "failed early due to stalled resources: [ActorTokenRequest/{namespace}/{} status: 'Failed']",
                p.request_name("refused")
            );
            c.message.contains(&stalled).then(|| c.message.clone())
        })
        .await;
    for (p, (message, at)) in flow.pipelines.clone().iter().zip(failed) {
        let name = p.request_name("refused");
        let request = flow.request(&name).await.unwrap();
        assert_eq!(request.phase(), Some(Phase::Failed), "{name}");
        let reason = condition_message(&request, "Stalled").expect("a Stalled condition");
        assert!(
            reason.contains(REJECTED_USER),
            "{name}: Clerk's word: {reason}"
        );
        flow.report.figure(
            "3",
            "merge → Kustomization failed (Clerk refused)",
            p.health,
            at - merged.at,
        );
        flow.report
            .evidence("3", "Clerk refused: the Kustomization", p.health, &message);
        flow.report.evidence(
            "3",
            "Clerk refused: the request's Stalled message",
            p.health,
            &reason,
        );
    }

    flow.remove_request("refused");
    let merged = flow.merge("Ticket 2: withdrawn").await;
    let revision = merged.commit.revision.clone();
    flow.wait_all("the Kustomizations to recover", |_, k| {
        k.ready_at(&revision).then_some(())
    })
    .await;
    for p in flow.pipelines.clone() {
        let name = p.request_name("refused");
        assert!(flow.request(&name).await.is_none(), "{name} is pruned");
    }
}

/// Step 4. A request whose link expired stays in Git and in the cluster as a record, and the
/// Kustomization stays Ready through a fresh health check.
pub async fn expired_request_keeps_kustomization_ready(flow: &mut Flow) {
    flow.write_request(
        "brief",
        &RequestFile::new(
            "user_2abcImpersonated",
            "15s",
            "https://tickets.example.com/3",
        ),
    );
    let merged = flow.merge("Ticket 3: fifteen seconds").await;
    let revision = merged.commit.revision.clone();
    let ready = flow
        .wait_all(
            "the Kustomizations to be Ready with the new request",
            |_, k| k.ready_at(&revision).then_some(()),
        )
        .await;
    for (p, ((), at)) in flow.pipelines.clone().iter().zip(ready) {
        // Issued (or, on a slow machine, already Expired: it lives 15 s).
        let request = flow.request(&p.request_name("brief")).await.unwrap();
        assert!(
            token_id(&request).is_some(),
            "{}: a token was issued",
            p.name
        );
        flow.report.figure(
            "4",
            "merge → Kustomization Ready (issued)",
            p.health,
            at - merged.at,
        );
    }
    for p in flow.pipelines.clone() {
        flow.wait_phase(&p.request_name("brief"), Phase::Expired)
            .await;
    }
    let token = format!("expired-{}", merged.commit.sha);
    let asked = Instant::now();
    flow.request_reconcile(&token).await;
    let checked = flow
        .wait_all("a health check after the expiry", |_, k| {
            (k.last_handled_reconcile_at == token).then(|| k.clone())
        })
        .await;
    for (p, (k, at)) in flow.pipelines.clone().iter().zip(checked) {
        assert!(
            k.ready_at(&revision),
            "{} is Ready after its request expired: {k:?}",
            p.name
        );
        flow.report.figure(
            "4",
            "reconcile with an Expired request → Ready",
            p.health,
            at - asked,
        );
        flow.report.evidence(
            "4",
            "Ready with an Expired request",
            p.health,
            &k.ready.unwrap().message,
        );
    }
}

/// Step 5. An edited request fails to apply with the immutability message in the
/// Kustomization's status; a new file with the old one deleted replaces it: the old token is
/// revoked, a new one issued.
pub async fn edited_request_is_refused_and_replaced(flow: &mut Flow) {
    let edited = RequestFile {
        expires_in: "2h",
        ..TICKET
    };
    flow.write_request("ticket-1", &edited);
    let merged = flow.merge("Ticket 1: two hours instead").await;
    let revision = merged.commit.revision.clone();
    let refused = flow
        .wait_all("the edited request to be refused", |_, k| {
            let c = k.failed_at(&revision, "ReconciliationFailed")?;
            c.message.contains(IMMUTABLE).then(|| c.message.clone())
        })
        .await;
    for (p, (message, at)) in flow.pipelines.clone().iter().zip(refused) {
        flow.report.figure(
            "5",
            "merge → edit refused (immutable)",
            p.health,
            at - merged.at,
        );
        flow.report
            .evidence("5", "edit refused", p.health, &message);
    }

    let mut old_tokens = Vec::new();
    for p in flow.pipelines.clone() {
        let request = flow.request(&p.request_name("ticket-1")).await.unwrap();
        assert_eq!(
            request.spec.expires_in.as_str(),
            "1h",
            "the old spec stands"
        );
        old_tokens.push(token_id(&request).expect("ticket-1's token"));
    }
    flow.remove_request("ticket-1");
    flow.write_request("ticket-1b", &edited);
    let merged = flow.merge("Ticket 1: two hours, as a new request").await;
    let revision = merged.commit.revision.clone();
    let ready = flow
        .wait_all("the replacement to be Ready", |_, k| {
            k.ready_at(&revision).then_some(())
        })
        .await;
    for ((p, ((), at)), old) in flow.pipelines.clone().iter().zip(ready).zip(old_tokens) {
        flow.report
            .figure("5", "merge → replacement Ready", p.health, at - merged.at);
        let new = flow.request(&p.request_name("ticket-1b")).await.unwrap();
        assert_eq!(new.phase(), Some(Phase::Issued));
        assert_ne!(token_id(&new).as_deref(), Some(old.as_str()), "a new token");
        let name = p.request_name("ticket-1");
        flow.env.wait_gone(&name).await;
        assert_eq!(
            flow.env.sim.token(&old).unwrap().status,
            TokenStatus::Revoked,
            "{name}'s token is revoked"
        );
    }
}

/// Step 6. Deleting the files prunes the requests; the finalizer revokes the live token (the
/// simulator says so) and the Secret goes.
pub async fn deleted_file_revokes_the_token(flow: &mut Flow) {
    let mut live = Vec::new();
    for p in flow.pipelines.clone() {
        let request = flow.request(&p.request_name("ticket-1b")).await.unwrap();
        let id = token_id(&request).unwrap();
        assert_eq!(
            flow.env.sim.token(&id).unwrap().status,
            TokenStatus::Pending
        );
        live.push(id);
    }
    flow.remove_request("ticket-1b");
    flow.remove_request("brief");
    let merged = flow.merge("Tickets 1 and 3: done").await;
    let revision = merged.commit.revision.clone();
    // When each pipeline's token was seen revoked, its request gone, its Secret gone.
    let mut seen: Vec<[Option<Instant>; 3]> = vec![[None; 3]; live.len()];
    let deadline = Instant::now() + STEP_WAIT;
    while seen.iter().flatten().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the pruned requests' tokens to be revoked and their requests \
             and Secrets to go (revoked, gone, Secret gone: {seen:?})"
        );
        for ((p, id), slots) in flow.pipelines.iter().zip(&live).zip(seen.iter_mut()) {
            let name = p.request_name("ticket-1b");
            let now = Instant::now();
            let facts = [
                flow.env.sim.token(id).unwrap().status == TokenStatus::Revoked,
                flow.request(&name).await.is_none(),
                flow.env.secrets.get_opt(&name).await.unwrap().is_none(),
            ];
            for (slot, fact) in slots.iter_mut().zip(facts) {
                if fact && slot.is_none() {
                    *slot = Some(now);
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (p, [revoked, gone, secret_gone]) in flow.pipelines.clone().iter().zip(seen) {
        flow.report.figure(
            "6",
            "merge → token revoked",
            p.health,
            revoked.unwrap() - merged.at,
        );
        flow.report.figure(
            "6",
            "merge → request gone",
            p.health,
            gone.unwrap() - merged.at,
        );
        flow.report.figure(
            "6",
            "merge → Secret gone",
            p.health,
            secret_gone.unwrap() - merged.at,
        );
        flow.env.wait_gone(&p.request_name("brief")).await;
    }
    flow.wait_all(
        "the Kustomizations to be Ready with nothing",
        |_, k: &KustomizationStatus| k.ready_at(&revision).then_some(()),
    )
    .await;
}
