//! The command line: one module per command, each with its `Args` and a `run` returning an
//! [`Outcome`]. Exit codes are decided here, once.

pub mod apply;
pub mod check;
pub mod check_mesh;
pub mod completion;
pub mod context;
pub mod create;
pub mod delete;
pub mod get;
pub mod objects;
pub mod proxy;
pub mod replace;
pub mod schema;
pub mod serve;
pub mod store;
pub mod token;
pub mod validate;
pub mod version;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// How a command ended; the only place that becomes an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: done, nothing wrong.
    Success,
    /// 1: the operation failed, or validation found errors.
    Failure,
    /// 2: bad usage, or input that could not be read.
    UsageOrIo,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::UsageOrIo => 2,
        }
    }
}

/// An error that maps to exit code 2 (usage or I/O) rather than 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Parser)]
#[command(
    name = "meshctl",
    version,
    about = "Lint, manage and enforce service-mesh traffic rules",
    long_about = "meshctl lints, stores and enforces Istio-style traffic rules \
                  (config.istio.io/v1alpha2 RouteRule, EgressRule, DestinationPolicy).",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command's name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Global {
    /// The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback
    /// only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context
    #[arg(long, global = true, env = "MESHCTL_STORE", value_name = "STORE")]
    pub store: Option<String>,
    /// Use this named context instead of the current one (see `meshctl context`)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Validate(validate::Args),
    Create(create::Args),
    Get(get::Args),
    Replace(replace::Args),
    Apply(apply::Args),
    Delete(delete::Args),
    Context(context::Args),
    Serve(serve::Args),
    Store(store::Args),
    Proxy(proxy::Args),
    Check(check::Args),
    Token(token::Args),
    Schema(schema::Args),
    Completion(completion::Args),
    Version(version::Args),
}

/// The clap command, for completions, man pages and the reference docs.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; real usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Create(args) => create::run(&cli.global, args),
        Command::Get(args) => get::run(&cli.global, args),
        Command::Replace(args) => replace::run(&cli.global, args),
        Command::Apply(args) => apply::run(&cli.global, args),
        Command::Delete(args) => delete::run(&cli.global, args),
        Command::Context(args) => context::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Store(args) => store::run(&cli.global, args),
        Command::Proxy(args) => proxy::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Token(args) => token::run(&cli.global, args),
        Command::Schema(args) => schema::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Version(args) => version::run(args),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(e) => {
            if is_broken_pipe(&e) {
                // `meshctl validate ... | head` is not an error.
                return ExitCode::SUCCESS;
            }
            let mut err = anstream::stderr();
            let _ = writeln!(err, "Error: {e}");
            for cause in e.chain().skip(1) {
                let _ = writeln!(err, "  Caused by: {cause}");
            }
            ExitCode::from(if e.downcast_ref::<UsageError>().is_some() { 2 } else { 1 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether to colour output: `--color`, then NO_COLOR (no colour), then CLICOLOR_FORCE (colour even
/// into a pipe, for CI logs that render it), then whether stdout is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
                if set("NO_COLOR") {
                    false
                } else {
                    set("CLICOLOR_FORCE") || std::io::stdout().is_terminal()
                }
            }
        }
    }
}
