//! `meshctl serve` on etcd: several replicas over one real 3-member etcd cluster on 127.0.0.1
//! (started and stopped by the tests, see `tests/support/etcd.rs`), faults in the cluster, and
//! compaction. Waits are for events with generous deadlines; nothing asserts a duration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, meshctl, proxy, serve};
use crate::serve::{body, client, egress, next_events, watch};
use crate::support::etcd::{EtcdCluster, shared, unique_prefix};

/// Upper bound for something that should happen within moments (a failure bound only).
const WAIT: Duration = Duration::from_secs(60);

fn replica(home: &std::path::Path, url: &str, prefix: &str) -> Server {
    serve(home, ["--store", url, "--etcd-prefix", prefix])
}

fn create(c: &reqwest::blocking::Client, server: &Server, name: &str, port: u16) -> (StatusCode, Value) {
    body(
        c.post(server.api("/namespaces/default/egressrules"))
            .json(&egress(name, port))
            .send()
            .expect("create"),
    )
}

#[test]
fn two_replicas_share_one_store() {
    let Some(cluster) = shared() else { return };
    let prefix = unique_prefix("replicas");
    let home = tempfile::tempdir().unwrap();
    let a = replica(home.path(), &cluster.url(), &prefix);
    let b = replica(home.path(), &cluster.url(), &prefix);
    let c = client();

    // B's watch starts before A's write, from B's list revision.
    let (code, list) = body(c.get(b.api("/egressrules")).send().unwrap());
    assert_eq!(code, StatusCode::OK, "{list}");
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let w = watch(&b.api(&format!("/egressrules?watch=true&resourceVersion={rv}")));

    // A proxy following replica B.
    let proxy_home = tempfile::tempdir().unwrap();
    let px = proxy(proxy_home.path(), ["--store", b.url.as_str()]);

    let (code, created) = create(&c, &a, "mysql", 3306);
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let created_rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    // Read through B: the same object at the same resourceVersion.
    let (code, got) = body(c.get(b.api("/namespaces/default/egressrules/mysql")).send().unwrap());
    assert_eq!(code, StatusCode::OK, "{got}");
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(got["spec"], created["spec"]);
    // Watched through B.
    let events = next_events(&w, 1);
    assert_eq!(events[0].0, "ADDED");
    assert_eq!(events[0].1, "mysql");
    assert_eq!(events[0].2.to_string(), created_rv);
    // Followed by the proxy on B.
    let admin = px.admin.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = reqwest::blocking::get(format!("{admin}/metrics"))
            .unwrap()
            .text()
            .unwrap();
        if metrics.contains("meshctl_proxy_egress_rules 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy on replica B never saw the rule:\n{metrics}\n{}",
            px.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The CLI through either replica, and straight on etcd, agrees.
    for store in [a.url.clone(), b.url.clone(), cluster.url()] {
        let out = meshctl(["get", "egressrules", "-o", "name", "--store", &store])
            .env("MESHCTL_ETCD_PREFIX", &prefix)
            .run();
        out.code(0);
        assert_eq!(out.stdout.trim(), "egress-rule/mysql", "through {store}");
    }

    // Two replaces of the same version, one through each replica, at once: one wins, one is 409.
    let start = Arc::new(Barrier::new(2));
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for (server, port) in [(&a, 3307u16), (&b, 3308u16)] {
            let start = start.clone();
            let results = results.clone();
            let mut object = got.clone();
            object["spec"]["ports"] = json!([{"port": port, "protocol": "tcp"}]);
            let c = c.clone();
            s.spawn(move || {
                start.wait();
                let r = c
                    .put(server.api("/namespaces/default/egressrules/mysql"))
                    .json(&object)
                    .send()
                    .unwrap();
                results.lock().unwrap().push(body(r));
            });
        }
    });
    let results = results.lock().unwrap();
    let mut codes: Vec<u16> = results.iter().map(|(c, _)| c.as_u16()).collect();
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{results:?}");
    let conflict = &results.iter().find(|(c, _)| *c == StatusCode::CONFLICT).unwrap().1;
    assert_eq!(conflict["kind"], "Status");
    assert_eq!(conflict["reason"], "Conflict");
}

#[test]
fn leader_loss_and_quorum_loss() {
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let prefix = unique_prefix("faults");
    let home = tempfile::tempdir().unwrap();
    let a = replica(home.path(), &cluster.url(), &prefix);
    let b = replica(home.path(), &cluster.url(), &prefix);
    let c = client();

    // Clients create through both replicas while the leader is killed; every create that was
    // acknowledged (201) must be there afterwards, and creates must succeed again after the election.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let leader = cluster.leader();
    std::thread::scope(|s| {
        for (t, server) in [(0, &a), (1, &b)] {
            let acknowledged = acknowledged.clone();
            let failures = failures.clone();
            let stop = stop.clone();
            let c = c.clone();
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("r{t}-{i}");
                    i += 1;
                    match c
                        .post(server.api("/namespaces/default/egressrules"))
                        .json(&egress(&name, 3306))
                        .send()
                    {
                        Ok(r) if r.status() == StatusCode::CREATED => acknowledged.lock().unwrap().push(name),
                        Ok(r) => failures.lock().unwrap().push(format!("{name}: {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("{name}: {e}")),
                    }
                }
            });
        }
        // Some creates before, then the leader goes.
        wait_for(|| acknowledged.lock().unwrap().len() >= 20, "creates before the fault");
        cluster.kill(leader);
        let before = acknowledged.lock().unwrap().len();
        // Writes resume: more creates are acknowledged after the kill.
        wait_for(
            || acknowledged.lock().unwrap().len() >= before + 20,
            "creates to resume after the leader was killed",
        );
        stop.store(true, Ordering::Relaxed);
    });
    let acknowledged = acknowledged.lock().unwrap().clone();
    let (code, list) = body(c.get(b.api("/namespaces/default/egressrules")).send().unwrap());
    assert_eq!(code, StatusCode::OK, "{list}");
    let present: std::collections::BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(
            present.contains(name),
            "{name} was acknowledged (201) but is not in the store"
        );
    }
    // Failures during the election were reported as such (503 or a dropped connection), never as a
    // success that did not happen.
    for f in failures.lock().unwrap().iter() {
        assert!(!f.contains("201"), "{f}");
    }

    // Stop a second member: no quorum. Writes and reads fail with 503 and a Status that says the
    // store is unavailable; nothing hangs (the client's own deadline is far longer than the
    // server's); /readyz says not ready.
    let second = (0..3).find(|&i| cluster.is_running(i)).unwrap();
    cluster.stop(second);
    let (code, status) = create(&c, &a, "no-quorum", 3306);
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{status}");
    assert_eq!(status["kind"], "Status");
    let (code, status) = body(c.get(b.api("/namespaces/default/egressrules/r0-0")).send().unwrap());
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "a read without quorum: {status}");
    let ready = c.get(format!("{}/readyz", a.url)).send().unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Bring both back: service resumes without restarting either replica.
    cluster.restart(second);
    cluster.restart(leader);
    wait_for(
        || create(&c, &a, "after-recovery", 3306).0 == StatusCode::CREATED,
        "a create after the members came back",
    );
    let (code, got) = body(
        c.get(b.api("/namespaces/default/egressrules/after-recovery"))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{got}");
    assert_eq!(
        c.get(format!("{}/readyz", b.url)).send().unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn a_watch_behind_a_compaction_gets_410_and_recovers_by_listing() {
    let Some(cluster) = EtcdCluster::start(1) else { return };
    let prefix = unique_prefix("compaction");
    let home = tempfile::tempdir().unwrap();
    let a = replica(home.path(), &cluster.url(), &prefix);
    let c = client();
    let (code, first) = create(&c, &a, "first", 3306);
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let old: u64 = first["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    for i in 0..5 {
        assert_eq!(create(&c, &a, &format!("later-{i}"), 3306).0, StatusCode::CREATED);
    }
    cluster.compact(cluster.revision());

    // A watch from before the compaction: 410 Expired, as Kubernetes answers.
    let r = c
        .get(a.api(&format!("/egressrules?watch=true&resourceVersion={old}")))
        .send()
        .unwrap();
    let status = r.status();
    let text = r.text().unwrap();
    let expired = status == StatusCode::GONE || text.contains("\"code\":410");
    assert!(expired, "a watch from a compacted revision: {status} {text}");
    assert!(text.contains("Expired") || text.contains("compacted"), "{text}");

    // The client's recovery: list, then watch from the list's revision; it sees what comes next.
    let (code, list) = body(c.get(a.api("/egressrules")).send().unwrap());
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 6);
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let w = watch(&a.api(&format!("/egressrules?watch=true&resourceVersion={rv}")));
    assert_eq!(create(&c, &a, "after", 3306).0, StatusCode::CREATED);
    let events = next_events(&w, 1);
    assert_eq!((events[0].0.as_str(), events[0].1.as_str()), ("ADDED", "after"));
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
