//! `meshctl proxy` under faults and load: upstream resets, refusals and timeouts, half-closed
//! connections, silent clients, a 10 MB header block, malformed SOCKS5 and HTTP, 5,000 concurrent
//! connections, rule churn while traffic flows, and draining on SIGTERM. Each fault checks the clean
//! error the client gets AND that a normal allowed request through the proxy still works afterwards.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Proxy;
use crate::proxy_http::{
    HttpServer, TestServer, WAIT, admin_get, assert_still_serving, closed_port, connect, connect_via, echo_round,
    echo_server, egress_rule, get_via, http_server, metric, read_head_async, read_head_exact, read_response,
    read_socks5_reply, setup, socks5_via, unanswering_port, wait_log_line,
};

/// How a read loop ended.
#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Reset(String),
    /// Nothing more arrived within the read timeout and the connection stayed open: a hang.
    Timeout,
}

/// Reads until the peer closes; returns what arrived and how it ended.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (got, End::Timeout);
            }
            Err(e) => return (got, End::Reset(e.to_string())),
        }
    }
}

/// Closes the connection with a TCP reset (SO_LINGER 0) instead of a FIN.
fn reset(s: tokio::net::TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

fn rules_for(web: &HttpServer, more: &[(u16, &str)]) -> String {
    let mut ports = vec![(web.port(), "http")];
    ports.extend_from_slice(more);
    egress_rule("web", "localhost", &ports)
}

#[test]
fn upstream_resets_mid_stream() {
    let web = http_server();
    // Answers with a head promising 100,000 bytes, sends 1,000, then resets.
    let partial = TestServer::start(|mut s| async move {
        if read_head_async(&mut s).await.is_none() {
            return;
        }
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        resp.extend_from_slice(&[b'x'; 1000]);
        let _ = s.write_all(&resp).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        reset(s);
    });
    // Resets as soon as the request has arrived.
    let at_once = TestServer::start(|mut s| async move {
        let _ = read_head_async(&mut s).await;
        reset(s);
    });
    // Opaque TCP: 1,000 bytes, then a reset.
    let tcp = TestServer::start(|mut s| async move {
        let _ = s.write_all(&[b'y'; 1000]).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        reset(s);
    });
    let s = setup(&[
        (
            "web.yaml",
            rules_for(&web, &[(partial.port, "http"), (at_once.port, "http")]),
        ),
        ("tcp.yaml", egress_rule("tcp", "127.0.0.1/32", &[(tcp.port, "tcp")])),
    ]);
    let p = s.proxy(&["--forward", &format!("127.0.0.1:0=127.0.0.1:{}", tcp.port)]);

    // HTTP, reset after part of the body: the client never gets a complete 200; it sees either a
    // 502 (nothing sent yet) or a truncated body and a closed connection, never a hang.
    let mut c = connect(&p.listen);
    let req = format!(
        "GET http://localhost:{0}/partial HTTP/1.1\r\nHost: localhost:{0}\r\nConnection: close\r\n\r\n",
        partial.port
    );
    c.write_all(req.as_bytes()).unwrap();
    let (got, end) = read_until_closed(&mut c);
    assert_ne!(
        end,
        End::Timeout,
        "the proxy must close the client side when the upstream resets"
    );
    let text = String::from_utf8_lossy(&got);
    if !text.starts_with("HTTP/1.1 502") {
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let body_at = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(text.len());
        assert!(
            got.len() - body_at < 100_000,
            "the truncated body must not look complete"
        );
    }
    assert_eq!(partial.accepted(), 1);

    // HTTP, reset before any answer: 502, logged with the error.
    let r = get_via(&p, &format!("http://localhost:{}/at-once", at_once.port)).expect("a response");
    assert_eq!(r.status, 502, "{r:?}");
    let line = wait_log_line(&p, &["/at-once"]);
    assert!(line.contains(" allow ") && line.contains("error="), "{line}");

    // TCP forward: whatever arrived before the reset, then the client is closed too.
    let mut f = connect(&p.forwards[0]);
    let (got, end) = read_until_closed(&mut f);
    assert_ne!(
        end,
        End::Timeout,
        "the proxy must close the client when the upstream resets"
    );
    assert!(
        got.len() <= 1000 && got.iter().all(|&b| b == b'y'),
        "{} bytes",
        got.len()
    );

    // CONNECT to the resetting HTTP upstream: the tunnel is closed as well.
    let (status, mut t) = connect_via(&p, &format!("localhost:{}", at_once.port));
    assert_eq!(status, Ok(200));
    t.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (_, end) = read_until_closed(&mut t);
    assert_ne!(end, End::Timeout);

    assert_still_serving(&p, &web, "upstream resets");
}

#[test]
fn upstream_refused_gives_502_and_closes_tcp() {
    let web = http_server();
    let (refused_http, refused_tcp) = (closed_port(), closed_port());
    let s = setup(&[
        ("web.yaml", rules_for(&web, &[(refused_http, "http")])),
        ("tcp.yaml", egress_rule("tcp", "127.0.0.1/32", &[(refused_tcp, "tcp")])),
    ]);
    let p = s.proxy(&["--forward", &format!("127.0.0.1:0=127.0.0.1:{refused_tcp}")]);
    let r = get_via(&p, &format!("http://localhost:{refused_http}/refused")).expect("a response");
    assert_eq!(r.status, 502, "{r:?}");
    let line = wait_log_line(&p, &["/refused"]);
    assert!(
        line.contains(" allow ") && line.contains(" 502") && line.contains("error="),
        "{line}"
    );

    let mut f = connect(&p.forwards[0]);
    let (got, end) = read_until_closed(&mut f);
    assert!(got.is_empty());
    assert_ne!(end, End::Timeout, "a refused upstream closes the TCP client");
    let line = wait_log_line(&p, &[" tcp ", &format!("127.0.0.1:{refused_tcp}")]);
    assert!(
        line.contains(" allow ") && line.contains("error=") && line.to_lowercase().contains("refused"),
        "{line}"
    );

    let (status, _) = connect_via(&p, &format!("localhost:{refused_http}"));
    assert_eq!(status, Ok(502), "CONNECT to a refusing upstream");
    assert_still_serving(&p, &web, "refused upstreams");
}

#[test]
fn upstream_connect_timeout_gives_504() {
    let web = http_server();
    let Some(hanging) = unanswering_port("upstream_connect_timeout_gives_504") else {
        return;
    };
    let addr = hanging.addr;
    let s = setup(&[("web.yaml", rules_for(&web, &[(addr.port(), "http")]))]);
    let p = s.proxy(&["--connect-timeout", "1s"]);
    let r = get_via(&p, &format!("http://localhost:{}/slow", addr.port())).expect("a response");
    assert_eq!(r.status, 504, "{r:?}");
    assert_still_serving(&p, &web, "an upstream connect timeout");
}

#[test]
fn half_closed_connections() {
    let web = http_server();
    let echo = echo_server();
    // Greets, closes its sending side, then reports how many bytes the client sent afterwards.
    let (count_tx, count_rx) = std::sync::mpsc::channel::<usize>();
    let count_tx = std::sync::Mutex::new(count_tx);
    let greeter = TestServer::start(move |mut s| {
        let tx = count_tx.lock().unwrap().clone();
        async move {
            let _ = s.write_all(b"hello\n").await;
            let _ = s.shutdown().await;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            let _ = tx.send(rest.len());
        }
    });
    let s = setup(&[
        ("web.yaml", rules_for(&web, &[(echo.port, "http")])),
        (
            "tcp.yaml",
            egress_rule("tcp", "127.0.0.1/32", &[(echo.port, "tcp"), (greeter.port, "tcp")]),
        ),
    ]);
    let p = s.proxy(&[
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", echo.port),
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", greeter.port),
    ]);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    // Client closes its sending side first: every byte still comes back, then EOF.
    let check_client_half_close = |mut c: TcpStream, what: &str| {
        let mut w = c.try_clone().unwrap();
        let data = payload.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let (got, end) = read_until_closed(&mut c);
        writer.join().unwrap();
        assert_eq!(
            end,
            End::Eof,
            "{what}: the echo must end with EOF after the client's half-close"
        );
        assert!(
            got == payload,
            "{what}: {} of {} bytes came back",
            got.len(),
            payload.len()
        );
    };
    check_client_half_close(connect(&p.forwards[0]), "--forward");
    let (status, t) = connect_via(&p, &format!("localhost:{}", echo.port));
    assert_eq!(status, Ok(200));
    check_client_half_close(t, "CONNECT");
    let t = socks5_via(&p, "localhost", echo.port).expect("SOCKS5 to the echo server");
    check_client_half_close(t, "SOCKS5");

    // Upstream closes its sending side first: the client gets EOF and can still send.
    let mut g = connect(&p.forwards[1]);
    let mut greeting = Vec::new();
    g.read_to_end(&mut greeting).expect("the greeting, then EOF");
    assert_eq!(greeting, b"hello\n");
    g.write_all(&payload[..65536])
        .expect("send after the upstream's half-close");
    g.shutdown(Shutdown::Write).unwrap();
    let n = count_rx.recv_timeout(WAIT).expect("the upstream saw the client's EOF");
    assert_eq!(n, 65536, "bytes the upstream received after its half-close");

    // An HTTP client that half-closes after its request still gets the response.
    let mut c = connect(&p.listen);
    c.write_all(
        format!(
            "GET http://localhost:{0}/half HTTP/1.1\r\nHost: localhost:{0}\r\nConnection: close\r\n\r\n",
            web.port()
        )
        .as_bytes(),
    )
    .unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let r = read_response(&mut c).expect("a response after the client's half-close");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("path=/half\n"), "{r:?}");

    assert_still_serving(&p, &web, "half-closed connections");
}

#[test]
fn silent_clients_do_not_block_others() {
    let web = http_server();
    let s = setup(&[("web.yaml", rules_for(&web, &[]))]);
    let p = s.proxy(&[]);
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(connect(&p.listen));
    }
    for _ in 0..8 {
        let mut c = connect(&p.listen);
        c.write_all(b"GET http://localhost/ HT").unwrap();
        idle.push(c);
    }
    for _ in 0..8 {
        let mut c = connect(&p.listen);
        c.write_all(&[5]).unwrap();
        idle.push(c);
    }
    for _ in 0..8 {
        let mut c = connect(&p.listen);
        c.write_all(format!("CONNECT localhost:{} HTTP/1.1\r\n", web.port()).as_bytes())
            .unwrap();
        idle.push(c);
    }
    // Everyone else is served meanwhile.
    assert_still_serving(&p, &web, "56 silent clients");
    let (status, _) = connect_via(&p, &format!("localhost:{}", web.port()));
    assert_eq!(status, Ok(200));
    assert!(socks5_via(&p, "localhost", web.port()).is_ok());
    assert_eq!(admin_get(&p, "/ready").status, 200);
    drop(idle);
    assert_still_serving(&p, &web, "silent clients going away");
}

#[test]
fn ten_megabyte_header_block() {
    let web = http_server();
    let s = setup(&[("web.yaml", rules_for(&web, &[]))]);
    let p = s.proxy(&[]);
    let mut c = connect(&p.listen);
    let mut w = c.try_clone().unwrap();
    let port = web.port();
    let writer = std::thread::spawn(move || {
        let head = format!("GET http://localhost:{port}/big HTTP/1.1\r\nHost: localhost:{port}\r\nX-Big: ");
        w.write_all(head.as_bytes())?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            w.write_all(&chunk)?;
        }
        w.write_all(b"\r\n\r\n")
    });
    let outcome = read_head_exact(&mut c);
    let _ = c.shutdown(Shutdown::Both);
    let _ = writer.join();
    match outcome {
        Ok(head) => {
            let status = head.split(' ').nth(1).unwrap_or_default();
            assert!(
                ["400", "413", "431", "494"].contains(&status),
                "a 10 MB header block must be refused with a 4xx: {head}"
            );
        }
        Err(e) => {
            // Closing the connection is the other clean outcome; a hang is not.
            assert!(
                !e.contains("timed out") && !e.contains("os error 11"),
                "the proxy neither answered nor closed: {e}"
            );
        }
    }
    assert_eq!(web.hits(), 0, "the oversized request must not reach the server");
    assert_still_serving(&p, &web, "a 10 MB header block");
}

#[test]
fn malformed_http_requests() {
    let web = http_server();
    let s = setup(&[("web.yaml", rules_for(&web, &[]))]);
    let p = s.proxy(&[]);
    let port = web.port();
    let cases: Vec<(String, Vec<u8>, &[u16], bool)> = vec![
        // (what, bytes, acceptable statuses, closing without a response is acceptable)
        (
            "not HTTP".into(),
            b"THIS IS NOT HTTP AT ALL\r\n\r\n".to_vec(),
            &[400],
            false,
        ),
        (
            "header without a colon".into(),
            format!("GET http://localhost:{port}/ HTTP/1.1\r\nHost localhost\r\n\r\n").into_bytes(),
            &[400],
            false,
        ),
        (
            "broken URL".into(),
            b"GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
            false,
        ),
        (
            "port out of range".into(),
            b"GET http://localhost:99999/ HTTP/1.1\r\nHost: localhost:99999\r\n\r\n".to_vec(),
            &[400],
            false,
        ),
        (
            "unknown HTTP version".into(),
            format!("GET http://localhost:{port}/ HTTP/9.9\r\nHost: localhost\r\n\r\n").into_bytes(),
            &[400, 505],
            true,
        ),
        (
            "CONNECT without a port".into(),
            b"CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &[400, 403],
            false,
        ),
        (
            "TLS to the plain port".into(),
            vec![
                0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, 0, 0, 0, 0, b'\r', b'\n', b'\r',
                b'\n',
            ],
            &[400],
            true,
        ),
        ("binary zeros".into(), vec![0u8; 64], &[400], true),
    ];
    for (what, bytes, statuses, may_close) in cases {
        let mut c = connect(&p.listen);
        let _ = c.write_all(&bytes);
        match read_head_exact(&mut c) {
            Ok(head) => {
                let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                assert!(statuses.contains(&status), "{what}: expected {statuses:?}, got {head}");
            }
            Err(e) => {
                assert!(
                    may_close && !e.contains("timed out") && !e.contains("os error 11"),
                    "{what}: expected {statuses:?}, got no response: {e}"
                );
            }
        }
    }
    assert_eq!(web.hits(), 0);
    assert_still_serving(&p, &web, "malformed HTTP requests");
}

#[test]
fn malformed_socks5_requests() {
    let web = http_server();
    let s = setup(&[("web.yaml", rules_for(&web, &[]))]);
    let p = s.proxy(&[]);
    let port = web.port().to_be_bytes();

    // Only username/password offered: "no acceptable methods" (0xFF), then close.
    let mut c = connect(&p.listen);
    c.write_all(&[5, 1, 2]).unwrap();
    let mut reply = [0u8; 2];
    c.read_exact(&mut reply).expect("a method reply");
    assert_eq!(reply, [5, 0xFF]);
    let (_, end) = read_until_closed(&mut c);
    assert_ne!(end, End::Timeout);

    // No methods at all: 0xFF or a close, never a hang.
    let mut c = connect(&p.listen);
    c.write_all(&[5, 0]).unwrap();
    let (got, end) = read_until_closed(&mut c);
    assert!(got.is_empty() || got == [5, 0xFF], "{got:?}");
    assert_ne!(end, End::Timeout);

    let after_greeting = |request: &[u8]| -> (Result<u8, String>, End) {
        let mut c = connect(&p.listen);
        c.write_all(&[5, 1, 0]).unwrap();
        let mut choice = [0u8; 2];
        c.read_exact(&mut choice).unwrap();
        assert_eq!(choice, [5, 0]);
        let _ = c.write_all(request);
        let reply = read_socks5_reply(&mut c);
        let (_, end) = read_until_closed(&mut c);
        (reply, end)
    };
    let with_port = |mut v: Vec<u8>| {
        v.extend_from_slice(&port);
        v
    };

    // BIND and UDP ASSOCIATE: "command not supported" (0x07).
    for cmd in [2u8, 3] {
        let (reply, end) = after_greeting(&with_port(vec![5, cmd, 0, 1, 127, 0, 0, 1]));
        assert_eq!(reply, Ok(7), "command {cmd}");
        assert_ne!(end, End::Timeout);
    }
    // Unknown address type: "address type not supported" (0x08).
    let (reply, end) = after_greeting(&with_port(vec![5, 1, 0, 9, 127, 0, 0, 1]));
    assert_eq!(reply, Ok(8));
    assert_ne!(end, End::Timeout);
    // Wrong version in the request, and an empty domain name: an error reply or a close.
    for (what, req) in [
        ("version 4 request", with_port(vec![4, 1, 0, 1, 127, 0, 0, 1])),
        ("empty domain name", with_port(vec![5, 1, 0, 3, 0])),
    ] {
        let (reply, end) = after_greeting(&req);
        assert!(!matches!(reply, Ok(0)), "{what}: must not succeed");
        assert_ne!(end, End::Timeout, "{what}");
    }
    // Truncated greeting, then EOF: the proxy closes too.
    let mut c = connect(&p.listen);
    c.write_all(&[5, 3, 0]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (_, end) = read_until_closed(&mut c);
    assert_ne!(end, End::Timeout);
    // Truncated request, then EOF.
    let mut c = connect(&p.listen);
    c.write_all(&[5, 1, 0, 5, 1, 0, 3, 200, b'a', b'b']).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (_, end) = read_until_closed(&mut c);
    assert_ne!(end, End::Timeout);

    let mut t = socks5_via(&p, "localhost", web.port()).expect("a well-formed SOCKS5 request still works");
    t.write_all(format!("GET /ok HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", web.port()).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut t).unwrap().status, 200);
    assert_still_serving(&p, &web, "malformed SOCKS5 requests");
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the hard limit); returns the
/// soft limit in force afterwards.
#[cfg(target_os = "linux")]
fn raise_nofile(want: u64) -> u64 {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit struct (two 64-bit fields on Linux).
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.cur < want {
        let new = Rlimit {
            cur: want.min(lim.max),
            max: lim.max,
        };
        // SAFETY: `new` is a valid rlimit struct that outlives the call.
        if unsafe { setrlimit(RLIMIT_NOFILE, &new) } == 0 {
            return new.cur;
        }
    }
    lim.cur
}

#[cfg(not(target_os = "linux"))]
fn raise_nofile(_want: u64) -> u64 {
    u64::MAX
}

const SKIPPED: &str = "not attempted after an earlier failure";

/// The proxy's standard error, with repeated lines counted instead of repeated.
fn stderr_summary(p: &Proxy) -> String {
    let mut out: Vec<(String, usize)> = Vec::new();
    for line in p.stderr().lines() {
        match out.iter_mut().find(|(l, _)| l == line) {
            Some((_, n)) => *n += 1,
            None => out.push((line.to_string(), 1)),
        }
    }
    out.iter()
        .map(|(l, n)| {
            if *n > 1 {
                format!("{l}   [{n} times]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn five_thousand_concurrent_connections() {
    const N: usize = 5000;
    const PAYLOAD: usize = 8192;
    let limit = raise_nofile(4 * N as u64);
    assert!(
        limit >= 2 * N as u64 + 500,
        "RLIMIT_NOFILE {limit} is too low for {N} connections"
    );

    let web = http_server();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (cur, pk) = (current.clone(), peak.clone());
    let echo = TestServer::start(move |mut s| {
        let (cur, pk) = (cur.clone(), pk.clone());
        async move {
            let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
            pk.fetch_max(now, Ordering::SeqCst);
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            cur.fetch_sub(1, Ordering::SeqCst);
        }
    });
    let s = setup(&[
        ("web.yaml", rules_for(&web, &[])),
        ("db.yaml", egress_rule("db", "127.0.0.1/32", &[(echo.port, "tcp")])),
    ]);
    let p = s.proxy(&["--forward", &format!("127.0.0.1:0=127.0.0.1:{}", echo.port)]);
    let addr: SocketAddr = p.forwards[0].parse().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results: Result<Vec<Result<(), String>>, _> = rt.block_on(async move {
        let barrier = Arc::new(tokio::sync::Barrier::new(N));
        // At most this many connects in flight at once, so no listen backlog overflows; every
        // connection stays open until all N are established.
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        // After the first failure the connections not yet opened are not attempted (fail fast).
        let failed = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let (barrier, gate, failed) = (barrier.clone(), gate.clone(), failed.clone());
            tasks.spawn(async move {
                let opened = async {
                    if failed.load(Ordering::SeqCst) {
                        return Err(SKIPPED.to_string());
                    }
                    // Only the connect itself is gated; the connection then stays open.
                    let permit = gate.acquire().await.unwrap();
                    if failed.load(Ordering::SeqCst) {
                        return Err(SKIPPED.to_string());
                    }
                    let mut s = tokio::time::timeout(Duration::from_secs(30), tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| "no connect within 30 s".to_string())?
                        .map_err(|e| format!("connect: {e}"))?;
                    drop(permit);
                    let hello = format!("hello {i:05}\n");
                    let mut back = vec![0u8; hello.len()];
                    tokio::time::timeout(Duration::from_secs(30), async {
                        s.write_all(hello.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
                        s.read_exact(&mut back).await.map_err(|e| format!("read: {e}"))
                    })
                    .await
                    .map_err(|_| "no echo within 30 s".to_string())??;
                    if back != hello.as_bytes() {
                        return Err(format!("hello came back as {:?}", String::from_utf8_lossy(&back)));
                    }
                    Ok(s)
                }
                .await;
                if opened.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                // Every connection is open (and has carried data) before any sends its payload.
                barrier.wait().await;
                let mut s = opened.map_err(|e| format!("connection {i}: {e}"))?;
                let payload: Vec<u8> = (0..PAYLOAD).map(|j| ((i * 31 + j) % 251) as u8).collect();
                let (mut r, mut w) = s.split();
                let write = w.write_all(&payload);
                let mut back = vec![0u8; PAYLOAD];
                let read = r.read_exact(&mut back);
                let (wrote, read) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
                    .await
                    .map_err(|_| format!("connection {i}: payload not echoed within 30 s"))?;
                wrote.map_err(|e| format!("connection {i}: write: {e}"))?;
                read.map_err(|e| format!("connection {i}: read: {e}"))?;
                if back != payload {
                    return Err(format!("connection {i}: payload came back altered"));
                }
                Ok(())
            });
        }
        tokio::time::timeout(Duration::from_secs(150), async {
            let mut results = Vec::with_capacity(N);
            while let Some(r) = tasks.join_next().await {
                results.push(r.unwrap_or_else(|e| Err(format!("task: {e}"))));
            }
            results
        })
        .await
    });
    let results = results.unwrap_or_else(|_| panic!("the load did not finish\n--- stderr\n{}", stderr_summary(&p)));
    let skipped = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.ends_with(SKIPPED)))
        .count();
    let failures: Vec<&String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| !e.ends_with(SKIPPED))
        .collect();
    assert!(
        failures.is_empty() && skipped == 0,
        "{} of {N} connections failed ({skipped} more not attempted after that), e.g. {:?}\n--- stderr\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        stderr_summary(&p)
    );
    assert_eq!(results.len(), N);
    assert!(
        peak.load(Ordering::SeqCst) >= N,
        "the upstream saw at most {} connections at once",
        peak.load(Ordering::SeqCst)
    );
    drop(rt);

    // Every connection was logged and counted, and none is left open.
    let log = p.wait_log(WAIT, |l| {
        l.lines()
            .filter(|l| l.contains(" tcp ") && l.contains(" allow "))
            .count()
            >= N
    });
    let logged = log
        .lines()
        .filter(|l| l.contains(" tcp ") && l.contains(" allow "))
        .count();
    assert_eq!(logged, N, "access log lines for the forwarded connections");
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let m = admin_get(&p, "/metrics").body;
        let active = metric(&m, "meshctl_proxy_active_connections", &[]).unwrap_or(-1.0);
        if active == 0.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        metric(&metrics, "meshctl_proxy_active_connections", &[]),
        Some(0.0),
        "{metrics}"
    );
    let allowed = metric(&metrics, "meshctl_proxy_connections_total", &[("decision", "allow")]).unwrap_or(0.0);
    assert!(allowed >= N as f64, "{metrics}");
    assert!(
        metric(&metrics, "meshctl_proxy_bytes_total", &[("direction", "sent")]).unwrap_or(0.0)
            >= (N * (PAYLOAD + 12)) as f64,
        "{metrics}"
    );
    assert_still_serving(&p, &web, "5,000 concurrent connections");
}

#[test]
fn rule_churn_never_denies_an_allowed_destination() {
    let web = http_server();
    let echo = echo_server();
    let s = setup(&[
        ("web.yaml", rules_for(&web, &[])),
        ("db.yaml", egress_rule("db", "127.0.0.1/32", &[(echo.port, "tcp")])),
        ("churn.yaml", egress_rule("churn", "10.20.0.0/16", &[(5000, "tcp")])),
    ]);
    let mut p = s.proxy(&["--forward", &format!("127.0.0.1:0=127.0.0.1:{}", echo.port)]);
    let revision_at_start = metric(&admin_get(&p, "/metrics").body, "meshctl_proxy_rules_revision", &[]).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let rules = s.rules.clone();
    let flag = done.clone();
    // ~100 changes a second for ~3 s: the unrelated rule changes address and port each time, written
    // in place or replaced by a rename; another unrelated file comes and goes.
    let writer = std::thread::spawn(move || {
        for i in 0..300u32 {
            let content = egress_rule(
                "churn",
                &format!("10.{}.0.0/16", 20 + i % 200),
                &[(5000 + (i % 100) as u16, "tcp"), (6000 + (i % 7) as u16, "mongo")],
            );
            if i % 2 == 0 {
                std::fs::write(rules.join("churn.yaml"), &content).unwrap();
            } else {
                std::fs::write(rules.join("churn.tmp"), &content).unwrap();
                std::fs::rename(rules.join("churn.tmp"), rules.join("churn.yaml")).unwrap();
            }
            if i % 10 == 0 {
                let extra = rules.join("extra.yaml");
                if extra.exists() {
                    std::fs::remove_file(extra).unwrap();
                } else {
                    std::fs::write(extra, egress_rule("extra", "*.example.org", &[(443, "https")])).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        flag.store(true, Ordering::SeqCst);
    });

    let url = format!("http://localhost:{}/churn", web.port());
    let (mut requests, mut tunnels) = (0, 0);
    let mut failures = Vec::new();
    while !done.load(Ordering::SeqCst) {
        match get_via(&p, &url) {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("HTTP {}: {}", r.status, r.body)),
            Err(e) => failures.push(format!("HTTP: {e}")),
        }
        requests += 1;
        match TcpStream::connect(&p.forwards[0]) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let msg = format!("churn {tunnels}\n");
                let mut back = vec![0u8; msg.len()];
                match c.write_all(msg.as_bytes()).and_then(|_| c.read_exact(&mut back)) {
                    Ok(()) if back == msg.as_bytes() => {}
                    Ok(()) => failures.push("TCP: altered echo".to_string()),
                    Err(e) => failures.push(format!("TCP: {e}")),
                }
            }
            Err(e) => failures.push(format!("TCP connect: {e}")),
        }
        tunnels += 1;
    }
    writer.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {requests} requests / {tunnels} connections failed during rule churn, e.g. {:?}\n--- stderr\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        p.stderr()
    );
    assert!(requests > 0);
    assert!(p.is_running(), "the proxy died during churn:\n{}", p.stderr());
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
    let log = p.access_log();
    let denials: Vec<&str> = log.lines().filter(|l| l.contains(" deny ")).collect();
    assert!(denials.is_empty(), "denials during churn: {denials:?}");

    // The churn was seen: the proxy reloaded at least once.
    let metrics = admin_get(&p, "/metrics").body;
    let reloads = metric(&metrics, "meshctl_proxy_reloads_total", &[]).unwrap_or(0.0);
    let revision = metric(&metrics, "meshctl_proxy_rules_revision", &[]).unwrap_or(0.0);
    assert!(reloads >= 1.0 && revision > revision_at_start, "{metrics}");
    assert_still_serving(&p, &web, "rule churn");
}

/// Whether process `pid` has exited (a zombie awaiting its parent's wait, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Whether a new connection to `addr` is still served (echoed) by the proxy.
fn still_accepting(addr: &str) -> bool {
    let Ok(mut c) = TcpStream::connect(addr) else {
        return false;
    };
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if c.write_all(b"x").is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(1))
}

#[test]
fn sigterm_stops_accepting_and_drains_open_connections() {
    let echo = echo_server();
    let s = setup(&[("db.yaml", egress_rule("db", "127.0.0.1/32", &[(echo.port, "tcp")]))]);
    let p: Proxy = s.proxy(&[
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", echo.port),
        "--drain-timeout",
        "600s",
    ]);
    let forward = p.forwards[0].clone();
    let mut open = connect(&forward);
    echo_round(&mut open, b"before SIGTERM");

    p.signal("TERM");
    let deadline = Instant::now() + WAIT;
    while still_accepting(&forward) {
        assert!(
            Instant::now() < deadline,
            "still accepting after SIGTERM:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !exited(p.pid()),
        "the proxy must wait for the open connection:\n{}",
        p.stderr()
    );
    echo_round(&mut open, b"after SIGTERM, still flowing");
    drop(open);

    // With the last connection closed the proxy exits by itself (long before its 600 s drain timeout).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exited(p.pid()) {
        assert!(Instant::now() < deadline, "no exit after the drain:\n{}", p.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr) = p.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}
