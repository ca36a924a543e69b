//! `meshctl proxy` routing mesh traffic with RouteRules and DestinationPolicies (issue 5; the behaviour
//! is the one /work/routing-contract.md specifies), end to end: the real binary, a services file
//! registering in-process HTTP servers on 127.0.0.1 (OS-chosen ports), and clients speaking raw
//! HTTP/1.1 over TcpStream.
//!
//! Bookinfo in miniature: `reviews` v1, v2, v3 and `ratings` v1, v2-mysql, each answering 200 with a
//! body naming its service and version (`reviews v3`) and recording every request it saw (method,
//! path, headers, body, when). Both services are registered on port 9080, the port clients address;
//! the endpoints are the servers' real loopback addresses. Clients send absolute-form requests
//! (`GET http://reviews:9080/... HTTP/1.1`) to the proxy port, or origin-form requests to a
//! `--forward 127.0.0.1:0=reviews:9080`. Tests needing a special upstream (failing, slow, held open)
//! register it as a service of its own (`details`, `flaky`, `payments`).
//!
//! The proxy serves the two ways in on different paths that must behave alike, so most tests are one
//! body `fn NAME(way: Way)` run both ways by [`both_ways!`] (`NAME::via_proxy_port`,
//! `NAME::via_forward`): [`Mesh::start_via`] then starts a forward for every service, and the
//! [`Mesh`] helpers send each request the chosen way, so both run the same assertions.
//!
//! Rules come from `-f` files (each fixture is first checked with `meshctl validate`, so a failure is
//! the proxy's, not the fixture's) or, for the live tests, from the embedded store of the test's home.
//! Waits are polls bounded by [`WAIT`]; the only timing assertions are lower bounds (a delay fault, a
//! sleep window).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Proxy, Way, both_ways, meshctl, proxy, proxy_command};
use crate::proxy_http::{
    IO_TIMEOUT, Resp, Setup, TestServer, WAIT, admin_get, find, header, metric, read_head_exact, read_response, setup,
    wait_log_line,
};
use crate::proxy_mysql::poll;
use crate::proxy_upstream_framing::{Client, assert_same_bytes, pattern};

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";
const DETAILS: &str = "details.default.svc.cluster.local";

// === Upstream servers ===

/// How a [`Backend`] answers (besides `/hold` paths and websocket upgrades, which every backend
/// handles the same way).
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// 200 at once.
    Ok,
    /// The first `.0` requests get status `.1`, later ones 200.
    FailFirst(usize, u16),
    /// Every request gets this status.
    Always(u16),
    /// 200 after this long.
    Delay(Duration),
}

/// One request a backend received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// The request target as received (origin-form: path and query).
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn host(&self) -> &str {
        self.header("host").unwrap_or_default()
    }
}

struct BackendState {
    answer: String,
    behaviour: Behaviour,
    seen: Mutex<Vec<Seen>>,
    /// `/hold` requests wait until this is set.
    released: AtomicBool,
    /// `/hold` requests waiting now.
    holding: AtomicUsize,
}

/// An HTTP/1.1 server standing for one workload (`SERVICE VERSION`): keeps connections alive,
/// reads Content-Length and chunked bodies, records every request, and answers per its
/// [`Behaviour`] with the body `SERVICE VERSION\n`. A request whose path starts with `/hold` is
/// answered only once [`Backend::release`] was called. A request with `Upgrade: websocket` is
/// answered `101 Switching Protocols`, after which the connection echoes every byte.
struct Backend {
    version: String,
    state: Arc<BackendState>,
    server: TestServer,
}

impl Backend {
    fn start(service: &str, version: &str, behaviour: Behaviour) -> Backend {
        let state = Arc::new(BackendState {
            answer: format!("{service} {version}"),
            behaviour,
            seen: Mutex::new(Vec::new()),
            released: AtomicBool::new(false),
            holding: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let server = TestServer::start(move |s| serve_backend(s, shared.clone()));
        Backend {
            version: version.to_string(),
            state,
            server,
        }
    }

    fn ok(service: &str, version: &str) -> Backend {
        Backend::start(service, version, Behaviour::Ok)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    /// The body it answers with, without the newline (`reviews v3`).
    fn answer(&self) -> &str {
        &self.state.answer
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Requests received so far.
    fn hits(&self) -> usize {
        self.state.seen.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// `/hold` requests waiting now.
    fn holding(&self) -> usize {
        self.state.holding.load(Ordering::SeqCst)
    }

    /// Lets every `/hold` request (waiting or to come) be answered.
    fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.release();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A complete chunked body at the start of `raw`: the decoded bytes and how many bytes it took.
pub(crate) fn parse_chunked(raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&raw[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = at + find(&raw[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((out, at));
                }
            }
        }
        if raw.len() < at + size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

/// The body of the request whose head ends at `head_end` in `buf` (chunked, or `length` bytes), reading
/// more from `s` as needed; the request is then removed from `buf`. None when the peer goes away.
pub(crate) async fn read_request_body(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    head_end: usize,
    chunked: bool,
    length: usize,
) -> Option<Vec<u8>> {
    let (body, used) = loop {
        if chunked {
            if let Some((body, used)) = parse_chunked(&buf[head_end..]) {
                break (body, head_end + used);
            }
        } else if buf.len() >= head_end + length {
            break (buf[head_end..head_end + length].to_vec(), head_end + length);
        }
        match s.read(chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    buf.drain(..used);
    Some(body)
}

/// The next request on `s` (bytes already read are in `buf`): its head as text and its body (chunked or
/// Content-Length). None when the peer goes away, or sends a head over 1 MiB.
pub(crate) async fn read_request(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        match s.read(chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = read_request_body(s, buf, chunk, head_end, chunked, length).await?;
    Some((head, body))
}

async fn serve_backend(mut s: tokio::net::TcpStream, state: Arc<BackendState>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > 1 << 20 {
                return;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let upgrade = get("upgrade").is_some_and(|v| v == "websocket");
        let close = get("connection").is_some_and(|v| v.split(',').any(|t| t.trim() == "close"));
        let Some(body) = read_request_body(&mut s, &mut buf, &mut chunk, head_end, chunked, length).await else {
            return;
        };
        let count = {
            let mut seen = state.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push(Seen {
                method,
                path: path.clone(),
                headers,
                body,
                at: Instant::now(),
            });
            seen.len()
        };

        if upgrade {
            // The RFC 6455 sample accept value: the tests send the sample key.
            let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            if s.write_all(resp.as_bytes()).await.is_err() || s.write_all(&buf).await.is_err() {
                return;
            }
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
            return;
        }
        if path.starts_with("/hold") {
            state.holding.fetch_add(1, Ordering::SeqCst);
            while !state.released.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            state.holding.fetch_sub(1, Ordering::SeqCst);
        }
        let status = match state.behaviour {
            Behaviour::Ok => 200,
            Behaviour::FailFirst(n, status) if count <= n => status,
            Behaviour::FailFirst(..) => 200,
            Behaviour::Always(status) => status,
            Behaviour::Delay(d) => {
                tokio::time::sleep(d).await;
                200
            }
        };
        let text = format!("{}\n", state.answer);
        let resp = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{text}",
            reason(status),
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        if close {
            let _ = s.shutdown().await;
            return;
        }
    }
}

/// Bookinfo's reviews (v1, v2, v3) and ratings (v1, v2-mysql).
struct Bookinfo {
    reviews: Vec<Backend>,
    ratings: Vec<Backend>,
}

fn bookinfo() -> Bookinfo {
    Bookinfo {
        reviews: ["v1", "v2", "v3"].iter().map(|v| Backend::ok("reviews", v)).collect(),
        ratings: ["v1", "v2-mysql"].iter().map(|v| Backend::ok("ratings", v)).collect(),
    }
}

impl Bookinfo {
    fn reviews(&self, version: &str) -> &Backend {
        self.reviews
            .iter()
            .find(|b| b.version == version)
            .expect("a reviews version")
    }

    fn ratings(&self, version: &str) -> &Backend {
        self.ratings
            .iter()
            .find(|b| b.version == version)
            .expect("a ratings version")
    }

    /// Both services on port 9080, each endpoint labelled with its version.
    fn services(&self) -> Vec<Service> {
        vec![
            self.reviews.iter().fold(Service::new("reviews", 9080), Service::with),
            self.ratings.iter().fold(Service::new("ratings", 9080), Service::with),
        ]
    }

    fn reviews_hits(&self) -> usize {
        self.reviews.iter().map(Backend::hits).sum()
    }
}

// === Services files and rules ===

/// One entry of a services file.
struct Service {
    name: String,
    port: u16,
    /// (address, labels)
    endpoints: Vec<(String, Vec<(String, String)>)>,
}

impl Service {
    fn new(name: &str, port: u16) -> Service {
        Service {
            name: name.to_string(),
            port,
            endpoints: Vec::new(),
        }
    }

    /// Adds the backend as an endpoint labelled `version: VERSION`.
    fn with(mut self, backend: &Backend) -> Service {
        self.endpoints.push((
            backend.address(),
            vec![("version".to_string(), backend.version.clone())],
        ));
        self
    }
}

/// The services file (contract format) registering `services`.
fn services_yaml(services: &[Service]) -> String {
    let mut out = String::from("services:\n");
    for s in services {
        out.push_str(&format!("- name: {}\n  port: {}\n", s.name, s.port));
        if s.endpoints.is_empty() {
            out.push_str("  endpoints: []\n");
            continue;
        }
        out.push_str("  endpoints:\n");
        for (address, labels) in &s.endpoints {
            out.push_str(&format!("  - address: {address}\n"));
            if !labels.is_empty() {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                out.push_str(&format!("    labels: {{{}}}\n", labels.join(", ")));
            }
        }
    }
    out
}

/// Indents a YAML fragment under `spec:`.
fn indent(fragment: &str) -> String {
    fragment.lines().map(|l| format!("  {l}\n")).collect()
}

/// A RouteRule in namespace `default` for the service `service`; `spec` is the rest of its spec
/// (YAML, unindented).
fn route_rule(name: &str, service: &str, precedence: i64, spec: &str) -> String {
    format!(
        "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  destination:\n    name: {service}\n  precedence: {precedence}\n{}",
        indent(spec)
    )
}

/// A DestinationPolicy in namespace `default` for the service `service`.
fn destination_policy(name: &str, service: &str, spec: &str) -> String {
    format!(
        "apiVersion: config.istio.io/v1alpha2\nkind: DestinationPolicy\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  destination:\n    name: {service}\n{}",
        indent(spec)
    )
}

/// `route:` with one entry, the subset `version: VERSION`.
fn route_to(version: &str) -> String {
    format!("route:\n- labels:\n    version: {version}\n")
}

/// Writes `content` to `path` by a rename, so a poller never reads half a file.
fn write_atomically(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// Whether `text` names `path` with a line number (`PATH:LINE`), as diagnostics do.
fn names_file_and_line(text: &str, path: &Path) -> bool {
    let prefix = format!("{}:", path.display());
    text.match_indices(&prefix)
        .any(|(at, _)| text[at + prefix.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

// === The proxy under test ===

/// A proxy routing for a set of services: its home (with `rules/` and `services.yaml`), and how the
/// test's clients reach the services.
struct Mesh {
    proxy: Proxy,
    setup: Setup,
    services: PathBuf,
    way: Way,
    /// Via a forward: (`NAME:PORT`, the forward's local address) for every service of the file.
    forwards: Vec<(String, String)>,
}

/// `NAME:PORT` of every service, in order: what a forward to each names.
fn authorities(services: &[Service]) -> Vec<String> {
    services.iter().map(|s| format!("{}:{}", s.name, s.port)).collect()
}

impl Mesh {
    /// A proxy with `-f rules/ --services services.yaml EXTRA...`, reached through the proxy port;
    /// the rule files are checked with `meshctl validate` first.
    fn start(services: &[Service], rules: &[String], extra: &[&str]) -> Mesh {
        Mesh::start_via(Way::ProxyPort, services, rules, extra)
    }

    /// As [`Mesh::start`], reached `way`: via a forward, the proxy also runs
    /// `--forward 127.0.0.1:0=NAME:PORT` for every service in `services`.
    fn start_via(way: Way, services: &[Service], rules: &[String], extra: &[&str]) -> Mesh {
        let files: Vec<(String, String)> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("rule-{i}.yaml"), r.clone()))
            .collect();
        let files: Vec<(&str, String)> = files.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
        let setup = setup(&files);
        if !rules.is_empty() {
            let out = meshctl(["validate", "-f", &setup.rules.display().to_string()]).run();
            assert_eq!(
                out.code, 0,
                "the test's own rules must be valid\n{}\n{}",
                out.stdout, out.stderr
            );
        }
        let path = setup.home.path().join("services.yaml");
        std::fs::write(&path, services_yaml(services)).expect("write services file");
        let mut args = vec!["--services".to_string(), path.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(way.forward_args(&authorities(services)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proxy = setup.proxy(&args);
        Mesh::new(way, services, proxy, setup, path)
    }

    /// A proxy following the embedded store of its home (no `-f`), with `--services`, reached `way`.
    fn with_store(way: Way, services: &[Service]) -> Mesh {
        let setup = setup(&[]);
        let path = setup.home.path().join("services.yaml");
        std::fs::write(&path, services_yaml(services)).expect("write services file");
        let mut args = vec!["--services".to_string(), path.display().to_string()];
        args.extend(way.forward_args(&authorities(services)));
        let proxy = proxy(setup.home.path(), args);
        Mesh::new(way, services, proxy, setup, path)
    }

    /// Pairs the forwards the proxy printed with the services they were started for.
    fn new(way: Way, services: &[Service], proxy: Proxy, setup: Setup, path: PathBuf) -> Mesh {
        let forwards: Vec<(String, String)> = match way {
            Way::ProxyPort => Vec::new(),
            Way::Forward => {
                assert_eq!(
                    proxy.forwards.len(),
                    services.len(),
                    "one forward line per service expected:\n{}",
                    proxy.stderr()
                );
                authorities(services).into_iter().zip(proxy.forwards.clone()).collect()
            }
        };
        Mesh {
            proxy,
            setup,
            services: path,
            way,
            forwards,
        }
    }

    /// Where a request for the `http://` URL `url` goes this mesh's way, and how: (the address to
    /// connect to, the request target, the Host header). Via the proxy port: the proxy port, the URL
    /// itself (absolute-form) and its authority. Via a forward: the forward to the URL's `NAME:PORT`,
    /// its path and query (origin-form) and the same Host.
    fn route(&self, url: &str) -> (String, String, String) {
        let host = authority(url).to_string();
        let path = url.split_once("://").map_or(url, |(_, r)| r)[host.len()..].to_string();
        let path = if path.is_empty() { "/".to_string() } else { path };
        let address = match self.way {
            Way::ProxyPort => self.proxy.listen.clone(),
            Way::Forward => self
                .forwards
                .iter()
                .find(|(a, _)| *a == host)
                .map(|(_, address)| address.clone())
                .unwrap_or_else(|| {
                    panic!(
                        "no forward to {host} (a forward exists for each service's own NAME:PORT only: {:?})",
                        self.forwards
                    )
                }),
        };
        (address, self.way.target(&host, &path), host)
    }

    /// A new client connection to where requests for `url` go this mesh's way.
    fn open_for(&self, url: &str) -> TcpStream {
        let (address, _, _) = self.route(url);
        open(&address).unwrap_or_else(|e| panic!("{e}{}", self.context()))
    }

    fn home(&self) -> &Path {
        self.setup.home.path()
    }

    /// The proxy's standard error and the end of its access log, for failure messages.
    fn context(&self) -> String {
        let log = self.proxy.access_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!(
            "\n--- way\n{:?} {:?}\n--- proxy stderr\n{}\n--- access log (last lines)\n{tail}",
            self.way,
            self.forwards,
            self.proxy.stderr()
        )
    }

    /// A request for `url` on a new connection, this mesh's way: absolute-form to the proxy port, or
    /// origin-form to the forward to the URL's service.
    fn request(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Resp, String> {
        let (address, target, host) = self.route(url);
        exchange(&address, method, &target, &host, headers, body)
    }

    /// `GET URL` this mesh's way; panics on a transport error.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", url, headers, b"")
            .unwrap_or_else(|e| panic!("GET {url} ({:?}): {e}{}", self.way, self.context()))
    }

    /// Sends a websocket handshake (the RFC 6455 sample key) for `url` this mesh's way; returns the
    /// stream, the response unread.
    fn websocket_handshake(&self, url: &str) -> TcpStream {
        let (_, target, host) = self.route(url);
        let mut s = self.open_for(url);
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("send the handshake");
        s
    }

    /// Sends `n` GETs, asserts each is a 200, and counts the answers (bodies, trimmed).
    fn answers(&self, url: &str, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
        let mut tally = BTreeMap::new();
        for _ in 0..n {
            let r = self.get(url, headers);
            assert_eq!(r.status, 200, "GET {url} {headers:?}: {r:?}{}", self.context());
            *tally.entry(r.body.trim().to_string()).or_insert(0) += 1;
        }
        tally
    }

    /// The single answer `n` GETs all got; panics when they differ.
    fn only_answer(&self, url: &str, n: usize, headers: &[(&str, &str)]) -> String {
        let tally = self.answers(url, n, headers);
        assert_eq!(tally.len(), 1, "GET {url} {headers:?}: several answers {tally:?}");
        tally.into_keys().next().unwrap_or_default()
    }

    fn metrics(&self) -> String {
        let m = admin_get(&self.proxy, "/metrics");
        assert_eq!(m.status, 200, "{m:?}");
        m.body
    }

    /// Polls `/metrics` until the sample `name{labels}` satisfies `pred`; returns its value.
    fn wait_metric(&self, name: &str, labels: &[(&str, &str)], pred: impl Fn(f64) -> bool) -> f64 {
        poll(WAIT, || match metric(&self.metrics(), name, labels) {
            Some(v) if pred(v) => Ok(v),
            other => Err(other),
        })
        .unwrap_or_else(|last| {
            panic!(
                "{name}{labels:?} never as expected (last {last:?})\n--- metrics\n{}",
                self.metrics()
            )
        })
    }

    fn config_dump(&self) -> Value {
        let dump = admin_get(&self.proxy, "/config_dump");
        assert_eq!(dump.status, 200, "{dump:?}");
        serde_json::from_str(&dump.body).unwrap_or_else(|e| panic!("/config_dump is not JSON ({e}): {}", dump.body))
    }

    /// Waits until `/config_dump` reports at least `revision`.
    fn wait_revision(&self, revision: u64) {
        poll(WAIT, || {
            let dump = self.config_dump();
            match dump["revision"].as_u64() {
                Some(r) if r >= revision => Ok(()),
                _ => Err(dump),
            }
        })
        .unwrap_or_else(|dump| panic!("the proxy never reached revision {revision}: {dump}{}", self.context()));
    }

    /// Polls until `n` GETs in a row all answer `want`.
    fn wait_only_answer(&self, url: &str, n: usize, want: &str) {
        poll(WAIT, || {
            let tally = self.answers(url, n, &[]);
            if tally.len() == 1 && tally.contains_key(want) {
                Ok(())
            } else {
                Err(tally)
            }
        })
        .unwrap_or_else(|tally| panic!("GET {url}: never only `{want}`, last {tally:?}{}", self.context()));
    }
}

/// Which store revision `meshctl create`/`replace` reported (`... at revision N`, `... to revision N`).
fn reported_revision(stdout: &str) -> u64 {
    stdout
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"))
}

/// The embedded store of a home, as the proxy and the CLI open it (XDG_DATA_HOME under the home).
fn embedded_store_path(home: &Path) -> PathBuf {
    home.join("data").join("meshctl").join("store.db")
}

// === Clients ===

/// `HOST:PORT` of an `http://` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or_default()
}

fn open(addr: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One request on a new connection (`Connection: close`) and its whole response. `target` is the
/// request target as sent: absolute-form for the proxy port, origin-form for a forward.
fn exchange(
    addr: &str,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, String> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: meshctl-test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let mut s = open(addr)?;
    s.write_all(&bytes).map_err(|e| format!("sending the request: {e}"))?;
    read_response(&mut s)
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Runs a command that should exit promptly, killing it (by PID, through its handle) if it has not
/// exited within [`WAIT`]: (exit code, stderr).
fn run_to_exit(mut command: std::process::Command) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl");
    let mut pipe = child.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = poll(WAIT, || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        _ => Err(()),
    });
    let status = match status {
        Ok(status) => status,
        Err(()) => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap_or_default();
            panic!("meshctl kept running; it was expected to exit\n--- stderr\n{stderr}");
        }
    };
    (status.code(), reader.join().unwrap_or_default())
}

// === Routing ===

fn without_a_rule_every_version_is_reached_and_only_mesh_hosts_are_routed(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(way, &b.services(), &[], &[]);
    let stderr = m.proxy.stderr();
    let services = m.services.display().to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("meshctl proxy: 2 service") && l.contains(&services)),
        "a start-up line should count the services of {services}:\n{stderr}"
    );

    // Mesh requests need no EgressRule (there is none); without a RouteRule every endpoint serves.
    let reviews = m.answers("http://reviews:9080/reviews/0", 60, &[]);
    assert_eq!(
        reviews.keys().collect::<Vec<_>>(),
        ["reviews v1", "reviews v2", "reviews v3"],
        "{reviews:?}"
    );
    let ratings = m.answers("http://ratings:9080/ratings/0", 20, &[]);
    assert_eq!(
        ratings.keys().collect::<Vec<_>>(),
        ["ratings v1", "ratings v2-mysql"],
        "{ratings:?}"
    );
    // The upstream gets an origin-form request with the client's Host.
    for backend in &b.reviews {
        for seen in backend.seen() {
            assert_eq!(seen.method, "GET", "{seen:?}");
            assert_eq!(seen.path, "/reviews/0", "{seen:?}");
            assert_eq!(seen.host(), "reviews:9080", "{seen:?}");
        }
    }

    // Every name of the service, case-insensitive, trailing dot ignored. (Via a forward, the forward
    // names the service and Host is ignored for routing: the same names, sent as the Host on the
    // forward to reviews, reach reviews all the same.)
    for host in [
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "REVIEWS.Default.svc.cluster.local.",
    ] {
        let url = match way {
            Way::ProxyPort => format!("http://{host}:9080/by-name"),
            Way::Forward => "http://reviews:9080/by-name".to_string(),
        };
        let (address, target, _) = m.route(&url);
        let r = exchange(&address, "GET", &target, &format!("{host}:9080"), &[], b"")
            .unwrap_or_else(|e| panic!("GET {url} with Host {host}:9080: {e}{}", m.context()));
        assert_eq!(r.status, 200, "{host}: {r:?}{}", m.context());
        assert!(r.body.starts_with("reviews v"), "{host}: {r:?}");
    }
    assert_eq!(b.reviews_hits(), 64);

    // Another port, namespace or domain is no mesh request: egress, denied without an EgressRule.
    // Only the proxy port can be asked for another host: a forward names its service.
    if way == Way::ProxyPort {
        for url in [
            "http://reviews:9081/x",
            "http://reviews.prod:9080/x",
            "http://reviews.default.svc.example.org:9080/x",
        ] {
            let r = m.get(url, &[]);
            assert_eq!(r.status, 403, "{url} is not a mesh request: {r:?}{}", m.context());
        }
        assert_eq!(b.reviews_hits(), 64, "a denied request reached a backend");
    }

    let line = wait_log_line(
        &m.proxy,
        &["http://reviews:9080/reviews/0", &format!("service={REVIEWS}:9080")],
    );
    assert!(line.contains(" allow ") && line.contains(" 200"), "{line}");
    assert!(line.contains("upstream=127.0.0.1:"), "{line}");

    let metrics = m.metrics();
    assert_eq!(metric(&metrics, "meshctl_proxy_services", &[]), Some(2.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "meshctl_proxy_route_rules", &[]),
        Some(0.0),
        "{metrics}"
    );
    m.wait_metric(
        "meshctl_proxy_mesh_requests_total",
        &[("service", REVIEWS), ("code", "200")],
        |v| v == 64.0,
    );
    m.wait_metric(
        "meshctl_proxy_mesh_requests_total",
        &[("service", RATINGS), ("code", "200")],
        |v| v == 20.0,
    );
}

fn a_route_rule_sends_every_request_to_its_version(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule("reviews-v3", "reviews", 1, &route_to("v3")),
            route_rule("ratings-mysql", "ratings", 1, &route_to("v2-mysql")),
        ],
        &[],
    );
    assert_eq!(m.only_answer("http://reviews:9080/reviews/1", 30, &[]), "reviews v3");
    assert_eq!(
        m.only_answer("http://ratings:9080/ratings/1", 20, &[]),
        "ratings v2-mysql"
    );
    assert_eq!(b.reviews("v1").hits() + b.reviews("v2").hits(), 0);
    assert_eq!(b.reviews("v3").hits(), 30);
    assert_eq!(b.ratings("v1").hits(), 0);

    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/reviews-v3"]);
    for part in [
        &format!("service={REVIEWS}:9080"),
        "subset=version=v3",
        &format!("upstream={}", b.reviews("v3").address()),
        "retries=0",
        " 200",
    ] {
        assert!(line.contains(part), "no `{part}` in {line}");
    }
    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/ratings-mysql"]);
    assert!(line.contains("subset=version=v2-mysql"), "{line}");

    m.wait_metric(
        "meshctl_proxy_mesh_requests_total",
        &[("service", REVIEWS), ("subset", "version=v3"), ("code", "200")],
        |v| v == 30.0,
    );
    assert_eq!(metric(&m.metrics(), "meshctl_proxy_route_rules", &[]), Some(2.0));
    let dump = m.config_dump();
    assert!(!dump["services"].is_null(), "{dump}");
    assert!(
        dump["routes"].to_string().contains("reviews-v3") && dump["routes"].to_string().contains("ratings-mysql"),
        "/config_dump should show the routes: {dump}"
    );
}

fn a_route_to_a_version_without_endpoints_answers_503(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule("reviews-v9", "reviews", 1, &route_to("v9"))],
        &[],
    );
    let r = m.get("http://reviews:9080/nowhere", &[]);
    assert_eq!(r.status, 503, "{r:?}{}", m.context());
    for part in [
        "meshctl proxy: no endpoint of reviews",
        "version=v9",
        "(route-rule default/reviews-v9)",
    ] {
        assert!(r.body.contains(part), "no `{part}` in {r:?}");
    }
    assert_eq!(b.reviews_hits(), 0);
    // Other services are unaffected: ratings has no rule, so both of its versions answer.
    let tally = m.answers("http://ratings:9080/", 4, &[]);
    assert!(tally.keys().all(|k| k.starts_with("ratings v")), "{tally:?}");
}

fn weighted_routes_split_traffic_80_20(way: Way) {
    let b = bookinfo();
    let split = "route:\n- labels:\n    version: v1\n  weight: 80\n- labels:\n    version: v3\n  weight: 20\n";
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule("reviews-80-20", "reviews", 1, split)],
        &[],
    );
    let n = 2000;
    let tally = m.answers("http://reviews:9080/split", n, &[]);
    let v1 = tally.get("reviews v1").copied().unwrap_or(0);
    let v3 = tally.get("reviews v3").copied().unwrap_or(0);
    assert_eq!(v1 + v3, n, "only v1 and v3: {tally:?}");
    let share = v1 as f64 * 100.0 / n as f64;
    // 80 % of 2,000 has a standard deviation of 0.9 percentage points: ±3 is over 3 of them.
    assert!((77.0..=83.0).contains(&share), "v1 got {share:.1} %: {tally:?}");
    assert_eq!(b.reviews("v2").hits(), 0);
}

fn header_matches_by_precedence_send_jason_to_v2(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule("reviews-default", "reviews", 1, &route_to("v1")),
            // Not anchored: the regex must match the whole value all the same.
            route_rule(
                "reviews-jason",
                "reviews",
                2,
                &format!(
                    "match:\n  request:\n    headers:\n      cookie:\n        regex: '(.*?; ?)?user=jason(;.*)?'\n{}",
                    route_to("v2")
                ),
            ),
            route_rule(
                "reviews-canary",
                "reviews",
                3,
                &format!(
                    "match:\n  request:\n    headers:\n      x-canary:\n        exact: canary\n{}",
                    route_to("v3")
                ),
            ),
            route_rule(
                "reviews-uri",
                "reviews",
                4,
                &format!(
                    "match:\n  request:\n    headers:\n      uri:\n        exact: /only-v3\n{}",
                    route_to("v3")
                ),
            ),
        ],
        &[],
    );
    let url = "http://reviews:9080/productpage";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "reviews v1"),
        (&[("cookie", "user=jason")], "reviews v2"),
        (&[("Cookie", "theme=dark; user=jason")], "reviews v2"),
        (&[("cookie", "user=jason;theme=dark")], "reviews v2"),
        (&[("cookie", "user=jasonx")], "reviews v1"),
        (&[("cookie", "xuser=jason")], "reviews v1"),
        (&[("cookie", "user=jason"), ("x-canary", "canary")], "reviews v3"),
        (&[("X-Canary", "canary")], "reviews v3"),
        (&[("x-canary", "canary-not")], "reviews v1"),
    ];
    for (headers, want) in cases {
        assert_eq!(
            m.only_answer(url, 5, headers),
            *want,
            "headers {headers:?}{}",
            m.context()
        );
    }
    // `uri` is the path without the query.
    assert_eq!(m.only_answer("http://reviews:9080/only-v3?q=1", 3, &[]), "reviews v3");
    assert_eq!(m.only_answer("http://reviews:9080/only-v3/more", 3, &[]), "reviews v1");

    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/reviews-jason"]);
    assert!(line.contains("subset=version=v2"), "{line}");
}

fn source_matches_use_the_proxys_source_labels(way: Way) {
    let b = bookinfo();
    let rules = [
        route_rule("reviews-default", "reviews", 1, &route_to("v1")),
        route_rule(
            "reviews-from-reviews",
            "reviews",
            2,
            &format!("match:\n  sourceLabels:\n    app: reviews\n{}", route_to("v3")),
        ),
        route_rule(
            "reviews-from-productpage-v2",
            "reviews",
            3,
            &format!(
                "match:\n  source:\n    name: productpage\n    labels:\n      version: v2\n{}",
                route_to("v2")
            ),
        ),
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--source-labels", "app=productpage,version=v1"], "reviews v1"),
        (&["--source-labels", "app=productpage,version=v2"], "reviews v2"),
        // The source name defaults to the `app` label.
        (&["--source-labels", "app=reviews,version=v2"], "reviews v3"),
        (
            &["--source-labels", "app=reviews,version=v2", "--source", "productpage"],
            "reviews v2",
        ),
    ];
    for (args, want) in cases {
        let m = Mesh::start_via(way, &b.services(), &rules, args);
        assert_eq!(
            m.only_answer("http://reviews:9080/", 5, &[]),
            *want,
            "proxy {args:?}{}",
            m.context()
        );
    }
}

#[test]
fn a_forward_to_a_service_speaks_http_and_routes_by_the_forward() {
    let b = bookinfo();
    let m = Mesh::start(
        &b.services(),
        &[route_rule("reviews-v3", "reviews", 1, &route_to("v3"))],
        &[
            "--forward",
            "127.0.0.1:0=reviews:9080",
            "--forward",
            "127.0.0.1:0=ratings:9080",
        ],
    );
    assert_eq!(m.proxy.forwards.len(), 2, "{}", m.proxy.stderr());
    let (to_reviews, to_ratings) = (&m.proxy.forwards[0], &m.proxy.forwards[1]);
    assert!(
        !to_reviews.ends_with(":0") && !to_ratings.ends_with(":0"),
        "the forward lines give the bound ports: {:?}",
        m.proxy.forwards
    );

    // Origin-form requests; the Host header names the other service and is ignored for routing.
    for i in 0..10 {
        let path = format!("/reviews/{i}");
        let r = exchange(to_reviews, "GET", &path, "ratings:9080", &[], b"")
            .unwrap_or_else(|e| panic!("GET {path} through the forward: {e}{}", m.context()));
        assert_eq!(r.status, 200, "{r:?}{}", m.context());
        assert_eq!(r.body.trim(), "reviews v3", "{r:?}");
    }
    let seen = b.reviews("v3").seen();
    assert_eq!(seen.len(), 10);
    assert_eq!(seen[3].path, "/reviews/3", "{seen:?}");
    assert_eq!(b.ratings("v1").hits() + b.ratings("v2-mysql").hits(), 0);

    let r = exchange(to_ratings, "GET", "/ratings/7", "whatever.example.com", &[], b"")
        .unwrap_or_else(|e| panic!("GET through the ratings forward: {e}{}", m.context()));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("ratings v"), "{r:?}");
    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/reviews-v3"]);
    assert!(line.contains(&format!("service={REVIEWS}:9080")), "{line}");
}

// === Faults, timeouts, retries ===

fn an_abort_fault_answers_its_status_without_the_upstream(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule(
                "ratings-abort",
                "ratings",
                1,
                "httpFault:\n  abort:\n    percent: 100\n    httpStatus: 418\n",
            ),
            // No percent: 100.
            route_rule(
                "reviews-abort",
                "reviews",
                1,
                "httpFault:\n  abort:\n    httpStatus: 503\n",
            ),
        ],
        &[],
    );
    for _ in 0..10 {
        let r = m.get("http://ratings:9080/ratings/0", &[]);
        assert_eq!(r.status, 418, "{r:?}{}", m.context());
        assert_eq!(r.body.trim(), "fault filter abort", "{r:?}");
    }
    let r = m.get("http://reviews:9080/reviews/0", &[]);
    assert_eq!(r.status, 503, "{r:?}{}", m.context());
    assert_eq!(r.body.trim(), "fault filter abort", "{r:?}");
    assert_eq!(b.ratings("v1").hits() + b.ratings("v2-mysql").hits(), 0);
    assert_eq!(b.reviews_hits(), 0);

    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/ratings-abort"]);
    assert!(line.contains("fault=abort") && line.contains(" 418"), "{line}");
    m.wait_metric(
        "meshctl_proxy_mesh_faults_total",
        &[("service", RATINGS), ("type", "abort")],
        |v| v == 10.0,
    );
}

fn a_delay_fault_holds_the_request_at_least_that_long(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule(
                "reviews-delay",
                "reviews",
                1,
                &format!(
                    "httpFault:\n  delay:\n    percent: 100\n    fixedDelay: 1s\n{}",
                    route_to("v1")
                ),
            ),
            // Delay first, then abort.
            route_rule(
                "ratings-delay-abort",
                "ratings",
                1,
                "httpFault:\n  delay:\n    fixedDelay: 1s\n  abort:\n    httpStatus: 503\n",
            ),
        ],
        &[],
    );
    let started = Instant::now();
    let r = m.get("http://reviews:9080/delayed", &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    assert_eq!(r.body.trim(), "reviews v1", "{r:?}");
    assert!(
        took >= Duration::from_millis(990),
        "a 1s delay, answered after {took:?}"
    );
    assert_eq!(b.reviews("v1").hits(), 1);

    let started = Instant::now();
    let r = m.get("http://ratings:9080/delayed", &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}{}", m.context());
    assert_eq!(r.body.trim(), "fault filter abort", "{r:?}");
    assert!(
        took >= Duration::from_millis(990),
        "delayed, then aborted, after {took:?}"
    );

    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/reviews-delay"]);
    assert!(line.contains("fault=delay"), "{line}");
    m.wait_metric(
        "meshctl_proxy_mesh_faults_total",
        &[("service", REVIEWS), ("type", "delay")],
        |v| v == 1.0,
    );
}

fn a_request_past_its_timeout_gets_504(way: Way) {
    let b = bookinfo();
    let slow = Backend::start("details", "v1", Behaviour::Delay(Duration::from_secs(2)));
    let mut services = b.services();
    services.push(Service::new("details", 9080).with(&slow));
    let timeout = "httpReqTimeout:\n  simpleTimeout:\n    timeout: 500ms\n";
    let m = Mesh::start_via(
        way,
        &services,
        &[
            // An upstream slower than the timeout.
            route_rule("details-timeout", "details", 1, timeout),
            // A 2s delay fault under a 500ms timeout (the issue's case: the delay counts).
            route_rule(
                "reviews-delay-timeout",
                "reviews",
                1,
                &format!("{timeout}httpFault:\n  delay:\n    fixedDelay: 2s\n"),
            ),
        ],
        &[],
    );
    let r = m.get("http://details:9080/slow", &[]);
    assert_eq!(r.status, 504, "{r:?}{}", m.context());
    assert!(r.body.contains("meshctl proxy: upstream request timeout"), "{r:?}");
    assert_eq!(slow.hits(), 1);

    let r = m.get("http://reviews:9080/delayed", &[]);
    assert_eq!(r.status, 504, "{r:?}{}", m.context());
    assert!(r.body.contains("upstream request timeout"), "{r:?}");
    // Without a rule, the default timeout (15s) leaves a fast upstream alone.
    assert_eq!(m.get("http://ratings:9080/", &[]).status, 200);
}

fn the_timeout_counts_from_the_request_so_a_delay_and_a_slow_answer_add_up(way: Way) {
    // Each alone fits in the 1.5s timeout; together (1s delay + 1s upstream) they do not.
    let slow = Backend::start("details", "v1", Behaviour::Delay(Duration::from_secs(1)));
    let services = [Service::new("details", 9080).with(&slow)];
    let spec = "httpReqTimeout:\n  simpleTimeout:\n    timeout: 1500ms\nhttpFault:\n  delay:\n    fixedDelay: 1s\n";
    let m = Mesh::start_via(way, &services, &[route_rule("details-delay", "details", 1, spec)], &[]);
    let r = m.get("http://details:9080/slow", &[]);
    assert_eq!(r.status, 504, "{r:?}{}", m.context());
    assert!(r.body.contains("took longer than 1s 500ms"), "{r:?}");
}

fn retries_hide_transient_5xx_for_idempotent_methods(way: Way) {
    let b = bookinfo();
    // details: 503, 503, then 200, with 3 retries.
    let details = Backend::start("details", "v1", Behaviour::FailFirst(2, 503));
    // flaky: one 503, no rule (no retries by default).
    let flaky = Backend::start("flaky", "v1", Behaviour::FailFirst(1, 503));
    // payments: one 503, 3 retries, but a POST is not retried.
    let payments = Backend::start("payments", "v1", Behaviour::FailFirst(1, 503));
    let mut services = b.services();
    services.push(Service::new("details", 9080).with(&details));
    services.push(Service::new("flaky", 9080).with(&flaky));
    services.push(Service::new("payments", 9080).with(&payments));
    let retry = "httpReqRetries:\n  simpleRetry:\n    attempts: 3\n";
    let m = Mesh::start_via(
        way,
        &services,
        &[
            route_rule("details-retry", "details", 1, retry),
            route_rule("payments-retry", "payments", 1, retry),
        ],
        &[],
    );

    let r = m.get("http://details:9080/details/0", &[]);
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    assert_eq!(r.body.trim(), "details v1", "{r:?}");
    let seen = details.seen();
    assert_eq!(seen.len(), 3, "the first try and two retries: {seen:?}");
    assert!(
        seen.iter().all(|s| s.method == "GET" && s.path == "/details/0"),
        "{seen:?}"
    );
    let line = wait_log_line(&m.proxy, &["rule=route-rule/default/details-retry"]);
    assert!(line.contains("retries=2") && line.contains(" 200"), "{line}");
    m.wait_metric("meshctl_proxy_mesh_retries_total", &[("service", DETAILS)], |v| {
        v == 2.0
    });

    let r = m.get("http://flaky:9080/", &[]);
    assert_eq!(r.status, 503, "no retries without a rule: {r:?}");
    assert_eq!(flaky.hits(), 1);

    let r = m
        .request("POST", "http://payments:9080/pay", &[], b"amount=1")
        .unwrap_or_else(|e| panic!("POST: {e}{}", m.context()));
    assert_eq!(r.status, 503, "a POST is not retried: {r:?}");
    assert_eq!(payments.hits(), 1);
    assert_eq!(payments.seen()[0].body, b"amount=1");
}

// === Redirect, rewrite, headers, mirror, CORS, websocket ===

fn a_redirect_answers_301_with_the_location(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule(
                "ratings-redirect",
                "ratings",
                2,
                "match:\n  request:\n    headers:\n      uri:\n        exact: /v1/getProductRatings\n\
                 redirect:\n  uri: /v1/bookRatings\n  authority: bookratings.default.svc.cluster.local\n",
            ),
            route_rule(
                "reviews-redirect",
                "reviews",
                2,
                "match:\n  request:\n    headers:\n      uri:\n        prefix: /old\nredirect:\n  uri: /new\n",
            ),
        ],
        &[],
    );
    let r = m.get("http://ratings:9080/v1/getProductRatings", &[]);
    assert_eq!(r.status, 301, "{r:?}{}", m.context());
    assert_eq!(
        header(&r.head, "location"),
        Some("http://bookratings.default.svc.cluster.local/v1/bookRatings"),
        "{r:?}"
    );
    // Without an authority, the request's host and port stay.
    let r = m.get("http://reviews:9080/old/page", &[]);
    assert_eq!(r.status, 301, "{r:?}{}", m.context());
    assert_eq!(header(&r.head, "location"), Some("http://reviews:9080/new"), "{r:?}");
    assert_eq!(
        b.reviews_hits() + b.ratings("v1").hits() + b.ratings("v2-mysql").hits(),
        0
    );

    // Not matching: routed as usual.
    let tally = m.answers("http://ratings:9080/v1/other", 2, &[]);
    assert!(tally.keys().all(|k| k.starts_with("ratings v")), "{tally:?}");
}

fn a_rewrite_changes_the_path_and_authority_sent_upstream(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule(
                "reviews-rewrite",
                "reviews",
                2,
                &format!(
                    "match:\n  request:\n    headers:\n      uri:\n        prefix: /old/\n\
                     rewrite:\n  uri: /new/\n  authority: reviews-v2.internal\n{}",
                    route_to("v2")
                ),
            ),
            // No uri match: the whole path is replaced, the query kept.
            route_rule(
                "ratings-rewrite",
                "ratings",
                1,
                &format!("rewrite:\n  uri: /ratings-api\n{}", route_to("v1")),
            ),
        ],
        &[],
    );
    let r = m.get("http://reviews:9080/old/page?x=1", &[]);
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    assert_eq!(r.body.trim(), "reviews v2", "{r:?}");
    let seen = b.reviews("v2").seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/new/page?x=1", "{seen:?}");
    assert_eq!(seen[0].host(), "reviews-v2.internal", "{seen:?}");

    let r = m.get("http://ratings:9080/anything/at/all?q=2", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = b.ratings("v1").seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/ratings-api?q=2", "{seen:?}");
    assert_eq!(seen[0].host(), "ratings:9080", "no authority rewrite: {seen:?}");
}

fn append_headers_reach_the_upstream(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule(
            "reviews-headers",
            "reviews",
            1,
            &format!(
                "appendHeaders:\n  x-meshctl-route: reviews-v1\n  x-second: two\n{}",
                route_to("v1")
            ),
        )],
        &[],
    );
    let r = m.get("http://reviews:9080/headers", &[("x-client", "kept")]);
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    let seen = b.reviews("v1").seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("x-meshctl-route"), Some("reviews-v1"), "{seen:?}");
    assert_eq!(seen[0].header("x-second"), Some("two"), "{seen:?}");
    assert_eq!(seen[0].header("x-client"), Some("kept"), "{seen:?}");
    // Other services get no such headers.
    m.get("http://ratings:9080/headers", &[]);
    let rating = b
        .ratings
        .iter()
        .flat_map(Backend::seen)
        .next()
        .expect("a ratings request");
    assert_eq!(rating.header("x-meshctl-route"), None, "{rating:?}");
}

fn a_mirror_gets_a_shadow_copy_and_the_client_the_primary_answer(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule(
            "reviews-mirror",
            "reviews",
            1,
            &format!(
                "{}mirror:\n  name: reviews\n  labels:\n    version: v2\n",
                route_to("v1")
            ),
        )],
        &[],
    );
    for i in 0..5 {
        let r = m.get(&format!("http://reviews:9080/mirrored/{i}"), &[]);
        assert_eq!(r.status, 200, "{r:?}{}", m.context());
        assert_eq!(
            r.body.trim(),
            "reviews v1",
            "the client gets the primary's answer: {r:?}"
        );
    }
    let copies = poll(WAIT, || {
        let seen = b.reviews("v2").seen();
        if seen.len() >= 5 { Ok(seen) } else { Err(seen) }
    })
    .unwrap_or_else(|seen| panic!("the mirror got {} of 5 copies: {seen:?}{}", seen.len(), m.context()));
    assert_eq!(copies.len(), 5, "{copies:?}");
    let mut paths: Vec<&str> = copies.iter().map(|s| s.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/mirrored/0",
            "/mirrored/1",
            "/mirrored/2",
            "/mirrored/3",
            "/mirrored/4"
        ]
    );
    for copy in &copies {
        assert_eq!(copy.method, "GET", "{copy:?}");
        assert!(
            copy.host().starts_with("reviews") && copy.host().ends_with("-shadow"),
            "the copy's Host: {copy:?}"
        );
    }
    assert_eq!(b.reviews("v1").hits(), 5);
    assert_eq!(b.reviews("v3").hits(), 0);
}

fn a_cors_preflight_is_answered_by_the_proxy(way: Way) {
    let b = bookinfo();
    let cors = "corsPolicy:\n  allowOrigin:\n  - http://example.com\n  allowMethods:\n  - POST\n  - GET\n\
                \x20 allowHeaders:\n  - X-Foo-Bar\n  - X-Other\n  exposeHeaders:\n  - X-Trace\n  maxAge: 24h\n\
                \x20 allowCredentials: true\n";
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule(
            "reviews-cors",
            "reviews",
            1,
            &format!("{cors}{}", route_to("v1")),
        )],
        &[],
    );
    let preflight = |origin: &str| {
        m.request(
            "OPTIONS",
            "http://reviews:9080/api/reviews",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "X-Foo-Bar"),
            ],
            b"",
        )
        .unwrap_or_else(|e| panic!("OPTIONS: {e}{}", m.context()))
    };

    let r = preflight("http://example.com");
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    for (name, want) in [
        ("access-control-allow-origin", "http://example.com"),
        ("access-control-allow-methods", "POST, GET"),
        ("access-control-allow-headers", "X-Foo-Bar, X-Other"),
        ("access-control-max-age", "86400"),
        ("access-control-allow-credentials", "true"),
    ] {
        assert_eq!(header(&r.head, name), Some(want), "{name} in {}", r.head);
    }
    assert_eq!(b.reviews_hits(), 0, "the preflight must not reach the upstream");

    // A request with an allowed Origin goes upstream; the answer carries the CORS headers.
    let r = m.get("http://reviews:9080/api/reviews", &[("Origin", "http://example.com")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.trim(), "reviews v1");
    assert_eq!(
        header(&r.head, "access-control-allow-origin"),
        Some("http://example.com"),
        "{}",
        r.head
    );
    assert_eq!(
        header(&r.head, "access-control-expose-headers"),
        Some("X-Trace"),
        "{}",
        r.head
    );

    // A disallowed origin: passed upstream untouched.
    let r = preflight("http://evil.example.org");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.trim(), "reviews v1", "answered by the upstream: {r:?}");
    assert_eq!(header(&r.head, "access-control-allow-origin"), None, "{}", r.head);
    let seen = b.reviews("v1").seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].method, "OPTIONS", "{seen:?}");
    assert_eq!(seen[1].header("origin"), Some("http://evil.example.org"), "{seen:?}");
}

fn a_websocket_upgrade_passes_through_only_when_the_rule_allows_it(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule(
            "reviews-ws",
            "reviews",
            1,
            &format!("websocketUpgrade: true\n{}", route_to("v1")),
        )],
        &[],
    );
    let mut s = m.websocket_handshake("http://reviews:9080/chat");
    let head = read_head_exact(&mut s).unwrap_or_else(|e| panic!("the handshake's answer: {e}{}", m.context()));
    assert_eq!(status_of(&head), 101, "{head}{}", m.context());
    assert!(
        header(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head}"
    );
    for message in [&b"hello through the mesh\n"[..], &[0u8, 1, 2, 255, 254, 10][..]] {
        s.write_all(message).expect("write after the upgrade");
        let mut back = vec![0u8; message.len()];
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("no echo after the upgrade: {e}{}", m.context()));
        assert_eq!(back, message);
    }
    let seen = b.reviews("v1").seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/chat");
    assert_eq!(seen[0].header("upgrade"), Some("websocket"), "{seen:?}");
    drop(s);

    // ratings has no rule allowing it: the upgrade headers are dropped, the upstream answers as usual.
    let mut s = m.websocket_handshake("http://ratings:9080/chat");
    let r = read_response(&mut s).unwrap_or_else(|e| panic!("the handshake's answer: {e}{}", m.context()));
    assert_eq!(r.status, 200, "{r:?}{}", m.context());
    assert!(r.body.starts_with("ratings v"), "{r:?}");
    let seen: Vec<Seen> = b.ratings.iter().flat_map(Backend::seen).collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("upgrade"), None, "{seen:?}");
}

/// The proxy waits 10 s at most for a request head: an idle keep-alive connection is closed after
/// that, and so is one whose head never ends. A request that takes longer than that to answer is not
/// cut, and its connection carries the next request (to the same service: a forward's connection
/// reaches only its own).
fn the_wait_for_a_request_head_is_bounded_but_a_slow_answer_is_not(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule(
            "reviews-v1",
            "reviews",
            1,
            &format!(
                "httpReqTimeout:\n  simpleTimeout:\n    timeout: 30s\n{}",
                route_to("v1")
            ),
        )],
        &[],
    );
    // The slow answer: the first request waits at reviews v1 (a `/hold` path) until 11 s after it got
    // there, longer than the wait for a head. The sleep is the answer's slowness, not a wait for
    // something to happen.
    let state = b.reviews("v1").state.clone();
    let releaser = std::thread::spawn(move || {
        let reached = poll(WAIT, || {
            if state.holding.load(Ordering::SeqCst) == 1 {
                Ok(())
            } else {
                Err(())
            }
        });
        std::thread::sleep(Duration::from_secs(11));
        state.released.store(true, Ordering::SeqCst);
        reached
    });
    // A head that never ends, on its own connection, meanwhile.
    let (_, target, host) = m.route("http://ratings:9080/");
    let mut half = m.open_for("http://ratings:9080/");
    let dribbler = std::thread::spawn(move || {
        half.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
            .expect("send half a head");
        let started = Instant::now();
        let mut rest = Vec::new();
        let ended = half.read_to_end(&mut rest);
        (ended.map_err(|e| e.to_string()), rest, started.elapsed())
    });

    let mut s = m.open_for("http://reviews:9080/");
    for url in ["http://reviews:9080/hold/slow", "http://reviews:9080/next"] {
        let (_, target, host) = m.route(url);
        let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let started = Instant::now();
        s.write_all(req.as_bytes()).expect("send a request");
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("{url}: {e}{}", m.context()));
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{url}: {r:?}{}", m.context());
        assert_eq!(r.body.trim(), "reviews v1", "{url}: {r:?}");
        if url.contains("/hold/") {
            assert!(took >= Duration::from_secs(10), "the slow answer came after {took:?}");
        }
    }
    releaser
        .join()
        .expect("the releasing thread")
        .unwrap_or_else(|()| panic!("the slow request never reached reviews v1{}", m.context()));
    // Now idle: the proxy closes the connection, and not at once.
    let idle = Instant::now();
    let mut rest = Vec::new();
    let closed = s.read_to_end(&mut rest);
    let waited = idle.elapsed();
    assert!(closed.is_ok() && rest.is_empty(), "{closed:?} {rest:?}");
    assert!(
        waited >= Duration::from_secs(5),
        "an idle connection closed after {waited:?}"
    );

    let (ended, rest, waited) = dribbler.join().expect("the dribbling client");
    assert!(
        ended.is_ok() && rest.is_empty(),
        "{ended:?} {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        waited >= Duration::from_secs(5),
        "a half head was cut off after {waited:?}"
    );
}

// === Request bodies, keep-alive, pipelining ===

/// Request bodies with a Content-Length reach the upstream byte for byte, from one byte to 1 MiB,
/// without and with a retry policy (which keeps a copy of a body up to 64 KiB, to send it again).
fn request_bodies_reach_the_upstream_byte_for_byte(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule("reviews-v1", "reviews", 1, &route_to("v1")),
            route_rule(
                "ratings-retry",
                "ratings",
                1,
                &format!("httpReqRetries:\n  simpleRetry:\n    attempts: 2\n{}", route_to("v1")),
            ),
        ],
        &[],
    );
    let sizes = [1, 1_000, 65_536, 65_537, 1 << 20];
    for (service, backend) in [("reviews", b.reviews("v1")), ("ratings", b.ratings("v1"))] {
        for (i, size) in sizes.into_iter().enumerate() {
            let method = if i % 2 == 0 { "POST" } else { "PUT" };
            let url = format!("http://{service}:9080/upload/{i}");
            let body = pattern(size, i as u32 + 1);
            let r = m
                .request(method, &url, &[("Content-Type", "application/octet-stream")], &body)
                .unwrap_or_else(|e| panic!("{method} {url} ({size} bytes): {e}{}", m.context()));
            assert_eq!(r.status, 200, "{method} {url}: {r:?}{}", m.context());
            assert_eq!(r.body.trim(), backend.answer(), "{method} {url}: {r:?}");
            let seen = backend.seen();
            let up = seen.last().expect("a request at the upstream");
            assert_eq!(
                seen.len(),
                i + 1,
                "{service}: one request per body, no resend: {seen:?}"
            );
            assert_eq!(
                (up.method.as_str(), up.path.as_str(), up.host()),
                (
                    method,
                    format!("/upload/{i}").as_str(),
                    format!("{service}:9080").as_str()
                ),
                "{up:?}"
            );
            if let Some(length) = up.header("content-length") {
                assert_eq!(length, size.to_string(), "{up:?}");
            }
            assert_same_bytes(
                &up.body,
                &body,
                &format!("the {size}-byte body of {method} {url} at the upstream"),
            );
        }
    }
}

/// Several requests on one client connection, as keep-alive clients send them: one after the other;
/// a body that arrives in two writes with a pause between them; pipelined requests (written in one
/// write, a POST with a body among them) answered in the order they were sent although the first is
/// answered last by its upstream; and pipelined requests with one in the middle whose rule has a fault
/// (which a forward may serve on another path than its neighbours).
fn keep_alive_requests_on_one_client_connection_are_answered_in_order(way: Way) {
    let b = bookinfo();
    let by_prefix = |prefix: &str, rest: &str| {
        format!("match:\n  request:\n    headers:\n      uri:\n        prefix: {prefix}\n{rest}")
    };
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule("reviews-v1", "reviews", 1, &route_to("v1")),
            route_rule("reviews-v2", "reviews", 2, &by_prefix("/v2/", &route_to("v2"))),
            // `/hold` requests wait at the backend until released.
            route_rule("reviews-held", "reviews", 3, &by_prefix("/hold/", &route_to("v3"))),
            route_rule(
                "reviews-delayed",
                "reviews",
                4,
                &by_prefix(
                    "/delayed/",
                    &format!("httpFault:\n  delay:\n    fixedDelay: 200ms\n{}", route_to("v3")),
                ),
            ),
        ],
        &[],
    );
    let url = |path: &str| format!("http://reviews:9080{path}");
    // The head of a request for `path` this mesh's way; `extra` is header lines ending in CRLF.
    let head = |method: &str, path: &str, extra: &str| {
        let (_, target, host) = m.route(&url(path));
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
    };
    let mut c = Client::new(m.open_for(&url("/")), way);
    let expect = |c: &mut Client, method: &str, path: &str, want: &str| {
        let a = c
            .answer(method)
            .unwrap_or_else(|e| panic!("{method} {path} on the kept connection: {e}{}", m.context()));
        assert_eq!(a.status, 200, "{method} {path}: {a:?}{}", m.context());
        assert_eq!(a.text().trim(), want, "{method} {path}: {a:?}{}", m.context());
    };

    // One after the other.
    for i in 0..3 {
        let path = format!("/v1/one/{i}");
        c.send(&head("GET", &path, ""));
        expect(&mut c, "GET", &path, "reviews v1");
    }

    // A body in two writes. The pause synchronises nothing: it only makes the proxy likely to read
    // the head and the first part before the rest is sent.
    let body = pattern(10_000, 7);
    let mut first = head("POST", "/v2/upload", &format!("Content-Length: {}\r\n", body.len()));
    first.extend_from_slice(&body[..4_000]);
    c.send(&first);
    std::thread::sleep(Duration::from_millis(200));
    c.send(&body[4_000..]);
    expect(&mut c, "POST", "/v2/upload", "reviews v2");
    let seen = b.reviews("v2").seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str(), seen[0].host()),
        ("POST", "/v2/upload", "reviews:9080")
    );
    assert_same_bytes(&seen[0].body, &body, "the body sent in two writes, at the upstream");

    // Pipelined: four requests in one write. The first waits at its backend until released, once it
    // is seen waiting; the answers must still come in the order of the requests.
    let mut burst = head("GET", "/hold/a", "");
    burst.extend(head("GET", "/v2/b", ""));
    burst.extend(head("POST", "/v1/c", "Content-Length: 9\r\n"));
    burst.extend_from_slice(b"pipelined");
    burst.extend(head("GET", "/v2/d", ""));
    c.send(&burst);
    let held = b.reviews("v3");
    poll(WAIT, || if held.holding() == 1 { Ok(()) } else { Err(()) })
        .unwrap_or_else(|()| panic!("the first pipelined request never reached reviews v3{}", m.context()));
    held.release();
    for (method, path, want) in [
        ("GET", "/hold/a", "reviews v3"),
        ("GET", "/v2/b", "reviews v2"),
        ("POST", "/v1/c", "reviews v1"),
        ("GET", "/v2/d", "reviews v2"),
    ] {
        expect(&mut c, method, path, want);
    }

    // Pipelined around a request whose rule has a delay fault.
    let mut burst = head("GET", "/v1/e", "");
    burst.extend(head("GET", "/delayed/f", ""));
    burst.extend(head("GET", "/v2/g", ""));
    c.send(&burst);
    for (path, want) in [
        ("/v1/e", "reviews v1"),
        ("/delayed/f", "reviews v3"),
        ("/v2/g", "reviews v2"),
    ] {
        expect(&mut c, "GET", path, want);
    }
    // And the connection still serves.
    c.send(&head("GET", "/v1/last", ""));
    expect(&mut c, "GET", "/v1/last", "reviews v1");

    let paths = |version: &str| -> Vec<String> { b.reviews(version).seen().into_iter().map(|s| s.path).collect() };
    assert_eq!(
        paths("v1"),
        ["/v1/one/0", "/v1/one/1", "/v1/one/2", "/v1/c", "/v1/e", "/v1/last"],
        "{}",
        m.context()
    );
    assert_eq!(
        paths("v2"),
        ["/v2/upload", "/v2/b", "/v2/d", "/v2/g"],
        "{}",
        m.context()
    );
    assert_eq!(paths("v3"), ["/hold/a", "/delayed/f"], "{}", m.context());
    let post = b
        .reviews("v1")
        .seen()
        .into_iter()
        .find(|s| s.path == "/v1/c")
        .expect("the POST");
    assert_eq!(post.body, b"pipelined", "{post:?}");
}

// === DestinationPolicy ===

fn upstream_connections_are_pooled_and_reused(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[
            route_rule("ratings-mysql", "ratings", 1, &route_to("v2-mysql")),
            destination_policy(
                "ratings-per-conn",
                "ratings",
                "circuitBreaker:\n  simpleCb:\n    httpMaxRequestsPerConnection: 10\n",
            ),
        ],
        // One worker: through a forward, upstream connections are pooled per worker thread
        // (docs/routing.md), and each request here comes on a new client connection.
        &["--workers", "1"],
    );
    // reviews v3 only, no per-connection limit: one upstream connection carries every request (the
    // answers have a Content-Length, whose end hyper never reports as an empty frame).
    let v3 = b.reviews("v3");
    let before = v3.server.accepted.load(Ordering::SeqCst);
    let n = 40;
    let tally = m.answers("http://reviews:9080/pooled", n, &[("x-n", "1")]);
    assert_eq!(tally.values().sum::<usize>(), n);
    // Round robin over three versions: each saw about n/3 requests on one connection.
    let opened = v3.server.accepted.load(Ordering::SeqCst) - before;
    assert!(v3.hits() >= n / 3 - 1, "{tally:?}");
    assert_eq!(
        opened,
        1,
        "reviews v3 served {} requests over {opened} connections{}",
        v3.hits(),
        m.context()
    );

    // httpMaxRequestsPerConnection: 10: 30 requests take 3 connections.
    let mysql = b.ratings("v2-mysql");
    let before = mysql.server.accepted.load(Ordering::SeqCst);
    assert_eq!(m.only_answer("http://ratings:9080/r", 30, &[]), "ratings v2-mysql");
    let opened = mysql.server.accepted.load(Ordering::SeqCst) - before;
    assert_eq!(
        opened,
        3,
        "30 requests, 10 per connection: {opened} connections{}",
        m.context()
    );
}

fn no_access_log_writes_no_lines_but_still_counts(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[route_rule("reviews-v3", "reviews", 1, &route_to("v3"))],
        &["--no-access-log"],
    );
    assert_eq!(m.only_answer("http://reviews:9080/quiet", 5, &[]), "reviews v3");
    m.wait_metric(
        "meshctl_proxy_mesh_requests_total",
        &[("service", REVIEWS), ("code", "200")],
        |v| v == 5.0,
    );
    // The log is written in batches by its own thread: give a line the time it would take to show.
    let log = m.proxy.wait_log(Duration::from_millis(500), |l| !l.is_empty());
    assert_eq!(log, "", "--no-access-log wrote lines");
}

fn round_robin_spreads_requests_evenly(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[destination_policy(
            "reviews-rr",
            "reviews",
            "loadBalancing:\n  name: ROUND_ROBIN\n",
        )],
        &[],
    );
    let n = 300;
    let tally = m.answers("http://reviews:9080/rr", n, &[]);
    assert_eq!(tally.len(), 3, "{tally:?}");
    for (answer, count) in &tally {
        assert!(
            count.abs_diff(n / 3) <= n / 50,
            "{answer}: {count} of {n}, round robin should give each about {}: {tally:?}",
            n / 3
        );
    }
    assert_eq!(
        metric(&m.metrics(), "meshctl_proxy_destination_policies", &[]),
        Some(1.0)
    );
}

fn least_conn_prefers_the_idle_endpoints(way: Way) {
    let b = bookinfo();
    let m = Mesh::start_via(
        way,
        &b.services(),
        &[destination_policy(
            "reviews-lc",
            "reviews",
            "loadBalancing:\n  name: LEAST_CONN\n",
        )],
        &[],
    );
    // One request held open on whichever endpoint gets it.
    let (address, target, host) = m.route("http://reviews:9080/hold");
    let held = std::thread::spawn(move || exchange(&address, "GET", &target, &host, &[], b""));
    let busy = poll(WAIT, || b.reviews.iter().position(|r| r.holding() == 1).ok_or(()))
        .unwrap_or_else(|()| panic!("the held request reached no endpoint{}", m.context()));
    let busy = &b.reviews[busy];

    let tally = m.answers("http://reviews:9080/fast", 12, &[]);
    assert_eq!(busy.hits(), 1, "the busy endpoint got more: {tally:?}");
    assert_eq!(tally.get(busy.answer()), None, "{tally:?}");
    assert_eq!(tally.len(), 2, "ties between the idle ones go round robin: {tally:?}");

    busy.release();
    let r = held.join().expect("client thread").expect("the held request");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.trim(), busy.answer());
}

fn consecutive_errors_eject_an_endpoint_for_the_sleep_window(way: Way) {
    let b = bookinfo();
    let good = Backend::ok("details", "v1");
    let bad = Backend::start("details", "v1", Behaviour::Always(500));
    let mut services = b.services();
    services.push(Service::new("details", 9080).with(&good).with(&bad));
    let m = Mesh::start_via(
        way,
        &services,
        &[destination_policy(
            "details-outliers",
            "details",
            "loadBalancing:\n  name: ROUND_ROBIN\ncircuitBreaker:\n  simpleCb:\n    httpConsecutiveErrors: 2\n\
             \x20   httpMaxEjectionPercent: 100\n    sleepWindow: 3s\n",
        )],
        &[],
    );
    let url = "http://details:9080/details";

    // Round robin: the bad endpoint answers every other request until its second 500 ejects it.
    for _ in 0..40 {
        if bad.hits() >= 2 {
            break;
        }
        let r = m.get(url, &[]);
        assert!(r.status == 200 || r.status == 500, "{r:?}{}", m.context());
    }
    assert_eq!(
        bad.hits(),
        2,
        "the bad endpoint should have had two requests{}",
        m.context()
    );
    let second = bad.seen()[1].at;

    // While ejected, every request goes to the good endpoint; after the sleep window the bad one is
    // tried again.
    let good_before = good.hits();
    let mut statuses = Vec::new();
    let deadline = Instant::now() + WAIT + Duration::from_secs(3);
    while bad.hits() < 3 && Instant::now() < deadline {
        statuses.push(m.get(url, &[]).status);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(bad.hits(), 3, "the bad endpoint was never readmitted{}", m.context());
    let third = bad.seen()[2].at;
    let ejected_for = third.duration_since(second);
    assert!(
        ejected_for >= Duration::from_millis(2900),
        "readmitted {ejected_for:?} after the ejection, before the 3s sleep window"
    );
    let served_meanwhile = good.seen().iter().filter(|s| s.at > second && s.at < third).count();
    assert!(
        served_meanwhile >= 5,
        "only {served_meanwhile} requests went to the good endpoint while the bad one was ejected"
    );
    assert!(good.hits() > good_before);
    let (last, before) = statuses.split_last().expect("requests after the ejection");
    assert!(before.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(*last, 500, "the readmitted endpoint answered: {statuses:?}");
    m.wait_metric("meshctl_proxy_mesh_ejections_total", &[("service", DETAILS)], |v| {
        v >= 1.0
    });
}

fn overflowing_the_circuit_breaker_answers_503_overloaded(way: Way) {
    let b = bookinfo();
    let details = Backend::ok("details", "v1");
    let mut services = b.services();
    services.push(Service::new("details", 9080).with(&details));
    let m = Mesh::start_via(
        way,
        &services,
        &[destination_policy(
            "details-cb",
            "details",
            "circuitBreaker:\n  simpleCb:\n    maxConnections: 1\n    httpMaxPendingRequests: 1\n",
        )],
        &[],
    );
    // A burst of requests the upstream holds: one on the only connection, one pending, the rest over.
    let n = 10;
    let (tx, rx) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let (address, target, host) = m.route(&format!("http://details:9080/hold/{i}"));
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(exchange(&address, "GET", &target, &host, &[], b""));
            })
        })
        .collect();
    drop(tx);
    let mut results = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && !(details.holding() == 1 && results.len() == n - 2) {
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(50)) {
            results.push(r);
        }
    }
    let while_held = results.len();
    details.release();
    for client in clients {
        client.join().expect("client thread");
    }
    results.extend(rx.try_iter());
    let results: Vec<Resp> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a burst request failed: {e}{}", m.context())))
        .collect();
    assert_eq!(results.len(), n);

    let ok = results.iter().filter(|r| r.status == 200).count();
    let overloaded: Vec<&Resp> = results
        .iter()
        .filter(|r| r.status == 503 && header(&r.head, "x-meshctl-overloaded") == Some("true"))
        .collect();
    assert_eq!(
        (ok, overloaded.len()),
        (2, n - 2),
        "one request on the connection, one pending, the rest refused: {results:?}{}",
        m.context()
    );
    assert_eq!(
        while_held,
        n - 2,
        "the refusals come at once, while the others are held"
    );
    for r in &overloaded {
        assert!(
            r.body.contains("meshctl proxy: circuit breaker open for details"),
            "{r:?}"
        );
    }
    assert_eq!(details.hits(), 2);
    m.wait_metric(
        "meshctl_proxy_mesh_overflows_total",
        &[("service", DETAILS), ("limit", "pending")],
        |v| v == (n - 2) as f64,
    );
    // And the service works normally once the burst is over.
    assert_eq!(m.only_answer("http://details:9080/after", 3, &[]), "details v1");
}

// === Live changes ===

fn a_route_rule_created_in_the_store_applies_without_restart(way: Way) {
    let b = bookinfo();
    let mut m = Mesh::with_store(way, &b.services());
    let url = "http://reviews:9080/live";
    let before = m.answers(url, 30, &[]);
    assert_eq!(before.len(), 3, "no rule yet: {before:?}");

    let file = m.home().join("reviews-v3.yaml");
    std::fs::write(&file, route_rule("reviews-v3", "reviews", 1, &route_to("v3"))).expect("write rule");
    let out = meshctl(["create", "-f", &file.display().to_string()])
        .home(m.home())
        .run();
    out.code(0);
    assert!(
        out.stdout
            .starts_with("Created config route-rule/default/reviews-v3 at revision "),
        "{}",
        out.stdout
    );
    m.wait_revision(reported_revision(&out.stdout));
    m.wait_only_answer(url, 10, "reviews v3");
    assert_eq!(m.only_answer(url, 30, &[]), "reviews v3");

    // Deleted: every version again.
    meshctl(["delete", "routerule", "reviews-v3"])
        .home(m.home())
        .run()
        .code(0);
    let after = poll(WAIT, || {
        let tally = m.answers(url, 30, &[]);
        if tally.len() == 3 { Ok(tally) } else { Err(tally) }
    })
    .unwrap_or_else(|tally| panic!("after the delete, still {tally:?}{}", m.context()));
    assert_eq!(after.values().sum::<usize>(), 30);

    assert!(m.proxy.is_running(), "{}", m.context());
    assert_eq!(
        m.proxy.stderr().matches("meshctl proxy: ready").count(),
        1,
        "no restart{}",
        m.context()
    );
}

fn rule_churn_under_load_never_fails_a_request(way: Way) {
    use meshctl::model::{Kind, Resource};
    use meshctl::store::Store;
    use meshctl::store::sqlite::SqliteStore;

    let b = bookinfo();
    let mut m = Mesh::with_store(way, &b.services());
    let url = "http://reviews:9080/churn";
    let file = m.home().join("reviews-churn.yaml");
    std::fs::write(&file, route_rule("reviews-churn", "reviews", 1, &route_to("v1"))).expect("write rule");
    let out = meshctl(["create", "-f", &file.display().to_string()])
        .home(m.home())
        .run();
    out.code(0);
    m.wait_revision(reported_revision(&out.stdout));
    m.wait_only_answer(url, 5, "reviews v1");

    // ~50 replacements a second for ~3 s, alternating v1 and v3, ending on v3; written to the same
    // embedded store the proxy follows, in-process (a process per write could not keep the pace).
    let path = embedded_store_path(m.home());
    assert!(path.exists(), "the embedded store is at {}", path.display());
    let store = SqliteStore::open(&path).expect("open the embedded store");
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let writer = std::thread::spawn(move || {
        let mut errors = Vec::new();
        for i in 0..150 {
            let version = if i % 2 == 0 { "v1" } else { "v3" };
            let json = format!(
                r#"{{"apiVersion": "config.istio.io/v1alpha2", "kind": "RouteRule",
                    "metadata": {{"name": "reviews-churn", "namespace": "default"}},
                    "spec": {{"destination": {{"name": "reviews"}}, "precedence": 1,
                              "route": [{{"labels": {{"version": "{version}"}}}}]}}}}"#
            );
            let rule = Resource::from_json(Kind::RouteRule, &json).expect("a RouteRule");
            if let Err(e) = store.update(&rule) {
                errors.push(e.to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        flag.store(true, Ordering::SeqCst);
        (errors, store.revision().expect("the store's revision"))
    });

    // Two clients, continuously.
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (address, target, host) = m.route(url);
            let done = done.clone();
            std::thread::spawn(move || {
                let mut tally: BTreeMap<String, usize> = BTreeMap::new();
                let mut failures = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    match exchange(&address, "GET", &target, &host, &[], b"") {
                        Ok(r) if r.status == 200 => *tally.entry(r.body.trim().to_string()).or_insert(0) += 1,
                        Ok(r) => failures.push(format!("{} {}", r.status, r.body.trim())),
                        Err(e) => failures.push(e),
                    }
                }
                (tally, failures)
            })
        })
        .collect();
    let (write_errors, revision) = writer.join().expect("writer thread");
    assert!(write_errors.is_empty(), "store writes failed: {write_errors:?}");
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for client in clients {
        let (t, f) = client.join().expect("client thread");
        for (answer, count) in t {
            *tally.entry(answer).or_insert(0) += count;
        }
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} failed requests (of {}), e.g. {:?}{}",
        failures.len(),
        failures.len() + tally.values().sum::<usize>(),
        &failures[..failures.len().min(5)],
        m.context()
    );
    assert_eq!(
        tally.keys().collect::<Vec<_>>(),
        ["reviews v1", "reviews v3"],
        "every answer from a routed version, and the churn seen: {tally:?}"
    );
    assert_eq!(b.reviews("v2").hits(), 0);

    assert!(m.proxy.is_running(), "the proxy exited{}", m.context());
    assert!(!m.proxy.stderr().contains("panicked"), "{}", m.context());
    m.wait_revision(revision);
    assert_eq!(
        m.only_answer(url, 20, &[]),
        "reviews v3",
        "the last write stays in force"
    );
}

// === check ===

#[test]
fn check_names_the_rule_route_and_policy_of_a_mesh_request() {
    let b = bookinfo();
    let s = setup(&[
        (
            "default.yaml",
            route_rule("reviews-default", "reviews", 1, &route_to("v1")),
        ),
        (
            "jason.yaml",
            route_rule(
                "reviews-jason",
                "reviews",
                2,
                &format!(
                    "match:\n  request:\n    headers:\n      cookie:\n        regex: '^(.*?;)?(user=jason)(;.*)?$'\n{}",
                    route_to("v2")
                ),
            ),
        ),
        (
            "lb.yaml",
            destination_policy("reviews-lb", "reviews", "loadBalancing:\n  name: LEAST_CONN\n"),
        ),
    ]);
    let services = s.home.path().join("services.yaml");
    std::fs::write(&services, services_yaml(&b.services())).expect("write services");
    let (services, rules) = (services.display().to_string(), s.rules.display().to_string());
    meshctl(["validate", "-f", &rules]).run().code(0);
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "http://reviews:9080/"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--services", &services, "-f", &rules]);
        meshctl(args).run()
    };

    let out = check(&["-H", "cookie: user=jason"]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let v2 = b.reviews("v2").address();
    assert_eq!(
        lines.first().copied(),
        Some(format!("http://reviews:9080/ is the mesh service {REVIEWS}:9080").as_str()),
        "{}",
        out.stdout
    );
    assert!(
        lines.contains(&"rule: route-rule default/reviews-jason (precedence 2)"),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("route: version=v2 100%") && l.contains(&format!("[{v2}]"))),
        "{}",
        out.stdout
    );
    assert!(
        lines.contains(&"policy: destination-policy default/reviews-lb (LEAST_CONN)"),
        "{}",
        out.stdout
    );
    assert!(lines.contains(&"faults: none"), "{}", out.stdout);

    // Without the cookie: the default rule.
    let out = check(&[]);
    out.code(0);
    assert!(
        out.stdout
            .contains("rule: route-rule default/reviews-default (precedence 1)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("route: version=v1 100%"), "{}", out.stdout);

    // JSON.
    let out = check(&["-H", "cookie: user=jason", "-o", "json"]);
    out.code(0);
    let json: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("check -o json is not JSON ({e}): {}", out.stdout));
    assert_eq!(json["mesh"], true, "{json}");
    assert_eq!(json["service"], format!("{REVIEWS}:9080"), "{json}");
    assert_eq!(json["rule"], "route-rule/default/reviews-jason", "{json}");
    assert!(json.get("destination").is_some(), "{json}");
    let route = json["route"].as_array().unwrap_or_else(|| panic!("route: {json}"));
    assert_eq!(route.len(), 1, "{json}");
    assert_eq!(route[0]["labels"]["version"], "v2", "{json}");
    assert_eq!(route[0]["weight"], 100, "{json}");
    let endpoints: Vec<String> = route[0]["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("endpoints: {json}"))
        .iter()
        .map(|e| {
            e.as_str()
                .or_else(|| e["address"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(endpoints, [v2], "{json}");
    assert!(json["policy"].to_string().contains("reviews-lb"), "{json}");
    assert!(
        json["faults"]["delay"].is_null() && json["faults"]["abort"].is_null(),
        "{json}"
    );
    assert!(json["redirect"].is_null(), "{json}");

    // A route to a version without endpoints: exit 1.
    let empty = setup(&[("v9.yaml", route_rule("reviews-v9", "reviews", 1, &route_to("v9")))]);
    let out = meshctl([
        "check",
        "http://reviews:9080/",
        "--services",
        &services,
        "-f",
        &empty.rules.display().to_string(),
    ])
    .run();
    out.code(1);
    assert!(out.stdout.contains("version=v9"), "{}", out.stdout);
}

// === The services file ===

#[test]
fn an_invalid_services_file_at_start_is_a_usage_error() {
    let s = setup(&[]);
    let rules = s.rules.display().to_string();
    let path = s.home.path().join("services.yaml");

    // An unknown field, line 4.
    std::fs::write(
        &path,
        "services:\n- name: reviews\n  port: 9080\n  prot: 9081\n  endpoints: []\n",
    )
    .expect("write services");
    let (code, stderr) = run_to_exit(proxy_command(
        s.home.path(),
        ["-f", &rules, "--services", &path.display().to_string()],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:", path.display())) && stderr.contains("prot"),
        "the diagnostic names the file, line and field:\n{stderr}"
    );

    // A service registered twice.
    std::fs::write(
        &path,
        "services:\n- name: reviews\n  port: 9080\n- name: ratings\n  port: 9080\n- name: reviews\n  port: 9081\n",
    )
    .expect("write services");
    let (code, stderr) = run_to_exit(proxy_command(
        s.home.path(),
        ["-f", &rules, "--services", &path.display().to_string()],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        names_file_and_line(&stderr, &path) && stderr.contains("reviews"),
        "the diagnostic names the file, line and service:\n{stderr}"
    );
}

#[test]
fn an_invalid_services_file_while_running_is_refused_and_the_last_good_one_stays() {
    let b = bookinfo();
    let m = Mesh::start(&b.services(), &[], &[]);
    let url = "http://reviews:9080/registry";
    assert_eq!(m.answers(url, 30, &[]).len(), 3);

    // reviews twice (the first with v2 only): refused as a whole.
    let only_v2 = Service::new("reviews", 9080).with(b.reviews("v2"));
    let again = Service::new("reviews", 9080).with(b.reviews("v1"));
    let ratings = b.ratings.iter().fold(Service::new("ratings", 9080), Service::with);
    let before = m.proxy.stderr().len();
    write_atomically(&m.services, &services_yaml(&[only_v2, ratings, again]));
    let stderr = m.proxy.wait_stderr(WAIT, |e| {
        names_file_and_line(e.get(before..).unwrap_or_default(), &m.services)
    });
    let new = stderr.get(before..).unwrap_or_default();
    assert!(
        names_file_and_line(new, &m.services),
        "the refusal should name {}:LINE on stderr:\n{stderr}",
        m.services.display()
    );
    let tally = m.answers(url, 30, &[]);
    assert_eq!(
        tally.len(),
        3,
        "the last good registry stays in force: {tally:?}{}",
        m.context()
    );
    let tally = m.answers("http://ratings:9080/", 2, &[]);
    assert!(tally.keys().all(|k| k.starts_with("ratings v")), "{tally:?}");
    assert_eq!(metric(&m.metrics(), "meshctl_proxy_services", &[]), Some(2.0));

    // A valid file again is followed: reviews on v2 only.
    let only_v2 = Service::new("reviews", 9080).with(b.reviews("v2"));
    let ratings = b.ratings.iter().fold(Service::new("ratings", 9080), Service::with);
    write_atomically(&m.services, &services_yaml(&[only_v2, ratings]));
    m.wait_only_answer(url, 10, "reviews v2");
}

// Every test above that takes a `Way` runs through the proxy port and through forwards.
both_ways!(
    without_a_rule_every_version_is_reached_and_only_mesh_hosts_are_routed,
    a_route_rule_sends_every_request_to_its_version,
    a_route_to_a_version_without_endpoints_answers_503,
    weighted_routes_split_traffic_80_20,
    header_matches_by_precedence_send_jason_to_v2,
    source_matches_use_the_proxys_source_labels,
    an_abort_fault_answers_its_status_without_the_upstream,
    a_delay_fault_holds_the_request_at_least_that_long,
    a_request_past_its_timeout_gets_504,
    the_timeout_counts_from_the_request_so_a_delay_and_a_slow_answer_add_up,
    retries_hide_transient_5xx_for_idempotent_methods,
    a_redirect_answers_301_with_the_location,
    a_rewrite_changes_the_path_and_authority_sent_upstream,
    append_headers_reach_the_upstream,
    a_mirror_gets_a_shadow_copy_and_the_client_the_primary_answer,
    a_cors_preflight_is_answered_by_the_proxy,
    a_websocket_upgrade_passes_through_only_when_the_rule_allows_it,
    the_wait_for_a_request_head_is_bounded_but_a_slow_answer_is_not,
    request_bodies_reach_the_upstream_byte_for_byte,
    keep_alive_requests_on_one_client_connection_are_answered_in_order,
    upstream_connections_are_pooled_and_reused,
    no_access_log_writes_no_lines_but_still_counts,
    round_robin_spreads_requests_evenly,
    least_conn_prefers_the_idle_endpoints,
    consecutive_errors_eject_an_endpoint_for_the_sleep_window,
    overflowing_the_circuit_breaker_answers_503_overloaded,
    a_route_rule_created_in_the_store_applies_without_restart,
    rule_churn_under_load_never_fails_a_request,
);
