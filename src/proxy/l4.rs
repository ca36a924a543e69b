//! The relay for fixed forwards to an IP address (`--forward LOCAL=IP:PORT`): one epoll loop per
//! worker thread carries each forwarded connection from accept to close.
//!
//! A connection through a forward needs no protocol work: decide it against the rules, connect, and
//! move bytes both ways until both sides have finished. On the async runtime that cost a task, two
//! joined futures with their wakers, a timer for the connect timeout and an explicit epoll
//! deregistration per socket; measured against a bare epoll forwarder (`bench/l4-floor.sh`), that
//! runtime work was most of what meshctl spent per connection beyond the kernel's own TCP work. Here
//! a connection is a slab entry and two registered sockets:
//!
//! - the connect timeout is a queue entry (every connection has the same timeout, so the queue is in
//!   deadline order and the loop's poll timeout is its front);
//! - small transfers go through one scratch buffer per thread with read/write (a request and its
//!   answer: two system calls per direction); once a read fills the buffer, that direction switches
//!   to splice(2) through a pipe from the per-thread pool (`splice.rs`), so bulk data never enters
//!   the proxy's memory;
//! - closing a socket removes it from epoll; nothing is deregistered one by one.
//!
//! Decisions, the access log and the counters are the ones the other listeners use (`conn.rs`).
//! A connection whose forward names a service of the registry (`--services`) is mesh traffic: the
//! same loop serves it as routed HTTP (`lane.rs`), handing to the async runtime only the requests that
//! need its machinery. A forward to a host name that is not a service is handed to the runtime, which
//! resolves the name per connection.
//!
//! Every worker thread polls all forward listeners, registered with `EPOLLEXCLUSIVE` so that a new
//! connection wakes one of them. On shutdown the listeners are closed at once and each thread exits
//! when its last connection has ended (the caller bounds the wait).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tokio::sync::watch;

use super::access_log::Entry;
use super::conn::{self, UpstreamError};
use super::splice::{CHUNK, Pipe, splice};
use super::state::Shared;
use super::{Forward, lane};

/// The scratch buffer each thread reads small transfers through. A read that fills it switches its
/// direction to splice.
const SCRATCH: usize = 16 * 1024;
/// Connections one wake-up accepts from a listener before the loop serves the others.
const ACCEPT_BATCH: usize = 64;
/// How long accepting pauses after a failure other than "nothing to accept" (out of descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

const WAKER: Token = Token(0);
/// Listeners take tokens 1..=n, below this; a connection's two sockets take tokens above it.
const FIRST_CONN: usize = 1 << KEY_SHIFT;
/// A connection's token: `tag << KEY_SHIFT | key << 1 | side`, where `tag` (never 0) comes from the
/// connection's serial number. A slab key is reused as soon as its connection ends, possibly while
/// events for the old sockets are still in the batch being handled; the tag tells them apart, so a
/// stale event never reaches (or, worse, marks connected) the connection that took the key. The
/// routed HTTP connections of `lane` use the same form with [`lane::LANE_BIT`] set (the tag takes at
/// most 32 bits above the shift, so that bit is free).
const KEY_SHIFT: u32 = 24;
pub(super) const KEY_MASK: usize = (1 << (KEY_SHIFT - 1)) - 1;

pub(super) fn conn_token(key: usize, serial: u64, upstream: bool) -> Token {
    Token((tag(serial) << KEY_SHIFT) | (key << 1) | usize::from(upstream))
}

/// The tag of a serial number: 1..=2^32-1 (0 would collide with the listeners' tokens).
pub(super) fn tag(serial: u64) -> usize {
    (serial % 0xFFFF_FFFF) as usize + 1
}

/// (slab key, tag, upstream side) of a connection's token.
pub(super) fn parse_token(t: usize) -> (usize, usize, bool) {
    ((t >> 1) & KEY_MASK, t >> KEY_SHIFT, t & 1 == 1)
}

/// A bound forward listener that the epoll loops serve.
pub struct Listener {
    pub listener: std::net::TcpListener,
    pub forward: Arc<Forward>,
    /// The forward's destination when it is an IP address, parsed once.
    pub target: Option<SocketAddr>,
    /// `host:port` as the access log shows it.
    pub dst: Arc<str>,
}

impl Listener {
    /// A listener for `forward`.
    pub fn new(listener: std::net::TcpListener, forward: Arc<Forward>) -> Listener {
        let bare = forward.host.trim_start_matches('[').trim_end_matches(']');
        let target = bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, forward.port));
        let dst = match target {
            Some(t) => t.to_string(),
            None => format!("{}:{}", conn::bracket(&forward.host), forward.port),
        };
        Listener {
            listener,
            dst: Arc::from(dst),
            forward,
            target,
        }
    }
}

/// The running loops.
pub struct Relay {
    stopping: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
}

impl Relay {
    /// Starts `workers` threads serving `listeners`. Each holds a clone of `held` until it exits, and
    /// so does every connection handed to `runtime`.
    pub fn start(
        listeners: &[Listener],
        workers: usize,
        shared: &Arc<Shared>,
        runtime: &tokio::runtime::Handle,
        held: &watch::Receiver<()>,
    ) -> io::Result<Relay> {
        let stopping = Arc::new(AtomicBool::new(false));
        let mut relay = Relay {
            stopping: stopping.clone(),
            wakers: Vec::new(),
        };
        for n in 0..workers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let mut own = Vec::with_capacity(listeners.len());
            for (i, l) in listeners.iter().enumerate() {
                let std = l.listener.try_clone()?;
                std.set_nonblocking(true)?;
                let listener = TcpListener::from_std(std);
                register_exclusive(&poll, listener.as_raw_fd(), Token(1 + i))?;
                own.push(Accepting {
                    listener: Some(listener),
                    forward: l.forward.clone(),
                    target: l.target,
                    dst: l.dst.clone(),
                    service: Arc::new(lane::Service::new(&l.forward.host, l.forward.port)),
                });
            }
            let mut worker = Worker {
                poll,
                listeners: own,
                conns: Slab::new(),
                timeouts: VecDeque::new(),
                scratch: vec![0; SCRATCH].into_boxed_slice(),
                shared: shared.clone(),
                stopping: stopping.clone(),
                runtime: runtime.clone(),
                held: held.clone(),
                paused_until: None,
                serial: 0,
                lanes: lane::Lanes::new(shared.clone(), runtime.clone(), held.clone()),
            };
            let thread = std::thread::Builder::new()
                .name(format!("meshctl-l4-{n}"))
                .spawn(move || worker.run());
            // The thread is not joined: it ends on its own once stopped and idle, and the process
            // does not wait for it past the drain timeout.
            match thread {
                Ok(_) => relay.wakers.push(waker),
                Err(e) => {
                    relay.stop();
                    return Err(e);
                }
            }
        }
        Ok(relay)
    }

    /// Stops accepting (the listeners close at once); open connections carry on until they end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            let _ = w.wake();
        }
    }
}

/// Registers a listening socket for readability with `EPOLLEXCLUSIVE` (level-triggered): when several
/// threads poll the same listener, a new connection wakes one of them, not all.
fn register_exclusive(poll: &Poll, fd: std::os::fd::RawFd, token: Token) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
        u64: token.0 as u64,
    };
    // SAFETY: both descriptors are open (the poll and the listener are alive), and `event` is a valid
    // epoll_event for the call to read.
    if unsafe { libc::epoll_ctl(poll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn deregister(poll: &Poll, fd: std::os::fd::RawFd) {
    // SAFETY: both descriptors are open; EPOLL_CTL_DEL ignores the event argument.
    unsafe {
        libc::epoll_ctl(poll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
    }
}

struct Accepting {
    /// None once the loop stops accepting.
    listener: Option<TcpListener>,
    forward: Arc<Forward>,
    target: Option<SocketAddr>,
    dst: Arc<str>,
    /// The forward's destination as a mesh service (used when the registry has it).
    service: Arc<lane::Service>,
}

struct Worker {
    poll: Poll,
    listeners: Vec<Accepting>,
    conns: Slab<Conn>,
    /// Connections still connecting, in deadline order: (deadline, slab key, serial).
    timeouts: VecDeque<(Instant, usize, u64)>,
    scratch: Box<[u8]>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    held: watch::Receiver<()>,
    stopping: Arc<AtomicBool>,
    /// Accepting is paused after a failure (out of descriptors) until then.
    paused_until: Option<Instant>,
    /// Tells a slab entry from an earlier one with the same key (for the timeout queue).
    serial: u64,
    /// Mesh traffic: routed HTTP served on this loop.
    lanes: lane::Lanes,
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut accepting = true;
        loop {
            if accepting && self.stopping.load(Ordering::SeqCst) {
                accepting = false;
                self.close_listeners();
                self.lanes.stop();
            }
            if !accepting && self.conns.is_empty() && self.lanes.is_empty() {
                return;
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("meshctl proxy: the forward loop failed: {e}");
                return;
            }
            for event in &events {
                match event.token() {
                    WAKER => {}
                    Token(t) if t & lane::LANE_BIT != 0 => self.lanes.event(self.poll.registry(), event),
                    Token(t) if t < FIRST_CONN => self.accept(t - 1),
                    Token(t) => {
                        let (key, tag, upstream_side) = parse_token(t);
                        let connect = match upstream_side {
                            false => Connect::Pending,
                            true if event.is_error() || event.is_write_closed() => Connect::Failed,
                            true if event.is_writable() => Connect::Done,
                            true => Connect::Pending,
                        };
                        self.ready(key, tag, connect);
                    }
                }
            }
            self.expire();
            self.lanes.expire(self.poll.registry());
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.timeouts.front().map(|t| t.0),
            self.paused_until,
            self.lanes.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn close_listeners(&mut self) {
        for a in &mut self.listeners {
            if let Some(l) = a.listener.take() {
                // The descriptor is a duplicate (each thread holds its own), and epoll keys a
                // registration on the open file: closing ours alone would not remove it.
                deregister(&self.poll, l.as_raw_fd());
            }
        }
    }

    fn accept(&mut self, index: usize) {
        if self.paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(a) = self.listeners.get(index) else { return };
            let Some(listener) = &a.listener else { return };
            match listener.accept() {
                Ok((client, peer)) => self.start(index, client, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of descriptors, most likely: the listener stays readable, so pause rather
                    // than spin on it.
                    eprintln!("meshctl proxy: accept failed: {e}");
                    self.pause_accepting();
                    return;
                }
            }
        }
    }

    fn pause_accepting(&mut self) {
        for a in &self.listeners {
            if let Some(l) = &a.listener {
                deregister(&self.poll, l.as_raw_fd());
            }
        }
        self.paused_until = Some(Instant::now() + ACCEPT_PAUSE);
    }

    fn resume_accepting(&mut self) {
        self.paused_until = None;
        for (i, a) in self.listeners.iter().enumerate() {
            if let Some(l) = &a.listener {
                if let Err(e) = register_exclusive(&self.poll, l.as_raw_fd(), Token(1 + i)) {
                    eprintln!("meshctl proxy: cannot resume accepting: {e}");
                }
            }
        }
    }

    /// A new client on listener `index`: decide, then connect (or serve it as mesh traffic).
    fn start(&mut self, index: usize, client: TcpStream, peer: SocketAddr) {
        let Some(a) = self.listeners.get(index) else { return };
        let forward = a.forward.clone();
        let (verdict, target) = {
            let active = self.shared.rules();
            if active.registry.lookup(&forward.host, forward.port).is_some() {
                drop(active);
                let service = a.service.clone();
                return self.lanes.accept(self.poll.registry(), client, peer, &service);
            }
            let Some(target) = a.target else {
                drop(active);
                return self.hand_to_runtime(client, peer, forward);
            };
            (conn::allow_addr(&active, target.ip(), target.port()), target)
        };
        let mut entry = Entry::new("tcp", peer, a.dst.to_string());
        let Some(rule) = verdict else {
            // Dropping the client closes it at once.
            return conn::deny(&self.shared, entry);
        };
        conn::allow(&self.shared, &mut entry, rule);
        let upstream = match TcpStream::connect(target) {
            Ok(s) => s,
            Err(e) => {
                return conn::upstream_failed(&self.shared, entry, &UpstreamError::Connect(target.to_string(), e));
            }
        };
        // TCP_NODELAY: the client inherited it from the listener; the upstream socket is new.
        let _ = upstream.set_nodelay(true);
        self.serial += 1;
        let serial = self.serial;
        let slot = self.conns.vacant_entry();
        let key = slot.key();
        if key > KEY_MASK {
            // Millions of open connections on one thread: far past the descriptor limit in practice.
            let e = io::Error::other("too many connections on one relay thread");
            return conn::upstream_failed(&self.shared, entry, &UpstreamError::Connect(target.to_string(), e));
        }
        let mut c = Conn {
            client,
            upstream,
            connected: false,
            serial,
            up: Half::default(),
            down: Half::default(),
            entry,
            error: None,
        };
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        let registered = registry
            .register(&mut c.client, conn_token(key, serial, false), both)
            .and_then(|()| registry.register(&mut c.upstream, conn_token(key, serial, true), both));
        if let Err(e) = registered {
            let target = target.to_string();
            return conn::upstream_failed(&self.shared, c.entry, &UpstreamError::Connect(target, e));
        }
        self.shared.metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        slot.insert(c);
        self.timeouts
            .push_back((Instant::now() + self.shared.connect_timeout, key, serial));
    }

    /// A forward to a host name that is not a mesh service: the runtime resolves it per connection.
    fn hand_to_runtime(&self, client: TcpStream, peer: SocketAddr, forward: Arc<Forward>) {
        // Still non-blocking, and never registered with this loop.
        let std = std::net::TcpStream::from(client);
        let shared = self.shared.clone();
        let held = self.held.clone();
        self.runtime.spawn(async move {
            let _held = held;
            let _active = shared.metrics.track();
            if let Ok(stream) = tokio::net::TcpStream::from_std(std) {
                conn::forward(stream, peer, &forward, &shared).await;
            }
        });
    }

    /// Something is ready on connection `key` (when its tag is still `tag`); `connect` is what the
    /// event says of the upstream socket's connect, which matters until it has completed.
    fn ready(&mut self, key: usize, tag: usize, connect: Connect) {
        let Some(c) = self.conns.get_mut(key).filter(|c| self::tag(c.serial) == tag) else {
            // An event for sockets of a connection that has ended.
            return;
        };
        if !c.connected {
            match connect {
                // The client spoke before the upstream answered; its bytes wait in its socket.
                Connect::Pending => return,
                // Writable and no error: connected (no getsockopt needed to tell).
                Connect::Done => c.connected = true,
                Connect::Failed => {
                    let e = match c.upstream.take_error() {
                        Ok(Some(e)) | Err(e) => e,
                        Ok(None) => io::Error::other("the connection ended before it was established"),
                    };
                    let e = UpstreamError::Connect(c.entry.dst.clone(), e);
                    return self.fail(key, &e);
                }
            }
        }
        let over = match c.drive(&mut self.scratch) {
            Ok(over) => over,
            Err(e) => {
                c.error = Some(e);
                true
            }
        };
        if over {
            self.finish(key);
        }
    }

    /// The upstream could not be reached: log it and close the client.
    fn fail(&mut self, key: usize, e: &UpstreamError) {
        if self.conns.contains(key) {
            let c = self.conns.remove(key);
            self.shared.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
            conn::upstream_failed(&self.shared, c.entry, e);
        }
    }

    /// The connection is over: close both sockets (dropping them), count and log it.
    fn finish(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let c = self.conns.remove(key);
        self.shared.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
        let Conn {
            client,
            upstream,
            up,
            down,
            mut entry,
            error,
            ..
        } = c;
        drop((client, upstream));
        entry.sent = up.moved;
        entry.received = down.moved;
        entry.error = error.map(|e| e.to_string());
        entry.finish();
        self.shared.metrics.bytes(up.moved, down.moved);
        self.shared.log.write(&entry);
    }

    /// Fails the connections whose connect timed out, and resumes a paused accept.
    fn expire(&mut self) {
        if self.timeouts.is_empty() && self.paused_until.is_none() {
            return;
        }
        let now = Instant::now();
        if self.paused_until.is_some_and(|t| t <= now) {
            self.resume_accepting();
        }
        while let Some(&(deadline, key, serial)) = self.timeouts.front() {
            let waiting = self.conns.get(key).is_some_and(|c| c.serial == serial && !c.connected);
            if waiting && deadline > now {
                break;
            }
            self.timeouts.pop_front();
            if waiting {
                let dst = self.conns.get(key).map(|c| c.entry.dst.clone()).unwrap_or_default();
                self.fail(key, &UpstreamError::Timeout(dst));
            }
        }
    }
}

/// What an event says of an upstream socket's connect.
#[derive(Clone, Copy)]
enum Connect {
    /// Nothing yet (or the event was for the client).
    Pending,
    /// Writable without an error or a hang-up: connected.
    Done,
    /// An error or a hang-up: the connect failed.
    Failed,
}

/// One forwarded connection.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    connected: bool,
    serial: u64,
    /// Client to upstream.
    up: Half,
    /// Upstream to client.
    down: Half,
    entry: Entry,
    /// What ended the relay early, if anything.
    error: Option<io::Error>,
}

/// One direction of a connection.
#[derive(Default)]
struct Half {
    /// Bytes read through the scratch buffer that the destination did not take yet.
    pending: Vec<u8>,
    /// A pipe holding `in_pipe` bytes spliced from the source, not yet into the destination.
    pipe: Option<Pipe>,
    in_pipe: usize,
    /// A read filled the scratch buffer: this direction carries bulk data and splices from now on.
    splicing: bool,
    /// The source has ended.
    eof: bool,
    /// The end has been passed on (or did not need to be).
    done: bool,
    /// Bytes the destination took.
    moved: u64,
}

impl Conn {
    /// Moves what can be moved both ways; true when the connection is over (both directions have
    /// ended). A source's end is passed on as a half-close, unless the other direction has already
    /// ended: both sockets are then about to be closed, which sends the FIN anyway.
    fn drive(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        self.up.pump(&self.client, &self.upstream, scratch)?;
        self.down.pump(&self.upstream, &self.client, scratch)?;
        if self.up.ending() {
            self.up.done = true;
            if !self.down.done {
                let _ = self.upstream.shutdown(Shutdown::Write);
            }
        }
        if self.down.ending() {
            self.down.done = true;
            if !self.up.done {
                let _ = self.client.shutdown(Shutdown::Write);
            }
        }
        Ok(self.up.done && self.down.done)
    }
}

impl Half {
    /// The source has ended and everything it sent has been passed on, but the end has not.
    fn ending(&self) -> bool {
        self.eof && !self.done && self.in_pipe == 0 && self.pending.is_empty()
    }

    /// Moves bytes from `from` to `to` until the source has nothing more for now, the destination
    /// takes nothing more for now, or the source has ended. Reads until the source would block:
    /// readiness is edge-triggered, and an end of stream that came with the last bytes brings no
    /// event of its own.
    fn pump(&mut self, from: &TcpStream, to: &TcpStream, scratch: &mut [u8]) -> io::Result<()> {
        loop {
            if self.in_pipe > 0 {
                let Some(pipe) = &self.pipe else {
                    return Err(io::Error::other("relay: bytes recorded in a pipe that is gone"));
                };
                match splice(pipe.read.as_raw_fd(), to.as_raw_fd(), self.in_pipe) {
                    // Nothing taken from a pipe that holds bytes: never loop on it.
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.in_pipe -= n;
                        self.moved += n as u64;
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if let Some(pipe) = self.pipe.take() {
                pipe.give_back();
            }
            if !self.pending.is_empty() {
                match write_some(to, &self.pending)? {
                    0 => return Ok(()),
                    n => {
                        self.pending.drain(..n);
                        self.moved += n as u64;
                        continue;
                    }
                }
            }
            if self.eof {
                return Ok(());
            }
            if self.splicing {
                let Some(pipe) = Pipe::take() else {
                    // No descriptor for a pipe: carry on through the buffer.
                    self.splicing = false;
                    continue;
                };
                match splice(from.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK) {
                    Ok(0) => {
                        pipe.give_back();
                        self.eof = true;
                    }
                    Ok(n) => {
                        self.pipe = Some(pipe);
                        self.in_pipe = n;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        pipe.give_back();
                        return Ok(());
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => pipe.give_back(),
                    // The pipe may hold bytes of nobody's now; let it close.
                    Err(e) => return Err(e),
                }
                continue;
            }
            let n = match (&*from).read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == scratch.len() {
                self.splicing = true;
            }
            let bytes = scratch.get(..n).unwrap_or_default();
            let taken = write_all_now(to, bytes)?;
            self.moved += taken as u64;
            if taken < n {
                self.pending.extend_from_slice(bytes.get(taken..).unwrap_or_default());
                return Ok(());
            }
        }
    }
}

/// One write of `bytes` to `to`: how many it took (0 when it would block).
fn write_some(to: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match (&*to).write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes as much of `bytes` as `to` takes now.
fn write_all_now(to: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut taken = 0;
    while let Some(rest) = bytes.get(taken..).filter(|r| !r.is_empty()) {
        match write_some(to, rest)? {
            0 => break,
            n => taken += n,
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_round_trip_and_stay_above_the_listeners() {
        for key in [0, 1, 2, 1000, KEY_MASK] {
            for serial in [0, 1, 2, 0xFFFF_FFFE, 0xFFFF_FFFF, 0x1_0000_0000, u64::MAX] {
                for upstream in [false, true] {
                    let t = conn_token(key, serial, upstream);
                    assert!(t.0 >= FIRST_CONN, "{key} {serial} {upstream}");
                    assert!(
                        t.0 < lane::LANE_BIT,
                        "a relay token reaches the lane's bit: {key} {serial}"
                    );
                    assert_eq!(parse_token(t.0), (key, tag(serial), upstream));
                }
            }
        }
    }

    #[test]
    fn consecutive_serials_get_different_tags() {
        for serial in [0, 1, 0xFFFF_FFFD, 0xFFFF_FFFE, 0xFFFF_FFFF, u64::MAX - 1] {
            assert_ne!(tag(serial), tag(serial + 1), "{serial}");
            assert_ne!(tag(serial), 0);
        }
    }
}
