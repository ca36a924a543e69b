//! What hyper's HTTP/1 server costs per request on keep-alive connections, next to a minimal server
//! that frames HTTP/1 itself, for `bench/h1-cost.sh` (the server half of the same estimate).
//!
//! ```text
//! cargo run --release --example h1_server_cost -- hyper|minimal [--secs 4]
//! ```
//!
//! Listens on 127.0.0.1 (a port chosen by the OS, printed as the first line: `listening on ADDR`) and
//! answers every request with the same 64-byte page, on one thread (as `meshctl proxy --workers 1`
//! serves its clients). Measuring starts with the first connection and ends `--secs` later: the last
//! line gives this process's CPU time (user and system) per request answered. The load comes from
//! outside (the script runs `wrk`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "common/cpu.rs"]
mod cpu;

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Mode {
    Hyper,
    Minimal,
}

#[derive(Debug, Parser)]
#[command(about = "CPU per request of hyper's HTTP/1 server against a minimal one")]
struct Args {
    mode: Mode,
    /// Seconds to measure, from the first connection
    #[arg(long, default_value_t = 4)]
    secs: u64,
}

const PAGE: &[u8] = b"hello from the nginx origin; this static body is 64 bytes long.\n";
static ANSWERED: AtomicU64 = AtomicU64::new(0);

async fn minimal(mut stream: TcpStream) -> anyhow::Result<()> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
        PAGE.len()
    )
    .into_bytes();
    answer.extend_from_slice(PAGE);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        let Some(free) = buf.get_mut(filled..).filter(|b| !b.is_empty()) else {
            anyhow::bail!("a request head larger than {} bytes", buf.len());
        };
        let read = stream.read(free).await?;
        if read == 0 {
            return Ok(());
        }
        filled += read;
        // Every complete request in the buffer gets its answer (wrk sends one at a time).
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf.get(..filled).unwrap_or_default())? {
                httparse::Status::Complete(head) => {
                    buf.copy_within(head..filled, 0);
                    filled -= head;
                    stream.write_all(&answer).await?;
                    ANSWERED.fetch_add(1, Ordering::Relaxed);
                }
                httparse::Status::Partial => break,
            }
        }
    }
}

async fn hyper_server(stream: TcpStream) -> anyhow::Result<()> {
    let service = hyper::service::service_fn(|_req| async {
        ANSWERED.fetch_add(1, Ordering::Relaxed);
        hyper::Response::builder()
            .header(hyper::header::CONTENT_TYPE, "text/html")
            .body(Full::new(Bytes::from_static(PAGE)))
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let (first, _) = listener.accept().await?;
        let start = cpu::cpu_seconds()?;
        ANSWERED.store(0, Ordering::Relaxed);
        let serve = |stream: TcpStream| {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                // A client going away mid-request is not this measurement's concern.
                let _ = match args.mode {
                    Mode::Hyper => hyper_server(stream).await,
                    Mode::Minimal => minimal(stream).await,
                };
            });
        };
        serve(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.secs);
        while let Ok(accepted) = tokio::time::timeout_at(deadline, listener.accept()).await {
            serve(accepted.context("accept")?.0);
        }
        let cpu_s = cpu::cpu_seconds()? - start;
        let n = ANSWERED.load(Ordering::Relaxed);
        anyhow::ensure!(n > 0, "no request was answered");
        println!(
            "{:?}: {n} requests, {:.0} req/s, {:.2} µs CPU per request",
            args.mode,
            n as f64 / args.secs as f64,
            cpu_s / n as f64 * 1e6
        );
        anyhow::Ok(())
    })
}
