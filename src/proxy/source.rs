//! Where the rules come from and how changes are followed: the store of the current context
//! (watched; a change is in force within moments), or `-f` files (polled for changes). Every rule set
//! is validated as a whole before it is put in force; one that fails is refused with a logged
//! diagnostic and the last good set stays.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::services::Registry;
use super::state::{Active, Routing, Shared};
use crate::context::Selection;
use crate::diag::Severity;
use crate::load::LoadOptions;
use crate::load::files::{self, Input};
use crate::model::Resource;
use crate::store::{EventType, ObjectKey, Revision, Selector, Store, StoreError};
use crate::validate;

/// How often `-f` files are checked for changes.
const FILE_POLL: Duration = Duration::from_millis(250);
/// How long to wait before trying a store again after it failed.
const RETRY: Duration = Duration::from_secs(1);

pub enum Source {
    Store(Selection),
    Files { paths: Vec<PathBuf>, recursive: bool },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Store(sel) => sel.location.to_string(),
            Source::Files { paths, .. } => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A source that has made its first load and can follow changes.
pub enum Follower {
    Store {
        store: Box<dyn Store>,
        objects: BTreeMap<ObjectKey, Resource>,
        revision: Revision,
        name: String,
    },
    Files {
        paths: Vec<PathBuf>,
        recursive: bool,
        fingerprint: Vec<(Input, u64, Option<SystemTime>)>,
        loads: u64,
        name: String,
    },
}

/// The first load. An error here stops the proxy before it listens: a user who starts it wants to
/// know at once that the rules cannot be read.
pub fn initial(source: Source, routing: &Routing) -> Result<(Active, Follower), String> {
    let name = source.describe();
    match source {
        Source::Store(selection) => {
            let store = selection
                .open()
                .map_err(|e| format!("cannot open the store {name}: {e}"))?;
            let (objects, revision) =
                list(store.as_ref()).map_err(|e| format!("cannot read the rules from {name}: {e}"))?;
            let items: Vec<Resource> = objects.values().cloned().collect();
            check_all(&items).map_err(|e| format!("the rules in {name} are invalid:\n{e}"))?;
            let active = Active::new(items, revision, name.clone(), routing);
            Ok((
                active,
                Follower::Store {
                    store,
                    objects,
                    revision,
                    name,
                },
            ))
        }
        Source::Files { paths, recursive } => {
            let fingerprint = fingerprint(&paths, recursive).map_err(|e| e.to_string())?;
            let items = load_files(&fingerprint)?;
            let active = Active::new(items, 1, name.clone(), routing);
            Ok((
                active,
                Follower::Files {
                    paths,
                    recursive,
                    fingerprint,
                    loads: 1,
                    name,
                },
            ))
        }
    }
}

pub fn announce(active: &Active, how: &str) {
    use crate::model::Kind;
    let routing = if active.routes.route_rules + active.routes.policies == 0 {
        String::new()
    } else {
        format!(
            ", {}, {}",
            plural(active.count(Kind::RouteRule), "RouteRule"),
            plural_policies(active.count(Kind::DestinationPolicy))
        )
    };
    eprintln!(
        "meshctl proxy: rules at revision {}: {}{routing} (from {}){how}",
        active.revision,
        plural(active.rules.egress_rules(), "EgressRule"),
        active.source
    );
}

fn plural_policies(n: usize) -> String {
    if n == 1 {
        "1 DestinationPolicy".to_string()
    } else {
        format!("{n} DestinationPolicies")
    }
}

/// What tells a file's versions apart when it is polled: its length and modification time.
pub type Stamp = (u64, Option<std::time::SystemTime>);

pub fn stamp(path: &std::path::Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()))
}

/// Follows the service registry file (polled like `-f` rule files) until `stop` is set; runs on its
/// own thread. A file that fails to load is refused and the registry in force stays.
/// `loaded` is the file's stamp taken before the registry in force was read from it, so that a change
/// made while the proxy was starting is not missed.
pub fn follow_services(path: PathBuf, loaded: Option<Stamp>, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut last = loaded;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(FILE_POLL);
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match Registry::load(&path) {
            Ok(registry) => {
                let n = registry.len();
                let _installing = shared.routing.installing();
                shared.routing.set_registry(registry);
                let current = shared.rules();
                let active = Active::new(
                    current.objects.clone(),
                    current.revision,
                    current.source.clone(),
                    &shared.routing,
                );
                shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                shared.install(active);
                eprintln!(
                    "meshctl proxy: {} from {} (reloaded)",
                    plural(n, "service"),
                    path.display()
                );
            }
            Err(e) => {
                shared.metrics.reloads_refused.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "meshctl proxy: refused the service registry: {e}\nmeshctl proxy: the registry loaded before stays in force"
                );
            }
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Follows changes until `stop` is set; runs on its own thread (the store API blocks).
pub fn follow(mut follower: Follower, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    match &mut follower {
        Follower::Store {
            store,
            objects,
            revision,
            name,
        } => follow_store(store.as_ref(), objects, revision, name, &shared, &stop),
        Follower::Files {
            paths,
            recursive,
            fingerprint,
            loads,
            name,
        } => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(FILE_POLL);
                let now = match self::fingerprint(paths, *recursive) {
                    Ok(f) => f,
                    Err(e) => {
                        if !fingerprint.is_empty() {
                            refuse(&shared, &format!("cannot read {name}: {e}"));
                            fingerprint.clear();
                        }
                        continue;
                    }
                };
                if now == *fingerprint {
                    continue;
                }
                *fingerprint = now;
                match load_files(fingerprint) {
                    Ok(items) => {
                        *loads += 1;
                        let loads = *loads;
                        install(&shared, |r| Active::new(items, loads, name.clone(), r));
                    }
                    Err(e) => refuse(&shared, &e),
                }
            }
        }
    }
}

fn follow_store(
    store: &dyn Store,
    objects: &mut BTreeMap<ObjectKey, Resource>,
    revision: &mut Revision,
    name: &str,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let all = Selector::default();
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let mut watch = match store.watch(&all, *revision) {
            Ok(w) => w,
            Err(e) => {
                // Compacted past our revision, or the store is away: list again when it answers.
                if !failing {
                    eprintln!(
                        "meshctl proxy: lost the store {name} ({e}); keeping revision {revision} in force and retrying"
                    );
                    failing = true;
                }
                std::thread::sleep(RETRY);
                match list(store) {
                    Ok((fresh, rev)) => {
                        if rev != *revision || fresh != *objects {
                            *objects = fresh;
                            *revision = rev;
                            apply(shared, objects, *revision, name);
                        }
                        failing = false;
                    }
                    Err(_) => continue,
                }
                continue;
            }
        };
        failing = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match watch.next(Duration::from_millis(200)) {
                Ok(Some(event)) => {
                    record(objects, revision, event);
                    // Take every event already waiting, then compile once.
                    loop {
                        match watch.next(Duration::ZERO) {
                            Ok(Some(event)) => record(objects, revision, event),
                            Ok(None) => break,
                            Err(_) => break,
                        }
                    }
                    apply(shared, objects, *revision, name);
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("meshctl proxy: the watch on {name} ended ({e}); listing again");
                    break;
                }
            }
        }
        match list(store) {
            Ok((fresh, rev)) => {
                if fresh != *objects {
                    *objects = fresh;
                    *revision = rev;
                    apply(shared, objects, *revision, name);
                } else {
                    *revision = rev;
                }
            }
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

fn record(objects: &mut BTreeMap<ObjectKey, Resource>, revision: &mut Revision, event: crate::store::Event) {
    *revision = (*revision).max(event.revision);
    let key = ObjectKey::of(&event.object);
    match event.kind {
        EventType::Deleted => {
            objects.remove(&key);
        }
        EventType::Added | EventType::Modified => {
            objects.insert(key, event.object);
        }
    }
}

fn apply(shared: &Shared, objects: &BTreeMap<ObjectKey, Resource>, revision: Revision, name: &str) {
    let items: Vec<Resource> = objects.values().cloned().collect();
    match check_all(&items) {
        Ok(()) => install(shared, |r| Active::new(items, revision, name.to_string(), r)),
        Err(e) => refuse(
            shared,
            &format!("the rules in {name} at revision {revision} are invalid:\n{e}"),
        ),
    }
}

/// Builds the new rule set and puts it in force, under the install lock (see [`Routing::installing`]).
fn install(shared: &Shared, build: impl FnOnce(&Routing) -> Active) {
    let _installing = shared.routing.installing();
    let active = build(&shared.routing);
    announce(&active, " (reloaded)");
    shared
        .metrics
        .egress_rules
        .store(active.rules.egress_rules() as u64, Ordering::Relaxed);
    shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
    shared.install(active);
}

fn refuse(shared: &Shared, why: &str) {
    shared.metrics.reloads_refused.fetch_add(1, Ordering::Relaxed);
    let current = shared.rules().revision;
    eprintln!("meshctl proxy: refused the rule set: {why}\nmeshctl proxy: revision {current} stays in force");
}

fn list(store: &dyn Store) -> Result<(BTreeMap<ObjectKey, Resource>, Revision), StoreError> {
    let listing = store.list(&Selector::default())?;
    let objects = listing.items.into_iter().map(|o| (ObjectKey::of(&o), o)).collect();
    Ok((objects, listing.revision))
}

/// Objects from a store were validated when written; they are checked again in case the store was
/// written by another version (or by hand), so the proxy never enforces a set it would reject.
fn check_all(items: &[Resource]) -> Result<(), String> {
    let mut problems = Vec::new();
    for o in items {
        for d in validate::check_object(o) {
            if d.severity == Severity::Error {
                problems.push(format!(
                    "  {}: {}: {}",
                    ObjectKey::of(o),
                    d.field.as_deref().unwrap_or("object"),
                    d.message
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

type Fingerprint = Vec<(Input, u64, Option<SystemTime>)>;

fn fingerprint(paths: &[PathBuf], recursive: bool) -> Result<Fingerprint, files::InputError> {
    let inputs = files::collect(paths, recursive)?;
    Ok(inputs
        .into_iter()
        .map(|i| {
            let (len, mtime) = match &i {
                Input::File(p) => match std::fs::metadata(p) {
                    Ok(m) => (m.len(), m.modified().ok()),
                    Err(_) => (u64::MAX, None),
                },
                Input::Stdin => (0, None),
            };
            (i, len, mtime)
        })
        .collect())
}

/// Reads and validates the files as `meshctl validate` does; all or nothing.
fn load_files(fingerprint: &Fingerprint) -> Result<Vec<Resource>, String> {
    let opts = LoadOptions {
        keep_resources: true,
        ..LoadOptions::default()
    };
    let inputs: Vec<Input> = fingerprint.iter().map(|(i, _, _)| i.clone()).collect();
    let checked = validate::check_inputs(&inputs, &opts)?;
    let mut items: Vec<Resource> = checked.resources.into_iter().map(|(_, r)| r).collect();
    let diagnostics = checked.diagnostics;
    let errors: Vec<_> = diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        let mut summary = crate::validate::render::Summary {
            files: fingerprint.len(),
            ..Default::default()
        };
        summary.count(&errors);
        let mut out = Vec::new();
        let opts = crate::validate::render::text::TextOptions {
            color: false,
            quiet: false,
        };
        let _ = crate::validate::render::text::render(&mut out, &errors, &summary, &opts);
        return Err(format!(
            "{} in the files:\n{}",
            plural(errors.len(), "error"),
            String::from_utf8_lossy(&out).trim_end()
        ));
    }
    for o in &mut items {
        if o.metadata.namespace.is_none() {
            o.metadata.namespace = Some(crate::model::meta::DEFAULT_NAMESPACE.to_string());
        }
    }
    Ok(items)
}
