//! The run's report: a Markdown table for people (printed, and kept with the JSON for the
//! full run) and the verdict.

use serde::Serialize;

use super::verdict::{IssueState, Outage};

#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultCounts {
    /// Operator SIGKILLs while issuing.
    pub kills: usize,
    /// Operator SIGKILLs while deleting.
    pub delete_kills: usize,
    pub apiserver_restarts: usize,
    pub bursts: usize,
    /// Clerk answers (create and revoke) with 500/502/503.
    pub server_errors: u64,
    /// Clerk answers with 429, bursts and rate limit together.
    pub too_many_requests: u64,
    /// Creates whose token was made but whose answer was dropped.
    pub dropped_answers: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub name: String,
    pub seed: u64,
    pub requests: usize,
    /// Requests naming a user Clerk refuses (they must end `Failed`).
    pub rejected: usize,
    pub faults: FaultCounts,
    pub tokens_made: usize,
    /// The issue phase's end state, as last seen (all empty: settled).
    pub issue_state: IssueState,
    /// From the last fault of the issue phase to every request settled (ms); `None`: never.
    pub issue_converged_after: Option<i64>,
    /// From the last fault of the delete phase to every request gone (ms); `None`: never.
    pub delete_converged_after: Option<i64>,
    pub double_tokens: Vec<String>,
    pub unexplained_orphans: Vec<String>,
    pub explained_dropped: usize,
    /// (token ID, ms from its creation to the kill that explains it)
    pub explained_killed: Vec<(String, i64)>,
    /// After every request was deleted: tokens a request named that are still live.
    pub named_left_live: Vec<String>,
    /// Requests still there after the delete phase (held by a finalizer).
    pub finalizers_left: Vec<String>,
    /// Rounds of the continuous two-live-tokens check.
    pub polls: u64,
    pub operator_logs: Vec<String>,
    pub wall_seconds: f64,
    pub create_window_ms: i64,
    pub apiserver_outages: Vec<Outage>,
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or("never (timed out)".into(), |ms| {
        format!("{:.1} s", ms as f64 / 1000.0)
    })
}

impl Report {
    /// Requests that did not end where they must (`Issued`, or `Failed` where Clerk refused).
    pub fn requests_lost(&self) -> usize {
        self.issue_state.unsettled.len()
    }

    /// Every goal-0 row, by name, with what broke it.
    pub fn failures(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut rows = vec![
            ("requests lost", self.issue_state.unsettled.clone()),
            (
                "issued links not live",
                self.issue_state.broken_links.clone(),
            ),
            (
                "tokens still to revoke",
                self.issue_state.revokes_pending.clone(),
            ),
            (
                "recorded tokens dropped while live",
                self.issue_state.named_left_live.clone(),
            ),
            ("double tokens", self.double_tokens.clone()),
            ("unexplained orphans", self.unexplained_orphans.clone()),
            (
                "recorded tokens live after delete",
                self.named_left_live.clone(),
            ),
            ("finalizers left", self.finalizers_left.clone()),
        ];
        if self.issue_converged_after.is_none() {
            rows.push(("issue phase converged", vec!["timed out".into()]));
        }
        if self.delete_converged_after.is_none() {
            rows.push(("delete phase converged", vec!["timed out".into()]));
        }
        rows.retain(|(_, problems)| !problems.is_empty());
        rows
    }

    pub fn markdown(&self) -> String {
        let f = &self.faults;
        let max_gap = self.explained_killed.iter().map(|(_, gap)| *gap).max();
        let row =
            |what: &str, result: String, goal: &str| format!("| {what} | {result} | {goal} |\n");
        let mut out = format!(
            "Chaos run `{}`: {} requests ({} for users Clerk refuses), seed {}, {:.0} s.\n\n",
            self.name, self.requests, self.rejected, self.seed, self.wall_seconds
        );
        out += "| | result | goal |\n|---|---|---|\n";
        out += &row(
            "faults injected",
            format!(
                "{} operator SIGKILLs while issuing, {} while deleting; {} kube-apiserver restart(s); \
                 {} 429 bursts; Clerk answered {} calls 5xx and {} calls 429, and dropped {} create answers",
                f.kills,
                f.delete_kills,
                f.apiserver_restarts,
                f.bursts,
                f.server_errors,
                f.too_many_requests,
                f.dropped_answers
            ),
            "",
        );
        out += &row(
            "requests lost",
            format!("{} of {}", self.requests_lost(), self.requests),
            "0",
        );
        out += &row(
            "issued links not live or not delivered",
            self.issue_state.broken_links.len().to_string(),
            "0",
        );
        out += &row("double tokens", self.double_tokens.len().to_string(), "0");
        out += &row(
            "unexplained orphans",
            self.unexplained_orphans.len().to_string(),
            "0",
        );
        out += &row(
            "explained orphans",
            format!(
                "{} ({} dropped create answers, {} kills in the create window{})",
                self.explained_dropped + self.explained_killed.len(),
                self.explained_dropped,
                self.explained_killed.len(),
                max_gap.map_or(String::new(), |gap| format!(
                    ", made at most {gap} ms before the kill"
                ))
            ),
            "counted",
        );
        out += &row(
            "recorded tokens live after delete",
            self.named_left_live.len().to_string(),
            "0",
        );
        out += &row(
            "finalizers left",
            self.finalizers_left.len().to_string(),
            "0",
        );
        out += &row(
            "time to converge after the last fault",
            format!(
                "issuing: {}; deleting: {}",
                seconds(self.issue_converged_after),
                seconds(self.delete_converged_after)
            ),
            "",
        );
        out += &format!(
            "\n{} tokens made; two-live-tokens check polled the simulator {} times.\n",
            self.tokens_made, self.polls
        );
        out
    }
}
