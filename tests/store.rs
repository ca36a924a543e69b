//! The config store's conformance suite: one set of tests run against each backend that keeps its
//! own data, the embedded sqlite store (a file in a temporary directory per test) and etcd (a real
//! 3-member cluster on loopback, one per test binary, each test under its own key prefix), as
//! `sqlite::NAME` and `etcd::NAME`. Then what only one backend has: sqlite's files and event log;
//! etcd's compaction, failover, quorum and key prefixes (those tests start their own clusters when
//! they break or compact one).
//!
//! The assertions are the same for both backends, so none compares a revision with a number: etcd's
//! revision starts at 1 and is shared by the whole cluster (other tests' writes under other prefixes
//! move it too), so revisions are compared by order and with the revisions the writes returned.
//! "Nothing was written" is proved with the event log (`assert_nothing_written_since`), not by the
//! revision standing still. sqlite's exact counting (0, then +1 per write) has a test of its own.
//!
//! Without `etcd` installed the etcd tests pass after a message, except under CI, where they fail.
//! No test asserts on timing; waits for events use generous timeouts, so a loaded machine only makes
//! them slower, never failing.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use meshctl::diag::Severity;
use meshctl::load::LoadOptions;
use meshctl::model::common::IstioService;
use meshctl::model::egress_rule::EgressPort;
use meshctl::model::{API_VERSION, EgressRule, Kind, Metadata, Resource, Spec};
use meshctl::store::etcd::{EtcdOptions, EtcdStore};
use meshctl::store::sqlite::SqliteStore;
use meshctl::store::{Event, EventType, ObjectKey, Revision, Selector, Store, StoreError, Watch};

/// Long enough for any loaded machine; a passing test never waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// Opens a handle on one test's store: the same store every time it is called (the same sqlite file,
/// the same etcd cluster and key prefix), so a test can drop a handle and open another, or use two.
type Open = dyn Fn() -> Box<dyn Store>;

fn egress(namespace: Option<&str>, name: &str, host: &str) -> Resource {
    Resource {
        api_version: API_VERSION.to_string(),
        kind: Kind::EgressRule,
        metadata: Metadata {
            name: Some(name.to_string()),
            namespace: namespace.map(str::to_string),
            ..Metadata::default()
        },
        spec: Spec::EgressRule(EgressRule {
            destination: Some(IstioService {
                service: Some(host.to_string()),
                ..IstioService::default()
            }),
            ports: Some(vec![EgressPort {
                port: Some(443),
                protocol: Some("https".to_string()),
            }]),
            use_egress_proxy: None,
        }),
    }
}

fn host_of(r: &Resource) -> &str {
    match &r.spec {
        Spec::EgressRule(e) => e.destination.as_ref().unwrap().service.as_deref().unwrap(),
        _ => panic!("not an egress rule"),
    }
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::EgressRule, ns, name)
}

/// The revision of a stored object's last change: its resourceVersion.
fn rv(r: &Resource) -> Revision {
    let text = r
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_else(|| panic!("{} has no resourceVersion", ObjectKey::of(r)));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: resourceVersion {text:?} is not a revision: {e}", ObjectKey::of(r)))
}

/// Every rule in `testdata/valid/`, as the loader reads them.
fn valid_rules() -> Vec<Resource> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/valid");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let opts = LoadOptions {
        keep_resources: true,
        ..LoadOptions::default()
    };
    let mut rules = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let name: Arc<str> = Arc::from(file.display().to_string());
        let report = meshctl::validate::check_file(&name, &bytes, &opts);
        let errors: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        rules.extend(report.resources);
    }
    assert!(rules.len() >= 10, "expected the valid examples, found {}", rules.len());
    rules
}

/// Waits for the next event, failing the test when none comes in `PATIENCE`.
fn next_event(watch: &mut dyn Watch) -> Event {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(e) = watch.next(Duration::from_millis(200)).unwrap() {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "no event within {PATIENCE:?}");
    }
}

/// An event as (type, revision, object), to compare with what a write returned.
fn triple(e: &Event) -> (EventType, Revision, &Resource) {
    (e.kind, e.revision, &e.object)
}

/// Proves that nothing in the store changed after revision `since`: a marker object created now must
/// be the first event a watch from `since` sees (events come in revision order, so a write in between
/// would come first). The marker is deleted again. (`store.revision()` standing still would prove it
/// for sqlite only: etcd's revision also moves with writes outside the store's prefix.)
fn assert_nothing_written_since(store: &dyn Store, since: Revision, what: &str) {
    let name = format!("marker-{:08x}", fastrand::u32(..));
    let marker = store
        .create(&egress(Some("marker"), &name, "marker.example.com"))
        .unwrap();
    let mut watch = store.watch(&Selector::default(), since).unwrap();
    let first = next_event(watch.as_mut());
    assert_eq!(
        triple(&first),
        (EventType::Added, rv(&marker), &marker),
        "{what}: something was written after revision {since}"
    );
    store.delete(&ObjectKey::of(&marker)).unwrap();
}

// === The backends ===

/// A new sqlite file in a temporary directory, which lives as long as the opener.
fn sqlite_backend(_test: &str) -> Option<Box<Open>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    Some(Box::new(move || {
        let _keep = &dir;
        Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn Store>
    }))
}

fn etcd_options(prefix: &str) -> EtcdOptions {
    EtcdOptions {
        prefix: prefix.to_string(),
        ..EtcdOptions::default()
    }
}

/// A key prefix of its own on the binary's shared etcd cluster. `None` when etcd is not installed
/// (outside CI).
fn etcd_backend(test: &str) -> Option<Box<Open>> {
    let cluster = support::etcd::shared()?;
    let endpoints = cluster.endpoints();
    let prefix = support::etcd::unique_prefix(test);
    Some(Box::new(move || {
        Box::new(EtcdStore::connect(&endpoints, etcd_options(&prefix)).unwrap()) as Box<dyn Store>
    }))
}

/// The conformance tests: each is a function below taking the backend's [`Open`]; this generates one
/// `#[test]` per name in the module it is invoked in, for the backend its argument names.
macro_rules! conformance_tests {
    ($backend:ident) => {
        conformance_tests!(@each $backend:
            create_get_update_delete,
            already_exists_and_not_found_write_nothing,
            update_checks_the_resource_version_when_one_is_sent,
            uid_and_creation_timestamp_sent_by_the_client_are_ignored,
            list_is_sorted_filtered_and_carries_its_revision,
            every_valid_example_round_trips_exactly,
            an_invalid_object_is_refused_and_nothing_is_written,
            warnings_do_not_block_a_write,
            two_handles_see_each_others_writes_and_events,
            two_writers_with_the_same_resource_version_one_wins,
            watch_replays_then_follows_and_resumes_from_the_last_revision_seen,
            watch_from_a_future_revision_waits_for_it,
            watch_follows_only_what_its_selector_covers,
            next_returns_none_when_nothing_happens,
            reopening_keeps_objects_revision_and_events,
            many_threads_read_and_write_at_once,
        );
    };
    (@each $backend:ident: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(open) = super::$backend(stringify!($name)) {
                    super::$name(&*open);
                }
            }
        )*
    };
}

#[test]
fn stores_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SqliteStore>();
    check::<EtcdStore>();
    let _as_trait_object: Option<Box<dyn Store>> = None::<Box<SqliteStore>>.map(|s| s as Box<dyn Store>);
    let _as_trait_object: Option<Box<dyn Store>> = None::<Box<EtcdStore>>.map(|s| s as Box<dyn Store>);
}

// === The conformance tests ===

fn create_get_update_delete(open: &Open) {
    let store = open();
    let before = store.revision().unwrap();

    let created = store.create(&egress(None, "google", "*.googleapis.com")).unwrap();
    let m = &created.metadata;
    assert_eq!(
        m.namespace.as_deref(),
        Some("default"),
        "the namespace is stored explicitly"
    );
    let v1 = rv(&created);
    assert!(v1 > before, "a write moves the revision on: {before}, then {v1}");
    let uid = m.uid.clone().unwrap();
    assert_eq!(uuid::Uuid::parse_str(&uid).unwrap().get_version_num(), 4);
    let created_at = m.creation_timestamp.clone().unwrap();
    humantime::parse_rfc3339(&created_at).unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == "2024-01-01T00:00:00Z".len(),
        "{created_at}"
    );
    assert_eq!(store.get(&key("default", "google")).unwrap(), created);
    assert!(store.revision().unwrap() >= v1, "the store's revision counts the write");

    let mut change = created.clone();
    if let Spec::EgressRule(e) = &mut change.spec {
        e.use_egress_proxy = Some(true);
    }
    let updated = store.update(&change).unwrap();
    let v2 = rv(&updated);
    assert!(v2 > v1, "an update has a later revision: {v1}, then {v2}");
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()), "uid kept");
    assert_eq!(
        updated.metadata.creation_timestamp,
        Some(created_at),
        "creationTimestamp kept"
    );
    assert_eq!(updated.spec, change.spec);
    assert_eq!(store.get(&key("default", "google")).unwrap(), updated);

    let deleted = store.delete(&key("default", "google")).unwrap();
    assert_eq!(deleted.spec, updated.spec);
    let v3 = rv(&deleted);
    assert!(
        v3 > v2,
        "a deleted object carries the deletion's revision: {v2}, then {v3}"
    );
    assert!(
        matches!(store.get(&key("default", "google")), Err(StoreError::NotFound(k)) if k == key("default", "google"))
    );
    assert!(
        store.revision().unwrap() >= v3,
        "the store's revision counts the deletion"
    );
}

fn already_exists_and_not_found_write_nothing(open: &Open) {
    let store = open();
    let x = store.create(&egress(Some("a"), "x", "x.example.com")).unwrap();

    let err = store.create(&egress(Some("a"), "x", "other.example.com")).unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(k) if *k == key("a", "x")),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "egress-rule/a/x already exists");
    let missing = egress(Some("a"), "missing", "m.example.com");
    assert!(matches!(store.update(&missing), Err(StoreError::NotFound(k)) if k == key("a", "missing")));
    assert!(matches!(
        store.delete(&key("a", "missing")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(store.get(&key("c", "x")), Err(StoreError::NotFound(_))));
    assert_nothing_written_since(
        &*store,
        rv(&x),
        "a create that found its key taken, an update and a delete that found nothing",
    );
    assert_eq!(store.get(&key("a", "x")).unwrap(), x);

    // Same name in another namespace is another object.
    store.create(&egress(Some("b"), "x", "b.example.com")).unwrap();
    assert_eq!(host_of(&store.get(&key("a", "x")).unwrap()), "x.example.com");
    assert_eq!(host_of(&store.get(&key("b", "x")).unwrap()), "b.example.com");
}

fn update_checks_the_resource_version_when_one_is_sent(open: &Open) {
    let store = open();
    let v1 = store.create(&egress(None, "x", "one.example.com")).unwrap();
    let mut v2 = egress(None, "x", "two.example.com");
    v2.metadata.resource_version = v1.metadata.resource_version.clone();
    let v2 = store.update(&v2).unwrap();
    assert!(rv(&v2) > rv(&v1), "{} then {}", rv(&v1), rv(&v2));

    // v1 is stale now.
    let mut stale = v1.clone();
    if let Spec::EgressRule(e) = &mut stale.spec {
        e.use_egress_proxy = Some(false);
    }
    match store.update(&stale) {
        Err(StoreError::Conflict { key: k, sent, current }) => {
            assert_eq!(k, key("default", "x"));
            assert_eq!((sent, current), (rv(&v1).to_string(), rv(&v2).to_string()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get(&key("default", "x")).unwrap(), v2);
    assert_nothing_written_since(&*store, rv(&v2), "an update that conflicted");

    // Without a resourceVersion (or an empty one) the replace is unconditional.
    let mut blind = egress(None, "x", "three.example.com");
    let v3 = store.update(&blind).unwrap();
    assert!(rv(&v3) > rv(&v2), "{} then {}", rv(&v2), rv(&v3));
    blind.metadata.resource_version = Some(String::new());
    let v4 = store.update(&blind).unwrap();
    assert!(rv(&v4) > rv(&v3), "{} then {}", rv(&v3), rv(&v4));
}

fn uid_and_creation_timestamp_sent_by_the_client_are_ignored(open: &Open) {
    let store = open();
    let before = store.revision().unwrap();
    let mut r = egress(None, "x", "x.example.com");
    r.metadata.uid = Some("not-a-uid".to_string());
    r.metadata.creation_timestamp = Some("1999-01-01T00:00:00Z".to_string());
    r.metadata.resource_version = Some("999999999".to_string());
    let created = store.create(&r).unwrap();
    assert_ne!(created.metadata.uid.as_deref(), Some("not-a-uid"));
    assert_ne!(
        created.metadata.creation_timestamp.as_deref(),
        Some("1999-01-01T00:00:00Z")
    );
    let after = store.revision().unwrap();
    assert!(
        before < rv(&created) && rv(&created) <= after,
        "the store sets the resourceVersion (the write's revision, between {before} and {after}): {}",
        rv(&created)
    );

    let mut again = created.clone();
    again.metadata.uid = Some("other".to_string());
    again.metadata.creation_timestamp = Some("2000-01-01T00:00:00Z".to_string());
    let updated = store.update(&again).unwrap();
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_eq!(updated.metadata.creation_timestamp, created.metadata.creation_timestamp);
}

fn list_is_sorted_filtered_and_carries_its_revision(open: &Open) {
    let store = open();
    let mut last = 0;
    for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "b")] {
        last = rv(&store.create(&egress(Some(ns), name, "h.example.com")).unwrap());
    }
    let mut rules = valid_rules();
    rules.retain(|r| r.kind != Kind::EgressRule);
    for r in &rules {
        last = rv(&store.create(r).unwrap());
    }
    let names = |l: &meshctl::store::Listing| {
        l.items
            .iter()
            .map(|r| format!("{}/{}/{}", r.kind, r.namespace(), r.name()))
            .collect::<Vec<_>>()
    };

    let all = store.list(&Selector::default()).unwrap();
    assert!(
        last <= all.revision && all.revision <= store.revision().unwrap(),
        "a list is read at a revision from its last write on: {last}, then {}",
        all.revision
    );
    assert!(all.items.iter().all(|r| rv(r) <= all.revision));
    assert_eq!(all.items.len(), 4 + rules.len());
    let mut sorted = all.items.clone();
    sorted.sort_by(|x, y| ObjectKey::of(x).cmp(&ObjectKey::of(y)));
    assert_eq!(all.items, sorted, "sorted by kind, namespace, name");

    let egress_all = store
        .list(&Selector {
            kind: Some(Kind::EgressRule),
            namespace: None,
        })
        .unwrap();
    assert_eq!(
        names(&egress_all),
        ["EgressRule/a/b", "EgressRule/a/y", "EgressRule/b/a", "EgressRule/b/z"]
    );
    let egress_b = store
        .list(&Selector {
            kind: Some(Kind::EgressRule),
            namespace: Some("b".to_string()),
        })
        .unwrap();
    assert_eq!(names(&egress_b), ["EgressRule/b/a", "EgressRule/b/z"]);
    let ns_a = store
        .list(&Selector {
            kind: None,
            namespace: Some("a".to_string()),
        })
        .unwrap();
    assert_eq!(names(&ns_a), ["EgressRule/a/b", "EgressRule/a/y"]);
    let none = store
        .list(&Selector {
            kind: Some(Kind::EgressRule),
            namespace: Some("nothing-here".to_string()),
        })
        .unwrap();
    assert!(none.items.is_empty());
    assert!(none.revision >= all.revision, "{} then {}", all.revision, none.revision);

    // A watch from a list's revision repeats nothing the list had and misses nothing after it.
    let later = store.create(&egress(Some("a"), "later", "h.example.com")).unwrap();
    let mut watch = store.watch(&Selector::default(), all.revision).unwrap();
    assert_eq!(
        triple(&next_event(watch.as_mut())),
        (EventType::Added, rv(&later), &later)
    );
}

/// Every valid example, stored and read back (by get, list and watch), is what was stored: the JSON
/// encoding loses nothing (durations as written, string-match shorthands, whole-number percents,
/// fractions, labels).
fn every_valid_example_round_trips_exactly(open: &Open) {
    let store = open();
    let before = store.revision().unwrap();
    let rules = valid_rules();
    let mut stored = Vec::new();
    for r in &rules {
        let key = ObjectKey::of(r);
        // The examples reuse names across files; keep the first of each.
        if store.get(&key).is_ok() {
            continue;
        }
        let s = store.create(r).unwrap();
        let mut expected = r.clone();
        expected.metadata.namespace = Some(key.namespace.clone());
        expected.metadata.resource_version = s.metadata.resource_version.clone();
        expected.metadata.uid = s.metadata.uid.clone();
        expected.metadata.creation_timestamp = s.metadata.creation_timestamp.clone();
        assert_eq!(s, expected, "{key}");
        assert_eq!(store.get(&key).unwrap(), expected, "{key}");
        stored.push(expected);
    }
    let mut watch = store.watch(&Selector::default(), before).unwrap();
    for expected in &stored {
        let e = next_event(watch.as_mut());
        assert_eq!(e.kind, EventType::Added);
        assert_eq!(&e.object, expected);
    }
    // And again from a fresh handle: nothing depended on this handle's memory.
    drop(watch);
    drop(store);
    let store = open();
    let mut listed = store.list(&Selector::default()).unwrap().items;
    stored.sort_by(|x, y| ObjectKey::of(x).cmp(&ObjectKey::of(y)));
    listed.sort_by(|x, y| ObjectKey::of(x).cmp(&ObjectKey::of(y)));
    assert_eq!(listed, stored);
}

fn an_invalid_object_is_refused_and_nothing_is_written(open: &Open) {
    let store = open();
    let ok = store.create(&egress(None, "ok", "ok.example.com")).unwrap();

    let mut bad = egress(None, "bad", "bad.example.com");
    if let Spec::EgressRule(e) = &mut bad.spec {
        e.ports.as_mut().unwrap()[0].port = Some(0);
    }
    match store.create(&bad) {
        Err(StoreError::Invalid { key: k, diagnostics }) => {
            assert_eq!(k, key("default", "bad"));
            assert!(!diagnostics.is_empty());
            assert!(diagnostics.iter().all(|d| d.severity == Severity::Error));
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.field.as_deref() == Some("spec.ports[0].port")),
                "{diagnostics:?}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        store.get(&key("default", "bad")),
        Err(StoreError::NotFound(_))
    ));

    let mut bad_update = egress(None, "ok", "ok.example.com");
    if let Spec::EgressRule(e) = &mut bad_update.spec {
        e.ports = Some(vec![]);
    }
    assert!(matches!(store.update(&bad_update), Err(StoreError::Invalid { .. })));

    let mut no_name = egress(None, "x", "x.example.com");
    no_name.metadata.name = None;
    assert!(matches!(store.create(&no_name), Err(StoreError::Invalid { .. })));

    let mut bad_ns = egress(Some("Not_A_Label"), "x", "x.example.com");
    assert!(matches!(store.create(&bad_ns), Err(StoreError::Invalid { .. })));
    bad_ns.metadata.namespace = Some("fine".to_string());
    bad_ns.kind = Kind::RouteRule;
    assert!(
        matches!(store.create(&bad_ns), Err(StoreError::BadRequest(_))),
        "kind differs from spec"
    );

    assert_nothing_written_since(&*store, rv(&ok), "refused writes");
    assert_eq!(
        store.list(&Selector::default()).unwrap().items,
        std::slice::from_ref(&ok)
    );
    assert_eq!(store.get(&key("default", "ok")).unwrap(), ok);
}

fn warnings_do_not_block_a_write(open: &Open) {
    let store = open();
    let mut open = egress(None, "everything", "0.0.0.0/0");
    if let Spec::EgressRule(e) = &mut open.spec {
        e.ports = Some(vec![EgressPort {
            port: Some(3306),
            protocol: Some("tcp".to_string()),
        }]);
    }
    let diagnostics = meshctl::validate::check_object(&open);
    assert!(
        diagnostics.iter().any(|d| d.severity == Severity::Warning),
        "{diagnostics:?}"
    );
    assert!(
        diagnostics.iter().all(|d| d.severity != Severity::Error),
        "{diagnostics:?}"
    );
    store.create(&open).unwrap();
}

/// Two handles on one store (two connections to one sqlite file, two clients of one etcd prefix), as
/// two processes would have.
fn two_handles_see_each_others_writes_and_events(open: &Open) {
    let a = open();
    let b = open();
    let start = b.revision().unwrap();
    let mut watch_b = b.watch(&Selector::default(), start).unwrap();

    let from_a = a.create(&egress(None, "from-a", "a.example.com")).unwrap();
    assert_eq!(b.get(&key("default", "from-a")).unwrap(), from_a);
    let mut watch_a = a.watch(&Selector::default(), b.revision().unwrap()).unwrap();
    let from_b = b.create(&egress(None, "from-b", "b.example.com")).unwrap();
    assert_eq!(a.get(&key("default", "from-b")).unwrap(), from_b);
    assert!(rv(&from_b) > rv(&from_a));
    assert_eq!(
        a.list(&Selector::default()).unwrap().items,
        [from_a.clone(), from_b.clone()]
    );

    // b's watch sees a's write (made through another handle) and its own.
    let e1 = next_event(watch_b.as_mut());
    let e2 = next_event(watch_b.as_mut());
    assert_eq!(triple(&e1), (EventType::Added, rv(&from_a), &from_a));
    assert_eq!(triple(&e2), (EventType::Added, rv(&from_b), &from_b));
    // a's watch, started after a's write, sees only b's.
    let e = next_event(watch_a.as_mut());
    assert_eq!(triple(&e), (EventType::Added, rv(&from_b), &from_b));
    assert!(watch_a.next(Duration::from_millis(100)).unwrap().is_none());
}

fn two_writers_with_the_same_resource_version_one_wins(open: &Open) {
    let store = open();
    let base = store.create(&egress(None, "x", "base.example.com")).unwrap();
    let mut winners = Vec::new();
    // Three rounds: threads sharing one handle, then two handles (as two processes would).
    for round in 0..3 {
        let current = store.get(&key("default", "x")).unwrap();
        let other = open();
        let stores: [&dyn Store; 2] = if round == 0 {
            [&*store, &*store]
        } else {
            [&*store, &*other]
        };
        let barrier = Barrier::new(2);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let mut change = current.clone();
                    if let Spec::EgressRule(e) = &mut change.spec {
                        e.destination.as_mut().unwrap().service = Some(format!("writer{i}.example.com"));
                    }
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        st.update(&change)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
            .count();
        assert_eq!((wins.len(), conflicts), (1, 1), "round {round}: {results:?}");
        assert_eq!(&store.get(&key("default", "x")).unwrap(), wins[0]);
        winners.push(wins[0].clone());
    }
    // Only the winners wrote: after the base, the events are theirs, in order, and nothing else.
    let mut watch = store.watch(&Selector::default(), rv(&base)).unwrap();
    for winner in &winners {
        let e = next_event(watch.as_mut());
        assert_eq!(triple(&e), (EventType::Modified, rv(winner), winner));
    }
    assert_nothing_written_since(&*store, rv(winners.last().unwrap()), "the losing writers");
}

fn watch_replays_then_follows_and_resumes_from_the_last_revision_seen(open: &Open) {
    let store: Arc<dyn Store> = Arc::from(open());
    let one = store.create(&egress(None, "one", "one.example.com")).unwrap();
    let two = store.create(&egress(None, "two", "two.example.com")).unwrap();
    let uno = store.update(&egress(None, "one", "uno.example.com")).unwrap();

    let mut watch = store.watch(&Selector::default(), rv(&one)).unwrap();
    let e = next_event(watch.as_mut());
    assert_eq!(triple(&e), (EventType::Added, rv(&two), &two));
    let e = next_event(watch.as_mut());
    assert_eq!(triple(&e), (EventType::Modified, rv(&uno), &uno));
    assert_eq!(host_of(&e.object), "uno.example.com");
    assert!(watch.next(Duration::ZERO).unwrap().is_none(), "caught up");

    // Writes from another thread while the watch waits: it wakes for each, in order. The writer
    // returns the revisions of its writes.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut revisions = Vec::new();
            for i in 0..20 {
                let created = store.create(&egress(None, &format!("n{i}"), "n.example.com")).unwrap();
                revisions.push(rv(&created));
            }
            revisions.push(rv(&store.delete(&key("default", "two")).unwrap()));
            revisions
        })
    };
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next_event(watch.as_mut()));
    }
    // A new watch resumes from the last revision the first one saw: it misses nothing and repeats
    // nothing.
    let last = seen.last().unwrap().revision;
    drop(watch);
    let mut resumed = store.watch(&Selector::default(), last).unwrap();
    for _ in 0..11 {
        seen.push(next_event(resumed.as_mut()));
    }
    let written = writer.join().unwrap();
    let revisions: Vec<_> = seen.iter().map(|e| e.revision).collect();
    assert_eq!(
        revisions, written,
        "one event per write, at the write's revision, in order"
    );
    assert!(written.windows(2).all(|w| w[0] < w[1]), "{written:?}");
    for (i, e) in seen[..20].iter().enumerate() {
        assert_eq!((e.kind, e.object.name()), (EventType::Added, format!("n{i}").as_str()));
        assert_eq!(e.object.metadata.resource_version, Some(e.revision.to_string()));
    }
    let deleted = &seen[20];
    assert_eq!(
        (deleted.kind, deleted.object.name(), rv(&deleted.object)),
        (EventType::Deleted, "two", deleted.revision),
        "a deletion carries its own revision"
    );
    assert_eq!(host_of(&deleted.object), "two.example.com", "the object as it was");
    assert!(resumed.next(Duration::from_millis(50)).unwrap().is_none());
}

fn watch_from_a_future_revision_waits_for_it(open: &Open) {
    let store = open();
    let future = store.revision().unwrap() + 2;
    let mut watch = store.watch(&Selector::default(), future).unwrap();
    // Objects until one lands after `future`: three on sqlite; on etcd, writes elsewhere in the
    // cluster may take revisions in between.
    let mut written: Vec<Resource> = Vec::new();
    while written.last().is_none_or(|r| rv(r) <= future) {
        assert!(written.len() < 3, "three writes move the revision past {future}");
        let name = format!("w{}", written.len());
        written.push(store.create(&egress(None, &name, "h.example.com")).unwrap());
    }
    let first_after = written.last().unwrap();
    let e = next_event(watch.as_mut());
    assert_eq!(triple(&e), (EventType::Added, rv(first_after), first_after));
}

fn watch_follows_only_what_its_selector_covers(open: &Open) {
    let store = open();
    let start = store.revision().unwrap();
    let mut in_a = store
        .watch(
            &Selector {
                kind: Some(Kind::EgressRule),
                namespace: Some("a".to_string()),
            },
            start,
        )
        .unwrap();
    let mut route_rules = store
        .watch(
            &Selector {
                kind: Some(Kind::RouteRule),
                namespace: None,
            },
            start,
        )
        .unwrap();
    // Many events outside the selector (more than a watch reads per query) before the one inside.
    for i in 0..600 {
        store
            .create(&egress(Some("b"), &format!("r{i}"), "h.example.com"))
            .unwrap();
    }
    let mine = store.create(&egress(Some("a"), "mine", "h.example.com")).unwrap();
    let e = next_event(in_a.as_mut());
    assert_eq!(triple(&e), (EventType::Added, rv(&mine), &mine));
    assert!(in_a.next(Duration::from_millis(50)).unwrap().is_none());
    assert!(route_rules.next(Duration::from_millis(50)).unwrap().is_none());
    // A list this long is decoded on several threads; it comes back complete and in order.
    let b = store
        .list(&Selector {
            kind: Some(Kind::EgressRule),
            namespace: Some("b".to_string()),
        })
        .unwrap();
    let mut expected: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(
        b.items.iter().map(|r| r.name().to_string()).collect::<Vec<_>>(),
        expected
    );

    let route = valid_rules().into_iter().find(|r| r.kind == Kind::RouteRule).unwrap();
    let route = store.create(&route).unwrap();
    let e = next_event(route_rules.as_mut());
    assert_eq!(triple(&e), (EventType::Added, rv(&route), &route));
}

fn next_returns_none_when_nothing_happens(open: &Open) {
    let store = open();
    let mut watch = store.watch(&Selector::default(), 0).unwrap();
    assert!(watch.next(Duration::ZERO).unwrap().is_none());
    assert!(watch.next(Duration::from_millis(120)).unwrap().is_none());
}

fn reopening_keeps_objects_revision_and_events(open: &Open) {
    let (before, first, second, gone) = {
        let store = open();
        let before = store.revision().unwrap();
        let a = store.create(&egress(None, "a", "a.example.com")).unwrap();
        let b = store.create(&egress(Some("other"), "b", "b.example.com")).unwrap();
        let gone = store.delete(&key("default", "a")).unwrap();
        (before, a, b, gone)
    };
    let store = open();
    assert!(store.revision().unwrap() >= rv(&gone));
    assert!(matches!(store.get(&key("default", "a")), Err(StoreError::NotFound(_))));
    assert_eq!(store.get(&key("other", "b")).unwrap(), second);
    let mut w = store.watch(&Selector::default(), before).unwrap();
    let events: Vec<_> = (0..3).map(|_| next_event(w.as_mut())).collect();
    assert_eq!(triple(&events[0]), (EventType::Added, rv(&first), &first));
    assert_eq!(triple(&events[1]), (EventType::Added, rv(&second), &second));
    assert_eq!(triple(&events[2]), (EventType::Deleted, rv(&gone), &gone));
    // The revision keeps counting from where it was.
    let c = store.create(&egress(None, "c", "c.example.com")).unwrap();
    assert!(rv(&c) > rv(&gone), "{} then {}", rv(&gone), rv(&c));
}

fn many_threads_read_and_write_at_once(open: &Open) {
    let store = open();
    let before = store.revision().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || {
                for i in 0..10 {
                    let mine = store
                        .create(&egress(None, &format!("t{t}-{i}"), "h.example.com"))
                        .unwrap();
                    // Each list is one consistent read that already has this thread's write.
                    let listing = store.list(&Selector::default()).unwrap();
                    assert!(listing.items.len() <= 40);
                    assert!(listing.items.iter().all(|r| rv(r) <= listing.revision));
                    assert!(listing.items.contains(&mine), "{} missing", mine.name());
                }
            });
        }
    });
    let all = store.list(&Selector::default()).unwrap();
    assert_eq!(all.items.len(), 40);
    let mut revisions: Vec<_> = all.items.iter().map(rv).collect();
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), 40, "one revision per write");
    assert!(revisions[0] > before);
    assert!(store.revision().unwrap() >= revisions[39]);
}

// === The embedded sqlite store ===

mod sqlite {
    use super::*;

    conformance_tests!(sqlite_backend);

    fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        (dir, path)
    }

    /// sqlite's revision counts this file's writes exactly: 0 before the first, then +1 per write;
    /// writes that fail count nothing. (The conformance tests compare revisions by order only.)
    #[test]
    fn revisions_start_at_zero_and_count_every_write() {
        let (_dir, path) = temp();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), 0);
        let created = store.create(&egress(None, "x", "x.example.com")).unwrap();
        assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(store.revision().unwrap(), 1);

        // Writes that fail.
        assert!(store.create(&egress(None, "x", "x.example.com")).is_err());
        assert!(store.update(&egress(None, "missing", "m.example.com")).is_err());
        assert!(store.delete(&key("default", "missing")).is_err());
        let mut stale = egress(None, "x", "y.example.com");
        stale.metadata.resource_version = Some("7".to_string());
        assert!(matches!(store.update(&stale), Err(StoreError::Conflict { .. })));
        let mut invalid = egress(None, "bad", "bad.example.com");
        if let Spec::EgressRule(e) = &mut invalid.spec {
            e.ports = Some(vec![]);
        }
        assert!(matches!(store.create(&invalid), Err(StoreError::Invalid { .. })));
        assert_eq!(store.revision().unwrap(), 1, "failed writes count nothing");

        let updated = store.update(&egress(None, "x", "y.example.com")).unwrap();
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("2"));
        let deleted = store.delete(&key("default", "x")).unwrap();
        assert_eq!(deleted.metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(store.list(&Selector::default()).unwrap().revision, 3);
        let mut watch = store.watch(&Selector::default(), 0).unwrap();
        let revisions: Vec<_> = (0..3).map(|_| next_event(watch.as_mut()).revision).collect();
        assert_eq!(revisions, [1, 2, 3]);

        drop(watch);
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), 3);
        let again = store.create(&egress(None, "x", "x.example.com")).unwrap();
        assert_eq!(again.metadata.resource_version.as_deref(), Some("4"));
    }

    #[test]
    fn compaction_keeps_the_last_events_and_refuses_older_watches() {
        let (_dir, path) = temp();
        let store = SqliteStore::open(&path).unwrap().with_event_retention(10);
        // A watcher that falls behind: it reads one event, then the log is compacted past it.
        let mut laggard = store.watch(&Selector::default(), 0).unwrap();
        store.create(&egress(None, "x", "h.example.com")).unwrap();
        assert_eq!(next_event(laggard.as_mut()).revision, 1);
        for _ in 0..99 {
            store.update(&egress(None, "x", "h.example.com")).unwrap();
        }
        assert_eq!(store.revision().unwrap(), 100);

        let oldest = match store.watch(&Selector::default(), 0) {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!(requested, 0);
                oldest
            }
            Err(e) => panic!("expected Compacted, got {e:?}"),
            Ok(_) => panic!("expected Compacted, got a watch"),
        };
        assert!(
            (80..=90).contains(&oldest),
            "at least the last 10 events are kept: {oldest}"
        );
        assert!(matches!(
            store.watch(&Selector::default(), oldest - 1),
            Err(StoreError::Compacted { .. })
        ));
        // From `oldest` on, every later event is there.
        let mut w = store.watch(&Selector::default(), oldest).unwrap();
        for rev in oldest + 1..=100 {
            assert_eq!(next_event(w.as_mut()).revision, rev);
        }
        let err = laggard.next(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, StoreError::Compacted { requested: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("compacted"), "{err}");
        // The objects themselves are untouched by compaction.
        assert_eq!(
            store
                .get(&key("default", "x"))
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("100")
        );
    }

    #[test]
    fn files_and_directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/deeper/store.db");
        let store = SqliteStore::open(&path).unwrap();
        store.create(&egress(None, "x", "h.example.com")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&dir.path().join("new/deeper")), 0o700);
        for side in ["store.db-wal", "store.db-shm"] {
            let p = dir.path().join("new/deeper").join(side);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{side}");
            }
        }
    }

    #[test]
    fn a_file_that_is_not_a_store_is_unavailable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a_u8; 8192]).unwrap();
        let err = SqliteStore::open(&garbage).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains(&garbage.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a_u8; 8192], "left as it was");

        // Another program's SQLite database.
        let foreign = dir.path().join("foreign.db");
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('hi');",
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(&foreign).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("not a meshctl store"), "{err}");
        assert!(err.to_string().contains(&foreign.display().to_string()), "{err}");

        // A directory where the file should be.
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_store_from_a_newer_meshctl_is_refused() {
        let (_dir, path) = temp();
        drop(SqliteStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(msg.contains("newer meshctl") && msg.contains("99"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}

// === etcd ===

mod etcd {
    use std::time::Instant;

    use meshctl::store::Location;
    use meshctl::store::remote::RemoteOptions;

    use super::support::etcd::{EtcdCluster, READY, shared, unique_prefix};
    use super::*;

    conformance_tests!(etcd_backend);

    /// The per-request timeout the fault tests give their stores: short, so the tests are quick, and
    /// the bound they hold an operation to while members are down.
    const TIMEOUT: Duration = Duration::from_secs(1);

    fn connect(endpoints: &[String], prefix: &str) -> EtcdStore {
        let options = EtcdOptions {
            timeout: TIMEOUT,
            ..etcd_options(prefix)
        };
        EtcdStore::connect(endpoints, options).unwrap()
    }

    /// How long one operation may take while members are down: the timeout for each endpoint it may
    /// try, and as much again for a loaded machine. Longer means it hangs.
    fn bound(endpoints: usize) -> Duration {
        2 * TIMEOUT * endpoints as u32 + Duration::from_secs(2)
    }

    /// Runs `op` until it succeeds, within [`READY`]: while the cluster recovers it may fail, but only
    /// with `Unavailable`, and never take longer than `bound`.
    fn until_ok<T: std::fmt::Debug>(what: &str, bound: Duration, op: impl Fn() -> Result<T, StoreError>) -> T {
        let deadline = Instant::now() + READY;
        loop {
            let started = Instant::now();
            let result = op();
            let took = started.elapsed();
            assert!(took <= bound, "{what} took {took:?} (more than {bound:?}): {result:?}");
            match result {
                Ok(value) => return value,
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{what}: {e:?}"),
            }
        }
    }

    /// The error a watch from `after` ends with before any event: from `watch` itself, or from the
    /// first `next` (a backend may start its watch lazily).
    fn watch_error(store: &dyn Store, after: Revision) -> StoreError {
        let mut watch = match store.watch(&Selector::default(), after) {
            Err(e) => return e,
            Ok(watch) => watch,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            match watch.next(Duration::from_millis(200)) {
                Err(e) => return e,
                Ok(Some(e)) => panic!("a watch from {after} delivered {e:?}, expected an error"),
                Ok(None) => assert!(Instant::now() < deadline, "no error within {PATIENCE:?}"),
            }
        }
    }

    /// A watcher whose `after` was compacted away gets `Compacted`, naming the oldest revision it may
    /// start after; it recovers by listing and watching from the list's revision.
    #[test]
    fn a_watch_from_a_compacted_revision_is_refused_and_list_then_watch_recovers() {
        let Some(cluster) = EtcdCluster::start(1) else { return };
        let store = connect(&cluster.endpoints(), "/meshctl/");
        let x = store.create(&egress(None, "x", "x.example.com")).unwrap();
        let updates: Vec<Resource> = (0..5)
            .map(|i| store.update(&egress(None, "x", &format!("x{i}.example.com"))).unwrap())
            .collect();
        // The watcher saw the create, then history up to the fourth update is compacted (as an
        // operator or etcd's auto-compaction would).
        let seen = rv(&x);
        let compacted_at = rv(&updates[3]);
        cluster.compact(compacted_at);

        let err = watch_error(&store, seen);
        let oldest = match err {
            StoreError::Compacted { requested, oldest } => {
                assert_eq!(requested, seen);
                oldest
            }
            ref other => panic!("expected Compacted, got {other:?}"),
        };
        assert!(err.to_string().contains("compacted"), "{err}");
        // etcd keeps the compaction revision itself: a watch may start after the one before it.
        assert!(
            (compacted_at - 1..=compacted_at).contains(&oldest),
            "compacted at {compacted_at}, the oldest revision to watch after is {oldest}"
        );
        // From `oldest`, every later event is there.
        let mut from_oldest = store.watch(&Selector::default(), oldest).unwrap();
        for update in updates.iter().filter(|u| rv(u) > oldest) {
            assert_eq!(
                triple(&next_event(from_oldest.as_mut())),
                (EventType::Modified, rv(update), update)
            );
        }

        // Recovery: list, then watch from the list's revision.
        let listing = store.list(&Selector::default()).unwrap();
        assert_eq!(
            listing.items,
            [updates[4].clone()],
            "compaction leaves the objects as they are"
        );
        let y = store.create(&egress(None, "y", "y.example.com")).unwrap();
        let mut watch = store.watch(&Selector::default(), listing.revision).unwrap();
        assert_eq!(triple(&next_event(watch.as_mut())), (EventType::Added, rv(&y), &y));

        // The store's own compaction does the same: a watch from the first compaction's revision was
        // accepted above; now it is refused.
        let compacted_at = rv(&y);
        store.compact(compacted_at).unwrap();
        let after = rv(&updates[3]);
        match watch_error(&store, after) {
            StoreError::Compacted { requested, oldest } => {
                assert_eq!(requested, after);
                assert!((compacted_at - 1..=compacted_at).contains(&oldest), "{oldest}");
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        assert_eq!(
            store.list(&Selector::default()).unwrap().items,
            [updates[4].clone(), y.clone()]
        );
        // A watch that is caught up is not disturbed by a compaction.
        let z = store.create(&egress(None, "z", "z.example.com")).unwrap();
        assert_eq!(triple(&next_event(watch.as_mut())), (EventType::Added, rv(&z), &z));
    }

    /// Killing the leader, which is also the client's first endpoint: writes fail for at most a
    /// moment (with `Unavailable`, never hanging), then succeed through the other members; nothing
    /// written before is lost, and watches pick up from the last revision they saw.
    #[test]
    fn the_store_fails_over_when_the_leader_dies() {
        let Some(mut cluster) = EtcdCluster::start(3) else {
            return;
        };
        let leader = cluster.leader();
        let mut endpoints = cluster.endpoints();
        endpoints.rotate_left(leader);
        let store = connect(&endpoints, "/meshctl/");
        let before = store.create(&egress(None, "before", "before.example.com")).unwrap();
        let mut watch = store.watch(&Selector::default(), rv(&before)).unwrap();

        cluster.kill(leader);
        let bound = bound(endpoints.len());
        let after = until_ok("a create while a new leader is elected", bound, || {
            match store.create(&egress(None, "after", "after.example.com")) {
                // An earlier attempt was applied though its answer was lost.
                Err(StoreError::AlreadyExists(_)) => store.get(&key("default", "after")),
                other => other,
            }
        });
        assert_eq!(store.get(&key("default", "before")).unwrap(), before);
        let listing = until_ok("a list", bound, || store.list(&Selector::default()));
        assert_eq!(listing.items, [after.clone(), before.clone()]);

        // The watch carries on through another member, or says it cannot (then one from the last
        // revision it saw misses nothing).
        let e = match watch.next(PATIENCE) {
            Ok(Some(e)) => e,
            Ok(None) => panic!("no event within {PATIENCE:?}"),
            Err(StoreError::Unavailable(_)) => {
                let mut again = store.watch(&Selector::default(), rv(&before)).unwrap();
                next_event(again.as_mut())
            }
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(triple(&e), (EventType::Added, rv(&after), &after));

        // The old leader comes back as a follower, with everything.
        cluster.restart(leader);
        let only_old_leader = connect(&cluster.endpoints()[leader..=leader], "/meshctl/");
        assert_eq!(
            until_ok("a get from the old leader", bound, || only_old_leader
                .get(&key("default", "after"))),
            after
        );
    }

    /// With two of three members gone there is no quorum: every operation fails with `Unavailable`
    /// within its timeout (it never hangs, and never answers from a member that may be stale); with a
    /// member back the store works again, with everything written before.
    #[test]
    fn without_a_quorum_operations_are_unavailable_then_recover() {
        let Some(mut cluster) = EtcdCluster::start(3) else {
            return;
        };
        let endpoints = cluster.endpoints();
        let store = connect(&endpoints, "/meshctl/");
        let x = store.create(&egress(None, "x", "x.example.com")).unwrap();

        // The leader first, so the survivor is a follower: no write can be accepted and applied later.
        let leader = cluster.leader();
        let other = (leader + 1) % 3;
        cluster.kill(leader);
        cluster.kill(other);

        let bound = bound(endpoints.len());
        let unavailable = |what: &str, took: Duration, err: Option<StoreError>| {
            assert!(took <= bound, "{what} took {took:?} without a quorum (bound {bound:?})");
            assert!(
                matches!(err, Some(StoreError::Unavailable(_))),
                "{what} without a quorum: {err:?}"
            );
        };
        let timed = |op: &dyn Fn() -> Option<StoreError>| {
            let started = Instant::now();
            let err = op();
            (started.elapsed(), err)
        };
        let (took, err) = timed(&|| store.create(&egress(None, "y", "y.example.com")).err());
        unavailable("create", took, err);
        let (took, err) = timed(&|| store.update(&egress(None, "x", "x2.example.com")).err());
        unavailable("update", took, err);
        let (took, err) = timed(&|| store.delete(&key("default", "x")).err());
        unavailable("delete", took, err);
        let (took, err) = timed(&|| store.get(&key("default", "x")).err());
        unavailable("get", took, err);
        let (took, err) = timed(&|| store.list(&Selector::default()).err());
        unavailable("list", took, err);
        let (took, err) = timed(&|| store.revision().err());
        unavailable("revision", took, err);

        cluster.restart(leader);
        let y = until_ok("a create once a quorum is back", bound, || {
            match store.create(&egress(None, "z", "z.example.com")) {
                Err(StoreError::AlreadyExists(_)) => store.get(&key("default", "z")),
                other => other,
            }
        });
        assert_eq!(store.get(&key("default", "x")).unwrap(), x);
        assert!(rv(&y) > rv(&x));
    }

    /// No etcd at the address (a port nobody listens on): `Unavailable`, quickly, from `connect` or
    /// from the first operation.
    #[test]
    fn an_unreachable_cluster_is_unavailable_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoints = [format!("127.0.0.1:{port}")];
        let options = EtcdOptions {
            timeout: TIMEOUT,
            ..etcd_options("/meshctl/")
        };
        let started = Instant::now();
        let err = match EtcdStore::connect(&endpoints, options) {
            Err(e) => e,
            Ok(store) => store.get(&key("default", "x")).unwrap_err(),
        };
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            err.to_string().contains(&endpoints[0]),
            "the message names the endpoint: {err}"
        );
        assert!(started.elapsed() <= bound(1), "took {:?}", started.elapsed());
    }

    /// Keys outside the store's prefix (another store, another program) move the cluster's revision,
    /// which is the store's, but are neither listed nor watched, down to keys that share the prefix's
    /// first characters.
    #[test]
    fn keys_outside_the_prefix_are_invisible_but_move_the_revision() {
        let Some(cluster) = shared() else { return };
        let prefix = unique_prefix("outside");
        let store = connect(&cluster.endpoints(), &prefix);
        let before = store.revision().unwrap();
        let stem = prefix.trim_end_matches('/');
        // `stem0` is where the prefix's range ends ('/' + 1): the first key after it.
        let mut last = 0;
        for foreign in [
            stem.to_string(),
            format!("{stem}0"),
            format!("{stem}0/egress-rule/default/x"),
            "/t/".to_string(),
        ] {
            last = cluster.put(&foreign, "not an object");
        }
        let revision = store.revision().unwrap();
        assert!(revision >= last && last > before, "{before}, {last}, {revision}");
        let listing = store.list(&Selector::default()).unwrap();
        assert!(listing.items.is_empty(), "{:?}", listing.items);
        assert!(listing.revision >= last);
        let mut watch = store.watch(&Selector::default(), before).unwrap();
        let mine = store.create(&egress(None, "x", "x.example.com")).unwrap();
        assert_eq!(
            triple(&next_event(watch.as_mut())),
            (EventType::Added, rv(&mine), &mine)
        );
    }

    /// Two stores on one cluster with different prefixes are two stores: the same key in both is two
    /// objects.
    #[test]
    fn stores_with_different_prefixes_are_separate() {
        let Some(cluster) = shared() else { return };
        let one = connect(&cluster.endpoints(), &unique_prefix("one"));
        let two = connect(&cluster.endpoints(), &unique_prefix("two"));
        let in_one = one.create(&egress(None, "x", "one.example.com")).unwrap();
        let in_two = two.create(&egress(None, "x", "two.example.com")).unwrap();
        assert_ne!(in_one.metadata.uid, in_two.metadata.uid);
        assert_eq!(one.get(&key("default", "x")).unwrap(), in_one);
        assert_eq!(two.get(&key("default", "x")).unwrap(), in_two);
        one.delete(&key("default", "x")).unwrap();
        assert!(matches!(one.get(&key("default", "x")), Err(StoreError::NotFound(_))));
        assert_eq!(two.list(&Selector::default()).unwrap().items, [in_two]);
    }

    /// `--store etcd://HOST:PORT,...` names the cluster: parsed into its endpoints, written back the
    /// same way, and opened with the default options.
    #[test]
    fn a_location_names_the_cluster() {
        let Some(cluster) = shared() else { return };
        let location = Location::parse(&cluster.url()).unwrap();
        assert_eq!(
            location,
            Location::Etcd(meshctl::store::EtcdUrl {
                endpoints: cluster.endpoints(),
                prefix: None,
            })
        );
        assert_eq!(location.to_string(), cluster.url());
        let store = location.open(RemoteOptions::default()).unwrap();
        assert!(store.revision().unwrap() >= 1, "etcd's revision starts at 1");
    }
}
