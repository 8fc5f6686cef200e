//! What a revoke's answer proves, and when the operator may stop trying: the decisions that
//! keep a live link from being forgotten.

use k8s_openapi::jiff::Timestamp;

use super::SecretState;

/// When revoking fails, may the operator stop trying? Only once the token is dead anyway
/// (past its expiry), or when nothing could ever revoke it (no client for its instance).
/// Before that, holding on is what keeps a live link accounted for.
pub fn may_give_up_revoking(
    expires_at: Option<Timestamp>,
    now: Timestamp,
    instance_reachable: bool,
) -> bool {
    !instance_reachable || expires_at.is_some_and(|at| now >= at)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::decide::DeliveredToken;

    const NOW: i64 = 1_800_000_000;

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(NOW + offset).unwrap()
    }

    #[test]
    fn giving_up_on_a_revoke_waits_for_expiry_unless_nothing_can_revoke() {
        assert!(!may_give_up_revoking(Some(at(10)), at(0), true));
        assert!(may_give_up_revoking(Some(at(10)), at(10), true));
        assert!(may_give_up_revoking(Some(at(10)), at(0), false));
        assert!(!may_give_up_revoking(None, at(0), true));
    }

    #[test]
    fn a_secret_goes_with_its_revoked_token_only() {
        let holding = |token: &str| SecretState::Ours {
            delivered: Some(DeliveredToken {
                token_id: token.into(),
                issued_at: None,
                expires_at: None,
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
}
