//! HTTP on the proxy port: absolute-form requests (`GET http://host/path`) and CONNECT from clients
//! told to use a proxy, and origin-form requests captured transparently (their `Host` names the
//! destination). Every request is checked on its own, so one keep-alive connection cannot carry a
//! request to a host no rule allows. An `https` egress port makes the proxy originate TLS.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::access_log::{Decision, Entry};
use super::clock::ConnClock;
use super::conn::{self, FIRST_BYTES_TIMEOUT, UpstreamError};
use super::mesh;
use super::quiet::Quiet;
use super::state::Shared;
use crate::model::egress_rule::Protocol;

/// The most a request head may take (a larger one is answered 431).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub enum Mode {
    /// The client knows it talks to a proxy.
    Explicit,
    /// Redirected to the proxy; the original destination.
    Transparent(SocketAddr),
    /// A `--forward` to a service of the registry: origin-form requests to that service.
    /// `authority` is `host:port`, the authority its requests are treated as having.
    Service {
        host: Arc<str>,
        port: u16,
        authority: Arc<str>,
    },
}

/// One upstream connection kept for the next request of the same client connection.
struct Upstream {
    key: (String, u16, bool),
    sender: SendRequest<CountingBody>,
}

struct Conn {
    peer: SocketAddr,
    mode: Mode,
    upstream: tokio::sync::Mutex<Option<Upstream>>,
    /// The wait for each request head, and the deadline of the request in hand.
    clock: ConnClock,
}

/// An answer's body that starts the connection's wait for the next request head when it is done
/// with (hyper drops it once it has been written, or on an error).
struct Watched {
    inner: ProxyBody,
    conn: Arc<Conn>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.conn.clock.start_waiting();
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, mode: Mode, shared: Arc<Shared>) {
    serve_io(stream, peer, mode, shared).await;
}

/// A connection the forward loop began to serve and handed over: `early` holds the bytes it read
/// from the client and did not use (the start of the request it does not serve itself).
pub async fn serve_handed_over(stream: TcpStream, early: Vec<u8>, peer: SocketAddr, mode: Mode, shared: Arc<Shared>) {
    let io = Prefixed {
        early,
        at: 0,
        inner: stream,
    };
    serve_io(io, peer, mode, shared).await;
}

/// A stream that yields `early[at..]` before what it reads from `inner`.
struct Prefixed {
    early: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.early.get(this.at..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.early.len() {
                this.early = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_io<I>(io: I, peer: SocketAddr, mode: Mode, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(Conn {
        peer,
        mode,
        upstream: tokio::sync::Mutex::new(None),
        clock: ConnClock::new(FIRST_BYTES_TIMEOUT),
    });
    let mut stop = shared.stop.subscribe();
    let svc_shared = shared.clone();
    let svc_conn = conn.clone();
    let service = hyper::service::service_fn(move |req| {
        let conn = svc_conn.clone();
        let shared = svc_shared.clone();
        async move {
            conn.clock.busy();
            let resp = handle(req, &conn, &shared).await;
            Ok::<_, Infallible>(resp.map(|inner| Watched { inner, conn }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // `ConnClock` bounds the wait for a request head (hyper's bound takes a timer per request).
        .header_read_timeout(None)
        // A client may send its request and close its side at once (`Connection: close` with a
        // half-close); it still gets its answer.
        .half_close(true)
        .max_buf_size(MAX_HEAD);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(connection);
    // The shutdown signal and the watchdog are polled only when they woke: not at every turn of the
    // connection.
    let stopping = Quiet::new(async { stop.wait_for(|s| *s).await.is_ok() });
    let mut expired = Quiet::new(conn.clock.watchdog());
    // Dropping the connection closes it.
    let draining = tokio::select! {
        biased;
        _ = connection.as_mut() => false,
        stopped = stopping => stopped,
        () = &mut expired => false,
    };
    if draining {
        // Finish the request in flight, then close.
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            _ = connection => {}
            () = expired => {}
        }
    }
}

async fn handle(req: Request<Incoming>, conn: &Conn, shared: &Arc<Shared>) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return match &conn.mode {
            Mode::Explicit => connect_tunnel(req, conn.peer, shared).await,
            Mode::Transparent(_) | Mode::Service { .. } => local(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is for clients that use the proxy explicitly\n",
            ),
        };
    }
    // Where the request goes: the absolute-form URI, or (captured) the Host header and original port.
    let target = match &conn.mode {
        Mode::Explicit => {
            let uri = req.uri();
            let tls = match uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") => false,
                Some(s) if s.eq_ignore_ascii_case("https") => true,
                _ => {
                    return local(
                        StatusCode::BAD_REQUEST,
                        "meshctl proxy: this is a proxy port: send absolute-form requests (GET http://host/path) or CONNECT host:port\n",
                    );
                }
            };
            let Some(host) = uri.host() else {
                return local(
                    StatusCode::BAD_REQUEST,
                    "meshctl proxy: the request URI names no host\n",
                );
            };
            let port = match authority_port(uri.authority(), if tls { 443 } else { 80 }) {
                Ok(p) => p,
                Err(bad) => {
                    return local(
                        StatusCode::BAD_REQUEST,
                        format!("meshctl proxy: `{bad}` is not a port (1-65535)\n"),
                    );
                }
            };
            Target {
                host: host.to_string(),
                port,
                tls,
                addr: None,
            }
        }
        Mode::Service { host, port, authority } => {
            let active = shared.active.load_full();
            let Some(svc) = active.registry.lookup(host, *port) else {
                return local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("meshctl proxy: {host}:{port} is no longer in the service registry\n"),
                );
            };
            let dest = mesh::Destination {
                fqdn: svc.fqdn(),
                port: svc.port,
                authority: Some(authority),
            };
            return mesh::handle(req, active.clone(), dest, conn.peer, &conn.clock, shared).await;
        }
        Mode::Transparent(orig) => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(strip_port)
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| orig.ip().to_string());
            Target {
                host,
                port: orig.port(),
                tls: false,
                addr: Some(*orig),
            }
        }
    };
    // A service of the registry: routed by the RouteRules, no EgressRule needed.
    if !target.tls {
        let active = shared.active.load_full();
        if let Some(svc) = active.registry.lookup(&target.host, target.port) {
            let dest = mesh::Destination {
                fqdn: svc.fqdn(),
                port: svc.port,
                authority: None,
            };
            return mesh::handle(req, active.clone(), dest, conn.peer, &conn.clock, shared).await;
        }
    }
    let dst = format!("{}:{}", conn::bracket(&target.host), target.port);
    let url = display_url(&req, &target);
    let mut entry = Entry::new("http", conn.peer, dst.clone());
    entry.method = Some(req.method().to_string());
    entry.url = Some(url.clone());

    let verdict = {
        let active = shared.rules();
        let bare = target.host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => active
                .rules
                .match_addr(ip, target.port)
                .map(|a| (a.rule.to_string(), false)),
            Err(_) => active
                .rules
                .match_host(&target.host, target.port)
                .map(|a| (a.rule.to_string(), a.protocol == Protocol::Https)),
        }
    };
    let Some((rule, originate)) = verdict else {
        shared.metrics.request(false);
        let body = format!(
            "meshctl proxy: denied {} {url}: no EgressRule allows {dst}\n\
             (egress is blocked unless an EgressRule opens the destination; `meshctl check http://{dst}` explains)\n",
            req.method()
        );
        let resp = local(StatusCode::FORBIDDEN, body);
        entry.status = Some(403);
        entry.finish();
        shared.log.write(&entry);
        return resp;
    };
    shared.metrics.request(true);
    entry.decision = Decision::Allow;
    entry.rule = Some(rule);
    let target = Target {
        tls: target.tls || originate,
        ..target
    };

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(&host_header(&target)) {
            parts.headers.insert(header::HOST, v);
        }
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = http::Version::HTTP_11;
    let sent = Arc::new(AtomicU64::new(0));
    let upstream_req = Request::from_parts(parts, CountingBody::new(body, sent.clone()));

    let mut slot = conn.upstream.lock().await;
    let key = (target.host.to_ascii_lowercase(), target.port, target.tls);
    let reusable = match slot.as_mut() {
        Some(u) if u.key == key => u.sender.ready().await.is_ok(),
        _ => false,
    };
    if !reusable {
        *slot = None;
        match open(&target, shared).await {
            Ok(sender) => *slot = Some(Upstream { key, sender }),
            Err(e) => {
                let status = e.http_status();
                entry.status = Some(status.as_u16());
                let body = format!("meshctl proxy: {url}: {e}\n");
                conn::upstream_failed(shared, entry, &e);
                return local(status, body);
            }
        }
    }
    let Some(upstream) = slot.as_mut() else {
        return local(StatusCode::BAD_GATEWAY, "meshctl proxy: no upstream connection\n");
    };
    match upstream.sender.send_request(upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            entry.status = Some(parts.status.as_u16());
            Response::from_parts(
                parts,
                ProxyBody::Upstream {
                    inner: body,
                    log: Some(Box::new(LogOnDrop::new(entry, sent, shared.clone()))),
                },
            )
        }
        Err(e) => {
            *slot = None;
            shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            entry.status = Some(502);
            entry.error = Some(format!("upstream: {e}"));
            entry.sent = sent.load(Ordering::Relaxed);
            entry.finish();
            shared.log.write(&entry);
            local(
                StatusCode::BAD_GATEWAY,
                format!("meshctl proxy: {url}: the upstream failed: {e}\n"),
            )
        }
    }
}

struct Target {
    host: String,
    port: u16,
    tls: bool,
    /// The address to connect to (captured traffic); else `host` is resolved.
    addr: Option<SocketAddr>,
}

/// Opens a connection to the target (TLS when it asks for it) and hands back its request sender.
async fn open(target: &Target, shared: &Shared) -> Result<SendRequest<CountingBody>, UpstreamError> {
    let tcp = match target.addr {
        Some(addr) => conn::connect_addr(addr, shared.connect_timeout).await?,
        None => conn::connect(&target.host, target.port, shared.connect_timeout).await?,
    };
    let name = format!("{}:{}", conn::bracket(&target.host), target.port);
    let handshake_failed = |e: hyper::Error| UpstreamError::Tls(name.clone(), format!("HTTP handshake: {e}"));
    if target.tls {
        let bare = target.host.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls_pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| UpstreamError::Tls(name.clone(), e.to_string()))?;
        let tls = tokio::time::timeout(shared.connect_timeout, shared.tls.connect(server_name, tcp))
            .await
            .map_err(|_| UpstreamError::Timeout(name.clone()))?
            .map_err(|e| UpstreamError::Tls(name.clone(), e.to_string()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(handshake_failed)?;
        tokio::spawn(connection);
        Ok(sender)
    } else {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(handshake_failed)?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

async fn connect_tunnel(req: Request<Incoming>, peer: SocketAddr, shared: &Arc<Shared>) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return local(StatusCode::BAD_REQUEST, "meshctl proxy: CONNECT needs host:port\n");
    };
    let host = authority.host().to_string();
    let port = match authority_port(Some(&authority), 443) {
        Ok(p) => p,
        Err(bad) => {
            return local(
                StatusCode::BAD_REQUEST,
                format!("meshctl proxy: CONNECT {authority}: `{bad}` is not a port (1-65535)\n"),
            );
        }
    };
    let dst = format!("{}:{port}", conn::bracket(&host));
    let mut entry = Entry::new("connect", peer, dst.clone());
    let verdict = conn::allow_host(&shared.rules(), &host, port);
    let Some(rule) = verdict else {
        conn::deny(shared, entry);
        return local(
            StatusCode::FORBIDDEN,
            format!("meshctl proxy: denied CONNECT {dst}: no EgressRule allows {dst}\n"),
        );
    };
    conn::allow(shared, &mut entry, rule);
    let upstream = match conn::connect(&host, port, shared.connect_timeout).await {
        Ok(u) => u,
        Err(e) => {
            let status = e.http_status();
            let body = format!("meshctl proxy: CONNECT {dst}: {e}\n");
            conn::upstream_failed(shared, entry, &e);
            return local(status, body);
        }
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
                // The client's own socket again: relay without copying, after any bytes the HTTP
                // parser had already read past the CONNECT request.
                Ok(parts) => {
                    let mut upstream = upstream;
                    if !parts.read_buf.is_empty() {
                        use tokio::io::AsyncWriteExt as _;
                        if let Err(e) = upstream.write_all(&parts.read_buf).await {
                            entry.error = Some(format!("upstream: {e}"));
                            entry.finish();
                            shared.log.write(&entry);
                            return;
                        }
                    }
                    let early = parts.read_buf.len() as u64;
                    let mut entry = entry;
                    entry.sent = early;
                    conn::pump_tcp(parts.io.into_inner(), upstream, entry, &shared).await
                }
                Err(upgraded) => conn::pump(TokioIo::new(upgraded), upstream, entry, &shared).await,
            },
            Err(e) => {
                entry.error = Some(format!("CONNECT upgrade: {e}"));
                entry.finish();
                shared.log.write(&entry);
            }
        }
    });
    Response::new(ProxyBody::Local(None))
}

pub(crate) fn local(status: StatusCode, body: impl Into<String>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Local(Some(Bytes::from(body.into()))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `http://host:port/path` for the log and messages.
fn display_url(req: &Request<Incoming>, target: &Target) -> String {
    let scheme = if target.tls && target.port == 443 {
        "https"
    } else {
        "http"
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let host = conn::bracket(&target.host);
    if target.port == default {
        format!("{scheme}://{host}{pq}")
    } else {
        format!("{scheme}://{host}:{}{pq}", target.port)
    }
}

fn host_header(target: &Target) -> String {
    let host = conn::bracket(&target.host);
    let default = if target.tls { 443 } else { 80 };
    if target.port == default {
        host
    } else {
        format!("{host}:{}", target.port)
    }
}

/// The port of an authority, `default` when it names none; the text after the colon when that is
/// not a port (`http::uri` reads an out-of-range port as no port at all).
fn authority_port(authority: Option<&http::uri::Authority>, default: u16) -> Result<u16, String> {
    let Some(a) = authority else { return Ok(default) };
    let text = a.as_str();
    let hostport = text.rsplit_once('@').map_or(text, |(_, h)| h);
    let port = if hostport.starts_with('[') {
        hostport.rsplit_once("]:").map(|(_, p)| p)
    } else {
        hostport.rsplit_once(':').map(|(_, p)| p)
    };
    match port {
        None | Some("") => Ok(default),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => Ok(n),
            _ => Err(p.to_string()),
        },
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(h: &str) -> String {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return match rest.find(']') {
            Some(i) => format!("[{}]", &rest[..i]),
            None => h.to_string(),
        };
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_string(),
        _ => h.to_string(),
    }
}

/// The fields that belong to one hop (RFC 9110 §7.6.1, with the older `Keep-Alive` and
/// `Proxy-Connection`): never passed on, in either direction. `h1` reads an answer's by this list too.
/// `Connection` comes first: `strip_hop_by_hop` reads it as bit 0.
pub(crate) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
];

/// Removes the headers that belong to one hop (RFC 9110 §7.6.1), including those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Names are lowercase in a HeaderMap; a match on the text is a few length and byte compares.
    fn hop(name: &str) -> Option<usize> {
        HOP_BY_HOP.iter().position(|h| h.as_str() == name)
    }
    // Most messages carry none or only `Connection`: one pass over the fields finds which.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop(name.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `Connection` may name other fields; its usual tokens (close, keep-alive, upgrade) name none that
    // is not removed anyway, and are settled without parsing a name.
    if present & 1 != 0 {
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            for token in value.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.is_empty() || token.eq_ignore_ascii_case(b"close") {
                    continue;
                }
                if HOP_BY_HOP
                    .iter()
                    .any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes()))
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token) {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

// === Bodies ===

/// A request body on its way upstream, counting its bytes.
pub struct CountingBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
}

impl CountingBody {
    pub fn new(inner: Incoming, count: Arc<AtomicU64>) -> CountingBody {
        CountingBody { inner, count }
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r {
            if let Some(d) = frame.data_ref() {
                self.count.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Writes a request's access log line when its response body is done (or abandoned).
pub struct LogOnDrop {
    entry: Entry,
    sent: Arc<AtomicU64>,
    received: u64,
    shared: Arc<Shared>,
}

impl LogOnDrop {
    pub fn new(entry: Entry, sent: Arc<AtomicU64>, shared: Arc<Shared>) -> LogOnDrop {
        LogOnDrop {
            entry,
            sent,
            received: 0,
            shared,
        }
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.entry.sent = self.sent.load(Ordering::Relaxed);
        self.entry.received = self.received;
        self.shared.metrics.bytes(self.entry.sent, self.entry.received);
        if self.shared.log.enabled() {
            self.entry.finish();
            self.shared.log.write(&self.entry);
        }
    }
}

/// What the proxy answers with: its own short text, or the upstream's body streamed through.
// The mesh variant carries its connection (a few hundred bytes); the body is built once per answer and
// moved into hyper once, where boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum ProxyBody {
    Local(Option<Bytes>),
    /// From hyper's client (egress).
    Upstream {
        inner: Incoming,
        log: Option<Box<LogOnDrop>>,
    },
    /// From the mesh's own client.
    Mesh {
        inner: mesh::UpstreamBody,
        log: Option<Box<LogOnDrop>>,
    },
}

/// What polling an upstream body gave, for its log line.
enum Polled<'a> {
    Data(usize),
    Failed(&'a dyn std::fmt::Display),
    End,
    Pending,
}

/// Counts a piece of an upstream body into the request's log line, and writes the line (by dropping
/// it) once the body has ended or failed.
fn account(polled: Polled<'_>, ended: bool, log: &mut Option<Box<LogOnDrop>>) {
    match polled {
        Polled::Data(n) => {
            if let Some(l) = log.as_mut() {
                l.received += n as u64;
            }
            // hyper stops polling once a body with a known length says it has ended, so
            // `Ready(None)` may never come: the end is noticed here.
            if ended {
                *log = None;
            }
        }
        Polled::Failed(e) => {
            if let Some(l) = log.as_mut() {
                l.entry.error = Some(format!("upstream body: {e}"));
            }
            *log = None;
        }
        Polled::End => *log = None,
        Polled::Pending => {}
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream { inner, log } => {
                let r = Pin::new(&mut *inner).poll_frame(cx);
                let polled = match &r {
                    Poll::Ready(Some(Ok(frame))) => Polled::Data(frame.data_ref().map_or(0, |d| d.len())),
                    Poll::Ready(Some(Err(e))) => Polled::Failed(e),
                    Poll::Ready(None) => Polled::End,
                    Poll::Pending => Polled::Pending,
                };
                account(polled, inner.is_end_stream(), log);
                r.map_err(Into::into)
            }
            ProxyBody::Mesh { inner, log } => {
                let r = inner.poll_data(cx);
                let polled = match &r {
                    Poll::Ready(Some(Ok(data))) => Polled::Data(data.len()),
                    Poll::Ready(Some(Err(e))) => Polled::Failed(e),
                    Poll::Ready(None) => Polled::End,
                    Poll::Pending => Polled::Pending,
                };
                account(polled, inner.is_end_stream(), log);
                r.map(|o| o.map(|r| r.map(Frame::data).map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(b) => b.is_none(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
            ProxyBody::Mesh { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Local(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
            ProxyBody::Mesh { inner, .. } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_ports() {
        let a = |s: &str| s.parse::<http::uri::Authority>().unwrap();
        assert_eq!(authority_port(None, 80), Ok(80));
        assert_eq!(authority_port(Some(&a("example.com")), 80), Ok(80));
        assert_eq!(authority_port(Some(&a("example.com:8080")), 80), Ok(8080));
        assert_eq!(authority_port(Some(&a("[::1]:443")), 80), Ok(443));
        assert_eq!(authority_port(Some(&a("[::1]")), 80), Ok(80));
        assert_eq!(authority_port(Some(&a("example.com:99999")), 80), Err("99999".into()));
        assert_eq!(authority_port(Some(&a("example.com:0")), 80), Err("0".into()));
    }

    #[test]
    fn strips_ports_from_host_headers() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, close"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
