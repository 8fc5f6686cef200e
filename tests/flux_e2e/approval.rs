//! The steps of issue 15 that go through the approval gate: step 2 (the pull request is the
//! approval: Flux's requests through an instance that exempts kustomize-controller are issued,
//! the same request applied by a person waits) and the denied half of step 3 (an approver
//! denies a request Flux applied through an instance with no exemption).

use std::time::Instant;

use actor_token_operator::api::{ActorTokenRequest, Phase};
use serde_json::Value;

use super::{
    flow::{
        EXEMPT_INSTANCE, Flow, RequestFile, STRICT_INSTANCE, condition_message, ready_reason,
        requester, token_id,
    },
    people::{self, ALICE, BOB},
};

const AWAITING_APPROVAL: &str = "AwaitingApproval";

/// The token the simulator minted for request `name`, found by the provenance the operator
/// puts into the actor (`actortokens.dev.request.name`).
fn minted_for(flow: &Flow, name: &str) -> Vec<Value> {
    flow.env
        .sim
        .tokens()
        .into_iter()
        .map(|t| t.actor)
        .filter(|actor| {
            actor["actortokens.dev"]["request"]["name"] == name
                && actor["actortokens.dev"]["request"]["namespace"] == flow.env.ns.name.as_str()
        })
        .collect()
}

/// Step 2. The instance requires approval and exempts kustomize-controller: the request Flux
/// applies carries Flux's identity as its requester and is issued with no approver; Flux's
/// later re-applies leave the stamped requester and finalizer alone (a forced reconcile finds
/// nothing to change). The same spec applied by a person waits for an approver, and nothing
/// is minted for it.
pub async fn reviewed_request_needs_no_further_approval(flow: &mut Flow) {
    let reviewed = RequestFile::new(
        "user_2abcImpersonated",
        "1h",
        "https://tickets.example.com/4",
    )
    .through(EXEMPT_INSTANCE);
    flow.write_request("reviewed", &reviewed);
    let merged = flow
        .merge("Ticket 4: reviewed in this pull request, no further approval")
        .await;
    let revision = merged.commit.revision.clone();
    let ready = flow
        .wait_all(
            "the Kustomizations to be Ready with the reviewed request issued",
            |_, k| k.ready_at(&revision).then_some(()),
        )
        .await;
    let flux = flow.flux.kustomize_identity.clone();
    for (p, ((), at)) in flow.pipelines.clone().iter().zip(ready) {
        let name = p.request_name("reviewed");
        let request = flow.request(&name).await.unwrap();
        assert_eq!(request.phase(), Some(Phase::Issued), "{name}");
        assert_eq!(
            requester(&request),
            Some(flux.as_str()),
            "{name}: Flux is the requester"
        );
        let status = request.status.as_ref().unwrap();
        assert_eq!(status.decided_by, None, "{name}: nobody had to decide");
        let minted = minted_for(flow, &name);
        assert_eq!(minted.len(), 1, "{name}: one token");
        let provenance = &minted[0]["actortokens.dev"];
        assert_eq!(provenance["requester"], flux.as_str(), "{provenance}");
        assert!(provenance.get("approver").is_none(), "{provenance}");
        flow.report.figure(
            "2",
            "merge → Kustomization Ready (exempt instance, issued)",
            p.health,
            at - merged.at,
        );
    }
    flux_reapplies_without_a_fight(flow, &revision).await;

    // Alice applies the same spec by hand: she may create requests and use the instance, but
    // she is not exempt.
    let namespace = flow.env.ns.name.clone();
    people::may_request(&namespace, ALICE, EXEMPT_INSTANCE);
    let by_hand = "by-hand";
    people::apply_as(ALICE, &namespace, &reviewed.yaml(by_hand))
        .unwrap_or_else(|e| panic!("Alice applies the request: {e}"));
    let waiting = flow
        .wait_request(by_hand, "to await approval", |r| {
            ready_reason(r).as_deref() == Some(AWAITING_APPROVAL)
        })
        .await;
    assert_eq!(waiting.phase(), Some(Phase::Pending));
    assert_eq!(requester(&waiting), Some(ALICE), "Alice is the requester");
    // Whatever the operator would do about it now, it has done: still nothing minted.
    flow.env.settle(by_hand).await;
    assert!(
        minted_for(flow, by_hand).is_empty(),
        "no token for a person's request nobody approved"
    );
    let message = condition_message(&waiting, "Ready").unwrap();
    flow.report.evidence_beside_flux(
        "2",
        "the same spec applied by Alice waits (the request's Ready message)",
        &message,
    );
    flow.env
        .requests
        .delete(by_hand, &Default::default())
        .await
        .unwrap();
    flow.env.wait_gone(by_hand).await;
}

/// A forced reconcile of every Kustomization after `revision` was applied: Flux dry-runs its
/// apply of every request it holds, finds no drift (the requester and finalizer stamped at
/// create are owned by no field manager, so its apply neither removes them nor trips the
/// spec's immutability rule), and leaves the requests as they were.
async fn flux_reapplies_without_a_fight(flow: &mut Flow, revision: &str) {
    let mut before: Vec<ActorTokenRequest> = Vec::new();
    for p in flow.pipelines.clone() {
        for base in ["ticket-1", "reviewed"] {
            before.push(flow.request(&p.request_name(base)).await.unwrap());
        }
    }
    let log_from = flow.flux.kustomize.output().len();
    let token = format!("reapply-{revision}");
    let asked = Instant::now();
    flow.request_reconcile(&token).await;
    let checked = flow
        .wait_all("a forced reconcile", |_, k| {
            (k.last_handled_reconcile_at == token).then(|| k.clone())
        })
        .await;
    for (p, (k, at)) in flow.pipelines.clone().iter().zip(checked) {
        assert!(
            k.ready_at(revision),
            "{}: the re-apply found no drift and no error: {k:?}",
            p.name
        );
        flow.report.figure(
            "2",
            "forced reconcile (re-apply) → Ready, nothing changed",
            p.health,
            at - asked,
        );
    }
    for old in before {
        let name = old.metadata.name.clone().unwrap();
        let now = flow.request(&name).await.unwrap();
        assert_eq!(
            now.metadata.resource_version, old.metadata.resource_version,
            "{name}: the re-apply wrote nothing"
        );
        assert_eq!(requester(&now), requester(&old), "{name}: the requester");
        assert_eq!(
            now.metadata.finalizers, old.metadata.finalizers,
            "{name}: the finalizer"
        );
        assert!(
            !now.metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .is_empty(),
            "{name} has the operator's finalizer"
        );
    }
    // kustomize-controller's own account of the re-apply: every request "unchanged".
    let log = flow.flux.kustomize.output();
    let namespace = flow.env.ns.name.clone();
    for p in flow.pipelines.clone() {
        let line = log[log_from..]
            .lines()
            .rfind(|l| l.contains("server-side apply completed") && l.contains(&p.name))
            .unwrap_or_else(|| {
                panic!(
                    "kustomize-controller logged no apply for {} after the forced reconcile:\n{}",
                    p.name,
                    &log[log_from..]
                )
            });
        for base in ["ticket-1", "reviewed"] {
            let unchanged = format!(
                "\"ActorTokenRequest/{namespace}/{}\":\"unchanged\"",
                p.request_name(base)
            );
            assert!(line.contains(&unchanged), "{unchanged} in: {line}");
        }
        let output = line
            .find("\"output\":")
            .map(|at| &line[at..])
            .and_then(|rest| rest.find('}').map(|end| &rest[..=end]))
            .unwrap_or(line);
        flow.report.evidence(
            "2",
            "kustomize-controller's log of the forced re-apply",
            p.health,
            output,
        );
    }
}

/// Step 3 (the approver's half). A request through an instance with no exemption keeps the
/// Kustomization's health check in progress while it awaits approval; once an approver
/// denies it, the Kustomization fails at once, before its timeout. As for a request Clerk
/// refused, Flux's message names the request and its status ('Failed'), not the denial: the
/// reason and who denied are on the request. Deleting the file clears it.
pub async fn denied_request_fails_fast(flow: &mut Flow) {
    let file = RequestFile::new(
        "user_2abcImpersonated",
        "1h",
        "https://tickets.example.com/5",
    )
    .through(STRICT_INSTANCE);
    flow.write_request("denied", &file);
    let merged = flow.merge("Ticket 5: needs an approver").await;
    let revision = merged.commit.revision.clone();
    let namespace = flow.env.ns.name.clone();

    let checking = flow
        .wait_all(
            "the Kustomizations to check health while the request awaits approval",
            |p, k| {
                assert!(
                    !k.ready_at(&revision),
                    "{} is Ready before anyone approved",
                    p.name
                );
                k.checking_health_at(&revision).map(str::to_owned)
            },
        )
        .await;
    people::may_approve(&namespace, BOB, STRICT_INSTANCE);
    let mut decided = Vec::new();
    for (p, (message, _)) in flow.pipelines.clone().iter().zip(checking) {
        let name = p.request_name("denied");
        let request = flow
            .wait_request(&name, "to await approval", |r| {
                ready_reason(r).as_deref() == Some(AWAITING_APPROVAL)
            })
            .await;
        assert_eq!(
            requester(&request),
            Some(flow.flux.kustomize_identity.as_str()),
            "{name}: Flux is the requester"
        );
        let k = flow.kustomization(p).await;
        assert!(
            k.checking_health_at(&revision).is_some(),
            "{} still waits on {name} awaiting approval: {k:?}",
            p.name
        );
        flow.report.evidence(
            "3",
            "awaiting approval: the Kustomization's Reconciling message",
            p.health,
            &message,
        );
        flow.report.evidence(
            "3",
            "awaiting approval: the request's Ready message",
            p.health,
            &condition_message(&request, "Ready").unwrap(),
        );
        decided.push(Instant::now());
        people::deny(BOB, &namespace, &name, "no customer consent on the ticket")
            .unwrap_or_else(|e| panic!("Bob denies {name}: {e}"));
    }

    let failed = flow
        .wait_all("the Kustomizations to fail on the denied request", |p, k| {
            let c = k.failed_at(&revision, "HealthCheckFailed")?;
            let stalled = format!(
                "failed early due to stalled resources: [ActorTokenRequest/{namespace}/{} status: 'Failed']",
                p.request_name("denied")
            );
            c.message.contains(&stalled).then(|| c.message.clone())
        })
        .await;
    for ((p, (message, at)), denied_at) in flow.pipelines.clone().iter().zip(failed).zip(decided) {
        let name = p.request_name("denied");
        // Flux says which request and that it failed; the denial itself is on the request.
        assert!(
            !message.contains(BOB),
            "Flux's message now carries the denial: update README's table: {message}"
        );
        let request = flow.request(&name).await.unwrap();
        assert_eq!(request.phase(), Some(Phase::Denied), "{name}");
        let status = request.status.as_ref().unwrap();
        assert_eq!(
            status.decided_by.as_ref().map(|u| u.username.as_str()),
            Some(BOB),
            "{name}: the API server stamped who denied"
        );
        assert_eq!(token_id(&request), None, "{name}");
        assert!(minted_for(flow, &name).is_empty(), "{name}: nothing minted");
        let stalled = condition_message(&request, "Stalled").expect("a Stalled condition");
        assert!(
            stalled.contains(&format!("Denied by {BOB}")),
            "{name}: {stalled}"
        );
        flow.report.figure(
            "3",
            "denied → Kustomization failed",
            p.health,
            at - denied_at,
        );
        flow.report
            .evidence("3", "denied: the Kustomization", p.health, &message);
        flow.report.evidence(
            "3",
            "denied: the request's Stalled message",
            p.health,
            &stalled,
        );
    }

    flow.remove_request("denied");
    let merged = flow.merge("Ticket 5: withdrawn").await;
    let revision = merged.commit.revision.clone();
    flow.wait_all("the Kustomizations to recover", |_, k| {
        k.ready_at(&revision).then_some(())
    })
    .await;
    for p in flow.pipelines.clone() {
        let name = p.request_name("denied");
        assert!(flow.request(&name).await.is_none(), "{name} is pruned");
    }
}
