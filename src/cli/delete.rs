//! `meshctl delete`: remove rules by name, by the files that define them, or all of a kind.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::get::parse_kind;
use crate::cli::objects::{self, plural};
use crate::cli::{Global, Outcome, UsageError};
use crate::diag::{Code, Diagnostic, Severity};
use crate::load::files::{self, Input};
use crate::load::{self, Counts, LoadOptions};
use crate::model::meta::DEFAULT_NAMESPACE;
use crate::store::{ObjectKey, Selector, Store};
use crate::validate::render::{self, Summary};

/// Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)
///
/// Rules that do not exist are reported and the others are still deleted; the exit status is then 1.
/// `--all` asks for confirmation on a terminal; `-y` skips the question, and without a terminal it is
/// required (meshctl refuses rather than wait for an answer nobody can give). Exit status: 0 deleted,
/// 1 a rule did not exist or could not be deleted, 2 bad usage, an unreadable file or an unreachable
/// store.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl delete egressrule mysql\n  meshctl delete -f egress-rule-mysql.yaml\n  meshctl delete routerules --all -n bookinfo -y"
)]
pub struct Args {
    /// The kind of rule (any alias: egressrules, egress-rule, er, ...; `all` with --all)
    #[arg(value_name = "KIND", required_unless_present = "files", conflicts_with = "files")]
    pub kind: Option<String>,
    /// The rules to delete
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Delete the rules these files define (files, directories, `-`; only kind, namespace and name
    /// are read)
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Descend into directories recursively
    #[arg(short = 'R', long, requires = "files")]
    pub recursive: bool,
    /// The namespace (for -f: of rules whose file names none)
    #[arg(short, long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Delete every rule of the kind in the namespace
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// With --all: in every namespace
    #[arg(short = 'A', long, requires = "all", conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    let keys = if !args.files.is_empty() {
        match keys_from_files(&args.files, args.recursive, args.namespace.as_deref())? {
            Some(keys) => keys,
            None => return Ok(Outcome::Failure),
        }
    } else {
        let text = args.kind.as_deref().unwrap_or_default();
        let kind = parse_kind(text)?;
        let namespace = args.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        if args.all {
            return delete_all(global, kind, (!args.all_namespaces).then_some(namespace), args.yes);
        }
        let Some(kind) = kind else {
            return Err(
                UsageError("`delete all` needs --all (and deletes every rule of every kind)".to_string()).into(),
            );
        };
        if args.names.is_empty() {
            return Err(UsageError(format!(
                "name the {} to delete (meshctl delete {} NAME...), or pass --all",
                kind.plural(),
                kind.plural()
            ))
            .into());
        }
        let mut keys: Vec<ObjectKey> = args
            .names
            .iter()
            .map(|n| ObjectKey::new(kind, namespace.as_str(), n.as_str()))
            .collect();
        dedup(&mut keys);
        keys
    };
    let store = objects::open_store(global)?;
    delete(store.as_ref(), &keys)
}

fn dedup(keys: &mut Vec<ObjectKey>) {
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
}

fn delete(store: &dyn Store, keys: &[ObjectKey]) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    for key in keys {
        match store.delete(key) {
            Ok(_) => writeln!(out, "Deleted config: {key}")?,
            Err(e) => {
                out.flush()?;
                objects::report(e)?;
                outcome = Outcome::Failure;
            }
        }
    }
    Ok(outcome)
}

fn delete_all(
    global: &Global,
    kind: Option<crate::model::Kind>,
    namespace: Option<String>,
    yes: bool,
) -> anyhow::Result<Outcome> {
    let store = objects::open_store(global)?;
    let listing = match store.list(&Selector {
        kind,
        namespace: namespace.clone(),
    }) {
        Ok(l) => l,
        Err(e) => {
            objects::report(e)?;
            return Ok(Outcome::Failure);
        }
    };
    let where_ = match &namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in all namespaces".to_string(),
    };
    if listing.items.is_empty() {
        let mut err = anstream::stderr();
        match &namespace {
            Some(ns) => writeln!(err, "No resources found in {ns} namespace.")?,
            None => writeln!(err, "No resources found.")?,
        }
        return Ok(Outcome::Success);
    }
    if !yes {
        let what = match kind {
            Some(k) => plural(listing.items.len(), k.name()),
            None => plural(listing.items.len(), "rule"),
        };
        let question = format!("Delete all {what} {where_}?");
        if !objects::confirm(&question)? {
            writeln!(anstream::stderr(), "Nothing was deleted.")?;
            return Ok(Outcome::Failure);
        }
    }
    let keys: Vec<ObjectKey> = listing.items.iter().map(ObjectKey::of).collect();
    delete(store.as_ref(), &keys)
}

/// The keys of the rules that files define. Only the identity of each rule matters here (a rule whose
/// spec no longer passes validation can still be deleted by its file), so only problems that hide
/// it are reported: syntax, an unknown kind, a missing or invalid name or namespace.
fn keys_from_files(
    paths: &[PathBuf],
    recursive: bool,
    namespace: Option<&str>,
) -> anyhow::Result<Option<Vec<ObjectKey>>> {
    let inputs = files::collect(paths, recursive).map_err(|e| UsageError(e.to_string()))?;
    let mut keys = Vec::new();
    let mut blocking: Vec<Diagnostic> = Vec::new();
    let mut summary = Summary {
        files: inputs.len(),
        ..Summary::default()
    };
    let mut err = anstream::stderr();
    let mut mismatched = false;
    for input in &inputs {
        let bytes = input
            .read()
            .map_err(|e| UsageError(format!("{}: {e}", input.display())))?;
        let name: Arc<str> = Arc::from(input.display());
        let report = crate::validate::check_file(&name, &bytes, &LoadOptions::default());
        summary.checked += report.counts.checked;
        summary.skipped += report.counts.skipped;
        summary.empty += report.counts.empty;
        let before = blocking.len();
        blocking.extend(report.diagnostics.into_iter().filter(hides_identity));
        if blocking.len() > before {
            continue;
        }
        let Ok(src) = load::decode(&bytes) else { continue };
        let arena = bumpalo::Bump::new();
        let stream = load::yaml::parse_stream(src, &arena, load::Limits::default());
        let mut problems = Vec::new();
        let mut counts = Counts::default();
        for doc in load::rule_documents(&stream, &LoadOptions::default(), &mut problems, &mut counts) {
            let meta = doc.node.get("metadata").map(|e| &e.value);
            let text = |key: &str| meta.and_then(|m| m.get(key)).and_then(|e| e.value.as_str());
            let Some(rule_name) = text("name") else { continue };
            let ns = match (text("namespace"), namespace) {
                (Some(theirs), Some(ours)) if theirs != ours => {
                    writeln!(
                        err,
                        "Error: {}: {}/{theirs}/{rule_name}: the file says namespace `{theirs}` but -n says `{ours}`",
                        input.display(),
                        doc.kind.istioctl_name()
                    )?;
                    mismatched = true;
                    continue;
                }
                (Some(theirs), _) => theirs,
                (None, ours) => ours.unwrap_or(DEFAULT_NAMESPACE),
            };
            keys.push(ObjectKey::new(doc.kind, ns, rule_name));
        }
    }
    if !blocking.is_empty() {
        blocking.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        summary.count(&blocking);
        let opts = render::text::TextOptions {
            color: objects::stderr_color(),
            quiet: false,
        };
        render::text::render(&mut err, &blocking, &summary, &opts)?;
        writeln!(
            err,
            "Error: nothing was deleted: fix the errors above first (they hide which rules the files define)"
        )?;
        return Ok(None);
    }
    if mismatched {
        writeln!(err, "Error: nothing was deleted")?;
        return Ok(None);
    }
    if keys.is_empty() {
        let names: Vec<String> = inputs.iter().map(Input::display).collect();
        writeln!(err, "Error: no traffic rules in {}", names.join(", "))?;
        return Ok(None);
    }
    dedup(&mut keys);
    Ok(Some(keys))
}

/// An error that leaves the rule's kind, namespace or name unknown.
fn hides_identity(d: &Diagnostic) -> bool {
    if d.severity != Severity::Error {
        return false;
    }
    let level = d.code.id();
    if level.starts_with("E00") || level.starts_with("E01") {
        return true; // syntax, or what the document is
    }
    let field = d.field.as_deref().unwrap_or("");
    // Inside a List, fields are `items[3].metadata.name`.
    let field = match field.find("].") {
        Some(i) if field.starts_with("items[") => &field[i + 2..],
        _ => field,
    };
    field == "metadata"
        || field.starts_with("metadata.name")
        || field.starts_with("metadata.namespace")
        || (d.code == Code::WrongType && field.is_empty())
}
