//! `--forward` to an IP address, carried by the proxy's epoll loops (`src/proxy/l4.rs`): bulk data
//! to a reader that stalls (the buffered and the spliced paths, back-pressure both ways), an upstream
//! that never answers the connect, and many connections spread over several worker threads; and a
//! forward to a host name, which stays on the async runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::proxy_http::{
    WAIT, admin_get, connect, echo_round, echo_server, egress_rule, metric, setup, unanswering_port, wait_log_line,
};

/// Bytes `i`, `i + 1`, ... of a pattern that does not repeat within 251 bytes, so that a lost, doubled
/// or reordered chunk shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| ((i % 251) as u8).wrapping_add(salt)).collect()
}

fn metrics(p: &crate::common::Proxy) -> String {
    admin_get(p, "/metrics").body
}

#[test]
fn a_forward_carries_bulk_data_to_readers_that_stall_intact_both_ways() {
    const UP: usize = 6_000_000;
    const DOWN: usize = 5_000_000;
    // The server has a small receive buffer, waits before reading, reads slowly, then answers with
    // DOWN bytes and closes.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(8).unwrap();
    let listener: TcpListener = socket.into();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let mut got = Vec::with_capacity(UP);
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("server read: {e}"),
            }
            if got.len() % (512 * 1024) < 4096 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        s.write_all(&pattern(DOWN, 7)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got
    });
    let s = setup(&[("tcp.yaml", egress_rule("tcp", "127.0.0.1/32", &[(port, "tcp")]))]);
    let p = s.proxy(&["--forward", &format!("127.0.0.1:0=127.0.0.1:{port}")]);

    let mut c = connect(&p.forwards[0]);
    // Without Nagle's algorithm, each small write leaves as a segment of its own.
    c.set_nodelay(true).unwrap();
    let mut w = c.try_clone().unwrap();
    // Writes smaller than the proxy's read buffer, paced so that each is read on its own (the
    // buffered path). The upstream stalls longer than the writes take and its socket's send buffer
    // holds at most 4 MB (tcp_wmem), so the proxy must hold what the upstream refuses, then pass it on.
    let writer = std::thread::spawn(move || {
        for chunk in pattern(UP, 0).chunks(8000) {
            w.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    // The client stalls too before reading the answer.
    std::thread::sleep(Duration::from_millis(200));
    let mut back = Vec::new();
    c.read_to_end(&mut back).expect("the answer, then EOF");
    writer.join().unwrap();
    let got = server.join().unwrap();
    assert!(
        got == pattern(UP, 0),
        "upstream got {} of {UP} bytes, or altered",
        got.len()
    );
    assert!(
        back == pattern(DOWN, 7),
        "client got {} of {DOWN} bytes, or altered",
        back.len()
    );

    let line = wait_log_line(&p, &[&format!("-> 127.0.0.1:{port} allow"), "sent="]);
    assert!(
        line.contains(&format!("sent={UP} received={DOWN}")) && line.contains("rule=egress-rule/default/tcp"),
        "{line}"
    );
    assert!(!line.contains("error="), "{line}");
    let m = metrics(&p);
    assert_eq!(
        metric(&m, "meshctl_proxy_bytes_total", &[("direction", "sent")]),
        Some(UP as f64)
    );
    assert_eq!(
        metric(&m, "meshctl_proxy_bytes_total", &[("direction", "received")]),
        Some(DOWN as f64)
    );
    assert_eq!(metric(&m, "meshctl_proxy_active_connections", &[]), Some(0.0), "{m}");
}

#[test]
fn a_forward_whose_upstream_never_answers_closes_the_client_at_the_connect_timeout() {
    let Some(hanging) = unanswering_port("a_forward_whose_upstream_never_answers") else {
        return;
    };
    let addr = hanging.addr;
    let s = setup(&[("tcp.yaml", egress_rule("tcp", "127.0.0.1/32", &[(addr.port(), "tcp")]))]);
    let p = s.proxy(&["--connect-timeout", "1s", "--forward", &format!("127.0.0.1:0={addr}")]);

    let started = Instant::now();
    let mut c = connect(&p.forwards[0]);
    c.write_all(b"early bytes, never delivered").unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{n} bytes from an upstream that never answered"),
    }
    let waited = started.elapsed();
    // Loose bounds: closed by the timeout, not at once and not by the test's own read timeout.
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}");
    assert!(waited < WAIT, "closed after {waited:?}");
    let line = wait_log_line(&p, &[&format!("-> {addr} allow"), "timed out"]);
    assert!(line.contains("sent=0 received=0"), "{line}");
    let m = metrics(&p);
    assert_eq!(metric(&m, "meshctl_proxy_upstream_errors_total", &[]), Some(1.0), "{m}");
    assert_eq!(metric(&m, "meshctl_proxy_active_connections", &[]), Some(0.0), "{m}");
}

#[test]
fn forwarded_connections_spread_over_several_workers_all_complete() {
    const THREADS: usize = 16;
    const EACH: usize = 25;
    let echo = echo_server();
    let s = setup(&[("tcp.yaml", egress_rule("tcp", "127.0.0.1/32", &[(echo.port, "tcp")]))]);
    let p = s.proxy(&[
        "--workers",
        "3",
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", echo.port),
    ]);
    let addr = p.forwards[0].clone();
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut c = connect(&addr);
                    echo_round(&mut c, &pattern(3000 + i, t as u8));
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    c.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty(), "bytes after the echo");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client thread failed");
    }
    let total = (THREADS * EACH) as f64;
    let deadline = Instant::now() + WAIT;
    let m = loop {
        let m = metrics(&p);
        let done = metric(&m, "meshctl_proxy_active_connections", &[]) == Some(0.0);
        if done || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        metric(&m, "meshctl_proxy_connections_total", &[("decision", "allow")]),
        Some(total),
        "{m}"
    );
    assert_eq!(metric(&m, "meshctl_proxy_active_connections", &[]), Some(0.0), "{m}");
    let lines = p.wait_log(WAIT, |log| log.lines().count() >= THREADS * EACH);
    assert_eq!(lines.lines().filter(|l| l.contains(" allow ")).count(), THREADS * EACH);
}

#[test]
fn a_forward_to_a_host_name_is_resolved_and_decided_by_host_rules() {
    let web = crate::proxy_http::http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[
        "--forward",
        &format!("127.0.0.1:0=localhost:{}", web.port()),
        "--forward",
        &format!("127.0.0.1:0=localhost:{}", crate::proxy_http::closed_port()),
    ]);
    // Allowed by the host rule: the bytes reach the server (resolved per connection).
    let mut c = connect(&p.forwards[0]);
    c.write_all(
        format!(
            "GET /named HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            web.port()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("path=/named"),
        "{answer}"
    );
    // The line is written when both sides have closed.
    drop(c);
    let line = wait_log_line(&p, &[&format!("-> localhost:{} allow", web.port())]);
    assert!(line.contains("rule=egress-rule/default/web"), "{line}");
    // No rule for the other port: closed at once and logged as denied.
    let mut d = connect(&p.forwards[1]);
    let mut rest = Vec::new();
    assert!(matches!(d.read_to_end(&mut rest), Ok(0) | Err(_)) && rest.is_empty());
    wait_log_line(&p, &[" tcp ", "-> localhost:", " deny "]);
}
