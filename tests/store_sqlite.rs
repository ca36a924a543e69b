//! The embedded sqlite store through its public API, on real files in temporary directories.
//!
//! No test asserts on timing; waits for events use generous timeouts, so a loaded machine only makes
//! them slower, never failing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use meshctl::diag::Severity;
use meshctl::load::LoadOptions;
use meshctl::model::common::IstioService;
use meshctl::model::egress_rule::EgressPort;
use meshctl::model::{API_VERSION, EgressRule, Kind, Metadata, Resource, Spec};
use meshctl::store::sqlite::SqliteStore;
use meshctl::store::{Event, EventType, ObjectKey, Revision, Selector, Store, StoreError, Watch};

/// Long enough for any loaded machine; a passing test never waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    (dir, path)
}

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

fn summary(e: &Event) -> (EventType, Revision, String, String) {
    (
        e.kind,
        e.revision,
        e.object.name().to_string(),
        e.object.metadata.resource_version.clone().unwrap(),
    )
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SqliteStore>();
    let _as_trait_object: Option<Box<dyn Store>> = None::<Box<SqliteStore>>.map(|s| s as Box<dyn Store>);
}

#[test]
fn create_get_update_delete() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.revision().unwrap(), 0);

    let created = store.create(&egress(None, "google", "*.googleapis.com")).unwrap();
    let m = &created.metadata;
    assert_eq!(
        m.namespace.as_deref(),
        Some("default"),
        "the namespace is stored explicitly"
    );
    assert_eq!(m.resource_version.as_deref(), Some("1"));
    let uid = m.uid.clone().unwrap();
    assert_eq!(uuid::Uuid::parse_str(&uid).unwrap().get_version_num(), 4);
    let created_at = m.creation_timestamp.clone().unwrap();
    humantime::parse_rfc3339(&created_at).unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == "2024-01-01T00:00:00Z".len(),
        "{created_at}"
    );
    assert_eq!(store.get(&key("default", "google")).unwrap(), created);
    assert_eq!(store.revision().unwrap(), 1);

    let mut change = created.clone();
    if let Spec::EgressRule(e) = &mut change.spec {
        e.use_egress_proxy = Some(true);
    }
    let updated = store.update(&change).unwrap();
    assert_eq!(updated.metadata.resource_version.as_deref(), Some("2"));
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
    assert_eq!(
        deleted.metadata.resource_version.as_deref(),
        Some("3"),
        "a deleted object carries the deletion's revision"
    );
    assert!(
        matches!(store.get(&key("default", "google")), Err(StoreError::NotFound(k)) if k == key("default", "google"))
    );
    assert_eq!(store.revision().unwrap(), 3);
}

#[test]
fn already_exists_and_not_found_write_nothing() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    store.create(&egress(Some("a"), "x", "x.example.com")).unwrap();

    let err = store.create(&egress(Some("a"), "x", "other.example.com")).unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(k) if *k == key("a", "x")),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "egress-rule/a/x already exists");
    // Same name in another namespace is another object.
    store.create(&egress(Some("b"), "x", "x.example.com")).unwrap();

    let missing = egress(Some("a"), "missing", "m.example.com");
    assert!(matches!(store.update(&missing), Err(StoreError::NotFound(k)) if k == key("a", "missing")));
    assert!(matches!(
        store.delete(&key("a", "missing")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(store.get(&key("c", "x")), Err(StoreError::NotFound(_))));
    assert_eq!(store.revision().unwrap(), 2);
    assert_eq!(host_of(&store.get(&key("a", "x")).unwrap()), "x.example.com");
}

#[test]
fn update_checks_the_resource_version_when_one_is_sent() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let v1 = store.create(&egress(None, "x", "one.example.com")).unwrap();
    let mut v2 = egress(None, "x", "two.example.com");
    v2.metadata.resource_version = Some("1".to_string());
    let v2 = store.update(&v2).unwrap();
    assert_eq!(v2.metadata.resource_version.as_deref(), Some("2"));

    // v1 is stale now.
    let mut stale = v1.clone();
    if let Spec::EgressRule(e) = &mut stale.spec {
        e.use_egress_proxy = Some(false);
    }
    match store.update(&stale) {
        Err(StoreError::Conflict { key: k, sent, current }) => {
            assert_eq!(k, key("default", "x"));
            assert_eq!((sent.as_str(), current.as_str()), ("1", "2"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.revision().unwrap(), 2);

    // Without a resourceVersion (or an empty one) the replace is unconditional.
    let mut blind = egress(None, "x", "three.example.com");
    let v3 = store.update(&blind).unwrap();
    assert_eq!(v3.metadata.resource_version.as_deref(), Some("3"));
    blind.metadata.resource_version = Some(String::new());
    let v4 = store.update(&blind).unwrap();
    assert_eq!(v4.metadata.resource_version.as_deref(), Some("4"));
}

#[test]
fn uid_and_creation_timestamp_sent_by_the_client_are_ignored() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let mut r = egress(None, "x", "x.example.com");
    r.metadata.uid = Some("not-a-uid".to_string());
    r.metadata.creation_timestamp = Some("1999-01-01T00:00:00Z".to_string());
    r.metadata.resource_version = Some("12345".to_string());
    let created = store.create(&r).unwrap();
    assert_ne!(created.metadata.uid.as_deref(), Some("not-a-uid"));
    assert_ne!(
        created.metadata.creation_timestamp.as_deref(),
        Some("1999-01-01T00:00:00Z")
    );
    assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));

    let mut again = created.clone();
    again.metadata.uid = Some("other".to_string());
    again.metadata.creation_timestamp = Some("2000-01-01T00:00:00Z".to_string());
    let updated = store.update(&again).unwrap();
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_eq!(updated.metadata.creation_timestamp, created.metadata.creation_timestamp);
}

#[test]
fn list_is_sorted_filtered_and_carries_its_revision() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "b")] {
        store.create(&egress(Some(ns), name, "h.example.com")).unwrap();
    }
    let mut rules = valid_rules();
    rules.retain(|r| r.kind != Kind::EgressRule);
    for r in &rules {
        store.create(r).unwrap();
    }
    let names = |l: &meshctl::store::Listing| {
        l.items
            .iter()
            .map(|r| format!("{}/{}/{}", r.kind, r.namespace(), r.name()))
            .collect::<Vec<_>>()
    };

    let all = store.list(&Selector::default()).unwrap();
    assert_eq!(all.revision, store.revision().unwrap());
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
    assert_eq!(none.revision, all.revision);
}

/// Every valid example, stored and read back (by get, list and watch), is what was stored: the JSON
/// encoding loses nothing (durations as written, string-match shorthands, whole-number percents,
/// fractions, labels).
#[test]
fn every_valid_example_round_trips_exactly() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
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
    let mut watch = store.watch(&Selector::default(), 0).unwrap();
    for expected in &stored {
        let e = next_event(watch.as_mut());
        assert_eq!(e.kind, EventType::Added);
        assert_eq!(&e.object, expected);
    }
    // And again from a fresh handle: nothing depended on this process's memory.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let mut listed = store.list(&Selector::default()).unwrap().items;
    stored.sort_by(|x, y| ObjectKey::of(x).cmp(&ObjectKey::of(y)));
    listed.sort_by(|x, y| ObjectKey::of(x).cmp(&ObjectKey::of(y)));
    assert_eq!(listed, stored);
}

#[test]
fn an_invalid_object_is_refused_and_nothing_is_written() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    store.create(&egress(None, "ok", "ok.example.com")).unwrap();

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

    assert_eq!(store.revision().unwrap(), 1, "nothing was written");
    assert_eq!(store.list(&Selector::default()).unwrap().items.len(), 1);
    let ok = store.get(&key("default", "ok")).unwrap();
    assert_eq!(ok.metadata.resource_version.as_deref(), Some("1"));
}

#[test]
fn warnings_do_not_block_a_write() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
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

#[test]
fn two_handles_on_one_file_see_each_others_writes_and_events() {
    let (_dir, path) = temp();
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let mut watch_b = b.watch(&Selector::default(), 0).unwrap();

    a.create(&egress(None, "from-a", "a.example.com")).unwrap();
    assert_eq!(host_of(&b.get(&key("default", "from-a")).unwrap()), "a.example.com");
    let mut watch_a = a.watch(&Selector::default(), b.revision().unwrap()).unwrap();
    b.create(&egress(None, "from-b", "b.example.com")).unwrap();
    assert_eq!(
        a.get(&key("default", "from-b"))
            .unwrap()
            .metadata
            .resource_version
            .as_deref(),
        Some("2")
    );
    assert_eq!(a.list(&Selector::default()).unwrap().items.len(), 2);

    // b's watch sees a's write (made through another handle: found by polling) and its own.
    let e1 = next_event(watch_b.as_mut());
    let e2 = next_event(watch_b.as_mut());
    assert_eq!(summary(&e1), (EventType::Added, 1, "from-a".into(), "1".into()));
    assert_eq!(summary(&e2), (EventType::Added, 2, "from-b".into(), "2".into()));
    // a's watch, started after revision 1, sees only b's write.
    let e = next_event(watch_a.as_mut());
    assert_eq!(summary(&e), (EventType::Added, 2, "from-b".into(), "2".into()));
    assert!(watch_a.next(Duration::from_millis(100)).unwrap().is_none());
}

#[test]
fn two_writers_with_the_same_resource_version_one_wins() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let base = store.create(&egress(None, "x", "base.example.com")).unwrap();
    // Three rounds: threads sharing one handle, then two handles (as two processes would).
    for round in 0..3 {
        let current = store.get(&key("default", "x")).unwrap();
        let other = SqliteStore::open(&path).unwrap();
        let stores: [&SqliteStore; 2] = if round == 0 { [&store, &store] } else { [&store, &other] };
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
    }
    assert_eq!(store.revision().unwrap(), 4);
    assert_eq!(base.metadata.resource_version.as_deref(), Some("1"));
}

#[test]
fn watch_replays_then_follows_and_resumes_from_the_last_revision_seen() {
    let (_dir, path) = temp();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    store.create(&egress(None, "one", "one.example.com")).unwrap(); // 1
    store.create(&egress(None, "two", "two.example.com")).unwrap(); // 2
    store.update(&egress(None, "one", "uno.example.com")).unwrap(); // 3

    let mut watch = store.watch(&Selector::default(), 1).unwrap();
    let e = next_event(watch.as_mut());
    assert_eq!(summary(&e), (EventType::Added, 2, "two".into(), "2".into()));
    let e = next_event(watch.as_mut());
    assert_eq!(summary(&e), (EventType::Modified, 3, "one".into(), "3".into()));
    assert_eq!(host_of(&e.object), "uno.example.com");
    assert!(watch.next(Duration::ZERO).unwrap().is_none(), "caught up");

    // Writes from another thread while the watch waits: it wakes for each, in order.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                store.create(&egress(None, &format!("n{i}"), "n.example.com")).unwrap(); // 4..=23
            }
            store.delete(&key("default", "two")).unwrap(); // 24
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
    writer.join().unwrap();
    let revisions: Vec<_> = seen.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (4..=24).collect::<Vec<_>>());
    for e in &seen[..20] {
        assert_eq!(e.kind, EventType::Added);
        assert_eq!(e.object.metadata.resource_version, Some(e.revision.to_string()));
    }
    let deleted = &seen[20];
    assert_eq!(summary(deleted), (EventType::Deleted, 24, "two".into(), "24".into()));
    assert_eq!(host_of(&deleted.object), "two.example.com", "the object as it was");
    assert!(resumed.next(Duration::from_millis(50)).unwrap().is_none());
}

#[test]
fn watch_from_a_future_revision_waits_for_it() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let mut watch = store.watch(&Selector::default(), 2).unwrap();
    for name in ["a", "b", "c"] {
        store.create(&egress(None, name, "h.example.com")).unwrap();
    }
    assert_eq!(next_event(watch.as_mut()).revision, 3);
}

#[test]
fn watch_follows_only_what_its_selector_covers() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let mut in_a = store
        .watch(
            &Selector {
                kind: Some(Kind::EgressRule),
                namespace: Some("a".to_string()),
            },
            0,
        )
        .unwrap();
    let mut route_rules = store
        .watch(
            &Selector {
                kind: Some(Kind::RouteRule),
                namespace: None,
            },
            0,
        )
        .unwrap();
    // Many events outside the selector (more than a watch reads per query) before the one inside.
    for i in 0..600 {
        store
            .create(&egress(Some("b"), &format!("r{i}"), "h.example.com"))
            .unwrap();
    }
    store.create(&egress(Some("a"), "mine", "h.example.com")).unwrap();
    let e = next_event(in_a.as_mut());
    assert_eq!((e.revision, e.object.name()), (601, "mine"));
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
    store.create(&route).unwrap();
    let e = next_event(route_rules.as_mut());
    assert_eq!((e.revision, e.object.kind), (602, Kind::RouteRule));
}

#[test]
fn next_returns_none_when_nothing_happens() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    let mut watch = store.watch(&Selector::default(), 0).unwrap();
    assert!(watch.next(Duration::ZERO).unwrap().is_none());
    assert!(watch.next(Duration::from_millis(120)).unwrap().is_none());
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

#[test]
fn reopening_keeps_objects_revision_and_events() {
    let (_dir, path) = temp();
    let (first, second) = {
        let store = SqliteStore::open(&path).unwrap();
        let a = store.create(&egress(None, "a", "a.example.com")).unwrap();
        let b = store.create(&egress(Some("other"), "b", "b.example.com")).unwrap();
        store.delete(&key("default", "a")).unwrap();
        (a, b)
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.revision().unwrap(), 3);
    assert!(matches!(store.get(&key("default", "a")), Err(StoreError::NotFound(_))));
    assert_eq!(store.get(&key("other", "b")).unwrap(), second);
    let mut w = store.watch(&Selector::default(), 0).unwrap();
    let events: Vec<_> = (0..3).map(|_| next_event(w.as_mut())).collect();
    assert_eq!(events[0].object, first);
    assert_eq!(events[1].object, second);
    assert_eq!(events[2].kind, EventType::Deleted);
    // The revision keeps counting from where it was.
    let c = store.create(&egress(None, "c", "c.example.com")).unwrap();
    assert_eq!(c.metadata.resource_version.as_deref(), Some("4"));
}

#[test]
fn many_threads_read_and_write_at_once() {
    let (_dir, path) = temp();
    let store = SqliteStore::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || {
                for i in 0..10 {
                    store
                        .create(&egress(None, &format!("t{t}-{i}"), "h.example.com"))
                        .unwrap();
                    let listing = store.list(&Selector::default()).unwrap();
                    assert!(listing.items.len() as u64 <= listing.revision);
                }
            });
        }
    });
    assert_eq!(store.revision().unwrap(), 40);
    assert_eq!(store.list(&Selector::default()).unwrap().items.len(), 40);
}
