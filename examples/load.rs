//! Load generator for `bench/serve.sh`: creates, then gets, from many concurrent clients, against
//! `meshctl serve` over HTTP or against the embedded store called directly.
//!
//! ```text
//! load http --url http://127.0.0.1:PORT [--clients 16] [--requests 2000]
//! load embedded --store FILE [--clients 16] [--requests 2000]
//! ```
//!
//! Each of the clients (threads) creates its share of `--requests` EgressRules (rule i goes to client
//! i mod clients), all clients wait for each other, then each gets back the rules it created. Over HTTP
//! every client holds one keep-alive HTTP/1.1 connection (plain `std::net::TcpStream`, so the client
//! costs next to nothing) and checks every answer's status (201 for a create, 200 for a get). Embedded,
//! every thread calls `SqliteStore::create` and `SqliteStore::get` on one shared store, which is what
//! the server does on its blocking pool.
//!
//! Prints one JSON line on stdout: requests per second and latency percentiles (milliseconds) of each
//! phase; a readable summary goes to stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use meshctl::model::Kind;
use meshctl::store::sqlite::SqliteStore;
use meshctl::store::{ObjectKey, Store};

#[path = "common/egress.rs"]
mod egress;

#[derive(Debug, Parser)]
#[command(about = "Concurrent creates then gets against meshctl serve or the embedded store")]
struct Args {
    #[command(subcommand)]
    target: Target,
    /// Concurrent clients (threads)
    #[arg(long, global = true, default_value_t = 16)]
    clients: usize,
    /// Creates in all (and as many gets)
    #[arg(long, global = true, default_value_t = 2000)]
    requests: usize,
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
}

/// One client's run: given its number and the shared schedule, what it measured.
type Client = dyn Fn(usize, &Phases) -> anyhow::Result<Timings> + Send + Sync;

/// What one client measured: the latency of each create and each get.
#[derive(Default)]
struct Timings {
    creates: Vec<Duration>,
    gets: Vec<Duration>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.requests == 0 {
        bail!("--clients and --requests must be at least 1");
    }
    let (mode, run): (&str, Box<Client>) = match &args.target {
        Target::Http { url } => {
            let addr = url
                .strip_prefix("http://")
                .context("--url must be http://HOST:PORT")?
                .trim_end_matches('/')
                .to_string();
            (
                "serve (HTTP)",
                Box::new(move |client, phases| http_client(&addr, client, phases)),
            )
        }
        Target::Embedded { store } => {
            let store = Arc::new(SqliteStore::open(store)?);
            (
                "embedded (SqliteStore)",
                Box::new(move |client, phases| embedded_client(&store, client, phases)),
            )
        }
    };
    let phases = Phases {
        clients: args.clients,
        requests: args.requests,
        barrier: Barrier::new(args.clients + 1),
    };
    let (timings, create_wall, get_wall) = std::thread::scope(|s| -> anyhow::Result<_> {
        let handles: Vec<_> = (0..args.clients)
            .map(|client| {
                let run = &run;
                let phases = &phases;
                s.spawn(move || run(client, phases))
            })
            .collect();
        // Start together; each phase is timed by the main thread, between barriers.
        phases.barrier.wait();
        let start = Instant::now();
        phases.barrier.wait();
        let create_wall = start.elapsed();
        let start = Instant::now();
        phases.barrier.wait();
        let get_wall = start.elapsed();
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
    println!(
        r#"{{"mode":"{mode}","clients":{},"requests":{},{creates},{gets}}}"#,
        args.clients, args.requests
    );
    Ok(())
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

fn embedded_client(store: &SqliteStore, client: usize, phases: &Phases) -> anyhow::Result<Timings> {
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
