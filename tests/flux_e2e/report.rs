//! The run's report: what ran (versions, build times, identities), the figures each step
//! measured, and what Flux said on the way (its messages, which carry no credential), as
//! Markdown for people and JSON beside it.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Serialize;

use super::{flux, objects::HealthCheck};

/// A time one step measured for one pipeline.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub step: &'static str,
    pub what: &'static str,
    pub health: HealthCheck,
    pub seconds: f64,
}

/// Something Flux or the operator said that the step relied on.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub step: &'static str,
    pub what: &'static str,
    /// The pipeline it came through; `None` for what a person did beside Flux.
    pub health: Option<HealthCheck>,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub versions: BTreeMap<String, String>,
    /// Seconds each cached controller binary took to build, cold (hack/flux/build.sh).
    pub build_seconds: BTreeMap<String, Option<u64>>,
    pub kustomize_controller_identity: String,
    /// The load average when the run started (the machine is shared).
    pub load_average: String,
    pub figures: Vec<Figure>,
    pub evidence: Vec<Evidence>,
    pub wall_seconds: f64,
}

impl Report {
    pub fn new(bin: &Path) -> Report {
        Report {
            versions: flux::pinned_versions().into_iter().collect(),
            build_seconds: [flux::SOURCE_CONTROLLER, flux::KUSTOMIZE_CONTROLLER]
                .into_iter()
                .map(|name| (name.to_owned(), flux::build_seconds(bin, name)))
                .collect(),
            kustomize_controller_identity: String::new(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            figures: Vec::new(),
            evidence: Vec::new(),
            wall_seconds: 0.0,
        }
    }

    pub fn figure(
        &mut self,
        step: &'static str,
        what: &'static str,
        health: HealthCheck,
        took: Duration,
    ) {
        self.figures.push(Figure {
            step,
            what,
            health,
            seconds: took.as_secs_f64(),
        });
    }

    pub fn evidence(
        &mut self,
        step: &'static str,
        what: &'static str,
        health: HealthCheck,
        text: &str,
    ) {
        self.evidence.push(Evidence {
            step,
            what,
            health: Some(health),
            text: text.trim().to_owned(),
        });
    }

    /// Evidence of what a person did beside Flux (no pipeline).
    pub fn evidence_beside_flux(&mut self, step: &'static str, what: &'static str, text: &str) {
        self.evidence.push(Evidence {
            step,
            what,
            health: None,
            text: text.trim().to_owned(),
        });
    }

    pub fn markdown(&self) -> String {
        let mut out =
            String::from("# `make e2e-gitops`: Flux applies, waits on and prunes requests\n\n");
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect();
        out += &format!("Flux controllers: {}. ", versions.join(", "));
        let builds: Vec<String> = self
            .build_seconds
            .iter()
            .map(|(name, s)| match s {
                Some(s) => format!("{name} {:.1} min", *s as f64 / 60.0),
                None => format!("{name} (build time not recorded)"),
            })
            .collect();
        out += &format!(
            "Their cached builds took {} (the first build on this machine, by hack/flux/build.sh).\n\n",
            builds.join(", ")
        );
        out += &format!(
            "kustomize-controller applied as `{}`. Run took {:.0} s; load average at the start {}.\n\n",
            self.kustomize_controller_identity, self.wall_seconds, self.load_average
        );
        out += &format!(
            "| step | measured | {} | {} |\n|---|---|---|---|\n",
            HealthCheck::Kstatus.label(),
            HealthCheck::Cel.label()
        );
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for f in &self.figures {
            if !rows.contains(&(f.step, f.what)) {
                rows.push((f.step, f.what));
            }
        }
        for (step, what) in rows {
            let cell = |health| {
                self.figures
                    .iter()
                    .find(|f| f.step == step && f.what == what && f.health == health)
                    .map_or("–".to_owned(), |f| format!("{:.1} s", f.seconds))
            };
            out += &format!(
                "| {step} | {what} | {} | {} |\n",
                cell(HealthCheck::Kstatus),
                cell(HealthCheck::Cel)
            );
        }
        out += "\nkustomize-controller looks at the requests' health every 5 s (fixed in its code) and \
                retries a failed reconcile after `retryInterval` (5 s here), so a merge turns Ready \
                about a second after the push when the operator issued before Flux's first look, \
                and one look later (about 6 s) when it had not. An approver's denial is seen at \
                Flux's next look, within 5 s of the decision. Times are from the push (or the \
                decision, or the reconcile request) to the first poll (every 100 ms) that saw \
                the state.\n";
        out += "\nWhat Flux said on the way:\n\n";
        for e in &self.evidence {
            let through = e
                .health
                .map(|h| format!(" ({})", h.label()))
                .unwrap_or_default();
            out += &format!(
                "- step {}, {}{through}: `{}`\n",
                e.step,
                e.what,
                e.text.replace('`', "'")
            );
        }
        out
    }

    /// Writes `flux-e2e.md` and `flux-e2e.json` into `dir`.
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("create the results folder");
        std::fs::write(dir.join("flux-e2e.md"), self.markdown()).expect("write the report");
        std::fs::write(
            dir.join("flux-e2e.json"),
            serde_json::to_string_pretty(self).unwrap(),
        )
        .expect("write the report");
    }
}
