//! `meshctl store copy` as a user runs it: sqlite to sqlite, to and from a real `meshctl serve`, and
//! the failures (an unreachable store, an object the destination refuses, bad usage).
//!
//! [`copy_round_trip`] takes any two store locations, so another backend (etcd) only needs a test
//! that starts it and passes its URL.

use std::path::Path;

use serde_json::Value;

use meshctl::model::{Kind, Resource};
use meshctl::store::remote::RemoteOptions;
use meshctl::store::{Location, ObjectKey, Selector, Store};

use crate::common::{Output, meshctl, serve};

/// A directory for store files: in /dev/shm when there is one, since every create is an fsynced
/// transaction (10,000 take a minute on a disk and under a second in memory); else the temp dir.
fn store_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("meshctl-copy-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

fn sqlite(dir: &tempfile::TempDir, file: &str) -> String {
    format!("sqlite:{}", dir.path().join(file).display())
}

/// The store at `location`, opened by the library as meshctl opens it (no token).
fn open(location: &str) -> Box<dyn Store> {
    Location::parse(location)
        .unwrap_or_else(|e| panic!("{location}: {e}"))
        .open(RemoteOptions::default())
        .unwrap_or_else(|e| panic!("open {location}: {e}"))
}

/// Rule `i`: the three kinds in turn, over seven namespaces, some with labels and annotations.
fn rule(i: usize) -> Resource {
    let namespace = format!("ns-{}", i % 7);
    let labels = if i % 4 == 0 {
        format!(
            r#","labels":{{"team":"t{}","tier":"backend"}},"annotations":{{"note":"rule {i}"}}"#,
            i % 5
        )
    } else {
        String::new()
    };
    let (kind, name, spec) = match i % 3 {
        0 => (
            Kind::EgressRule,
            format!("egress-{i:05}"),
            format!(
                r#"{{"destination":{{"service":"api{i}.example.com"}},"ports":[{{"port":{},"protocol":"https"}}]}}"#,
                443 + i % 1000
            ),
        ),
        1 => (
            Kind::RouteRule,
            format!("route-{i:05}"),
            format!(
                r#"{{"destination":{{"name":"svc-{i}"}},"precedence":{},"route":[{{"labels":{{"version":"v{}"}}}}]}}"#,
                1 + i % 3,
                1 + i % 2
            ),
        ),
        _ => (
            Kind::DestinationPolicy,
            format!("policy-{i:05}"),
            format!(
                r#"{{"destination":{{"name":"svc-{i}","labels":{{"version":"v1"}}}},"loadBalancing":{{"name":"LEAST_CONN"}}}}"#
            ),
        ),
    };
    let json = format!(
        r#"{{"apiVersion":"config.istio.io/v1alpha2","kind":"{}","metadata":{{"name":"{name}","namespace":"{namespace}"{labels}}},"spec":{spec}}}"#,
        kind.name()
    );
    Resource::from_json(kind, &json).unwrap_or_else(|e| panic!("rule {i}: {e}\n{json}"))
}

fn fill(location: &str, n: usize) {
    let store = open(location);
    for i in 0..n {
        store
            .create(&rule(i))
            .unwrap_or_else(|e| panic!("create rule {i}: {e}"));
    }
}

/// Every object of the store as JSON, in the store's order, without what each store sets on its own
/// (resourceVersion, uid, creationTimestamp).
fn contents(location: &str) -> Vec<Value> {
    let listing = open(location).list(&Selector::default()).expect("list");
    listing
        .items
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("to JSON");
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                for field in ["resourceVersion", "uid", "creationTimestamp"] {
                    m.remove(field);
                }
            }
            v
        })
        .collect()
}

fn revision(location: &str) -> u64 {
    open(location).revision().expect("revision")
}

/// `meshctl store copy --from FROM --to TO EXTRA...` in a fresh home.
fn copy(from: &str, to: &str, extra: &[&str]) -> Output {
    let mut args = vec!["store", "copy", "--from", from, "--to", to];
    args.extend_from_slice(extra);
    meshctl(args).run()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Fills the empty store `from` with `n` rules and copies them into the empty store `to`: a dry
/// run first (nothing written), then the copy (the same contents on both sides), then again (all
/// unchanged, nothing written); then, after changes on the destination's side, the updates and
/// prunes that undo them.
fn copy_round_trip(from: &str, to: &str, n: usize) {
    assert!(n >= 2);
    fill(from, n);
    let at = revision(from);
    let to_file = match Location::parse(to) {
        Ok(Location::Sqlite(path)) => Some(path),
        _ => None,
    };

    // A dry run writes nothing (and does not create a missing sqlite file).
    let out = copy(from, to, &["--dry-run"]);
    out.code(0);
    assert_eq!(
        out.stdout,
        format!(
            "would copy {n} objects from {from} at revision {at} to {to}: {n} created, 0 updated, 0 unchanged \
             (dry run: nothing was written)\n"
        )
    );
    match &to_file {
        Some(path) => assert!(!path.exists(), "the dry run created {}", path.display()),
        None => assert!(contents(to).is_empty()),
    }

    // The copy, then the same copy again.
    let out = copy(from, to, &[]);
    out.code(0);
    assert_eq!(
        out.stdout,
        format!("copied {n} objects from {from} at revision {at} to {to}: {n} created, 0 updated, 0 unchanged\n")
    );
    assert_eq!(out.stderr, "");
    let expected = contents(from);
    assert_eq!(expected.len(), n);
    assert!(contents(to) == expected, "the destination differs from the source");
    let written = revision(to);
    let out = copy(from, to, &[]);
    out.code(0);
    assert_eq!(
        out.stdout,
        format!("copied {n} objects from {from} at revision {at} to {to}: 0 created, 0 updated, {n} unchanged\n")
    );
    assert_eq!(revision(to), written, "an unchanged copy wrote to the destination");

    // The destination drifts: one rule's spec, another's labels, one rule the source lacks.
    let dest = open(to);
    let mut spec_changed = rule(0);
    let Resource { spec, .. } = rule(3);
    spec_changed.spec = spec;
    dest.update(&spec_changed).expect("update spec");
    let mut relabelled = rule(1);
    relabelled.metadata.labels = Some([("drift".to_string(), "yes".to_string())].into_iter().collect());
    dest.update(&relabelled).expect("update labels");
    let extra = rule(n + 1);
    dest.create(&extra).expect("create extra");
    let (a, b, c) = (ObjectKey::of(&rule(0)), ObjectKey::of(&rule(1)), ObjectKey::of(&extra));
    let drifted = revision(to);

    let out = copy(from, to, &["--prune", "--dry-run"]);
    out.code(0);
    let mut lines = [format!("{a} updated (dry run)"), format!("{b} updated (dry run)")];
    lines.sort();
    assert_eq!(
        out.stdout,
        format!(
            "{}\n{}\n{c} pruned (dry run)\nwould copy {n} objects from {from} at revision {at} to {to}: 0 created, \
             2 updated, {} unchanged, 1 pruned (dry run: nothing was written)\n",
            lines[0],
            lines[1],
            n - 2
        )
    );
    assert_eq!(revision(to), drifted, "the dry run wrote");

    // Without --prune the extra rule stays.
    let out = copy(from, to, &[]);
    out.code(0);
    assert!(
        out.stdout.ends_with(&format!(
            "copied {n} objects from {from} at revision {at} to {to}: 0 created, 2 updated, {} unchanged\n",
            n - 2
        )),
        "{}",
        out.stdout
    );
    assert!(dest.get(&c).is_ok());
    assert_eq!(contents(to).len(), n + 1);

    // With it, it goes; -o json says the same.
    let out = copy(from, to, &["--prune", "-o", "json"]);
    out.code(0);
    let report = json(&out.stdout);
    assert_eq!(report["from"], from);
    assert_eq!(report["to"], to);
    assert_eq!(report["revision"], at);
    assert_eq!(report["objects"], n);
    assert_eq!(
        [
            &report["created"],
            &report["updated"],
            &report["unchanged"],
            &report["pruned"],
            &report["failed"]
        ],
        [0, 0, n, 1, 0]
    );
    assert_eq!(report["complete"], true);
    assert_eq!(report["dryRun"], false);
    assert!(
        contents(to) == expected,
        "the destination differs from the source after --prune"
    );
}

#[test]
fn sqlite_to_sqlite_round_trip_of_1000_rules() {
    let dir = store_dir();
    copy_round_trip(&sqlite(&dir, "a.db"), &sqlite(&dir, "sub/b.db"), 1000);
}

#[test]
fn sqlite_to_sqlite_copy_of_10000_rules() {
    let dir = store_dir();
    let (from, to) = (sqlite(&dir, "a.db"), sqlite(&dir, "b.db"));
    fill(&from, 10_000);
    let out = copy(&from, &to, &[]);
    out.code(0);
    assert!(
        out.stdout.contains(": 10000 created, 0 updated, 0 unchanged\n"),
        "{}",
        out.stdout
    );
    assert!(
        contents(&to) == contents(&from),
        "the destination differs from the source"
    );
    let out = copy(&from, &to, &["-o", "json"]);
    out.code(0);
    assert_eq!(json(&out.stdout)["unchanged"], 10_000);
}

#[test]
fn sqlite_to_etcd_and_back_round_trips_10000_rules() {
    let Some(cluster) = crate::support::etcd::shared() else {
        return;
    };
    let dir = store_dir();
    let (from, back) = (sqlite(&dir, "a.db"), sqlite(&dir, "back.db"));
    // The prefix in the URL keeps this test's keys apart on the shared cluster.
    let etcd = format!(
        "{}{}",
        cluster.url(),
        crate::support::etcd::unique_prefix("copy").trim_end_matches('/')
    );
    fill(&from, 10_000);
    let out = copy(&from, &etcd, &[]);
    out.code(0);
    assert!(
        out.stdout.contains(": 10000 created, 0 updated, 0 unchanged\n"),
        "{}",
        out.stdout
    );
    let out = copy(&etcd, &back, &[]);
    out.code(0);
    assert!(
        out.stdout.contains(": 10000 created, 0 updated, 0 unchanged\n"),
        "{}",
        out.stdout
    );
    assert!(
        contents(&back) == contents(&from),
        "sqlite -> etcd -> sqlite changed the rules"
    );
    assert!(contents(&etcd) == contents(&from), "etcd holds something else");
    // Idempotent on etcd too.
    let out = copy(&from, &etcd, &["-o", "json"]);
    out.code(0);
    assert_eq!(json(&out.stdout)["unchanged"], 10_000);
}

#[test]
fn sqlite_to_etcd_round_trip_with_updates_and_pruning() {
    let Some(cluster) = crate::support::etcd::shared() else {
        return;
    };
    let dir = store_dir();
    let etcd = format!("{}{}", cluster.url(), crate::support::etcd::unique_prefix("copy-rt"));
    copy_round_trip(&sqlite(&dir, "a.db"), &etcd, 300);
}

#[test]
fn sqlite_to_serve_and_back() {
    let dir = store_dir();
    let server = serve(dir.path(), ["--store", &sqlite(&dir, "served.db")]);
    copy_round_trip(&sqlite(&dir, "a.db"), &server.url, 200);
    // And from the server into a new file.
    let back = sqlite(&dir, "back.db");
    let out = copy(&server.url, &back, &[]);
    out.code(0);
    assert!(
        out.stdout.contains(": 200 created, 0 updated, 0 unchanged\n"),
        "{}",
        out.stdout
    );
    assert!(contents(&back) == contents(&server.url));
}

#[test]
fn an_unreachable_or_missing_store_is_exit_2_naming_it() {
    let dir = store_dir();
    let from = sqlite(&dir, "a.db");
    fill(&from, 3);
    let to = sqlite(&dir, "b.db");

    let out = copy(&from, "http://127.0.0.1:9", &[]);
    out.code(2);
    assert!(
        out.stderr
            .starts_with("Error: cannot read the destination http://127.0.0.1:9: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.ends_with("Nothing was copied.\n"), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    let out = copy("http://127.0.0.1:9", &to, &[]);
    out.code(2);
    assert!(
        out.stderr
            .starts_with("Error: cannot read the source http://127.0.0.1:9: "),
        "{}",
        out.stderr
    );

    // A missing sqlite source is not created (it would be an empty store, and --prune would then
    // empty the destination).
    let missing = dir.path().join("missing.db");
    let out = copy(&format!("sqlite:{}", missing.display()), &to, &["--prune"]);
    out.code(2);
    assert!(
        out.stderr
            .contains(&format!("cannot read the source sqlite:{}", missing.display())),
        "{}",
        out.stderr
    );
    assert!(!missing.exists());

    // A file that is not a store.
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, just text that is long enough to matter\n",
    )
    .expect("write");
    let out = copy(&from, &format!("sqlite:{}", junk.display()), &[]);
    out.code(2);
    assert!(
        out.stderr
            .contains(&format!("the destination sqlite:{}", junk.display())),
        "{}",
        out.stderr
    );
    assert!(!Path::new(&to["sqlite:".len()..]).exists());
}

#[test]
fn bad_usage_is_exit_2() {
    let dir = store_dir();
    let from = sqlite(&dir, "a.db");
    fill(&from, 1);
    for (args, expected) in [
        (vec!["--from", "nonsense:x", "--to", "sqlite:b.db"], "--from"),
        (vec!["--from", &from, "--to", "no-such-context"], "no-such-context"),
        (vec!["--from", &from, "--to", &from], "same store"),
        (vec!["--from", &from], "--to"),
    ] {
        let out = meshctl([&["store", "copy"][..], &args].concat()).run();
        out.code(2);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    let to = sqlite(&dir, "b.db");
    let out = meshctl(["--store", &to, "store", "copy", "--from", &from, "--to", &to]).run();
    out.code(2);
    assert!(out.stderr.contains("not --store"), "{}", out.stderr);
    // MESHCTL_STORE, set for the other commands, is not a --store.
    meshctl(["store", "copy", "--from", &from, "--to", &to])
        .env("MESHCTL_STORE", &from)
        .run()
        .code(0);

    // An empty source is copied (nothing to do), but --prune would empty the destination: refused.
    let empty = sqlite(&dir, "empty.db");
    assert!(contents(&empty).is_empty());
    let out = copy(&empty, &to, &[]);
    out.code(0);
    assert_eq!(
        out.stdout,
        format!("copied 0 objects from {empty} at revision 0 to {to}: 0 created, 0 updated, 0 unchanged\n")
    );
    let out = copy(&empty, &to, &["--prune"]);
    out.code(2);
    assert!(
        out.stderr.contains(&format!(
            "the source {empty} holds no rules: --prune would delete every rule in {to} (1 rule)"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(contents(&to).len(), 1);
    copy(&empty, &to, &["--prune", "--dry-run"]).code(0);
}

#[test]
fn contexts_name_stores() {
    let dir = store_dir();
    let home = tempfile::tempdir().expect("temp dir");
    let from = sqlite(&dir, "a.db");
    fill(&from, 5);
    meshctl(["context", "add", "src", "--store", &from])
        .home(home.path())
        .run()
        .code(0);
    let to = sqlite(&dir, "b.db");
    let out = meshctl(["store", "copy", "--from", "src", "--to", &to])
        .home(home.path())
        .run();
    out.code(0);
    assert!(
        out.stdout.starts_with(&format!(
            "copied 5 objects from {from} (context src) at revision 5 to {to}: 5 created"
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn an_object_the_destination_refuses_is_reported_and_the_rest_copied() {
    let dir = store_dir();
    let from = sqlite(&dir, "a.db");
    fill(&from, 6);
    // Make one stored rule invalid behind the store's back (as an older meshctl, with looser checks,
    // might have stored it): port 0.
    let bad = rule(3);
    let path = dir.path().join("a.db");
    let conn = rusqlite::Connection::open(&path).expect("open sqlite");
    let changed = conn
        .execute(
            "UPDATE objects SET body = replace(body, '\"port\":446', '\"port\":0') WHERE name = ?1",
            [bad.name()],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(conn);
    let stored = open(&from).get(&ObjectKey::of(&bad)).expect("get");
    assert!(serde_json::to_string(&stored).expect("JSON").contains(r#""port":0"#));

    let to = sqlite(&dir, "b.db");
    let out = copy(&from, &to, &[]);
    out.code(1);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: {} is invalid: spec.ports[0].port",
            ObjectKey::of(&bad)
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.ends_with(": 5 created, 0 updated, 0 unchanged, 1 failed\n")
            && out.stdout.starts_with("copied 5 of 6 objects from "),
        "{}",
        out.stdout
    );
    assert_eq!(contents(&to).len(), 5);
    // Once fixed at the source, the same command copies it (and only it).
    let fixed = open(&from);
    let mut good = bad.clone();
    good.metadata.resource_version = None;
    fixed.update(&good).expect("fix");
    let out = copy(&from, &to, &[]);
    out.code(0);
    assert!(
        out.stdout.ends_with(": 1 created, 0 updated, 5 unchanged\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_destination_that_goes_away_mid_way_stops_the_copy_and_the_same_command_finishes_it() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const N: usize = 3000;
    let dir = store_dir();
    let from = sqlite(&dir, "a.db");
    fill(&from, N);
    let served = sqlite(&dir, "served.db");
    let mut server = serve(dir.path(), ["--store", &served]);
    let home = tempfile::tempdir().expect("temp dir");
    let child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["store", "copy", "--from", &from, "--to", &server.url])
        .env_remove("MESHCTL_STORE")
        .env_remove("MESHCTL_TOKEN")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl store copy");
    // Kill the server once some rules have reached it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.stderr().matches(" POST ").count() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let out = child.wait_with_output().expect("wait for meshctl store copy");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(2), "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        stderr.starts_with(&format!("Error: the copy to {} stopped: ", server.url)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(" of {N} objects from {from} at revision "))
            && stderr.contains("run the same command again"),
        "{stderr}"
    );
    assert_eq!(stdout, "");

    // The server is back (on another port): the same copy finishes, without writing anything twice.
    let server = serve(dir.path(), ["--store", &served]);
    let written = contents(&server.url).len();
    assert!(
        (50..N).contains(&written),
        "{written} rules were written before the server died"
    );
    let out = copy(&from, &server.url, &[]);
    out.code(0);
    assert!(
        out.stdout
            .ends_with(&format!(": {} created, 0 updated, {written} unchanged\n", N - written)),
        "{}",
        out.stdout
    );
    assert!(
        contents(&server.url) == contents(&from),
        "the destination differs from the source"
    );
}
