//! `meshctl apply`: make the store hold the rules in files, creating or updating each (kubectl style).

use std::io::Write;

use crate::cli::objects::{self, FileArgs};
use crate::cli::{Global, Outcome};
use crate::model::{Resource, StringMap};
use crate::store::{Store, StoreError};

/// Create or update rules from files (every document is validated first)
///
/// Prints one line per rule: `created`, `configured` (updated) or `unchanged` (spec, labels and
/// annotations already as in the file: nothing is written). An update is conditional on the version
/// read just before (or on the file's metadata.resourceVersion, when it has one), so a concurrent
/// change is a conflict rather than lost. Exit status: 0 all applied, 1 validation failed or an
/// object could not be applied, 2 bad usage, an unreadable file or an unreachable store.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  meshctl apply -f rules/ -R\n  meshctl apply -f egress-rule-mysql.yaml -n staging")]
pub struct Args {
    #[command(flatten)]
    pub files: FileArgs,
    /// The namespace of rules whose file names none (a file naming another one is an error)
    #[arg(short, long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// What apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Created,
    Configured,
    Unchanged,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    let Some(loaded) = objects::load(&args.files, args.namespace.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    let store = objects::open_store(global)?;
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    for l in &loaded {
        match apply(store.as_ref(), &l.object) {
            Ok(done) => {
                let word = match done {
                    Applied::Created => "created",
                    Applied::Configured => "configured",
                    Applied::Unchanged => "unchanged",
                };
                writeln!(out, "{} {word}", l.key())?;
            }
            Err(e) => {
                out.flush()?;
                objects::report(e)?;
                outcome = Outcome::Failure;
            }
        }
    }
    Ok(outcome)
}

fn apply(store: &dyn Store, object: &Resource) -> Result<Applied, StoreError> {
    let key = crate::store::ObjectKey::of(object);
    let current = match store.get(&key) {
        Ok(current) => current,
        Err(StoreError::NotFound(_)) => return store.create(object).map(|_| Applied::Created),
        Err(e) => return Err(e),
    };
    if same_content(&current, object) {
        return Ok(Applied::Unchanged);
    }
    let mut update = object.clone();
    if update.metadata.resource_version.is_none() {
        update.metadata.resource_version = current.metadata.resource_version;
    }
    store.update(&update).map(|_| Applied::Configured)
}

/// Equal where a user's file has a say: spec, labels, annotations (an empty map is no map).
fn same_content(a: &Resource, b: &Resource) -> bool {
    let map = |m: &Option<StringMap>| m.clone().filter(|m| !m.is_empty());
    a.spec == b.spec
        && map(&a.metadata.labels) == map(&b.metadata.labels)
        && map(&a.metadata.annotations) == map(&b.metadata.annotations)
}
