//! What the store-management commands (`create`, `replace`, `apply`, `delete`, `get`) share: opening
//! the store that `--store`/`--context`/the config choose, reading and validating `-f` files the way
//! `meshctl validate` does, and reporting a failed operation on one object.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::cli::{Global, UsageError};
use crate::context::{self, ConfigError};
use crate::diag::Severity;
use crate::load::LoadOptions;
use crate::load::files::{self, Input};
use crate::model::Resource;
use crate::model::meta::DEFAULT_NAMESPACE;
use crate::store::{ObjectKey, Store, StoreError};
use crate::validate;
use crate::validate::render;

/// `-f`/`-R`, as `meshctl validate` takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Descend into directories recursively
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Opens the store this command uses. A store that cannot be chosen, opened or reached is a usage or
/// I/O error (exit 2).
pub fn open_store(global: &Global) -> anyhow::Result<Box<dyn Store>> {
    let selection = context::select(global.store.as_deref(), global.context.as_deref()).map_err(config_error)?;
    selection.open().map_err(|e| UsageError(e.to_string()).into())
}

pub fn config_error(e: ConfigError) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// Whether to colour what goes to standard error: never with NO_COLOR, always with CLICOLOR_FORCE,
/// else when standard error is a terminal.
pub fn stderr_color() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    !set("NO_COLOR") && (set("CLICOLOR_FORCE") || std::io::stderr().is_terminal())
}

/// Reports one object's failed operation on standard error and returns `Ok`, so the command goes
/// on with the other objects (as kubectl does) and exits 1 at the end. A store that cannot be
/// reached stops the command instead (an `Err` that exits 2), and so do missing or wrong credentials
/// (exit 1), which every other object would meet too.
pub fn report(e: StoreError) -> anyhow::Result<()> {
    if e.is_unavailable() {
        return Err(UsageError(e.to_string()).into());
    }
    if matches!(e, StoreError::Unauthorized(_)) {
        // Every other object would fail the same way: stop here (exit 1).
        return Err(e.into());
    }
    let mut err = anstream::stderr();
    writeln!(err, "Error: {e}")?;
    write_diagnostics(&mut err, &e)?;
    Ok(())
}

/// The diagnostics of an invalid object, one indented line each, after its `Error:` line (which
/// already carries the first when there is only one).
pub fn write_diagnostics(err: &mut impl Write, e: &StoreError) -> std::io::Result<()> {
    if let StoreError::Invalid { diagnostics, .. } = e {
        for d in diagnostics.iter().skip(usize::from(diagnostics.len() == 1)) {
            writeln!(
                err,
                "  {}: {} [{}]",
                d.field.as_deref().unwrap_or("object"),
                d.message,
                d.code
            )?;
        }
    }
    Ok(())
}

/// What `create` and `replace` do: load and validate the files (nothing is written when any is
/// invalid), then `write` each object in order, printing `done(key, revision)` for each success and
/// reporting each failure, carrying on (as kubectl does) and exiting 1 when any failed.
pub fn write_each(
    global: &Global,
    files: &FileArgs,
    namespace: Option<&str>,
    write: impl Fn(&dyn Store, &Resource) -> Result<Resource, StoreError>,
    done: impl Fn(&ObjectKey, &str) -> String,
) -> anyhow::Result<crate::cli::Outcome> {
    use crate::cli::Outcome;
    let Some(loaded) = load(files, namespace)? else {
        return Ok(Outcome::Failure);
    };
    let store = open_store(global)?;
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    for l in &loaded {
        match write(store.as_ref(), &l.object) {
            Ok(stored) => {
                let revision = stored.metadata.resource_version.as_deref().unwrap_or("?");
                writeln!(out, "{}", done(&l.key(), revision))?;
            }
            Err(e) => {
                out.flush()?;
                report(e)?;
                outcome = Outcome::Failure;
            }
        }
    }
    Ok(outcome)
}

/// One object read from a file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub object: Resource,
    /// The file it came from, as the user named it.
    pub file: String,
}

impl Loaded {
    pub fn key(&self) -> ObjectKey {
        ObjectKey::of(&self.object)
    }
}

/// Reads every file, validates every document as `meshctl validate` does, and hands back the rules
/// with their namespace settled: the file's, else `-n`'s, else `default`. When any document is invalid
/// (or names a namespace other than `-n`), the diagnostics go to standard error and the result is
/// `None`: the caller writes nothing and exits 1. Files that cannot be read are an `Err` (exit 2).
pub fn load(args: &FileArgs, namespace: Option<&str>) -> anyhow::Result<Option<Vec<Loaded>>> {
    let inputs = files::collect(&args.files, args.recursive).map_err(|e| UsageError(e.to_string()))?;
    let opts = LoadOptions {
        keep_resources: true,
        ..LoadOptions::default()
    };
    let validate::Checked {
        diagnostics,
        summary,
        resources,
    } = validate::check_inputs(&inputs, &opts).map_err(UsageError)?;
    let mut loaded: Vec<Loaded> = resources
        .into_iter()
        .map(|(i, object)| Loaded {
            object,
            file: inputs[i].display(),
        })
        .collect();
    let mut err = anstream::stderr();
    if !diagnostics.is_empty() {
        let opts = render::text::TextOptions {
            color: stderr_color(),
            quiet: false,
        };
        render::text::render(&mut err, &diagnostics, &summary, &opts)?;
    }
    if summary.errors > 0 {
        writeln!(
            err,
            "Error: nothing was written: the files have {} (see above)",
            plural(summary.errors, "error")
        )?;
        return Ok(None);
    }
    if loaded.is_empty() {
        let names: Vec<String> = inputs.iter().map(Input::display).collect();
        writeln!(
            err,
            "Error: no traffic rules (RouteRule, EgressRule, DestinationPolicy) in {}",
            names.join(", ")
        )?;
        return Ok(None);
    }
    let mut mismatched = false;
    for l in &mut loaded {
        match (l.object.metadata.namespace.as_deref(), namespace) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                writeln!(
                    err,
                    "Error: {}: {}/{}/{}: the file says namespace `{theirs}` but -n says `{ours}`: \
                     remove one of them, or make them agree",
                    l.file,
                    l.object.kind.istioctl_name(),
                    theirs,
                    l.object.name()
                )?;
                mismatched = true;
            }
            (Some(_), _) => {}
            (None, ns) => l.object.metadata.namespace = Some(ns.unwrap_or(DEFAULT_NAMESPACE).to_string()),
        }
    }
    if mismatched {
        writeln!(err, "Error: nothing was written")?;
        return Ok(None);
    }
    Ok(Some(loaded))
}

/// `1 error`, `2 errors`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Whether diagnostics hold an error (for callers that check files themselves).
pub fn has_errors(diagnostics: &[crate::diag::Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// Asks a yes/no question on the terminal. Without a terminal (a script, CI) there is nobody to
/// answer, so this refuses rather than waiting: an `Err` (exit 2) that says to pass `-y`.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(UsageError(format!(
            "{question} There is no terminal to confirm on: pass -y (--yes) to go ahead without asking"
        ))
        .into());
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| UsageError(format!("cannot read the answer: {e}")).into())
}
