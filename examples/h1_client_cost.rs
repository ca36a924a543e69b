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
}

impl Client {
    const ALL: [Client; 3] = [Client::Hyper, Client::HyperInline, Client::Minimal];
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
    println!(
        "| round | hyper req/s | hyper-inline req/s | minimal req/s | hyper CPU µs/req | hyper-inline CPU µs/req | minimal CPU µs/req |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut results: [Vec<(f64, f64)>; 3] = Default::default();
    for round in 1..=args.rounds {
        // The three in an order rotated from round to round.
        for i in 0..Client::ALL.len() {
            let k = (i + round) % Client::ALL.len();
            let (Some(&client), Some(slot)) = (Client::ALL.get(k), results.get_mut(k)) else {
                continue;
            };
            slot.push(measure(&args, client)?);
        }
        let [Some(h), Some(i), Some(m)] = results.each_ref().map(|r| r.last()) else {
            continue;
        };
        println!(
            "| {round} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            h.0, i.0, m.0, h.1, i.1, m.1
        );
    }
    let [h, i, m] = results.each_ref().map(|r| median(r.iter().map(|x| x.1).collect()));
    println!();
    println!(
        "medians: hyper {h:.2} µs CPU per request, hyper-inline {i:.2} µs, minimal {m:.2} µs; hyper - minimal {:.2} µs, hyper-inline - minimal {:.2} µs",
        h - m,
        i - m
    );
    Ok(())
}
