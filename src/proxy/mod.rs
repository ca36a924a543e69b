//! `meshctl proxy`: a sidecar-style egress proxy for offline trials. External traffic is denied
//! unless an EgressRule allows it; rules are compiled once per change into lookup tables, and each
//! connection (or HTTP request) is decided against the set in force when it arrives.

pub mod access_log;
pub mod admin;
pub mod clock;
pub mod conn;
pub mod h1;
pub mod http;
pub mod l4;
pub mod lane;
pub mod mesh;
pub mod metrics;
pub mod orig_dst;
pub mod quiet;
pub mod routes;
pub mod rules;
pub mod services;
pub mod socks;
pub mod source;
pub mod splice;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::cli::UsageError;

/// A fixed forward: connections to `local` go to `host:port` when a rule allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub local: SocketAddr,
    pub host: String,
    pub port: u16,
}

pub struct Config {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub forwards: Vec<Forward>,
    pub transparent: bool,
    pub upstream_ca: Option<PathBuf>,
    pub access_log: Option<PathBuf>,
    pub no_access_log: bool,
    pub log_format: access_log::Format,
    pub workers: usize,
    pub connect_timeout: Duration,
    pub drain_timeout: Duration,
    pub source: source::Source,
    /// The service registry file (`--services`), followed for changes.
    pub services: Option<PathBuf>,
    /// Who the proxy speaks for (`--source`, `--source-labels`).
    pub identity: routes::SourceIdentity,
}

/// Keeps one timer pending in the runtime at all times, due within a second. Tokio wakes its I/O
/// driver (a write to an eventfd, and one more trip through epoll) whenever a newly armed timer is due
/// before every timer already pending, which is always the case when none is: without this, every
/// connection's connect timeout cost that wake-up (seen as ~0.9 eventfd writes per connection under
/// load). With it, timeouts longer than a second never precede the anchor and arm silently.
async fn timer_anchor() {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Runs the proxy until SIGTERM or SIGINT, then stops accepting and lets open connections finish
/// (up to the drain timeout). Problems before it is ready (rules that cannot be read, an address in
/// use) are returned as usage or I/O errors.
pub fn run(config: Config) -> anyhow::Result<()> {
    orig_dst::raise_nofile_limit();
    let tls = tls::connector(config.upstream_ca.as_deref()).map_err(|e| UsageError(format!("{e:#}")))?;
    let log = if config.no_access_log {
        Ok(access_log::AccessLog::disabled())
    } else {
        access_log::AccessLog::open(config.access_log.as_deref(), config.log_format)
    };
    let log = log.map_err(|e| {
        UsageError(format!(
            "--access-log {}: {e}",
            config
                .access_log
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        ))
    })?;
    // One worker: a single-threaded runtime, which skips the work-stealing scheduler's cross-thread
    // bookkeeping on every task wake-up (measurably cheaper per connection).
    let runtime = if config.workers <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers)
            .enable_all()
            .thread_name("meshctl-proxy")
            .build()?
    };
    let (stop_tx, _) = tokio::sync::watch::channel(false);
    let Config {
        listen,
        admin,
        forwards,
        transparent,
        connect_timeout,
        drain_timeout,
        source,
        services,
        identity,
        ..
    } = config;
    let services_stamp = services.as_deref().and_then(source::stamp);
    let registry = match &services {
        Some(path) => services::Registry::load(path).map_err(UsageError)?,
        None => services::Registry::empty(),
    };
    let routing = Arc::new(state::Routing::new(identity, registry));
    let (active, follower) = source::initial(source, &routing).map_err(UsageError)?;
    let shared = Arc::new(state::Shared {
        active: ArcSwap::from_pointee(active),
        routing,
        metrics: metrics::Metrics::default(),
        log,
        tls,
        connect_timeout,
        ready: AtomicBool::new(false),
        stop: stop_tx,
    });
    {
        let a = shared.rules();
        shared.metrics.rules_revision.store(a.revision, Ordering::Relaxed);
        shared
            .metrics
            .egress_rules
            .store(a.rules.egress_rules() as u64, Ordering::Relaxed);
    }
    let result = runtime.block_on(serve(
        shared.clone(),
        Listeners {
            listen,
            admin,
            forwards,
            transparent,
            workers: config.workers,
        },
        drain_timeout,
        Followers {
            rules: follower,
            services,
            services_stamp,
        },
    ));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Connections the kernel may queue before the proxy accepts them. Tokio's default (128) drops SYNs
/// under a burst of new connections, and each dropped one costs its client a one-second retry.
const BACKLOG: u32 = 4096;

/// A listening socket, non-blocking, for the runtime or for the forward loops (`l4`).
fn bind_std(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |e: std::io::Error| UsageError(format!("cannot listen on {addr} ({what}): {e}"));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    // Accepted connections inherit TCP_NODELAY from the listener (Linux): one system call per
    // connection saved, and no Nagle delay on a relay's small writes.
    socket.set_tcp_nodelay(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(BACKLOG as i32).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket.into())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let std = bind_std(addr, what)?;
    Ok(TcpListener::from_std(std).map_err(|e| UsageError(format!("cannot listen on {addr} ({what}): {e}")))?)
}

/// Where the proxy listens.
struct Listeners {
    listen: SocketAddr,
    admin: SocketAddr,
    forwards: Vec<Forward>,
    transparent: bool,
    /// Worker threads (the forward loops run this many too).
    workers: usize,
}

/// What follows changes once the proxy serves: the rules' source and the registry file.
struct Followers {
    rules: source::Follower,
    services: Option<PathBuf>,
    /// The registry file's stamp from before it was loaded.
    services_stamp: Option<source::Stamp>,
}

async fn serve(
    shared: Arc<state::Shared>,
    listeners: Listeners,
    drain_timeout: Duration,
    followers: Followers,
) -> anyhow::Result<()> {
    let Followers {
        rules: follower,
        services,
        services_stamp,
    } = followers;
    let Listeners {
        listen,
        admin,
        forwards,
        transparent,
        workers,
    } = listeners;
    let admin_listener = bind(admin, "--admin").await?;
    let proxy_listener = bind(listen, "--listen").await?;
    // Forwards to an IP address run on the epoll loops of `l4`; forwards to a host name, which is
    // resolved per connection, on the runtime.
    let mut l4_listeners = Vec::new();
    let mut forwarding = Vec::new();
    for f in forwards {
        let std = bind_std(f.local, "--forward")?;
        forwarding.push(format!(
            "meshctl proxy: forwarding {} to {}:{}",
            std.local_addr()?,
            conn::bracket(&f.host),
            f.port
        ));
        let f = Arc::new(f);
        l4_listeners.push(l4::Listener::new(std, f.clone()));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;

    eprintln!("meshctl proxy: admin on http://{}", admin_listener.local_addr()?);
    eprintln!(
        "meshctl proxy: listening on {} (http, connect, socks5{})",
        proxy_listener.local_addr()?,
        if transparent { ", transparent" } else { "" }
    );
    for line in forwarding {
        eprintln!("{line}");
    }
    source::announce(&shared.rules(), "");
    if let Some(path) = &services {
        let n = shared.rules().registry.len();
        eprintln!(
            "meshctl proxy: {n} service{} from {}",
            if n == 1 { "" } else { "s" },
            path.display()
        );
    }

    // Connections hold a clone of `held`; when every clone is gone, `held_tx.closed()` resolves.
    let (held_tx, held) = tokio::sync::watch::channel(());
    tokio::spawn(timer_anchor());
    tokio::spawn(admin::serve(admin_listener, shared.clone(), shared.stop.subscribe()));
    tokio::spawn(conn::accept_loop(
        proxy_listener,
        transparent,
        shared.clone(),
        shared.stop.subscribe(),
        held.clone(),
    ));
    // The loops hold duplicates of the listeners; the originals close here, so that stopping the
    // loops closes the ports.
    let relay = if l4_listeners.is_empty() {
        None
    } else {
        let relay = l4::Relay::start(
            &l4_listeners,
            workers,
            &shared,
            &tokio::runtime::Handle::current(),
            &held,
        )
        .context("starting the forward loops")?;
        drop(l4_listeners);
        Some(relay)
    };
    let follow_stop = Arc::new(AtomicBool::new(false));
    {
        let shared = shared.clone();
        let stop = follow_stop.clone();
        std::thread::Builder::new()
            .name("meshctl-rules".into())
            .spawn(move || source::follow(follower, shared, stop))
            .context("starting the rules thread")?;
    }
    if let Some(path) = services {
        let shared = shared.clone();
        let stop = follow_stop.clone();
        std::thread::Builder::new()
            .name("meshctl-services".into())
            .spawn(move || source::follow_services(path, services_stamp, shared, stop))
            .context("starting the services thread")?;
    }
    shared.ready.store(true, Ordering::SeqCst);
    eprintln!("meshctl proxy: ready");

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    let open = shared.metrics.active_connections.load(Ordering::Relaxed);
    eprintln!(
        "meshctl proxy: shutting down: no new connections; letting {open} open connection(s) finish (at most {})",
        humantime::format_duration(drain_timeout)
    );
    let _ = shared.stop.send(true);
    if let Some(relay) = &relay {
        relay.stop();
    }
    drop(held);
    if tokio::time::timeout(drain_timeout, held_tx.closed()).await.is_err() {
        eprintln!(
            "meshctl proxy: {} connection(s) still open after {}; closing them",
            shared.metrics.active_connections.load(Ordering::Relaxed),
            humantime::format_duration(drain_timeout)
        );
    }
    follow_stop.store(true, Ordering::SeqCst);
    shared.log.flush(Duration::from_secs(2));
    eprintln!("meshctl proxy: stopped");
    Ok(())
}
