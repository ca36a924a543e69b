//! Accepting connections and carrying opaque TCP: the explicit proxy port (told apart from SOCKS5 by
//! the first byte, and from redirected traffic by `SO_ORIGINAL_DST`), fixed forwards, transparent
//! capture, and the byte pump they share.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::access_log::{Decision, Entry};
use super::state::{Active, Shared};
use super::{Forward, http, orig_dst, socks};

/// How long a client may take to send its first bytes (a request line, a SOCKS greeting, a TLS
/// ClientHello) before the proxy gives up on it.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a captured connection that no rule can allow is watched for an HTTP request (answered
/// 403) before it is closed.
const DENY_LOOK: Duration = Duration::from_millis(50);

/// The copy buffer per direction.
const BUFFER: usize = 64 * 1024;

/// Accepts on the proxy port (HTTP forward proxy, CONNECT and SOCKS5; with `transparent`, also
/// redirected traffic) until `stop` turns true; each connection runs on its own task and holds `held`
/// until it ends, so shutdown can wait for them. (Forwards are accepted by the loops of `l4`.)
pub async fn accept_loop(
    listener: TcpListener,
    transparent: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    held: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors, most likely: back off rather than spin.
                eprintln!("meshctl proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // TCP_NODELAY is inherited from the listener (see `bind`).
        let shared = shared.clone();
        let held = held.clone();
        tokio::spawn(async move {
            let _held = held;
            let _active = shared.metrics.track();
            explicit(stream, peer, transparent, &shared).await
        });
    }
}

async fn explicit(stream: TcpStream, peer: SocketAddr, transparent: bool, shared: &Arc<Shared>) {
    if transparent {
        if let Ok(local) = stream.local_addr() {
            if let Some(orig) = orig_dst::redirected(&stream, local) {
                return Box::pin(captured(stream, peer, orig, shared)).await;
            }
        }
    }
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == socks::VERSION => Box::pin(socks::serve(stream, peer, shared)).await,
        Ok(Ok(1)) => Box::pin(http::serve(stream, peer, http::Mode::Explicit, shared.clone())).await,
        // Closed, failed, or silent for too long: nothing to answer.
        _ => {}
    }
}

/// A fixed forward to a host name: opaque TCP to the configured destination, when a rule allows it.
/// (Forwards to an IP address are carried by the epoll loops of `l4`, which hand these over.)
pub async fn forward(stream: TcpStream, peer: SocketAddr, f: &Forward, shared: &Shared) {
    let dst = format!("{}:{}", bracket(&f.host), f.port);
    let mut entry = Entry::new("tcp", peer, dst);
    // `allow_host` still matches an IP literal by address.
    let verdict = allow_host(&shared.rules(), &f.host, f.port);
    let Some(rule) = verdict else {
        deny(shared, entry);
        return;
    };
    allow(shared, &mut entry, rule);
    match connect(&f.host, f.port, shared.connect_timeout).await {
        Ok(upstream) => pump_tcp(stream, upstream, entry, shared).await,
        Err(e) => upstream_failed(shared, entry, &e),
    }
}

/// Redirected traffic: opaque TCP when a TCP-level rule allows the original destination; otherwise
/// the first bytes tell HTTP (checked per request by its Host) or TLS (by its SNI) for host rules.
async fn captured(stream: TcpStream, peer: SocketAddr, orig: SocketAddr, shared: &Arc<Shared>) {
    let (by_addr, host_rules) = {
        let active = shared.rules();
        (
            allow_addr(&active, orig.ip(), orig.port()),
            active.rules.has_host_port(orig.port()) || active.registry.has_port(orig.port()),
        )
    };
    let mut entry = Entry::new("tcp", peer, orig.to_string());
    if let Some(rule) = by_addr {
        allow(shared, &mut entry, rule);
        return match connect_addr(orig, shared.connect_timeout).await {
            Ok(upstream) => pump_tcp(stream, upstream, entry, shared).await,
            Err(e) => upstream_failed(shared, entry, &e),
        };
    }
    if !host_rules {
        // No rule could allow this port. An HTTP client has usually sent its request by now and is
        // better served by a 403 that says why; anything else (a MySQL client waits for the server's
        // greeting) is closed after a brief look rather than kept waiting.
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(DENY_LOOK, stream.peek(&mut first)).await;
        if matches!(peeked, Ok(Ok(1))) && first[0].is_ascii_uppercase() {
            return Box::pin(http::serve(stream, peer, http::Mode::Transparent(orig), shared.clone())).await;
        }
        return deny(shared, entry);
    }
    match sniff(&stream, FIRST_BYTES_TIMEOUT).await {
        Sniffed::Http => Box::pin(http::serve(stream, peer, http::Mode::Transparent(orig), shared.clone())).await,
        Sniffed::Tls(Some(sni)) => {
            entry.proto = "tls";
            entry.dst = format!("{sni}:{}", orig.port());
            let verdict = allow_host(&shared.rules(), &sni, orig.port());
            let Some(rule) = verdict else {
                return deny(shared, entry);
            };
            allow(shared, &mut entry, rule);
            match connect_addr(orig, shared.connect_timeout).await {
                Ok(upstream) => pump_tcp(stream, upstream, entry, shared).await,
                Err(e) => upstream_failed(shared, entry, &e),
            }
        }
        Sniffed::Tls(None) => {
            entry.proto = "tls";
            entry.error = Some("TLS without a server name (SNI): host rules cannot match it".into());
            deny(shared, entry)
        }
        Sniffed::Other => deny(shared, entry),
    }
}

pub fn allow_addr(active: &Active, ip: IpAddr, port: u16) -> Option<String> {
    active.rules.match_addr(ip, port).map(|a| a.rule.to_string())
}

/// By host name; an IP literal is matched by address instead.
pub fn allow_host(active: &Active, host: &str, port: u16) -> Option<String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => allow_addr(active, ip, port),
        Err(_) => active.rules.match_host(host, port).map(|a| a.rule.to_string()),
    }
}

/// Marks a connection or tunnel allowed by `rule` and counts it.
pub fn allow(shared: &Shared, entry: &mut Entry, rule: String) {
    entry.decision = Decision::Allow;
    entry.rule = Some(rule);
    shared.metrics.connection(true);
}

pub fn deny(shared: &Shared, mut entry: Entry) {
    entry.decision = Decision::Deny;
    entry.finish();
    shared.metrics.connection(false);
    shared.log.write(&entry);
}

pub fn upstream_failed(shared: &Shared, mut entry: Entry, e: &UpstreamError) {
    shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
    entry.error = Some(e.to_string());
    entry.finish();
    shared.log.write(&entry);
}

/// `[::1]` for an IPv6 literal in `host:port`.
pub fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

// === Upstream connections ===

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("connecting to {0}: {1}")]
    Connect(String, io::Error),
    #[error("TLS to {0}: {1}")]
    Tls(String, String),
}

impl UpstreamError {
    /// The HTTP answer for a failed upstream: 504 when it timed out, else 502.
    pub fn http_status(&self) -> ::http::StatusCode {
        match self {
            UpstreamError::Timeout(_) => ::http::StatusCode::GATEWAY_TIMEOUT,
            _ => ::http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Connects to `host:port` (resolved here; each address tried in turn) within `timeout` overall.
pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return connect_addr(SocketAddr::new(ip, port), timeout).await;
    }
    let name = format!("{host}:{port}");
    let attempt = async {
        let addrs = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| UpstreamError::Resolve(name.clone(), e.to_string()))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => UpstreamError::Connect(name.clone(), e),
            None => UpstreamError::Resolve(name.clone(), "no addresses".into()),
        })
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| UpstreamError::Timeout(format!("{host}:{port}")))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub async fn connect_addr(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::Timeout(addr.to_string()))?
        .map_err(|e| UpstreamError::Connect(addr.to_string(), e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

// === The byte pump ===

/// Carries bytes between two TCP sockets (zero-copy, see `splice`) until both sides have closed,
/// then logs.
pub async fn pump_tcp(client: TcpStream, upstream: TcpStream, mut entry: Entry, shared: &Shared) {
    let (sent, received, error) = super::splice::relay(&client, &upstream).await;
    // Bytes already sent before the relay (a CONNECT's early data) are counted in.
    let sent = sent + entry.sent;
    entry.sent = sent;
    entry.received = received;
    entry.error = error.map(|e| e.to_string());
    entry.finish();
    shared.metrics.bytes(sent, received);
    shared.log.write(&entry);
}

/// Carries bytes both ways until both sides have closed (a half-close is passed on), then logs.
pub async fn pump<A, B>(client: A, upstream: B, mut entry: Entry, shared: &Shared)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a = Counted::new(client);
    let mut b = Counted::new(upstream);
    let result = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER).await;
    entry.sent = a.read;
    entry.received = b.read;
    if let Err(e) = result {
        entry.error = Some(e.to_string());
    }
    entry.finish();
    shared.metrics.bytes(entry.sent, entry.received);
    shared.log.write(&entry);
}

/// Counts the bytes read through it.
pub struct Counted<S> {
    inner: S,
    pub read: u64,
}

impl<S> Counted<S> {
    pub fn new(inner: S) -> Self {
        Counted { inner, read: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read += n as u64;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// === Sniffing redirected traffic ===

enum Sniffed {
    Http,
    /// A TLS ClientHello, with its server name when it has one.
    Tls(Option<String>),
    Other,
}

async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return Sniffed::Other,
        };
        if n == 0 {
            return Sniffed::Other;
        }
        let data = &buf[..n];
        if data[0] == 0x16 {
            match client_hello_sni(data) {
                Parse::Done(sni) => return Sniffed::Tls(sni),
                Parse::Invalid => return Sniffed::Other,
                Parse::Partial if n == buf.len() => return Sniffed::Other,
                Parse::Partial => {}
            }
        } else if data[0].is_ascii_uppercase() {
            return Sniffed::Http;
        } else {
            return Sniffed::Other;
        }
        // More of the ClientHello is on its way; peek returns at once while data is queued, so wait a
        // little for the rest instead of spinning.
        if n == last {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        last = n;
        if tokio::time::Instant::now() >= deadline {
            return Sniffed::Other;
        }
    }
}

#[derive(Debug, PartialEq)]
enum Parse<T> {
    Done(T),
    Partial,
    Invalid,
}

/// The server name of a TLS ClientHello at the start of `data` (one handshake record).
fn client_hello_sni(data: &[u8]) -> Parse<Option<String>> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u8(&mut self) -> Option<usize> {
            self.take(1).map(|b| b[0] as usize)
        }
        fn u16(&mut self) -> Option<usize> {
            self.take(2).map(|b| ((b[0] as usize) << 8) | b[1] as usize)
        }
        fn u24(&mut self) -> Option<usize> {
            self.take(3)
                .map(|b| ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
        }
    }
    if data.len() < 5 {
        return Parse::Partial;
    }
    let record_len = ((data[3] as usize) << 8) | data[4] as usize;
    if data[1] != 3 || record_len < 4 {
        return Parse::Invalid;
    }
    if data.len() < 5 + record_len {
        return Parse::Partial;
    }
    let parse = || -> Option<Option<String>> {
        let mut r = R(&data[5..5 + record_len]);
        if r.u8()? != 1 {
            return None;
        }
        let len = r.u24()?;
        let mut r = R(r.take(len)?);
        r.take(2 + 32)?;
        let n = r.u8()?;
        r.take(n)?;
        let n = r.u16()?;
        r.take(n)?;
        let n = r.u8()?;
        r.take(n)?;
        if r.0.is_empty() {
            return Some(None);
        }
        let n = r.u16()?;
        let mut ext = R(r.take(n)?);
        while !ext.0.is_empty() {
            let kind = ext.u16()?;
            let n = ext.u16()?;
            let body = ext.take(n)?;
            if kind == 0 {
                let mut s = R(body);
                let n = s.u16()?;
                let mut list = R(s.take(n)?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let n = list.u16()?;
                    let name = list.take(n)?;
                    if name_type == 0 {
                        return std::str::from_utf8(name).ok().map(|s| Some(s.to_string()));
                    }
                }
            }
        }
        Some(None)
    };
    match parse() {
        Some(sni) => Parse::Done(sni),
        // A ClientHello spread over several records is legal but unseen in practice; treat as invalid.
        None => Parse::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello with an SNI extension for `name`.
    fn hello(name: &str) -> Vec<u8> {
        let mut sni = Vec::new();
        let n = name.len() as u16;
        sni.extend_from_slice(&(n + 3).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&n.to_be_bytes());
        sni.extend_from_slice(name.as_bytes());
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // compression: null
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_the_server_name() {
        let h = hello("api.example.com");
        assert_eq!(client_hello_sni(&h), Parse::Done(Some("api.example.com".into())));
        assert_eq!(client_hello_sni(&h[..h.len() - 3]), Parse::Partial);
        assert_eq!(client_hello_sni(&h[..3]), Parse::Partial);
        let mut bad = h.clone();
        bad[5] = 2; // not a ClientHello
        assert_eq!(client_hello_sni(&bad), Parse::Invalid);
    }

    #[tokio::test]
    async fn accepted_connections_inherit_nodelay_from_the_listener() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_nodelay(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(8).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn brackets_ipv6() {
        assert_eq!(bracket("::1"), "[::1]");
        assert_eq!(bracket("10.0.0.1"), "10.0.0.1");
        assert_eq!(bracket("[::1]"), "[::1]");
    }
}
