//! The invariants, decided from facts only: the simulator's full list of tokens, what each
//! request's objects name, and when the operator was started and killed. Nothing here asks
//! how the operator works inside; a request *accounts for* a token if its `status.tokenId`,
//! its `status.pendingRevokes` or its own Secret's `tokenId` names it.

use std::collections::{BTreeMap, BTreeSet};

use actor_token_operator::api::Phase;
use clerk_sim::{SimToken, TokenStatus};

use super::plan::PlannedRequest;

/// What one request's objects name at one moment, and where its link points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub phase: Option<Phase>,
    /// The `Ready` condition's reason.
    pub reason: Option<String>,
    pub token_id: Option<String>,
    pub pending_revokes: Vec<String>,
    /// The token ID and link in the Secret the request owns (controller ownerReference).
    pub secret_token_id: Option<String>,
    pub secret_url: Option<String>,
    pub has_finalizer: bool,
}

impl Account {
    /// Every token these objects name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.token_id
            .iter()
            .chain(&self.pending_revokes)
            .chain(&self.secret_token_id)
            .map(String::as_str)
    }
}

/// One run of the operator process: from its start to its SIGKILL (`None`: still running).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnation {
    pub started_ms: i64,
    pub killed_ms: Option<i64>,
}

/// When a kill explains a token nobody recorded. Token `T` of request `R`, made (simulator's
/// `created_at_ms`) at `c`, is explained by the SIGKILL at `k` of the process that ran from
/// `s` if all of these hold:
///
/// - `s <= c <= k + after_kill`: that process asked for it (a create it had sent just before
///   it died is still made a moment later; the run allows 250 ms);
/// - `k - c <= before_kill`, not counting time kube-apiserver was down (no record can be
///   written then): it died while the answer was on its way or just in (the create window),
///   not long after it could have written it down;
/// - no other token of `R` was made in `(c, k]`: the process had not moved on from `T` to a
///   new token, which would mean it dropped `T` by itself.
///
/// `T` must also be named by no object of `R`, ever (else it is accounted for, not orphaned).
#[derive(Clone, Copy, Debug)]
pub struct CreateWindow {
    pub before_kill_ms: i64,
    pub after_kill_ms: i64,
}

/// A spell when kube-apiserver was down: Unix ms from its kill to its being ready again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Outage {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// How much of `from..to` no outage covers.
fn up_time(from: i64, to: i64, outages: &[Outage]) -> i64 {
    let down: i64 = outages
        .iter()
        .map(|o| (o.to_ms.min(to) - o.from_ms.max(from)).max(0))
        .sum();
    (to - from) - down
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Explanation {
    /// The simulator made the token and dropped the connection instead of answering.
    AnswerDropped,
    /// The operator was killed `gap_ms` after the token was made (negative: the create was
    /// answered just after the kill).
    Killed { killed_ms: i64, gap_ms: i64 },
}

/// Why `token` exists with nobody knowing its ID, if an injected fault explains it.
/// `same_request` holds every token of the request `token` belongs to.
pub fn explain(
    token: &SimToken,
    same_request: &[SimToken],
    incarnations: &[Incarnation],
    outages: &[Outage],
    window: CreateWindow,
) -> Option<Explanation> {
    if token.answer_dropped {
        return Some(Explanation::AnswerDropped);
    }
    let c = token.created_at_ms;
    incarnations.iter().find_map(|run| {
        let k = run.killed_ms?;
        let asked_by_it = run.started_ms <= c && c <= k + window.after_kill_ms;
        let in_window = up_time(c, k, outages) <= window.before_kill_ms;
        let moved_on = same_request.iter().any(|other| {
            other.id != token.id && c < other.created_at_ms && other.created_at_ms <= k
        });
        (asked_by_it && in_window && !moved_on).then_some(Explanation::Killed {
            killed_ms: k,
            gap_ms: k - c,
        })
    })
}

/// Live tokens no request ever named, split into explained and unexplained.
#[derive(Clone, Debug, Default)]
pub struct Orphans {
    /// token ID → (user, why)
    pub explained: BTreeMap<String, (String, Explanation)>,
    /// token ID → user
    pub unexplained: BTreeMap<String, String>,
}

impl Orphans {
    pub fn find(
        tokens: &[SimToken],
        ever_named: &BTreeSet<String>,
        incarnations: &[Incarnation],
        outages: &[Outage],
        window: CreateWindow,
    ) -> Orphans {
        let mut by_user: BTreeMap<&str, Vec<SimToken>> = BTreeMap::new();
        for token in tokens {
            by_user
                .entry(&token.user_id)
                .or_default()
                .push(token.clone());
        }
        let mut orphans = Orphans::default();
        for token in tokens {
            if token.status != TokenStatus::Pending || ever_named.contains(&token.id) {
                continue;
            }
            match explain(
                token,
                &by_user[token.user_id.as_str()],
                incarnations,
                outages,
                window,
            ) {
                Some(why) => {
                    orphans
                        .explained
                        .insert(token.id.clone(), (token.user_id.clone(), why));
                }
                None => {
                    orphans
                        .unexplained
                        .insert(token.id.clone(), token.user_id.clone());
                }
            }
        }
        orphans
    }

    pub fn dropped(&self) -> usize {
        self.explained
            .values()
            .filter(|(_, why)| *why == Explanation::AnswerDropped)
            .count()
    }

    pub fn killed(&self) -> usize {
        self.explained.len() - self.dropped()
    }
}

/// What keeps the issue phase from its end state: every request `Issued` (or `Failed` with
/// `ClerkRejected` where Clerk refuses its user), each issued link live and delivered in the
/// request's Secret, nothing left to revoke, and no token a request ever named live unless it
/// is that request's current one. Orphans (tokens nobody named) are judged separately.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IssueState {
    /// Requests not (yet) in the phase they must end in.
    pub unsettled: Vec<String>,
    /// `Issued`, but the token is not live or not the one in the Secret.
    pub broken_links: Vec<String>,
    /// Tokens still set aside for revoking.
    pub revokes_pending: Vec<String>,
    /// A token a request once named, still live, but no longer the request's current token.
    pub named_left_live: Vec<String>,
}

impl IssueState {
    pub fn settled(&self) -> bool {
        *self == IssueState::default()
    }

    pub fn check(
        requests: &[PlannedRequest],
        accounts: &BTreeMap<String, Account>,
        tokens: &[SimToken],
        ever_named: &BTreeMap<String, BTreeSet<String>>,
    ) -> IssueState {
        let by_id: BTreeMap<&str, &SimToken> = tokens.iter().map(|t| (t.id.as_str(), t)).collect();
        let mut state = IssueState::default();
        let none = Account::default();
        for planned in requests {
            let name = &planned.name;
            let account = accounts.get(name).unwrap_or(&none);
            let expected = if planned.rejected {
                Phase::Failed
            } else {
                Phase::Issued
            };
            let reason_ok = !planned.rejected || account.reason.as_deref() == Some("ClerkRejected");
            if account.phase != Some(expected) || !reason_ok {
                state.unsettled.push(format!(
                    "{name}: {:?}/{} (want {expected:?})",
                    account.phase,
                    account.reason.as_deref().unwrap_or("-")
                ));
                continue;
            }
            if !account.pending_revokes.is_empty() {
                state
                    .revokes_pending
                    .push(format!("{name}: {:?}", account.pending_revokes));
            }
            let current = account.token_id.as_deref();
            if expected == Phase::Issued {
                let live = current
                    .and_then(|id| by_id.get(id))
                    .filter(|t| t.status == TokenStatus::Pending);
                let delivered = live.is_some_and(|t| {
                    account.secret_token_id.as_deref() == Some(t.id.as_str())
                        && account.secret_url.as_deref() == Some(t.url.as_str())
                });
                if !delivered {
                    state.broken_links.push(format!(
                        "{name}: token {current:?} is {:?}; the Secret holds {:?}",
                        current.and_then(|id| by_id.get(id)).map(|t| t.status),
                        account.secret_token_id
                    ));
                }
            }
            for id in ever_named.get(name).into_iter().flatten() {
                let live = by_id
                    .get(id.as_str())
                    .is_some_and(|t| t.status == TokenStatus::Pending);
                if live && Some(id.as_str()) != current && !account.pending_revokes.contains(id) {
                    state
                        .named_left_live
                        .push(format!("{name}: {id} is live but no longer recorded"));
                }
            }
        }
        state
    }
}

/// Moments when one user had two or more live tokens, as the poller saw them:
/// (user, sorted token IDs) → when first seen (Unix ms).
pub type LiveGroups = BTreeMap<(String, Vec<String>), i64>;

/// Requests that had two live tokens at once that are not both explained orphans: a link the
/// request could have handed out next to another one. Each as "request: tokens, when".
pub fn double_tokens(
    groups: &LiveGroups,
    request_of_user: &BTreeMap<String, String>,
    orphans: &Orphans,
) -> Vec<String> {
    let mut doubles: BTreeMap<&str, String> = BTreeMap::new();
    for ((user, ids), at_ms) in groups {
        let held: Vec<&String> = ids
            .iter()
            .filter(|id| !orphans.explained.contains_key(*id))
            .collect();
        if held.len() >= 2 {
            let request = request_of_user
                .get(user)
                .map_or(user.as_str(), String::as_str);
            doubles
                .entry(request)
                .or_insert_with(|| format!("{request}: {held:?} live together at {at_ms}"));
        }
    }
    doubles.into_values().collect()
}

/// After every request was deleted: tokens a request named that are still live, and requests
/// still there (held by a finalizer).
pub fn leftovers_after_delete(
    tokens: &[SimToken],
    ever_named: &BTreeMap<String, BTreeSet<String>>,
    remaining: &BTreeMap<String, Account>,
) -> (Vec<String>, Vec<String>) {
    let live: BTreeSet<&str> = tokens
        .iter()
        .filter(|t| t.status == TokenStatus::Pending)
        .map(|t| t.id.as_str())
        .collect();
    let named_live = ever_named
        .iter()
        .flat_map(|(name, ids)| {
            ids.iter()
                .filter(|id| live.contains(id.as_str()))
                .map(move |id| format!("{name}: {id}"))
        })
        .collect();
    let held = remaining
        .iter()
        .map(|(name, account)| {
            format!(
                "{name}: still there (finalizer: {}, phase {:?})",
                account.has_finalizer, account.phase
            )
        })
        .collect();
    (named_live, held)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const WINDOW: CreateWindow = CreateWindow {
        before_kill_ms: 5_000,
        after_kill_ms: 250,
    };

    fn token(id: &str, user: &str, created_ms: i64, status: TokenStatus) -> SimToken {
        SimToken {
            id: id.into(),
            status,
            user_id: user.into(),
            actor: json!({"sub": "user_support"}),
            token: format!("tok-{id}"),
            url: format!("https://sim/{id}"),
            expires_in_seconds: 3600,
            session_max_duration_in_seconds: 1800,
            created_at: created_ms / 1000,
            updated_at: created_ms / 1000,
            expires_at: created_ms / 1000 + 3600,
            created_at_ms: created_ms,
            answer_dropped: false,
            revoked_at_ms: None,
        }
    }

    fn runs(spans: &[(i64, Option<i64>)]) -> Vec<Incarnation> {
        spans
            .iter()
            .map(|&(started_ms, killed_ms)| Incarnation {
                started_ms,
                killed_ms,
            })
            .collect()
    }

    fn planned(name: &str, rejected: bool) -> PlannedRequest {
        PlannedRequest {
            name: name.into(),
            user_id: format!("user_{name}"),
            rejected,
            at: Default::default(),
        }
    }

    #[test]
    fn a_dropped_answer_explains_a_token() {
        let mut t = token("act_1", "u", 10_000, TokenStatus::Pending);
        t.answer_dropped = true;
        let why = explain(
            &t,
            std::slice::from_ref(&t),
            &runs(&[(0, None)]),
            &[],
            WINDOW,
        );
        assert_eq!(why, Some(Explanation::AnswerDropped));
    }

    #[test]
    fn a_kill_explains_a_token_made_just_before_it_by_the_killed_process() {
        let t = token("act_1", "u", 10_000, TokenStatus::Pending);
        let incarnations = runs(&[(0, Some(10_200)), (10_500, None)]);
        assert_eq!(
            explain(&t, std::slice::from_ref(&t), &incarnations, &[], WINDOW),
            Some(Explanation::Killed {
                killed_ms: 10_200,
                gap_ms: 200
            })
        );
        // Made a moment after the kill: a create the dead process had sent.
        let late = token("act_2", "u", 10_350, TokenStatus::Pending);
        assert!(
            explain(
                &late,
                std::slice::from_ref(&late),
                &incarnations,
                &[],
                WINDOW
            )
            .is_some()
        );
    }

    #[test]
    fn a_kill_does_not_explain_a_token_made_long_before_it() {
        let t = token("act_1", "u", 10_000, TokenStatus::Pending);
        let incarnations = runs(&[(0, Some(16_000)), (16_100, None)]);
        assert_eq!(
            explain(&t, std::slice::from_ref(&t), &incarnations, &[], WINDOW),
            None
        );
    }

    #[test]
    fn time_the_apiserver_was_down_does_not_count_against_the_window() {
        // Made 8 s before the kill, 4 s of which kube-apiserver was down: 4 s of up time.
        let t = token("act_1", "u", 10_000, TokenStatus::Pending);
        let incarnations = runs(&[(0, Some(18_000)), (18_100, None)]);
        let outage = Outage {
            from_ms: 11_000,
            to_ms: 15_000,
        };
        let alone = std::slice::from_ref(&t);
        assert!(explain(&t, alone, &incarnations, &[outage], WINDOW).is_some());
        assert_eq!(explain(&t, alone, &incarnations, &[], WINDOW), None);
    }

    #[test]
    fn a_kill_does_not_explain_a_token_the_process_had_moved_on_from() {
        // The process made act_1, then act_2 for the same request, then died: it lost act_1
        // by itself.
        let first = token("act_1", "u", 10_000, TokenStatus::Pending);
        let second = token("act_2", "u", 10_500, TokenStatus::Pending);
        let both = [first.clone(), second.clone()];
        let incarnations = runs(&[(0, Some(11_000)), (11_100, None)]);
        assert_eq!(explain(&first, &both, &incarnations, &[], WINDOW), None);
        assert!(explain(&second, &both, &incarnations, &[], WINDOW).is_some());
    }

    #[test]
    fn a_kill_does_not_explain_a_token_made_by_the_next_process() {
        let t = token("act_1", "u", 11_600, TokenStatus::Pending);
        // Killed at 11 000, restarted at 11 500, still running: no kill after the token.
        let incarnations = runs(&[(0, Some(11_000)), (11_500, None)]);
        assert_eq!(
            explain(&t, std::slice::from_ref(&t), &incarnations, &[], WINDOW),
            None
        );
    }

    #[test]
    fn orphans_are_live_tokens_nobody_named() {
        let mut dropped = token("act_d", "u1", 1_000, TokenStatus::Pending);
        dropped.answer_dropped = true;
        let tokens = vec![
            dropped,
            token("act_named", "u1", 2_000, TokenStatus::Pending),
            token("act_revoked", "u2", 3_000, TokenStatus::Revoked),
            token("act_lost", "u2", 4_000, TokenStatus::Pending),
        ];
        let named = BTreeSet::from(["act_named".to_string()]);
        let orphans = Orphans::find(&tokens, &named, &runs(&[(0, None)]), &[], WINDOW);
        assert_eq!(orphans.dropped(), 1);
        assert_eq!(orphans.killed(), 0);
        assert_eq!(
            orphans.unexplained.keys().collect::<Vec<_>>(),
            ["act_lost"],
            "a revoked token needs no explanation; a live unnamed one does"
        );
    }

    fn issued(token_id: &str) -> Account {
        Account {
            phase: Some(Phase::Issued),
            reason: Some("Issued".into()),
            token_id: Some(token_id.into()),
            secret_token_id: Some(token_id.into()),
            secret_url: Some(format!("https://sim/{token_id}")),
            has_finalizer: true,
            ..Account::default()
        }
    }

    #[test]
    fn the_issue_phase_is_settled_when_each_request_holds_one_live_delivered_link() {
        let requests = [planned("a", false), planned("b", true)];
        let tokens = vec![
            token("act_old", "user_a", 1_000, TokenStatus::Revoked),
            token("act_a", "user_a", 2_000, TokenStatus::Pending),
        ];
        let mut accounts = BTreeMap::from([
            ("a".to_string(), issued("act_a")),
            (
                "b".to_string(),
                Account {
                    phase: Some(Phase::Failed),
                    reason: Some("ClerkRejected".into()),
                    ..Account::default()
                },
            ),
        ]);
        let named = BTreeMap::from([(
            "a".to_string(),
            BTreeSet::from(["act_old".to_string(), "act_a".to_string()]),
        )]);
        let state = IssueState::check(&requests, &accounts, &tokens, &named);
        assert!(state.settled(), "{state:?}");

        // The Secret holds another link than the recorded token's.
        accounts.get_mut("a").unwrap().secret_url = Some("https://sim/other".into());
        let state = IssueState::check(&requests, &accounts, &tokens, &named);
        assert_eq!(state.broken_links.len(), 1, "{state:?}");

        // A Failed request whose failure is not Clerk's refusal is not where it must end.
        accounts.insert("a".into(), issued("act_a"));
        accounts.get_mut("b").unwrap().reason = Some("ClerkUnavailable".into());
        let state = IssueState::check(&requests, &accounts, &tokens, &named);
        assert_eq!(state.unsettled.len(), 1, "{state:?}");
    }

    #[test]
    fn a_token_once_named_and_then_forgotten_while_live_is_caught() {
        let requests = [planned("a", false)];
        let tokens = vec![
            token("act_old", "user_a", 1_000, TokenStatus::Pending),
            token("act_a", "user_a", 2_000, TokenStatus::Pending),
        ];
        let accounts = BTreeMap::from([("a".to_string(), issued("act_a"))]);
        let named = BTreeMap::from([(
            "a".to_string(),
            BTreeSet::from(["act_old".to_string(), "act_a".to_string()]),
        )]);
        let state = IssueState::check(&requests, &accounts, &tokens, &named);
        assert_eq!(state.named_left_live.len(), 1, "{state:?}");

        // Still set aside for revoking: accounted for, but not settled yet.
        let mut waiting = accounts.clone();
        waiting.get_mut("a").unwrap().pending_revokes = vec!["act_old".into()];
        let state = IssueState::check(&requests, &waiting, &tokens, &named);
        assert!(state.named_left_live.is_empty());
        assert_eq!(state.revokes_pending.len(), 1);
    }

    #[test]
    fn two_live_tokens_count_unless_one_is_an_explained_orphan() {
        let users = BTreeMap::from([("u".to_string(), "req-u".to_string())]);
        let groups = LiveGroups::from([(
            (
                "u".to_string(),
                vec!["act_1".to_string(), "act_2".to_string()],
            ),
            5_000,
        )]);
        let none = Orphans::default();
        assert_eq!(double_tokens(&groups, &users, &none).len(), 1);
        let mut explained = Orphans::default();
        explained
            .explained
            .insert("act_1".into(), ("u".into(), Explanation::AnswerDropped));
        assert!(double_tokens(&groups, &users, &explained).is_empty());
    }

    #[test]
    fn after_delete_named_live_tokens_and_held_requests_are_leftovers() {
        let tokens = vec![
            token("act_a", "user_a", 1_000, TokenStatus::Revoked),
            token("act_b", "user_b", 1_000, TokenStatus::Pending),
        ];
        let named = BTreeMap::from([
            ("a".to_string(), BTreeSet::from(["act_a".to_string()])),
            ("b".to_string(), BTreeSet::from(["act_b".to_string()])),
        ]);
        let (live, held) = leftovers_after_delete(&tokens, &named, &BTreeMap::new());
        assert_eq!(live, ["b: act_b"]);
        assert!(held.is_empty());
    }
}
