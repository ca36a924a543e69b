//! `meshctl replace`: overwrite existing rules from files, as `istioctl replace` did.

use crate::cli::objects::{self, FileArgs};
use crate::cli::{Global, Outcome};

/// Replace existing rules from files (every document is validated first)
///
/// A rule that carries metadata.resourceVersion (as `meshctl get -o yaml` prints it) is replaced
/// only if nobody changed it since: otherwise the store refuses with a conflict, and you get it
/// again and redo your change. Rules that do not exist are errors (use `apply` to create them).
/// Exit status: 0 all replaced, 1 validation failed or an object could not be replaced, 2 bad usage,
/// an unreadable file or an unreachable store.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl replace -f egress-rule-mysql.yaml\n  meshctl get egressrule mysql -o yaml > r.yaml && $EDITOR r.yaml && meshctl replace -f r.yaml"
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
        |store, object| store.update(object),
        |key, revision| format!("Updated config {key} to revision {revision}"),
    )
}
