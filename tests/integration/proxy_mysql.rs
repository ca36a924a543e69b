//! Issue #4's walk-through with a real MariaDB on loopback: an application reaches its database only
//! through `meshctl proxy --forward`, which denies the connection until an EgressRule allows it, lets
//! it through once `meshctl create -f` has stored one (no restart), and refuses new connections again
//! after `meshctl delete` while an established one carries on. The database's own grants still hold
//! through the proxy: the `bookinfo` user may read `test.ratings` but not change it.
//!
//! The fixtures here (a throwaway MariaDB, a `mariadb` client, a long-lived client session) are shared
//! with the transparent-mode walk-through in `proxy_netns.rs`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::common::{Output, meshctl, proxy};

/// How long a rule change may take to reach new connections before a test gives up. The proxy is
/// meant to apply a change within a second; this only bounds the wait on a loaded machine.
pub(crate) const RULE_CHANGE: Duration = Duration::from_secs(5);

/// How long an access log line may take to appear after the connection it describes has ended.
pub(crate) const LOG_WAIT: Duration = Duration::from_secs(5);

/// Whether the real components a test needs are here. When one is missing the test is skipped with
/// a message on standard error, except under CI (`CI` set), where it must run: then it fails.
pub(crate) fn have_real_components(test: &str, programs: &[&str], need_root: bool) -> bool {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| !on_path(p))
        .map(|p| format!("`{p}` is not installed"))
        .collect();
    if need_root && !is_root() {
        missing.push("it needs root".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("{test} must run in CI, but {why} (.ci/run installs the packages and runs as root)");
    }
    eprintln!("skipping {test}: {why}");
    false
}

fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    // The sbin directories too: a non-login root shell may leave them out, and `Command` finds
    // programs only on PATH, so those are added to the PATH of every command run here.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(program).is_file())
}

/// PATH with the sbin directories (where `mariadbd`, `ip` and `iptables` live) at the end.
pub(crate) fn path_with_sbin() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/sbin:/sbin")
}

/// Whether this process runs as root (real user ID 0).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command to completion, with PATH including the sbin directories.
pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env("PATH", path_with_sbin())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed.
pub(crate) fn run_ok(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert_eq!(
        out.code, 0,
        "{program} {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    out
}

/// Sends a signal to a process by its PID with kill(1); errors (the process is gone) are ignored.
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops a child: SIGTERM, then SIGKILL if it has not exited after `grace`; reaps it either way.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A password for the `bookinfo` account, different on every run.
pub(crate) fn password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("bk-{}-{nanos}", std::process::id())
}

/// Polls `f` every 50 ms until it returns `Some`, or `timeout` passes (then the last failure, as
/// `Err`, for the message).
pub(crate) fn poll<T, E>(timeout: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A throwaway MariaDB server (the walk-through's database): its own data directory under a
/// temporary directory, the `test.ratings` table with rows (1,5),(2,4), and a `bookinfo` account that
/// may only `SELECT` from that table. Stopped by its PID and its directory removed when dropped.
pub(crate) struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    /// The address it listens on.
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Where and how a [`MariaDb`] runs.
pub(crate) struct MariaDbConfig<'a> {
    /// A network namespace to run the server in (`ip netns exec NS mariadbd ...`).
    pub(crate) netns: Option<&'a str>,
    /// The address to bind.
    pub(crate) bind: &'a str,
    /// The port; `None` picks a free one on `bind` (a namespace's fixed addresses need no search).
    pub(crate) port: Option<u16>,
    /// The host part of the `bookinfo` account: the address the server sees clients connect from.
    pub(crate) client_host: &'a str,
    /// The `bookinfo` account's password.
    pub(crate) password: &'a str,
}

impl MariaDb {
    pub(crate) fn start(config: &MariaDbConfig<'_>) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("meshctl-mariadb-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        std::fs::create_dir_all(dir.path().join("run")).expect("create run dir");
        // A private temporary directory: the shared /tmp is where other tests (and other MariaDB
        // servers started at the same moment) come and go, and the bootstrap's own temporary
        // tables must not depend on it.
        std::fs::create_dir_all(dir.path().join("tmp")).expect("create tmp dir");
        let root = is_root();
        if root {
            // mariadbd refuses to run as root; as `--user=mysql` it must own its files.
            run_ok("chown", &["-R", "mysql:mysql", &dir.path().display().to_string()]);
        }
        let datadir = format!("--datadir={}", data.display());
        let tmpdir = format!("--tmpdir={}", dir.path().join("tmp").display());
        let mut install = vec!["--no-defaults", &datadir, &tmpdir, "--skip-test-db"];
        // As root the server's root account is reached through the socket as OS user root; anyone
        // else gets a root account without a password (the socket is in a private directory).
        if root {
            install.extend(["--user=mysql", "--auth-root-authentication-method=socket"]);
        } else {
            install.push("--auth-root-authentication-method=normal");
        }
        run_ok("mariadb-install-db", &install);

        let mut last_error = String::new();
        for _ in 0..5 {
            let port = match config.port {
                Some(port) => port,
                None => free_port(config.bind),
            };
            let mut child = spawn_mariadbd(dir.path(), config, port, root);
            match wait_ready(&mut child, dir.path()) {
                Ok(()) => {
                    let server = MariaDb {
                        child,
                        dir,
                        host: config.bind.to_string(),
                        port,
                    };
                    server.set_up(config);
                    return server;
                }
                Err(e) => {
                    stop(&mut child, Duration::from_secs(5));
                    last_error = e;
                    // Only a port picked here may have been taken by someone else in the meantime.
                    if config.port.is_some() {
                        break;
                    }
                }
            }
        }
        panic!("MariaDB did not start:\n{last_error}");
    }

    /// The walk-through's schema and account, as the server's root. The statements go on standard
    /// input, so the password never appears on a command line.
    fn set_up(&self, config: &MariaDbConfig<'_>) {
        let account = format!("'bookinfo'@'{}'", config.client_host);
        let sql = format!(
            "CREATE DATABASE test;\n\
             CREATE TABLE test.ratings (ReviewID INT PRIMARY KEY, Rating INT);\n\
             INSERT INTO test.ratings VALUES (1, 5), (2, 4);\n\
             CREATE USER {account} IDENTIFIED BY '{}';\n\
             GRANT SELECT ON test.ratings TO {account};\n",
            config.password
        );
        let out = self.root_sql(&sql);
        assert_eq!(out.code, 0, "setting up MariaDB failed:\n{}", out.stderr);
    }

    /// Runs SQL as the server's root through its socket.
    pub(crate) fn root_sql(&self, sql: &str) -> Output {
        let socket = format!("--socket={}", socket_path(self.dir.path()).display());
        let mut child = Command::new("mariadb")
            .args(["--no-defaults", &socket, "-uroot", "--batch", "--skip-column-names"])
            .env("PATH", path_with_sbin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mariadb");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes()).expect("write SQL");
        }
        let out = child.wait_with_output().expect("wait for mariadb");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The server's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
        // The temporary directory goes with `self.dir`.
    }
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("run/mysqld.sock")
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("err.log")).unwrap_or_default()
}

/// Waits until the server answers on its socket, or says why it never will.
fn wait_ready(child: &mut Child, dir: &Path) -> Result<(), String> {
    let socket = format!("--socket={}", socket_path(dir).display());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("mariadbd exited ({status}):\n{}", error_log(dir)));
        }
        let ping = Command::new("mariadb-admin")
            .args(["--no-defaults", &socket, "-uroot", "ping"])
            .env("PATH", path_with_sbin())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if matches!(ping, Ok(s) if s.success()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("mariadbd did not answer within 60 s:\n{}", error_log(dir)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_mariadbd(dir: &Path, config: &MariaDbConfig<'_>, port: u16, root: bool) -> Child {
    let mut args: Vec<String> = Vec::new();
    if let Some(ns) = config.netns {
        args.extend(["netns", "exec", ns, "mariadbd"].map(String::from));
    }
    args.extend([
        "--no-defaults".to_string(),
        format!("--datadir={}", dir.join("data").display()),
        format!("--socket={}", socket_path(dir).display()),
        format!("--pid-file={}", dir.join("run/mysqld.pid").display()),
        format!("--log-error={}", dir.join("err.log").display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
        format!("--port={port}"),
        format!("--bind-address={}", config.bind),
        "--skip-name-resolve".to_string(),
    ]);
    if root {
        args.push("--user=mysql".to_string());
    }
    // `ip netns exec` execs the server, so the child's PID is the server's.
    let program = if config.netns.is_some() { "ip" } else { "mariadbd" };
    Command::new(program)
        .args(&args)
        .env("PATH", path_with_sbin())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn mariadbd: {e}"))
}

/// A port that was free on `addr` a moment ago (bound to port 0, then released).
pub(crate) fn free_port(addr: &str) -> u16 {
    std::net::TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// A `mariadb` client as the `bookinfo` user, for one address: optionally run through a prefix
/// (`ip netns exec app`, `setpriv ...`). The password travels in `MYSQL_PWD`.
pub(crate) struct Client {
    pub(crate) prefix: Vec<String>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) password: String,
}

impl Client {
    pub(crate) fn new(host: &str, port: u16, password: &str) -> Client {
        Client {
            prefix: Vec::new(),
            host: host.to_string(),
            port,
            password: password.to_string(),
        }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut words: Vec<String> = self.prefix.clone();
        words.extend(
            [
                "mariadb",
                "--no-defaults",
                "--protocol=tcp",
                "--connect-timeout=5",
                "--batch",
                "--skip-column-names",
                "-ubookinfo",
            ]
            .map(String::from),
        );
        words.push(format!("--host={}", self.host));
        words.push(format!("--port={}", self.port));
        words.extend(extra.iter().map(|s| s.to_string()));
        words.push("test".to_string());
        let mut command = Command::new(&words[0]);
        command
            .args(&words[1..])
            .env("PATH", path_with_sbin())
            .env("MYSQL_PWD", &self.password);
        command
    }

    /// Runs one statement on a new connection.
    pub(crate) fn query(&self, sql: &str) -> Output {
        let out = self
            .command(&["-e", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Reads the ratings on a new connection: `Ok` with the rows, or `Err` with what the client said.
    pub(crate) fn ratings(&self) -> Result<String, Output> {
        let out = self.query("SELECT ReviewID, Rating FROM ratings ORDER BY ReviewID");
        if out.code == 0 { Ok(out.stdout) } else { Err(out) }
    }

    /// Tries the ratings until a new connection is refused with `ERROR 2013`; `Err` with the last
    /// result when that does not happen within [`RULE_CHANGE`].
    pub(crate) fn wait_refused(&self) -> Result<Output, String> {
        poll(RULE_CHANGE, || match self.ratings() {
            Err(out) if is_lost_connection(&out) => Ok(out),
            Err(out) => Err(format!("unexpected failure: {out:?}")),
            Ok(rows) => Err(format!("still allowed, read {rows:?}")),
        })
    }

    /// Tries the ratings until both rows come back; `Err` with the last result when that does not
    /// happen within [`RULE_CHANGE`].
    pub(crate) fn wait_allowed(&self) -> Result<String, String> {
        poll(RULE_CHANGE, || match self.ratings() {
            Ok(rows) => Ok(rows),
            Err(out) => Err(format!("still refused: {out:?}")),
        })
    }

    /// A connection kept open, reading statements from a pipe.
    pub(crate) fn session(&self) -> Session {
        let mut child = self
            .command(&["--unbuffered"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mariadb");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Session { child, stdin, lines }
    }
}

/// The client's error when the proxy closes the connection before the server's greeting.
pub(crate) fn is_lost_connection(out: &Output) -> bool {
    out.code != 0 && out.stderr.contains("ERROR 2013") && out.stderr.contains("Lost connection")
}

/// One `mariadb` client process holding one connection; statements go down its standard input.
pub(crate) struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Session {
    /// Runs a statement that returns one row of one column, and returns that value.
    pub(crate) fn value(&mut self, sql: &str) -> String {
        let stdin = self.stdin.as_mut().expect("session is open");
        stdin
            .write_all(format!("{sql};\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to the mariadb client");
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                self.stdin = None;
                stop(&mut self.child, Duration::from_secs(1));
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("no answer to {sql:?} on the open connection; the client said:\n{stderr}");
            }
        }
    }

    /// Ends the session (end of input) and returns how the client exited.
    pub(crate) fn close(mut self) -> Output {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code().unwrap_or(-1),
                _ if Instant::now() >= deadline => {
                    stop(&mut self.child, Duration::from_secs(1));
                    break -1;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        Output {
            code,
            stdout: String::new(),
            stderr,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        stop(&mut self.child, Duration::from_secs(1));
    }
}

/// The walk-through's EgressRule `mysql` for one destination and port.
pub(crate) fn egress_rule(service: &str, port: u16) -> String {
    format!(
        "apiVersion: config.istio.io/v1alpha2\n\
         kind: EgressRule\n\
         metadata:\n  name: mysql\n  namespace: default\n\
         spec:\n  destination:\n    service: {service}\n  ports:\n  - port: {port}\n    protocol: tcp\n"
    )
}

/// The access log's lines for connections to `dst` with decision `decision`.
pub(crate) fn log_lines<'a>(log: &'a str, dst: &str, decision: &str) -> Vec<&'a str> {
    let arrow = format!(" -> {dst} ");
    let word = format!(" {decision} ");
    log.lines()
        .filter(|l| l.contains(" tcp ") && l.contains(&arrow) && l.contains(&word))
        .collect()
}

const ROWS: &str = "1\t5\n2\t4\n";

#[test]
fn mysql_through_forward_proxy_follows_egress_rules() {
    if !have_real_components(
        "mysql_through_forward_proxy_follows_egress_rules",
        &["mariadbd", "mariadb", "mariadb-install-db", "mariadb-admin"],
        false,
    ) {
        return;
    }
    let password = password();
    let db = MariaDb::start(&MariaDbConfig {
        netns: None,
        bind: "127.0.0.1",
        port: None,
        client_host: "127.0.0.1",
        password: &password,
    });
    let db_addr = format!("{}:{}", db.host, db.port);
    // The fixture itself: the account reads the table directly.
    let direct = Client::new("127.0.0.1", db.port, &password);
    assert_eq!(
        direct.ratings().map_err(|o| format!("{o:?}")),
        Ok(ROWS.to_string()),
        "MariaDB fixture (direct)"
    );

    let home = tempfile::tempdir().expect("temp dir");
    let mut proxy = proxy(home.path(), ["--forward", &format!("127.0.0.1:0={db_addr}")]);
    assert!(
        proxy.stderr().contains(&format!("to {db_addr}")),
        "forwarding line:\n{}",
        proxy.stderr()
    );
    let forward = proxy.forwards.first().cloned().expect("a forwarding line");
    let (fhost, fport) = forward.rsplit_once(':').expect("ADDR:PORT");
    let via_proxy = Client::new(fhost, fport.parse().expect("port"), &password);

    // 1. No EgressRule: the proxy closes the connection before the server's greeting.
    let denied = via_proxy
        .ratings()
        .expect_err("no EgressRule yet, yet the client read the table");
    assert!(
        is_lost_connection(&denied),
        "expected ERROR 2013 (lost connection): {denied:?}"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| !log_lines(l, &db_addr, "deny").is_empty());
    let deny = log_lines(&log, &db_addr, "deny");
    assert!(!deny.is_empty(), "no deny line for {db_addr} in the access log:\n{log}");
    assert!(deny[0].contains(" rule=- "), "a denial names no rule: {}", deny[0]);

    // 2. The operator stores an EgressRule; the running proxy picks it up.
    let rule_file = home.path().join("egress-rule-mysql.yaml");
    std::fs::write(&rule_file, egress_rule("127.0.0.1/32", db.port)).expect("write rule");
    let created = meshctl(["create", "-f", &rule_file.display().to_string()])
        .home(home.path())
        .run();
    created.code(0);
    assert!(
        created.stdout.contains("Created config egress-rule/default/mysql"),
        "{created:?}"
    );
    let rows = via_proxy.wait_allowed().unwrap_or_else(|e| {
        panic!(
            "the EgressRule did not let the client through: {e}\nproxy:\n{}",
            proxy.stderr()
        )
    });
    assert_eq!(rows, ROWS);
    // Least privilege holds through the proxy: the database refuses the write.
    let update = via_proxy.query("UPDATE ratings SET Rating = 1 WHERE ReviewID = 1");
    assert_ne!(update.code, 0, "bookinfo may not UPDATE: {update:?}");
    assert!(update.stderr.contains("ERROR 1142"), "expected ERROR 1142: {update:?}");
    assert_eq!(
        direct.ratings().map_err(|o| format!("{o:?}")),
        Ok(ROWS.to_string()),
        "the table is unchanged"
    );
    let log = proxy.wait_log(LOG_WAIT, |l| {
        log_lines(l, &db_addr, "allow")
            .iter()
            .any(|line| line.contains("rule=egress-rule/default/mysql"))
    });
    assert!(
        log_lines(&log, &db_addr, "allow")
            .iter()
            .any(|line| line.contains("rule=egress-rule/default/mysql")),
        "no allow line naming the rule for {db_addr}:\n{log}"
    );

    // A connection opened while the rule exists...
    let mut session = via_proxy.session();
    assert_eq!(session.value("SELECT Rating FROM ratings WHERE ReviewID = 1"), "5");

    // 3. ...outlives the rule's deletion, while new connections are refused again.
    let deleted = meshctl(["delete", "egressrule", "mysql"]).home(home.path()).run();
    deleted.code(0);
    assert!(
        deleted.stdout.contains("Deleted config: egress-rule/default/mysql"),
        "{deleted:?}"
    );
    let refused = via_proxy
        .wait_refused()
        .unwrap_or_else(|e| panic!("new connections still pass after the delete: {e}"));
    assert!(is_lost_connection(&refused));
    assert_eq!(session.value("SELECT Rating FROM ratings WHERE ReviewID = 2"), "4");
    let closed = session.close();
    assert_eq!(closed.code, 0, "the open connection failed: {}", closed.stderr);

    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
}
