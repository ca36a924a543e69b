//! The config store API server (`meshctl serve`): see docs/api.md.
//!
//! hyper's HTTP/1.1 connection builder in a plain accept loop (with a timer, so slow clients are
//! timed out while sending headers), TLS by tokio-rustls, and one request handler (`api::handle`) that
//! routes by hand, so every failure, even for a path nobody serves, is a `Status` object. The store is
//! blocking: requests call it through `spawn_blocking`, watches run on their own threads.

pub mod api;
pub mod auth;
pub mod backend;
pub mod metrics;
pub mod status;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::store::Store;
pub use backend::Backend;

/// A client has this long to send a request's headers (and an idle keep-alive connection is closed
/// after it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// ... this long to complete a TLS handshake ...
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and this long to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may take to finish after SIGTERM before the server exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// What `meshctl serve` was asked to do, checked by the command line.
pub struct Config {
    pub listen: SocketAddr,
    /// `--tokens FILE`; None: no authentication (loopback only, checked by the caller).
    pub tokens: Option<PathBuf>,
    /// `--tls-cert`, `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The state every request sees.
pub struct App {
    pub store: Arc<dyn Store>,
    /// None without `--tokens`.
    pub tokens: Option<RwLock<Arc<auth::Tokens>>>,
    pub metrics: metrics::Metrics,
    /// Set at shutdown: watches end, `/readyz` says so.
    pub shutting_down: AtomicBool,
}

impl App {
    pub fn new(store: Arc<dyn Store>, tokens: Option<auth::Tokens>) -> App {
        App {
            store,
            tokens: tokens.map(|t| RwLock::new(Arc::new(t))),
            metrics: metrics::Metrics::default(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The current tokens (None: authentication is off).
    pub fn tokens(&self) -> Option<Arc<auth::Tokens>> {
        self.tokens
            .as_ref()
            .map(|t| t.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The files a server needs, read and checked: done before the store is opened, so a mistake in them
/// changes nothing.
pub struct Prepared {
    config: Config,
    tokens: Option<auth::Tokens>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

/// Reads the tokens file and the TLS certificate and key. Errors name the file and what is wrong.
pub fn prepare(config: Config) -> Result<Prepared, String> {
    tls::install_provider();
    let tokens = match &config.tokens {
        Some(path) => {
            let tokens = auth::load_file(path)?;
            if tokens.is_empty() {
                eprintln!(
                    "meshctl serve: warning: {} lists no tokens: every API request will be refused (401)",
                    path.display()
                );
            } else {
                eprintln!("meshctl serve: {} token(s) from {}", tokens.len(), path.display());
            }
            Some(tokens)
        }
        None => None,
    };
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(cert, key)?)),
        None => None,
    };
    Ok(Prepared {
        config,
        tokens,
        acceptor,
    })
}

/// Runs the server until SIGTERM or SIGINT: binds, prints `meshctl serve: listening on URL` to stderr,
/// serves, then stops accepting, lets in-flight requests finish (at most `SHUTDOWN_GRACE`) and returns.
/// Errors before the server is listening (an address in use) are returned; the caller reports them as
/// usage or I/O errors.
pub fn run(prepared: Prepared, store: Arc<dyn Store>) -> anyhow::Result<()> {
    let Prepared {
        config,
        tokens,
        acceptor,
    } = prepared;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meshctl-serve")
        .build()?;
    let app = Arc::new(App::new(store, tokens));
    let result = runtime.block_on(serve(config, app, acceptor));
    // Blocking store calls still running (none should be) are abandoned rather than waited for forever.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn serve(config: Config, app: Arc<App>, acceptor: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    eprintln!("meshctl serve: listening on {scheme}://{local}");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;

    // Connections hold a clone of `conns_rx`; when every clone is gone, `conns_tx.closed()` resolves.
    let (conns_tx, conns_rx) = tokio::sync::watch::channel(());
    // Tells connections to finish their current request and close.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => reload_tokens(&app, config.tokens.as_deref()).await,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off instead of spinning.
                        eprintln!("meshctl serve: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let app = app.clone();
                let acceptor = acceptor.clone();
                let stop = stop_rx.clone();
                let held = conns_rx.clone();
                tokio::spawn(async move {
                    let _held = held;
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                connection(stream, peer, app, stop).await;
                            }
                        }
                        None => connection(tcp, peer, app, stop).await,
                    }
                });
            }
        }
    }
    drop(listener);
    eprintln!("meshctl serve: shutting down: finishing requests in flight");
    app.shutting_down.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    drop(conns_rx);
    if tokio::time::timeout(SHUTDOWN_GRACE, conns_tx.closed()).await.is_err() {
        eprintln!(
            "meshctl serve: some connections did not finish within {}; closing them",
            humantime::format_duration(SHUTDOWN_GRACE)
        );
    }
    eprintln!("meshctl serve: stopped");
    Ok(())
}

/// Serves one connection until it closes, or until shutdown lets its current request finish.
async fn connection<I>(io: I, peer: SocketAddr, app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(api::handle(app, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(256 * 1024)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            // Errors here are a client going away or sending garbage; nothing to report.
            _ = conn.as_mut() => break,
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// SIGHUP: reads the tokens file again; a file that does not load leaves the current tokens in force.
async fn reload_tokens(app: &Arc<App>, path: Option<&std::path::Path>) {
    let (Some(path), Some(current)) = (path, app.tokens.as_ref()) else {
        eprintln!("meshctl serve: SIGHUP: no --tokens file to reload");
        return;
    };
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || auth::load_file(&owned)).await {
        Ok(Ok(tokens)) => {
            let n = tokens.len();
            *current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
            eprintln!("meshctl serve: SIGHUP: reloaded {n} token(s) from {}", path.display());
        }
        Ok(Err(e)) => eprintln!("meshctl serve: SIGHUP: keeping the current tokens: {e}"),
        Err(e) => eprintln!("meshctl serve: SIGHUP: keeping the current tokens: {e}"),
    }
}

/// Makes client-controlled text safe for a one-line log: control characters escaped, length capped.
pub fn log_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(256));
    for (i, c) in s.chars().enumerate() {
        if i >= 256 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
