//! The least a TCP forwarder can do per connection, for `bench/l4-floor.sh`: what the kernel work of
//! a proxied connection costs without any proxy logic, to compare `meshctl proxy --forward` with.
//!
//! ```text
//! cargo run --release --example l4_floor -- --to HOST:PORT [--secs 5]
//! ```
//!
//! One thread, one epoll loop (mio), no rules, no log, no metrics, no timeouts: accept, connect to
//! `--to`, relay both ways through a buffer per direction with read/write, pass a half-close on with
//! `shutdown(Write)`, close both sockets when both directions have ended (closing a socket removes it
//! from epoll; nothing is deregistered). Listens on 127.0.0.1 (a port chosen by the OS, printed as
//! the first line: `listening on ADDR`); measures from the first connection for `--secs`, then prints
//! connections completed and this process's CPU time (user and system) per connection.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

#[path = "common/cpu.rs"]
mod cpu;

#[derive(Debug, Parser)]
#[command(about = "A minimal single-threaded TCP forwarder, as a floor for the proxy's cost per connection")]
struct Args {
    /// Where to forward every connection
    #[arg(long)]
    to: SocketAddr,
    /// Seconds to measure, from the first connection
    #[arg(long, default_value_t = 5)]
    secs: u64,
}

const LISTENER: Token = Token(0);
const BUF: usize = 16 * 1024;

/// One direction of a connection.
#[derive(Default)]
struct Half {
    /// Bytes read from the source that the destination has not taken yet (empty almost always: a
    /// direction reads into the loop's scratch buffer and keeps only what a full socket refused).
    pending: Vec<u8>,
    /// The source has ended (EOF or error).
    eof: bool,
    /// The end has been passed on to the destination.
    done: bool,
}

/// Writes `bytes` to `to`; returns how many were taken, or None on an error.
fn write_some(to: &mut TcpStream, bytes: &[u8]) -> Option<usize> {
    let mut taken = 0;
    while taken < bytes.len() {
        match to.write(bytes.get(taken..).unwrap_or_default()) {
            Ok(0) => return None,
            Ok(n) => taken += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(taken)
}

impl Half {
    /// Moves what can be moved from `from` to `to`; returns false on a write error. Reads until the
    /// socket would block (readiness is edge-triggered: a FIN that came with the last bytes brings
    /// no event of its own).
    fn pump(&mut self, from: &mut TcpStream, to: &mut TcpStream, scratch: &mut [u8]) -> bool {
        if !self.pending.is_empty() {
            let Some(taken) = write_some(to, &self.pending) else {
                return false;
            };
            self.pending.drain(..taken);
            if !self.pending.is_empty() {
                return true;
            }
        }
        loop {
            if self.eof {
                if !self.done {
                    let _ = to.shutdown(Shutdown::Write);
                    self.done = true;
                }
                return true;
            }
            match from.read(scratch) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    let bytes = scratch.get(..n).unwrap_or_default();
                    let Some(taken) = write_some(to, bytes) else {
                        return false;
                    };
                    if taken < n {
                        self.pending.extend_from_slice(bytes.get(taken..).unwrap_or_default());
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    up: Half,
    down: Half,
}

impl Conn {
    /// Relays what is ready; returns true when the connection is over.
    fn drive(&mut self, scratch: &mut [u8]) -> bool {
        let ok = self.up.pump(&mut self.client, &mut self.upstream, scratch)
            && self.down.pump(&mut self.upstream, &mut self.client, scratch);
        !ok || (self.up.done && self.down.done)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind("127.0.0.1:0".parse()?)?;
    println!("listening on {}", listener.local_addr()?);
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 2usize;
    let mut started: Option<(Instant, f64)> = None;
    let mut completed = 0u64;
    let mut scratch = vec![0u8; BUF];
    loop {
        let timeout =
            started.map(|(t, _)| (t + Duration::from_secs(args.secs)).saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            break;
        }
        poll.poll(&mut events, timeout)?;
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    let (mut client, _) = match listener.accept() {
                        Ok(pair) => pair,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e).context("accept"),
                    };
                    if started.is_none() {
                        started = Some((Instant::now(), cpu::cpu_seconds()?));
                    }
                    let Ok(mut upstream) = TcpStream::connect(args.to) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let id = next;
                    next += 2;
                    poll.registry()
                        .register(&mut client, Token(id), Interest::READABLE | Interest::WRITABLE)?;
                    poll.registry()
                        .register(&mut upstream, Token(id + 1), Interest::READABLE | Interest::WRITABLE)?;
                    conns.insert(
                        id,
                        Conn {
                            client,
                            upstream,
                            up: Half::default(),
                            down: Half::default(),
                        },
                    );
                }
                continue;
            }
            let id = event.token().0 & !1;
            let over = match conns.get_mut(&id) {
                Some(conn) => conn.drive(&mut scratch),
                None => false,
            };
            if over {
                conns.remove(&id);
                completed += 1;
            }
        }
    }
    let (_, cpu_start) = started.context("no connection came")?;
    let cpu_s = cpu::cpu_seconds()? - cpu_start;
    anyhow::ensure!(completed > 0, "no connection completed");
    println!(
        "floor: {completed} connections, {:.0} conn/s, {:.1} µs CPU per connection",
        completed as f64 / args.secs as f64,
        cpu_s / completed as f64 * 1e6
    );
    Ok(())
}
