//! `meshctl store`: operations on a whole store. `store copy` moves every object from one store to
//! another (the embedded file to etcd, one `meshctl serve` to another), idempotently: it compares
//! before it writes, so running it again copies nothing and an interrupted copy resumes.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cli::objects::config_error;
use crate::cli::{Global, Outcome, UsageError};
use crate::context::{self, Config, DEFAULT_CONTEXT, Selection, Source};
use crate::model::{Resource, StringMap};
use crate::store::{Listing, Location, ObjectKey, Revision, Selector, Store, StoreError};

/// Manage whole stores (copy one into another)
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    Copy(CopyArgs),
}

/// Copy every rule from one store to another
///
/// Lists the source once, at one revision, and makes the destination hold the same rules: a rule
/// missing there is created, one whose spec, labels or annotations differ is updated (a conditional
/// update on the version just read), one already equal is left alone (compared ignoring
/// resourceVersion, uid and creationTimestamp). Rules only in the destination are kept, or deleted
/// with --prune. Running the copy again therefore writes nothing, and an interrupted copy resumes
/// where it stopped. The destination sets its own resourceVersion, uid and creationTimestamp: copied
/// rules get a new uid, and the time of the copy as their creationTimestamp.
///
/// Prints the updated and pruned rules by name, then one line with the counts (-o json: a JSON
/// object). A rule the destination refuses (its validation) is reported with the reason and the copy
/// goes on. --from and --to take what --store takes, or the name of a context (whose token and CA
/// are then used); --store and --context do not apply. A sqlite: source must exist; a sqlite:
/// destination is created when missing. Exit status: 0 copied, 1 a rule could not be copied (or
/// pruned), 2 bad usage, or a store that cannot be opened or reached (also mid-way: what was written
/// stays written, and running the same command again finishes the copy).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl store copy --from sqlite:/var/lib/meshctl/store.db --to etcd://10.0.0.1:2379,10.0.0.2:2379\n  \
    meshctl store copy --from prod --to sqlite:backup.db --prune\n  \
    meshctl store copy --from sqlite:a.db --to https://mesh.example.com:8443 --dry-run"
)]
pub struct CopyArgs {
    /// The store to copy from, in any form --store takes (a sqlite:PATH must be an existing file), or
    /// the name of a context
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to copy into, in any form --store takes (a sqlite:PATH is created when missing), or
    /// the name of a context
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Also delete the rules that are in the destination but not in the source
    #[arg(long)]
    pub prune: bool,
    /// Only say what would be done: nothing is written (and a missing sqlite: destination is not
    /// created)
    #[arg(long)]
    pub dry_run: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// the updated and pruned rules, then a line with the counts
    Text,
    /// one JSON object with the counts
    Json,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Sub::Copy(args) => {
            // --store (as opposed to MESHCTL_STORE, which may be set for other commands) and
            // --context name one store; a copy names two, and taking one of them for --from would
            // be a guess.
            let from_env = std::env::var("MESHCTL_STORE").ok();
            if global.store.is_some() && global.store != from_env {
                return Err(UsageError("store copy takes --from and --to, not --store".to_string()).into());
            }
            if global.context.is_some() {
                return Err(UsageError(
                    "store copy takes --from and --to (each a store or the name of a context), not --context"
                        .to_string(),
                )
                .into());
            }
            copy(args)
        }
    }
}

// === Which stores ===

/// One side of the copy: how to open it, and its name for messages.
struct Side {
    selection: Selection,
    name: String,
}

/// `--from`/`--to`: a store as `--store` takes it (credentials from MESHCTL_TOKEN and
/// MESHCTL_CA_CERT, as for `--store`), or the name of a context (with its own credentials).
fn side(flag: &str, value: &str) -> anyhow::Result<Side> {
    let selection = match Location::parse(value) {
        Ok(_) => context::select(Some(value), None).map_err(config_error)?,
        Err(message) => {
            // Something shaped like a store (a scheme, a path) is one that is wrong; a bare word may
            // be a context.
            if value.is_empty() || value.contains([':', '/']) {
                return Err(UsageError(format!("--{flag} {message}")).into());
            }
            let path = context::config_path().map_err(config_error)?;
            let config = Config::load(&path).map_err(config_error)?;
            if value != DEFAULT_CONTEXT && config.find(value).is_none() {
                return Err(UsageError(format!(
                    "--{flag} {message}; nor is it a context in {} (contexts: {})",
                    path.display(),
                    config.names().join(", ")
                ))
                .into());
            }
            context::select(None, Some(value)).map_err(config_error)?
        }
    };
    let name = match &selection.source {
        Source::Context(context) => format!("{} (context {context})", selection.location),
        Source::Default => format!("{} (context {DEFAULT_CONTEXT})", selection.location),
        Source::Flag => selection.location.to_string(),
    };
    Ok(Side { selection, name })
}

/// Whether two locations are the same store (the same sqlite file under two names counts).
fn same_store(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Sqlite(p), Location::Sqlite(q)) => {
            p == q
                || matches!(
                    (std::fs::canonicalize(p), std::fs::canonicalize(q)),
                    (Ok(p), Ok(q)) if p == q
                )
        }
        _ => a == b,
    }
}

fn copy(args: CopyArgs) -> anyhow::Result<Outcome> {
    let from = side("from", &args.from)?;
    let to = side("to", &args.to)?;
    if same_store(&from.selection.location, &to.selection.location) {
        return Err(UsageError(format!(
            "--from and --to are the same store ({}): there is nothing to copy",
            from.selection.location
        ))
        .into());
    }
    // Opening a sqlite: store creates it: a mistyped source would be an empty store, and with
    // --prune the copy would empty the destination.
    if let Location::Sqlite(path) = &from.selection.location {
        if let Err(e) = std::fs::metadata(path) {
            return Err(UsageError(format!("cannot read the source {}: {e}", from.name)).into());
        }
    }
    let source = from
        .selection
        .open()
        .map_err(|e| UsageError(format!("cannot open the source {}: {e}", from.name)))?;
    let mut err = anstream::stderr();
    let listing = match read_source(source.as_ref(), from.selection.location.is_remote()) {
        Ok((listing, consistent)) => {
            if !consistent {
                writeln!(
                    err,
                    "Warning: {} was written to while it was listed (one kind at a time): rules of different \
                     kinds may be from different revisions, from {} on; run the copy again once it is quiet",
                    from.name, listing.revision
                )?;
            }
            listing
        }
        Err(e) => return stopped_before(&from.name, "read the source", e),
    };
    // Only now, so that a source that cannot be read leaves no new destination file behind. A dry
    // run creates nothing at all: a missing destination file is an empty store.
    let missing_file = matches!(&to.selection.location, Location::Sqlite(p) if std::fs::symlink_metadata(p).is_err());
    let destination = if args.dry_run && missing_file {
        None
    } else {
        Some(
            to.selection
                .open()
                .map_err(|e| UsageError(format!("cannot open the destination {}: {e}", to.name)))?,
        )
    };
    let current = match &destination {
        Some(store) => match store.list(&Selector::default()) {
            Ok(listing) => listing.items,
            Err(e) => return stopped_before(&to.name, "read the destination", e),
        },
        None => Vec::new(),
    };

    let plan = Plan::new(&listing.items, &current, args.prune);
    // An empty source is more often a wrong one (another path, another prefix) than a store to mirror.
    if listing.items.is_empty() && !plan.prunes.is_empty() && !args.dry_run {
        return Err(UsageError(format!(
            "the source {} holds no rules: --prune would delete every rule in {} ({}). Nothing was written; \
             to empty a store, run `meshctl delete all --all -A` on it",
            from.name,
            to.name,
            plural(plan.prunes.len(), "rule")
        ))
        .into());
    }
    let report = match (&destination, args.dry_run) {
        (Some(store), false) => plan.execute(store.as_ref(), WRITERS),
        _ => plan.dry_run(),
    };

    let summary = Summary {
        from: &from.name,
        to: &to.name,
        revision: listing.revision,
        objects: listing.items.len(),
        prune: args.prune,
        dry_run: args.dry_run,
        report: &report,
    };
    summary.print(args.output)
}

/// Lists the whole source. A remote store lists kind by kind (one request each), so its listing is
/// one revision only when nothing was written in between: checked against the revision after it,
/// and retried a few times; `false` when it never settled.
fn read_source(source: &dyn Store, remote: bool) -> Result<(Listing, bool), StoreError> {
    const TRIES: usize = 3;
    let mut tries = 0;
    loop {
        let listing = source.list(&Selector::default())?;
        if !remote {
            return Ok((listing, true));
        }
        tries += 1;
        if source.revision()? == listing.revision {
            return Ok((listing, true));
        }
        if tries == TRIES {
            return Ok((listing, false));
        }
    }
}

/// A store failed before anything was written: exit 2 when it cannot be reached, else 1 (a token
/// that is not accepted, a namespace-scoped token that cannot list every namespace).
fn stopped_before(name: &str, what: &str, e: StoreError) -> anyhow::Result<Outcome> {
    writeln!(anstream::stderr(), "Error: cannot {what} {name}: {e}")?;
    writeln!(anstream::stderr(), "Nothing was copied.")?;
    Ok(if e.is_unavailable() {
        Outcome::UsageOrIo
    } else {
        Outcome::Failure
    })
}

// === What to do ===

/// How many writes are in flight at once. A network store (etcd, `meshctl serve`) answers several
/// writes in about the time of one (etcd commits them together); the embedded store writes one at a
/// time whatever the number.
const WRITERS: usize = 8;

/// One write to the destination.
#[derive(Debug)]
enum Op {
    /// A rule the destination lacks (sent without resourceVersion, uid and creationTimestamp).
    Create(Resource),
    /// A rule the destination holds with other content: replaced if still at the version listed.
    Update(Resource),
    /// A rule only in the destination (with --prune).
    Prune(ObjectKey),
}

impl Op {
    fn key(&self) -> ObjectKey {
        match self {
            Op::Create(r) | Op::Update(r) => ObjectKey::of(r),
            Op::Prune(key) => key.clone(),
        }
    }

    fn apply(&self, store: &dyn Store) -> Result<(), StoreError> {
        match self {
            Op::Create(r) => store.create(r).map(drop),
            Op::Update(r) => store.update(r).map(drop),
            Op::Prune(key) => store.delete(key).map(drop),
        }
    }

    /// What the write does, as the report says it.
    fn done(&self) -> &'static str {
        match self {
            Op::Create(_) => "created",
            Op::Update(_) => "updated",
            Op::Prune(_) => "pruned",
        }
    }
}

/// The writes that make the destination hold the source's rules: first the creates and updates (in
/// the source's order), then the prunes, which happen only when every write before them reached the
/// destination.
#[derive(Debug)]
struct Plan {
    writes: Vec<Op>,
    prunes: Vec<Op>,
    unchanged: usize,
}

impl Plan {
    fn new(source: &[Resource], destination: &[Resource], prune: bool) -> Plan {
        let current: HashMap<ObjectKey, &Resource> = destination.iter().map(|r| (ObjectKey::of(r), r)).collect();
        let mut writes = Vec::new();
        let mut unchanged = 0;
        for object in source {
            match current.get(&ObjectKey::of(object)) {
                None => writes.push(Op::Create(without_store_fields(object, None))),
                Some(theirs) if same_content(object, theirs) => unchanged += 1,
                Some(theirs) => writes.push(Op::Update(without_store_fields(
                    object,
                    theirs.metadata.resource_version.clone(),
                ))),
            }
        }
        let prunes = if prune {
            let wanted: HashSet<ObjectKey> = source.iter().map(ObjectKey::of).collect();
            destination
                .iter()
                .map(ObjectKey::of)
                .filter(|k| !wanted.contains(k))
                .map(Op::Prune)
                .collect()
        } else {
            Vec::new()
        };
        Plan {
            writes,
            prunes,
            unchanged,
        }
    }

    /// What the plan would do, as if every write succeeded.
    fn dry_run(self) -> Report {
        let done = self
            .writes
            .into_iter()
            .chain(self.prunes)
            .map(|op| (op, Ok(())))
            .collect();
        Report {
            done,
            unchanged: self.unchanged,
            not_written: 0,
            stop: None,
        }
    }

    /// Writes, `writers` at a time. A store that cannot be reached, or that refuses the credentials,
    /// stops the copy (every other write would fail the same way): writes in flight finish, no new
    /// one starts, and the prunes are skipped. Any other failure is that object's alone.
    fn execute(self, store: &dyn Store, writers: usize) -> Report {
        let (mut done, stop, mut not_written) = run_ops(store, self.writes, writers);
        if stop.is_none() {
            let (pruned, prune_stop, left) = run_ops(store, self.prunes, writers);
            done.extend(pruned);
            not_written += left;
            return Report {
                done,
                unchanged: self.unchanged,
                not_written,
                stop: prune_stop,
            };
        }
        Report {
            done,
            unchanged: self.unchanged,
            not_written: not_written + self.prunes.len(),
            stop,
        }
    }
}

/// Whether a failure ends the whole copy rather than one object's write.
fn is_fatal(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_) | StoreError::Unauthorized(_))
}

/// Runs `ops` on `writers` threads (this one among them). Returns the ops that were tried with their
/// results (in the order given), the error that stopped them if one did, and how many were not
/// tried.
type Tried = Vec<(Op, Result<(), StoreError>)>;

fn run_ops(store: &dyn Store, ops: Vec<Op>, writers: usize) -> (Tried, Option<StoreError>, usize) {
    let results: Vec<OnceLock<Result<(), StoreError>>> = ops.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let stopping = AtomicBool::new(false);
    let work = || {
        while !stopping.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(op), Some(slot)) = (ops.get(i), results.get(i)) else {
                break;
            };
            let result = op.apply(store);
            if result.as_ref().is_err_and(is_fatal) {
                stopping.store(true, Ordering::Relaxed);
            }
            let _ = slot.set(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..writers.min(ops.len()) {
            // A thread that cannot be started only means fewer writes at once.
            if std::thread::Builder::new().spawn_scoped(scope, work).is_err() {
                break;
            }
        }
        work();
    });
    let mut tried = Vec::new();
    let mut stop = None;
    let mut not_tried = 0;
    for (op, slot) in ops.into_iter().zip(results) {
        match slot.into_inner() {
            None => not_tried += 1,
            // The first fatal error stops the copy; the ones that raced it are the same failure.
            Some(Err(e)) if is_fatal(&e) => {
                not_tried += 1;
                stop.get_or_insert(e);
            }
            Some(result) => tried.push((op, result)),
        }
    }
    (tried, stop, not_tried)
}

/// The object as written: without the fields the destination sets, and with `resource_version` (the
/// destination's, for a conditional update).
fn without_store_fields(object: &Resource, resource_version: Option<String>) -> Resource {
    let namespace = object.namespace().to_string();
    let mut object = object.clone();
    let m = &mut object.metadata;
    m.resource_version = resource_version;
    m.uid = None;
    m.creation_timestamp = None;
    m.namespace = Some(namespace);
    object
}

/// Equal but for what each store sets on its own (resourceVersion, uid, creationTimestamp); a
/// missing namespace is `default`, and an empty map of labels or annotations is no map.
fn same_content(a: &Resource, b: &Resource) -> bool {
    let map = |m: &Option<StringMap>| m.as_ref().filter(|m| !m.is_empty()).cloned();
    a.api_version == b.api_version
        && a.kind == b.kind
        && a.name() == b.name()
        && a.namespace() == b.namespace()
        && a.metadata.generation == b.metadata.generation
        && map(&a.metadata.labels) == map(&b.metadata.labels)
        && map(&a.metadata.annotations) == map(&b.metadata.annotations)
        && a.spec == b.spec
}

/// What the copy did.
#[derive(Debug)]
struct Report {
    /// The writes that were tried, with their results: creates and updates in the source's order,
    /// then prunes.
    done: Tried,
    unchanged: usize,
    /// Writes not tried because the copy stopped.
    not_written: usize,
    /// Why the copy stopped before the end.
    stop: Option<StoreError>,
}

impl Report {
    fn count(&self, what: &str) -> usize {
        self.done
            .iter()
            .filter(|(op, r)| r.is_ok() && op.done() == what)
            .count()
    }

    fn failed(&self) -> usize {
        self.done.iter().filter(|(_, r)| r.is_err()).count()
    }
}

// === Saying what was done ===

struct Summary<'a> {
    from: &'a str,
    to: &'a str,
    revision: Revision,
    objects: usize,
    prune: bool,
    dry_run: bool,
    report: &'a Report,
}

impl Summary<'_> {
    fn print(&self, format: Format) -> anyhow::Result<Outcome> {
        let r = self.report;
        let (created, updated, pruned, failed) =
            (r.count("created"), r.count("updated"), r.count("pruned"), r.failed());
        // Each failed object, by name and with the reason.
        let mut err = anstream::stderr();
        for (op, result) in &r.done {
            if let Err(e) = result {
                report_failure(&mut err, &op.key(), e)?;
            }
        }
        let mut out = std::io::stdout().lock();
        match format {
            Format::Json => {
                let value = serde_json::json!({
                    "from": self.from,
                    "to": self.to,
                    "revision": self.revision,
                    "dryRun": self.dry_run,
                    "objects": self.objects,
                    "created": created,
                    "updated": updated,
                    "unchanged": r.unchanged,
                    "pruned": pruned,
                    "failed": failed,
                    "notWritten": r.not_written,
                    "complete": r.stop.is_none(),
                });
                serde_json::to_writer_pretty(&mut out, &value)?;
                out.write_all(b"\n")?;
            }
            Format::Text => {
                let suffix = if self.dry_run { " (dry run)" } else { "" };
                for (op, result) in &r.done {
                    if result.is_ok() && !matches!(op, Op::Create(_)) {
                        writeln!(out, "{} {}{suffix}", op.key(), op.done())?;
                    }
                }
                if r.stop.is_none() {
                    let copied = created + updated + r.unchanged;
                    let (verb, tail) = if self.dry_run {
                        ("would copy", " (dry run: nothing was written)")
                    } else {
                        ("copied", "")
                    };
                    let what = if copied == self.objects {
                        objects(self.objects)
                    } else {
                        format!("{copied} of {}", objects(self.objects))
                    };
                    let mut counts = format!("{created} created, {updated} updated, {} unchanged", r.unchanged);
                    if self.prune {
                        counts.push_str(&format!(", {pruned} pruned"));
                    }
                    if failed > 0 {
                        counts.push_str(&format!(", {failed} failed"));
                    }
                    writeln!(
                        out,
                        "{verb} {what} from {} at revision {} to {}: {counts}{tail}",
                        self.from, self.revision, self.to
                    )?;
                }
            }
        }
        out.flush()?;
        drop(out);
        if let Some(e) = &r.stop {
            let copied = created + updated + r.unchanged;
            let mut done = format!("{created} created, {updated} updated, {} unchanged", r.unchanged);
            if self.prune {
                done.push_str(&format!(", {pruned} pruned"));
            }
            if failed > 0 {
                done.push_str(&format!(", {failed} failed"));
            }
            writeln!(err, "Error: the copy to {} stopped: {e}", self.to)?;
            writeln!(
                err,
                "Done before it stopped: {copied} of {} from {} at revision {} ({done}); {} not made or not \
                 confirmed. What was written stays: run the same command again to finish (what is already \
                 copied is then unchanged).",
                objects(self.objects),
                self.from,
                self.revision,
                plural(r.not_written, "write"),
            )?;
            return Ok(if e.is_unavailable() {
                Outcome::UsageOrIo
            } else {
                Outcome::Failure
            });
        }
        Ok(if failed > 0 { Outcome::Failure } else { Outcome::Success })
    }
}

fn objects(n: usize) -> String {
    plural(n, "object")
}

fn plural(n: usize, what: &str) -> String {
    crate::cli::objects::plural(n, what)
}

/// `Error: egress-rule/default/x is invalid: spec.ports[0].port: ...`, with the object's name when
/// the store's message does not carry it (a forbidden write), and every diagnostic of an invalid one.
fn report_failure(err: &mut impl Write, key: &ObjectKey, e: &StoreError) -> std::io::Result<()> {
    let message = e.to_string();
    if message.contains(&key.to_string()) {
        writeln!(err, "Error: {message}")?;
    } else {
        writeln!(err, "Error: {key}: {message}")?;
    }
    crate::cli::objects::write_diagnostics(err, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::store::Watch;
    use crate::store::sqlite::SqliteStore;

    fn egress(name: &str, port: u16) -> Resource {
        let json = format!(
            r#"{{"apiVersion": "config.istio.io/v1alpha2", "kind": "EgressRule",
                "metadata": {{"name": "{name}", "namespace": "default"}},
                "spec": {{"destination": {{"service": "10.0.0.5/32"}}, "ports": [{{"port": {port}, "protocol": "tcp"}}]}}}}"#
        );
        Resource::from_json(Kind::EgressRule, &json).expect("egress rule")
    }

    /// A store that fails every write after the first `writes` with `fail`.
    struct Failing {
        inner: SqliteStore,
        left: AtomicUsize,
        fail: fn() -> StoreError,
    }

    impl Failing {
        fn write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
            match self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            {
                Ok(_) => f(),
                Err(_) => Err((self.fail)()),
            }
        }
    }

    impl Store for Failing {
        fn get(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
            self.inner.get(key)
        }
        fn list(&self, selector: &Selector) -> Result<Listing, StoreError> {
            self.inner.list(selector)
        }
        fn create(&self, object: &Resource) -> Result<Resource, StoreError> {
            self.write(|| self.inner.create(object))
        }
        fn update(&self, object: &Resource) -> Result<Resource, StoreError> {
            self.write(|| self.inner.update(object))
        }
        fn delete(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
            self.write(|| self.inner.delete(key))
        }
        fn watch(&self, selector: &Selector, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
            self.inner.watch(selector, after)
        }
        fn revision(&self) -> Result<Revision, StoreError> {
            self.inner.revision()
        }
    }

    fn gone() -> StoreError {
        StoreError::Unavailable("connection refused".to_string())
    }

    fn copy_into(source: &[Resource], destination: &dyn Store, prune: bool) -> Report {
        let current = destination.list(&Selector::default()).expect("list").items;
        Plan::new(source, &current, prune).execute(destination, 4)
    }

    fn names(store: &dyn Store) -> Vec<String> {
        let listing = store.list(&Selector::default()).expect("list");
        listing.items.iter().map(|r| r.name().to_string()).collect()
    }

    #[test]
    fn plan_compares_content_not_store_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("a.db")).expect("open");
        let stored = store.create(&egress("a", 3306)).expect("create");
        let mut same = egress("a", 3306);
        same.metadata.resource_version = Some("999".to_string());
        same.metadata.uid = Some("other".to_string());
        same.metadata.creation_timestamp = Some("2001-01-01T00:00:00Z".to_string());
        same.metadata.labels = Some(StringMap::default());
        assert!(same_content(&same, &stored));
        let mut labelled = same.clone();
        labelled.metadata.labels = Some(StringMap::from_iter([("app".to_string(), "db".to_string())]));
        assert!(!same_content(&labelled, &stored));
        assert!(!same_content(&egress("a", 3307), &stored));

        let plan = Plan::new(
            &[same, egress("b", 1), labelled.clone()],
            std::slice::from_ref(&stored),
            true,
        );
        assert_eq!(plan.unchanged, 1);
        assert!(matches!(&plan.writes[0], Op::Create(r) if r.name() == "b"));
        // The update carries the destination's version, so a change made meanwhile is a conflict.
        assert!(matches!(&plan.writes[1], Op::Update(r)
            if r.metadata.resource_version == stored.metadata.resource_version && r.metadata.uid.is_none()));
        assert!(plan.prunes.is_empty());
    }

    #[test]
    fn a_destination_that_goes_away_stops_the_copy_and_a_second_run_finishes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source: Vec<Resource> = (0..50).map(|i| egress(&format!("r{i:02}"), 3306)).collect();
        let failing = Failing {
            inner: SqliteStore::open(&dir.path().join("b.db")).expect("open"),
            left: AtomicUsize::new(20),
            fail: gone,
        };
        failing.inner.create(&egress("extra", 1)).expect("create");
        let report = copy_into(&source, &failing, true);
        assert!(matches!(report.stop, Some(StoreError::Unavailable(_))), "{report:?}");
        assert_eq!(report.count("created"), 20);
        assert_eq!(report.failed(), 0);
        // 30 creates and the prune were not written.
        assert_eq!(report.not_written, 31);
        assert_eq!(names(&failing).len(), 21);

        // The store is back: the same copy finishes, and writes nothing it already wrote.
        failing.left.store(usize::MAX, Ordering::SeqCst);
        let report = copy_into(&source, &failing, true);
        assert!(report.stop.is_none());
        assert_eq!(
            (report.count("created"), report.unchanged, report.count("pruned")),
            (30, 20, 1)
        );
        let expected: Vec<String> = source.iter().map(|r| r.name().to_string()).collect();
        assert_eq!(names(&failing), expected);
        let report = copy_into(&source, &failing, true);
        assert_eq!((report.done.len(), report.unchanged), (0, 50));
    }

    #[test]
    fn refused_credentials_stop_the_copy_but_one_object_s_failure_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = Failing {
            inner: SqliteStore::open(&dir.path().join("b.db")).expect("open"),
            left: AtomicUsize::new(0),
            fail: || StoreError::Unauthorized("token expired".to_string()),
        };
        let source = vec![egress("a", 1), egress("b", 2)];
        let report = copy_into(&source, &failing, false);
        assert!(matches!(report.stop, Some(StoreError::Unauthorized(_))));
        assert_eq!(report.not_written, 2);

        // An invalid object (port 0) is refused by the destination's validation; the rest is copied.
        let store = SqliteStore::open(&dir.path().join("c.db")).expect("open");
        let source = vec![egress("a", 1), egress("bad", 0), egress("c", 3)];
        let report = copy_into(&source, &store, false);
        assert!(report.stop.is_none());
        assert_eq!((report.count("created"), report.failed()), (2, 1));
        let mut text = Vec::new();
        for (op, result) in &report.done {
            if let Err(e) = result {
                report_failure(&mut text, &op.key(), e).expect("write");
            }
        }
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.starts_with("Error: egress-rule/default/bad is invalid: spec.ports[0].port"),
            "{text}"
        );
        assert_eq!(names(&store), ["a", "c"]);
    }

    #[test]
    fn a_forbidden_write_is_reported_with_the_object_s_name() {
        let key = ObjectKey::new(Kind::EgressRule, "prod", "db");
        let mut text = Vec::new();
        report_failure(
            &mut text,
            &key,
            &StoreError::Forbidden("token \"ci\" may not create".to_string()),
        )
        .expect("write");
        assert_eq!(
            String::from_utf8(text).expect("utf-8"),
            "Error: egress-rule/prod/db: forbidden: token \"ci\" may not create\n"
        );
    }
}
