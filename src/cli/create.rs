//! `meshctl create`: store new rules from files, as `istioctl create` did.

use crate::cli::objects::{self, FileArgs};
use crate::cli::{Global, Outcome};

/// Create rules from files (every document is validated first; nothing is written if any is invalid)
///
/// Objects that already exist are reported and skipped; the others are still created (as kubectl
/// does), and the exit status is 1. Exit status: 0 all created, 1 validation failed or an object
/// could not be created, 2 bad usage, an unreadable file or an unreachable store.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl create -f egress-rule-mysql.yaml\n  meshctl create -f rules/ -R -n bookinfo\n  meshctl get egressrules -o yaml | meshctl --store sqlite:copy.db create -f -"
)]
pub struct Args {
    #[command(flatten)]
    pub files: FileArgs,
    /// The namespace of rules whose file names none (a file naming another one is an error)
    #[arg(short, long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    objects::write_each(
        global,
        &args.files,
        args.namespace.as_deref(),
        |store, object| store.create(object),
        |key, revision| format!("Created config {key} at revision {revision}"),
    )
}
