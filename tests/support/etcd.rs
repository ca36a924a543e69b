//! A real etcd cluster on loopback, for the etcd store's tests.
//!
//! [`EtcdCluster::start`] runs `n` members of the installed `etcd` (Debian's etcd-server, 3.4 in CI) on
//! 127.0.0.1 with OS-chosen ports, their data and logs in a temporary directory, and returns once every
//! member answers `GET /health` with `{"health":"true"}`. Without `etcd` it returns `None` after a
//! message on standard error, except under CI (`CI` set), where the test must run and fails instead.
//!
//! [`shared`] is one 3-member cluster for the whole test binary, for tests that only need a working
//! store: each gives its store its own key prefix ([`unique_prefix`]). A test that kills, stops or
//! restarts members, or compacts (compaction is cluster-wide), starts its own cluster.
//!
//! Every member is stopped by its PID: when its cluster is dropped, at process exit for the shared
//! cluster (an `atexit` handler: statics are never dropped), and, should the test process die without
//! running either (SIGKILL, a runner's timeout), by the kernel: members are started with
//! `PR_SET_PDEATHSIG` = SIGKILL by a thread that lives as long as the process.
//!
//! The helper talks to etcd's JSON gateway with a few lines of HTTP/1.0 of its own rather than through
//! the store under test, so a bug in one cannot hide a problem in the other.

#![allow(dead_code)] // each test binary uses its own part of the helper

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// How long members get to become healthy (start, restart), or to agree on a leader, before a test
/// fails. A 3-member cluster is healthy in well under a second on an idle machine.
pub const READY: Duration = Duration::from_secs(20);

/// How long [`EtcdCluster::stop`] waits for a member to exit after SIGTERM (a leader that cannot hand
/// its leadership over takes a few seconds) before it kills it and fails.
const STOP: Duration = Duration::from_secs(30);

/// How many times [`EtcdCluster::start`] picks new ports when a member could not bind the ones chosen
/// (another process took one between the probe and etcd's bind).
const PORT_ATTEMPTS: usize = 5;

/// Between two polls of the members.
const POLL: Duration = Duration::from_millis(20);

/// One HTTP request to a member (health, status, put, compaction).
const REQUEST: Duration = Duration::from_secs(2);

/// `n` etcd processes forming one cluster on 127.0.0.1. Members are numbered from 0 in the order of
/// [`EtcdCluster::endpoints`].
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    /// `--initial-cluster`: `e0=http://127.0.0.1:PEER0,e1=...`.
    initial_cluster: String,
    /// `--initial-cluster-token`, unique per cluster, so members of two clusters never join each other.
    token: String,
    members: Vec<Member>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    /// `None` while killed or stopped.
    child: Option<Child>,
}

/// Why members did not become healthy.
enum Failure {
    /// A member could not bind its port: worth another try with new ports.
    PortTaken(String),
    Other(String),
}

impl EtcdCluster {
    /// Starts `n` members and waits until each is healthy. `None` (with a message) when `etcd` is not
    /// installed, outside CI; under CI that panics, as does a cluster that is not healthy within
    /// [`READY`] (with the members' log tails).
    pub fn start(n: usize) -> Option<EtcdCluster> {
        if !have_etcd() {
            return None;
        }
        match EtcdCluster::try_start(n) {
            Ok(cluster) => Some(cluster),
            Err(e) => panic!("{e}"),
        }
    }

    fn try_start(n: usize) -> Result<EtcdCluster, String> {
        assert!(n >= 1, "a cluster has at least one member");
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let mut cluster = EtcdCluster::launch(n)?;
            let all: Vec<usize> = (0..n).collect();
            match cluster.wait_healthy(&all) {
                Ok(()) => return Ok(cluster),
                // Dropping the cluster kills the members that did start.
                Err(Failure::PortTaken(why)) => last = why,
                Err(Failure::Other(why)) => return Err(format!("etcd did not start: {why}")),
            }
        }
        Err(format!(
            "etcd could not bind its ports in {PORT_ATTEMPTS} attempts; the last time: {last}"
        ))
    }

    /// Picks ports and spawns every member, without waiting.
    fn launch(n: usize) -> Result<EtcdCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-cluster-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let ports = free_ports(2 * n).map_err(|e| format!("free ports: {e}"))?;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "meshctl-test".to_string());
        let mut cluster = EtcdCluster {
            dir,
            initial_cluster,
            token,
            members,
        };
        for i in 0..n {
            let child = cluster
                .spawn_member(i, "new")
                .map_err(|e| format!("cannot run etcd: {e}"))?;
            cluster.members[i].child = Some(child);
        }
        Ok(cluster)
    }

    fn spawn_member(&self, i: usize, state: &str) -> io::Result<Child> {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let stderr = OpenOptions::new().create(true).append(true).open(self.stderr_path(i))?;
        let mut command = Command::new("etcd");
        command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", state])
            .arg("--logger=zap")
            .arg(format!("--log-outputs={}", self.log_path(i).display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // etcd also reads its flags from ETCD_* variables; none from the test's environment applies.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        spawn_dying_with_process(command)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    fn stderr_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.stderr", self.members[i].name))
    }

    /// Waits until each member in `which` answers `/health` with `{"health":"true"}`.
    fn wait_healthy(&mut self, which: &[usize]) -> Result<(), Failure> {
        let deadline = Instant::now() + READY;
        loop {
            let mut all = true;
            for &i in which {
                let exited = match self.members[i].child.as_mut() {
                    Some(child) => child.try_wait().ok().flatten(),
                    None => return Err(Failure::Other(format!("member {i} is not running"))),
                };
                if let Some(status) = exited {
                    self.members[i].child = None;
                    let tails = self.log_tails();
                    let why = format!("member {i} exited ({status}):\n{tails}");
                    return Err(if tails.contains("address already in use") {
                        Failure::PortTaken(why)
                    } else {
                        Failure::Other(why)
                    });
                }
                all &= self.healthy(i);
            }
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Failure::Other(format!(
                    "members {which:?} not healthy within {READY:?}:\n{}",
                    self.log_tails()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether member `i` answers `GET /health` with `{"health":"true"}` (it is up and the cluster has
    /// a leader and a quorum).
    pub fn healthy(&self, i: usize) -> bool {
        match http(self.members[i].client, "GET", "/health", "") {
            Ok((200, body)) => {
                serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["health"].as_str() == Some("true"))
            }
            _ => false,
        }
    }

    /// How many members the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The members' client addresses, `127.0.0.1:PORT`, in member order (stopped ones included).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client)).collect()
    }

    /// `etcd://127.0.0.1:P0,127.0.0.1:P1,...`, as `--store` takes it.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// Whether member `i` was started and not killed or stopped since.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The PID of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The index of the leader: the running member whose `/v3/maintenance/status` names itself as the
    /// leader. Waits up to [`READY`] for one (an election may be under way), then panics.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + READY;
        loop {
            for i in (0..self.members.len()).filter(|&i| self.is_running(i)) {
                if let Ok(status) = self.post(i, "/v3/maintenance/status", serde_json::json!({})) {
                    let me = status["header"]["member_id"].as_str();
                    if me.is_some() && me == status["leader"].as_str() {
                        return i;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {READY:?}:\n{}",
                self.log_tails()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL to member `i` by its PID, and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM to member `i` by its PID, and waits for it to exit (killing it and failing after 30 s).
    pub fn stop(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "member {i} did not exit within {STOP:?} of SIGTERM:\n{}",
                        self.log_tails()
                    );
                }
            }
        }
    }

    /// Starts member `i` again (after [`kill`](Self::kill) or [`stop`](Self::stop)) with its flags,
    /// ports and data directory, as `--initial-cluster-state existing`, and waits until it is healthy:
    /// it must have a quorum with the members running.
    pub fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "member {i} is running: kill or stop it first");
        let child = self
            .spawn_member(i, "existing")
            .unwrap_or_else(|e| panic!("cannot run etcd again for member {i}: {e}"));
        self.members[i].child = Some(child);
        match self.wait_healthy(&[i]) {
            Ok(()) => {}
            Err(Failure::PortTaken(why) | Failure::Other(why)) => panic!("member {i} did not come back: {why}"),
        }
    }

    /// The cluster's current revision (the header of a running member's status).
    pub fn revision(&self) -> u64 {
        let status = self
            .post_any("/v3/maintenance/status", serde_json::json!({}))
            .unwrap_or_else(|e| panic!("status: {e}"));
        header_revision(&status)
    }

    /// Writes `value` at `key` (outside any store's prefix, say) and returns the write's revision.
    pub fn put(&self, key: &str, value: &str) -> u64 {
        let body = serde_json::json!({"key": BASE64.encode(key), "value": BASE64.encode(value)});
        let response = self
            .post_any("/v3/kv/put", body)
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        header_revision(&response)
    }

    /// Compacts the cluster's history up to `revision` (as an operator or auto-compaction would), and
    /// waits for the compaction to be applied (`physical`).
    pub fn compact(&self, revision: u64) {
        let body = serde_json::json!({"revision": revision.to_string(), "physical": true});
        self.post_any("/v3/kv/compaction", body)
            .unwrap_or_else(|e| panic!("compact at {revision}: {e}"));
    }

    /// POST to member `i`'s JSON gateway; the response, or a message for a failure or an etcd error.
    fn post(&self, i: usize, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let member = &self.members[i];
        let (status, text) = http(member.client, "POST", path, &body.to_string())
            .map_err(|e| format!("{} (127.0.0.1:{}): {e}", member.name, member.client))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} {path}: HTTP {status}, not JSON ({e}): {text}", member.name))?;
        if status != 200 || value.get("error").is_some() {
            return Err(format!("{} {path}: HTTP {status}: {text}", member.name));
        }
        Ok(value)
    }

    /// [`post`](Self::post) to the first running member that answers.
    fn post_any(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let mut errors = Vec::new();
        for i in (0..self.members.len()).filter(|&i| self.is_running(i)) {
            match self.post(i, path, body.clone()) {
                Ok(v) => return Ok(v),
                Err(e) => errors.push(e),
            }
        }
        Err(if errors.is_empty() {
            "no member is running".to_string()
        } else {
            errors.join("; ")
        })
    }

    /// The last lines of every member's log and standard error, for failure messages.
    pub fn log_tails(&self) -> String {
        const LINES: usize = 15;
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            let state = match &m.child {
                Some(child) => format!("pid {}", child.id()),
                None => "not running".to_string(),
            };
            out.push_str(&format!(
                "--- {} (client 127.0.0.1:{}, peer {}, {state})\n",
                m.name, m.client, m.peer
            ));
            for path in [self.log_path(i), self.stderr_path(i)] {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                for line in &lines[lines.len().saturating_sub(LINES)..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// SIGKILL to every running member by its PID, reaping it, then removes the directory. For the
    /// exit handler, which only has a shared reference.
    fn kill_all_at_exit(&self) {
        for m in &self.members {
            if let Some(child) = &m.child {
                let pid = child.id() as libc::pid_t;
                signal(child.id(), libc::SIGKILL);
                // SAFETY: waits for (reaps) our own child; a null status pointer is allowed.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for EtcdCluster {
    /// SIGKILL to every member by its PID (the data is thrown away: no need for a clean shutdown), then
    /// the temporary directory goes.
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

// === The shared cluster ===

static SHARED: OnceLock<Result<EtcdCluster, String>> = OnceLock::new();

/// One 3-member cluster for the whole test binary, started by the first test that asks (the others
/// wait for it) and stopped when the process exits. `None` (with a message) when `etcd` is not
/// installed, outside CI. Give each store on it its own prefix ([`unique_prefix`]); never kill, stop
/// or compact it (it is only ever lent out shared).
pub fn shared() -> Option<&'static EtcdCluster> {
    if !have_etcd() {
        return None;
    }
    let started = SHARED.get_or_init(|| {
        let cluster = EtcdCluster::try_start(3)?;
        // SAFETY: registers a plain `extern "C" fn` to run at exit.
        if unsafe { libc::atexit(stop_shared) } != 0 {
            return Err("cannot register the exit handler that stops the shared cluster".to_string());
        }
        Ok(cluster)
    });
    match started {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("the shared etcd cluster did not start: {e}"),
    }
}

extern "C" fn stop_shared() {
    if let Some(Ok(cluster)) = SHARED.get() {
        cluster.kill_all_at_exit();
    }
}

/// `/t/NAME-RANDOM/`: a key prefix no other test (or run) uses.
pub fn unique_prefix(name: &str) -> String {
    format!("/t/{name}-{:016x}/", fastrand::u64(..))
}

// === Processes ===

/// Whether `etcd` is on PATH. When it is not: a message and `false`, or a panic under CI.
fn have_etcd() -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file()));
    if found {
        return true;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    if std::env::var_os("CI").is_some() {
        panic!("{test} must run in CI, but `etcd` is not installed (.ci/run installs etcd-server)");
    }
    eprintln!("skipping {test}: `etcd` is not installed (apt-get install etcd-server)");
    false
}

/// `count` distinct ports that were free a moment ago: each bound on 127.0.0.1 port 0, all held until
/// every one is chosen (so none repeats), then closed for etcd to bind.
fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process, with `PR_SET_PDEATHSIG` set to
/// SIGKILL: the kernel kills the child when that thread ends, that is when the test process does,
/// however it ends. (The signal follows the thread that forked, not the process; a test's own thread
/// ends with the test, which would take the shared cluster with it.)
fn spawn_dying_with_process(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("etcd-spawner".to_string())
            .spawn(move || {
                // The sender lives in a static: this loop ends only with the process.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the thread that spawns etcd");
        requests
    });
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls (prctl, getppid)
    // and allocates nothing on success.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The process may have ended between fork and prctl: then nothing would kill this one.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("the test process ended"));
            }
            Ok(())
        });
    }
    let (reply, result) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| io::Error::other("the etcd spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the etcd spawner thread did not answer"))?
}

/// Sends `sig` to `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child this helper started and has not reaped.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

// === A little HTTP ===

/// One HTTP/1.0 request to 127.0.0.1:`port` (the connection closes after the response: no chunking,
/// no keep-alive); the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, REQUEST)?;
    stream.set_read_timeout(Some(REQUEST))?;
    stream.set_write_timeout(Some(REQUEST))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP response: {response:?}"),
        )
    };
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

/// `header.revision` of a gateway response (a JSON string, as every int64 there).
fn header_revision(response: &serde_json::Value) -> u64 {
    response["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no header.revision in {response}"))
}
