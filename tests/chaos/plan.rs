//! What a fault run does and when: its settings (defaults per size, each overridable by an
//! environment variable) and the seeded schedule of requests and faults drawn from them.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// How big and how hostile a run is.
#[derive(Clone, Debug)]
pub struct Settings {
    pub name: &'static str,
    /// `CHAOS_SEED`: every random choice of the run (schedule and simulator faults).
    pub seed: u64,
    /// `CHAOS_REQUESTS`.
    pub requests: usize,
    /// `CHAOS_CREATE_SECONDS`: requests are created evenly over this long.
    pub create_over: Duration,
    /// `CHAOS_KILLS`: operator SIGKILLs while requests are being issued (each restarted).
    pub kills: usize,
    /// `CHAOS_DELETE_KILLS`: operator SIGKILLs while the requests are being deleted.
    pub delete_kills: usize,
    /// `CHAOS_APISERVER_RESTARTS`: kube-apiserver restarts while requests are being issued
    /// (only on a private control plane).
    pub apiserver_restarts: usize,
    /// `CHAOS_BURSTS`: spells of `CHAOS_BURST_SECONDS` in which Clerk answers every call 429.
    pub bursts: usize,
    pub burst_length: Duration,
    /// `CHAOS_SERVER_ERROR_SHARE`: share of Clerk calls answered 5xx.
    pub server_error_share: f64,
    /// `CHAOS_DROP_CREATE_SHARE`: share of successful creates whose answer is dropped.
    pub drop_create_share: f64,
    /// `CHAOS_REJECTED_EVERY`: every n-th request names a user Clerk refuses (0: none).
    pub rejected_every: usize,
    /// `CHAOS_CREATE_WINDOW_MS`: how long before a kill a create may have been made and still
    /// be explained by it (see `verdict::CreateWindow`).
    pub create_window: Duration,
    /// `CHAOS_CONVERGE_SECONDS`: how long the operator gets, after the last fault of a phase,
    /// to reach the phase's end state.
    pub converge_timeout: Duration,
    /// `CHAOS_RESULTS_DIR`: where the report is written (Markdown and JSON); unset: nowhere.
    pub results_dir: Option<String>,
}

impl Settings {
    /// The version inside `make test`: about 50 requests, 3 kills, every Clerk fault on, the
    /// shared control plane left alone.
    pub fn short() -> Settings {
        Settings {
            name: "short",
            seed: rand::random(),
            requests: 50,
            create_over: Duration::from_secs(8),
            kills: 3,
            delete_kills: 1,
            apiserver_restarts: 0,
            bursts: 1,
            burst_length: Duration::from_secs(2),
            server_error_share: 0.3,
            drop_create_share: 0.05,
            rejected_every: 25,
            create_window: Duration::from_secs(5),
            converge_timeout: Duration::from_secs(60),
            results_dir: None,
        }
    }

    /// `make chaos`: 500 requests, 20 kills, one kube-apiserver restart.
    pub fn full() -> Settings {
        Settings {
            name: "full",
            requests: 500,
            create_over: Duration::from_secs(90),
            kills: 20,
            delete_kills: 4,
            apiserver_restarts: 1,
            bursts: 5,
            converge_timeout: Duration::from_secs(300),
            ..Settings::short()
        }
    }

    /// `self` with every `CHAOS_*` variable that is set applied.
    pub fn with_env(self) -> Settings {
        self.with_overrides(|name| std::env::var(name).ok())
    }

    pub fn with_overrides(mut self, var: impl Fn(&str) -> Option<String>) -> Settings {
        fn parse<T: std::str::FromStr>(
            var: &dyn Fn(&str) -> Option<String>,
            name: &str,
        ) -> Option<T> {
            let text = var(name)?;
            Some(
                text.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
            )
        }
        let var = &var as &dyn Fn(&str) -> Option<String>;
        let secs = |name| parse::<f64>(var, name).map(Duration::from_secs_f64);
        self.seed = parse(var, "CHAOS_SEED").unwrap_or(self.seed);
        self.requests = parse(var, "CHAOS_REQUESTS").unwrap_or(self.requests);
        self.create_over = secs("CHAOS_CREATE_SECONDS").unwrap_or(self.create_over);
        self.kills = parse(var, "CHAOS_KILLS").unwrap_or(self.kills);
        self.delete_kills = parse(var, "CHAOS_DELETE_KILLS").unwrap_or(self.delete_kills);
        self.apiserver_restarts =
            parse(var, "CHAOS_APISERVER_RESTARTS").unwrap_or(self.apiserver_restarts);
        self.bursts = parse(var, "CHAOS_BURSTS").unwrap_or(self.bursts);
        self.burst_length = secs("CHAOS_BURST_SECONDS").unwrap_or(self.burst_length);
        self.server_error_share =
            parse(var, "CHAOS_SERVER_ERROR_SHARE").unwrap_or(self.server_error_share);
        self.drop_create_share =
            parse(var, "CHAOS_DROP_CREATE_SHARE").unwrap_or(self.drop_create_share);
        self.rejected_every = parse(var, "CHAOS_REJECTED_EVERY").unwrap_or(self.rejected_every);
        self.create_window = parse::<u64>(var, "CHAOS_CREATE_WINDOW_MS")
            .map(Duration::from_millis)
            .unwrap_or(self.create_window);
        self.converge_timeout = secs("CHAOS_CONVERGE_SECONDS").unwrap_or(self.converge_timeout);
        self.results_dir = var("CHAOS_RESULTS_DIR").or(self.results_dir);
        self
    }
}

/// One request of the run. Each impersonates a user of its own, so that every token in the
/// simulator belongs to exactly one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRequest {
    pub name: String,
    pub user_id: String,
    /// Clerk refuses this user: the request must end `Failed`.
    pub rejected: bool,
    /// When to create it, from the start of the issue phase.
    pub at: Duration,
}

/// A fault, at an offset from the start of its phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// SIGKILL the operator, then start it again after `restart_after`.
    KillOperator {
        restart_after: Duration,
    },
    RestartApiserver,
    /// Clerk answers every call 429 for this long.
    TooManyRequests {
        lasting: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub requests: Vec<PlannedRequest>,
    /// Issue phase, sorted by offset.
    pub issue_faults: Vec<(Duration, Fault)>,
    /// Delete phase, sorted by offset.
    pub delete_faults: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// Draws the run from `settings.seed`. Faults of the issue phase fall anywhere in the
    /// creation period (plus a quarter, to hit requests still in flight); operator kills of
    /// the delete phase fall in its first `delete_over`.
    pub fn draw(settings: &Settings, delete_over: Duration) -> Schedule {
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let n = settings.requests;
        let requests = (0..n)
            .map(|i| {
                let rejected =
                    settings.rejected_every > 0 && (i + 1) % settings.rejected_every == 0;
                PlannedRequest {
                    name: format!("chaos-{i:04}"),
                    user_id: format!("user_2chaos{i:04}{}", if rejected { "Unknown" } else { "" }),
                    rejected,
                    at: settings.create_over.mul_f64(i as f64 / n.max(1) as f64),
                }
            })
            .collect();
        let span = settings.create_over.mul_f64(1.25);
        let at = |rng: &mut StdRng, span: Duration| span.mul_f64(rng.random_range(0.0..1.0));
        let kill = |rng: &mut StdRng| Fault::KillOperator {
            restart_after: Duration::from_millis(rng.random_range(0..500)),
        };
        let mut issue_faults = Vec::new();
        for _ in 0..settings.kills {
            let fault = kill(&mut rng);
            issue_faults.push((at(&mut rng, span), fault));
        }
        for _ in 0..settings.apiserver_restarts {
            // Mid-run: in the middle half, while creates are in full swing.
            let offset = span.mul_f64(rng.random_range(0.25..0.75));
            issue_faults.push((offset, Fault::RestartApiserver));
        }
        for _ in 0..settings.bursts {
            issue_faults.push((
                at(&mut rng, span),
                Fault::TooManyRequests {
                    lasting: settings.burst_length,
                },
            ));
        }
        issue_faults.sort_by_key(|(offset, _)| *offset);
        let mut delete_faults: Vec<_> = (0..settings.delete_kills)
            .map(|_| {
                let fault = kill(&mut rng);
                (at(&mut rng, delete_over), fault)
            })
            .collect();
        delete_faults.sort_by_key(|(offset, _)| *offset);
        Schedule {
            requests,
            issue_faults,
            delete_faults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_run() {
        let settings = Settings {
            seed: 42,
            ..Settings::full()
        };
        let a = Schedule::draw(&settings, Duration::from_secs(10));
        let b = Schedule::draw(&settings, Duration::from_secs(10));
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.issue_faults, b.issue_faults);
        assert_eq!(a.delete_faults, b.delete_faults);
        let other = Schedule::draw(
            &Settings {
                seed: 43,
                ..settings.clone()
            },
            Duration::from_secs(10),
        );
        assert_ne!(a.issue_faults, other.issue_faults);
    }

    #[test]
    fn the_full_run_has_what_the_issue_asks_for() {
        let settings = Settings::full();
        let schedule = Schedule::draw(&settings, Duration::from_secs(10));
        let count = |faults: &[(Duration, Fault)], f: fn(&Fault) -> bool| {
            faults.iter().filter(|(_, fault)| f(fault)).count()
        };
        let kill = |f: &Fault| matches!(f, Fault::KillOperator { .. });
        assert_eq!(schedule.requests.len(), 500);
        assert_eq!(count(&schedule.issue_faults, kill), 20);
        assert_eq!(
            count(&schedule.issue_faults, |f| *f == Fault::RestartApiserver),
            1
        );
        assert_eq!(count(&schedule.delete_faults, kill), 4);
        assert!(settings.server_error_share == 0.3 && settings.drop_create_share == 0.05);
        let users: std::collections::BTreeSet<_> =
            schedule.requests.iter().map(|r| &r.user_id).collect();
        assert_eq!(users.len(), 500, "one user per request");
        assert_eq!(schedule.requests.iter().filter(|r| r.rejected).count(), 20);
        assert!(schedule.issue_faults.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn environment_variables_override_the_defaults() {
        let settings = Settings::short().with_overrides(|name| match name {
            "CHAOS_SEED" => Some("7".into()),
            "CHAOS_REQUESTS" => Some("12".into()),
            "CHAOS_CREATE_WINDOW_MS" => Some("1500".into()),
            "CHAOS_BURST_SECONDS" => Some("0.5".into()),
            _ => None,
        });
        assert_eq!(settings.seed, 7);
        assert_eq!(settings.requests, 12);
        assert_eq!(settings.create_window, Duration::from_millis(1500));
        assert_eq!(settings.burst_length, Duration::from_millis(500));
        assert_eq!(settings.kills, 3);
    }
}
