//! Load generator for `bench/serve.sh` and `bench/etcd.sh`: creates, then gets, from many concurrent
//! clients, then (with `--lists N`) N lists of every EgressRule from one client, against `meshctl serve`
//! over HTTP or against a store called directly (the embedded SqliteStore, or EtcdStore); and a watch
//! fan-out test against one or more `meshctl serve` replicas.
//!
//! ```text
//! load http --url http://127.0.0.1:PORT [--clients 16] [--requests 2000] [--lists 0] [--label NAME]
//! load embedded --store FILE [--clients 16] [--requests 2000] [--lists 0]
//! load etcd --endpoints HOST:PORT,... --prefix /bench/1/ [--clients 16] [--requests 2000] [--lists 0]
//! load watch --urls http://A,http://B [--watchers 100] [--changes 200] [--interval-ms 10]
//! ```
//!
//! Each of the clients (threads) creates its share of `--requests` EgressRules (rule i goes to client
//! i mod clients), all clients wait for each other, then each gets back the rules it created. Over HTTP
//! every client holds one keep-alive HTTP/1.1 connection (plain `std::net::TcpStream`, so the client
//! costs next to nothing) and checks every answer's status (201 for a create, 200 for a get). Embedded,
//! every thread calls `SqliteStore::create` and `SqliteStore::get` on one shared store, which is what
//! the server does on its blocking pool; `etcd` does the same with one shared `EtcdStore`.
//!
//! A list is `GET /apis/config.istio.io/v1alpha2/egressrules` (all namespaces) on one keep-alive
//! connection, timed until the whole body is read; the items are counted afterwards (untimed), and a
//! count other than `--requests` is an error. Directly, it is `Store::list` of the kind.
//!
//! `watch`: `--watchers` threads each open one streaming watch (`?watch=true&resourceVersion=R`, R the
//! revision of a list read first), spread round-robin over `--urls`; once every watch has answered 200,
//! `--changes` EgressRules are created one after another through the first URL (`--interval-ms` apart).
//! For every watcher and change, the delivery latency is the time the watcher read the ADDED line minus
//! the time the create's 201 was read (so it may be slightly negative), and also minus the time the create
//! was sent. Watchers that have not seen every change `--deadline-s` after the last create are cut off
//! and counted as incomplete.
//!
//! `--cpu NAME=PID[,PID...]` (repeatable) reads the CPU time (user + system) of those processes at every
//! phase boundary and reports it per request (`cpu_NAME_create_us`, `cpu_NAME_get_us`,
//! `cpu_NAME_list_ms`; in `watch`, `cpu_NAME_per_change_ms` from the first create until the watchers are
//! done); the load generator's own is always reported, as `client`.
//!
//! Prints one JSON line on stdout: requests per second and latency percentiles (milliseconds) of each
//! phase; a readable summary goes to stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use meshctl::model::Kind;
use meshctl::store::etcd::{EtcdOptions, EtcdStore};
use meshctl::store::sqlite::SqliteStore;
use meshctl::store::{ObjectKey, Selector, Store};

#[path = "common/egress.rs"]
mod egress;

#[derive(Debug, Parser)]
#[command(about = "Concurrent creates then gets (and lists) against meshctl serve or a store; watch fan-out")]
struct Args {
    #[command(subcommand)]
    target: Target,
    /// Concurrent clients (threads)
    #[arg(long, global = true, default_value_t = 16)]
    clients: usize,
    /// Creates in all (and as many gets)
    #[arg(long, global = true, default_value_t = 2000)]
    requests: usize,
    /// Lists of every EgressRule after the gets, one after another from one client
    #[arg(long, global = true, default_value_t = 0)]
    lists: usize,
    /// The name of this target in the JSON line (default: from the mode)
    #[arg(long, global = true)]
    label: Option<String>,
    /// NAME=PID[,PID...]: also report the CPU time (user + system) those processes used in each phase,
    /// per request (the load's own process is always reported, as `client`); repeatable
    #[arg(long = "cpu", global = true, value_name = "NAME=PIDS")]
    cpu: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// `meshctl serve` at URL (plain HTTP)
    Http {
        /// http://HOST:PORT, as `meshctl serve` prints it
        #[arg(long)]
        url: String,
    },
    /// The embedded store in FILE, called directly (the file must not hold the rules yet)
    Embedded {
        #[arg(long)]
        store: PathBuf,
    },
    /// EtcdStore called directly (what `meshctl serve --store etcd://...` calls)
    Etcd {
        /// HOST:PORT,HOST:PORT,... (plain http)
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// Key prefix; it must hold no EgressRules yet
        #[arg(long)]
        prefix: String,
    },
    /// Watch fan-out: watchers on every URL, changes made through the first
    Watch {
        /// http://HOST:PORT of each replica, comma-separated; creates go to the first
        #[arg(long, value_delimiter = ',', required = true)]
        urls: Vec<String>,
        /// Watch streams in all, spread round-robin over the URLs
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// EgressRules created (one after another) while they watch
        #[arg(long, default_value_t = 200)]
        changes: usize,
        /// Pause between two creates (after the 201)
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// How long after the last create a watcher may still be missing changes
        #[arg(long, default_value_t = 10)]
        deadline_s: u64,
    },
}

/// One client's run: given its number and the shared schedule, what it measured.
type Client = dyn Fn(usize, &Phases) -> anyhow::Result<Timings> + Send + Sync;

/// One list of every EgressRule.
type Lister = dyn FnMut() -> anyhow::Result<Listed>;

/// What a list read: the items (a store called directly) or the answer's body (over HTTP; its items
/// are counted after the clock stopped, so the client's parsing is not timed).
enum Listed {
    Items(usize),
    Body(Vec<u8>),
}

/// What one client measured: the latency of each create and each get.
#[derive(Default)]
struct Timings {
    creates: Vec<Duration>,
    gets: Vec<Duration>,
}

/// The path of a list of every EgressRule (all namespaces).
const LIST_PATH: &str = "/apis/config.istio.io/v1alpha2/egressrules";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Target::Watch {
        urls,
        watchers,
        changes,
        interval_ms,
        deadline_s,
    } = &args.target
    {
        let addrs = urls.iter().map(|u| addr_of(u)).collect::<anyhow::Result<Vec<_>>>()?;
        return watch_fanout(
            &addrs,
            *watchers,
            *changes,
            Duration::from_millis(*interval_ms),
            Duration::from_secs(*deadline_s),
            args.label.as_deref().unwrap_or("watch"),
            &CpuMeters::parse(&args.cpu)?,
        );
    }
    if args.clients == 0 || args.requests == 0 {
        bail!("--clients and --requests must be at least 1");
    }
    let (default_mode, run, mut lister): (&str, Box<Client>, Box<Lister>) = match &args.target {
        Target::Http { url } => {
            let addr = addr_of(url)?;
            let mut conn = Connection::open(&addr);
            (
                "serve (HTTP)",
                Box::new(move |client, phases| http_client(&addr, client, phases)),
                Box::new(move || {
                    conn.request("GET", LIST_PATH, "", 200)?;
                    Ok(Listed::Body(std::mem::take(&mut conn.body)))
                }),
            )
        }
        Target::Embedded { store } => {
            let store = Arc::new(SqliteStore::open(store)?);
            let for_list = store.clone();
            (
                "embedded (SqliteStore)",
                Box::new(move |client, phases| store_client(&*store, client, phases)),
                Box::new(move || list_store(&*for_list)),
            )
        }
        Target::Etcd { endpoints, prefix } => {
            let options = EtcdOptions {
                prefix: prefix.clone(),
                ..EtcdOptions::default()
            };
            let store = Arc::new(EtcdStore::connect(endpoints, options)?);
            let for_list = store.clone();
            (
                "direct (EtcdStore)",
                Box::new(move |client, phases| store_client(&*store, client, phases)),
                Box::new(move || list_store(&*for_list)),
            )
        }
        Target::Watch { .. } => unreachable!("handled above"),
    };
    let mode = args.label.as_deref().unwrap_or(default_mode);
    let phases = Phases {
        clients: args.clients,
        requests: args.requests,
        barrier: Barrier::new(args.clients + 1),
    };
    let meters = CpuMeters::parse(&args.cpu)?;
    let mut cpu_marks = Vec::new();
    let (timings, create_wall, get_wall) = std::thread::scope(|s| -> anyhow::Result<_> {
        let handles: Vec<_> = (0..args.clients)
            .map(|client| {
                let run = &run;
                let phases = &phases;
                s.spawn(move || run(client, phases))
            })
            .collect();
        // Start together; each phase is timed by the main thread, between barriers.
        // The clock is read first at every barrier, the CPU meters after it: the clients are already
        // running the next phase, and reading /proc must not shorten it.
        phases.barrier.wait();
        let start = Instant::now();
        cpu_marks.push(meters.read());
        phases.barrier.wait();
        let create_wall = start.elapsed();
        let start = Instant::now();
        cpu_marks.push(meters.read());
        phases.barrier.wait();
        let get_wall = start.elapsed();
        cpu_marks.push(meters.read());
        let mut all = Timings::default();
        for h in handles {
            let t = h.join().map_err(|_| anyhow::anyhow!("a client panicked"))??;
            all.creates.extend(t.creates);
            all.gets.extend(t.gets);
        }
        Ok((all, create_wall, get_wall))
    })?;
    let report = |name: &str, mut lat: Vec<Duration>, wall: Duration| {
        lat.sort_unstable();
        let pct = |p: f64| {
            let at = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[at].as_secs_f64() * 1000.0
        };
        let rate = lat.len() as f64 / wall.as_secs_f64();
        eprintln!(
            "load: {mode}: {} {name}s in {:.2}s: {rate:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lat.len(),
            wall.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
        format!(
            r#""{name}s_per_s":{rate:.1},"{name}_p50_ms":{:.3},"{name}_p99_ms":{:.3},"{name}_max_ms":{:.3}"#,
            pct(0.50),
            pct(0.99),
            pct(1.0)
        )
    };
    let creates = report("create", timings.creates, create_wall);
    let gets = report("get", timings.gets, get_wall);
    let mut lists = String::new();
    if args.lists > 0 {
        let mut times = Vec::with_capacity(args.lists);
        let mut bytes = 0;
        for n in 0..args.lists {
            let start = Instant::now();
            let listed = lister().with_context(|| format!("list {}", n + 1))?;
            times.push(start.elapsed());
            let items = match listed {
                Listed::Items(n) => n,
                Listed::Body(body) => {
                    bytes = body.len();
                    count_items(&body)?
                }
            };
            if items != args.requests {
                bail!("a list read {items} items, not {}", args.requests);
            }
        }
        cpu_marks.push(meters.read());
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = ms(times[(times.len() - 1) / 2]);
        eprintln!(
            "load: {mode}: {} lists of {} items ({bytes} bytes): median {median:.1} ms, min {:.1} ms, max {:.1} ms",
            times.len(),
            args.requests,
            ms(times[0]),
            ms(times[times.len() - 1])
        );
        lists = format!(
            r#","lists":{},"list_median_ms":{median:.3},"list_min_ms":{:.3},"list_max_ms":{:.3},"list_bytes":{bytes}"#,
            times.len(),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    // CPU per request of each phase: µs per create and per get, ms per list.
    let mut cpu = String::new();
    for (m, name) in meters.names.iter().enumerate() {
        let used = |phase: usize| cpu_marks.get(phase + 1).map(|after| after[m] - cpu_marks[phase][m]);
        let per = |phase: usize, n: usize, scale: f64| used(phase).map_or(f64::NAN, |s| s * scale / n as f64);
        cpu.push_str(&format!(
            r#","cpu_{name}_create_us":{:.1},"cpu_{name}_get_us":{:.1}"#,
            per(0, args.requests, 1e6),
            per(1, args.requests, 1e6)
        ));
        if args.lists > 0 {
            cpu.push_str(&format!(r#","cpu_{name}_list_ms":{:.1}"#, per(2, args.lists, 1e3)));
        }
    }
    let line = format!(
        r#"{{"mode":"{mode}","clients":{},"requests":{},{creates},{gets}{lists}{cpu}}}"#,
        args.clients, args.requests
    );
    println!("{}", null_for_nan(&line));
    Ok(())
}

/// A figure with no samples (a replica without watchers, a process that is gone) is `null` in JSON,
/// not Rust's `NaN`.
fn null_for_nan(line: &str) -> String {
    line.replace(":NaN", ":null")
}

/// CPU time (user + system, all threads) of groups of processes, read from `/proc/PID/stat`.
struct CpuMeters {
    names: Vec<String>,
    pids: Vec<Vec<String>>,
    tick: f64,
}

impl CpuMeters {
    fn parse(specs: &[String]) -> anyhow::Result<CpuMeters> {
        let mut meters = CpuMeters {
            names: vec!["client".to_string()],
            pids: vec![vec!["self".to_string()]],
            // USER_HZ: 100 on every Linux this runs on (`getconf CLK_TCK`).
            tick: 0.01,
        };
        for spec in specs {
            let (name, pids) = spec.split_once('=').context("--cpu wants NAME=PID[,PID...]")?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("--cpu {spec}: NAME must be letters, digits and _");
            }
            let pids: Vec<String> = pids.split(',').map(str::trim).map(str::to_string).collect();
            if pids
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
            {
                bail!("--cpu {spec}: PIDs must be numbers");
            }
            meters.names.push(name.to_string());
            meters.pids.push(pids);
        }
        Ok(meters)
    }

    /// Seconds of CPU each group has used so far (a process that is gone counts 0).
    fn read(&self) -> Vec<f64> {
        self.pids
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|pid| {
                        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                        // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
                        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                        let f: Vec<&str> = rest.split_whitespace().collect();
                        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                        (ticks(11) + ticks(12)) as f64 * self.tick
                    })
                    .sum()
            })
            .collect()
    }
}

/// The shared schedule: every client and the main thread meet at the start, after the creates and
/// after the gets.
struct Phases {
    clients: usize,
    requests: usize,
    barrier: Barrier,
}

/// Runs one client's two phases, timing each request. The client meets the others at every barrier
/// whatever happens, so an error in one client ends the run (reported when it is joined) instead of
/// hanging the others.
fn phased(
    client: usize,
    phases: &Phases,
    mut create: impl FnMut(usize) -> anyhow::Result<()>,
    mut get: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Timings> {
    let share: Vec<usize> = (client..phases.requests).step_by(phases.clients).collect();
    let mut t = Timings::default();
    let mut result = Ok(());
    phases.barrier.wait();
    for &i in &share {
        let start = Instant::now();
        if let Err(e) = create(i) {
            result = Err(e.context(format!("create of rule {i}")));
            break;
        }
        t.creates.push(start.elapsed());
    }
    phases.barrier.wait();
    if result.is_ok() {
        for &i in &share {
            let start = Instant::now();
            if let Err(e) = get(i) {
                result = Err(e.context(format!("get of rule {i}")));
                break;
            }
            t.gets.push(start.elapsed());
        }
    }
    phases.barrier.wait();
    result.map(|()| t)
}

/// A store called directly from every client thread (SqliteStore or EtcdStore), as the server calls it
/// from its blocking pool.
fn store_client(store: &dyn Store, client: usize, phases: &Phases) -> anyhow::Result<Timings> {
    phased(
        client,
        phases,
        |i| {
            store.create(&egress::resource(i)?)?;
            Ok(())
        },
        |i| {
            store.get(&ObjectKey::new(Kind::EgressRule, egress::namespace(i), egress::name(i)))?;
            Ok(())
        },
    )
}

/// `Store::list` of every EgressRule.
fn list_store(store: &dyn Store) -> anyhow::Result<Listed> {
    let selector = Selector {
        kind: Some(Kind::EgressRule),
        namespace: None,
    };
    Ok(Listed::Items(store.list(&selector)?.items.len()))
}

/// The number of items of a List answer.
fn count_items(body: &[u8]) -> anyhow::Result<usize> {
    let list: serde_json::Value = serde_json::from_slice(body).context("a list answer that is not JSON")?;
    list.get("items")
        .and_then(serde_json::Value::as_array)
        .map(Vec::len)
        .context("a list answer without items")
}

/// `http://HOST:PORT[/]` → `HOST:PORT`.
fn addr_of(url: &str) -> anyhow::Result<String> {
    Ok(url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: a URL must be http://HOST:PORT"))?
        .trim_end_matches('/')
        .to_string())
}

fn http_client(addr: &str, client: usize, phases: &Phases) -> anyhow::Result<Timings> {
    // Both phases use the one connection, one request at a time.
    let conn = std::cell::RefCell::new(Connection::open(addr));
    phased(
        client,
        phases,
        |i| {
            let path = format!(
                "/apis/config.istio.io/v1alpha2/namespaces/{}/egressrules",
                egress::namespace(i)
            );
            conn.borrow_mut().request("POST", &path, &egress::json(i), 201)
        },
        |i| {
            let path = format!(
                "/apis/config.istio.io/v1alpha2/namespaces/{}/egressrules/{}",
                egress::namespace(i),
                egress::name(i)
            );
            conn.borrow_mut().request("GET", &path, "", 200)
        },
    )
}

/// One keep-alive HTTP/1.1 connection, opened on first use (and again if the server closed it).
struct Connection {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        Connection {
            addr: addr.to_string(),
            stream: None,
            body: Vec::new(),
        }
    }

    /// Sends one request and reads the whole answer; an answer other than `expect` is an error.
    fn request(&mut self, method: &str, path: &str, body: &str, expect: u16) -> anyhow::Result<()> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let tcp = TcpStream::connect(&self.addr).with_context(|| format!("connecting to {}", self.addr))?;
                tcp.set_nodelay(true)?;
                self.stream.insert(BufReader::new(tcp))
            }
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.get_mut().write_all(req.as_bytes())?;

        let mut line = String::new();
        stream.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if stream.read_line(&mut line)? == 0 {
                bail!("the server closed the connection in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        self.body.clear();
        if chunked {
            loop {
                line.clear();
                stream.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)?;
                let start = self.body.len();
                self.body.resize(start + size + 2, 0);
                stream.read_exact(&mut self.body[start..])?;
                self.body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            self.body.resize(n, 0);
            stream.read_exact(&mut self.body)?;
        } else {
            bail!("an answer without Content-Length or chunked encoding");
        }
        if close {
            self.stream = None;
        }
        if status != expect {
            bail!(
                "{method} {path}: {status} (expected {expect}): {}",
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(())
    }
}

// === Watch fan-out ===

/// What one watcher saw: when it read the ADDED line of each change (by change number).
struct Seen {
    replica: usize,
    at: Vec<Option<Instant>>,
    duplicates: usize,
    /// Lines that were neither an ADDED of one of the changes nor a BOOKMARK.
    others: usize,
    /// An ERROR line, or the stream failing before the watcher was cut off.
    error: Option<String>,
}

fn watch_fanout(
    addrs: &[String],
    watchers: usize,
    changes: usize,
    interval: Duration,
    deadline: Duration,
    mode: &str,
    meters: &CpuMeters,
) -> anyhow::Result<()> {
    if watchers == 0 || changes == 0 {
        bail!("--watchers and --changes must be at least 1");
    }
    // Watch from the current revision: nothing before it is replayed, nothing after it is missed.
    let mut writer = Connection::open(&addrs[0]);
    writer.request("GET", LIST_PATH, "", 200)?;
    let list: serde_json::Value = serde_json::from_slice(&writer.body).context("a list answer that is not JSON")?;
    let revision = list
        .pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .context("a list without metadata.resourceVersion")?
        .to_string();
    if list
        .get("items")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        bail!("the store already holds EgressRules: use a new prefix");
    }
    let ready = Barrier::new(watchers + 1);
    let done = AtomicUsize::new(0);
    let sockets: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
    let mut send_at = Vec::with_capacity(changes);
    let mut ack_at = Vec::with_capacity(changes);
    let mut create_lat = Vec::with_capacity(changes);
    let (mut cpu_before, mut cpu_after) = (Vec::new(), Vec::new());
    let seen = std::thread::scope(|s| -> anyhow::Result<Vec<Seen>> {
        let handles: Vec<_> = (0..watchers)
            .map(|w| {
                let (ready, done, sockets, revision) = (&ready, &done, &sockets, &revision);
                let replica = w % addrs.len();
                let addr = &addrs[replica];
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        let r = watcher(addr, revision, changes, ready, sockets);
                        done.fetch_add(1, Ordering::SeqCst);
                        r.map(|mut seen| {
                            seen.replica = replica;
                            seen
                        })
                    })
                    .expect("a watcher thread")
            })
            .collect();
        // Every watch has answered 200 (or failed) before the first change.
        ready.wait();
        let opened = sockets.lock().unwrap().len();
        if opened < watchers {
            eprintln!("load: {mode}: only {opened} of {watchers} watches opened");
        }
        cpu_before = meters.read();
        let mut failure = None;
        for i in 0..changes {
            let path = format!(
                "/apis/config.istio.io/v1alpha2/namespaces/{}/egressrules",
                egress::namespace(i)
            );
            let body = egress::json(i);
            let start = Instant::now();
            if let Err(e) = writer.request("POST", &path, &body, 201) {
                failure = Some(e.context(format!("create of rule {i}")));
                break;
            }
            let ack = Instant::now();
            send_at.push(start);
            ack_at.push(ack);
            create_lat.push(ack - start);
            if !interval.is_zero() && i + 1 < changes {
                std::thread::sleep(interval);
            }
        }
        // Wait for the watchers to see everything, then cut off the ones that have not.
        let until = Instant::now() + deadline;
        while done.load(Ordering::SeqCst) < watchers && Instant::now() < until && failure.is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        cpu_after = meters.read();
        for socket in sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let mut all = Vec::with_capacity(watchers);
        for h in handles {
            all.push(h.join().map_err(|_| anyhow::anyhow!("a watcher panicked"))??);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })?;

    let ms = |d: f64| d * 1000.0;
    let mut since_ack = Vec::new();
    let mut since_send = Vec::new();
    let mut per_replica: Vec<Vec<f64>> = vec![Vec::new(); addrs.len()];
    let (mut delivered, mut complete, mut duplicates, mut others, mut errors) = (0, 0, 0, 0, 0);
    for w in &seen {
        let mut all_seen = true;
        for (i, at) in w.at.iter().enumerate() {
            match at {
                Some(t) => {
                    delivered += 1;
                    let a = signed_secs(*t, ack_at[i]);
                    since_ack.push(a);
                    per_replica[w.replica].push(a);
                    since_send.push(signed_secs(*t, send_at[i]));
                }
                None => all_seen = false,
            }
        }
        complete += usize::from(all_seen);
        duplicates += w.duplicates;
        others += w.others;
        if let Some(e) = &w.error {
            errors += 1;
            if errors <= 3 {
                eprintln!("load: {mode}: a watcher on replica {}: {e}", w.replica);
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        let at = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        ms(v[at])
    };
    let creates: Vec<f64> = create_lat.iter().map(Duration::as_secs_f64).collect();
    let (mut c, mut a, mut sd) = (creates, since_ack, since_send);
    let expected = watchers * changes;
    eprintln!(
        "load: {mode}: {watchers} watchers on {} replicas, {changes} changes: {delivered}/{expected} deliveries, \
         {complete}/{watchers} watchers saw every change; since the 201: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
         min {:.2} ms; since the POST: p50 {:.2} ms, p99 {:.2} ms; create p50 {:.2} ms",
        addrs.len(),
        pct(&mut a, 0.5),
        pct(&mut a, 0.99),
        pct(&mut a, 1.0),
        a.first().map_or(f64::NAN, |v| ms(*v)),
        pct(&mut sd, 0.5),
        pct(&mut sd, 0.99),
        pct(&mut c, 0.5),
    );
    // CPU from the first create until every watcher had every change (or was cut off), per change.
    let mut cpu = String::new();
    for (m, name) in meters.names.iter().enumerate() {
        let used = cpu_after.get(m).zip(cpu_before.get(m)).map_or(f64::NAN, |(a, b)| a - b);
        cpu.push_str(&format!(
            r#","cpu_{name}_per_change_ms":{:.2}"#,
            used * 1e3 / changes as f64
        ));
    }
    let mut replicas = String::new();
    for (r, v) in per_replica.iter_mut().enumerate() {
        replicas.push_str(&format!(
            r#","r{r}_ack_p50_ms":{:.3},"r{r}_ack_p99_ms":{:.3}"#,
            pct(v, 0.5),
            pct(v, 0.99)
        ));
    }
    let line = format!(
        r#"{{"mode":"{mode}","watchers":{watchers},"replicas":{},"changes":{changes},"delivered":{delivered},"expected":{expected},"complete_watchers":{complete},"duplicates":{duplicates},"other_lines":{others},"watch_errors":{errors},"ack_p50_ms":{:.3},"ack_p99_ms":{:.3},"ack_max_ms":{:.3},"ack_min_ms":{:.3},"send_p50_ms":{:.3},"send_p99_ms":{:.3},"create_p50_ms":{:.3},"create_p99_ms":{:.3}{replicas}{cpu}}}"#,
        addrs.len(),
        pct(&mut a, 0.5),
        pct(&mut a, 0.99),
        pct(&mut a, 1.0),
        a.first().map_or(f64::NAN, |v| ms(*v)),
        pct(&mut sd, 0.5),
        pct(&mut sd, 0.99),
        pct(&mut c, 0.5),
        pct(&mut c, 0.99),
    );
    println!("{}", null_for_nan(&line));
    Ok(())
}

/// `a - b` in seconds, negative when `a` is earlier.
fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}

/// One watcher: opens the stream, meets the others at `ready`, then reads lines until it has seen every
/// change or its socket is shut down. It always meets `ready`, so one failure cannot hang the rest.
fn watcher(
    addr: &str,
    revision: &str,
    changes: usize,
    ready: &Barrier,
    sockets: &Mutex<Vec<TcpStream>>,
) -> anyhow::Result<Seen> {
    let mut seen = Seen {
        replica: 0,
        at: vec![None; changes],
        duplicates: 0,
        others: 0,
        error: None,
    };
    // The socket is registered before the others are met, so the main thread knows how many opened
    // and can cut each off.
    let opened = match open_watch(addr, revision) {
        Ok((reader, socket)) => {
            sockets.lock().unwrap().push(socket);
            Some(reader)
        }
        Err(e) => {
            seen.error = Some(format!("{e:#}"));
            None
        }
    };
    ready.wait();
    let Some(mut reader) = opened else {
        return Ok(seen);
    };
    let mut missing = changes;
    let mut line = String::new();
    while missing > 0 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                if seen.error.is_none() && e.kind() != std::io::ErrorKind::NotConnected {
                    seen.error = Some(format!("reading the stream: {e}"));
                }
                break;
            }
        }
        let now = Instant::now();
        let event: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                seen.others += 1;
                continue;
            }
        };
        let kind = event.get("type").and_then(serde_json::Value::as_str).unwrap_or("");
        let name = event
            .pointer("/object/metadata/name")
            .and_then(serde_json::Value::as_str);
        let index = name
            .and_then(|n| n.strip_prefix("egress-"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < changes);
        match (kind, index) {
            ("ADDED", Some(i)) => match seen.at[i] {
                Some(_) => seen.duplicates += 1,
                None => {
                    seen.at[i] = Some(now);
                    missing -= 1;
                }
            },
            ("BOOKMARK", _) => {}
            ("ERROR", _) => {
                seen.error = Some(format!("an ERROR event: {}", line.trim_end()));
                break;
            }
            _ => seen.others += 1,
        }
    }
    Ok(seen)
}

/// Sends a watch request and reads the answer's head (200, chunked); the body's reader and a handle
/// on the socket (to shut it down).
fn open_watch(addr: &str, revision: &str) -> anyhow::Result<(BufReader<Chunked>, TcpStream)> {
    let tcp = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let handle = tcp.try_clone()?;
    let mut stream = BufReader::new(tcp);
    let req = format!("GET {LIST_PATH}?watch=true&resourceVersion={revision} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.get_mut().write_all(req.as_bytes())?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut chunked = false;
    let mut head = line.clone();
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            bail!("the server closed the watch in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        head.push_str(&line);
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
    }
    if status != "200" || !chunked {
        bail!("watch on {addr}: not a 200 chunked stream: {}", head.trim_end());
    }
    Ok((BufReader::new(Chunked { inner: stream, left: 0 }), handle))
}

/// The body of a chunked HTTP/1.1 answer (ends at the last chunk).
struct Chunked {
    inner: BufReader<TcpStream>,
    /// Bytes left in the current chunk; `usize::MAX` after the last one.
    left: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == usize::MAX || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            // The CRLF that ends the previous chunk, then the size line.
            while size.trim().is_empty() {
                size.clear();
                if self.inner.read_line(&mut size)? == 0 {
                    return Ok(0);
                }
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a chunk size: {e}")))?;
            if n == 0 {
                self.left = usize::MAX;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..want])?;
        self.left -= got;
        Ok(got)
    }
}
