//! How the issue sequence (create, deliver, mark issued) goes on once an answer is in:
//! Clerk's to the create, the API server's to the Secret's write. Each branch could cost a
//! user a token (one left live, or minted twice), so each is decided here, not in the
//! adapter that carries it out.

use super::SecretState;
use crate::clerk::ClerkError;

/// After a create that didn't give a usable token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterCreateFailure {
    /// Clerk refused the request itself: sending it again gets the same answer. Fail the
    /// request, once, with Clerk's words.
    Fail,
    /// Clerk made a token but its answer can't be used (no link in it); its ID is known:
    /// revoke it, then try again.
    RevokeUnusable { token_id: String },
    /// A token may exist that nobody can name, so nobody can revoke: count it (status,
    /// metric, event), then try again.
    CountLost,
    /// Nothing was made: show why the request waits, and try again.
    Retry,
}

pub fn after_create_failure(error: &ClerkError) -> AfterCreateFailure {
    if error.is_final() {
        return AfterCreateFailure::Fail;
    }
    if !error.outcome_unknown() {
        return AfterCreateFailure::Retry;
    }
    match error.token_id() {
        Some(token_id) => AfterCreateFailure::RevokeUnusable {
            token_id: token_id.to_owned(),
        },
        None => AfterCreateFailure::CountLost,
    }
}

/// What became of the write of a freshly minted token's Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Created, or written over a Secret of this request's that held no token.
    Written,
    /// The name is taken by a Secret that isn't this request's.
    NameTaken,
    /// This request's Secret already holds another token's link: a second operator
    /// delivered first.
    HoldsAnotherToken,
    /// The write failed; `found` is the Secret as read again afterwards (the write may have
    /// happened all the same), or `None` when it couldn't be read either. `for_good`: the
    /// API server refused the Secret itself (see [`refusal_is_final`]).
    Failed {
        found: Option<SecretState>,
        for_good: bool,
    },
}

/// Will the API server refuse this Secret again, however often it is sent? Yes for an
/// invalid Secret (400, 422: a label value, say), one that admission turns away (403: a quota,
/// a policy engine, a namespace being deleted) or one too large (413). No for a conflict,
/// a timeout, throttling or a server error. Minting on after such a refusal only makes tokens
/// that reach no one.
pub fn refusal_is_final(http_status: u16) -> bool {
    matches!(http_status, 400 | 403 | 413 | 422)
}

/// How to go on after delivering the token `minted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterDelivery {
    /// The link is in the Secret, the token's record: mark the request issued.
    MarkIssued,
    /// Someone else's Secret has the name: revoke the token (its link reached nobody) and
    /// fail the request, saying whose name is taken.
    RevokeAndFailConflict,
    /// Another token of this request was delivered first: revoke this one, then decide
    /// again on the request as it now is.
    RevokeAndDecideAgain,
    /// The link reached nobody: revoke the token, show why the request waits, retry.
    RevokeAndRetry,
    /// The API server will never take this Secret: revoke the token and fail the request,
    /// saying what was refused. One token minted and revoked, not one per retry.
    RevokeAndFailRefused,
    /// Nobody can tell whether the link reached the Secret: set the token aside for
    /// revoking (which also deletes the Secret if it did), and retry.
    SetAside,
}

pub fn after_delivery(delivery: &Delivery, minted: &str) -> AfterDelivery {
    match delivery {
        Delivery::Written => AfterDelivery::MarkIssued,
        Delivery::NameTaken => AfterDelivery::RevokeAndFailConflict,
        Delivery::HoldsAnotherToken => AfterDelivery::RevokeAndDecideAgain,
        Delivery::Failed {
            found: Some(SecretState::Ours {
                delivered: Some(found),
            }),
            ..
        } if found.token_id == minted => AfterDelivery::MarkIssued,
        Delivery::Failed {
            found: Some(_),
            for_good: true,
        } => AfterDelivery::RevokeAndFailRefused,
        Delivery::Failed { found: Some(_), .. } => AfterDelivery::RevokeAndRetry,
        Delivery::Failed { found: None, .. } => AfterDelivery::SetAside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::decide::DeliveredToken;

    #[test]
    fn a_refused_create_fails_and_an_outage_retries() {
        let rejected = ClerkError::Rejected {
            status: 422,
            code: "form_param_value_invalid".into(),
            message: "no such user".into(),
        };
        assert_eq!(after_create_failure(&rejected), AfterCreateFailure::Fail);
        for retried in [
            ClerkError::Unavailable {
                status: Some(503),
                detail: String::new(),
            },
            ClerkError::Unauthorized { status: 401 },
            ClerkError::RateLimited { retry_after: None },
            // A non-2xx answer nobody understands made nothing.
            ClerkError::InvalidAnswer {
                status: 302,
                detail: String::new(),
                token_id: None,
            },
        ] {
            assert_eq!(
                after_create_failure(&retried),
                AfterCreateFailure::Retry,
                "{retried:?}"
            );
        }
    }

    #[test]
    fn a_token_that_may_exist_is_revoked_if_named_and_counted_if_not() {
        let unusable = ClerkError::InvalidAnswer {
            status: 200,
            detail: "no url".into(),
            token_id: Some("act_1".into()),
        };
        assert_eq!(
            after_create_failure(&unusable),
            AfterCreateFailure::RevokeUnusable {
                token_id: "act_1".into()
            }
        );
        let lost = ClerkError::AnswerLost {
            detail: "reset".into(),
        };
        assert_eq!(after_create_failure(&lost), AfterCreateFailure::CountLost);
        let nameless = ClerkError::InvalidAnswer {
            status: 201,
            detail: String::new(),
            token_id: None,
        };
        assert_eq!(
            after_create_failure(&nameless),
            AfterCreateFailure::CountLost
        );
    }

    fn ours(token: &str) -> Option<SecretState> {
        Some(SecretState::Ours {
            delivered: Some(DeliveredToken {
                token_id: token.into(),
                issued_at: None,
                expires_at: None,
                key: None,
                seal: None,
            }),
        })
    }

    fn failed(found: Option<SecretState>) -> Delivery {
        Delivery::Failed {
            found,
            for_good: false,
        }
    }

    #[test]
    fn a_written_link_is_marked_issued_and_any_other_token_is_revoked() {
        assert_eq!(
            after_delivery(&Delivery::Written, "act_1"),
            AfterDelivery::MarkIssued
        );
        assert_eq!(
            after_delivery(&Delivery::NameTaken, "act_1"),
            AfterDelivery::RevokeAndFailConflict
        );
        assert_eq!(
            after_delivery(&Delivery::HoldsAnotherToken, "act_1"),
            AfterDelivery::RevokeAndDecideAgain
        );
    }

    #[test]
    fn a_failed_write_is_judged_by_what_the_secret_holds_after() {
        // The write happened after all: the Secret is the record.
        assert_eq!(
            after_delivery(&failed(ours("act_1")), "act_1"),
            AfterDelivery::MarkIssued
        );
        for found in [
            ours("act_0"),
            Some(SecretState::Absent),
            Some(SecretState::Foreign),
            Some(SecretState::Ours { delivered: None }),
        ] {
            assert_eq!(
                after_delivery(&failed(found.clone()), "act_1"),
                AfterDelivery::RevokeAndRetry,
                "{found:?}"
            );
        }
        assert_eq!(
            after_delivery(&failed(None), "act_1"),
            AfterDelivery::SetAside
        );
    }

    #[test]
    fn a_secret_the_api_server_refuses_for_good_fails_after_one_token() {
        let refused = |found| Delivery::Failed {
            found,
            for_good: true,
        };
        assert_eq!(
            after_delivery(&refused(Some(SecretState::Absent)), "act_1"),
            AfterDelivery::RevokeAndFailRefused
        );
        // Written after all: the refusal was of a retry, not of the Secret.
        assert_eq!(
            after_delivery(&refused(ours("act_1")), "act_1"),
            AfterDelivery::MarkIssued
        );
        // Nobody can tell where the link went: set aside, as for any failure.
        assert_eq!(
            after_delivery(&refused(None), "act_1"),
            AfterDelivery::SetAside
        );
        for status in [400, 403, 413, 422] {
            assert!(refusal_is_final(status), "{status}");
        }
        for status in [404, 409, 410, 429, 500, 503, 504] {
            assert!(!refusal_is_final(status), "{status}");
        }
    }
}
