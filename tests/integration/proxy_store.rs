//! `meshctl proxy` following a `meshctl serve` store live (`--store http://127.0.0.1:PORT`): a
//! `--forward` to a local echo server is closed until `meshctl --store URL create` stores an
//! EgressRule for it, passes once the rule is in force (the admin port's `/config_dump` shows the
//! rule at the store's revision), and is closed again after the delete. When the store goes away the
//! proxy says so and keeps the last rules it had in force, still answering `/ready`; a store serving
//! the same sqlite file again does not disturb it.
//!
//! Only loopback, OS-chosen ports; waits are polls with generous bounds, never timing assertions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Proxy, meshctl, proxy, serve};
use crate::proxy_http::{IO_TIMEOUT, WAIT, admin_get, echo_server, wait_log_line};
use crate::proxy_mysql::poll;

/// How long the proxy may take to notice that its store is gone: the store client's quiet
/// reconnects (30 s, `WATCH_RECONNECT_FOR` in src/store/remote.rs), then a retry. A failure bound only.
const STORE_GONE: Duration = Duration::from_secs(60);

/// What became of one connection through a forward.
#[derive(Debug, PartialEq)]
enum Echo {
    /// The bytes came back.
    Echoed,
    /// The proxy closed (or reset) the connection without an echo.
    Closed(String),
    /// Anything else (a timeout, altered bytes): never expected.
    Other(String),
}

/// Connects to `addr`, sends a line and reads it back.
fn echo_through(addr: &str) -> Echo {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return Echo::Other(format!("connect to {addr}: {e}")),
    };
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    let data = b"through meshctl proxy\n";
    if let Err(e) = s.write_all(data) {
        // The proxy may have closed before the write.
        return Echo::Closed(format!("write: {e}"));
    }
    let mut back = vec![0u8; data.len()];
    match s.read_exact(&mut back) {
        Ok(()) if back == data => Echo::Echoed,
        Ok(()) => Echo::Other(format!(
            "the echo came back altered: {:?}",
            String::from_utf8_lossy(&back)
        )),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Echo::Other(format!("no answer: {e}"))
        }
        Err(e) => Echo::Closed(e.to_string()),
    }
}

/// Polls the forward until it echoes (`want_echo`) or is closed; panics with the proxy's output if
/// that does not happen within [`WAIT`].
fn wait_forward(proxy: &Proxy, addr: &str, want_echo: bool, what: &str) {
    let got = poll(WAIT, || match echo_through(addr) {
        Echo::Echoed if want_echo => Ok(Echo::Echoed),
        Echo::Closed(e) if !want_echo => Ok(Echo::Closed(e)),
        other => Err(other),
    });
    if let Err(last) = got {
        panic!(
            "{what}: expected {} through {addr}, last got {last:?}\n--- stderr\n{}\n--- access log\n{}",
            if want_echo { "the echo" } else { "the connection closed" },
            proxy.stderr(),
            proxy.access_log()
        );
    }
}

fn tcp_rule(name: &str, port: u16) -> String {
    format!(
        "apiVersion: config.istio.io/v1alpha2\n\
         kind: EgressRule\n\
         metadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  destination:\n    service: 127.0.0.1/32\n  ports:\n  - port: {port}\n    protocol: tcp\n"
    )
}

/// The store's revision, as its list of EgressRules reports it.
fn store_revision(url: &str) -> u64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client");
    let list: Value = client
        .get(format!("{url}/apis/config.istio.io/v1alpha2/egressrules"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("list the store's EgressRules");
    list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in the list: {list}"))
}

fn config_dump(proxy: &Proxy) -> Value {
    let dump = admin_get(proxy, "/config_dump");
    assert_eq!(dump.status, 200, "{dump:?}");
    serde_json::from_str(&dump.body).unwrap_or_else(|e| panic!("/config_dump is not JSON ({e}): {}", dump.body))
}

fn rule_names(dump: &Value) -> Vec<String> {
    dump["egressRules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn store_cli(url: &str, home: &Path, args: &[&str]) {
    let mut words = vec!["--store", url];
    words.extend_from_slice(args);
    meshctl(words).home(home).run().code(0);
}

#[test]
fn proxy_follows_a_served_store_and_keeps_its_rules_when_the_store_goes_away() {
    let home = tempfile::tempdir().expect("temp dir");
    let db = format!("--store=sqlite:{}", home.path().join("store.db").display());
    let mut server = serve(home.path(), [db.as_str()]);
    let url = server.url.clone();
    let echo = echo_server();
    // A second echo server no rule ever names: it shows the proxy still enforcing at every step.
    let stranger = echo_server();
    let dst = format!("127.0.0.1:{}", echo.port);
    let p = proxy(
        home.path(),
        [
            "--store",
            &url,
            "--forward",
            &format!("127.0.0.1:0={dst}"),
            "--forward",
            &format!("127.0.0.1:0=127.0.0.1:{}", stranger.port),
        ],
    );
    let (forward, other) = (p.forwards[0].clone(), p.forwards[1].clone());
    assert!(
        p.stderr().contains(&format!("0 EgressRules (from {url})")),
        "the proxy should start from the served store, empty:\n{}",
        p.stderr()
    );

    // 1. No EgressRule: closed without an echo.
    assert!(
        matches!(echo_through(&forward), Echo::Closed(_)),
        "no rule yet: {:?}",
        echo_through(&forward)
    );
    wait_log_line(&p, &["tcp ", &format!("-> {dst} "), " deny ", "rule=- "]);

    // 2. A rule stored through the server is in force without a restart.
    let rule = home.path().join("egress-rule-echo.yaml");
    std::fs::write(&rule, tcp_rule("echo", echo.port)).expect("write rule");
    let rule = rule.display().to_string();
    store_cli(&url, home.path(), &["create", "-f", &rule]);
    wait_forward(&p, &forward, true, "after the create");
    wait_log_line(
        &p,
        &[
            "tcp ",
            &format!("-> {dst} "),
            " allow ",
            "rule=egress-rule/default/echo ",
        ],
    );
    assert!(
        matches!(echo_through(&other), Echo::Closed(_)),
        "the stranger stays out"
    );

    // The admin port shows the rule, at the store's revision.
    let revision = store_revision(&url);
    let dump = poll(WAIT, || {
        let dump = config_dump(&p);
        if dump["revision"].as_u64() == Some(revision) {
            Ok(dump)
        } else {
            Err(dump)
        }
    })
    .unwrap_or_else(|dump| panic!("/config_dump never reached the store's revision {revision}: {dump}"));
    assert_eq!(rule_names(&dump), ["echo"], "{dump}");
    assert_eq!(
        dump["egressRules"][0]["spec"]["destination"]["service"], "127.0.0.1/32",
        "{dump}"
    );
    assert_eq!(dump["egressRules"][0]["spec"]["ports"][0]["port"], echo.port, "{dump}");
    assert_eq!(dump["source"].as_str(), Some(url.as_str()), "{dump}");

    // 3. The delete is in force too.
    store_cli(&url, home.path(), &["delete", "egressrule", "echo"]);
    wait_forward(&p, &forward, false, "after the delete");

    // 4. The rule again, then the store goes away: the proxy keeps the rule it has.
    store_cli(&url, home.path(), &["create", "-f", &rule]);
    wait_forward(&p, &forward, true, "after the second create");
    let revision = store_revision(&url);
    poll(WAIT, || {
        let dump = config_dump(&p);
        if dump["revision"].as_u64() == Some(revision) {
            Ok(())
        } else {
            Err(dump)
        }
    })
    .unwrap_or_else(|dump| panic!("/config_dump never reached the store's revision {revision}: {dump}"));
    server.kill();
    // The store client reconnects quietly for a while (30 s) before it gives the watch up; only
    // then does the proxy list again, fail, and say so.
    let stderr = p.wait_stderr(STORE_GONE, |e| e.contains("lost the store"));
    assert!(
        stderr.contains(&format!("lost the store {url}")),
        "the proxy should say it lost the store:\n{stderr}"
    );
    assert_eq!(
        echo_through(&forward),
        Echo::Echoed,
        "the last good rules stay in force:\n{stderr}"
    );
    assert!(
        matches!(echo_through(&other), Echo::Closed(_)),
        "the stranger stays out"
    );
    let ready = admin_get(&p, "/ready");
    assert_eq!(ready.status, 200, "/ready without the store: {ready:?}");
    let dump = config_dump(&p);
    assert_eq!(dump["revision"].as_u64(), Some(revision), "{dump}");
    assert_eq!(rule_names(&dump), ["echo"], "{dump}");

    // 5. The store serves the same file again (on another port): the rule is still stored, and the
    // proxy, still pointed at the old address, stays up and keeps enforcing what it had.
    let server = serve(home.path(), [db.as_str()]);
    assert_eq!(store_revision(&server.url), revision, "the sqlite file kept the store");
    assert_eq!(echo_through(&forward), Echo::Echoed);
    assert!(
        matches!(echo_through(&other), Echo::Closed(_)),
        "the stranger stays out"
    );
    assert_eq!(admin_get(&p, "/ready").status, 200);
    let mut p = p;
    assert!(p.is_running(), "the proxy exited:\n{}", p.stderr());
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
    drop(server);
}
