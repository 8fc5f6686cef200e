//! `completion bash|zsh|fish`: clap_complete's scripts for the `kubectl-actortoken` binary.

use clap::CommandFactory;
use clap_complete::{Shell as Target, generate};

use crate::{
    cli::{Cli, Shell},
    error::Error,
};

pub fn run(shell: Shell) -> Result<(), Error> {
    let target = match shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
    };
    let mut command = Cli::command();
    generate(
        target,
        &mut command,
        "kubectl-actortoken",
        &mut std::io::stdout(),
    );
    Ok(())
}
