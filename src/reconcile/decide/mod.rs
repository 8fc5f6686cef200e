//! What should happen to a request now? Pure: from the request as last seen, what was observed
//! of its Secret, and the time, to one next [`Step`]. No I/O and no clock reads, so every case
//! that could cost a user a token (two tokens for one request, a revoke skipped, a Secret
//! clobbered) is a unit test of a few lines.
//!
//! Beside `decide`, the decisions taken halfway through a step, once an answer is in: how the
//! issue sequence goes on after Clerk's answer and the Secret's write (`issue`), what a
//! revoke's answer proves and when to stop trying (`revoke`), what Clerk may be asked for
//! (`plan`), and when to try again after an error (`retry`).

pub mod issue;
pub mod plan;
pub mod retry;
pub mod revoke;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub use self::plan::{Limits, plan_token};
use crate::{
    api::{ActorTokenRequest, FINALIZER, InstanceKind, Phase, duration::MAX_DURATION},
    clerk::KeyFingerprint,
};

/// The most tokens one request may ever mint, whatever goes wrong: each one minted and not
/// delivered widens the window in which a live token is recorded nowhere.
pub const MAX_TOKENS_PER_REQUEST: u32 = 3;

/// What the operator found of the Secret a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    Absent,
    /// Written by the operator for this very request (its controller ownerReference points at
    /// the request's UID); `delivered` is the token whose link it holds, if its record is the
    /// operator's own (sealed).
    Ours {
        delivered: Option<DeliveredToken>,
    },
    /// Someone else's Secret, or one claiming to be this request's with a token record the
    /// operator didn't write: never overwritten, adopted or deleted.
    Foreign,
}

/// A token whose link reached the request's Secret. The Secret is the token's durable record:
/// it is written before the status says `Issued`, so a restart in between finds it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredToken {
    pub token_id: String,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// The key that issued it.
    pub key: Option<KeyFingerprint>,
    /// The operator's seal on this record, carried to the status with it.
    pub seal: Option<String>,
}

impl DeliveredToken {
    pub fn to_revoke(&self) -> TokenToRevoke {
        TokenToRevoke {
            token_id: self.token_id.clone(),
            expires_at: self.expires_at,
            key: self.key,
            seal: self.seal.clone(),
        }
    }
}

/// The next step for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do; look again at `until` (the link's expiry) if given. A settled request
    /// costs no call and no write.
    Wait { until: Option<Timestamp> },
    /// Add the finalizer first, so that no token is ever minted for an object that could
    /// vanish without its token being revoked.
    AddFinalizer,
    /// The status holds token records the operator didn't write (their seal doesn't check):
    /// drop them, say so, and revoke nothing on their word.
    DropUntrusted,
    /// Mint a token and deliver its link in the Secret (which records it), then mark the
    /// request issued.
    Issue,
    /// The request names a Secret that isn't ours: fail before minting anything.
    FailSecretConflict,
    /// The request has minted all the tokens it may: fail instead of minting again.
    FailMintLimit,
    /// A token's link is in the Secret but the status doesn't say so yet (the process stopped
    /// in between, or a second operator delivered first): record it and mark the request
    /// issued.
    MarkIssued(DeliveredToken),
    /// A token recorded in the status whose link is not in the Secret (left by an operator
    /// version that recorded tokens before delivering them): set it aside for revoking
    /// (`status.pendingRevokes`), then issue a new one. Set aside with a conditional write, not
    /// revoked outright: another operator may be delivering it this very moment, and then its
    /// write wins, not ours.
    RevokeUndelivered(TokenToRevoke),
    /// Tokens set aside for revoking go first, whatever the phase.
    RevokePending,
    /// The link's time is up: revoke the token if still unused, delete the Secret.
    Expire {
        token: Option<TokenToRevoke>,
        delete_secret: bool,
    },
    /// Someone deleted the Secret of an issued request: revoke the token, and end the
    /// sessions it opened. A new link is a new request, so none is minted.
    RevokeForDeletedSecret {
        token: Option<TokenToRevoke>,
        sweep: Option<Sweep>,
    },
    /// The request is being deleted: revoke its token if it may still be live, end the
    /// sessions its tokens opened, delete its Secret, and let the object go.
    Finalize {
        revoke: Option<TokenToRevoke>,
        sweep: Option<Sweep>,
        delete_secret: bool,
    },
}

/// A token that may be live: what it takes to revoke it, and when it dies anyway (after
/// which a revoke that keeps failing may be given up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenToRevoke {
    pub token_id: String,
    pub expires_at: Option<Timestamp>,
    /// The key that issued it: only that key's "not found" proves it gone.
    pub key: Option<KeyFingerprint>,
    /// The operator's seal on its record, kept with it when it is set aside.
    pub seal: Option<String>,
}

/// Impersonation sessions a request's tokens may have opened, to be ended when it is revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// By then every such session has ended on its own (its token's expiry plus the longest
    /// a session may last): a sweep Clerk can't answer may be given up.
    pub until: Timestamp,
    /// Skip it when the revoke just made shows the link was never used: this request minted
    /// no other token.
    pub unless_unused: bool,
}

/// The next step for `request`. `untrusted`: its status holds token records whose seal
/// doesn't check (see `seal`); `request` is the request without them.
pub fn decide(
    request: &ActorTokenRequest,
    secret: &SecretState,
    untrusted: bool,
    now: Timestamp,
) -> Step {
    let status = request.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(Phase::Pending);
    let expires_at = status.expires_at.as_ref().map(|t| t.0);
    let expired = expires_at.is_some_and(|at| now >= at);
    let ours = matches!(secret, SecretState::Ours { .. });
    let delivered = match secret {
        SecretState::Ours { delivered } => delivered.as_ref(),
        _ => None,
    };
    let recorded = status.token_id.clone().map(|token_id| TokenToRevoke {
        token_id,
        expires_at,
        key: status
            .key_fingerprint
            .as_deref()
            .and_then(|k| k.parse().ok()),
        seal: status.token_seal.clone(),
    });
    let revokes_pending = !status.pending_revokes.is_empty();

    if request.metadata.deletion_timestamp.is_some() {
        if !has_finalizer(request) {
            return Step::Wait { until: None };
        }
        if untrusted {
            return Step::DropUntrusted;
        }
        if revokes_pending {
            return Step::RevokePending;
        }
        // Revoked, expired or failed requests have no live token. A pending or issued one
        // may, even past its expiry by our clock: revoking answers for sure, and if Clerk
        // can't be reached by then, `revoke::judge` lets go with a warning. A pending
        // request's token may be recorded in its Secret alone.
        let may_be_live = matches!(phase, Phase::Pending | Phase::Issued);
        let revoke = recorded
            .or_else(|| delivered.map(DeliveredToken::to_revoke))
            .filter(|_| may_be_live);
        let sweep = sweep(request, revoke.as_ref(), now);
        return Step::Finalize {
            revoke,
            sweep,
            delete_secret: ours,
        };
    }
    if !has_finalizer(request) {
        return Step::AddFinalizer;
    }
    if untrusted {
        return Step::DropUntrusted;
    }
    if revokes_pending {
        return Step::RevokePending;
    }
    match phase {
        Phase::Expired | Phase::Revoked | Phase::Failed | Phase::Denied => {
            Step::Wait { until: None }
        }
        Phase::Issued if expired => Step::Expire {
            token: recorded,
            delete_secret: ours,
        },
        Phase::Issued if ours => Step::Wait { until: expires_at },
        Phase::Issued => {
            let sweep = sweep(request, recorded.as_ref(), now);
            Step::RevokeForDeletedSecret {
                token: recorded,
                sweep,
            }
        }
        Phase::Pending => match (recorded, delivered) {
            // The Secret is the record: finish what was started.
            (None, Some(delivered)) => settle_delivered(delivered.clone(), now),
            (Some(recorded), Some(delivered)) if recorded.token_id == delivered.token_id => {
                settle_delivered(delivered.clone(), now)
            }
            (Some(recorded), _) => Step::RevokeUndelivered(recorded),
            (None, None) if matches!(secret, SecretState::Foreign) => Step::FailSecretConflict,
            (None, None) if tokens_minted(request) >= MAX_TOKENS_PER_REQUEST => Step::FailMintLimit,
            (None, None) => Step::Issue,
        },
    }
}

/// Tokens the request has minted: as counted in its status, or, for a request from before
/// the count, one if it records a token.
pub fn tokens_minted(request: &ActorTokenRequest) -> u32 {
    let status = request.status.as_ref();
    match status.and_then(|s| s.tokens_minted) {
        Some(n) => n,
        None => u32::from(status.is_some_and(|s| s.token_id.is_some())),
    }
}

/// Which sessions revoking `request` (with `revoke`, its token that may be live) must look
/// for: none for a request that never minted, failed before delivering, or was revoked
/// already (its sessions were ended then), nor once every session it could have opened has
/// ended on its own.
fn sweep(
    request: &ActorTokenRequest,
    revoke: Option<&TokenToRevoke>,
    now: Timestamp,
) -> Option<Sweep> {
    let status = request.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Pending);
    let minted = tokens_minted(request).max(u32::from(revoke.is_some()));
    if minted == 0 || matches!(phase, Phase::Failed | Phase::Revoked) {
        return None;
    }
    let session_max = request
        .spec
        .session_max_duration
        .to_duration()
        .unwrap_or(MAX_DURATION);
    let created = request
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let last_expiry = revoke
        .and_then(|t| t.expires_at)
        .or_else(|| status.and_then(|s| s.expires_at.as_ref()).map(|t| t.0))
        .unwrap_or_else(|| created + signed(MAX_DURATION));
    let until = last_expiry + signed(session_max);
    (now < until).then_some(Sweep {
        until,
        unless_unused: minted == 1 && revoke.is_some(),
    })
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

/// A delivered token not yet marked issued: mark it, or if its time is already up, expire it.
fn settle_delivered(delivered: DeliveredToken, now: Timestamp) -> Step {
    if delivered.expires_at.is_some_and(|at| now >= at) {
        Step::Expire {
            token: Some(delivered.to_revoke()),
            delete_secret: true,
        }
    } else {
        Step::MarkIssued(delivered)
    }
}

pub fn has_finalizer(request: &ActorTokenRequest) -> bool {
    request
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Does this request wait on the instance `kind`/`namespace`/`name`, so that a change to the
/// instance should wake it at once instead of at its next retry (which may be minutes away)?
pub fn waits_on_instance(
    request: &ActorTokenRequest,
    kind: InstanceKind,
    namespace: Option<&str>,
    name: &str,
) -> bool {
    let reference = &request.spec.instance_ref;
    let same_scope = match kind {
        InstanceKind::ClusterClerkInstance => true,
        InstanceKind::ClerkInstance => request.metadata.namespace.as_deref() == namespace,
    };
    reference.kind == kind
        && reference.name == name
        && same_scope
        && request.phase().unwrap_or(Phase::Pending) == Phase::Pending
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::api::ActorTokenRequestStatus;

    const NOW: i64 = 1_800_000_000;
    /// The default `sessionMaxDuration`, 30m.
    const SESSION: i64 = 1800;

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(NOW + offset).unwrap()
    }

    fn request() -> ActorTokenRequest {
        let mut r: ActorTokenRequest = serde_json::from_value(json!({
            "apiVersion": "actortokens.dev/v1alpha1",
            "kind": "ActorTokenRequest",
            "metadata": { "name": "support-1234", "namespace": "team", "uid": "u-1", "finalizers": [FINALIZER] },
            "spec": { "userId": "user_abc", "actor": { "sub": "user_support" } }
        }))
        .unwrap();
        r.status = Some(ActorTokenRequestStatus::default());
        r
    }

    fn with(phase: Phase, token: Option<&str>, expires: Option<i64>) -> ActorTokenRequest {
        let mut r = request();
        r.status = Some(ActorTokenRequestStatus {
            phase: Some(phase),
            token_id: token.map(String::from),
            expires_at: expires.map(|o| Time(at(o))),
            ..Default::default()
        });
        r
    }

    fn minted(mut r: ActorTokenRequest, n: u32) -> ActorTokenRequest {
        r.status.as_mut().unwrap().tokens_minted = Some(n);
        r
    }

    fn deleting(mut r: ActorTokenRequest) -> ActorTokenRequest {
        r.metadata.deletion_timestamp = Some(Time(at(-1)));
        r
    }

    fn delivered(token: &str, expires: i64) -> DeliveredToken {
        DeliveredToken {
            token_id: token.into(),
            issued_at: Some(at(expires - 3600)),
            expires_at: Some(at(expires)),
            key: None,
            seal: None,
        }
    }

    fn revoking(token: &str, expires: i64) -> Option<TokenToRevoke> {
        Some(TokenToRevoke {
            token_id: token.into(),
            expires_at: Some(at(expires)),
            key: None,
            seal: None,
        })
    }

    /// The sessions of a token expiring at `expires`, for a request that minted only it.
    fn sweep_of(expires: i64, unless_unused: bool) -> Option<Sweep> {
        Some(Sweep {
            until: at(expires + SESSION),
            unless_unused,
        })
    }

    fn ours(token: &str) -> SecretState {
        SecretState::Ours {
            delivered: Some(delivered(token, 600)),
        }
    }

    fn decide_now(r: &ActorTokenRequest, secret: &SecretState, now: Timestamp) -> Step {
        decide(r, secret, false, now)
    }

    #[test]
    fn a_new_request_gets_the_finalizer_before_anything_else() {
        let mut r = request();
        r.metadata.finalizers = None;
        assert_eq!(
            decide_now(&r, &SecretState::Absent, at(0)),
            Step::AddFinalizer
        );
        // Even a foreign Secret waits: the finalizer comes first.
        assert_eq!(
            decide_now(&r, &SecretState::Foreign, at(0)),
            Step::AddFinalizer
        );
    }

    #[test]
    fn a_pending_request_without_a_token_is_issued() {
        assert_eq!(
            decide_now(&request(), &SecretState::Absent, at(0)),
            Step::Issue
        );
        let mut no_status = request();
        no_status.status = None;
        assert_eq!(
            decide_now(&no_status, &SecretState::Absent, at(0)),
            Step::Issue
        );
    }

    #[test]
    fn a_request_that_minted_its_share_mints_no_more() {
        assert_eq!(
            decide_now(&minted(request(), 2), &SecretState::Absent, at(0)),
            Step::Issue
        );
        assert_eq!(
            decide_now(
                &minted(request(), MAX_TOKENS_PER_REQUEST),
                &SecretState::Absent,
                at(0)
            ),
            Step::FailMintLimit
        );
        // What it has delivered is still recorded, not failed.
        assert_eq!(
            decide_now(
                &minted(request(), MAX_TOKENS_PER_REQUEST),
                &ours("act_3"),
                at(0)
            ),
            Step::MarkIssued(delivered("act_3", 600))
        );
    }

    #[test]
    fn a_foreign_secret_fails_the_request_before_any_token_is_minted() {
        assert_eq!(
            decide_now(&request(), &SecretState::Foreign, at(0)),
            Step::FailSecretConflict
        );
    }

    #[test]
    fn a_secret_of_ours_holding_no_token_does_not_block_issuing() {
        let empty = SecretState::Ours { delivered: None };
        assert_eq!(decide_now(&request(), &empty, at(0)), Step::Issue);
    }

    #[test]
    fn records_the_operator_did_not_write_are_dropped_before_anything_else() {
        for r in [
            with(Phase::Issued, Some("act_1"), Some(600)),
            deleting(with(Phase::Issued, Some("act_1"), Some(600))),
            request(),
        ] {
            assert_eq!(decide(&r, &ours("act_1"), true, at(0)), Step::DropUntrusted);
        }
        // Except on a request that isn't the operator's to hold any more.
        let mut released = deleting(request());
        released.metadata.finalizers = None;
        assert_eq!(
            decide(&released, &SecretState::Absent, true, at(0)),
            Step::Wait { until: None }
        );
    }

    #[test]
    fn a_delivered_token_is_recorded_from_its_secret_not_minted_again() {
        // The process stopped between the Secret's create and the status write, or a second
        // operator delivered first: the Secret is the record.
        assert_eq!(
            decide_now(&request(), &ours("act_1"), at(0)),
            Step::MarkIssued(delivered("act_1", 600))
        );
        // Its time may have run out meanwhile: expire it instead.
        assert_eq!(
            decide_now(&request(), &ours("act_1"), at(600)),
            Step::Expire {
                token: revoking("act_1", 600),
                delete_secret: true
            }
        );
    }

    #[test]
    fn an_issued_request_with_its_secret_is_settled_until_expiry() {
        let r = with(Phase::Issued, Some("act_1"), Some(600));
        assert_eq!(
            decide_now(&r, &ours("act_1"), at(0)),
            Step::Wait {
                until: Some(at(600))
            }
        );
    }

    #[test]
    fn final_phases_are_settled_for_good() {
        for phase in [Phase::Expired, Phase::Revoked, Phase::Failed] {
            let r = with(phase, Some("act_1"), Some(-10));
            assert_eq!(
                decide_now(&r, &SecretState::Absent, at(0)),
                Step::Wait { until: None },
                "{phase:?}"
            );
        }
    }

    #[test]
    fn expiry_revokes_and_deletes_our_secret() {
        let r = with(Phase::Issued, Some("act_1"), Some(0));
        assert_eq!(
            decide_now(&r, &ours("act_1"), at(0)),
            Step::Expire {
                token: revoking("act_1", 0),
                delete_secret: true
            }
        );
        // A Secret someone else put there since is left alone.
        assert_eq!(
            decide_now(&r, &SecretState::Foreign, at(5)),
            Step::Expire {
                token: revoking("act_1", 0),
                delete_secret: false
            }
        );
    }

    #[test]
    fn a_deleted_secret_revokes_ends_the_sessions_and_mints_nothing() {
        let r = minted(with(Phase::Issued, Some("act_1"), Some(600)), 1);
        let revoke = Step::RevokeForDeletedSecret {
            token: revoking("act_1", 600),
            sweep: sweep_of(600, true),
        };
        assert_eq!(decide_now(&r, &SecretState::Absent, at(0)), revoke);
        // Replaced by someone else's Secret: ours is gone just the same.
        assert_eq!(decide_now(&r, &SecretState::Foreign, at(0)), revoke);
        // A request that minted more than one token: its sessions are looked for whatever
        // this revoke says.
        let r = minted(with(Phase::Issued, Some("act_2"), Some(600)), 2);
        assert_eq!(
            decide_now(&r, &SecretState::Absent, at(0)),
            Step::RevokeForDeletedSecret {
                token: revoking("act_2", 600),
                sweep: sweep_of(600, false),
            }
        );
    }

    #[test]
    fn a_recorded_token_whose_secret_was_written_is_marked_issued() {
        let r = with(Phase::Pending, Some("act_1"), Some(600));
        assert_eq!(
            decide_now(&r, &ours("act_1"), at(0)),
            Step::MarkIssued(delivered("act_1", 600))
        );
    }

    #[test]
    fn a_recorded_token_that_never_reached_a_secret_is_revoked_not_reused() {
        let r = with(Phase::Pending, Some("act_1"), Some(600));
        let revoke = Step::RevokeUndelivered(revoking("act_1", 600).unwrap());
        assert_eq!(decide_now(&r, &SecretState::Absent, at(0)), revoke);
        assert_eq!(decide_now(&r, &ours("act_0"), at(0)), revoke);
        assert_eq!(decide_now(&r, &SecretState::Foreign, at(0)), revoke);
    }

    #[test]
    fn deleting_revokes_a_token_that_may_be_live_and_ends_its_sessions() {
        let r = deleting(minted(with(Phase::Issued, Some("act_1"), Some(600)), 1));
        assert_eq!(
            decide_now(&r, &ours("act_1"), at(0)),
            Step::Finalize {
                revoke: revoking("act_1", 600),
                sweep: sweep_of(600, true),
                delete_secret: true
            }
        );
        let pending = deleting(with(Phase::Pending, Some("act_1"), Some(600)));
        assert_eq!(
            decide_now(&pending, &SecretState::Absent, at(0)),
            Step::Finalize {
                revoke: revoking("act_1", 600),
                sweep: sweep_of(600, true),
                delete_secret: false
            }
        );
    }

    #[test]
    fn deleting_skips_the_revoke_of_a_settled_token_and_never_touches_a_foreign_secret() {
        // Past expiry by our clock, the revoke is still tried: it confirms, or gives up.
        let expired = deleting(with(Phase::Issued, Some("act_1"), Some(-1)));
        assert_eq!(
            decide_now(&expired, &SecretState::Foreign, at(0)),
            Step::Finalize {
                revoke: revoking("act_1", -1),
                sweep: sweep_of(-1, true),
                delete_secret: false
            }
        );
        for phase in [Phase::Revoked, Phase::Failed] {
            let r = deleting(with(phase, Some("act_1"), Some(600)));
            assert_eq!(
                decide_now(&r, &SecretState::Absent, at(0)),
                Step::Finalize {
                    revoke: None,
                    sweep: None,
                    delete_secret: false
                },
                "{phase:?}"
            );
        }
        let never_issued = deleting(request());
        assert_eq!(
            decide_now(&never_issued, &SecretState::Absent, at(0)),
            Step::Finalize {
                revoke: None,
                sweep: None,
                delete_secret: false
            }
        );
    }

    #[test]
    fn deleting_an_expired_request_ends_sessions_that_may_still_run() {
        // The link expired, but a session it opened may last sessionMaxDuration more.
        let r = deleting(with(Phase::Expired, Some("act_1"), Some(-60)));
        assert_eq!(
            decide_now(&r, &SecretState::Absent, at(0)),
            Step::Finalize {
                revoke: None,
                sweep: sweep_of(-60, false),
                delete_secret: false
            }
        );
        // Once any such session has ended on its own, nothing is left to look for.
        assert_eq!(
            decide_now(&r, &SecretState::Absent, at(SESSION)),
            Step::Finalize {
                revoke: None,
                sweep: None,
                delete_secret: false
            }
        );
    }

    #[test]
    fn deleting_revokes_a_token_recorded_in_the_secret_alone() {
        // Its expiry comes from the Secret too: past it, a revoke that keeps failing may be
        // given up, so the finalizer can't hold the request for ever.
        let delivered_only = deleting(request());
        assert_eq!(
            decide_now(&delivered_only, &ours("act_1"), at(0)),
            Step::Finalize {
                revoke: revoking("act_1", 600),
                sweep: sweep_of(600, true),
                delete_secret: true
            }
        );
    }

    #[test]
    fn a_deleted_request_without_our_finalizer_is_not_ours_to_hold() {
        let mut r = deleting(with(Phase::Issued, Some("act_1"), Some(600)));
        r.metadata.finalizers = Some(vec!["someone.else/finalizer".into()]);
        assert_eq!(
            decide_now(&r, &ours("act_1"), at(0)),
            Step::Wait { until: None }
        );
    }

    #[test]
    fn tokens_set_aside_for_revoking_go_first_whatever_the_phase() {
        for phase in [Phase::Pending, Phase::Issued, Phase::Failed, Phase::Expired] {
            let mut r = with(phase, Some("act_1"), Some(600));
            r.status.as_mut().unwrap().pending_revokes = vec![crate::api::PendingRevoke {
                token_id: "act_0".into(),
                expires_at: Time(at(600)),
                key_fingerprint: None,
                seal: None,
            }];
            assert_eq!(
                decide_now(&r, &ours("act_1"), at(0)),
                Step::RevokePending,
                "{phase:?}"
            );
            // Also before a deleted request is let go.
            assert_eq!(
                decide_now(&deleting(r), &ours("act_1"), at(0)),
                Step::RevokePending,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn the_key_that_issued_a_token_goes_with_it_to_be_revoked() {
        let key: KeyFingerprint = "0123456789abcdef".parse().unwrap();
        let mut r = with(Phase::Issued, Some("act_1"), Some(600));
        let status = r.status.as_mut().unwrap();
        status.key_fingerprint = Some(key.to_string());
        status.token_seal = Some("seal".into());
        match decide_now(&deleting(r), &ours("act_1"), at(0)) {
            Step::Finalize {
                revoke: Some(token),
                ..
            } => {
                assert_eq!(token.key, Some(key));
                assert_eq!(token.seal.as_deref(), Some("seal"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_pending_requests_of_that_very_instance_wait_on_it() {
        let mut r = request();
        r.spec.instance_ref = crate::api::InstanceRef {
            kind: InstanceKind::ClerkInstance,
            name: "clerk".into(),
        };
        assert!(waits_on_instance(
            &r,
            InstanceKind::ClerkInstance,
            Some("team"),
            "clerk"
        ));
        assert!(!waits_on_instance(
            &r,
            InstanceKind::ClerkInstance,
            Some("other"),
            "clerk"
        ));
        assert!(!waits_on_instance(
            &r,
            InstanceKind::ClerkInstance,
            Some("team"),
            "other"
        ));
        assert!(!waits_on_instance(
            &r,
            InstanceKind::ClusterClerkInstance,
            None,
            "clerk"
        ));
        let issued = with(Phase::Issued, Some("act_1"), Some(600));
        assert!(!waits_on_instance(
            &issued,
            InstanceKind::ClusterClerkInstance,
            None,
            "default"
        ));
        assert!(waits_on_instance(
            &request(),
            InstanceKind::ClusterClerkInstance,
            None,
            "default"
        ));
    }
}
