//! `meshctl create`: store new rules from files, as `istioctl create` did.

use std::io::Write;

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
    let Some(loaded) = objects::load(&args.files, args.namespace.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    let store = objects::open_store(global)?;
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    for l in &loaded {
        match store.create(&l.object) {
            Ok(stored) => writeln!(
                out,
                "Created config {} at revision {}",
                l.key(),
                stored.metadata.resource_version.as_deref().unwrap_or("?")
            )?,
            Err(e) => {
                out.flush()?;
                objects::report(e)?;
                outcome = Outcome::Failure;
            }
        }
    }
    Ok(outcome)
}
