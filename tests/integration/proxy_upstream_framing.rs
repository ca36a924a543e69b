//! `meshctl proxy`'s HTTP/1.1 client for mesh requests, seen from the wire: how it frames what it sends
//! an endpoint and reads what the endpoint answers (chunked, close-delimited and Content-Length bodies,
//! HEAD, 204 and 304, interim 1xx answers, `Connection: close`, idle closes, malformed and truncated
//! answers), and when it keeps an upstream connection for the next request.
//!
//! One service, `framing` on port 9080, with a single endpoint (no RouteRule: round robin over one
//! endpoint, so every connection count is exact): an in-process raw-TCP origin whose answers are
//! scripted byte for byte per request path, and which records every request it read with the number
//! of the connection it came on. Clients speak raw HTTP/1.1 and read answers exactly, so several
//! requests can share one client connection.
//!
//! Every test runs both ways ([`Way`], [`both_ways!`]): `NAME::via_proxy_port` sends absolute-form
//! requests (`GET http://framing:9080/path`) to the proxy port, `NAME::via_forward` origin-form
//! requests (`GET /path`, `Host: framing:9080`) to a `--forward 127.0.0.1:0=framing:9080`. The proxy
//! serves the two on different paths; one body per test keeps their assertions identical.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Proxy, Way, both_ways};
use crate::proxy_http::{Setup, TestServer, WAIT, connect, find, header, setup};
use crate::proxy_routing::{parse_chunked, read_request};

const AUTHORITY: &str = "framing:9080";

// === The origin ===

/// What the origin does with a connection once it has written an answer.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Reads the next request.
    KeepAlive,
    /// Shuts its sending side down at once (the end of a close-delimited body), then reads until the
    /// proxy closes, counting every byte still sent to it in [`Origin::late_bytes`].
    Close,
    /// Leaves the connection idle this long, then closes it and reports it to [`Origin::wait_closed`].
    CloseAfter(Duration),
}

/// The origin's scripted answer to one request: exact bytes.
struct Answer {
    bytes: Vec<u8>,
    then: Then,
}

impl Answer {
    fn keep(bytes: impl Into<Vec<u8>>) -> Answer {
        Answer {
            bytes: bytes.into(),
            then: Then::KeepAlive,
        }
    }

    fn close(bytes: impl Into<Vec<u8>>) -> Answer {
        Answer {
            bytes: bytes.into(),
            then: Then::Close,
        }
    }
}

/// `200 OK` with a Content-Length, the connection kept.
fn ok(body: &str) -> Answer {
    Answer::keep(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// A head followed by a body, as one byte string.
fn head_and(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// One request the origin read.
#[derive(Clone, Debug)]
struct Seen {
    /// Which connection it came on: 0 for the first the origin accepted, 1 for the next...
    conn: usize,
    method: String,
    /// The request target as received.
    path: String,
    head: String,
    body: Vec<u8>,
}

type Script = dyn Fn(&Seen) -> Answer + Send + Sync;

struct OriginState {
    script: Box<Script>,
    seen: Mutex<Vec<Seen>>,
    conns: AtomicUsize,
    late_bytes: AtomicUsize,
    closed: mpsc::Sender<usize>,
}

/// A raw-TCP HTTP/1.1 origin on 127.0.0.1: reads requests (Content-Length or chunked bodies), records
/// them, and writes whatever its script returns for each.
struct Origin {
    state: Arc<OriginState>,
    closed: mpsc::Receiver<usize>,
    server: TestServer,
}

impl Origin {
    fn start(script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Origin {
        let (tx, closed) = mpsc::channel();
        let state = Arc::new(OriginState {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            conns: AtomicUsize::new(0),
            late_bytes: AtomicUsize::new(0),
            closed: tx,
        });
        let shared = state.clone();
        let server = TestServer::start(move |s| serve_origin(s, shared.clone()));
        Origin { state, closed, server }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.server.accepted()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The connection each request came on, in order.
    fn conns(&self) -> Vec<(String, usize)> {
        self.seen().into_iter().map(|s| (s.path, s.conn)).collect()
    }

    /// Bytes the proxy sent on connections after the origin had ended them.
    fn late_bytes(&self) -> usize {
        self.state.late_bytes.load(Ordering::SeqCst)
    }

    /// Waits until a [`Then::CloseAfter`] connection has been closed; returns its number.
    fn wait_closed(&self) -> usize {
        self.closed
            .recv_timeout(WAIT)
            .expect("the origin never closed the idle connection")
    }
}

async fn serve_origin(mut s: tokio::net::TcpStream, state: Arc<OriginState>) {
    let conn = state.conns.fetch_add(1, Ordering::SeqCst);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Some((head, body)) = read_request(&mut s, &mut buf, &mut chunk).await else {
            return;
        };
        let mut first = head.split(' ');
        let seen = Seen {
            conn,
            method: first.next().unwrap_or_default().to_string(),
            path: first.next().unwrap_or_default().to_string(),
            head: head.clone(),
            body,
        };
        let answer = (state.script)(&seen);
        state.seen.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
        if s.write_all(&answer.bytes).await.is_err() {
            return;
        }
        match answer.then {
            Then::KeepAlive => {}
            Then::Close => {
                let _ = s.shutdown().await;
                let mut late = buf.len();
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => late += n,
                    }
                }
                state.late_bytes.fetch_add(late, Ordering::SeqCst);
                return;
            }
            Then::CloseAfter(idle) => {
                tokio::time::sleep(idle).await;
                drop(s);
                let _ = state.closed.send(conn);
                return;
            }
        }
    }
}

// === The proxy ===

/// A proxy whose services file registers `framing:9080` with the origin as its only endpoint, and no
/// rule; reached the given [`Way`].
struct Mesh {
    proxy: Proxy,
    origin: Origin,
    way: Way,
    _setup: Setup,
}

/// The mesh for one test: via a forward, the proxy also runs `--forward 127.0.0.1:0=framing:9080`.
fn mesh(way: Way, script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Mesh {
    let origin = Origin::start(script);
    let setup = setup(&[]);
    let services = setup.home.path().join("services.yaml");
    std::fs::write(
        &services,
        format!(
            "services:\n- name: framing\n  port: 9080\n  endpoints:\n  - address: {}\n",
            origin.address()
        ),
    )
    .expect("write the services file");
    let mut args = vec!["--services".to_string(), services.display().to_string()];
    args.extend(way.forward_args(&[AUTHORITY.to_string()]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = setup.proxy(&args);
    if way == Way::Forward {
        assert_eq!(
            proxy.forwards.len(),
            1,
            "the proxy should print the forward's port:\n{}",
            proxy.stderr()
        );
    }
    Mesh {
        proxy,
        origin,
        way,
        _setup: setup,
    }
}

impl Mesh {
    /// A new client connection: to the proxy port, or to the forward.
    fn client(&self) -> Client {
        let address = match self.way {
            Way::ProxyPort => &self.proxy.listen,
            Way::Forward => &self.proxy.forwards[0],
        };
        Client::new(connect(address), self.way)
    }

    /// What the proxy printed and what the origin saw, for failure messages.
    fn context(&self) -> String {
        let log = self.proxy.access_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        let seen: Vec<String> = self
            .origin
            .seen()
            .iter()
            .map(|s| format!("conn {}: {} {} ({} body bytes)", s.conn, s.method, s.path, s.body.len()))
            .collect();
        format!(
            "\n--- way\n{:?}\n--- proxy stderr\n{}\n--- access log (last lines)\n{tail}\n--- origin saw ({} connections)\n{}",
            self.way,
            self.proxy.stderr(),
            self.origin.accepted(),
            seen.join("\n")
        )
    }

    /// `METHOD PATH` on `client`; panics unless a whole answer comes back.
    fn call(&self, client: &mut Client, method: &str, path: &str) -> Answered {
        client.send_request(method, path, "", b"");
        client
            .answer(method)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}{}", self.context()))
    }

    /// The origin read exactly these requests (path, connection number), in this order, and accepted
    /// no connection beyond the last one named.
    fn expect_conns(&self, want: &[(&str, usize)], what: &str) {
        let want: Vec<(String, usize)> = want.iter().map(|(p, c)| (p.to_string(), *c)).collect();
        assert_eq!(self.origin.conns(), want, "{what}{}", self.context());
        let accepted = want.iter().map(|(_, c)| c + 1).max().unwrap_or(0);
        assert_eq!(
            self.origin.accepted(),
            accepted,
            "{what}: connections accepted{}",
            self.context()
        );
    }

    /// Nothing was sent on a connection after the origin had ended it.
    fn expect_no_late_bytes(&self, what: &str) {
        assert_eq!(self.origin.late_bytes(), 0, "{what}{}", self.context());
    }

    /// `GET PATH` on `client`, which must answer 200 with `body`.
    fn expect_ok(&self, client: &mut Client, path: &str, body: &str) {
        let a = self.call(client, "GET", path);
        assert_eq!(a.status, 200, "GET {path}: {a:?}{}", self.context());
        assert_eq!(a.text(), body, "GET {path}: {a:?}{}", self.context());
    }
}

// === Clients ===

/// A complete answer read from the proxy.
pub(crate) struct Answered {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Answered {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Debug for Answered {
    /// The head and the start of the body, as text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        write!(f, "{:?} + {} body bytes {start:?}", self.head, self.body.len())
    }
}

/// Why no complete answer could be read.
#[derive(Debug)]
pub(crate) enum Broken {
    /// The proxy closed (or reset) the connection before the answer was complete.
    Closed(String),
    /// Anything else: nothing within the read timeout (a hang), or bytes that are no HTTP answer.
    Other(String),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Closed(how) => write!(f, "closed: {how}"),
            Broken::Other(what) => f.write_str(what),
        }
    }
}

/// A client connection to the proxy (its port or a forward, as `way` says) that reads answers
/// exactly: bytes after one answer stay for the next, so requests can follow each other on one
/// connection.
pub(crate) struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    way: Way,
}

impl Client {
    /// A client on a connection already open to the proxy port or a forward (as `way` says).
    pub(crate) fn new(s: TcpStream, way: Way) -> Client {
        Client {
            s,
            buf: Vec::new(),
            way,
        }
    }

    /// Writes `bytes` as they are, in one write.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send to the proxy");
    }

    /// A request for `PATH` on `framing:9080`: absolute-form via the proxy port, origin-form via the
    /// forward, with `Host: framing:9080` either way; `extra` is header lines (each ending in CRLF).
    /// A non-empty `body` goes with a Content-Length unless `extra` sets a framing.
    fn send_request(&mut self, method: &str, path: &str, extra: &str, body: &[u8]) {
        let target = self.way.target(AUTHORITY, path);
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {AUTHORITY}\r\n{extra}");
        if !body.is_empty() && !extra.to_ascii_lowercase().contains("transfer-encoding") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
    }

    /// Reads more bytes into the buffer: how many (0 at the end of the stream).
    fn fill(&mut self) -> Result<usize, Broken> {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
                ) =>
            {
                Err(Broken::Closed(format!("connection reset: {e}")))
            }
            Err(e) => Err(Broken::Other(format!("reading from the proxy: {e}"))),
        }
    }

    /// The answer to a request sent with `method`: interim 1xx answers are skipped; an answer to
    /// HEAD, a 204 and a 304 have no body; else the body is chunked, Content-Length or up to the close.
    pub(crate) fn answer(&mut self, method: &str) -> Result<Answered, Broken> {
        loop {
            let head_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                    break pos + 4;
                }
                if self.fill()? == 0 {
                    return Err(Broken::Closed(format!(
                        "closed before a complete head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )));
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            self.buf.drain(..head_end);
            let status = head
                .strip_prefix("HTTP/1.")
                .and_then(|rest| rest.split(' ').nth(1))
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| Broken::Other(format!("not an HTTP answer: {head:?}")))?;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let chunked =
                header(&head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
            let body = if method == "HEAD" || status == 204 || status == 304 {
                Vec::new()
            } else if chunked {
                loop {
                    if let Some((body, used)) = parse_chunked(&self.buf) {
                        self.buf.drain(..used);
                        break body;
                    }
                    if self.fill()? == 0 {
                        return Err(Broken::Closed(format!(
                            "closed inside a chunked body ({} bytes of it arrived)",
                            self.buf.len()
                        )));
                    }
                }
            } else if let Some(length) = length {
                while self.buf.len() < length {
                    if self.fill()? == 0 {
                        return Err(Broken::Closed(format!(
                            "closed after {} of {length} body bytes",
                            self.buf.len()
                        )));
                    }
                }
                self.buf.drain(..length).collect()
            } else {
                while self.fill()? > 0 {}
                std::mem::take(&mut self.buf)
            };
            return Ok(Answered { status, head, body });
        }
    }
}

// === Bodies ===

/// `n` bytes of a pseudo-random pattern (xorshift), different per `seed`: a misplaced or repeated
/// piece shows.
pub(crate) fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// `body` in chunked encoding, cut in pieces of the sizes in `sizes` (cycled), with a `;x=y`
/// extension on every third chunk.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        if at == body.len() {
            break;
        }
        let end = (at + size).min(body.len());
        let ext = if i % 3 == 0 { ";x=y" } else { "" };
        out.extend_from_slice(format!("{:x}{ext}\r\n", end - at).as_bytes());
        out.extend_from_slice(&body[at..end]);
        out.extend_from_slice(b"\r\n");
        at = end;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Asserts two byte strings are equal, naming the first difference rather than printing megabytes.
pub(crate) fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} bytes where {} were expected; first difference at byte {at}",
        got.len(),
        want.len()
    );
}

// === Tests ===

/// The answer to `GET /chunked`: a chunked body with chunk extensions (`;x=y`, a quoted value), an
/// upper-case size and a chunk bigger than one read, with trailers after the last chunk when
/// `trailers`; and the body it decodes to.
fn chunked_answer(trailers: bool) -> (Vec<u8>, Vec<u8>) {
    let big = pattern(70_000, 1);
    let mut body = b"hello, abcdefghijklmnopqrstuvwxyz".to_vec();
    body.extend_from_slice(&big);
    body.extend_from_slice(b"!\n");
    let mut wire =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n".to_vec();
    if trailers {
        wire.extend_from_slice(b"Trailer: X-Checksum, X-Other\r\n");
    }
    wire.extend_from_slice(b"\r\n7;x=y\r\nhello, \r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n");
    wire.extend_from_slice(format!("{:x};a=b;c=\"d e\"\r\n", big.len()).as_bytes());
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b"\r\n2\r\n!\n\r\n0\r\n");
    if trailers {
        wire.extend_from_slice(b"X-Checksum: 42\r\nX-Other: t\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    (wire, body)
}

fn chunked_answers_with_extensions_and_trailers_arrive_whole_and_keep_their_connection(way: Way) {
    for trailers in [false, true] {
        let (wire, body) = chunked_answer(trailers);
        let m = mesh(way, move |seen| match seen.path.as_str() {
            "/chunked" => Answer::keep(wire.clone()),
            _ => ok("after\n"),
        });
        let what = if trailers { "with trailers" } else { "without trailers" };

        let mut c = m.client();
        let a = m.call(&mut c, "GET", "/chunked");
        assert_eq!(a.status, 200, "{what}: {}{}", a.head, m.context());
        assert_same_bytes(&a.body, &body, &format!("the chunked body {what} through the proxy"));
        // The last chunk (and its trailers) ends the body; the connection, the client's and the
        // upstream one, serves the next request.
        m.expect_ok(&mut c, "/after", "after\n");
        m.expect_conns(
            &[("/chunked", 0), ("/after", 0)],
            &format!("{what}: both requests on one upstream connection"),
        );
    }
}

fn an_answer_ended_by_the_close_arrives_whole_and_the_next_request_opens_a_new_connection(way: Way) {
    let body = pattern(100_000, 2);
    let wire = head_and(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n",
        &body,
    );
    let m = mesh(way, move |seen| match seen.path.as_str() {
        "/until-close" => Answer::close(wire.clone()),
        _ => ok("next\n"),
    });

    let a = m.call(&mut m.client(), "GET", "/until-close");
    assert_eq!(a.status, 200, "{}{}", a.head, m.context());
    assert_same_bytes(&a.body, &body, "the close-delimited body through the proxy");

    // Whatever framing the proxy chose for its client, a new client connection is surely usable.
    m.expect_ok(&mut m.client(), "/next", "next\n");
    m.expect_conns(
        &[("/until-close", 0), ("/next", 1)],
        "a close-delimited answer ends its connection",
    );
    m.expect_no_late_bytes("bytes sent on the ended connection");
}

fn a_head_answer_has_no_body_despite_its_content_length(way: Way) {
    let body = pattern(1234, 3);
    let get = head_and(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1234\r\n\r\n",
        &body,
    );
    let m = mesh(way, move |seen| match seen.method.as_str() {
        "HEAD" => {
            Answer::keep("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1234\r\n\r\n")
        }
        _ => Answer::keep(get.clone()),
    });

    let mut c = m.client();
    let a = m.call(&mut c, "HEAD", "/doc");
    assert_eq!(a.status, 200, "{}{}", a.head, m.context());
    assert_eq!(
        header(&a.head, "content-length"),
        Some("1234"),
        "a HEAD answer keeps the length a GET would have: {}",
        a.head
    );
    // Had the proxy waited for 1234 bytes or sent any, this next answer would not be read right.
    let a = m.call(&mut c, "GET", "/doc");
    assert_eq!(a.status, 200, "{}{}", a.head, m.context());
    assert_same_bytes(&a.body, &body, "the GET after the HEAD");
    m.expect_conns(&[("/doc", 0), ("/doc", 0)], "HEAD then GET on one upstream connection");
}

fn no_content_and_not_modified_answers_have_no_body_and_keep_the_connection(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        "/no-content" => Answer::keep("HTTP/1.1 204 No Content\r\nX-Id: 204\r\n\r\n"),
        "/not-modified" => Answer::keep("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
        // A 304 may carry the length the 200 would have had; still no body follows.
        "/not-modified-with-length" => {
            Answer::keep("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n")
        }
        _ => ok("last\n"),
    });

    let mut c = m.client();
    for (path, status) in [
        ("/no-content", 204),
        ("/not-modified", 304),
        ("/not-modified-with-length", 304),
    ] {
        let a = m.call(&mut c, "GET", path);
        assert_eq!(a.status, status, "GET {path}: {}{}", a.head, m.context());
    }
    m.expect_ok(&mut c, "/last", "last\n");
    let conns: Vec<usize> = m.origin.conns().into_iter().map(|(_, c)| c).collect();
    assert_eq!(conns, [0, 0, 0, 0], "all on one upstream connection{}", m.context());
    assert_eq!(m.origin.accepted(), 1, "{}", m.context());
}

fn a_chunked_3mb_request_body_reaches_the_origin_byte_for_byte(way: Way) {
    let body = pattern(3 << 20, 5);
    let m = mesh(way, |seen| ok(&format!("{} bytes\n", seen.body.len())));

    let mut c = m.client();
    c.send_request(
        "POST",
        "/upload",
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n",
        &chunked(&body, &[65_536, 1, 4_000, 300_000, 17]),
    );
    let a = c
        .answer("POST")
        .unwrap_or_else(|e| panic!("POST /upload: {e}{}", m.context()));
    assert_eq!(a.status, 200, "{}{}", a.head, m.context());
    assert_eq!(a.text(), format!("{} bytes\n", body.len()), "{}", m.context());

    let seen = m.origin.seen();
    assert_eq!(seen.len(), 1, "{}", m.context());
    let up = &seen[0];
    assert_eq!((up.method.as_str(), up.path.as_str()), ("POST", "/upload"));
    let is_chunked = header(&up.head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = header(&up.head, "content-length");
    assert!(
        is_chunked != length.is_some(),
        "the body goes upstream chunked or with a Content-Length, one of them: {}",
        up.head
    );
    if let Some(length) = length {
        assert_eq!(length, body.len().to_string(), "{}", up.head);
    }
    assert_same_bytes(&up.body, &body, "the request body at the origin");
}

fn a_5mb_answer_with_a_content_length_arrives_byte_for_byte(way: Way) {
    let body = pattern(5 << 20, 6);
    let wire = head_and(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
    );
    let m = mesh(way, move |seen| match seen.path.as_str() {
        "/big" => Answer::keep(wire.clone()),
        _ => ok("small\n"),
    });

    let mut c = m.client();
    let a = m.call(&mut c, "GET", "/big");
    assert_eq!(a.status, 200, "{}{}", a.head, m.context());
    assert_same_bytes(&a.body, &body, "the 5 MB body through the proxy");
    m.expect_ok(&mut c, "/small", "small\n");
    assert_eq!(m.origin.accepted(), 1, "{}", m.context());
}

fn a_pooled_connection_the_origin_closed_while_idle_is_not_used_again(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        "/first" => Answer {
            then: Then::CloseAfter(Duration::from_millis(200)),
            ..ok("first\n")
        },
        _ => ok("second\n"),
    });

    let mut c = m.client();
    m.expect_ok(&mut c, "/first", "first\n");
    assert_eq!(m.origin.wait_closed(), 0);
    // The pooled connection is dead now: the proxy must not hand it to this request (or must recover).
    m.expect_ok(&mut c, "/second", "second\n");
    m.expect_conns(
        &[("/first", 0), ("/second", 1)],
        "the idle-closed connection is not reused",
    );
}

fn an_answer_with_connection_close_ends_its_upstream_connection(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        "/close" => Answer::close("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nclose\n"),
        _ => ok("next\n"),
    });

    let mut c = m.client();
    m.expect_ok(&mut c, "/close", "close\n");
    // The upstream's `Connection: close` is about its own connection: the client's stays usable.
    m.expect_ok(&mut c, "/next", "next\n");
    m.expect_conns(
        &[("/close", 0), ("/next", 1)],
        "a new connection after Connection: close",
    );
    m.expect_no_late_bytes("a request was sent on the connection the origin closed");
}

fn unprompted_interim_answers_are_skipped_and_the_real_answer_arrives(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        "/continue" => {
            Answer::keep("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nfinal answer\n")
        }
        "/hints" => Answer::keep(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhints\n",
        ),
        _ => ok("after\n"),
    });

    let mut c = m.client();
    m.expect_ok(&mut c, "/continue", "final answer\n");
    m.expect_ok(&mut c, "/hints", "hints\n");
    m.expect_ok(&mut c, "/after", "after\n");
    assert_eq!(m.origin.accepted(), 1, "{}", m.context());
}

fn a_malformed_answer_is_a_502_naming_the_endpoint_and_the_proxy_keeps_serving(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        // A complete head whose status is no number; the connection stays open.
        "/bad-status" => Answer::keep("HTTP/1.1 abc\r\n\r\n"),
        "/garbage" => Answer::close(&b"\x00\x13\x37\xff not http at all\r\n\r\n"[..]),
        _ => ok("fine\n"),
    });

    let address = m.origin.address();
    let mut c = m.client();
    for path in ["/bad-status", "/garbage"] {
        let a = m.call(&mut c, "GET", path);
        assert_eq!(a.status, 502, "GET {path}: {a:?}{}", m.context());
        assert!(
            a.text().contains(&address),
            "GET {path}: the 502 names the endpoint {address}: {:?}",
            a.text()
        );
    }
    m.expect_ok(&mut c, "/fine", "fine\n");
    // The same client again: through a forward, pools are per worker thread, and a new client
    // connection may be served by another one.
    m.expect_ok(&mut c, "/fine", "fine\n");
    // A connection that gave a malformed answer is not used again; a good one is.
    let conns: Vec<usize> = m.origin.conns().into_iter().map(|(_, c)| c).collect();
    assert_eq!(conns, [0, 1, 2, 2], "{}", m.context());
}

fn an_answer_cut_short_of_its_content_length_is_not_passed_off_as_complete(way: Way) {
    let m = mesh(way, |seen| match seen.path.as_str() {
        "/short" => Answer::close("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        _ => ok("fine\n"),
    });

    let mut c = m.client();
    c.send_request("GET", "/short", "", b"");
    match c.answer("GET") {
        // The head (and the 10 bytes) went on, then the connection was cut: the client knows.
        Err(Broken::Closed(_)) => {}
        // Or the proxy answered an error itself.
        Ok(a) if a.status >= 500 => {}
        Ok(a) => panic!(
            "a 100-byte answer cut after 10 bytes reached the client as complete: {} {:?}{}",
            a.head,
            a.text(),
            m.context()
        ),
        Err(e @ Broken::Other(_)) => panic!("the client got neither an answer nor a close: {e}{}", m.context()),
    }
    m.expect_ok(&mut m.client(), "/fine", "fine\n");
    m.expect_conns(
        &[("/short", 0), ("/fine", 1)],
        "a new connection after the cut-short answer",
    );
}

/// The race a keep-alive client cannot see coming: the upstream reads the request it was sent on an
/// idle connection and closes without answering (as a server does whose idle timeout fired just then).
/// An idempotent request with nothing to resend is sent once more on a new connection, unseen by the
/// client; a POST is not (the upstream may have acted on it), and gets a 502.
fn a_request_on_a_reused_connection_closed_under_it_goes_again_only_when_idempotent(way: Way) {
    let m = mesh(way, |seen| match (seen.conn, seen.path.as_str()) {
        // The first request of every connection is answered; any later one is dropped unanswered.
        (_, "/first") => ok("first\n"),
        (0, _) => Answer::close(Vec::new()),
        _ => ok("again\n"),
    });
    let mut c = m.client();
    m.expect_ok(&mut c, "/first", "first\n");
    m.expect_ok(&mut c, "/second", "again\n");
    m.expect_conns(
        &[("/first", 0), ("/second", 0), ("/second", 1)],
        "the GET resent on a new connection",
    );

    // Connection 1 is pooled again; a POST on a connection that will be dropped is not resent.
    let m = mesh(way, |seen| match (seen.conn, seen.path.as_str()) {
        (_, "/first") => ok("first\n"),
        (0, _) => Answer::close(Vec::new()),
        _ => ok("again\n"),
    });
    let mut c = m.client();
    m.expect_ok(&mut c, "/first", "first\n");
    c.send_request("POST", "/order", "", b"one pizza");
    let a = c
        .answer("POST")
        .unwrap_or_else(|e| panic!("POST /order: {e}{}", m.context()));
    assert_eq!(a.status, 502, "POST /order: {a:?}{}", m.context());
    let posts = m.origin.seen().iter().filter(|s| s.path == "/order").count();
    assert_eq!(posts, 1, "the POST reached the origin once: {}", m.context());
}

both_ways!(
    chunked_answers_with_extensions_and_trailers_arrive_whole_and_keep_their_connection,
    an_answer_ended_by_the_close_arrives_whole_and_the_next_request_opens_a_new_connection,
    a_head_answer_has_no_body_despite_its_content_length,
    no_content_and_not_modified_answers_have_no_body_and_keep_the_connection,
    a_chunked_3mb_request_body_reaches_the_origin_byte_for_byte,
    a_5mb_answer_with_a_content_length_arrives_byte_for_byte,
    a_pooled_connection_the_origin_closed_while_idle_is_not_used_again,
    an_answer_with_connection_close_ends_its_upstream_connection,
    unprompted_interim_answers_are_skipped_and_the_real_answer_arrives,
    a_malformed_answer_is_a_502_naming_the_endpoint_and_the_proxy_keeps_serving,
    an_answer_cut_short_of_its_content_length_is_not_passed_off_as_complete,
    a_request_on_a_reused_connection_closed_under_it_goes_again_only_when_idempotent,
);
