//! `meshctl proxy`: HTTP forward proxying, CONNECT and SOCKS5 tunnels, `https` origination, the access
//! log and the admin port, against in-process test servers on 127.0.0.1 (OS-chosen ports), with curl
//! as the client where a real client matters and raw sockets where exact bytes matter.
//!
//! Host names: `localhost` is the only name these tests rely on resolving. Wildcard rules are checked
//! with `*.localhost`: where `api.localhost` resolves (systemd-resolved), the request must reach the
//! server; where it does not (plain glibc, as on the development machine), the proxy must still
//! *allow* it (access log `allow rule=egress-rule/default/wild`, a 5xx upstream error and never the
//! 403 denial), while the exact rule `localhost` must deny it.
//!
//! The helpers here (`pub(crate)`) are shared with `proxy_faults.rs`.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::common::{Proxy, meshctl, proxy};

/// Bounds for waiting on something that should happen promptly; only a failure bound, never a
/// measured duration.
pub(crate) const WAIT: Duration = Duration::from_secs(20);
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

// === In-process test servers ===

/// A server on 127.0.0.1 (OS-chosen port) run by a tokio runtime on its own thread; stopped (its
/// listener and every connection closed) when dropped.
pub(crate) struct TestServer {
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub(crate) fn start<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1:0");
                let listener = socket.listen(4096).expect("listen");
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                count.fetch_add(1, Ordering::SeqCst);
                                tokio::spawn(handler(stream));
                            }
                            // Out of descriptors for a moment: try again shortly.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                }
            });
        });
        let port = port_rx.recv().expect("test server port");
        TestServer {
            port,
            accepted,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads a request or response head (up to and including the blank line); None on EOF, error or a
/// head over 1 MiB.
pub(crate) async fn read_head_async<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            buf.truncate(pos + 4);
            return Some(buf);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Answers one request with what it saw: `scheme=`, `method=`, `host=` (the Host header) and `path=`
/// (the request target), one per line, then closes.
pub(crate) async fn answer_request<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, scheme: &str, hits: Arc<AtomicUsize>) {
    // The head, then a Content-Length body if any (its size is reported as `body=`).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 1 << 20 {
            return;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let host = header("host").unwrap_or_default();
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() - head_end < length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut first = head.split("\r\n").next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    hits.fetch_add(1, Ordering::SeqCst);
    let body = format!("scheme={scheme}\nmethod={method}\nhost={host}\npath={path}\nbody={length}\n");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

/// A plain HTTP server; `hits` counts the requests it answered.
pub(crate) struct HttpServer {
    pub server: TestServer,
    pub hits: Arc<AtomicUsize>,
}

impl HttpServer {
    pub(crate) fn port(&self) -> u16 {
        self.server.port
    }
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub(crate) fn http_server() -> HttpServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = TestServer::start(move |s| answer_request(s, "http", h.clone()));
    HttpServer { server, hits }
}

/// A test CA and a server certificate for `localhost` (and 127.0.0.1) it signed.
pub(crate) struct Pki {
    pub ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

pub(crate) fn test_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "meshctl proxy test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// An HTTPS server (rustls, ring) with the PKI's server certificate; `hits` counts requests answered
/// after a completed handshake.
pub(crate) fn https_server(pki: &Pki) -> HttpServer {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
        )
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = TestServer::start(move |s| {
        let acceptor = acceptor.clone();
        let hits = h.clone();
        async move {
            if let Ok(tls) = acceptor.accept(s).await {
                answer_request(tls, "https", hits).await;
            }
        }
    });
    HttpServer { server, hits }
}

/// Echoes every byte back until the client closes its side, then closes.
pub(crate) fn echo_server() -> TestServer {
    TestServer::start(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
}

/// A port on 127.0.0.1 that never answers a connect: its listener's accept queue is full, so further
/// SYNs go unanswered. Holds the listener and the connections that fill the queue.
pub(crate) struct Unanswering {
    pub addr: std::net::SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

/// An [`Unanswering`] port, or None (with a note on stderr) when this network stack completes
/// connections beyond the backlog, so that no hanging upstream can be made on 127.0.0.1.
pub(crate) fn unanswering_port(test: &str) -> Option<Unanswering> {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        eprintln!("{test}: cannot build a non-answering port on this network stack; not checked");
        return None;
    }
    Some(Unanswering {
        addr,
        _listener: listener,
        _fillers: fillers,
    })
}

/// A port on 127.0.0.1 that nothing listens on (bound by the OS, then released).
pub(crate) fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// === Rule files ===

pub(crate) fn egress_rule(name: &str, service: &str, ports: &[(u16, &str)]) -> String {
    let mut s = format!(
        "apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  destination:\n    service: \"{service}\"\n  ports:\n"
    );
    for (port, protocol) in ports {
        s.push_str(&format!("  - port: {port}\n    protocol: {protocol}\n"));
    }
    s
}

/// A temporary HOME with a `rules/` directory for `-f`.
pub(crate) struct Setup {
    pub home: tempfile::TempDir,
    pub rules: PathBuf,
}

pub(crate) fn setup(files: &[(&str, String)]) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let rules = home.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for (name, content) in files {
        std::fs::write(rules.join(name), content).unwrap();
    }
    Setup { home, rules }
}

impl Setup {
    pub(crate) fn proxy(&self, extra: &[&str]) -> Proxy {
        let mut args = vec!["-f".to_string(), self.rules.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        proxy(self.home.path(), args)
    }

    pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.rules.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

// === Clients ===

#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

fn parse_status(head: &str) -> Result<u16, String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: {line:?}"));
    }
    parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in {line:?}"))
}

/// The value of the first header `name` (case-insensitive) in a request or response head.
pub(crate) fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Reads a response head one byte at a time (so nothing after it, e.g. tunnelled bytes, is consumed).
pub(crate) fn read_head_exact(s: &mut impl Read) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => {
                return Err(format!(
                    "connection closed before a complete response head ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ));
            }
            Ok(_) => buf.push(byte[0]),
            Err(e) => return Err(format!("reading the response head: {e}")),
        }
        if buf.len() > 1 << 20 {
            return Err("response head over 1 MiB".to_string());
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads a whole response (Content-Length, chunked, or to EOF).
pub(crate) fn read_response(s: &mut impl Read) -> Result<Resp, String> {
    let head = read_head_exact(s)?;
    let status = parse_status(&head)?;
    let mut body = Vec::new();
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        s.read_exact(&mut body)
            .map_err(|e| format!("reading a {len}-byte body: {e}"))?;
    } else if chunked {
        let mut raw = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(decoded) = decode_chunked(&raw) {
                body = decoded;
                break;
            }
            let n = s.read(&mut chunk).map_err(|e| format!("reading a chunked body: {e}"))?;
            if n == 0 {
                return Err("connection closed inside a chunked body".to_string());
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if status != 304 && status != 204 && !(100..200).contains(&status) {
        let _ = s.read_to_end(&mut body);
    }
    Ok(Resp {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The decoded body once `raw` holds a complete chunked body.
fn decode_chunked(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&raw[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            find(&raw[at..], b"\r\n")?;
            return Some(out);
        }
        if raw.len() < at + size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

pub(crate) fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// `GET URL` (absolute form) through the proxy's explicit port, `Connection: close`.
pub(crate) fn get_via(proxy: &Proxy, url: &str) -> Result<Resp, String> {
    let authority = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = authority.split('/').next().unwrap_or_default();
    let mut s = connect(&proxy.listen);
    let req =
        format!("GET {url} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: meshctl-test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    read_response(&mut s)
}

/// Like `get_via`, panicking on a transport error.
pub(crate) fn must_get(proxy: &Proxy, url: &str) -> Resp {
    get_via(proxy, url)
        .unwrap_or_else(|e| panic!("GET {url} through the proxy: {e}\n--- proxy stderr\n{}", proxy.stderr()))
}

/// `CONNECT TARGET` on the explicit port: the response head, and the stream for the tunnel.
pub(crate) fn connect_via(proxy: &Proxy, target: &str) -> (Result<u16, String>, TcpStream) {
    let mut s = connect(&proxy.listen);
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let status = read_head_exact(&mut s).and_then(|h| parse_status(&h));
    (status, s)
}

/// A SOCKS5 CONNECT with a domain name (ATYP 3) or an IPv4 address (ATYP 1): Ok(stream) after reply
/// 0x00, Err(reply code) otherwise.
pub(crate) fn socks5_via(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, u8> {
    let mut s = connect(&proxy.listen);
    s.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).expect("SOCKS5 method choice");
    assert_eq!(choice, [5, 0], "the proxy must accept SOCKS5 without authentication");
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let reply = read_socks5_reply(&mut s).expect("SOCKS5 reply");
    if reply == 0 { Ok(s) } else { Err(reply) }
}

/// Reads a whole SOCKS5 reply (VER REP RSV ATYP BND.ADDR BND.PORT) and returns REP.
pub(crate) fn read_socks5_reply(s: &mut impl Read) -> Result<u8, String> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head)
        .map_err(|e| format!("reading the SOCKS5 reply: {e}"))?;
    if head[0] != 5 {
        return Err(format!("SOCKS5 reply with version {}", head[0]));
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).map_err(|e| e.to_string())?;
            len[0] as usize + 2
        }
        other => return Err(format!("SOCKS5 reply with address type {other}")),
    };
    let mut addr = vec![0u8; rest];
    s.read_exact(&mut addr)
        .map_err(|e| format!("reading the SOCKS5 bound address: {e}"))?;
    Ok(head[1])
}

/// Whether the peer has closed: a read returns EOF or a reset (not a timeout).
pub(crate) fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Sends `data` through an established stream and reads the same number of bytes back.
pub(crate) fn echo_round(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).expect("write through the tunnel");
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).expect("read the echo through the tunnel");
    assert!(back == data, "the echo came back altered");
}

/// GET on the admin port: (status, body).
pub(crate) fn admin_get(proxy: &Proxy, path: &str) -> Resp {
    let addr = proxy
        .admin
        .strip_prefix("http://")
        .unwrap_or(&proxy.admin)
        .trim_end_matches('/');
    let mut s = connect(addr);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s).unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
}

/// The sum of the samples of `name` whose labels include every `labels` pair (Prometheus text).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric_name != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv.trim() == format!("{k}=\"{v}\"")))
        {
            let v: f64 = value.trim().parse().ok()?;
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// Runs curl with a private environment (no proxy variables), `-sS --max-time 10` and ARGS:
/// (exit code, stdout, stderr).
pub(crate) fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("run curl (is it installed?)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The access log lines (so far) that contain every one of `needles`.
pub(crate) fn log_lines<'l>(log: &'l str, needles: &[&str]) -> Vec<&'l str> {
    log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
}

/// Waits for an access log line containing every one of `needles`, and returns it.
pub(crate) fn wait_log_line(proxy: &Proxy, needles: &[&str]) -> String {
    let log = proxy.wait_log(WAIT, |log| !log_lines(log, needles).is_empty());
    match log_lines(&log, needles).first() {
        Some(line) => line.to_string(),
        None => panic!(
            "no access log line with {needles:?}\n--- access log\n{log}\n--- stderr\n{}",
            proxy.stderr()
        ),
    }
}

/// Asserts a normal allowed request through the proxy still works.
pub(crate) fn assert_still_serving(proxy: &Proxy, server: &HttpServer, what: &str) {
    let url = format!("http://localhost:{}/still-serving", server.port());
    let r = get_via(proxy, &url).unwrap_or_else(|e| panic!("after {what}: {e}\n--- stderr\n{}", proxy.stderr()));
    assert_eq!(r.status, 200, "after {what}: {r:?}\n--- stderr\n{}", proxy.stderr());
    assert!(r.body.contains("path=/still-serving"), "after {what}: {r:?}");
    assert!(
        !proxy.stderr().contains("panicked"),
        "after {what}:\n{}",
        proxy.stderr()
    );
}

/// Whether `name` resolves on this machine (for the wildcard tests).
fn resolves(name: &str) -> bool {
    use std::net::ToSocketAddrs;
    (name, 80)
        .to_socket_addrs()
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

// === Tests ===

#[test]
fn http_requests_are_allowed_or_denied_by_host_and_port() {
    let web = http_server();
    let other = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);
    let proxy_url = format!("http://{}", p.listen);

    // Allowed: curl as the client, the server sees an origin-form request with the Host header.
    let url = format!("http://localhost:{}/allowed/path?q=1", web.port());
    let (code, out, err) = curl(&["--proxy", &proxy_url, &url]);
    assert_eq!(code, 0, "curl {url}: {err}\n--- proxy stderr\n{}", p.stderr());
    assert!(out.contains("scheme=http\n"), "{out}");
    assert!(out.contains("method=GET\n"), "{out}");
    assert!(out.contains(&format!("host=localhost:{}\n", web.port())), "{out}");
    assert!(out.contains("path=/allowed/path?q=1\n"), "{out}");
    assert_eq!(web.hits(), 1);

    // Same host, a port no rule opens: 403, and the server behind it is never contacted.
    let denied_url = format!("http://localhost:{}/secret", other.port());
    let (code, out, err) = curl(&["--proxy", &proxy_url, "-o", "-", "-w", "\n%{http_code}", &denied_url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("\n403"), "{out}");
    assert!(out.contains("no EgressRule allows"), "{out}");
    assert!(out.contains("localhost"), "the body names the destination: {out}");
    assert_eq!(other.hits(), 0);
    assert_eq!(other.server.accepted(), 0, "a denied request must not connect upstream");

    // A host no rule names (it need not even resolve): 403 naming it.
    let r = must_get(&p, &format!("http://denied.example.com:{}/x", web.port()));
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.head.starts_with("HTTP/1.1 403"), "{}", r.head);
    assert!(r.body.contains("no EgressRule allows"), "{r:?}");
    assert!(
        r.body.contains("denied.example.com"),
        "the body names the destination: {r:?}"
    );
    assert_eq!(web.hits(), 1);

    // Access log (text): one line per request, with the decision and the rule.
    let line = wait_log_line(&p, &[&format!("http://localhost:{}/allowed/path", web.port()), " 200"]);
    assert!(line.contains(" http ") && line.contains(" GET http://"), "{line}");
    assert!(line.contains(" allow "), "{line}");
    assert!(line.contains("rule=egress-rule/default/web"), "{line}");
    let line = wait_log_line(&p, &["denied.example.com"]);
    assert!(line.contains(" http ") && line.contains(" GET http://"), "{line}");
    assert!(line.contains(" 403"), "{line}");
    assert!(line.contains(" deny "), "{line}");
    assert!(line.contains("rule=-"), "{line}");
    let line = wait_log_line(&p, &[&format!("http://localhost:{}/secret", other.port())]);
    assert!(line.contains(" deny ") && line.contains(" 403"), "{line}");
}

#[test]
fn wildcard_rules_match_subdomains_and_exact_rules_do_not() {
    let web = http_server();
    let s = setup(&[("exact.yaml", egress_rule("exact", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);
    let sub = format!("http://api.localhost:{}/wild", web.port());

    // Only the exact rule: a subdomain of it is denied, by HTTP and by CONNECT.
    let r = must_get(&p, &sub);
    assert_eq!(r.status, 403, "an exact rule must not match a subdomain: {r:?}");
    assert!(
        r.body.contains("no EgressRule allows") && r.body.contains("api.localhost"),
        "{r:?}"
    );
    let (status, _) = connect_via(&p, &format!("api.localhost:{}", web.port()));
    assert_eq!(status, Ok(403));
    // The exact name itself is allowed.
    let r = must_get(&p, &format!("http://localhost:{}/exact", web.port()));
    assert_eq!(r.status, 200, "{r:?}");

    // Add `*.localhost` (picked up without a restart).
    s.write(
        "wild.yaml",
        &egress_rule("wild", "*.localhost", &[(web.port(), "http")]),
    );
    let deadline = Instant::now() + WAIT;
    let r = loop {
        let r = must_get(&p, &sub);
        if r.status != 403 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = wait_log_line(&p, &["api.localhost", " allow "]);
    assert!(line.contains("rule=egress-rule/default/wild"), "{line}");
    if resolves("api.localhost") {
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains(&format!("host=api.localhost:{}", web.port())), "{r:?}");
    } else {
        // Allowed, but the name does not resolve here: an upstream error, never the denial.
        assert!(
            (500..600).contains(&r.status),
            "allowed by the wildcard, unresolvable here: {r:?}"
        );
        assert!(!r.body.contains("no EgressRule allows"), "{r:?}");
    }

    // The wildcard covers the CONNECT target too; a name outside the domain stays denied.
    let (status, _) = connect_via(&p, &format!("api.localhost:{}", web.port()));
    let status = status.unwrap_or(0);
    assert_ne!(status, 403, "CONNECT to a wildcard-allowed host must not be denied");
    let (status, _) = connect_via(&p, &format!("api.localhost.example:{}", web.port()));
    assert_eq!(status, Ok(403));
    let r = must_get(&p, &format!("http://notlocalhost:{}/x", web.port()));
    assert_eq!(r.status, 403, "`*.localhost` must not match `notlocalhost`: {r:?}");
    let r = must_get(&p, &format!("http://api.localhost:{}/x", closed_port()));
    assert_eq!(r.status, 403, "the wildcard rule opens only its port: {r:?}");
}

#[test]
fn check_command_matches_exact_and_wildcard_hosts() {
    let s = setup(&[
        ("exact.yaml", egress_rule("exact", "localhost", &[(8080, "http")])),
        ("wild.yaml", egress_rule("wild", "*.localhost", &[(8080, "http")])),
    ]);
    let rules = path_str(&s.rules);
    let out = meshctl(["check", "http://api.localhost:8080", "-f", &rules]).run();
    out.code(0);
    assert!(
        out.stdout.starts_with("allowed") && out.stdout.contains("by egress-rule/default/wild"),
        "{}",
        out.stdout
    );
    let out = meshctl(["check", "http://localhost:8080", "-f", &rules]).run();
    out.code(0);
    assert!(
        out.stdout.starts_with("allowed") && out.stdout.contains("by egress-rule/default/exact"),
        "{}",
        out.stdout
    );
    let out = meshctl(["check", "http://api.example.com:8080", "-f", &rules]).run();
    out.code(1);
    assert!(out.stdout.contains("denied: no EgressRule allows"), "{}", out.stdout);
    let out = meshctl(["check", "http://api.localhost:9090", "-f", &rules]).run();
    out.code(1);
    let out = meshctl(["check", "not a destination", "-f", &rules]).run();
    out.code(2);
}

#[test]
fn https_ports_originate_tls_verified_with_the_upstream_ca() {
    let pki = test_pki();
    let wrong = test_pki();
    let tls = https_server(&pki);
    let s = setup(&[(
        "secure.yaml",
        egress_rule("secure", "localhost", &[(tls.port(), "https")]),
    )]);
    let ca = s.home.path().join("ca.pem");
    let wrong_ca = s.home.path().join("wrong-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&wrong_ca, &wrong.ca_pem).unwrap();

    // A plain http:// request to a port whose protocol is https goes out over TLS.
    let p = s.proxy(&["--upstream-ca", &path_str(&ca)]);
    let url = format!("http://localhost:{}/secure", tls.port());
    let (code, out, err) = curl(&["--proxy", &format!("http://{}", p.listen), &url]);
    assert_eq!(code, 0, "{err}\n--- proxy stderr\n{}", p.stderr());
    assert!(out.contains("scheme=https\n"), "the server must have seen TLS: {out}");
    assert!(out.contains("path=/secure\n"), "{out}");
    assert!(out.contains(&format!("host=localhost:{}", tls.port())), "{out}");
    assert_eq!(tls.hits(), 1);
    let line = wait_log_line(&p, &["/secure", " 200"]);
    assert!(
        line.contains(" allow ") && line.contains("rule=egress-rule/default/secure"),
        "{line}"
    );
    drop(p);

    // With a CA that did not sign the server's certificate: 502, and no request reaches the server.
    let p = s.proxy(&["--upstream-ca", &path_str(&wrong_ca)]);
    let r = must_get(&p, &url);
    assert_eq!(r.status, 502, "an untrusted upstream certificate: {r:?}");
    assert_eq!(tls.hits(), 1);
    let line = wait_log_line(&p, &["/secure", " 502"]);
    assert!(
        line.contains("error="),
        "an upstream failure is logged with its error: {line}"
    );

    // CONNECT is tunnelled untouched: the client's own TLS to the server works whatever the proxy's CA.
    let tunnelled = format!("https://localhost:{}/tunnel", tls.port());
    let (code, out, err) = curl(&[
        "--proxy",
        &format!("http://{}", p.listen),
        "--cacert",
        &path_str(&ca),
        &tunnelled,
    ]);
    assert_eq!(code, 0, "{err}\n--- proxy stderr\n{}", p.stderr());
    assert!(
        out.contains("scheme=https\n") && out.contains("path=/tunnel\n"),
        "{out}"
    );
    assert_eq!(tls.hits(), 2);
}

#[test]
fn connect_tunnels_are_allowed_or_denied() {
    let web = http_server();
    let other = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);

    // curl through a CONNECT tunnel (-p): the server sees the request as the client sent it.
    let url = format!("http://localhost:{}/through-tunnel", web.port());
    let (code, out, err) = curl(&["-p", "--proxy", &format!("http://{}", p.listen), &url]);
    assert_eq!(code, 0, "{err}\n--- proxy stderr\n{}", p.stderr());
    assert!(out.contains("path=/through-tunnel\n"), "{out}");
    assert_eq!(web.hits(), 1);
    let line = wait_log_line(&p, &[" connect ", " allow "]);
    assert!(line.contains("rule=egress-rule/default/web"), "{line}");
    assert!(line.contains(&web.port().to_string()), "{line}");

    // Raw CONNECT: 200, then bytes flow both ways.
    let (status, mut tunnel) = connect_via(&p, &format!("localhost:{}", web.port()));
    assert_eq!(status, Ok(200));
    tunnel
        .write_all(format!("GET /raw HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", web.port()).as_bytes())
        .unwrap();
    let r = read_response(&mut tunnel).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("path=/raw\n"), "{r:?}");

    // Denied: a port no rule opens, and a host no rule names.
    let (status, _) = connect_via(&p, &format!("localhost:{}", other.port()));
    assert_eq!(status, Ok(403));
    let (status, _) = connect_via(&p, &format!("nowhere.example.com:{}", web.port()));
    assert_eq!(status, Ok(403));
    assert_eq!(other.server.accepted(), 0);
    let (code, _, _) = curl(&[
        "-p",
        "--proxy",
        &format!("http://{}", p.listen),
        &format!("http://localhost:{}/no", other.port()),
    ]);
    assert_ne!(code, 0, "curl must fail when the CONNECT is refused");
    let line = wait_log_line(&p, &[" connect ", " deny ", "nowhere.example.com"]);
    assert!(line.contains("rule=-"), "{line}");
}

#[test]
fn socks5_tunnels_are_allowed_or_denied() {
    let web = http_server();
    let other = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);
    let socks = format!("socks5h://{}", p.listen);

    // curl with the name resolved by the proxy (socks5h).
    let url = format!("http://localhost:{}/via-socks", web.port());
    let (code, out, err) = curl(&["--proxy", &socks, &url]);
    assert_eq!(code, 0, "{err}\n--- proxy stderr\n{}", p.stderr());
    assert!(out.contains("path=/via-socks\n"), "{out}");
    assert_eq!(web.hits(), 1);
    let line = wait_log_line(&p, &[" socks5 ", " allow "]);
    assert!(line.contains("rule=egress-rule/default/web"), "{line}");

    // Raw: reply 0x00 and a working tunnel.
    let mut tunnel = socks5_via(&p, "localhost", web.port()).expect("SOCKS5 to an allowed host");
    tunnel
        .write_all(format!("GET /raw-socks HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", web.port()).as_bytes())
        .unwrap();
    let r = read_response(&mut tunnel).unwrap();
    assert!(r.body.contains("path=/raw-socks\n"), "{r:?}");

    // Denied: reply 0x02 (connection not allowed by ruleset), then the proxy closes.
    let mut s1 = connect(&p.listen);
    s1.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    s1.read_exact(&mut choice).unwrap();
    assert_eq!(choice, [5, 0]);
    let mut req = vec![5, 1, 0, 3, 9];
    req.extend_from_slice(b"localhost");
    req.extend_from_slice(&other.port().to_be_bytes());
    s1.write_all(&req).unwrap();
    assert_eq!(read_socks5_reply(&mut s1), Ok(2));
    assert!(closed_by_peer(&mut s1), "the proxy closes after a denial");
    assert_eq!(socks5_via(&p, "nowhere.example.com", web.port()).err(), Some(2));
    assert_eq!(other.server.accepted(), 0);

    let (code, _, _) = curl(&["--proxy", &socks, &format!("http://localhost:{}/no", other.port())]);
    assert_ne!(code, 0, "curl must fail when SOCKS5 refuses");
    let line = wait_log_line(&p, &[" socks5 ", " deny ", "nowhere.example.com"]);
    assert!(line.contains("rule=-"), "{line}");
}

#[test]
fn socks5_and_forwards_to_addresses_use_tcp_rules() {
    let echo = echo_server();
    let denied_echo = echo_server();
    let s = setup(&[("db.yaml", egress_rule("db", "127.0.0.1/32", &[(echo.port, "tcp")]))]);
    let p = s.proxy(&[
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", echo.port),
        "--forward",
        &format!("127.0.0.1:0=127.0.0.1:{}", denied_echo.port),
    ]);
    assert_eq!(p.forwards.len(), 2, "{}", p.stderr());

    // SOCKS5 with an IPv4 address: matched by CIDR and port.
    let mut t = socks5_via(&p, "127.0.0.1", echo.port).expect("SOCKS5 to an allowed address");
    echo_round(&mut t, b"hello over socks");
    assert_eq!(socks5_via(&p, "127.0.0.1", denied_echo.port).err(), Some(2));

    // --forward: allowed carries bytes; denied is closed at once without contacting the upstream.
    let mut f = connect(&p.forwards[0]);
    echo_round(&mut f, b"hello over a forward");
    let mut d = connect(&p.forwards[1]);
    let _ = d.write_all(b"anyone?");
    assert!(closed_by_peer(&mut d), "a denied TCP connection is closed");
    assert_eq!(denied_echo.accepted(), 0);
    drop(f);
    let line = wait_log_line(&p, &[" tcp ", " deny ", &format!("127.0.0.1:{}", denied_echo.port)]);
    assert!(line.contains("rule=-"), "{line}");
    let line = wait_log_line(&p, &[" tcp ", " allow ", &format!("127.0.0.1:{}", echo.port)]);
    assert!(line.contains("rule=egress-rule/default/db"), "{line}");
    assert!(line.contains("sent=20") && line.contains("received=20"), "{line}");
}

#[test]
fn a_rule_added_to_the_directory_takes_effect_without_restart() {
    let web = http_server();
    let late = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);
    assert!(p.stderr().contains("1 EgressRule"), "{}", p.stderr());
    let url = format!("http://localhost:{}/late", late.port());
    assert_eq!(must_get(&p, &url).status, 403);
    let dump = admin_get(&p, "/config_dump");
    let before: serde_json::Value = serde_json::from_str(&dump.body).expect("config_dump is JSON");
    let rev_before = before["revision"].as_u64().expect("revision");

    s.write("late.yaml", &egress_rule("late", "localhost", &[(late.port(), "http")]));
    let deadline = Instant::now() + WAIT;
    let r = loop {
        let r = must_get(&p, &url);
        if r.status != 403 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 200, "{r:?}\n--- stderr\n{}", p.stderr());
    assert!(r.body.contains("path=/late\n"), "{r:?}");
    let err = p.wait_stderr(WAIT, |e| e.contains("2 EgressRules"));
    assert!(err.contains("2 EgressRules"), "{err}");

    let dump: serde_json::Value = serde_json::from_str(&admin_get(&p, "/config_dump").body).unwrap();
    assert!(dump["revision"].as_u64().unwrap() > rev_before, "{dump}");
    let names: Vec<&str> = dump["egressRules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"web") && names.contains(&"late"), "{names:?}");

    // Removing it takes effect too.
    std::fs::remove_file(s.rules.join("late.yaml")).unwrap();
    let deadline = Instant::now() + WAIT;
    let r = loop {
        let r = must_get(&p, &url);
        if r.status == 403 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        must_get(&p, &format!("http://localhost:{}/still", web.port())).status,
        200
    );
}

#[test]
fn an_invalid_rule_set_is_refused_and_the_last_good_one_stays() {
    let web = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&[]);
    s.write(
        "broken.yaml",
        &egress_rule("broken", "api.*.example.com", &[(443, "https")]),
    );
    let err = p.wait_stderr(WAIT, |e| e.contains("meshctl proxy: refused the rule set"));
    assert!(err.contains("meshctl proxy: refused the rule set"), "{err}");
    assert_eq!(
        must_get(&p, &format!("http://localhost:{}/kept", web.port())).status,
        200
    );
    let metrics = admin_get(&p, "/metrics").body;
    assert!(
        metric(&metrics, "meshctl_proxy_reloads_refused_total", &[]).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
}

#[test]
fn access_log_in_json() {
    let web = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let p = s.proxy(&["--log-format", "json"]);
    let ok_url = format!("http://localhost:{}/json-ok", web.port());
    assert_eq!(must_get(&p, &ok_url).status, 200);
    let denied_url = format!("http://denied.example.com:{}/json-no", web.port());
    assert_eq!(must_get(&p, &denied_url).status, 403);

    let log = p.wait_log(WAIT, |l| l.contains("json-ok") && l.contains("json-no"));
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}")))
        .collect();
    for e in &entries {
        for key in [
            "time",
            "proto",
            "src",
            "dst",
            "host",
            "method",
            "url",
            "status",
            "decision",
            "rule",
            "sent",
            "received",
            "duration_ms",
            "error",
        ] {
            assert!(e.get(key).is_some(), "no `{key}` in {e}");
        }
    }
    let ok = entries
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.contains("/json-ok")))
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(ok["proto"], "http", "{ok}");
    assert_eq!(ok["method"], "GET", "{ok}");
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["decision"], "allow", "{ok}");
    assert_eq!(ok["rule"], "egress-rule/default/web", "{ok}");
    assert!(ok["host"].as_str().is_some_and(|h| h.starts_with("localhost")), "{ok}");
    assert!(ok["src"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")), "{ok}");
    assert!(ok["received"].as_u64().is_some_and(|n| n > 0), "{ok}");
    assert!(ok["duration_ms"].is_number(), "{ok}");
    assert!(ok["error"].is_null(), "{ok}");
    assert!(
        ok["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{ok}"
    );

    let no = entries
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.contains("/json-no")))
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(no["decision"], "deny", "{no}");
    assert_eq!(no["status"], 403, "{no}");
    assert!(no["rule"].is_null(), "{no}");
    assert!(
        no["host"].as_str().is_some_and(|h| h.starts_with("denied.example.com")),
        "{no}"
    );
}

#[test]
fn access_log_to_a_file() {
    let web = http_server();
    let s = setup(&[("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")]))]);
    let file = s.home.path().join("access.log");
    let p = s.proxy(&["--access-log", &path_str(&file)]);
    assert_eq!(
        must_get(&p, &format!("http://localhost:{}/to-file", web.port())).status,
        200
    );
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("/to-file") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = text
        .lines()
        .find(|l| l.contains("/to-file"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(line.contains(" allow ") && line.contains(" 200"), "{line}");
    assert!(
        !p.access_log().contains("/to-file"),
        "the access log went to the file, not stdout"
    );
}

#[test]
fn admin_port_ready_metrics_and_config_dump() {
    let web = http_server();
    let s = setup(&[
        ("web.yaml", egress_rule("web", "localhost", &[(web.port(), "http")])),
        ("db.yaml", egress_rule("db", "10.0.0.5/32", &[(3306, "tcp")])),
    ]);
    let p = s.proxy(&[]);

    let ready = admin_get(&p, "/ready");
    assert_eq!(ready.status, 200, "{ready:?}");

    assert_eq!(must_get(&p, &format!("http://localhost:{}/m1", web.port())).status, 200);
    assert_eq!(must_get(&p, &format!("http://localhost:{}/m2", web.port())).status, 200);
    assert_eq!(
        must_get(&p, &format!("http://denied.example.com:{}/m3", web.port())).status,
        403
    );
    // A request with a body (sent = bytes client -> upstream).
    let (code, out, err) = curl(&[
        "--proxy",
        &format!("http://{}", p.listen),
        "--data-binary",
        "twenty bytes of body",
        &format!("http://localhost:{}/m4", web.port()),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("method=POST\n") && out.contains("body=20\n"), "{out}");
    let line = wait_log_line(&p, &["/m4"]);
    assert!(line.contains(" POST ") && line.contains("sent=20 "), "{line}");
    wait_log_line(&p, &["/m3"]);

    let m = admin_get(&p, "/metrics");
    assert_eq!(m.status, 200);
    let text = &m.body;
    let allowed = metric(text, "meshctl_proxy_requests_total", &[("decision", "allow")]);
    let denied = metric(text, "meshctl_proxy_requests_total", &[("decision", "deny")]);
    assert_eq!(allowed, Some(3.0), "{text}");
    assert_eq!(denied, Some(1.0), "{text}");
    assert!(
        metric(text, "meshctl_proxy_connections_total", &[("decision", "allow")]).is_some(),
        "{text}"
    );
    assert!(
        metric(text, "meshctl_proxy_connections_total", &[("decision", "deny")]).is_some(),
        "{text}"
    );
    let sent = metric(text, "meshctl_proxy_bytes_total", &[("direction", "sent")]).expect(text);
    let received = metric(text, "meshctl_proxy_bytes_total", &[("direction", "received")]).expect(text);
    assert!(sent >= 20.0 && received > 0.0, "{text}");
    assert!(
        metric(text, "meshctl_proxy_active_connections", &[]).is_some(),
        "{text}"
    );
    assert!(metric(text, "meshctl_proxy_reloads_total", &[]).is_some(), "{text}");
    assert!(
        metric(text, "meshctl_proxy_reloads_refused_total", &[]).is_some(),
        "{text}"
    );
    let revision = metric(text, "meshctl_proxy_rules_revision", &[]).expect(text);

    let dump = admin_get(&p, "/config_dump");
    assert_eq!(dump.status, 200);
    let dump: serde_json::Value = serde_json::from_str(&dump.body).expect("config_dump is JSON");
    assert_eq!(dump["revision"].as_f64(), Some(revision), "{dump}");
    assert!(dump["source"].is_string(), "{dump}");
    let rules = dump["egressRules"].as_array().expect("egressRules");
    assert_eq!(rules.len(), 2, "{dump}");
    let web_rule = rules
        .iter()
        .find(|r| r["metadata"]["name"] == "web")
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(web_rule["kind"], "EgressRule", "{web_rule}");
    assert_eq!(web_rule["spec"]["destination"]["service"], "localhost", "{web_rule}");
    assert_eq!(web_rule["spec"]["ports"][0]["port"], web.port(), "{web_rule}");
    let db_rule = rules.iter().find(|r| r["metadata"]["name"] == "db").unwrap();
    assert_eq!(db_rule["spec"]["destination"]["service"], "10.0.0.5/32", "{db_rule}");

    let stderr = p.stderr();
    assert!(
        stderr.contains(&format!(
            "meshctl proxy: rules at revision {revision}: 2 EgressRules (from "
        )),
        "{stderr}"
    );
}
