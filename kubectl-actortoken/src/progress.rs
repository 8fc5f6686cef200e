//! Saying what we wait for: a spinner on a terminal, one line per change otherwise (logs,
//! scripts, tests). Always on stderr, so stdout carries only the result (a name, a link).

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
    last: String,
}

impl Progress {
    pub fn new() -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            spinner,
            last: String::new(),
        }
    }

    /// Shows "waiting for `what`", once per change.
    pub fn waiting_for(&mut self, what: &str) {
        if what == self.last {
            return;
        }
        self.last = what.to_string();
        match &self.spinner {
            Some(bar) => bar.set_message(format!("waiting for {what}")),
            None => eprintln!("waiting for {what}"),
        }
    }

    /// The last thing waited for.
    pub fn current(&self) -> &str {
        &self.last
    }

    /// A note above the spinner.
    pub fn note(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
