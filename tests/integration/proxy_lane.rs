//! Mesh requests through a `--forward` are served on the forward loop (`src/proxy/lane.rs`), and a
//! request that needs the general HTTP server is handed to it together with its connection and the
//! bytes already read. The routing and framing tests run every case both through the proxy port and
//! through a forward; these tests are about the hand-over itself, and about what only the loop does
//! (its own buffering toward slow clients, half-closed clients, its counters).
//!
//! Which server answered is visible on the wire: the loop passes an answer's field names as the
//! endpoint wrote them, while the general server (hyper) writes them in lowercase. The origin here
//! names itself in `X-Served-By`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::common::Proxy;
use crate::proxy_http::{IO_TIMEOUT, Setup, TestServer, WAIT, admin_get, find, header, metric, read_response, setup};

/// Bytes of the large answer (`/big`).
const BIG: usize = 5 * 1024 * 1024;

/// One request the origin read: method, path, its head as received, and its body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    head: String,
    body: Vec<u8>,
}

/// An origin on 127.0.0.1: reads requests (Content-Length or chunked bodies), records them, and
/// answers `200` with `X-Served-By: origin` and a body naming the method, path and body length, or
/// [`BIG`] patterned bytes for `/big`. Keeps every connection open.
struct Origin {
    seen: Arc<Mutex<Vec<Seen>>>,
    server: TestServer,
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

impl Origin {
    fn start() -> Origin {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = TestServer::start(move |s| serve(s, record.clone()));
        Origin { seen, server }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn serve(mut s: tokio::net::TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Some((head, body)) = crate::proxy_routing::read_request(&mut s, &mut buf, &mut chunk).await else {
            return;
        };
        let mut words = head.split(' ');
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let answer = if path == "/big" {
            let mut a = format!("HTTP/1.1 200 OK\r\nX-Served-By: origin\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            a.extend_from_slice(&pattern(BIG));
            a
        } else {
            let text = format!("{method} {path} {}\n", body.len());
            // `/hop`: the answer carries fields that belong to this hop only.
            let hop = if path == "/hop" {
                "Connection: X-Answer-Hop\r\nX-Answer-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Answer-Kept: 1\r\n"
            } else {
                ""
            };
            format!(
                "HTTP/1.1 200 OK\r\nX-Served-By: origin\r\n{hop}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        };
        seen.lock().unwrap_or_else(PoisonError::into_inner).push(Seen {
            method,
            path,
            head,
            body,
        });
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// A proxy whose registry has `lane:9080` (the origin) and whose forward leads there, with `rules`.
struct Lane {
    proxy: Proxy,
    forward: String,
    origin: Origin,
    _setup: Setup,
}

fn lane(rules: &[(String, String)]) -> Lane {
    let origin = Origin::start();
    let files: Vec<(&str, String)> = rules.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let setup = setup(&files);
    let services = setup.home.path().join("services.yaml");
    let yaml = format!(
        "services:\n- name: lane\n  port: 9080\n  endpoints:\n  - address: 127.0.0.1:{}\n    labels: {{version: v1}}\n",
        origin.server.port
    );
    std::fs::write(&services, yaml).expect("write the services file");
    let proxy = setup.proxy(&[
        "--services",
        &services.display().to_string(),
        "--forward",
        "127.0.0.1:0=lane:9080",
    ]);
    let forward = proxy
        .forwards
        .first()
        .cloned()
        .expect("the proxy names its forward's port");
    Lane {
        proxy,
        forward,
        origin,
        _setup: setup,
    }
}

fn rule(name: &str, precedence: i64, spec: &str) -> (String, String) {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    (
        format!("{name}.yaml"),
        format!(
            "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: {name}\n  namespace: default\n\
             spec:\n  destination:\n    name: lane\n  precedence: {precedence}\n{spec}"
        ),
    )
}

impl Lane {
    fn client(&self) -> TcpStream {
        let s = TcpStream::connect(&self.forward).expect("connect to the forward");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        s
    }

    fn context(&self) -> String {
        let seen: Vec<String> = self
            .origin
            .seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect();
        format!(
            "\n--- proxy stderr\n{}\n--- access log\n{}\n--- origin saw\n{}",
            self.proxy.stderr(),
            self.proxy.access_log(),
            seen.join("\n")
        )
    }

    /// `/metrics`' count of connections handed over for `reason`.
    fn handovers(&self, reason: &str) -> f64 {
        let text = admin_get(&self.proxy, "/metrics").body;
        metric(&text, "meshctl_proxy_forward_handovers_total", &[("reason", reason)])
            .unwrap_or_else(|| panic!("no handover count for {reason} in /metrics:\n{text}"))
    }

    fn handovers_total(&self) -> f64 {
        ["request", "service", "rule", "policy", "endpoint", "limit"]
            .iter()
            .map(|r| self.handovers(r))
            .sum()
    }
}

/// Which server wrote an answer's head: the forward loop keeps the origin's `X-Served-By`, hyper
/// writes `x-served-by`.
fn served_on_the_loop(head: &str) -> bool {
    head.contains("\r\nX-Served-By: origin\r\n")
}

fn request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: lane:9080\r\nUser-Agent: meshctl-test\r\n{extra}\r\n")
}

#[test]
fn plain_requests_through_a_forward_are_served_on_the_loop_and_keep_their_connection() {
    let l = lane(&[rule(
        "lane-v1",
        1,
        "route:\n- labels: {version: v1}\nappendHeaders:\n  x-added: yes\n",
    )]);
    let mut c = l.client();
    for i in 0..20 {
        let path = format!("/plain/{i}?q=1");
        c.write_all(request(&path, "").as_bytes()).expect("send");
        let r = read_response(&mut c).unwrap_or_else(|e| panic!("GET {path}: {e}{}", l.context()));
        assert_eq!(r.status, 200, "GET {path}: {r:?}{}", l.context());
        assert_eq!(r.body, format!("GET {path} 0\n"), "{}", l.context());
        assert!(
            served_on_the_loop(&r.head),
            "GET {path}: answered by the general server:\n{}{}",
            r.head,
            l.context()
        );
    }
    let seen = l.origin.seen();
    assert_eq!(seen.len(), 20, "{}", l.context());
    for s in &seen {
        assert_eq!(header(&s.head, "host"), Some("lane:9080"), "{}", s.head);
        assert_eq!(header(&s.head, "x-added"), Some("yes"), "{}", s.head);
    }
    assert_eq!(
        l.origin.server.accepted(),
        1,
        "one upstream connection for all{}",
        l.context()
    );
    assert_eq!(l.handovers_total(), 0.0, "{}", l.context());
}

#[test]
fn hop_by_hop_fields_stay_with_their_hop_both_ways() {
    let l = lane(&[]);
    let mut c = l.client();
    let extra = "Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
                 Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nX-Kept: 1\r\n";
    c.write_all(request("/hop", extra).as_bytes()).expect("send");
    let r = read_response(&mut c).unwrap_or_else(|e| panic!("GET /hop: {e}{}", l.context()));
    assert_eq!(r.status, 200, "{r:?}{}", l.context());
    assert!(served_on_the_loop(&r.head), "{}", r.head);
    for gone in ["x-answer-hop", "keep-alive"] {
        assert_eq!(header(&r.head, gone), None, "the client got {gone}:\n{}", r.head);
    }
    assert_eq!(header(&r.head, "x-answer-kept"), Some("1"), "{}", r.head);
    let seen = l.origin.seen();
    let head = &seen
        .first()
        .unwrap_or_else(|| panic!("the origin saw nothing{}", l.context()))
        .head;
    for gone in [
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "connection",
    ] {
        assert_eq!(header(head, gone), None, "the origin got {gone}:\n{head}");
    }
    assert_eq!(header(head, "x-kept"), Some("1"), "{head}");
}

#[test]
fn a_request_that_needs_the_general_server_is_handed_over_with_the_bytes_after_it() {
    let l = lane(&[
        rule(
            "lane-teapot",
            2,
            "match:\n  request:\n    headers:\n      uri:\n        prefix: /teapot\nhttpFault:\n  abort:\n    percent: 100\n    httpStatus: 418\n",
        ),
        rule("lane-v1", 1, "route:\n- labels: {version: v1}\n"),
    ]);
    let mut c = l.client();
    // Three requests in one write: the second needs the fault filter, so the connection goes to the
    // general server with the second and third requests already read.
    let pipelined = format!(
        "{}{}{}",
        request("/first", ""),
        request("/teapot", ""),
        request("/third", "")
    );
    c.write_all(pipelined.as_bytes()).expect("send");
    let first = read_response(&mut c).unwrap_or_else(|e| panic!("first: {e}{}", l.context()));
    let teapot = read_response(&mut c).unwrap_or_else(|e| panic!("teapot: {e}{}", l.context()));
    let third = read_response(&mut c).unwrap_or_else(|e| panic!("third: {e}{}", l.context()));
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "GET /first 0\n"),
        "{}",
        l.context()
    );
    assert!(served_on_the_loop(&first.head), "{}", first.head);
    assert_eq!(teapot.status, 418, "{teapot:?}{}", l.context());
    assert_eq!(
        (third.status, third.body.as_str()),
        (200, "GET /third 0\n"),
        "{}",
        l.context()
    );
    assert!(
        !served_on_the_loop(&third.head),
        "after the hand-over the general server serves the connection:\n{}",
        third.head
    );
    assert_eq!(l.handovers("rule"), 1.0, "{}", l.context());
    assert_eq!(l.handovers_total(), 1.0, "{}", l.context());
    // A new connection starts on the loop again.
    let mut c = l.client();
    c.write_all(request("/again", "").as_bytes()).expect("send");
    let again = read_response(&mut c).unwrap_or_else(|e| panic!("again: {e}{}", l.context()));
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, "GET /again 0\n"),
        "{}",
        l.context()
    );
    assert!(served_on_the_loop(&again.head), "{}", again.head);
}

#[test]
fn request_bodies_in_hand_stay_on_the_loop_and_chunked_ones_are_handed_over_whole() {
    let l = lane(&[]);
    let mut c = l.client();
    // A body sent in two pieces with a pause between them: the loop waits for the rest.
    let body = pattern(40_000);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: lane:9080\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).expect("send the head");
    c.write_all(&body[..10_000]).expect("send a piece");
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(&body[10_000..]).expect("send the rest");
    let r = read_response(&mut c).unwrap_or_else(|e| panic!("POST: {e}{}", l.context()));
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "POST /upload 40000\n"),
        "{}",
        l.context()
    );
    assert!(served_on_the_loop(&r.head), "{}", r.head);
    // A chunked upload goes to the general server, which decodes it.
    let chunked = "POST /chunked HTTP/1.1\r\nHost: lane:9080\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    c.write_all(chunked.as_bytes()).expect("send");
    let r = read_response(&mut c).unwrap_or_else(|e| panic!("chunked POST: {e}{}", l.context()));
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "POST /chunked 11\n"),
        "{}",
        l.context()
    );
    assert!(!served_on_the_loop(&r.head), "{}", r.head);
    let seen = l.origin.seen();
    assert_eq!(seen.len(), 2, "{}", l.context());
    assert_eq!(seen[0].body, body, "the first body reached the origin byte for byte");
    assert_eq!(seen[1].body, b"hello world", "{}", l.context());
    assert_eq!(l.handovers("request"), 1.0, "{}", l.context());
}

#[test]
fn a_client_that_reads_slowly_gets_a_large_answer_whole() {
    let l = lane(&[]);
    let mut c = l.client();
    c.write_all(request("/big", "").as_bytes()).expect("send");
    // Read the head, then the body in small pieces with pauses, so that the loop has to hold the
    // answer back rather than buffer all of it.
    let mut got = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    let started = Instant::now();
    let mut head_end = None;
    loop {
        let n = c.read(&mut piece).expect("read");
        assert!(n > 0, "the connection closed after {} bytes{}", got.len(), l.context());
        got.extend_from_slice(&piece[..n]);
        if head_end.is_none() {
            head_end = find(&got, b"\r\n\r\n").map(|p| p + 4);
        }
        if let Some(h) = head_end {
            if got.len() - h >= BIG {
                break;
            }
            if got.len() < 1024 * 1024 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "the answer did not arrive within {WAIT:?}{}",
            l.context()
        );
    }
    let h = head_end.unwrap_or(0);
    let head = String::from_utf8_lossy(&got[..h]).into_owned();
    assert!(served_on_the_loop(&head), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(BIG.to_string().as_str()),
        "{head}"
    );
    assert!(got[h..] == pattern(BIG)[..], "the body arrived altered");
    // The connection still carries the next request.
    c.write_all(request("/after", "").as_bytes()).expect("send");
    let r = read_response(&mut c).unwrap_or_else(|e| panic!("after: {e}{}", l.context()));
    assert_eq!(r.body, "GET /after 0\n", "{}", l.context());
}

#[test]
fn a_client_that_ends_its_side_after_its_request_gets_the_answer_and_the_close() {
    let l = lane(&[]);
    let mut c = l.client();
    c.write_all(request("/last", "").as_bytes()).expect("send");
    c.shutdown(std::net::Shutdown::Write).expect("half-close");
    let started = Instant::now();
    let mut all = Vec::new();
    c.read_to_end(&mut all).expect("read to the close");
    let text = String::from_utf8_lossy(&all);
    assert!(text.ends_with("GET /last 0\n"), "{text}{}", l.context());
    // Closed once the answer is out, not at the 10 s wait for a next head.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the proxy held the half-closed connection open for {:?}",
        started.elapsed()
    );
}

#[test]
fn an_endpoint_that_refuses_is_a_502_and_the_client_connection_carries_on() {
    let l = lane(&[]);
    // Point the registry at a port nobody listens on, then back.
    let services = l._setup.home.path().join("services.yaml");
    let closed = crate::proxy_http::closed_port();
    std::fs::write(
        &services,
        format!("services:\n- name: lane\n  port: 9080\n  endpoints:\n  - address: 127.0.0.1:{closed}\n"),
    )
    .expect("rewrite the services file");
    let mut c = l.client();
    let deadline = Instant::now() + WAIT;
    let r = loop {
        c.write_all(request("/refused", "").as_bytes()).expect("send");
        let r = read_response(&mut c).unwrap_or_else(|e| panic!("GET /refused: {e}{}", l.context()));
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r.status, 502, "{r:?}{}", l.context());
    assert!(
        r.body.contains(&format!("127.0.0.1:{closed}")),
        "the 502 names the endpoint: {}",
        r.body
    );
    assert!(!served_on_the_loop(&r.head), "the 502 is the proxy's own: {}", r.head);
    // Back to the origin: the same client connection reaches it again.
    std::fs::write(
        &services,
        format!(
            "services:\n- name: lane\n  port: 9080\n  endpoints:\n  - address: 127.0.0.1:{}\n",
            l.origin.server.port
        ),
    )
    .expect("rewrite the services file");
    let deadline = Instant::now() + WAIT;
    let r = loop {
        c.write_all(request("/back", "").as_bytes()).expect("send");
        let r = read_response(&mut c).unwrap_or_else(|e| panic!("GET /back: {e}{}", l.context()));
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((r.status, r.body.as_str()), (200, "GET /back 0\n"), "{}", l.context());
    assert!(served_on_the_loop(&r.head), "{}", r.head);
    assert_eq!(l.handovers_total(), 0.0, "{}", l.context());
}
