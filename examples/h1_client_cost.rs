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
    Minimal,
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
    println!("| round | hyper req/s | minimal req/s | hyper CPU µs/req | minimal CPU µs/req |");
    println!("|---:|---:|---:|---:|---:|");
    let (mut hyper, mut minimal) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [Client::Hyper, Client::Minimal]
        } else {
            [Client::Minimal, Client::Hyper]
        };
        for client in order {
            let m = measure(&args, client)?;
            match client {
                Client::Hyper => hyper.push(m),
                Client::Minimal => minimal.push(m),
            }
        }
        let (Some(h), Some(m)) = (hyper.last(), minimal.last()) else {
            continue;
        };
        println!("| {round} | {:.0} | {:.0} | {:.2} | {:.2} |", h.0, m.0, h.1, m.1);
    }
    let h = median(hyper.iter().map(|x| x.1).collect());
    let m = median(minimal.iter().map(|x| x.1).collect());
    println!();
    println!(
        "medians: hyper {h:.2} µs CPU per request, minimal {m:.2} µs; difference {:.2} µs",
        h - m
    );
    Ok(())
}
