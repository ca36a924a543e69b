//! The access log: one line per TCP connection, tunnel or HTTP request. Lines are formatted by the
//! connection that ends and written by one thread, so a slow log file never stalls traffic; when the
//! writer falls more than a queue behind, lines are dropped and counted rather than blocking.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line of words and key=value pairs.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// One access log line's facts.
#[derive(Debug, Clone)]
pub struct Entry {
    pub start: SystemTime,
    /// tcp, tls, http, connect or socks5.
    pub proto: &'static str,
    pub src: SocketAddr,
    /// `host:port` or `ip:port`.
    pub dst: String,
    pub method: Option<String>,
    pub url: Option<String>,
    pub status: Option<u16>,
    pub decision: Decision,
    /// `egress-rule/NAMESPACE/NAME`.
    pub rule: Option<String>,
    /// Client to upstream.
    pub sent: u64,
    /// Upstream to client.
    pub received: u64,
    pub duration: Duration,
    pub error: Option<String>,
    /// For mesh requests: where the routing sent them.
    pub mesh: Option<Box<MeshInfo>>,
}

/// What routing made of a mesh request.
#[derive(Debug, Clone, Default)]
pub struct MeshInfo {
    /// `FQDN:PORT`.
    pub service: String,
    /// `version=v3`; empty for the whole service.
    pub subset: String,
    /// The endpoint of the last attempt.
    pub upstream: Option<String>,
    pub retries: u32,
    /// `delay` or `abort` when a fault was injected.
    pub fault: Option<&'static str>,
}

impl Entry {
    pub fn new(proto: &'static str, src: SocketAddr, dst: String) -> Entry {
        Entry {
            start: SystemTime::now(),
            proto,
            src,
            dst,
            method: None,
            url: None,
            status: None,
            decision: Decision::Deny,
            rule: None,
            sent: 0,
            received: 0,
            duration: Duration::ZERO,
            error: None,
            mesh: None,
        }
    }

    /// Sets the duration from the start to now.
    pub fn finish(&mut self) {
        self.duration = self.start.elapsed().unwrap_or_default();
    }

    /// The host name of the destination, when it was given by name (HTTP, CONNECT, SOCKS5, TLS SNI).
    pub fn host(&self) -> Option<&str> {
        let host = match self.dst.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.dst,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            None
        } else {
            Some(host)
        }
    }

    pub fn format(&self, format: Format) -> String {
        let time = humantime::format_rfc3339_millis(self.start);
        let ms = self.duration.as_secs_f64() * 1000.0;
        let mut s = String::with_capacity(160);
        match format {
            Format::Text => {
                let _ = write!(
                    s,
                    "{time} {} {} -> {} {}",
                    self.proto,
                    self.src,
                    self.dst,
                    self.decision.as_str()
                );
                if let Some(m) = &self.method {
                    let _ = write!(s, " {m}");
                }
                if let Some(u) = &self.url {
                    let _ = write!(s, " {u}");
                }
                if let Some(c) = self.status {
                    let _ = write!(s, " {c}");
                }
                let _ = write!(
                    s,
                    " rule={} sent={} received={} duration={ms:.1}ms",
                    self.rule.as_deref().unwrap_or("-"),
                    self.sent,
                    self.received
                );
                if let Some(m) = &self.mesh {
                    let _ = write!(s, " service={}", m.service);
                    if !m.subset.is_empty() {
                        let _ = write!(s, " subset={}", m.subset);
                    }
                    if let Some(u) = &m.upstream {
                        let _ = write!(s, " upstream={u}");
                    }
                    let _ = write!(s, " retries={}", m.retries);
                    if let Some(f) = m.fault {
                        let _ = write!(s, " fault={f}");
                    }
                }
                if let Some(e) = &self.error {
                    let _ = write!(s, " error={}", serde_json::Value::String(e.clone()));
                }
            }
            Format::Json => {
                let mut v = serde_json::json!({
                    "time": time.to_string(),
                    "proto": self.proto,
                    "src": self.src.to_string(),
                    "dst": self.dst,
                    "host": self.host(),
                    "method": self.method,
                    "url": self.url,
                    "status": self.status,
                    "decision": self.decision.as_str(),
                    "rule": self.rule,
                    "sent": self.sent,
                    "received": self.received,
                    "duration_ms": (ms * 1000.0).round() / 1000.0,
                    "error": self.error,
                });
                if let (Some(m), Some(o)) = (&self.mesh, v.as_object_mut()) {
                    o.insert("service".into(), m.service.clone().into());
                    o.insert("subset".into(), m.subset.clone().into());
                    o.insert("upstream".into(), m.upstream.clone().into());
                    o.insert("retries".into(), m.retries.into());
                    o.insert("fault".into(), m.fault.into());
                }
                s = v.to_string();
            }
        }
        s
    }
}

enum Message {
    Line(String),
    /// Write out everything before this, then answer.
    Flush(SyncSender<()>),
}

pub struct AccessLog {
    tx: Option<SyncSender<Message>>,
    format: Format,
    dropped: AtomicU64,
}

/// Lines the writer may fall behind by before new ones are dropped.
const QUEUE: usize = 65_536;

impl AccessLog {
    /// Whether lines are written at all (`--no-access-log` turns the log off).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Opens the log: standard output when `path` is None or `-`, else the file (appended to).
    pub fn open(path: Option<&Path>, format: Format) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match path {
            None => Box::new(io::stdout()),
            Some(p) if p.as_os_str() == "-" => Box::new(io::stdout()),
            Some(p) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("meshctl-access-log".into())
            .spawn(move || writer(rx, out))?;
        Ok(AccessLog {
            tx: Some(tx),
            format,
            dropped: AtomicU64::new(0),
        })
    }

    /// A log that writes nothing (for `meshctl check` and tests).
    pub fn disabled() -> AccessLog {
        AccessLog {
            tx: None,
            format: Format::Text,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn write(&self, entry: &Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Message::Line(entry.format(self.format))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes out every line logged so far (at shutdown), waiting at most `timeout`.
    pub fn flush(&self, timeout: std::time::Duration) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How long the writer rests after each batch. While it rests, connections queue their lines
/// without waking it, so a busy proxy pays one wake-up and one write per batch instead of per line;
/// a line still reaches the log within a few milliseconds.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// Writes lines in batches: waits for one, takes every line queued behind it, writes and flushes
/// them together, then rests briefly.
fn writer(rx: Receiver<Message>, out: Box<dyn Write + Send>) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut take = |m: Message, out: &mut io::BufWriter<Box<dyn Write + Send>>| match m {
            // Standard output closed or the disk full: keep draining, so traffic is not held up.
            Message::Line(line) => {
                let _ = writeln!(out, "{line}");
            }
            Message::Flush(ack) => acks.push(ack),
        };
        take(first, &mut out);
        while let Ok(m) = rx.try_recv() {
            take(m, &mut out);
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
        std::thread::sleep(BATCH_PAUSE);
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut e = Entry::new("tcp", "127.0.0.1:40000".parse().unwrap(), "127.0.0.1:3306".into());
        e.start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_489_600_123);
        e.duration = Duration::from_micros(1500);
        e
    }

    #[test]
    fn text_lines() {
        let mut e = entry();
        assert_eq!(
            e.format(Format::Text),
            "2025-11-30T08:00:00.123Z tcp 127.0.0.1:40000 -> 127.0.0.1:3306 deny rule=- sent=0 received=0 duration=1.5ms"
        );
        e.decision = Decision::Allow;
        e.rule = Some("egress-rule/default/mysql".into());
        e.proto = "http";
        e.method = Some("GET".into());
        e.url = Some("http://api.example.com/x".into());
        e.status = Some(200);
        e.sent = 10;
        e.received = 20;
        e.error = Some("upstream \"reset\"".into());
        assert_eq!(
            e.format(Format::Text),
            "2025-11-30T08:00:00.123Z http 127.0.0.1:40000 -> 127.0.0.1:3306 allow GET http://api.example.com/x 200 \
             rule=egress-rule/default/mysql sent=10 received=20 duration=1.5ms error=\"upstream \\\"reset\\\"\""
        );
    }

    #[test]
    fn json_lines() {
        let v: serde_json::Value = serde_json::from_str(&entry().format(Format::Json)).unwrap();
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["dst"], "127.0.0.1:3306");
        assert_eq!(v["rule"], serde_json::Value::Null);
        assert_eq!(v["host"], serde_json::Value::Null);
        let mut e = entry();
        e.dst = "api.example.com:443".into();
        let v: serde_json::Value = serde_json::from_str(&e.format(Format::Json)).unwrap();
        assert_eq!(v["host"], "api.example.com");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["time"], "2025-11-30T08:00:00.123Z");
    }
}
