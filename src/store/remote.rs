//! The remote store: the REST API of `meshctl serve` (docs/api.md), which follows the Kubernetes API
//! conventions, so this client would also talk to an API server with Istio's v1alpha2 CRDs.
//!
//! Blocking (reqwest's blocking client), like the [`Store`] trait. TLS is rustls with the *ring*
//! provider; the server is verified against the system's roots (rustls-platform-verifier), or only
//! against a CA given in PEM when the context names one. Plain `http://` is allowed to loopback
//! addresses only, so a token never crosses a network in the clear.
//!
//! Failures arrive as Kubernetes `Status` objects and become [`StoreError`]s here, in one function
//! ([`status_error`]); a store that cannot be reached is `Unavailable` with the URL in the message.
//!
//! A blocking reqwest client runs its own small runtime: create and drop a `RemoteStore` outside any
//! tokio runtime (or inside `spawn_blocking`).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{Event, EventType, Listing, ObjectKey, Revision, Selector, Store, StoreError, Watch};
use crate::diag::{Code, Diagnostic, ObjectRef, Severity};
use crate::model::{API_VERSION, Kind, Resource};

/// The API prefix every path starts with.
const API_PREFIX: [&str; 3] = ["apis", "config.istio.io", "v1alpha2"];

/// Connecting (TCP and TLS) must not take longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request (and each read of a response body) must not take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A watch stream with nothing on it for this long is dead: the server sends a bookmark every 15 s.
const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// How long a watch keeps trying to reconnect before it reports the store unavailable.
const WATCH_RECONNECT_FOR: Duration = Duration::from_secs(30);
/// Events buffered between a watch's reader thread and its consumer.
const WATCH_BUFFER: usize = 1024;

/// How to reach and authenticate to a remote store.
#[derive(Clone, Default)]
pub struct RemoteOptions {
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// A PEM file of CA certificates: when set, the server's certificate must chain to one of them
    /// (and the system's roots are not used).
    pub ca_cert: Option<PathBuf>,
}

/// Never shows the token.
impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// A store behind `meshctl serve` (or a Kubernetes API server).
pub struct RemoteStore {
    base: Url,
    client: Client,
    /// The CA certificates, kept to build watch clients (which need another timeout).
    ca: Option<Vec<reqwest::Certificate>>,
    token: Option<String>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Installs rustls's *ring* provider as the process default, once (reqwest is built without one).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another part of the program installed one first, which is as good.
        let _ignored = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Checks a remote store's URL: `https://HOST[:PORT][/PREFIX]`, or `http://` to a loopback address.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&parsed) {
                return Err(format!(
                    "`{url}`: plain http:// is allowed only to a loopback address (127.0.0.1, [::1], localhost), \
                     so that tokens and rules never cross a network in the clear; use https://"
                ));
            }
        }
        other => {
            return Err(format!(
                "`{url}`: unsupported scheme `{other}`: a store is sqlite:PATH, https://HOST:PORT or http://127.0.0.1:PORT"
            ));
        }
    }
    if parsed.host().is_none() {
        return Err(format!("`{url}` names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "`{url}`: credentials do not belong in the URL; use a context with a token (meshctl context add)"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("`{url}`: a store URL takes no query or fragment"));
    }
    Ok(parsed)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl RemoteStore {
    /// A client for the store at `url` (see [`parse_url`]). Nothing is sent yet.
    pub fn new(url: &str, options: RemoteOptions) -> Result<RemoteStore, StoreError> {
        let base = parse_url(url).map_err(StoreError::BadRequest)?;
        install_crypto_provider();
        let ca = match &options.ca_cert {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        let client = build_client(ca.as_deref(), Some(REQUEST_TIMEOUT))
            .map_err(|e| StoreError::Unavailable(format!("cannot set up a client for {base}: {}", chain(&e))))?;
        Ok(RemoteStore {
            base,
            client,
            ca,
            token: options.token.filter(|t| !t.is_empty()),
        })
    }

    /// The store's URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `…/namespaces/{ns}/{plural}[/{name}]`, or `…/{plural}` for every namespace.
    fn url_for(&self, kind: Kind, namespace: Option<&str>, name: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(API_PREFIX);
            if let Some(ns) = namespace {
                segments.extend(["namespaces", ns]);
            }
            segments.push(kind.plural());
            if let Some(name) = name {
                segments.push(name);
            }
        }
        url
    }

    fn request(&self, client: &Client, method: Method, url: Url) -> RequestBuilder {
        let mut req = client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends a request; a non-success answer becomes a `StoreError` (via `key` for its object).
    fn send(&self, req: RequestBuilder, url: &Url, key: Option<&ObjectKey>) -> Result<Response, StoreError> {
        let response = req.send().map_err(|e| unreachable(url, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().unwrap_or_default();
        Err(self.status_error(status, &body, url, key))
    }

    /// Sends a request and decodes the object it answers with.
    fn object(&self, req: RequestBuilder, url: &Url, key: &ObjectKey) -> Result<Resource, StoreError> {
        let response = self.send(req, url, Some(key))?;
        let body = response.text().map_err(|e| unreachable(url, &e))?;
        let value: Value = serde_json::from_str(&body).map_err(|e| bad_answer(url, &e.to_string()))?;
        decode_object(key.kind, value).map_err(|e| bad_answer(url, &e))
    }

    fn write(&self, method: Method, object: &Resource, name_in_path: bool) -> Result<Resource, StoreError> {
        let key = ObjectKey::of(object);
        let url = self.url_for(
            key.kind,
            Some(&key.namespace),
            name_in_path.then_some(key.name.as_str()),
        );
        let body = serde_json::to_vec(object).map_err(|e| StoreError::BadRequest(format!("{key}: {e}")))?;
        let req = self
            .request(&self.client, method, url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match self.object(req, &url, &key) {
            Err(StoreError::Conflict { key, sent, current }) if current.is_empty() => {
                // The Status does not say which version the store has; ask, for a useful message.
                let current = self
                    .get(&key)
                    .ok()
                    .and_then(|o| o.metadata.resource_version)
                    .unwrap_or_else(|| "a newer one".to_string());
                Err(StoreError::Conflict { key, sent, current })
            }
            other => other,
        }
    }

    /// Turns a failure answer (a `Status` object, or whatever a proxy in between sent) into an error.
    fn status_error(&self, code: StatusCode, body: &str, url: &Url, key: Option<&ObjectKey>) -> StoreError {
        let status: Status = serde_json::from_str(body).unwrap_or_default();
        status_error(code, status, url, key)
    }
}

pub(crate) fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, StoreError> {
    let pem = std::fs::read(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot read the CA certificate {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        StoreError::Unavailable(format!(
            "{}: not a PEM certificate bundle: {}",
            path.display(),
            chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(StoreError::Unavailable(format!(
            "{}: no certificate in the file (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn build_client(ca: Option<&[reqwest::Certificate]>, timeout: Option<Duration>) -> reqwest::Result<Client> {
    let mut builder = Client::builder()
        .user_agent(concat!("meshctl/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        // The API never redirects; following one could carry the token somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_rustls();
    if let Some(ca) = ca {
        builder = builder.tls_certs_only(ca.iter().cloned());
    }
    builder.build()
}

/// An error with its causes, `a: b: c` (TLS failures say what was wrong only in a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn unreachable(url: &Url, e: &reqwest::Error) -> StoreError {
    let what = if e.is_timeout() {
        "timed out talking to"
    } else if e.is_connect() {
        "cannot connect to"
    } else {
        "cannot talk to"
    };
    StoreError::Unavailable(format!("{what} the store at {}: {}", origin(url), chain(e)))
}

fn bad_answer(url: &Url, what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the store at {} sent an answer meshctl cannot read ({url}): {what}",
        origin(url)
    ))
}

/// `https://host:port`, for messages.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

// === Status ===

/// A Kubernetes `Status` (only what this client reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Status {
    message: Option<String>,
    reason: Option<String>,
    details: Option<StatusDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusDetails {
    causes: Vec<StatusCause>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusCause {
    field: Option<String>,
    message: Option<String>,
    /// meshctl's diagnostic code (`E0304`); absent from other servers.
    code: Option<String>,
}

/// The one mapping from an HTTP failure to a [`StoreError`].
fn status_error(code: StatusCode, status: Status, url: &Url, key: Option<&ObjectKey>) -> StoreError {
    let message = status
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("{code} from {url}"));
    let reason = status.reason.as_deref().unwrap_or("");
    match (code.as_u16(), key) {
        (404, Some(key)) if reason != "MethodNotAllowed" => StoreError::NotFound(key.clone()),
        (404, None) => StoreError::Unavailable(format!(
            "{} does not serve the config store API ({code} for {url}): is it `meshctl serve`?",
            origin(url)
        )),
        (409, Some(key)) if reason == "AlreadyExists" => StoreError::AlreadyExists(key.clone()),
        (409, Some(key)) => StoreError::Conflict {
            key: key.clone(),
            sent: number_after(&message, "you sent resourceVersion ").unwrap_or_else(|| "?".to_string()),
            current: number_after(&message, "the store has ").unwrap_or_default(),
        },
        (422, _) => {
            let key = key.cloned().unwrap_or_else(|| ObjectKey::new(Kind::EgressRule, "", ""));
            let diagnostics = status
                .details
                .map(|d| d.causes)
                .unwrap_or_default()
                .into_iter()
                .map(|c| cause_diagnostic(&key, c))
                .collect();
            StoreError::Invalid { key, diagnostics }
        }
        (410, _) => StoreError::Compacted {
            requested: 0,
            oldest: number_after(&message, "oldest revision kept is ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        },
        (401, _) => StoreError::Unauthorized(format!(
            "{message} (the store at {} needs a valid token: give one with `meshctl context add --token-file` or MESHCTL_TOKEN)",
            origin(url)
        )),
        (403, _) => StoreError::Forbidden(message),
        (400 | 405 | 413 | 415, _) => StoreError::BadRequest(message),
        _ => StoreError::Unavailable(format!("the store at {} failed: {message} ({code})", origin(url))),
    }
}

/// The decimal number right after `prefix` in `text`, if any.
fn number_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

fn cause_diagnostic(key: &ObjectKey, cause: StatusCause) -> Diagnostic {
    let code = cause
        .code
        .as_deref()
        .and_then(|c| Code::ALL.iter().copied().find(|k| k.id() == c))
        .unwrap_or(Code::InvalidValue);
    Diagnostic {
        severity: Severity::Error,
        code,
        message: cause.message.unwrap_or_else(|| "invalid value".to_string()),
        help: None,
        file: std::sync::Arc::from(key.to_string()),
        span: None,
        document: None,
        object: ObjectRef {
            kind: Some(key.kind.name().to_string()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
        },
        field: cause.field.filter(|f| !f.is_empty()),
        snippet: None,
    }
}

// === Decoding ===

/// Decodes an object the server sent, of a kind the request named.
fn decode_object(kind: Kind, mut value: Value) -> Result<Resource, String> {
    let Some(object) = value.as_object_mut() else {
        return Err("expected a JSON object".to_string());
    };
    // A Kubernetes API server sends more metadata than the model knows (managedFields, ...).
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.retain(|k, _| crate::model::Metadata::FIELDS.contains(&k.as_str()));
    }
    // apiVersion is required by the decoder; a lenient server might leave it out of list items.
    object
        .entry("apiVersion")
        .or_insert_with(|| Value::String(API_VERSION.to_string()));
    object
        .entry("kind")
        .or_insert_with(|| Value::String(kind.name().to_string()));
    let name = object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    Resource::from_json(kind, &value.to_string()).map_err(|e| format!("{kind} {name}: {e}"))
}

fn revision_of(object: &Value) -> Option<Revision> {
    object.get("metadata")?.get("resourceVersion")?.as_str()?.parse().ok()
}

/// A List answer (`EgressRuleList`).
#[derive(Debug, Deserialize)]
struct List {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ListMeta {
    resource_version: Option<String>,
}

// === impl Store ===

impl Store for RemoteStore {
    fn get(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        let url = self.url_for(key.kind, Some(&key.namespace), Some(&key.name));
        let req = self.request(&self.client, Method::GET, url.clone());
        self.object(req, &url, key)
    }

    /// One request per kind when the selector names none (the API lists one kind at a time); the
    /// revision is then the lowest of the lists', so a watch from it misses nothing.
    fn list(&self, selector: &Selector) -> Result<Listing, StoreError> {
        let kinds = selector.kind.map_or_else(|| Kind::ALL.to_vec(), |k| vec![k]);
        let mut items = Vec::new();
        let mut revision: Option<Revision> = None;
        for kind in kinds {
            let url = self.url_for(kind, selector.namespace.as_deref(), None);
            let req = self.request(&self.client, Method::GET, url.clone());
            let response = self.send(req, &url, None)?;
            let body = response.text().map_err(|e| unreachable(&url, &e))?;
            let list: List = serde_json::from_str(&body).map_err(|e| bad_answer(&url, &e.to_string()))?;
            for item in list.items {
                items.push(decode_object(kind, item).map_err(|e| bad_answer(&url, &e))?);
            }
            let rev = list
                .metadata
                .resource_version
                .and_then(|r| r.parse::<Revision>().ok())
                .unwrap_or(0);
            revision = Some(revision.map_or(rev, |r| r.min(rev)));
        }
        items.sort_by(|a, b| (a.kind, a.namespace(), a.name()).cmp(&(b.kind, b.namespace(), b.name())));
        Ok(Listing {
            items,
            revision: revision.unwrap_or(0),
        })
    }

    fn create(&self, object: &Resource) -> Result<Resource, StoreError> {
        self.write(Method::POST, object, false)
    }

    fn update(&self, object: &Resource) -> Result<Resource, StoreError> {
        self.write(Method::PUT, object, true)
    }

    fn delete(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        let url = self.url_for(key.kind, Some(&key.namespace), Some(&key.name));
        let req = self.request(&self.client, Method::DELETE, url.clone());
        self.object(req, &url, key)
    }

    /// One stream per kind (the API watches one kind at a time), each read by a thread that
    /// reconnects from the last revision it saw when the connection drops. With several kinds, events
    /// are in revision order per kind.
    fn watch(&self, selector: &Selector, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let client = build_client(self.ca.as_deref(), Some(WATCH_IDLE_TIMEOUT))
            .map_err(|e| StoreError::Unavailable(format!("cannot set up a client for {}: {}", self.base, chain(&e))))?;
        let (tx, rx) = mpsc::sync_channel(WATCH_BUFFER);
        let kinds = selector.kind.map_or_else(|| Kind::ALL.to_vec(), |k| vec![k]);
        for kind in kinds {
            let stream = WatchStream {
                client: client.clone(),
                url: self.url_for(kind, selector.namespace.as_deref(), None),
                token: self.token.clone(),
                kind,
                last: after,
            };
            // Open the first connection here, so that a refused watch (410, 403) is this call's error.
            let response = stream.connect()?;
            std::thread::Builder::new()
                .name(format!("watch-{}", kind.plural()))
                .spawn({
                    let tx = tx.clone();
                    move || stream.run(response, &tx)
                })
                .map_err(|e| StoreError::Unavailable(format!("cannot start a watch thread: {e}")))?;
        }
        Ok(Box::new(RemoteWatch { rx }))
    }

    /// The revision of a list of route rules in every namespace (needs a token for `*`).
    fn revision(&self) -> Result<Revision, StoreError> {
        let url = self.url_for(Kind::RouteRule, None, None);
        let req = self.request(&self.client, Method::GET, url.clone());
        let response = self.send(req, &url, None)?;
        let body = response.text().map_err(|e| unreachable(&url, &e))?;
        let list: List = serde_json::from_str(&body).map_err(|e| bad_answer(&url, &e.to_string()))?;
        list.metadata
            .resource_version
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad_answer(&url, "the list has no metadata.resourceVersion"))
    }
}

// === Watch ===

struct RemoteWatch {
    rx: mpsc::Receiver<Result<Event, StoreError>>,
}

impl Watch for RemoteWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<Event>, StoreError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(StoreError::Unavailable("the watch stream ended".to_string()))
            }
        }
    }
}

/// One kind's event stream.
struct WatchStream {
    client: Client,
    url: Url,
    token: Option<String>,
    kind: Kind,
    /// The last revision seen (an event's or a bookmark's): where a reconnect resumes.
    last: Revision,
}

/// One line of the stream.
#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: Value,
}

impl WatchStream {
    fn connect(&self) -> Result<Response, StoreError> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("watch", "true")
            .append_pair("resourceVersion", &self.last.to_string());
        let mut req = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/x-ndjson, application/json");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().map_err(|e| unreachable(&url, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status();
        let body = response.text().unwrap_or_default();
        let status: Status = serde_json::from_str(&body).unwrap_or_default();
        Err(match status_error(code, status, &self.url, None) {
            StoreError::Compacted { oldest, .. } => StoreError::Compacted {
                requested: self.last,
                oldest,
            },
            other => other,
        })
    }

    /// Reads events until the consumer goes away or the store stays unreachable; reconnects in
    /// between.
    fn run(mut self, first: Response, tx: &mpsc::SyncSender<Result<Event, StoreError>>) {
        let mut response = Some(first);
        let mut failing_since: Option<std::time::Instant> = None;
        loop {
            let current = match response.take() {
                Some(r) => Ok(r),
                None => self.connect(),
            };
            match current {
                Ok(r) => {
                    failing_since = None;
                    match self.read(r, tx) {
                        Ok(()) => {}         // the server closed the stream: reconnect
                        Err(None) => return, // the consumer is gone
                        Err(Some(e)) => {
                            let _ignored = tx.send(Err(e));
                            return;
                        }
                    }
                }
                Err(e) if e.is_unavailable() => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > WATCH_RECONNECT_FOR {
                        let _ignored = tx.send(Err(e));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    let _ignored = tx.send(Err(e));
                    return;
                }
            }
        }
    }

    /// Reads one connection's lines. `Ok` when the stream ended (or broke) and a reconnect should
    /// follow; `Err(None)` when the consumer is gone; `Err(Some)` for an error to hand over.
    fn read(
        &mut self,
        response: Response,
        tx: &mpsc::SyncSender<Result<Event, StoreError>>,
    ) -> Result<(), Option<StoreError>> {
        for line in BufReader::new(response).lines() {
            // A read error (a reset, the idle timeout) ends this connection; the next one resumes.
            let Ok(line) = line else { return Ok(()) };
            if line.trim().is_empty() {
                continue;
            }
            let event: WireEvent =
                serde_json::from_str(&line).map_err(|e| Some(bad_answer(&self.url, &format!("watch event: {e}"))))?;
            let revision = revision_of(&event.object);
            let kind = match event.kind.as_str() {
                "ADDED" => EventType::Added,
                "MODIFIED" => EventType::Modified,
                "DELETED" => EventType::Deleted,
                "BOOKMARK" => {
                    if let Some(r) = revision {
                        self.last = self.last.max(r);
                    }
                    continue;
                }
                "ERROR" => {
                    let status: Status = serde_json::from_value(event.object).unwrap_or_default();
                    let code = status_code_of(&status);
                    return Err(Some(match status_error(code, status, &self.url, None) {
                        StoreError::Compacted { oldest, .. } => StoreError::Compacted {
                            requested: self.last,
                            oldest,
                        },
                        other => other,
                    }));
                }
                other => {
                    return Err(Some(bad_answer(
                        &self.url,
                        &format!("unknown watch event type `{other}`"),
                    )));
                }
            };
            let revision = revision
                .ok_or_else(|| Some(bad_answer(&self.url, "a watch event without metadata.resourceVersion")))?;
            if revision <= self.last {
                continue; // seen before a reconnect
            }
            let object = decode_object(self.kind, event.object).map_err(|e| Some(bad_answer(&self.url, &e)))?;
            self.last = revision;
            if tx.send(Ok(Event { kind, revision, object })).is_err() {
                return Err(None);
            }
        }
        Ok(())
    }
}

/// The HTTP code an `ERROR` watch event's Status carries (Kubernetes sends 410 there).
fn status_code_of(status: &Status) -> StatusCode {
    match status.reason.as_deref() {
        Some("Expired" | "Gone") => StatusCode::GONE,
        Some("Unauthorized") => StatusCode::UNAUTHORIZED,
        Some("Forbidden") => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:1",
            "http://[::1]:8443",
            "http://localhost:9",
            "https://mesh.example.com:8443",
            "https://10.0.0.1",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://0.0.0.0:80",
            "ftp://127.0.0.1",
            "https://user:pw@example.com",
            "https://example.com/?x=1",
            "not a url",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let err = parse_url("http://10.0.0.1:8080").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn paths_follow_the_api() {
        let store =
            RemoteStore::new("https://mesh.example.com:8443/prefix/", RemoteOptions::default()).expect("client");
        assert_eq!(
            store.url_for(Kind::EgressRule, Some("default"), Some("mysql")).as_str(),
            "https://mesh.example.com:8443/prefix/apis/config.istio.io/v1alpha2/namespaces/default/egressrules/mysql"
        );
        assert_eq!(
            store.url_for(Kind::RouteRule, None, None).as_str(),
            "https://mesh.example.com:8443/prefix/apis/config.istio.io/v1alpha2/routerules"
        );
        // A name from the command line cannot escape its path segment.
        assert_eq!(
            store
                .url_for(Kind::DestinationPolicy, Some("a"), Some("../x?y"))
                .as_str(),
            "https://mesh.example.com:8443/prefix/apis/config.istio.io/v1alpha2/namespaces/a/destinationpolicies/..%2Fx%3Fy"
        );
    }

    fn url() -> Url {
        Url::parse("https://mesh.example.com/apis").expect("url")
    }

    fn status(json: &str) -> Status {
        serde_json::from_str(json).expect("status")
    }

    #[test]
    fn statuses_become_store_errors() {
        let key = ObjectKey::new(Kind::EgressRule, "default", "mysql");
        let e = status_error(StatusCode::NOT_FOUND, Status::default(), &url(), Some(&key));
        assert!(matches!(e, StoreError::NotFound(k) if k == key));
        let e = status_error(
            StatusCode::CONFLICT,
            status(r#"{"reason": "AlreadyExists", "message": "x"}"#),
            &url(),
            Some(&key),
        );
        assert!(matches!(e, StoreError::AlreadyExists(_)));
        let e = status_error(
            StatusCode::CONFLICT,
            status(
                r#"{"reason": "Conflict", "message": "egress-rule/default/mysql was changed since it was read (you sent resourceVersion 3, the store has 7): get it again"}"#,
            ),
            &url(),
            Some(&key),
        );
        assert!(
            matches!(&e, StoreError::Conflict { sent, current, .. } if sent == "3" && current == "7"),
            "{e:?}"
        );
        let e = status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            status(
                r#"{"reason": "Invalid", "details": {"causes": [
                    {"reason": "FieldValueInvalid", "field": "spec.ports[0].port", "message": "port 0 is out of range", "code": "E0304"}]}}"#,
            ),
            &url(),
            Some(&key),
        );
        let StoreError::Invalid { diagnostics, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(diagnostics[0].code, Code::OutOfRange);
        assert_eq!(diagnostics[0].field.as_deref(), Some("spec.ports[0].port"));
        assert!(matches!(
            status_error(StatusCode::GONE, Status::default(), &url(), None),
            StoreError::Compacted { .. }
        ));
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, Status::default(), &url(), None),
            StoreError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, Status::default(), &url(), Some(&key)),
            StoreError::Forbidden(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, Status::default(), &url(), Some(&key)),
            StoreError::BadRequest(_)
        ));
        let e = status_error(StatusCode::SERVICE_UNAVAILABLE, Status::default(), &url(), None);
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("https://mesh.example.com"), "{e}");
    }

    #[test]
    fn objects_from_a_kubernetes_server_decode() {
        let value = serde_json::json!({
            "apiVersion": "config.istio.io/v1alpha2",
            "kind": "EgressRule",
            "metadata": {"name": "mysql", "namespace": "default", "resourceVersion": "12",
                         "managedFields": [{"manager": "kubectl"}], "selfLink": "/x"},
            "spec": {"destination": {"service": "10.0.0.5/32"}, "ports": [{"port": 3306, "protocol": "tcp"}]}
        });
        let r = decode_object(Kind::EgressRule, value).expect("decodes");
        assert_eq!(r.name(), "mysql");
        assert_eq!(r.metadata.resource_version.as_deref(), Some("12"));
        assert!(decode_object(Kind::RouteRule, serde_json::json!([])).is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let opts = RemoteOptions {
            token: Some("s3cret-token".to_string()),
            ca_cert: None,
        };
        assert!(!format!("{opts:?}").contains("s3cret"));
        let store = RemoteStore::new("http://127.0.0.1:1", opts).expect("client");
        assert!(!format!("{store:?}").contains("s3cret"));
    }
}
