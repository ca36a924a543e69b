//! The etcd backend: objects as JSON values under `PREFIX/KIND/NAMESPACE/NAME` in an etcd v3 cluster,
//! reached through etcd's v3 JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/watch`) with the
//! same blocking HTTP client as the remote store.
//!
//! Why the gateway and not a gRPC client crate: the [`Store`] trait is blocking, and the gateway is
//! plain HTTP/1.1 JSON, so this backend needs no second async runtime, no protobuf toolchain at build
//! time (`protoc`) and no new dependency; etcd 3.4 and later serve it on the client port.
//!
//! Semantics are sqlite's: the store's revision is etcd's revision; an object's `resourceVersion` is
//! its key's `mod_revision`; create is a transaction that requires the key to be absent; update and
//! delete compare the `mod_revision` they read; a list is one range read (one revision); a watch
//! resumes from a revision, and one that etcd has compacted is `Compacted`. Every request has a
//! deadline, so a cluster without quorum gives `Unavailable`, never a hang.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::blocking::Client;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Event, EventType, Listing, ObjectKey, Revision, Selector, Store, StoreError, Watch};
use crate::model::{Kind, Resource};

/// How a client reaches the cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Every key lives under this (default `/meshctl/`).
    pub prefix: String,
    /// A PEM bundle the members' certificates must chain to (turns on https).
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for clusters that require one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Deadline of one request (a write without quorum fails after it).
    pub timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix: "/meshctl/".to_string(),
            ca: None,
            cert: None,
            key: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl EtcdOptions {
    /// The defaults, with `MESHCTL_ETCD_PREFIX`, `MESHCTL_ETCD_CA`, `MESHCTL_ETCD_CERT` and
    /// `MESHCTL_ETCD_KEY` applied when set.
    pub fn from_env() -> EtcdOptions {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut o = EtcdOptions::default();
        if let Some(p) = var("MESHCTL_ETCD_PREFIX") {
            o.prefix = p.to_string_lossy().into_owned();
        }
        o.ca = var("MESHCTL_ETCD_CA").map(PathBuf::from);
        o.cert = var("MESHCTL_ETCD_CERT").map(PathBuf::from);
        o.key = var("MESHCTL_ETCD_KEY").map(PathBuf::from);
        o
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A watch's HTTP stream is renewed this often (from the last revision seen), so that the thread
/// reading a watch nobody reads any more ends within this long.
const WATCH_RENEW: Duration = Duration::from_secs(300);
/// Events a watch may buffer before its reader waits.
const WATCH_BUFFER: usize = 1024;
/// How often an unconditional update or a delete retries when another writer got in between.
const RETRIES: usize = 16;

pub struct EtcdStore {
    endpoints: Vec<String>,
    /// The endpoint that answered last; requests start there.
    current: AtomicUsize,
    client: Client,
    /// For watches: no overall deadline (they last), the same TLS.
    stream_client: Client,
    prefix: String,
    timeout: Duration,
}

impl EtcdStore {
    /// A client for the cluster at `endpoints` (`HOST:PORT`, tried in order, failing over). Nothing is
    /// sent until the first operation.
    pub fn connect(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::BadRequest("etcd:// needs at least one HOST:PORT".into()));
        }
        super::remote::install_crypto_provider();
        let tls = options.ca.is_some() || options.cert.is_some();
        let scheme = if tls { "https" } else { "http" };
        let endpoints = endpoints
            .iter()
            .map(|e| format!("{scheme}://{}", e.trim().trim_end_matches('/')))
            .collect();
        let build = |timeout: Option<Duration>| -> Result<Client, StoreError> {
            let mut b = Client::builder()
                .user_agent(concat!("meshctl/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .tls_backend_rustls();
            if let Some(ca) = &options.ca {
                b = b.tls_certs_only(super::remote::read_ca(ca)?);
            }
            match (&options.cert, &options.key) {
                (Some(cert), Some(key)) => {
                    let mut pem = read(cert)?;
                    pem.push(b'\n');
                    pem.extend(read(key)?);
                    let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                        StoreError::Unavailable(format!(
                            "the etcd client certificate {} and key {}: {e}",
                            cert.display(),
                            key.display()
                        ))
                    })?;
                    b = b.identity(id);
                }
                (None, None) => {}
                _ => {
                    return Err(StoreError::BadRequest(
                        "an etcd client certificate needs both --etcd-cert and --etcd-key".into(),
                    ));
                }
            }
            b.build()
                .map_err(|e| StoreError::Unavailable(format!("cannot set up an etcd client: {e}")))
        };
        let mut prefix = options.prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(EtcdStore {
            endpoints,
            current: AtomicUsize::new(0),
            client: build(Some(options.timeout))?,
            stream_client: build(Some(WATCH_RENEW))?,
            prefix,
            timeout: options.timeout,
        })
    }

    /// Compacts etcd's history up to `revision`: watches from before it get `Compacted` afterwards.
    pub fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.call(
            "/v3/kv/compaction",
            &json!({"revision": revision.to_string(), "physical": true}),
        )
        .map(|_| ())
    }

    fn key(&self, key: &ObjectKey) -> String {
        format!("{}{}/{}/{}", self.prefix, key.kind.name(), key.namespace, key.name)
    }

    /// The key range a selector covers (the namespace-only case is filtered after reading).
    fn range_of(&self, selector: &Selector) -> (String, String) {
        let start = match (&selector.kind, &selector.namespace) {
            (Some(k), Some(ns)) => format!("{}{}/{}/", self.prefix, k.name(), ns),
            (Some(k), None) => format!("{}{}/", self.prefix, k.name()),
            (None, _) => self.prefix.clone(),
        };
        let end = prefix_end(&start);
        (start, end)
    }

    /// POSTs `body` to `path` on the first endpoint that answers. A request that could not be
    /// delivered (connection refused) moves on to the next endpoint; one that was delivered and
    /// timed out does not (a write may have been applied), and is `Unavailable`.
    fn call(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        self.call_as(path, body)
    }

    /// [`call`](Self::call), decoding a successful answer straight into `T` (one pass over a large
    /// range answer, not text → `Value` → `T`).
    fn call_as<T: serde::de::DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, StoreError> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last_error = String::new();
        for i in 0..n {
            let at = (first + i) % n;
            let url = format!("{}{path}", self.endpoints[at]);
            match self.client.post(&url).json(body).send() {
                Ok(resp) => {
                    self.current.store(at, Ordering::Relaxed);
                    let status = resp.status();
                    let text = resp.text().map_err(|e| self.unavailable(&url, &e))?;
                    if status.is_success() {
                        return serde_json::from_str(&text).map_err(|e| {
                            StoreError::Unavailable(format!("etcd at {url}: an unexpected answer ({e})"))
                        });
                    }
                    let value: Value = serde_json::from_str(&text).map_err(|e| {
                        StoreError::Unavailable(format!("etcd at {url} answered {status} with no JSON ({e}): {text}"))
                    })?;
                    let message = value
                        .get("message")
                        .or_else(|| value.get("error"))
                        .and_then(Value::as_str)
                        .unwrap_or(&text)
                        .to_string();
                    // No leader, not enough members, a member that is stopping: try another.
                    let retry_elsewhere = message.contains("no leader") || message.contains("stopped");
                    last_error = format!("etcd at {url}: {message}");
                    if retry_elsewhere {
                        continue;
                    }
                    return Err(StoreError::Unavailable(last_error));
                }
                Err(e) if e.is_connect() => last_error = format!("cannot connect to etcd at {url}: {e}"),
                Err(e) => return Err(self.unavailable(&url, &e)),
            }
        }
        Err(StoreError::Unavailable(last_error))
    }

    fn unavailable(&self, url: &str, e: &reqwest::Error) -> StoreError {
        if e.is_timeout() {
            StoreError::Unavailable(format!(
                "etcd at {url} did not answer within {} (a cluster without quorum cannot answer)",
                humantime::format_duration(self.timeout)
            ))
        } else {
            StoreError::Unavailable(format!("etcd at {url}: {e}"))
        }
    }

    /// One key's value and mod_revision, or None.
    fn read(&self, key: &ObjectKey) -> Result<Option<(Resource, Revision)>, StoreError> {
        let r: RangeResponse = self.call_as("/v3/kv/range", &json!({"key": b64(&self.key(key))}))?;
        match r.kvs.into_iter().next() {
            None => Ok(None),
            Some(kv) => {
                let rev = kv.mod_revision.0;
                Ok(Some((decode(key.kind, &kv, rev)?, rev)))
            }
        }
    }

    /// A transaction: `compare`, then `on_success`; whether it succeeded and the revision after it.
    fn txn(&self, compare: Value, on_success: Value) -> Result<(bool, Revision), StoreError> {
        let resp = self.call(
            "/v3/kv/txn",
            &json!({"compare": [compare], "success": [on_success], "failure": []}),
        )?;
        let succeeded = resp.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let revision = header_revision(&resp)?;
        Ok((succeeded, revision))
    }

    /// The object as it is stored: namespace explicit, uid and creationTimestamp set, no
    /// resourceVersion (that is the key's mod_revision, added on every read).
    fn stamp(object: &Resource, key: &ObjectKey, uid: &str, created: &str) -> Result<(String, Resource), StoreError> {
        let mut stored = object.clone();
        let m = &mut stored.metadata;
        m.namespace = Some(key.namespace.clone());
        m.resource_version = None;
        m.uid = Some(uid.to_string());
        m.creation_timestamp = Some(created.to_string());
        let body =
            serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(format!("cannot encode {key}: {e}")))?;
        let stored = Resource::from_json(key.kind, &body)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode {key}: {e}")))?;
        Ok((body, stored))
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        self.read(key)?
            .map(|(o, _)| o)
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    fn list(&self, selector: &Selector) -> Result<Listing, StoreError> {
        let (start, end) = self.range_of(selector);
        let r: RangeResponse = self.call_as("/v3/kv/range", &json!({"key": b64(&start), "range_end": b64(&end)}))?;
        let revision = r.header.revision.0;
        let mut items = Vec::with_capacity(r.kvs.len());
        for kv in &r.kvs {
            let Some(key) = self.object_key(&kv.key) else { continue };
            if !selector.matches(&key) {
                continue;
            }
            items.push(decode(key.kind, kv, kv.mod_revision.0)?);
        }
        items.sort_by(|a, b| ObjectKey::of(a).cmp(&ObjectKey::of(b)));
        Ok(Listing { items, revision })
    }

    fn create(&self, object: &Resource) -> Result<Resource, StoreError> {
        super::check_write(object)?;
        let key = ObjectKey::of(object);
        let uid = uuid::Uuid::new_v4().to_string();
        let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let (body, mut stored) = Self::stamp(object, &key, &uid, &created)?;
        let k = b64(&self.key(&key));
        let (ok, revision) = self.txn(
            json!({"key": k, "target": "CREATE", "create_revision": "0", "result": "EQUAL"}),
            json!({"request_put": {"key": k, "value": b64(&body)}}),
        )?;
        if !ok {
            return Err(StoreError::AlreadyExists(key));
        }
        stored.metadata.resource_version = Some(revision.to_string());
        Ok(stored)
    }

    fn update(&self, object: &Resource) -> Result<Resource, StoreError> {
        super::check_write(object)?;
        let key = ObjectKey::of(object);
        let sent = object.metadata.resource_version.as_deref().filter(|v| !v.is_empty());
        for _ in 0..RETRIES {
            let Some((current, rev)) = self.read(&key)? else {
                return Err(StoreError::NotFound(key));
            };
            if let Some(sent) = sent {
                if sent != rev.to_string() {
                    return Err(StoreError::Conflict {
                        key,
                        sent: sent.to_string(),
                        current: rev.to_string(),
                    });
                }
            }
            let m = &current.metadata;
            let (body, mut stored) = Self::stamp(
                object,
                &key,
                m.uid.as_deref().unwrap_or_default(),
                m.creation_timestamp.as_deref().unwrap_or_default(),
            )?;
            let k = b64(&self.key(&key));
            let (ok, revision) = self.txn(
                json!({"key": k, "target": "MOD", "mod_revision": rev.to_string(), "result": "EQUAL"}),
                json!({"request_put": {"key": k, "value": b64(&body)}}),
            )?;
            if ok {
                stored.metadata.resource_version = Some(revision.to_string());
                return Ok(stored);
            }
            // Changed (or deleted) since it was read: with a resourceVersion sent, that is a
            // conflict, reported against what is there now; without, read again and retry.
        }
        Err(StoreError::Unavailable(format!(
            "{key}: gave up after {RETRIES} attempts: other writers kept changing it"
        )))
    }

    fn delete(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        // One request, atomic: the key goes and its last value comes back.
        let r: DeleteResponse = self.call_as(
            "/v3/kv/deleterange",
            &json!({"key": b64(&self.key(key)), "prev_kv": true}),
        )?;
        let Some(prev) = r.prev_kvs.first() else {
            return Err(StoreError::NotFound(key.clone()));
        };
        // As sqlite does: the deleted object carries the deletion's revision.
        decode(key.kind, prev, r.header.revision.0)
    }

    fn watch(&self, selector: &Selector, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let (start, end) = self.range_of(selector);
        let opened = self.open_watch(&start, &end, after)?;
        let (tx, rx) = sync_channel(WATCH_BUFFER);
        let dropped = Arc::new(AtomicBool::new(false));
        let reader = WatchReader {
            dropped: dropped.clone(),
            client: self.stream_client.clone(),
            endpoints: self.endpoints.clone(),
            start,
            end,
            prefix: self.prefix.clone(),
            selector: selector.clone(),
            tx,
        };
        std::thread::Builder::new()
            .name("meshctl-etcd-watch".into())
            .spawn(move || reader.run(opened, after))
            .map_err(|e| StoreError::Unavailable(format!("cannot start a watch thread: {e}")))?;
        Ok(Box::new(EtcdWatch { rx, dropped }))
    }

    fn revision(&self) -> Result<Revision, StoreError> {
        let resp = self.call(
            "/v3/kv/range",
            &json!({"key": b64(&self.prefix), "range_end": b64(&prefix_end(&self.prefix)), "count_only": true}),
        )?;
        header_revision(&resp)
    }
}

impl EtcdStore {
    fn object_key(&self, raw: &str) -> Option<ObjectKey> {
        object_key(&self.prefix, raw)
    }

    /// Opens the watch stream and reads its first message: created, or cancelled because `after` is
    /// compacted (`Compacted`, before anything is returned to the caller).
    fn open_watch(
        &self,
        start: &str,
        end: &str,
        after: Revision,
    ) -> Result<BufReader<reqwest::blocking::Response>, StoreError> {
        open_stream(&self.stream_client, &self.endpoints, start, end, after)
    }
}

fn open_stream(
    client: &Client,
    endpoints: &[String],
    start: &str,
    end: &str,
    after: Revision,
) -> Result<BufReader<reqwest::blocking::Response>, StoreError> {
    let body = json!({"create_request": {
        "key": b64(start),
        "range_end": b64(end),
        "start_revision": (after + 1).to_string(),
        "prev_kv": true,
    }});
    let mut last = String::new();
    for endpoint in endpoints {
        let url = format!("{endpoint}/v3/watch");
        let resp = match client.post(&url).json(&body).send() {
            Ok(r) => r,
            Err(e) => {
                last = format!("etcd at {url}: {e}");
                continue;
            }
        };
        if !resp.status().is_success() {
            last = format!("etcd at {url} answered {}", resp.status());
            continue;
        }
        let mut reader = BufReader::new(resp);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| StoreError::Unavailable(format!("etcd at {url}: the watch stream failed: {e}")))?;
        let msg: WatchMessage = serde_json::from_str(&line)
            .map_err(|e| StoreError::Unavailable(format!("etcd at {url}: an unreadable watch answer ({e}): {line}")))?;
        if let Some(err) = msg.error {
            last = format!("etcd at {url}: {}", err.message);
            continue;
        }
        let result = msg.result.unwrap_or_default();
        if result.canceled {
            let compact = result.compact_revision.0;
            if compact > 0 {
                return Err(StoreError::Compacted {
                    requested: after,
                    oldest: compact.saturating_sub(1),
                });
            }
            return Err(StoreError::Unavailable(format!(
                "etcd at {url} cancelled the watch: {}",
                result.cancel_reason
            )));
        }
        return Ok(reader);
    }
    Err(StoreError::Unavailable(last))
}

/// Reads a watch stream on its own thread and hands events to [`EtcdWatch::next`].
struct WatchReader {
    /// Set when the [`EtcdWatch`] is dropped: the stream is not renewed for nobody.
    dropped: Arc<AtomicBool>,
    client: Client,
    endpoints: Vec<String>,
    start: String,
    end: String,
    prefix: String,
    selector: Selector,
    tx: SyncSender<Result<Event, StoreError>>,
}

impl WatchReader {
    fn run(self, first: BufReader<reqwest::blocking::Response>, after: Revision) {
        let mut cursor = after;
        let mut stream = first;
        loop {
            match self.pump(&mut stream, &mut cursor) {
                // The receiver is gone: nobody watches any more.
                Pump::Closed => return,
                Pump::Failed(e) => {
                    let _ = self.tx.send(Err(e));
                    return;
                }
                Pump::Ended if self.dropped.load(Ordering::Relaxed) => return,
                // The stream ended (renewal deadline, a member going away): resume from the cursor.
                Pump::Ended => match open_stream(&self.client, &self.endpoints, &self.start, &self.end, cursor) {
                    Ok(s) => stream = s,
                    Err(e) => {
                        let _ = self.tx.send(Err(e));
                        return;
                    }
                },
            }
        }
    }

    fn pump(&self, stream: &mut BufReader<reqwest::blocking::Response>, cursor: &mut Revision) -> Pump {
        let mut line = String::new();
        loop {
            line.clear();
            match stream.read_line(&mut line) {
                Ok(0) | Err(_) => return Pump::Ended,
                Ok(_) => {}
            }
            let Ok(msg) = serde_json::from_str::<WatchMessage>(&line) else {
                continue;
            };
            let Some(result) = msg.result else {
                return Pump::Ended;
            };
            if result.canceled {
                let compact = result.compact_revision.0;
                return Pump::Failed(if compact > 0 {
                    StoreError::Compacted {
                        requested: *cursor,
                        oldest: compact.saturating_sub(1),
                    }
                } else {
                    StoreError::Unavailable(format!("etcd cancelled the watch: {}", result.cancel_reason))
                });
            }
            for ev in result.events {
                let revision = ev.kv.mod_revision.0;
                let Some(key) = object_key(&self.prefix, &ev.kv.key) else {
                    continue;
                };
                if !self.selector.matches(&key) {
                    *cursor = (*cursor).max(revision);
                    continue;
                }
                let event = match ev.kind.as_str() {
                    "DELETE" => match ev.prev_kv.as_ref().map(|p| decode(key.kind, p, revision)) {
                        Some(Ok(object)) => Ok(Event {
                            kind: EventType::Deleted,
                            revision,
                            object,
                        }),
                        Some(Err(e)) => Err(e),
                        None => continue,
                    },
                    _ => decode(key.kind, &ev.kv, revision).map(|object| Event {
                        kind: if ev.kv.create_revision.0 == revision {
                            EventType::Added
                        } else {
                            EventType::Modified
                        },
                        revision,
                        object,
                    }),
                };
                *cursor = (*cursor).max(revision);
                if self.tx.send(event).is_err() {
                    return Pump::Closed;
                }
            }
        }
    }
}

enum Pump {
    Closed,
    Failed(StoreError),
    Ended,
}

struct EtcdWatch {
    rx: Receiver<Result<Event, StoreError>>,
    dropped: Arc<AtomicBool>,
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Relaxed);
    }
}

impl Watch for EtcdWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<Event>, StoreError> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => r.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Unavailable("the etcd watch ended".into())),
        }
    }
}

// === The gateway's JSON ===

/// etcd's int64 fields, which the gateway writes as strings.
#[derive(Debug, Default, Clone, Copy)]
struct I64(u64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(I64(match &v {
            Value::String(s) => s.parse().unwrap_or(0),
            Value::Number(n) => n.as_u64().unwrap_or(0),
            _ => 0,
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
struct Header {
    #[serde(default)]
    revision: I64,
}

#[derive(Debug, Deserialize)]
struct Kv {
    /// Base64.
    key: String,
    #[serde(default)]
    create_revision: I64,
    #[serde(default)]
    mod_revision: I64,
    /// Base64; absent for a DELETE event's kv.
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
struct RangeResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Debug, Deserialize)]
struct DeleteResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    prev_kvs: Vec<Kv>,
}

#[derive(Debug, Deserialize)]
struct WatchMessage {
    result: Option<WatchResult>,
    error: Option<GatewayError>,
}

#[derive(Debug, Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
struct WatchResult {
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    compact_revision: I64,
    #[serde(default)]
    cancel_reason: String,
    #[serde(default)]
    events: Vec<WatchEvent>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    /// `PUT` (the default, omitted) or `DELETE`.
    #[serde(default, rename = "type")]
    kind: String,
    kv: Kv,
    prev_kv: Option<Kv>,
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Unavailable(format!("an unexpected answer from etcd: {e}")))
}

fn header_revision(v: &Value) -> Result<Revision, StoreError> {
    let h: Header = v.get("header").cloned().map(parse).transpose()?.unwrap_or_default();
    Ok(h.revision.0)
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(s: &str) -> Option<String> {
    B64.decode(s).ok().and_then(|b| String::from_utf8(b).ok())
}

/// The smallest key after every key that starts with `prefix` (etcd's range_end for a prefix).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".to_string()
}

/// `PREFIX/KIND/NAMESPACE/NAME` (base64) → the key; None for a key that is not an object's.
fn object_key(prefix: &str, raw: &str) -> Option<ObjectKey> {
    let key = unb64(raw)?;
    let rest = key.strip_prefix(prefix)?;
    let mut parts = rest.splitn(3, '/');
    let kind_name = parts.next()?;
    let kind = Kind::ALL.iter().copied().find(|k| k.name() == kind_name)?;
    let namespace = parts.next()?;
    let name = parts.next()?;
    Some(ObjectKey::new(kind, namespace, name))
}

/// A stored value back into an object, with `resourceVersion` set to `revision`.
fn decode(kind: Kind, kv: &Kv, revision: Revision) -> Result<Resource, StoreError> {
    let body = unb64(&kv.value)
        .ok_or_else(|| StoreError::Unavailable(format!("etcd key {:?}: the value is not UTF-8", unb64(&kv.key))))?;
    let mut object = Resource::from_json(kind, &body).map_err(|e| {
        StoreError::Unavailable(format!(
            "etcd key {}: a stored {kind} cannot be read: {e}",
            unb64(&kv.key).unwrap_or_default()
        ))
    })?;
    object.metadata.resource_version = Some(revision.to_string());
    Ok(object)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/meshctl/"), "/meshctl0");
        assert_eq!(prefix_end("/a/EgressRule/"), "/a/EgressRule0");
    }

    #[test]
    fn object_keys_round_trip() {
        let k = object_key("/m/", &b64("/m/EgressRule/default/mysql")).unwrap();
        assert_eq!(k, ObjectKey::new(Kind::EgressRule, "default", "mysql"));
        let k = object_key("/m/", &b64("/m/DestinationPolicy/ns/cb")).unwrap();
        assert_eq!(k, ObjectKey::new(Kind::DestinationPolicy, "ns", "cb"));
        assert!(object_key("/m/", &b64("/m/Unknown/default/x")).is_none());
        assert!(object_key("/m/", &b64("/other/EgressRule/default/x")).is_none());
    }
}
