//! `kubectl actortoken`: what a support engineer and an approver do all day with
//! actor-token-operator — request a sign-in link, approve or deny one, read it, revoke it —
//! as themselves, through the API server's RBAC and admission policies.
//!
//! Pure parts (what a request waits for, tables, the story, who may approve, exit codes) are
//! modules of their own with unit tests; `commands/` holds the thin I/O around them.

mod access;
mod approvers;
mod browser;
mod cli;
mod cluster;
mod commands;
mod error;
mod human;
mod progress;
mod rows;
mod stage;
mod story;
mod table;

use std::process::ExitCode;

use clap::Parser;

use crate::{cli::Cli, error::Exit};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(error) => {
            eprintln!("error: {error}");
            if let Some(hint) = error.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(error.exit() as u8)
        }
    }
}
