//! Issue #4's walk-through in transparent mode, as a sidecar runs: an "app" network namespace whose
//! outbound TCP iptables redirects to `meshctl proxy --transparent` (running as its own uid, 1337,
//! which the capture exempts), and an "external" namespace with MariaDB on 10.200.0.2:3306 (and a
//! second server on 3307). The application's client, unaware of the proxy, is refused until an
//! EgressRule names 10.200.0.2 and port 3306; port 3307 stays blocked; deleting the rule blocks 3306
//! again.
//!
//! Needs root, `ip netns`, iptables, setpriv and MariaDB. Without them the test says why on standard
//! error and passes, except under CI (`CI` set), where it fails: CI installs them and runs as root.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{Output, spawn_proxy};
use crate::proxy_mysql::{
    Client, LOG_WAIT, MariaDb, MariaDbConfig, egress_rule, have_real_components, is_lost_connection, log_lines,
    password, path_with_sbin, run, run_ok,
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
    if !have_real_components(test, &programs, true) {
        return;
    }
    let ns = match Namespaces::create() {
        Ok(ns) => ns,
        Err(e) if std::env::var_os("CI").is_some() => panic!("{test} must run in CI, but {e}"),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            return;
        }
    };
    ns.capture(15001);

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

    // The proxy, as uid 1337 in the app namespace, following a store it owns. The binary is copied
    // into that directory: the build tree may sit where uid 1337 cannot reach it.
    let work = tempfile::Builder::new()
        .prefix("meshctl-netns-")
        .tempdir()
        .expect("temp dir");
    let bin = work.path().join("meshctl");
    std::fs::copy(env!("CARGO_BIN_EXE_meshctl"), &bin).expect("copy meshctl");
    run_ok(
        "chown",
        &[
            "-R",
            &format!("{PROXY_UID}:{PROXY_UID}"),
            &work.path().display().to_string(),
        ],
    );
    let db_file = work.path().join("store.db");
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &ns.app])
        .args(as_proxy_uid())
        .arg(&bin)
        .args([
            "proxy",
            "--transparent",
            "--listen",
            "127.0.0.1:15001",
            "--admin",
            "127.0.0.1:15000",
        ])
        .args(["--store", &format!("sqlite:{}", db_file.display())]);
    private_env(&mut command, work.path());
    let mut proxy = spawn_proxy(command);
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
    let created = meshctl_as_proxy_uid(work.path(), &bin, &db_file, &["create", "-f", &rule_path]);
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
    let deleted = meshctl_as_proxy_uid(work.path(), &bin, &db_file, &["delete", "egressrule", "mysql"]);
    deleted.code(0);
    app.wait_refused()
        .unwrap_or_else(|e| panic!("new connections still pass after the delete: {e}"));

    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
}
