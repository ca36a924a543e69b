//! `meshctl completion SHELL`: shell completion scripts.

use clap_complete::Shell;

use crate::cli::Outcome;

/// Print a shell completion script
///
/// bash: `source <(meshctl completion bash)`; zsh: `meshctl completion zsh > "${fpath[1]}/_meshctl"`;
/// fish: `meshctl completion fish > ~/.config/fish/completions/meshctl.fish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    write(args.shell, &mut out);
    Ok(Outcome::Success)
}

/// Writes the completion script for `shell`.
pub fn write(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut crate::cli::command(), "meshctl", out);
}
