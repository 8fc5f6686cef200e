//! What a revoke's answer proves, when the operator may stop trying, and which sessions go
//! with a revoked token: the decisions that keep a live link, or a live impersonation, from
//! being forgotten.
//!
//! A token may be let go only when it is certainly dead: Clerk revoked it, said it is not
//! pending any more (used, revoked or expired), or said through the very key that made it
//! that it doesn't know it; or its `expiresAt` has passed. An instance or key that can't be
//! read just now, or a "not found" through another key, proves nothing: try again.

use k8s_openapi::jiff::Timestamp;

use super::{SecretState, Sweep};
use crate::clerk::{KeyFingerprint, RevokeOutcome};

/// What is known of a token once the operator is done with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenEnd {
    /// Clerk revoked it while pending: its link was never used.
    RevokedUnused,
    /// Clerk can't revoke it: not pending any more (its link was used, or it had expired or
    /// been revoked), or unknown to the key that made it. A session it opened may be live.
    NotRevocable,
    /// Clerk couldn't confirm, but the token has expired: dead anyway. Whether its link was
    /// used is unknown.
    Expired,
}

/// How a revoke attempt ended for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is dead; done with it.
    Done(TokenEnd),
    /// Not proven dead: keep it recorded and try again.
    KeepTrying(Unconfirmed),
}

/// Why a revoke proved nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unconfirmed {
    /// Clerk, or the instance and its key, couldn't be reached or read.
    Unreachable,
    /// Clerk said "not found" through a key other than the one that made the token: the
    /// instance now points elsewhere.
    OtherKey {
        issued_by: KeyFingerprint,
        asked_with: KeyFingerprint,
    },
}

/// Judges a revoke of a token that expires at `expires_at`, made by key `issued_by` (`None`:
/// recorded before keys were), sent through `asked_with`: `answer` is Clerk's answer, or
/// `None` when no answer came (Clerk, the instance or its key couldn't be reached).
pub fn judge(
    answer: Option<RevokeOutcome>,
    issued_by: Option<KeyFingerprint>,
    asked_with: Option<KeyFingerprint>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    let unconfirmed = match answer {
        Some(RevokeOutcome::Revoked) => return Verdict::Done(TokenEnd::RevokedUnused),
        Some(RevokeOutcome::NotPending) => return Verdict::Done(TokenEnd::NotRevocable),
        Some(RevokeOutcome::NotFound) => match (issued_by, asked_with) {
            (Some(issued_by), Some(asked_with)) if issued_by != asked_with => {
                Unconfirmed::OtherKey {
                    issued_by,
                    asked_with,
                }
            }
            _ => return Verdict::Done(TokenEnd::NotRevocable),
        },
        None => Unconfirmed::Unreachable,
    };
    if expires_at.is_some_and(|at| now >= at) {
        Verdict::Done(TokenEnd::Expired)
    } else {
        Verdict::KeepTrying(unconfirmed)
    }
}

/// Must the sessions be looked for, after the token ended as `end` (`None`: there was no
/// token to revoke)?
pub fn sweep_needed(sweep: &Sweep, end: Option<TokenEnd>, now: Timestamp) -> bool {
    if now >= sweep.until {
        return false;
    }
    !(sweep.unless_unused && end == Some(TokenEnd::RevokedUnused))
}

/// May a sweep that fails be given up? Only once every session it looks for has ended on
/// its own.
pub fn may_give_up_sweep(sweep: &Sweep, now: Timestamp) -> bool {
    now >= sweep.until
}

/// After revoking the tokens set aside: does the request's Secret go too? Yes when it is
/// ours and holds the link of a token just revoked, so that a dead link is never marked
/// issued; never when it is someone else's.
pub fn secret_goes_with(secret: &SecretState, revoked: &[String]) -> bool {
    matches!(
        secret,
        SecretState::Ours { delivered: Some(delivered) } if revoked.contains(&delivered.token_id)
    )
}

/// What became of a request's token and sessions, in words for its status and events.
/// `ended`: sessions ended now (`None`: none were looked for).
pub fn describe(token_id: Option<&str>, end: Option<TokenEnd>, ended: Option<u32>) -> String {
    let token = token_id.map_or_else(|| "The token".to_owned(), |id| format!("Token {id}"));
    let sessions = match ended {
        None | Some(0) => String::new(),
        Some(1) => " 1 session it opened was ended.".to_owned(),
        Some(n) => format!(" {n} sessions it opened were ended."),
    };
    let no_sessions = if ended == Some(0) {
        " No session it opened is active."
    } else {
        ""
    };
    match end {
        Some(TokenEnd::RevokedUnused) => format!("{token} was revoked; its link was never used."),
        Some(TokenEnd::NotRevocable) => format!(
            "{token} could not be revoked any more: its link was used (or it had expired).{sessions}{no_sessions}"
        ),
        Some(TokenEnd::Expired) => format!(
            "{token} has expired; Clerk could not confirm a revoke before then.{sessions}{no_sessions}"
        ),
        None if ended.is_some() => format!("No token was live.{sessions}{no_sessions}"),
        None => "No token was live.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::decide::DeliveredToken;

    const NOW: i64 = 1_800_000_000;

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(NOW + offset).unwrap()
    }

    fn key(n: u8) -> Option<KeyFingerprint> {
        Some(format!("{n:016x}").parse().unwrap())
    }

    #[test]
    fn clerks_answer_ends_a_token_only_when_it_proves_it_dead() {
        let judge_now = |answer, issued_by, asked_with| {
            judge(answer, issued_by, asked_with, Some(at(600)), at(0))
        };
        assert_eq!(
            judge_now(Some(RevokeOutcome::Revoked), key(1), key(1)),
            Verdict::Done(TokenEnd::RevokedUnused)
        );
        assert_eq!(
            judge_now(Some(RevokeOutcome::NotPending), key(1), key(1)),
            Verdict::Done(TokenEnd::NotRevocable)
        );
        assert_eq!(
            judge_now(Some(RevokeOutcome::NotFound), key(1), key(1)),
            Verdict::Done(TokenEnd::NotRevocable)
        );
        // A record from before keys were recorded: "not found" is taken as before.
        assert_eq!(
            judge_now(Some(RevokeOutcome::NotFound), None, key(1)),
            Verdict::Done(TokenEnd::NotRevocable)
        );
    }

    #[test]
    fn not_found_through_another_key_proves_nothing() {
        assert_eq!(
            judge(
                Some(RevokeOutcome::NotFound),
                key(1),
                key(2),
                Some(at(600)),
                at(0)
            ),
            Verdict::KeepTrying(Unconfirmed::OtherKey {
                issued_by: key(1).unwrap(),
                asked_with: key(2).unwrap()
            })
        );
        // Until the token is dead anyway.
        assert_eq!(
            judge(
                Some(RevokeOutcome::NotFound),
                key(1),
                key(2),
                Some(at(600)),
                at(600)
            ),
            Verdict::Done(TokenEnd::Expired)
        );
    }

    #[test]
    fn no_answer_is_a_retry_until_expiry_never_a_release() {
        assert_eq!(
            judge(None, key(1), None, Some(at(600)), at(599)),
            Verdict::KeepTrying(Unconfirmed::Unreachable)
        );
        assert_eq!(
            judge(None, key(1), None, Some(at(600)), at(600)),
            Verdict::Done(TokenEnd::Expired)
        );
        // An expiry nobody knows never comes.
        assert_eq!(
            judge(None, None, None, None, at(1_000_000)),
            Verdict::KeepTrying(Unconfirmed::Unreachable)
        );
    }

    #[test]
    fn sessions_are_looked_for_unless_the_only_link_was_never_used() {
        let sweep = Sweep {
            until: at(600),
            unless_unused: true,
        };
        assert!(!sweep_needed(&sweep, Some(TokenEnd::RevokedUnused), at(0)));
        assert!(sweep_needed(&sweep, Some(TokenEnd::NotRevocable), at(0)));
        assert!(sweep_needed(&sweep, Some(TokenEnd::Expired), at(0)));
        assert!(sweep_needed(&sweep, None, at(0)));
        // Other tokens of the request may have been used.
        let any = Sweep {
            until: at(600),
            unless_unused: false,
        };
        assert!(sweep_needed(&any, Some(TokenEnd::RevokedUnused), at(0)));
        // Every session has ended on its own by `until`.
        assert!(!sweep_needed(&any, None, at(600)));
        assert!(!may_give_up_sweep(&any, at(599)));
        assert!(may_give_up_sweep(&any, at(600)));
    }

    #[test]
    fn a_secret_goes_with_its_revoked_token_only() {
        let holding = |token: &str| SecretState::Ours {
            delivered: Some(DeliveredToken {
                token_id: token.into(),
                issued_at: None,
                expires_at: None,
                key: None,
                seal: None,
            }),
        };
        let revoked = vec!["act_1".to_owned()];
        assert!(secret_goes_with(&holding("act_1"), &revoked));
        assert!(!secret_goes_with(&holding("act_2"), &revoked));
        assert!(!secret_goes_with(&holding("act_1"), &[]));
        assert!(!secret_goes_with(
            &SecretState::Ours { delivered: None },
            &revoked
        ));
        assert!(!secret_goes_with(&SecretState::Foreign, &revoked));
        assert!(!secret_goes_with(&SecretState::Absent, &revoked));
    }

    #[test]
    fn what_happened_is_said_as_it_was() {
        assert_eq!(
            describe(Some("act_1"), Some(TokenEnd::RevokedUnused), None),
            "Token act_1 was revoked; its link was never used."
        );
        assert_eq!(
            describe(Some("act_1"), Some(TokenEnd::NotRevocable), Some(2)),
            "Token act_1 could not be revoked any more: its link was used (or it had expired). 2 sessions it opened were ended."
        );
        assert_eq!(
            describe(Some("act_1"), Some(TokenEnd::NotRevocable), Some(0)),
            "Token act_1 could not be revoked any more: its link was used (or it had expired). No session it opened is active."
        );
        assert_eq!(
            describe(Some("act_1"), Some(TokenEnd::Expired), Some(1)),
            "Token act_1 has expired; Clerk could not confirm a revoke before then. 1 session it opened was ended."
        );
        assert_eq!(describe(None, None, None), "No token was live.");
        // Never "revoked" for a token that wasn't.
        for end in [TokenEnd::NotRevocable, TokenEnd::Expired] {
            assert!(!describe(Some("act_1"), Some(end), None).contains("was revoked"));
        }
    }
}
