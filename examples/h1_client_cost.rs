//! What hyper's HTTP/1 client costs per request on a keep-alive connection, next to the least a
//! client must do (write the request, read and frame the answer), for `bench/h1-cost.sh`.
//!
//! ```text
//! cargo run --release --example h1_client_cost -- ADDR [--conns 16] [--secs 4] [--rounds 6]
//! ```
//!
//! ADDR serves `GET /` with a `Content-Length` body (the benchmark's nginx origin). Each round runs
//! both clients one after the other, in an order that alternates, on one thread (as `meshctl proxy
//! --workers 1` runs its upstream side): `--conns` connections, each sending one request at a time for
//! `--secs` seconds. Printed per round and as medians: requests/s and this process's CPU time (user and
//! system, from /proc/self/stat) per request. The difference is what meshctl's proxy could save per
//! request on its upstream side by framing HTTP/1 itself instead of going through hyper's client
//! (a dispatch channel and a connection task per upstream connection).
//!
//! A third client, `hyper-inline`, is hyper's client with its connection future polled by the task
//! that sends the requests instead of a task of its own: it sizes how much of hyper's cost is the
//! hand-off between the two tasks rather than the HTTP/1 work.
//!
//! A fourth, `meshctl`, is the proxy's own upstream client (`meshctl::proxy::h1`), as the proxy uses it
//! for mesh requests: the request head written in one piece, the answer's head parsed into a `HeaderMap`
//! and its body read as `Bytes`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/cpu.rs"]
mod cpu;

#[derive(Debug, Parser)]
#[command(about = "CPU per request of hyper's HTTP/1 client against a minimal one")]
struct Args {
    /// host:port of an HTTP/1.1 server answering GET / with a Content-Length body
    addr: String,
    /// Connections, each with one request in flight
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Seconds per client per round
    #[arg(long, default_value_t = 4)]
    secs: u64,
    /// Rounds
    #[arg(long, default_value_t = 6)]
    rounds: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Hyper,
    HyperInline,
    Minimal,
    Meshctl,
}

impl Client {
    const ALL: [Client; 4] = [Client::Hyper, Client::HyperInline, Client::Minimal, Client::Meshctl];

    fn name(self) -> &'static str {
        match self {
            Client::Hyper => "hyper",
            Client::HyperInline => "hyper-inline",
            Client::Minimal => "minimal",
            Client::Meshctl => "meshctl",
        }
    }
}

async fn hyper_client(addr: String, until: Instant) -> anyhow::Result<u64> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::task::spawn_local(conn);
    let mut n = 0;
    while Instant::now() < until {
        let req = hyper::Request::get("/")
            .header(hyper::header::HOST, "reviews:9080")
            .body(Empty::<Bytes>::new())?;
        let body = sender.send_request(req).await?.into_body().collect().await?.to_bytes();
        if body.is_empty() {
            bail!("{addr} answered with an empty body");
        }
        n += 1;
    }
    Ok(n)
}

/// Hyper's client, its connection driven by this task: every request's future is polled together
/// with the connection future, so the response reaches the request without a cross-task wake-up.
async fn hyper_inline_client(addr: String, until: Instant) -> anyhow::Result<u64> {
    use std::future::Future;
    use std::task::Poll;
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let mut conn = std::pin::pin!(conn);
    let mut n = 0;
    while Instant::now() < until {
        let req = hyper::Request::get("/")
            .header(hyper::header::HOST, "reviews:9080")
            .body(Empty::<Bytes>::new())?;
        let exchange = async {
            let resp = sender.send_request(req).await?;
            resp.into_body().collect().await.map(|b| b.to_bytes())
        };
        let mut exchange = std::pin::pin!(exchange);
        let body = std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            // The connection does the I/O and hands the response over; poll the request again at
            // once to take it.
            if let Poll::Ready(Err(e)) = conn.as_mut().poll(cx) {
                return Poll::Ready(Err(e));
            }
            exchange.as_mut().poll(cx)
        })
        .await?;
        if body.is_empty() {
            bail!("{addr} answered with an empty body");
        }
        n += 1;
    }
    Ok(n)
}

async fn minimal_client(addr: String, until: Instant) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut n = 0;
    while Instant::now() < until {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: reviews:9080\r\n\r\n")
            .await?;
        let mut filled = 0;
        loop {
            let Some(free) = buf.get_mut(filled..).filter(|b| !b.is_empty()) else {
                bail!("{addr}: an answer larger than {} bytes", buf.len());
            };
            let read = stream.read(free).await?;
            if read == 0 {
                bail!("{addr} closed the connection");
            }
            filled += read;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let got = buf.get(..filled).unwrap_or_default();
            if let httparse::Status::Complete(head) = resp.parse(got)? {
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .context("an answer without Content-Length")?;
                if filled >= head + length {
                    break;
                }
            }
        }
        n += 1;
    }
    Ok(n)
}

async fn meshctl_client(addr: String, until: Instant) -> anyhow::Result<u64> {
    use meshctl::proxy::h1::{BodyState, Conn, Payload};
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let mut conn = Conn::new(stream);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, http::HeaderValue::from_static("reviews:9080"));
    let mut n = 0;
    while Instant::now() < until {
        let head = conn.send(&http::Method::GET, "/", &headers, Payload::None).await?;
        let mut state = BodyState::new(head.framing);
        let mut length = 0;
        while let Some(piece) = std::future::poll_fn(|cx| conn.poll_body(&mut state, cx)).await {
            length += piece?.len();
        }
        if length == 0 {
            bail!("{addr} answered with an empty body");
        }
        if !head.keep_alive || !conn.reusable() {
            bail!("{addr}: the connection cannot carry another request");
        }
        n += 1;
    }
    Ok(n)
}

/// One client for `secs`: (requests/s, CPU µs per request).
fn measure(args: &Args, client: Client) -> anyhow::Result<(f64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let before = cpu::cpu_seconds()?;
    let total = local.block_on(&rt, async {
        let until = Instant::now() + Duration::from_secs(args.secs);
        let tasks: Vec<_> = (0..args.conns)
            .map(|_| {
                let addr = args.addr.clone();
                tokio::task::spawn_local(async move {
                    match client {
                        Client::Hyper => hyper_client(addr, until).await,
                        Client::HyperInline => hyper_inline_client(addr, until).await,
                        Client::Minimal => minimal_client(addr, until).await,
                        Client::Meshctl => meshctl_client(addr, until).await,
                    }
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        anyhow::Ok(total)
    })?;
    let cpu_s = cpu::cpu_seconds()? - before;
    if total == 0 {
        bail!("no request completed");
    }
    Ok((total as f64 / args.secs as f64, cpu_s / total as f64 * 1e6))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let names = Client::ALL.map(Client::name);
    println!(
        "| round | {} | {} |",
        names.map(|n| format!("{n} req/s")).join(" | "),
        names.map(|n| format!("{n} CPU µs/req")).join(" | ")
    );
    println!("|---:|{}", "---:|".repeat(2 * names.len()));
    let mut results: [Vec<(f64, f64)>; Client::ALL.len()] = Default::default();
    for round in 1..=args.rounds {
        // The clients in an order rotated from round to round.
        for i in 0..Client::ALL.len() {
            let k = (i + round) % Client::ALL.len();
            let (Some(&client), Some(slot)) = (Client::ALL.get(k), results.get_mut(k)) else {
                continue;
            };
            slot.push(measure(&args, client)?);
        }
        let last: Vec<(f64, f64)> = results.iter().filter_map(|r| r.last().copied()).collect();
        let rates: Vec<String> = last.iter().map(|x| format!("{:.0}", x.0)).collect();
        let cpus: Vec<String> = last.iter().map(|x| format!("{:.2}", x.1)).collect();
        println!("| {round} | {} | {} |", rates.join(" | "), cpus.join(" | "));
    }
    let medians = results.each_ref().map(|r| median(r.iter().map(|x| x.1).collect()));
    let minimal = medians[2];
    let parts: Vec<String> = names
        .iter()
        .zip(medians)
        .map(|(n, m)| format!("{n} {m:.2} µs ({:+.2} µs against minimal)", m - minimal))
        .collect();
    println!();
    println!("medians of CPU per request: {}", parts.join(", "));
    Ok(())
}
