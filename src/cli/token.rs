//! `meshctl token`: API tokens for `meshctl serve --tokens FILE`.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::{Global, Outcome, UsageError};
use crate::server::auth::{self, TokenEntry, Verb};

/// Manage API tokens for `meshctl serve`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    Create(CreateArgs),
}

/// Create a token and add its hash to a tokens file
///
/// Generates a random token, adds its SHA-256 (never the token) with the name, namespaces and verbs
/// to FILE (created with mode 0600 when missing; replaced atomically), and prints the token on
/// stdout, alone on one line. It is shown only this once: store it in a secret manager, or give it to
/// `meshctl context add` through --token-file or MESHCTL_TOKEN. A running `meshctl serve` picks the
/// new entry up on SIGHUP or restart.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl token create ci-readonly --namespace bookinfo --read-only --tokens-file tokens.yaml\n  \
    meshctl token create admin --tokens-file tokens.yaml > admin.token"
)]
pub struct CreateArgs {
    /// A name for the token, unique in the file (letters, digits, '-', '_', '.'); it appears in the
    /// server's log
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A namespace the token may use; repeat for several (default: every namespace, "*")
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Allow only reads (get, list, watch); default: reads and writes
    #[arg(long)]
    pub read_only: bool,
    /// The tokens file to add the token to
    #[arg(long, value_name = "FILE")]
    pub tokens_file: PathBuf,
}

pub fn run(_global: &Global, args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        TokenCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<Outcome> {
    if !auth::valid_name(&args.name) {
        return Err(UsageError(format!(
            "token name `{}` is not valid: use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit",
            args.name
        ))
        .into());
    }
    let mut namespaces: Vec<String> = Vec::new();
    for ns in &args.namespaces {
        if !auth::valid_namespace(ns) {
            return Err(UsageError(format!(
                "--namespace `{ns}` is not valid: a DNS-1123 label, or \"*\" for every namespace"
            ))
            .into());
        }
        if !namespaces.contains(ns) {
            namespaces.push(ns.clone());
        }
    }
    if namespaces.is_empty() {
        namespaces.push("*".to_string());
    }
    let verbs = if args.read_only {
        vec![Verb::Read]
    } else {
        vec![Verb::Read, Verb::Write]
    };
    let token = auth::generate().map_err(|e| anyhow::anyhow!("cannot generate a random token: {e}"))?;
    let entry = TokenEntry {
        name: args.name.clone(),
        sha256: auth::hex(&auth::hash(&token)),
        namespaces: namespaces.clone(),
        verbs: verbs.clone(),
    };
    match auth::add_entry(&args.tokens_file, entry) {
        Ok(()) => {}
        Err(e @ auth::AddError::NameTaken { .. }) => return Err(e.into()),
        Err(e @ auth::AddError::File(_)) => return Err(UsageError(e.to_string()).into()),
    }
    // The token alone on stdout, so `> file` or `$(...)` captures exactly it.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    let verbs: Vec<&str> = verbs.iter().map(|v| v.as_str()).collect();
    eprintln!(
        "Created token `{}` ({} in {}) in {}; it is printed only once.",
        args.name,
        verbs.join(", "),
        if namespaces == ["*"] {
            "every namespace".to_string()
        } else {
            format!("namespaces {}", namespaces.join(", "))
        },
        args.tokens_file.display()
    );
    Ok(Outcome::Success)
}
