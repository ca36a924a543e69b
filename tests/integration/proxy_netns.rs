//! Issue #4's walk-through in transparent mode, as a sidecar runs: an "app" network namespace whose
//! outbound TCP iptables redirects to `meshctl proxy --transparent` (running as its own uid, 1337,
//! which the capture exempts), and an "external" namespace with MariaDB on 10.200.0.2:3306 (and a
//! second server on 3307). The application's client, unaware of the proxy, is refused until an
//! EgressRule names 10.200.0.2 and port 3306; port 3307 stays blocked; deleting the rule blocks 3306
//! again.
//!
//! Needs root, `ip netns`, iptables, setpriv and MariaDB. Without them the test says why on standard
//! error and passes, except under CI (`CI` set), where it fails: CI installs them and runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{Output, Proxy, spawn_proxy};
use crate::proxy_http::egress_rule as http_rule;
use crate::proxy_mysql::{
    Client, LOG_WAIT, MariaDb, MariaDbConfig, RULE_CHANGE, egress_rule, have_real_components, is_lost_connection,
    log_lines, password, path_with_sbin, poll, run, run_ok, stop,
};

/// The uid the proxy runs as; the capture lets its own traffic out untouched.
const PROXY_UID: &str = "1337";
const APP_IP: &str = "10.200.0.1";
const EXT_IP: &str = "10.200.0.2";

/// `setpriv` arguments that run a command as [`PROXY_UID`].
fn as_proxy_uid() -> Vec<String> {
    [
        "setpriv".to_string(),
        format!("--reuid={PROXY_UID}"),
        format!("--regid={PROXY_UID}"),
        "--clear-groups".to_string(),
    ]
    .to_vec()
}

/// Two network namespaces joined by a veth pair: `app` (10.200.0.1/24) and `ext` (10.200.0.2/24).
/// The names carry this process's PID and a counter, so parallel runs do not clash. Deleted when
/// dropped (after the processes in them, which are declared later and so dropped first).
struct Namespaces {
    app: String,
    ext: String,
}

impl Namespaces {
    fn create() -> Result<Namespaces, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let app = format!("meshctl-app-{pid}-{n}");
        let ext = format!("meshctl-ext-{pid}-{n}");
        let out = run("ip", &["netns", "add", &app]);
        if out.code != 0 {
            return Err(format!("`ip netns add` failed: {}", out.stderr.trim()));
        }
        let ns = Namespaces { app, ext };
        let (app, ext) = (ns.app.as_str(), ns.ext.as_str());
        let (app_net, ext_net) = (format!("{APP_IP}/24"), format!("{EXT_IP}/24"));
        let steps: [&[&str]; 8] = [
            &["netns", "add", ext],
            // Each end is made inside its namespace: nothing appears in the host's namespace.
            &[
                "link", "add", "app0", "netns", app, "type", "veth", "peer", "name", "ext0", "netns", ext,
            ],
            &["-n", app, "addr", "add", &app_net, "dev", "app0"],
            &["-n", ext, "addr", "add", &ext_net, "dev", "ext0"],
            &["-n", app, "link", "set", "app0", "up"],
            &["-n", ext, "link", "set", "ext0", "up"],
            &["-n", app, "link", "set", "lo", "up"],
            &["-n", ext, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let out = run("ip", args);
            if out.code != 0 {
                return Err(format!("`ip {}` failed: {}", args.join(" "), out.stderr.trim()));
            }
        }
        Ok(ns)
    }

    /// Redirects the app namespace's outbound TCP to `port`, except the proxy's own and loopback.
    fn capture(&self, port: u16) {
        let port = port.to_string();
        let rules: [&[&str]; 5] = [
            &["-N", "MESH_OUT"],
            &["-A", "OUTPUT", "-p", "tcp", "-j", "MESH_OUT"],
            &[
                "-A",
                "MESH_OUT",
                "-m",
                "owner",
                "--uid-owner",
                PROXY_UID,
                "-j",
                "RETURN",
            ],
            &["-A", "MESH_OUT", "-d", "127.0.0.0/8", "-j", "RETURN"],
            &["-A", "MESH_OUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", &port],
        ];
        for rule in rules {
            let mut args = vec!["netns", "exec", &self.app, "iptables", "-t", "nat"];
            args.extend_from_slice(rule);
            run_ok("ip", &args);
        }
    }

    /// A client in the app namespace as root: its traffic is captured.
    fn app_client(&self, port: u16, password: &str) -> Client {
        let mut client = Client::new(EXT_IP, port, password);
        client.prefix = ["ip", "netns", "exec", &self.app].map(String::from).to_vec();
        client
    }

    /// A client in the app namespace as the proxy's uid: its traffic goes straight out.
    fn uncaptured_client(&self, port: u16, password: &str) -> Client {
        let mut client = self.app_client(port, password);
        client.prefix.extend(as_proxy_uid());
        client
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.app, &self.ext] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// `meshctl --store sqlite:DB ARGS...` as the proxy's uid, so the store's files (the database and
/// its `-wal`/`-shm` companions) stay writable by the proxy.
fn meshctl_as_proxy_uid(work: &Path, bin: &Path, db: &Path, args: &[&str]) -> Output {
    let mut words = as_proxy_uid();
    words.push(bin.display().to_string());
    words.extend(["--store".to_string(), format!("sqlite:{}", db.display())]);
    words.extend(args.iter().map(|s| s.to_string()));
    let out = private_env(Command::new(&words[0]).args(&words[1..]), work)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run meshctl");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// HOME and the XDG directories under `work` (owned by the proxy's uid), nothing from the test's.
fn private_env<'c>(command: &'c mut Command, work: &Path) -> &'c mut Command {
    command
        .current_dir(work)
        .env_remove("MESHCTL_STORE")
        .env_remove("MESHCTL_TOKEN")
        .env("PATH", path_with_sbin())
        .env("HOME", work)
        .env("XDG_CONFIG_HOME", work.join("config"))
        .env("XDG_DATA_HOME", work.join("data"))
}

/// The namespaces with the app's outbound TCP captured to port 15001, or `None` (with the reason on
/// standard error) when `programs` or root are missing outside CI.
fn captured_namespaces(test: &str, programs: &[&str]) -> Option<Namespaces> {
    if !have_real_components(test, programs, true) {
        return None;
    }
    let ns = match Namespaces::create() {
        Ok(ns) => ns,
        Err(e) if std::env::var_os("CI").is_some() => panic!("{test} must run in CI, but {e}"),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            return None;
        }
    };
    ns.capture(15001);
    Some(ns)
}

/// A directory owned by the proxy's uid holding a copy of the binary (the build tree may sit where
/// uid 1337 cannot reach it); the proxy's HOME, store and rule files go here too.
struct ProxyWork {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl ProxyWork {
    fn new() -> ProxyWork {
        let dir = tempfile::Builder::new()
            .prefix("meshctl-netns-")
            .tempdir()
            .expect("temp dir");
        let bin = dir.path().join("meshctl");
        std::fs::copy(env!("CARGO_BIN_EXE_meshctl"), &bin).expect("copy meshctl");
        run_ok(
            "chown",
            &[
                "-R",
                &format!("{PROXY_UID}:{PROXY_UID}"),
                &dir.path().display().to_string(),
            ],
        );
        ProxyWork { dir, bin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `meshctl proxy --transparent` on 127.0.0.1:15001 (admin 15000) as uid 1337 in the app
    /// namespace, with `source` naming its rules (`--store ...` or `-f DIR`); waits for `ready`.
    fn start_proxy(&self, ns: &Namespaces, source: &[&str]) -> Proxy {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns.app])
            .args(as_proxy_uid())
            .arg(&self.bin)
            .args([
                "proxy",
                "--transparent",
                "--listen",
                "127.0.0.1:15001",
                "--admin",
                "127.0.0.1:15000",
            ])
            .args(source);
        private_env(&mut command, self.path());
        spawn_proxy(command)
    }
}

const ROWS: &str = "1\t5\n2\t4\n";

#[test]
fn transparent_proxy_in_netns_follows_egress_rules() {
    let test = "transparent_proxy_in_netns_follows_egress_rules";
    let programs = [
        "ip",
        "iptables",
        "setpriv",
        "mariadbd",
        "mariadb",
        "mariadb-install-db",
        "mariadb-admin",
    ];
    let Some(ns) = captured_namespaces(test, &programs) else {
        return;
    };

    let password = password();
    let db = MariaDb::start(&MariaDbConfig {
        netns: Some(&ns.ext),
        bind: EXT_IP,
        port: Some(3306),
        client_host: "10.200.0.%",
        password: &password,
    });
    let other = MariaDb::start(&MariaDbConfig {
        netns: Some(&ns.ext),
        bind: EXT_IP,
        port: Some(3307),
        client_host: "10.200.0.%",
        password: &password,
    });
    assert_ne!(db.pid(), other.pid());

    // The fixtures: both servers answer the proxy's uid, which the capture lets through...
    for port in [3306, 3307] {
        let direct = ns.uncaptured_client(port, &password);
        assert_eq!(
            direct.ratings().map_err(|o| format!("{o:?}")),
            Ok(ROWS.to_string()),
            "MariaDB on {EXT_IP}:{port} (uncaptured)"
        );
    }
    // ...while the application's traffic goes to port 15001, where nothing listens yet.
    let app = ns.app_client(3306, &password);
    let captured = app
        .ratings()
        .expect_err("captured traffic reached the database without a proxy");
    assert!(
        captured.stderr.contains("Can't connect"),
        "captured traffic should be redirected to port 15001, where nothing listens yet: {captured:?}"
    );

    // The proxy, as uid 1337 in the app namespace, following a store it owns.
    let work = ProxyWork::new();
    let db_file = work.path().join("store.db");
    let mut proxy = work.start_proxy(&ns, &["--store", &format!("sqlite:{}", db_file.display())]);
    assert_eq!(proxy.listen, "127.0.0.1:15001", "{}", proxy.stderr());
    assert!(
        proxy.stderr().contains("transparent"),
        "the listening line should say transparent:\n{}",
        proxy.stderr()
    );
    let dst = format!("{EXT_IP}:3306");

    // 1. No EgressRule: the application's connection is closed by the proxy.
    let denied = app
        .ratings()
        .expect_err("no EgressRule yet, yet the client read the table");
    assert!(
        is_lost_connection(&denied),
        "expected ERROR 2013 (lost connection): {denied:?}"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| !log_lines(l, &dst, "deny").is_empty());
    assert!(
        !log_lines(&log, &dst, "deny").is_empty(),
        "no deny line for {dst}:\n{log}"
    );

    // 2. An EgressRule naming the database's address and port lets it through, without a restart.
    let rule_file = work.path().join("egress-rule-mysql.yaml");
    std::fs::write(&rule_file, egress_rule(EXT_IP, 3306)).expect("write rule");
    let rule_path = rule_file.display().to_string();
    let created = meshctl_as_proxy_uid(work.path(), &work.bin, &db_file, &["create", "-f", &rule_path]);
    created.code(0);
    let rows = app.wait_allowed().unwrap_or_else(|e| {
        panic!(
            "the EgressRule did not let the client through: {e}\nproxy:\n{}",
            proxy.stderr()
        )
    });
    assert_eq!(rows, ROWS);
    let update = app.query("UPDATE ratings SET Rating = 1 WHERE ReviewID = 1");
    assert!(
        update.code != 0 && update.stderr.contains("ERROR 1142"),
        "expected ERROR 1142: {update:?}"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| {
        log_lines(l, &dst, "allow")
            .iter()
            .any(|line| line.contains("rule=egress-rule/default/mysql"))
    });
    assert!(
        log_lines(&log, &dst, "allow")
            .iter()
            .any(|line| line.contains("rule=egress-rule/default/mysql")),
        "no allow line naming the rule for {dst}:\n{log}"
    );

    // The rule names one port: the other server stays out of reach.
    let other_dst = format!("{EXT_IP}:3307");
    let blocked = ns
        .app_client(3307, &password)
        .ratings()
        .expect_err("port 3307 is not in the EgressRule, yet the client read the table");
    assert!(is_lost_connection(&blocked), "expected ERROR 2013 on 3307: {blocked:?}");
    let log = proxy.wait_log(LOG_WAIT, |l| !log_lines(l, &other_dst, "deny").is_empty());
    assert!(
        !log_lines(&log, &other_dst, "deny").is_empty(),
        "no deny line for {other_dst}:\n{log}"
    );

    // 3. Deleting the rule blocks new connections again.
    let deleted = meshctl_as_proxy_uid(work.path(), &work.bin, &db_file, &["delete", "egressrule", "mysql"]);
    deleted.code(0);
    app.wait_refused()
        .unwrap_or_else(|e| panic!("new connections still pass after the delete: {e}"));

    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
}

// === HTTP Host and TLS SNI under transparent capture ===

/// Serves HTTP on EXT_IP:80 and HTTPS on EXT_IP:443 (threads, one per request) and answers every GET
/// with `scheme=`, `host=` (the Host header) and `path=` lines. Prints `ready` once both listen.
const EXT_WEB_PY: &str = r#"
import http.server, ssl, sys, threading

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "scheme=%s\nhost=%s\npath=%s\n" % (
            self.server.scheme, self.headers.get("Host", ""), self.path)
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ip, cert, key = sys.argv[1:4]
plain = http.server.ThreadingHTTPServer((ip, 80), Handler)
plain.scheme = "http"
tls = http.server.ThreadingHTTPServer((ip, 443), Handler)
tls.scheme = "https"
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
# The handshake happens in the request's thread, not in the accept loop.
tls.socket = context.wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)
threading.Thread(target=plain.serve_forever, daemon=True).start()
print("ready", flush=True)
tls.serve_forever()
"#;

/// The external web server ([`EXT_WEB_PY`]) in the ext namespace, with a self-signed certificate for
/// `ext.example.com`. `ip netns exec` execs python3, so the child's PID is the server's; stopped by
/// it when dropped.
struct ExtWeb {
    child: std::process::Child,
}

impl ExtWeb {
    fn start(ns: &Namespaces, dir: &Path) -> ExtWeb {
        use std::io::BufRead;
        let certified = rcgen::generate_simple_self_signed(vec!["ext.example.com".to_string()]).expect("certificate");
        let (script, cert, key) = (dir.join("ext_web.py"), dir.join("ext.crt"), dir.join("ext.key"));
        std::fs::write(&script, EXT_WEB_PY).expect("write server script");
        std::fs::write(&cert, certified.cert.pem()).expect("write certificate");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.ext, "python3", "-u"])
            .arg(&script)
            .arg(EXT_IP)
            .args([&cert, &key])
            .env("PATH", path_with_sbin())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = ExtWeb { child };
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) if line.trim() == "ready" => server,
            other => {
                stop(&mut server.child, std::time::Duration::from_secs(1));
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("the web server in {} did not start ({other:?}):\n{stderr}", ns.ext);
            }
        }
    }
}

impl Drop for ExtWeb {
    fn drop(&mut self) {
        stop(&mut self.child, std::time::Duration::from_secs(5));
    }
}

/// What one curl run printed: its exit code, the HTTP status (`000` when no response came), the body
/// and curl's own messages.
#[derive(Debug)]
struct Fetched {
    code: i32,
    status: String,
    body: String,
    stderr: String,
}

impl Fetched {
    fn is_status(&self, status: &str) -> bool {
        self.code == 0 && self.status == status
    }

    /// Refused by the proxy: curl got no HTTP response at all (connection closed or reset).
    fn is_closed(&self) -> bool {
        self.code != 0 && self.status == "000" && self.body.is_empty()
    }
}

impl Namespaces {
    /// curl in the app namespace: as root (captured), or as the proxy's uid (straight out). One
    /// request on a connection of its own; no proxy variables apply.
    fn curl(&self, captured: bool, args: &[&str]) -> Fetched {
        let mut words: Vec<String> = ["netns", "exec", &self.app].map(String::from).to_vec();
        if !captured {
            words.extend(as_proxy_uid());
        }
        words.extend(
            [
                "curl",
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                "10",
                "-H",
                "Connection: close",
                "-w",
                "\n%{http_code}",
            ]
            .map(String::from),
        );
        words.extend(args.iter().map(|s| s.to_string()));
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = run("ip", &words);
        let (body, status) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
        Fetched {
            code: out.code,
            status: status.trim().to_string(),
            body: body.to_string(),
            stderr: out.stderr,
        }
    }

    /// `GET http://EXT_IP/PATH` with this Host header.
    fn get_host(&self, captured: bool, host: &str, path: &str) -> Fetched {
        self.curl(
            captured,
            &["-H", &format!("Host: {host}"), &format!("http://{EXT_IP}{path}")],
        )
    }

    /// `GET https://HOST/PATH` with HOST resolved to EXT_IP (the SNI is HOST), certificate not checked.
    fn get_tls(&self, captured: bool, host: &str, path: &str) -> Fetched {
        self.curl(
            captured,
            &[
                "-k",
                "--resolve",
                &format!("{host}:443:{EXT_IP}"),
                &format!("https://{host}{path}"),
            ],
        )
    }
}

/// Puts a rule file into `dir` whole (written beside it, then renamed), so the proxy's poll never
/// reads half a file.
fn put_rule(dir: &Path, name: &str, content: &str) {
    let staged = dir.with_file_name(format!(".{name}.staged"));
    std::fs::write(&staged, content).expect("write rule");
    std::fs::rename(&staged, dir.join(name)).expect("move rule into place");
}

/// Polls `fetch` until `done` holds on its result (a rule change is polled by the proxy every
/// 250 ms); returns the last result either way.
fn fetch_until(fetch: impl Fn() -> Fetched, done: impl Fn(&Fetched) -> bool) -> Fetched {
    match poll(RULE_CHANGE, || {
        let f = fetch();
        if done(&f) { Ok(f) } else { Err(f) }
    }) {
        Ok(f) | Err(f) => f,
    }
}

#[test]
fn transparent_proxy_in_netns_matches_http_host_and_tls_sni() {
    let test = "transparent_proxy_in_netns_matches_http_host_and_tls_sni";
    let Some(ns) = captured_namespaces(test, &["ip", "iptables", "setpriv", "curl", "python3"]) else {
        return;
    };
    let work = ProxyWork::new();
    let web = ExtWeb::start(&ns, work.path());

    // The fixtures: the proxy's uid reaches both servers directly; root's traffic is redirected to
    // port 15001, where nothing listens yet.
    let direct = ns.get_host(false, "ext.example.com", "/direct");
    assert!(
        direct.is_status("200") && direct.body.contains("scheme=http\nhost=ext.example.com\n"),
        "HTTP server on {EXT_IP}:80 (uncaptured): {direct:?}"
    );
    let direct = ns.get_tls(false, "ext.example.com", "/direct");
    assert!(
        direct.is_status("200") && direct.body.contains("scheme=https\nhost=ext.example.com\n"),
        "HTTPS server on {EXT_IP}:443 (uncaptured): {direct:?}"
    );
    let nobody = ns.get_host(true, "ext.example.com", "/");
    assert!(
        nobody.code == 7 && nobody.stderr.contains("Failed to connect"),
        "captured traffic should be redirected to port 15001, where nothing listens yet: {nobody:?}"
    );

    let rules = work.path().join("rules");
    std::fs::create_dir(&rules).expect("create rules dir");
    let mut proxy = work.start_proxy(&ns, &["-f", &rules.display().to_string()]);
    let http_ext = || ns.get_host(true, "ext.example.com", "/ext");
    let http_other = || ns.get_host(true, "other.example.com", "/other");

    // 1. No rule at all: the proxy cannot allow anything on port 80. An HTTP client has sent its
    // request at once, so it is answered 403 with the reason (a client that waits for the server to
    // speak first, like MySQL's, is closed instead: see the walk-through test).
    let denied = fetch_until(http_ext, |f| f.status != "000");
    assert!(
        denied.is_status("403") && denied.body.contains("no EgressRule allows"),
        "no rules: expected 403: {denied:?}"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| {
        !log_has(l, &["http ", "-> ext.example.com:80 ", " deny "]).is_empty()
    });
    assert!(
        !log_has(&log, &["http ", "-> ext.example.com:80 ", " deny "]).is_empty(),
        "no http deny line for ext.example.com:80:\n{log}"
    );

    // 2. Once some host rule names port 80, captured HTTP is read and checked by its Host header:
    // ext.example.com is not covered, so 403 with a body that says so.
    put_rule(
        &rules,
        "unrelated.yaml",
        &http_rule("unrelated", "unrelated.test", &[(80, "http")]),
    );
    let denied = fetch_until(http_ext, |f| f.status != "000");
    assert!(
        denied.is_status("403"),
        "expected 403 for Host ext.example.com: {denied:?}\n{}",
        proxy.stderr()
    );
    assert!(
        denied.body.contains("no EgressRule allows") && denied.body.contains("ext.example.com:80"),
        "the 403 body should name the destination and say no EgressRule allows it: {denied:?}"
    );

    // 3. An EgressRule for the host on port 80 lets it through, to the original destination.
    put_rule(
        &rules,
        "ext.yaml",
        &http_rule("ext", "ext.example.com", &[(80, "http")]),
    );
    let allowed = fetch_until(http_ext, |f| f.status != "403");
    assert!(
        allowed.is_status("200") && allowed.body.contains("scheme=http\nhost=ext.example.com\npath=/ext\n"),
        "the EgressRule for ext.example.com did not let it through: {allowed:?}\n{}",
        proxy.stderr()
    );
    let other = http_other();
    assert!(
        other.is_status("403"),
        "other.example.com is not covered yet: {other:?}"
    );

    // 4. A wildcard rule covers other.example.com; hosts outside it stay denied, each request on a
    // connection of its own.
    put_rule(
        &rules,
        "wild.yaml",
        &http_rule("wild", "*.example.com", &[(80, "http")]),
    );
    let other = fetch_until(http_other, |f| f.status != "403");
    assert!(
        other.is_status("200") && other.body.contains("host=other.example.com\npath=/other\n"),
        "the wildcard rule did not let other.example.com through: {other:?}\n{}",
        proxy.stderr()
    );
    for host in ["ext.example.org", "example.com.evil.test", EXT_IP] {
        let uncovered = ns.get_host(true, host, "/uncovered");
        assert!(
            uncovered.is_status("403") && uncovered.body.contains("no EgressRule allows"),
            "Host {host} is not covered by any rule: {uncovered:?}"
        );
    }

    // 5. TLS is matched by its SNI. No host rule names port 443 yet: closed at once.
    let tls_ext = || ns.get_tls(true, "ext.example.com", "/tls");
    let refused = tls_ext();
    assert!(refused.is_closed(), "no rule for port 443 yet: {refused:?}");
    put_rule(
        &rules,
        "ext-tls.yaml",
        &http_rule("ext-tls", "ext.example.com", &[(443, "https")]),
    );
    let passed = fetch_until(tls_ext, |f| !f.is_closed());
    assert!(
        passed.is_status("200") && passed.body.contains("scheme=https\nhost=ext.example.com\npath=/tls\n"),
        "TLS with SNI ext.example.com should pass through untouched: {passed:?}\n{}",
        proxy.stderr()
    );
    let refused = ns.get_tls(true, "other.test", "/tls");
    assert!(
        refused.is_closed(),
        "TLS with SNI other.test is not covered: expected the connection closed: {refused:?}"
    );

    // 6. The access log tells http and tls apart and names the rules.
    let expected: [&[&str]; 7] = [
        &[" http ", "-> ext.example.com:80 ", " deny ", " 403 ", "rule=- "],
        &[
            " http ",
            "-> ext.example.com:80 ",
            " allow ",
            " 200 ",
            "rule=egress-rule/default/ext ",
        ],
        &[
            " http ",
            "-> other.example.com:80 ",
            " allow ",
            " 200 ",
            "rule=egress-rule/default/wild ",
        ],
        &[" http ", "-> ext.example.org:80 ", " deny ", " 403 "],
        &[
            " tls ",
            "-> ext.example.com:443 ",
            " allow ",
            "rule=egress-rule/default/ext-tls ",
        ],
        &[" tls ", "-> other.test:443 ", " deny ", "rule=- "],
        &[" tcp ", "-> 10.200.0.2:443 ", " deny "],
    ];
    let log = proxy.wait_log(LOG_WAIT, |l| expected.iter().all(|n| !log_has(l, n).is_empty()));
    for needles in expected {
        assert!(
            !log_has(&log, needles).is_empty(),
            "no access log line with {needles:?}:\n{log}"
        );
    }
    // The passed-through TLS connection carried bytes both ways.
    let tls_line = log_has(&log, &[" tls ", "-> ext.example.com:443 ", " allow "])[0];
    assert!(
        !tls_line.contains(" sent=0 ") && !tls_line.contains(" received=0 "),
        "{tls_line}"
    );

    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
    drop(proxy);
    drop(web);
}

#[test]
fn transparent_proxy_in_netns_routes_mesh_services_by_host() {
    let test = "transparent_proxy_in_netns_routes_mesh_services_by_host";
    let Some(ns) = captured_namespaces(test, &["ip", "iptables", "setpriv", "curl", "python3"]) else {
        return;
    };
    let work = ProxyWork::new();
    let web = ExtWeb::start(&ns, work.path());
    // `reviews` on port 80 has one endpoint: the web server outside the namespace.
    let services = work.path().join("services.yaml");
    std::fs::write(
        &services,
        format!(
            "services:\n- name: reviews\n  port: 80\n  endpoints:\n  - address: {EXT_IP}:80\n    labels: {{version: v1}}\n"
        ),
    )
    .expect("write services");
    let rules = work.path().join("rules");
    std::fs::create_dir(&rules).expect("create rules dir");
    let mut proxy = work.start_proxy(
        &ns,
        &[
            "-f",
            &rules.display().to_string(),
            "--services",
            &services.display().to_string(),
        ],
    );

    // Captured HTTP whose Host names the service is a mesh request: routed to the endpoint with no
    // EgressRule. Any other Host on the same port is still egress, and denied.
    let mesh = fetch_until(|| ns.get_host(true, "reviews", "/mesh"), |f| f.status != "000");
    assert!(
        mesh.is_status("200") && mesh.body.contains("host=reviews\npath=/mesh\n"),
        "captured request for the mesh service reviews:80: {mesh:?}\n{}",
        proxy.stderr()
    );
    let fqdn = ns.get_host(true, "reviews.default.svc.cluster.local", "/fqdn");
    assert!(fqdn.is_status("200"), "by its FQDN: {fqdn:?}");
    let egress = ns.get_host(true, "ext.example.com", "/ext");
    assert!(
        egress.is_status("403") && egress.body.contains("no EgressRule allows"),
        "a host that is not a service stays egress: {egress:?}"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| {
        !log_has(
            l,
            &[" http ", "-> reviews.default.svc.cluster.local:80 ", " allow ", " 200 "],
        )
        .is_empty()
    });
    let line = log_has(&log, &[" http ", "-> reviews.default.svc.cluster.local:80 ", " allow "]);
    assert!(
        line.first()
            .is_some_and(|l| l.contains(&format!("upstream={EXT_IP}:80"))),
        "no mesh access log line naming the endpoint:\n{log}"
    );
    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
    drop(proxy);
    drop(web);
}

/// The access log lines containing every one of `needles`.
fn log_has<'l>(log: &'l str, needles: &[&str]) -> Vec<&'l str> {
    log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
}
