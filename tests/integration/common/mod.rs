//! Runs the real `meshctl` binary with private XDG directories, standard input and environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::io::Write;

/// The repository root (for testdata).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(rel: &str) -> PathBuf {
    root().join("testdata").join(rel)
}

/// A `meshctl` invocation being built.
pub struct Meshctl {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    home: tempfile::TempDir,
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn meshctl<I, S>(args: I) -> Meshctl
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Meshctl {
        args: args.into_iter().map(|s| s.as_ref().to_string()).collect(),
        stdin: None,
        env: Vec::new(),
        dir: None,
        home: tempfile::tempdir().expect("temp dir"),
    }
}

impl Meshctl {
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn run(self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
        cmd.args(&self.args)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("GITHUB_WORKSPACE")
            .env_remove("MESHCTL_STORE")
            .env_remove("MESHCTL_TOKEN")
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("HOME", self.home.path())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("spawn meshctl");
        if let Some(input) = &self.stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for meshctl");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Asserts the exit code, showing the output when it is not the expected one.
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

// === Shared homes (store-management tests) ===

impl Meshctl {
    /// Uses `dir` as HOME, with XDG_CONFIG_HOME and XDG_DATA_HOME under it as the default runner
    /// sets them, so several invocations share one config file and one embedded store.
    pub fn home(self, dir: &Path) -> Self {
        let config = dir.join("config");
        let data = dir.join("data");
        self.env("HOME", &dir.display().to_string())
            .env("XDG_CONFIG_HOME", &config.display().to_string())
            .env("XDG_DATA_HOME", &data.display().to_string())
    }
}

// === A running `meshctl serve` (tests/integration/serve.rs) ===

/// A `meshctl serve` process on 127.0.0.1 with an OS-chosen port, with private XDG directories. The
/// port is read from the line the server prints once it listens (`meshctl serve: listening on URL`).
/// Killed (SIGKILL, by its PID through the child handle) when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Starts `meshctl serve --listen 127.0.0.1:0 ARGS...` with HOME and the XDG directories under `home`.
pub fn serve<I, S>(home: &Path, args: I) -> Server
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args.into_iter().map(|s| s.as_ref().to_string()))
        .env_remove("MESHCTL_STORE")
        .env_remove("MESHCTL_TOKEN")
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl serve");
    let pipe = child.stderr.take().expect("stderr pipe");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log = stderr.clone();
    // Keeps draining stderr for the server's whole life, so its log lines never block it.
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("meshctl serve: listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
            let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            log.push_str(&line);
            log.push('\n');
        }
    });
    // Generous: a loaded CI machine may be slow to start a process; nothing here depends on timing.
    let url = match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            let _ = reader.join();
            panic!(
                "meshctl serve did not start ({status:?}):\n{}",
                stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            );
        }
    };
    Server {
        child,
        url,
        stderr,
        reader: Some(reader),
    }
}

impl Server {
    /// `URL/apis/config.istio.io/v1alpha2` + `rest`.
    pub fn api(&self, rest: &str) -> String {
        format!("{}/apis/config.istio.io/v1alpha2{rest}", self.url)
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends a signal (`HUP`, `TERM`, ...) with kill(1), by PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the whole stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        self.signal("TERM");
        let code = self.child.wait().expect("wait for meshctl serve").code();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (code, self.stderr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// === A running `meshctl proxy` (tests/integration/proxy_*.rs) ===

/// A `meshctl proxy` process with its listeners on OS-chosen loopback ports (unless the caller
/// passes its own `--listen`/`--admin`). Ports are read from the lines the proxy prints on standard
/// error; the access log (standard output) and standard error are kept for assertions. Killed by its
/// PID when dropped.
pub struct Proxy {
    child: std::process::Child,
    /// `127.0.0.1:PORT` of the explicit proxy port.
    pub listen: String,
    /// `http://127.0.0.1:PORT` of the admin port.
    pub admin: String,
    /// The local addresses of `--forward`s, in the order given.
    pub forwards: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Starts `meshctl proxy --listen 127.0.0.1:0 --admin 127.0.0.1:0 ARGS...` with HOME and the XDG
/// directories under `home`, and waits for its `ready` line.
pub fn proxy<I, S>(home: &Path, args: I) -> Proxy
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    spawn_proxy(proxy_command(home, args))
}

/// The command [`proxy`] runs, not started: `meshctl proxy --listen 127.0.0.1:0 --admin 127.0.0.1:0
/// ARGS...` with HOME and the XDG directories under `home` (for callers that expect it to exit).
pub fn proxy_command<I, S>(home: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    command.arg("proxy");
    if !args.iter().any(|a| a == "--listen" || a.starts_with("--listen=")) {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    if !args.iter().any(|a| a == "--admin" || a.starts_with("--admin=")) {
        command.args(["--admin", "127.0.0.1:0"]);
    }
    command
        .args(&args)
        .env_remove("MESHCTL_STORE")
        .env_remove("MESHCTL_TOKEN")
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home);
    command
}

/// Starts a prepared `meshctl proxy` command (for callers that wrap it, e.g. in `ip netns exec`)
/// and waits for its `ready` line.
pub fn spawn_proxy(mut command: Command) -> Proxy {
    use std::io::BufRead;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl proxy");
    let err_pipe = child.stderr.take().expect("stderr pipe");
    let out_pipe = child.stdout.take().expect("stdout pipe");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log = stderr.clone();
    let err_reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err_pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            log.push_str(&line);
            log.push('\n');
        }
    });
    let out = stdout.clone();
    let out_reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out_pipe).lines() {
            let Ok(line) = line else { break };
            let mut out = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            out.push_str(&line);
            out.push('\n');
        }
    });
    let (mut listen, mut admin, mut forwards) = (String::new(), String::new(), Vec::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("meshctl proxy: listening on ") {
                    listen = rest.split_whitespace().next().unwrap_or_default().to_string();
                } else if let Some(rest) = line.strip_prefix("meshctl proxy: admin on ") {
                    admin = rest.trim().to_string();
                } else if let Some(rest) = line.strip_prefix("meshctl proxy: forwarding ") {
                    forwards.push(rest.split_whitespace().next().unwrap_or_default().to_string());
                } else if line.trim() == "meshctl proxy: ready" {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = err_reader.join();
                panic!(
                    "meshctl proxy did not become ready ({status:?}):\n{}",
                    stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
                );
            }
        }
    }
    Proxy {
        child,
        listen,
        admin,
        forwards,
        stderr,
        stdout,
        readers: vec![err_reader, out_reader],
    }
}

impl Proxy {
    /// Everything the proxy wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The access log so far (standard output).
    pub fn access_log(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits up to `timeout` for `pred` to hold on the access log; returns the log either way.
    pub fn wait_log(&self, timeout: std::time::Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.access_log();
            if pred(&log) || std::time::Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for `pred` to hold on standard error; returns it either way.
    pub fn wait_stderr(&self, timeout: std::time::Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.stderr();
            if pred(&log) || std::time::Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The process ID (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`, ...) with kill(1), by PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the whole stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        self.signal("TERM");
        let code = self.child.wait().expect("wait for meshctl proxy").code();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (code, self.stderr())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === Two ways to a mesh service (tests/integration/proxy_routing.rs, proxy_upstream_framing.rs) ===

/// How a test's client reaches a mesh service through `meshctl proxy`. The proxy serves mesh HTTP on
/// two paths that must behave the same on the wire, so the wire-level tests run each body both ways
/// (see [`both_ways!`](crate::common::both_ways)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Absolute-form requests (`GET http://reviews:9080/path HTTP/1.1`) to the explicit proxy port.
    ProxyPort,
    /// Origin-form requests (`GET /path HTTP/1.1`, `Host: reviews:9080`) to the local port of a
    /// `--forward 127.0.0.1:0=reviews:9080` started for the service.
    Forward,
}

impl Way {
    /// The `--forward 127.0.0.1:0=AUTHORITY` arguments this way needs for `authorities`
    /// (`reviews:9080`), in their order: none via the proxy port. The bound ports are then
    /// [`Proxy::forwards`], in the same order.
    pub fn forward_args(self, authorities: &[String]) -> Vec<String> {
        match self {
            Way::ProxyPort => Vec::new(),
            Way::Forward => authorities
                .iter()
                .flat_map(|a| ["--forward".to_string(), format!("127.0.0.1:0={a}")])
                .collect(),
        }
    }

    /// The request target for `PATH` (with its query) on the service at `authority`: absolute-form
    /// via the proxy port, origin-form via a forward.
    pub fn target(self, authority: &str, path: &str) -> String {
        match self {
            Way::ProxyPort => format!("http://{authority}{path}"),
            Way::Forward => path.to_string(),
        }
    }
}

/// Turns test bodies `fn NAME(way: Way)` into two tests each, `NAME::via_proxy_port` and
/// `NAME::via_forward`, which run the same body (and so the same assertions) through the proxy port
/// and through a forward. The module `NAME` sits beside the function `NAME` (they live in different
/// namespaces), so the test names keep the body's name.
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn via_proxy_port() {
                    super::$name($crate::common::Way::ProxyPort);
                }

                #[test]
                fn via_forward() {
                    super::$name($crate::common::Way::Forward);
                }
            }
        )*
    };
}
pub(crate) use both_ways;
