//! The config store: where rules live once they are created.
//!
//! One trait, several backends: `sqlite` (the embedded default, one file), `remote` (the REST API of
//! `meshctl serve`), and `etcd` (an etcd v3 cluster, which several `serve` replicas can share). The trait is blocking: the CLI is blocking, the
//! server calls it from a blocking thread pool, and a backend that talks to the network (remote, etcd's
//! JSON gateway) does so with a blocking client. Keeping it synchronous keeps every backend simple and
//! the trait object-safe.
//!
//! The model follows Kubernetes and etcd: one revision counter for the whole store, bumped by every
//! write; an object's `metadata.resourceVersion` is the revision of its last change; watch replays the
//! event log from a revision, then follows new events.

pub mod etcd;
pub mod remote;
pub mod sqlite;

use std::fmt;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::{Kind, Resource};

/// The store-wide revision. sqlite: 0 before the first write, then +1 per write; etcd: the cluster's
/// revision (increasing, but shared with every other key in the cluster).
pub type Revision = u64;

/// Names one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a resource (its namespace defaulted).
    pub fn of(r: &Resource) -> Self {
        ObjectKey::new(r.kind, r.namespace(), r.name())
    }
}

/// `egress-rule/default/mysql`, as istioctl named objects.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind.istioctl_name(), self.namespace, self.name)
    }
}

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// One kind, or all kinds.
    pub kind: Option<Kind>,
    /// One namespace, or all namespaces.
    pub namespace: Option<String>,
}

impl Selector {
    pub fn matches(&self, key: &ObjectKey) -> bool {
        self.kind.is_none_or(|k| k == key.kind) && self.namespace.as_deref().is_none_or(|ns| ns == key.namespace)
    }
}

/// A list's result: the objects, sorted by kind, namespace, name, and the revision they were read at
/// (a watch from that revision misses nothing and repeats nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub items: Vec<Resource>,
    pub revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change. For a deletion, `object` is the object as it was, with `resourceVersion` set to the
/// deletion's revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub revision: Revision,
    pub object: Resource,
}

/// A stream of events in revision order.
pub trait Watch: Send {
    /// The next event, waiting at most `timeout`; `Ok(None)` when none came in time, so a caller can
    /// check whether it should stop and call again.
    fn next(&mut self, timeout: Duration) -> Result<Option<Event>, StoreError>;
}

/// Why a store operation failed. Each maps to a Kubernetes `Status` reason and HTTP code, and to the
/// CLI's exit status (1 for the operation failing, 2 for a store that cannot be reached or opened).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(ObjectKey),
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    /// A replace whose resourceVersion is not the stored one.
    #[error(
        "{key} was changed since it was read (you sent resourceVersion {sent}, the store has {current}): get it again, re-apply your change and retry"
    )]
    Conflict {
        key: ObjectKey,
        sent: String,
        current: String,
    },
    /// The object failed validation; nothing was written.
    #[error("{} is invalid: {}", .key, first_message(.diagnostics))]
    Invalid {
        key: ObjectKey,
        diagnostics: Vec<Diagnostic>,
    },
    /// A watch asked for history the store no longer keeps.
    #[error(
        "revision {requested} has been compacted; the oldest revision kept is {oldest}: list again and watch from the list's revision"
    )]
    Compacted {
        /// The revision the watch asked to start after.
        requested: Revision,
        /// The lowest revision a watch may start after now: every event after it is still kept (a
        /// server can retry with it when a client asked for "from the beginning of the kept log").
        oldest: Revision,
    },
    /// The request was well-formed but not allowed (a remote store's 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Missing or wrong credentials (a remote store's 401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request itself was wrong (a remote store's 400, a name that is not valid).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The store cannot be opened or reached: I/O, a corrupt file, the network.
    #[error("{0}")]
    Unavailable(String),
}

fn first_message(diagnostics: &[Diagnostic]) -> String {
    match diagnostics {
        [] => "validation failed".to_string(),
        [d] => format!("{}: {}", d.field.as_deref().unwrap_or("object"), d.message),
        [d, rest @ ..] => format!(
            "{}: {} (and {} more)",
            d.field.as_deref().unwrap_or("object"),
            d.message,
            rest.len()
        ),
    }
}

impl StoreError {
    /// True for failures of the store itself rather than of the operation (exit status 2).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Checks an object before any write, for every backend: the validator's errors (warnings do not
/// block), then what the validator cannot see because it checks a typed object (the kind and the spec
/// agree, the apiVersion).
pub(crate) fn check_write(object: &Resource) -> Result<(), StoreError> {
    let key = ObjectKey::of(object);
    let errors: Vec<_> = crate::validate::check_object(object)
        .into_iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .collect();
    if !errors.is_empty() {
        return Err(StoreError::Invalid {
            key,
            diagnostics: errors,
        });
    }
    if object.spec.kind() != object.kind {
        return Err(StoreError::BadRequest(format!(
            "{key}: the kind is {} but the spec is a {}",
            object.kind,
            object.spec.kind()
        )));
    }
    if object.api_version != crate::model::API_VERSION {
        return Err(StoreError::BadRequest(format!(
            "{key}: apiVersion must be {}, not `{}`",
            crate::model::API_VERSION,
            object.api_version
        )));
    }
    if key.name.is_empty() {
        // The validator reports a missing name; this only guards the key.
        return Err(StoreError::BadRequest(format!("{key}: metadata.name is required")));
    }
    Ok(())
}

/// A config store. Every write is validated by `validate::check_resource` (the same checks as
/// `meshctl validate`) before anything is written, and is durable when it returns `Ok`.
pub trait Store: Send + Sync {
    /// One object.
    fn get(&self, key: &ObjectKey) -> Result<Resource, StoreError>;

    /// The objects a selector covers, sorted by kind, namespace, name.
    fn list(&self, selector: &Selector) -> Result<Listing, StoreError>;

    /// Stores a new object; `AlreadyExists` when one has its key. The object's resourceVersion, uid and
    /// creationTimestamp are set by the store (any sent are ignored); the stored object is returned.
    fn create(&self, object: &Resource) -> Result<Resource, StoreError>;

    /// Replaces an existing object; `NotFound` when there is none. When the object carries
    /// `metadata.resourceVersion`, it must equal the stored one (`Conflict` otherwise): this is how two
    /// writers find out about each other. uid and creationTimestamp are kept from the stored object.
    fn update(&self, object: &Resource) -> Result<Resource, StoreError>;

    /// Deletes an object and returns it as it was; `NotFound` when there is none.
    fn delete(&self, key: &ObjectKey) -> Result<Resource, StoreError>;

    /// Events after `after` (exclusive) for the objects the selector covers, then new ones as they
    /// happen. `Compacted` when events after `after` are no longer kept.
    fn watch(&self, selector: &Selector, after: Revision) -> Result<Box<dyn Watch>, StoreError>;

    /// The store's current revision.
    fn revision(&self) -> Result<Revision, StoreError>;
}

// === Choosing a store (added for the store-management commands) ===

/// Where a store is, as `--store`, `MESHCTL_STORE` and contexts write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite:PATH`: the embedded store, one file.
    Sqlite(std::path::PathBuf),
    /// `https://HOST:PORT[/PREFIX]`, or `http://` to a loopback address: `meshctl serve`.
    Remote(String),
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]`: an etcd v3 cluster (TLS, and the key prefix when
    /// the URL names none, from `MESHCTL_ETCD_*`, see [`etcd::EtcdOptions::from_env`]).
    Etcd(EtcdUrl),
}

impl Location {
    /// Parses `sqlite:PATH`, `https://HOST:PORT` or `http://127.0.0.1:PORT` (plain HTTP to loopback
    /// only). The message of an error says what was expected.
    pub fn parse(s: &str) -> Result<Location, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!(
                    "`{s}`: sqlite: needs a path, e.g. sqlite:/var/lib/meshctl/store.db"
                ));
            }
            return Ok(Location::Sqlite(std::path::PathBuf::from(path)));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("etcd:") {
            return parse_etcd(s).map(Location::Etcd);
        }
        if lower.starts_with("https://") || lower.starts_with("http://") || s.contains("://") {
            return remote::parse_url(s).map(|u| {
                // `https://host:8443`, not `https://host:8443/`, in messages and contexts.
                let text = u.as_str();
                let text = if u.path() == "/" {
                    text.trim_end_matches('/')
                } else {
                    text
                };
                Location::Remote(text.to_string())
            });
        }
        Err(format!(
            "`{s}` is not a store: use sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT or etcd://HOST:PORT{}",
            if s.contains(['/', '.']) && !s.contains(':') {
                format!(" (for a file, sqlite:{s})")
            } else {
                String::new()
            }
        ))
    }

    /// Opens the store: the sqlite file (created with its directories on first use), or a client
    /// for the remote one (which sends nothing until the first operation).
    pub fn open(&self, options: remote::RemoteOptions) -> Result<Box<dyn Store>, StoreError> {
        match self {
            Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
            Location::Remote(url) => Ok(Box::new(remote::RemoteStore::new(url, options)?)),
            Location::Etcd(url) => Ok(Box::new(url.connect(etcd::EtcdOptions::from_env())?)),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }
}

/// Where an etcd store is: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    pub endpoints: Vec<String>,
    /// The key prefix, when the URL names one (`etcd://h:2379/team-a/`); else the options' (default
    /// `/meshctl/`).
    pub prefix: Option<String>,
}

impl EtcdUrl {
    /// Connects with `options`, the URL's prefix taking precedence over theirs.
    pub fn connect(&self, mut options: etcd::EtcdOptions) -> Result<etcd::EtcdStore, StoreError> {
        if let Some(p) = &self.prefix {
            options.prefix = p.clone();
        }
        etcd::EtcdStore::connect(&self.endpoints, options)
    }
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "etcd://{}{}",
            self.endpoints.join(","),
            self.prefix.as_deref().unwrap_or("")
        )
    }
}

/// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]`; the message of an error says what was expected.
pub fn parse_etcd(s: &str) -> Result<EtcdUrl, String> {
    let rest = s
        .get(5..)
        .map(|r| r.strip_prefix("//").unwrap_or(r))
        .unwrap_or_default();
    let (hosts, prefix) = match rest.find('/') {
        Some(i) => {
            let mut p = rest[i..].to_string();
            if !p.ends_with('/') {
                p.push('/');
            }
            (&rest[..i], (p != "/").then_some(p))
        }
        None => (rest, None),
    };
    let mut endpoints = Vec::new();
    for part in hosts.split(',').map(str::trim) {
        let ok = part
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!(
                "`{s}`: `{part}` is not HOST:PORT; write etcd://HOST:PORT[,HOST:PORT...][/PREFIX/], e.g. etcd://127.0.0.1:2379"
            ));
        }
        endpoints.push(part.to_string());
    }
    Ok(EtcdUrl { endpoints, prefix })
}

/// `sqlite:PATH` or the URL, as it is written on the command line.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Location::Remote(url) => f.write_str(url),
            Location::Etcd(url) => url.fmt(f),
        }
    }
}
