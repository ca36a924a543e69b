//! Routed HTTP/1.1 on the forward loop: mesh requests that come through a `--forward` to a service
//! of the registry are served by the loop's own thread, both sides framed here, without the async
//! runtime.
//!
//! On the runtime a routed request cost hyper's server (the request read into a `HeaderMap`, the
//! answer's head written from one), tokio's scheduling of the connection's task, and the answer's
//! head built into a `HeaderMap` only to be written out again: user-space work that kept meshctl level
//! with nginx rather than ahead of it (docs/BENCHMARKS.md, "Mesh routing"). Here a request is parsed
//! in place with `httparse`, matched against the service's rules on its raw fields, and written to an
//! endpoint as one buffer; the answer's head is parsed in place and written to the client with only
//! the hop-by-hop fields left out; its body is copied through (a chunked one, or one that runs to the
//! close, re-chunked, as hyper did). A client connection and its exchange are slab entries; upstream
//! connections have slab entries of their own, pooled per endpoint and thread; a request's deadline
//! and the wait for the next head are one entry of a timer heap per connection, moved only when an
//! earlier time is due (as `clock.rs` does on the runtime).
//!
//! The loop serves what most requests need: a route to a subset by weight, rewrites, appended
//! headers, the rule's timeout, balancing over the subset's endpoints, and the default circuit
//! breaker's connection and request limits. A request that needs more is handed over, with its
//! connection and the bytes already read, to the runtime's server, which serves it and the rest of
//! that connection exactly as before:
//!
//! - a RouteRule with a redirect, faults, retries, a mirror or a CORS policy;
//! - a cluster governed by a DestinationPolicy (its balancer, circuit breaker and outlier detection
//!   live in the runtime's pools);
//! - a request that is not plain HTTP/1.1 in origin form: HTTP/1.0, CONNECT, `Upgrade`, `Expect`, a
//!   chunked body, a head the parser refuses, or head and body over 64 KiB together;
//! - an endpoint named by a host name, or a cluster at its connection limit.
//!
//! The behaviour on the wire is the runtime's: the integration tests run each routing and framing case
//! both through the proxy port (runtime) and through a forward (here).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use ::http::{Method, StatusCode};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;
use tokio::sync::watch;

use super::access_log::{Decision, Entry, MeshInfo};
use super::conn::{FIRST_BYTES_TIMEOUT, UpstreamError};
use super::h1::{self, BodyState, Fields, Framing, Step};
use super::http;
use super::mesh::{self, Counted, EndpointState};
use super::routes::{Cluster, Headers, RequestFacts, RuleAction};
use super::services::FastMap;
use super::state::Shared;

/// A message's fields are marked in a `u128`, one bit per field.
const _: () = assert!(h1::MAX_HEADERS <= 128);

/// Head and body of a request the loop waits for before it hands the connection over.
const MAX_BUFFERED: usize = 64 * 1024;
/// Answer bytes waiting for a slow client beyond which the loop stops reading the endpoint.
const OUT_HIGH: usize = 64 * 1024;
/// Free space below which a read buffer grows before a read, and by how much.
const READ_MIN: usize = 2 * 1024;
const READ_GROW: usize = 16 * 1024;

/// The service a forward names, as its requests see it.
pub struct Service {
    pub host: Arc<str>,
    pub port: u16,
    /// `host:port`: the authority the forward's requests are treated as having.
    pub authority: Arc<str>,
}

impl Service {
    pub fn new(host: &str, port: u16) -> Service {
        Service {
            host: Arc::from(host),
            port,
            authority: Arc::from(format!("{host}:{port}")),
        }
    }
}

/// The loop's routed connections: clients, their exchanges, and the upstream connections.
pub struct Lanes {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    held: watch::Receiver<()>,
    clients: Slab<Client>,
    ups: Slab<Up>,
    /// Idle upstream connections (slab keys) by endpoint (the address of its `EndpointState`, which
    /// each connection keeps alive).
    idle: FastMap<usize, Vec<usize>>,
    /// (when, client key, client serial): a client connection's timer, see [`Client::armed`].
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    serial: u64,
    date: DateCache,
    stopping: bool,
}

/// What a socket's token names: a client connection or an upstream connection of this module.
/// Tokens are the forward loop's connection tokens with this bit set.
pub const LANE_BIT: usize = 1 << 62;

struct Client {
    sock: TcpStream,
    serial: u64,
    peer: SocketAddr,
    service: Arc<Service>,
    /// Bytes read from the client and not used yet.
    buf: Buf,
    /// Bytes for the client; `out[flushed..]` are not written yet.
    out: Vec<u8>,
    flushed: usize,
    readable: bool,
    writable: bool,
    /// The client's end of stream was reported: read until it comes.
    hup: bool,
    /// Close once the answer in progress is written.
    close_after: bool,
    /// When the wait for the next request head started; None while an exchange is in progress.
    waiting_since: Option<Instant>,
    /// The time this connection's entry in the timer heap is due, if it has one.
    armed: Option<Instant>,
    ex: Option<Box<Exchange>>,
    /// The request for the endpoint, built here (kept to reuse its allocation).
    request: Vec<u8>,
    /// The current request's target as the client sent it, for messages and the access log.
    target: String,
}

/// One request and its answer.
struct Exchange {
    up: usize,
    up_serial: u64,
    cluster: Arc<Cluster>,
    endpoint: Arc<EndpointState>,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    /// Until when the connect may take (a new connection only).
    connect_by: Option<Instant>,
    /// Bytes of `Client::request` written to the endpoint.
    written: usize,
    head: bool,
    /// The request may go once more on a new connection when a reused one was closed under it.
    replayable: bool,
    reused: bool,
    phase: Phase,
    status: u16,
    keep_alive: bool,
    /// The answer's body goes to the client in chunks of this module's (it came chunked, or ran to
    /// the close).
    chunked: bool,
    body_sent: u64,
    body_received: u64,
    /// The access log's record, when there is a log.
    log: Option<Box<(Entry, MeshInfo)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Head,
    Body(BodyState),
}

/// An upstream connection.
struct Up {
    sock: TcpStream,
    serial: u64,
    endpoint: Arc<EndpointState>,
    _counted: Counted,
    buf: Buf,
    uses: u64,
    connected: bool,
    readable: bool,
    writable: bool,
    /// The endpoint's end of stream was reported: read until it comes.
    hup: bool,
    /// An error or hang-up was reported before the connection was established.
    failed: bool,
    /// The client connection (key, serial) whose exchange uses it; None while idle.
    owner: Option<(usize, u64)>,
}

/// The client connection is to be closed.
struct Close;

/// What a request head led to.
enum Begin {
    /// Not all of it is in yet.
    Partial,
    /// The runtime serves it, for this reason.
    HandOver(Handover),
    Started,
    /// The client connection is to be closed.
    Close,
}

/// Why a connection was handed over to the runtime (`/metrics` counts each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Not plain HTTP/1.1 in origin form with its body in hand (see the module's comment).
    Request,
    /// The forward's service left the registry.
    Service,
    /// The RouteRule redirects, or has faults, retries, a mirror or a CORS policy.
    Rule,
    /// A DestinationPolicy governs the cluster.
    Policy,
    /// The cluster has no endpoint, or the endpoint is named by a host name.
    Endpoint,
    /// The cluster is at its request or connection limit.
    Limit,
}

impl Handover {
    pub const ALL: [Handover; 6] = [
        Handover::Request,
        Handover::Service,
        Handover::Rule,
        Handover::Policy,
        Handover::Endpoint,
        Handover::Limit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Handover::Request => "request",
            Handover::Service => "service",
            Handover::Rule => "rule",
            Handover::Policy => "policy",
            Handover::Endpoint => "endpoint",
            Handover::Limit => "limit",
        }
    }
}

/// A routed request, before its exchange starts.
struct Plan {
    cluster: Arc<Cluster>,
    endpoint: Arc<EndpointState>,
    timeout: Duration,
    /// Bytes of the client's buffer the request takes (head and body).
    consumed: usize,
    head: bool,
    replayable: bool,
    close: bool,
    body_len: u64,
    log: Option<Box<(Entry, MeshInfo)>>,
}

fn token(key: usize, serial: u64, upstream: bool) -> Token {
    Token(super::l4::conn_token(key, serial, upstream).0 | LANE_BIT)
}

impl Lanes {
    pub fn new(shared: Arc<Shared>, runtime: tokio::runtime::Handle, held: watch::Receiver<()>) -> Lanes {
        Lanes {
            shared,
            runtime,
            held,
            clients: Slab::new(),
            ups: Slab::new(),
            idle: FastMap::default(),
            timers: BinaryHeap::new(),
            serial: 0,
            date: DateCache::default(),
            stopping: false,
        }
    }

    /// No client connection is open.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// A new client connection through a forward to `service`.
    pub fn accept(&mut self, registry: &Registry, mut sock: TcpStream, peer: SocketAddr, service: &Arc<Service>) {
        self.serial += 1;
        let serial = self.serial;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if key > super::l4::KEY_MASK {
            return;
        }
        let both = Interest::READABLE | Interest::WRITABLE;
        if registry.register(&mut sock, token(key, serial, false), both).is_err() {
            return;
        }
        let now = Instant::now();
        entry.insert(Client {
            sock,
            serial,
            peer,
            service: service.clone(),
            buf: Buf::default(),
            out: Vec::new(),
            flushed: 0,
            readable: false,
            writable: true,
            hup: false,
            close_after: false,
            waiting_since: Some(now),
            armed: None,
            ex: None,
            request: Vec::new(),
            target: String::new(),
        });
        self.shared.metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        self.arm(key, now + FIRST_BYTES_TIMEOUT);
    }

    /// A readiness event for one of this module's sockets.
    pub fn event(&mut self, registry: &Registry, event: &mio::event::Event) {
        let (key, tag, upstream) = super::l4::parse_token(event.token().0 & !LANE_BIT);
        let failed = event.is_error();
        let readable = event.is_readable() || event.is_read_closed() || failed;
        let writable = event.is_writable() || event.is_write_closed() || failed;
        if upstream {
            let Some(up) = self.ups.get_mut(key).filter(|u| super::l4::tag(u.serial) == tag) else {
                return;
            };
            up.readable |= readable;
            up.writable |= writable;
            up.hup |= event.is_read_closed();
            if !up.connected && (failed || event.is_write_closed()) {
                up.failed = true;
            } else if !up.connected && event.is_writable() {
                up.connected = true;
            }
            match up.owner {
                Some((owner, _)) => self.drive(registry, owner),
                None => self.check_idle(key),
            }
        } else {
            let Some(c) = self.clients.get_mut(key).filter(|c| super::l4::tag(c.serial) == tag) else {
                return;
            };
            c.readable |= readable;
            c.writable |= writable;
            c.hup |= event.is_read_closed();
            self.drive(registry, key);
        }
    }

    /// An idle upstream connection was reported readable: the endpoint closed it (or sent something
    /// unasked); either way it is not used again.
    fn check_idle(&mut self, key: usize) {
        let Some(up) = self.ups.get_mut(key) else { return };
        let mut probe = [0u8; 1];
        let gone = up.failed
            || match (&up.sock).read(&mut probe) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    up.readable = false;
                    false
                }
                _ => true,
            };
        if gone {
            self.close_up(key);
        }
    }

    fn close_up(&mut self, key: usize) {
        if let Some(up) = self.ups.try_remove(key) {
            let ep = Arc::as_ptr(&up.endpoint) as usize;
            if let Some(list) = self.idle.get_mut(&ep) {
                list.retain(|k| *k != key);
                if list.is_empty() {
                    self.idle.remove(&ep);
                }
            }
            // Dropping the socket closes it and takes it out of epoll; `_counted` uncounts it.
        }
    }

    /// Sets a client connection's timer for `at`, unless it is set for earlier already.
    fn arm(&mut self, key: usize, at: Instant) {
        let Some(c) = self.clients.get_mut(key) else { return };
        if c.armed.is_none_or(|a| at < a) {
            c.armed = Some(at);
            self.timers.push(Reverse((at, key, c.serial)));
        }
    }

    /// When the loop must wake for a timer next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Handles the timers that are due: a request past its deadline is answered 504, a connection that
    /// waited too long for a request head is closed.
    pub fn expire(&mut self, registry: &Registry) {
        let now = Instant::now();
        while let Some(&Reverse((at, key, serial))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self
                .clients
                .get_mut(key)
                .filter(|c| c.serial == serial && c.armed == Some(at))
            else {
                continue;
            };
            c.armed = None;
            let due = match &c.ex {
                Some(ex) if matches!(ex.phase, Phase::Body(_)) => None,
                Some(ex) => Some(ex.connect_by.map_or(ex.deadline, |c| c.min(ex.deadline))),
                None => c.waiting_since.map(|w| w + FIRST_BYTES_TIMEOUT),
            };
            match due {
                None => {}
                Some(due) if due > now => self.arm(key, due),
                Some(_) if c.ex.is_some() => {
                    self.time_out(key, now);
                    self.drive(registry, key);
                }
                Some(_) => self.close(key),
            }
        }
    }

    /// The exchange of `key` ran out of time before its answer's head.
    fn time_out(&mut self, key: usize, now: Instant) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let Some(ex) = c.ex.as_ref() else { return };
        let connect_timed_out = ex.connect_by.is_some_and(|by| by <= now && by < ex.deadline);
        let (status, body) = if connect_timed_out && ex.phase == Phase::Connecting {
            let e = UpstreamError::Timeout(ex.endpoint.address.clone());
            self.shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            (
                e.http_status(),
                format!("meshctl proxy: {}: {e}\n", ex.endpoint.address),
            )
        } else {
            let body = format!(
                "meshctl proxy: upstream request timeout: http://{}{} took longer than {}\n",
                c.service.authority,
                c.target,
                humantime::format_duration(ex.timeout)
            );
            (StatusCode::GATEWAY_TIMEOUT, body)
        };
        self.answer_local(key, status, &body, false);
    }

    /// Stops: idle client connections close now, the others after their answer; idle upstream
    /// connections close.
    pub fn stop(&mut self) {
        self.stopping = true;
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(c) = self.clients.get_mut(key) else { continue };
            c.close_after = true;
            if c.ex.is_none() && c.flushed == c.out.len() {
                self.close(key);
            }
        }
        let idle: Vec<usize> = self.idle.values().flatten().copied().collect();
        for key in idle {
            self.close_up(key);
        }
    }

    /// Closes a client connection, and the upstream connection of its exchange, if any.
    fn close(&mut self, key: usize) {
        let Some(c) = self.clients.try_remove(key) else { return };
        self.shared.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(ex) = c.ex {
            // An exchange cut short: the endpoint's connection is in an unknown state.
            if self.ups.get(ex.up).is_some_and(|u| u.serial == ex.up_serial) {
                self.close_up(ex.up);
            }
            self.end_exchange(*ex);
        }
    }

    /// Hands a client connection, and what it sent that was not used, to the runtime's server.
    fn hand_over(&mut self, registry: &Registry, key: usize) {
        let Some(mut c) = self.clients.try_remove(key) else {
            return;
        };
        let _ = registry.deregister(&mut c.sock);
        self.shared.metrics.active_connections.fetch_sub(1, Ordering::Relaxed);
        let early = c.buf.bytes().to_vec();
        let std = std::net::TcpStream::from(c.sock);
        let shared = self.shared.clone();
        let held = self.held.clone();
        let mode = http::Mode::Service {
            host: c.service.host.clone(),
            port: c.service.port,
            authority: c.service.authority.clone(),
        };
        let peer = c.peer;
        self.runtime.spawn(async move {
            let _held = held;
            let _active = shared.metrics.track();
            if let Ok(stream) = tokio::net::TcpStream::from_std(std) {
                Box::pin(http::serve_handed_over(stream, early, peer, mode, shared.clone())).await;
            }
        });
    }

    /// Moves client connection `key` and its exchange on as far as its sockets allow. What is for the
    /// client is written once nothing else can move, so that an answer's head and body (and the
    /// answers to pipelined requests) leave in one write.
    fn drive(&mut self, registry: &Registry, key: usize) {
        loop {
            let r = match self.turn(registry, key) {
                Ok(false) => match self.clients.get_mut(key) {
                    Some(c) => flush(c),
                    None => return,
                },
                r => r,
            };
            match r {
                Ok(true) => {}
                Ok(false) => return,
                Err(Close) => return self.close(key),
            }
        }
    }

    /// One round of work on a connection, short of writing to the client; whether anything moved.
    fn turn(&mut self, registry: &Registry, key: usize) -> Result<bool, Close> {
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(false);
        };
        let mut moved = false;
        if c.ex.is_some() {
            return self.exchange(registry, key);
        }
        if c.flushed < c.out.len() {
            return Ok(false);
        }
        if c.close_after {
            return Err(Close);
        }
        match self.begin(registry, key) {
            Begin::Started => return Ok(true),
            Begin::HandOver(why) => {
                if let Some(n) = self.shared.metrics.forward_handovers.get(why as usize) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                self.hand_over(registry, key);
                return Ok(false);
            }
            Begin::Close => return Err(Close),
            Begin::Partial => {}
        }
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(false);
        };
        if c.readable || c.hup {
            match c.buf.fill(&c.sock, &mut c.readable) {
                // The client ended its side between requests (or in the middle of a head, which
                // gets no answer).
                Ok(Some(0)) => return Err(Close),
                Ok(Some(_)) => moved = true,
                Ok(None) => {}
                Err(_) => return Err(Close),
            }
        }
        Ok(moved)
    }

    /// Reads a request head at the front of the client's buffer and starts its exchange.
    fn begin(&mut self, registry: &Registry, key: usize) -> Begin {
        let Some(c) = self.clients.get_mut(key) else {
            return Begin::Close;
        };
        let plan = match plan(c, &self.shared) {
            Ok(p) => p,
            Err(b) => return b,
        };
        let ep = Arc::as_ptr(&plan.endpoint) as usize;
        // An idle connection to the endpoint, else a new one within the cluster's limit.
        let mut reused = None;
        while let Some(k) = self.idle.get_mut(&ep).and_then(Vec::pop) {
            match self.ups.get(k) {
                Some(up) if !up.failed && up.buf.bytes().is_empty() => {
                    reused = Some(k);
                    break;
                }
                _ => self.close_up(k),
            }
        }
        let (up_key, connect_by) = match reused {
            Some(k) => (k, None),
            None => {
                // At the connection limit, an idle connection of this loop to another endpoint of the
                // cluster makes room (as the runtime's pools do).
                let counted = Counted::open(&plan.cluster).or_else(|| {
                    self.evict_idle(&plan.cluster)
                        .then(|| Counted::open(&plan.cluster))
                        .flatten()
                });
                let Some(counted) = counted else {
                    return Begin::HandOver(Handover::Limit);
                };
                match self.open(registry, &plan.endpoint, counted) {
                    Ok(k) => (k, Some(Instant::now() + self.shared.connect_timeout)),
                    Err(e) => {
                        let e = UpstreamError::Connect(plan.endpoint.address.clone(), e);
                        return self.start_failed(key, plan, &e);
                    }
                }
            }
        };
        self.start(key, plan, up_key, connect_by);
        Begin::Started
    }

    /// Closes one idle connection of this loop to an endpoint of `cluster`; whether there was one.
    fn evict_idle(&mut self, cluster: &Cluster) -> bool {
        for e in &cluster.endpoints {
            let ep = Arc::as_ptr(e) as usize;
            if let Some(k) = self.idle.get_mut(&ep).and_then(Vec::pop) {
                self.close_up(k);
                return true;
            }
        }
        false
    }

    /// A new connection to `endpoint`, connecting.
    fn open(&mut self, registry: &Registry, endpoint: &Arc<EndpointState>, counted: Counted) -> io::Result<usize> {
        let Some(addr) = endpoint.ip else {
            return Err(io::Error::other("the endpoint has no IP address"));
        };
        let mut sock = TcpStream::connect(addr)?;
        let _ = sock.set_nodelay(true);
        self.serial += 1;
        let serial = self.serial;
        let entry = self.ups.vacant_entry();
        let k = entry.key();
        if k > super::l4::KEY_MASK {
            return Err(io::Error::other("too many upstream connections on one thread"));
        }
        registry.register(
            &mut sock,
            token(k, serial, true),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Up {
            sock,
            serial,
            endpoint: endpoint.clone(),
            _counted: counted,
            buf: Buf::default(),
            uses: 0,
            connected: false,
            readable: false,
            writable: false,
            hup: false,
            failed: false,
            owner: None,
        });
        Ok(k)
    }

    /// Starts the exchange of a planned request on upstream connection `up_key`.
    fn start(&mut self, key: usize, plan: Plan, up_key: usize, connect_by: Option<Instant>) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let Some(up) = self.ups.get_mut(up_key) else { return };
        up.owner = Some((key, c.serial));
        c.buf.consume(plan.consumed);
        c.close_after |= plan.close || self.stopping;
        c.waiting_since = None;
        mesh::in_flight(&plan.cluster, &plan.endpoint, true);
        self.shared.metrics.request(true);
        let started = Instant::now();
        let deadline = started + plan.timeout;
        let phase = if up.connected {
            Phase::Sending
        } else {
            Phase::Connecting
        };
        c.ex = Some(Box::new(Exchange {
            up: up_key,
            up_serial: up.serial,
            reused: up.uses > 0,
            cluster: plan.cluster,
            endpoint: plan.endpoint,
            started,
            deadline,
            timeout: plan.timeout,
            connect_by,
            written: 0,
            head: plan.head,
            replayable: plan.replayable,
            phase,
            status: 0,
            keep_alive: false,
            chunked: false,
            body_sent: plan.body_len,
            body_received: 0,
            log: plan.log,
        }));
        let due = connect_by.map_or(deadline, |c| c.min(deadline));
        self.arm(key, due);
    }

    /// A planned request whose connection could not even be opened: answered here, and counted as
    /// the endpoint's failure (as the runtime counts a failed connect).
    fn start_failed(&mut self, key: usize, plan: Plan, e: &UpstreamError) -> Begin {
        let Some(c) = self.clients.get_mut(key) else {
            return Begin::Close;
        };
        c.buf.consume(plan.consumed);
        c.close_after |= plan.close;
        self.shared.metrics.request(true);
        self.shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
        mesh::in_flight(&plan.cluster, &plan.endpoint, true);
        let status = e.http_status();
        let body = format!("meshctl proxy: {}: {e}\n", plan.endpoint.address);
        let started = Instant::now();
        let ex = Exchange {
            up: usize::MAX,
            up_serial: 0,
            cluster: plan.cluster,
            endpoint: plan.endpoint,
            started,
            deadline: started,
            timeout: plan.timeout,
            connect_by: None,
            written: 0,
            head: plan.head,
            replayable: false,
            reused: false,
            phase: Phase::Connecting,
            status: 0,
            keep_alive: false,
            chunked: false,
            body_sent: 0,
            body_received: 0,
            log: plan.log,
        };
        c.ex = Some(Box::new(ex));
        c.waiting_since = None;
        self.answer_local(key, status, &body, false);
        Begin::Started
    }

    /// Moves an exchange on; whether anything moved.
    fn exchange(&mut self, registry: &Registry, key: usize) -> Result<bool, Close> {
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(false);
        };
        let Some(ex) = c.ex.as_mut() else { return Ok(false) };
        let Some(up) = self.ups.get_mut(ex.up).filter(|u| u.serial == ex.up_serial) else {
            return Err(Close);
        };
        match ex.phase {
            Phase::Connecting => {
                if up.failed {
                    let e = match up.sock.take_error() {
                        Ok(Some(e)) | Err(e) => e,
                        Ok(None) => io::Error::other("the connection ended before it was established"),
                    };
                    let e = UpstreamError::Connect(ex.endpoint.address.clone(), e);
                    let body = format!("meshctl proxy: {}: {e}\n", ex.endpoint.address);
                    self.shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let up = ex.up;
                    self.close_up(up);
                    self.answer_local(key, e.http_status(), &body, false);
                    return Ok(true);
                }
                if !up.connected {
                    return Ok(false);
                }
                ex.phase = Phase::Sending;
                ex.connect_by = None;
                Ok(true)
            }
            Phase::Sending => {
                if !up.writable {
                    return Ok(false);
                }
                let rest = c.request.get(ex.written..).unwrap_or_default();
                match (&up.sock).write(rest) {
                    Ok(n) => {
                        ex.written += n;
                        if ex.written == c.request.len() {
                            ex.phase = Phase::Head;
                        }
                        Ok(true)
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        up.writable = false;
                        Ok(false)
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
                    Err(e) => {
                        let before_answer = h1::Error::Io(e);
                        self.failed_before_answer(registry, key, &before_answer);
                        Ok(true)
                    }
                }
            }
            Phase::Head => match read_head(&mut c.out, c.close_after, ex, up, &mut self.date) {
                Ok(HeadRead::Done) => {
                    if matches!(ex.phase, Phase::Body(BodyState::Done)) {
                        self.finish(key, true);
                    }
                    Ok(true)
                }
                Ok(HeadRead::Interim) => Ok(true),
                Ok(HeadRead::More) => {
                    if !(up.readable || up.hup) {
                        return Ok(false);
                    }
                    match up.buf.fill(&up.sock, &mut up.readable) {
                        Ok(None) => Ok(false),
                        Ok(Some(0)) if up.buf.bytes().is_empty() => {
                            self.failed_before_answer(registry, key, &h1::Error::Closed);
                            Ok(true)
                        }
                        Ok(Some(0)) => {
                            let e = h1::Error::Invalid("the connection closed in the middle of its head".into());
                            self.failed_before_answer(registry, key, &e);
                            Ok(true)
                        }
                        Ok(Some(_)) => Ok(true),
                        Err(e) => {
                            self.failed_before_answer(registry, key, &h1::Error::Io(e));
                            Ok(true)
                        }
                    }
                }
                Err(answer) => {
                    let up = ex.up;
                    self.close_up(up);
                    self.shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    self.answer_local(key, StatusCode::BAD_GATEWAY, &answer, false);
                    Ok(true)
                }
            },
            Phase::Body(mut state) => {
                if c.out.len() - c.flushed > OUT_HIGH {
                    return Ok(false);
                }
                let step = h1::step(&mut state, up.buf.bytes());
                ex.phase = Phase::Body(state);
                match step {
                    Ok(Step::Data(n)) => {
                        let data = up.buf.bytes().get(..n).unwrap_or_default();
                        if ex.chunked {
                            let mut line = [0u8; 18];
                            let len = h1::hex_line(n, &mut line);
                            c.out.extend_from_slice(line.get(..len).unwrap_or_default());
                            c.out.extend_from_slice(data);
                            c.out.extend_from_slice(b"\r\n");
                        } else {
                            c.out.extend_from_slice(data);
                        }
                        ex.body_received += n as u64;
                        up.buf.consume(n);
                        if state.is_done() {
                            self.finish(key, true);
                        }
                        Ok(true)
                    }
                    Ok(Step::Framing(n)) => {
                        up.buf.consume(n);
                        if state.is_done() {
                            self.finish(key, true);
                        }
                        Ok(true)
                    }
                    Ok(Step::Done) => {
                        self.finish(key, true);
                        Ok(true)
                    }
                    Ok(Step::More) => {
                        if !(up.readable || up.hup) {
                            return Ok(false);
                        }
                        match up.buf.fill(&up.sock, &mut up.readable) {
                            Ok(None) => Ok(false),
                            Ok(Some(0)) => match h1::at_close(&mut state) {
                                None => {
                                    ex.phase = Phase::Body(state);
                                    ex.keep_alive = false;
                                    self.finish(key, true);
                                    Ok(true)
                                }
                                Some(e) => self.cut(key, &e.to_string()),
                            },
                            Ok(Some(_)) => Ok(true),
                            Err(e) => self.cut(key, &e.to_string()),
                        }
                    }
                    Err(e) => self.cut(key, &e.to_string()),
                }
            }
        }
    }

    /// The answer's body failed after its head went to the client: nothing can be said to the
    /// client any more but the close.
    fn cut(&mut self, key: usize, why: &str) -> Result<bool, Close> {
        if let Some(ex) = self.clients.get_mut(key).and_then(|c| c.ex.as_mut()) {
            if let Some(log) = ex.log.as_mut() {
                log.0.error = Some(format!("upstream body: {why}"));
            }
        }
        Err(Close)
    }

    /// The request failed before any answer came: a reused connection closed under it goes once more
    /// on a new one, when that is safe; anything else is the endpoint's failure, a 502.
    fn failed_before_answer(&mut self, registry: &Registry, key: usize, e: &h1::Error) {
        let Some(ex) = self.clients.get_mut(key).and_then(|c| c.ex.as_mut()) else {
            return;
        };
        let old = ex.up;
        let stale = e.before_any_answer() && ex.reused && ex.replayable;
        ex.replayable = false;
        ex.reused = false;
        let (endpoint, cluster) = (ex.endpoint.clone(), ex.cluster.clone());
        self.close_up(old);
        if stale {
            let opened = Counted::open(&cluster).map(|counted| self.open(registry, &endpoint, counted));
            if let Some(Ok(k)) = opened {
                let Some(c) = self.clients.get_mut(key) else { return };
                let Some(ex) = c.ex.as_mut() else { return };
                let Some(up) = self.ups.get_mut(k) else { return };
                up.owner = Some((key, c.serial));
                ex.up = k;
                ex.up_serial = up.serial;
                ex.written = 0;
                ex.phase = Phase::Connecting;
                let by = Instant::now() + self.shared.connect_timeout;
                ex.connect_by = Some(by);
                self.arm(key, by);
                return;
            }
        }
        let Some(ex) = self.clients.get_mut(key).and_then(|c| c.ex.as_mut()) else {
            return;
        };
        self.shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
        let body = format!("meshctl proxy: {}: the upstream failed: {e}\n", ex.endpoint.address);
        self.answer_local(key, StatusCode::BAD_GATEWAY, &body, false);
    }

    /// Answers the exchange of `key` from here (the endpoint's connection, if any, is closed) and
    /// ends it.
    fn answer_local(&mut self, key: usize, status: StatusCode, body: &str, overloaded: bool) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let Some(ex) = c.ex.as_mut() else { return };
        let up = ex.up;
        ex.status = status.as_u16();
        ex.keep_alive = false;
        ex.phase = Phase::Body(BodyState::Done);
        let out = &mut c.out;
        status_line(out, status);
        out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
        if overloaded {
            out.extend_from_slice(b"x-meshctl-overloaded: true\r\n");
        }
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(h1::itoa_u64(body.len() as u64, &mut [0u8; 20]));
        out.extend_from_slice(b"\r\n");
        self.date.write(out);
        if c.close_after {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !ex.head {
            out.extend_from_slice(body.as_bytes());
        }
        self.close_up(up);
        self.finish(key, false);
    }

    /// Ends the exchange of `key`: its upstream connection back to the pool when it ended cleanly and
    /// may carry another request, the figures counted, the log line written.
    fn finish(&mut self, key: usize, clean: bool) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let Some(ex) = c.ex.take() else { return };
        let now = Instant::now();
        c.waiting_since = Some(now);
        if ex.chunked && clean {
            c.out.extend_from_slice(b"0\r\n\r\n");
        }
        if let Some(up) = self.ups.get_mut(ex.up).filter(|u| u.serial == ex.up_serial) {
            up.uses += 1;
            up.owner = None;
            let max = ex.cluster.policy.max_requests_per_connection;
            let keep = clean && ex.keep_alive && max.is_none_or(|m| up.uses < m) && up.buf.bytes().is_empty();
            if keep && !self.stopping {
                self.idle
                    .entry(Arc::as_ptr(&up.endpoint) as usize)
                    .or_default()
                    .push(ex.up);
            } else {
                let k = ex.up;
                self.close_up(k);
            }
        }
        self.arm(key, now + FIRST_BYTES_TIMEOUT);
        self.end_exchange(*ex);
    }

    /// The figures and the log line of an exchange that ended.
    fn end_exchange(&mut self, ex: Exchange) {
        let status = if ex.status == 0 { 499 } else { ex.status };
        ex.cluster.state.record(status, ex.started.elapsed());
        mesh::in_flight(&ex.cluster, &ex.endpoint, false);
        self.shared.metrics.bytes(ex.body_sent, ex.body_received);
        if let Some(log) = ex.log {
            let (mut entry, info) = *log;
            entry.status = Some(status);
            entry.sent = ex.body_sent;
            entry.received = ex.body_received;
            entry.mesh = Some(Box::new(info));
            entry.finish();
            self.shared.log.write(&entry);
        }
    }
}

/// Writes what is waiting for the client; whether anything was written.
fn flush(c: &mut Client) -> Result<bool, Close> {
    let mut moved = false;
    while c.flushed < c.out.len() && c.writable {
        match (&c.sock).write(c.out.get(c.flushed..).unwrap_or_default()) {
            Ok(0) => return Err(Close),
            Ok(n) => {
                c.flushed += n;
                moved = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => c.writable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Close),
        }
    }
    if c.flushed == c.out.len() && c.flushed > 0 {
        c.out.clear();
        c.flushed = 0;
    }
    Ok(moved)
}

/// A read buffer: `data[at..end]` are the bytes read and not used yet. The space is initialised once,
/// when it grows, so that a read never clears it first.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    at: usize,
    end: usize,
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        self.data.get(self.at..self.end).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.at = self.at.saturating_add(n).min(self.end);
        if self.at == self.end {
            self.at = 0;
            self.end = 0;
        }
    }

    /// Reads what `sock` has (making room as needed): the count, 0 at the end of the stream, None when
    /// there was nothing to read. A read that leaves free space took all the socket had, so `readable`
    /// is cleared without one more read that would fail with `EAGAIN`: the socket is registered
    /// edge-triggered, and a later arrival raises a new event.
    fn fill(&mut self, sock: &TcpStream, readable: &mut bool) -> io::Result<Option<usize>> {
        if self.data.len() - self.end < READ_MIN {
            if self.at > 0 {
                self.data.copy_within(self.at..self.end, 0);
                self.end -= self.at;
                self.at = 0;
            }
            if self.data.len() - self.end < READ_MIN {
                self.data.resize(self.data.len() + READ_GROW, 0);
            }
        }
        let free = self.data.len() - self.end;
        loop {
            match (&*sock).read(self.data.get_mut(self.end..).unwrap_or_default()) {
                Ok(n) => {
                    self.end += n;
                    if n < free {
                        *readable = false;
                    }
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    *readable = false;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses the request head at the front of the client's buffer, routes it, and writes the request
/// for the endpoint into `c.request`. `Err` says why it is not started here.
fn plan(c: &mut Client, shared: &Shared) -> Result<Plan, Begin> {
    let Client {
        buf,
        request,
        target,
        service,
        peer,
        ..
    } = c;
    let data = buf.bytes();
    if data.is_empty() {
        return Err(Begin::Partial);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; h1::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, data, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if data.len() <= h1::MAX_HEAD => return Err(Begin::Partial),
        _ => return Err(Begin::HandOver(Handover::Request)),
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Err(Begin::HandOver(Handover::Request));
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Err(Begin::HandOver(Handover::Request));
    }
    // One pass over the fields: what framing depends on, and which fields go on to the endpoint
    // (end to end, and neither Host nor Content-Length, which are written below).
    let mut fields = Fields::default();
    let mut passed: u128 = 0;
    for (i, f) in req.headers.iter().enumerate() {
        let name = f.name.as_bytes();
        let special = (name.len() == 7 && name.eq_ignore_ascii_case(b"upgrade"))
            || (name.len() == 6 && name.eq_ignore_ascii_case(b"expect"));
        if special {
            return Err(Begin::HandOver(Handover::Request));
        }
        let end_to_end = fields.add(name, f.value);
        let written_here = (name.len() == 4 && name.eq_ignore_ascii_case(b"host"))
            || (name.len() == 14 && name.eq_ignore_ascii_case(b"content-length"));
        if end_to_end && !written_here {
            passed |= 1 << i;
        }
    }
    let body_len = match &fields.content_length {
        _ if fields.transfer_encoding.is_some() => return Err(Begin::HandOver(Handover::Request)),
        Some(Err(_)) => return Err(Begin::HandOver(Handover::Request)),
        Some(Ok(n)) => *n,
        None => 0,
    };
    let Ok(body) = usize::try_from(body_len) else {
        return Err(Begin::HandOver(Handover::Request));
    };
    let consumed = head_len.saturating_add(body);
    if consumed > data.len() {
        return Err(if consumed > MAX_BUFFERED {
            Begin::HandOver(Handover::Request)
        } else {
            Begin::Partial
        });
    }

    // The route.
    let active = shared.rules();
    let Some(svc) = active.registry.lookup(&service.host, service.port) else {
        return Err(Begin::HandOver(Handover::Service));
    };
    let Some(routes) = active.routes.service(svc.fqdn()) else {
        return Err(Begin::HandOver(Handover::Service));
    };
    let path_only = path.split_once('?').map_or(path, |(p, _)| p);
    let rule = routes.select(&RequestFacts {
        method,
        path: path_only,
        authority: &service.authority,
        headers: Headers::Raw(req.headers),
    });
    let (action, uri_prefix, rule_id) = match rule {
        Some(r) => match &r.action {
            RuleAction::Route(a) => (a, r.uri_prefix.as_deref(), Some(&r.id)),
            RuleAction::Redirect { .. } => return Err(Begin::HandOver(Handover::Rule)),
        },
        None => (&routes.fallback, None, None),
    };
    let plain = action.cors.is_none()
        && action.delay.is_none()
        && action.abort.is_none()
        && action.mirror.is_none()
        && action.retry.as_ref().is_none_or(|r| r.attempts == 0);
    if !plain {
        return Err(Begin::HandOver(Handover::Rule));
    }
    let cluster = action.pick();
    if cluster.endpoints.is_empty() {
        return Err(Begin::HandOver(Handover::Endpoint));
    }
    if cluster.policy.id.is_some() {
        return Err(Begin::HandOver(Handover::Policy));
    }
    if mesh::at_max_requests(cluster) {
        return Err(Begin::HandOver(Handover::Limit));
    }
    let endpoint = mesh::pick(cluster);
    if endpoint.ip.is_none() {
        return Err(Begin::HandOver(Handover::Endpoint));
    }
    let timeout = action
        .timeout_header
        .as_ref()
        .and_then(|h| req.headers.iter().find(|f| f.name.eq_ignore_ascii_case(h.as_str())))
        .and_then(|f| std::str::from_utf8(f.value).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(action.timeout, Duration::from_millis);

    // The request for the endpoint: origin form (rewritten if the rule says so), the authority as
    // Host, the end-to-end fields as the client sent them, the rule's fields, the body's length.
    request.clear();
    request.extend_from_slice(method.as_bytes());
    request.push(b' ');
    match &action.rewrite_uri {
        Some(new) => request.extend_from_slice(mesh::rewrite_path(path, uri_prefix, new).as_bytes()),
        None => request.extend_from_slice(path.as_bytes()),
    }
    request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    let host = action.rewrite_authority.as_deref().unwrap_or(&service.authority);
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(b"\r\n");
    for (i, f) in req.headers.iter().enumerate() {
        let name = f.name.as_bytes();
        if passed & (1 << i) == 0 || named_by_connection(&fields, name) {
            continue;
        }
        request.extend_from_slice(name);
        request.extend_from_slice(b": ");
        request.extend_from_slice(f.value);
        request.extend_from_slice(b"\r\n");
    }
    for (k, v) in &action.append_headers {
        request.extend_from_slice(k.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(v.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    // A body-less GET says nothing; a body-less POST, PUT or PATCH says its length is 0 (as the
    // runtime's client does).
    let announce = body_len > 0 || fields.content_length.is_some() || matches!(method, "POST" | "PUT" | "PATCH");
    if announce {
        request.extend_from_slice(b"content-length: ");
        request.extend_from_slice(h1::itoa_u64(body_len, &mut [0u8; 20]));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(data.get(head_len..consumed).unwrap_or_default());

    target.clear();
    target.push_str(path);
    let idempotent = matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE");
    let log = shared.log.enabled().then(|| {
        let mut entry = Entry::new("http", *peer, format!("{}:{}", svc.fqdn(), svc.port));
        entry.method = Some(method.to_string());
        entry.url = Some(format!("http://{}{path}", service.authority));
        entry.decision = Decision::Allow;
        entry.rule = rule_id.cloned();
        let info = MeshInfo {
            service: format!("{}:{}", svc.fqdn(), svc.port),
            subset: cluster.subset.clone(),
            upstream: Some(endpoint.address.clone()),
            ..MeshInfo::default()
        };
        Box::new((entry, info))
    });
    Ok(Plan {
        cluster: cluster.clone(),
        endpoint,
        timeout,
        consumed,
        head: method == "HEAD",
        replayable: idempotent && body_len == 0,
        close: fields.close,
        body_len,
        log,
    })
}

/// Whether a `Connection` field of the message names the field `name` (which then belongs to the
/// hop too).
fn named_by_connection(fields: &Fields<'_>, name: &[u8]) -> bool {
    fields.connection_names.iter().any(|value| {
        value
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|token| token.eq_ignore_ascii_case(name))
    })
}

enum HeadRead {
    /// The head was read and written to the client; the exchange is in its body phase.
    Done,
    /// An interim answer was skipped.
    Interim,
    More,
}

/// Reads the answer's head at the front of the upstream buffer and writes the client's head.
/// `Err` is the body of the 502 that answers an unusable head.
fn read_head(
    out: &mut Vec<u8>,
    close_after: bool,
    ex: &mut Exchange,
    up: &mut Up,
    date: &mut DateCache,
) -> Result<HeadRead, String> {
    let data = up.buf.bytes();
    if data.is_empty() {
        return Ok(HeadRead::More);
    }
    let invalid = |why: String| {
        format!(
            "meshctl proxy: {}: the upstream failed: invalid answer: {why}\n",
            ex.endpoint.address
        )
    };
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; h1::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, data, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if data.len() > h1::MAX_HEAD => {
            return Err(invalid(format!("its head is over {} KiB", h1::MAX_HEAD / 1024)));
        }
        Ok(httparse::Status::Partial) => return Ok(HeadRead::More),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid(format!("more than {} header fields", h1::MAX_HEADERS)));
        }
        Err(e) => return Err(invalid(e.to_string())),
    };
    let code = resp.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!(
            "meshctl proxy: {}: the upstream switched protocols without being asked to\n",
            ex.endpoint.address
        ));
    }
    if status.is_informational() {
        up.buf.consume(len);
        return Ok(HeadRead::Interim);
    }
    let mut fields = Fields::default();
    let mut kept: u128 = 0;
    let mut dated = false;
    for (i, f) in resp.headers.iter().enumerate() {
        let name = f.name.as_bytes();
        if fields.add(name, f.value) {
            kept |= 1 << i;
        }
        dated |= name.len() == 4 && name.eq_ignore_ascii_case(b"date");
    }
    let method = if ex.head { Method::HEAD } else { Method::GET };
    let framing =
        h1::framing(&method, status, &fields).map_err(|e| invalid(e.to_string().replace("invalid answer: ", "")))?;
    let both = fields.transfer_encoding.is_some() && fields.content_length.is_some();
    let smuggled = both && framing != Framing::Empty;
    ex.keep_alive = match resp.version {
        Some(1) => !fields.close,
        _ => !fields.close && fields.keep_alive,
    } && !smuggled
        && matches!(framing, Framing::Empty | Framing::Length(_) | Framing::Chunked);
    ex.chunked = matches!(framing, Framing::Chunked | Framing::UntilClose);
    ex.status = code;

    status_line(out, status);
    for (i, f) in resp.headers.iter().enumerate() {
        let name = f.name.as_bytes();
        if kept & (1 << i) == 0 || named_by_connection(&fields, name) {
            continue;
        }
        // The length is written below for the body as it goes; an answer without a body keeps the
        // one it has (a HEAD's, a 304's), unless Transfer-Encoding came with it.
        let length = name.len() == 14 && name.eq_ignore_ascii_case(b"content-length");
        if length && (framing != Framing::Empty || both) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value);
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        date.write(out);
    }
    if close_after {
        out.extend_from_slice(b"connection: close\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(h1::itoa_u64(n, &mut [0u8; 20]));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked | Framing::UntilClose => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Upgrade => {}
    }
    out.extend_from_slice(b"\r\n");
    up.buf.consume(len);
    ex.phase = Phase::Body(BodyState::new(framing));
    Ok(HeadRead::Done)
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The `Date` field, formatted once a second.
#[derive(Default)]
struct DateCache {
    second: u64,
    field: Vec<u8>,
}

impl DateCache {
    fn write(&mut self, out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.field.is_empty() {
            self.second = second;
            self.field.clear();
            self.field.extend_from_slice(b"date: ");
            self.field.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            self.field.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: a mio stream (the proxy's side) and a blocking std stream (the peer).
    fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (TcpStream::from_std(ours), peer)
    }

    /// Fills `buf` until it holds `want` bytes (the peer's writes may arrive in pieces).
    fn fill_to(buf: &mut Buf, sock: &TcpStream, want: usize) {
        let mut readable = true;
        for _ in 0..10_000 {
            if buf.bytes().len() >= want {
                return;
            }
            match buf.fill(sock, &mut readable) {
                Ok(Some(0)) => panic!("closed at {} of {want} bytes", buf.bytes().len()),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("only {} of {want} bytes", buf.bytes().len());
    }

    #[test]
    fn a_buffer_keeps_unused_bytes_in_order_across_compaction_and_growth() {
        let (ours, mut peer) = pair();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut buf = Buf::default();
        let mut expect_from = 0;
        let mut sent = 0;
        // Send in uneven pieces, use some of what arrived each time, and check what is left.
        for (i, piece) in [1_000usize, 17_000, 30, 40_000, 11_969, 30_001].iter().enumerate() {
            peer.write_all(&data[sent..sent + piece]).unwrap();
            sent += piece;
            fill_to(&mut buf, &ours, sent - expect_from);
            assert_eq!(buf.bytes(), &data[expect_from..sent], "after piece {i}");
            let used = buf.bytes().len() / 2;
            buf.consume(used);
            expect_from += used;
            assert_eq!(buf.bytes(), &data[expect_from..sent], "after using {used} of piece {i}");
        }
        buf.consume(usize::MAX);
        assert!(buf.bytes().is_empty());
        drop(peer);
        let mut readable = true;
        assert_eq!(
            buf.fill(&ours, &mut readable).unwrap(),
            Some(0),
            "the end of stream reads as 0"
        );
    }

    #[test]
    fn a_read_that_leaves_room_marks_the_socket_drained() {
        let (ours, mut peer) = pair();
        peer.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = Buf::default();
        fill_to(&mut buf, &ours, 18);
        let mut readable = true;
        // Nothing more is there: the read would block, and says so without an error.
        assert_eq!(buf.fill(&ours, &mut readable).unwrap(), None);
        assert!(!readable);
    }

    #[test]
    fn fields_named_by_connection_are_recognised_whatever_their_case() {
        let mut fields = Fields::default();
        fields.add(b"Connection", b"keep-alive, X-Secret ,x-other");
        assert!(named_by_connection(&fields, b"x-secret"));
        assert!(named_by_connection(&fields, b"X-OTHER"));
        assert!(!named_by_connection(&fields, b"x-kept"));
        assert!(!named_by_connection(&Fields::default(), b"x-secret"));
    }

    #[test]
    fn status_lines_and_dates_are_well_formed() {
        let mut out = Vec::new();
        status_line(&mut out, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(out, b"HTTP/1.1 504 Gateway Timeout\r\n");
        let mut out = Vec::new();
        DateCache::default().write(&mut out);
        let text = String::from_utf8(out).unwrap();
        let value = text
            .strip_prefix("date: ")
            .and_then(|t| t.strip_suffix("\r\n"))
            .unwrap();
        assert!(httpdate::parse_http_date(value).is_ok(), "{text:?}");
    }
}
