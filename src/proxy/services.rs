//! The service registry of `meshctl proxy --services FILE`: which hosts are mesh services, and where
//! their endpoints are.
//!
//! The file is walked on the loader's positioned tree rather than deserialized, so every error names
//! its line, column and field path; the loader has already rejected duplicate keys, tabs and alias
//! bombs. Lookups go through an index of every accepted host form built once per load, because they
//! sit on the per-request path.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::diag::Span;
use crate::load::node::{Node, Resolved, Value};
use crate::load::path::{self, Seg};
use crate::load::{self, yaml};
use crate::suggest::did_you_mean;
use crate::validate::common::{is_dns_name, is_dns1123_label, label_key_problem, label_value_ok};

/// The maps looked up for every request, keyed by names from the registry and rules (not by anything a
/// client chooses): foldhash's seeded hash, which halved the cost of these lookups against SipHash.
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_DOMAIN: &str = "svc.cluster.local";

const TOP_FIELDS: &[&str] = &["services"];
const SERVICE_FIELDS: &[&str] = &["name", "namespace", "domain", "port", "endpoints"];
const ENDPOINT_FIELDS: &[&str] = &["address", "labels"];

/// Errors past this many are counted, not listed: a generated file gone wrong should not flood the log.
const MAX_ERRORS: usize = 20;

/// The services of one file. Serializes as the list of services.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    services: Vec<Service>,
    /// Lowercase host form → (port, service index).
    hosts: FastMap<String, Vec<(u16, usize)>>,
    /// Lowercase FQDN → service index.
    fqdns: FastMap<String, usize>,
    /// Every service port (captured traffic to one of these may be a mesh request).
    ports: HashSet<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// Lowercase, without a trailing dot.
    pub domain: String,
    pub port: u16,
    pub endpoints: Vec<Endpoint>,
    /// `NAME.NAMESPACE.DOMAIN`, built once (a request through a forward looks it up).
    #[serde(skip)]
    fqdn: String,
}

/// Serializes as `{address, labels}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address (canonical form) or a lowercase DNS name without a trailing dot; no brackets.
    pub host: String,
    pub port: u16,
    pub labels: BTreeMap<String, String>,
}

impl Service {
    pub fn fqdn(&self) -> &str {
        &self.fqdn
    }
}

impl Endpoint {
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the endpoint carries every one of `labels` (an empty set matches all).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Endpoint", 2)?;
        st.serialize_field("address", &self.address())?;
        st.serialize_field("labels", &self.labels)?;
        st.end()
    }
}

impl Serialize for Registry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.services)
    }
}

impl Registry {
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Reads and parses a services file. Errors are lines of `FILE:LINE:COL: FIELD: what is wrong`.
    pub fn load(path: &Path) -> Result<Registry, String> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {file}: {e}"))?;
        let text = load::decode(&bytes).map_err(|p| located(&file, p.span, "", &with_help(&p)))?;
        Registry::parse(text, &file)
    }

    /// Parses a services file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Registry, String> {
        let arena = bumpalo::Bump::new();
        let stream = yaml::parse_stream(text, &arena, yaml::Limits::default());
        let mut w = Walk {
            file,
            errors: Vec::new(),
        };
        for p in &stream.problems {
            let field = p.field.as_deref().unwrap_or_default();
            w.errors.push(located(file, p.span, field, &with_help(p)));
        }
        let mut roots = stream
            .documents
            .iter()
            .filter_map(|d| d.root.as_ref())
            .filter(|r| !r.is_null());
        let root = roots.next();
        if let Some(extra) = roots.next() {
            w.error(
                extra.span,
                &[],
                "a services file holds one YAML document; this is a second one",
            );
        }
        // A tree cut short by a syntax error would only add misleading "missing field" errors.
        let services = match root {
            Some(root) if w.errors.is_empty() => w.root(root),
            _ => Vec::new(),
        };
        if !w.errors.is_empty() {
            let more = w.errors.len().saturating_sub(MAX_ERRORS);
            w.errors.truncate(MAX_ERRORS);
            if more > 0 {
                w.errors.push(format!("{file}: and {more} more error(s)"));
            }
            return Err(w.errors.join("\n"));
        }
        Ok(Registry::index(services))
    }

    fn index(services: Vec<Service>) -> Registry {
        let mut hosts: FastMap<String, Vec<(u16, usize)>> =
            FastMap::with_capacity_and_hasher(services.len() * 4, Default::default());
        let mut fqdns = FastMap::with_capacity_and_hasher(services.len(), Default::default());
        for (i, s) in services.iter().enumerate() {
            let (name, ns) = (&s.name, &s.namespace);
            for host in [
                name.clone(),
                format!("{name}.{ns}"),
                format!("{name}.{ns}.svc"),
                s.fqdn().to_string(),
            ] {
                let ports = hosts.entry(host).or_default();
                match ports.iter_mut().find(|(p, _)| *p == s.port) {
                    None => ports.push((s.port, i)),
                    // Every form but the bare NAME contains the namespace, and (name, namespace) is
                    // unique, so only a bare NAME is ever shared: "default" wins, else the first.
                    Some(slot) if s.namespace == DEFAULT_NAMESPACE => slot.1 = i,
                    Some(_) => {}
                }
            }
            fqdns.insert(s.fqdn().to_string(), i);
        }
        let ports = services.iter().map(|s| s.port).collect();
        Registry {
            services,
            hosts,
            fqdns,
            ports,
        }
    }

    /// Whether some service listens on `port`.
    pub fn has_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service a request for `host:port` goes to, if it is a mesh request. `host` (without port)
    /// is matched case-insensitively, ignoring one trailing dot, as `NAME`, `NAME.NAMESPACE`,
    /// `NAME.NAMESPACE.svc` or `NAME.NAMESPACE.DOMAIN`, and `port` must be the service's port. A bare
    /// `NAME` registered in several namespaces resolves to namespace "default" if it is one of them,
    /// else to the first in file order. IP literals are never services: an IPv6 one contains ':',
    /// and an IPv4 one would need a domain ending in a numeric label, which loading refuses.
    pub fn lookup(&self, host: &str, port: u16) -> Option<&Service> {
        self.lookup_index(host, port).map(|i| &self.services[i])
    }

    /// [`Registry::lookup`], as an index into [`Registry::services`].
    pub fn lookup_index(&self, host: &str, port: u16) -> Option<usize> {
        let ports = self.hosts.get(normalize(host).as_ref())?;
        ports.iter().find(|(p, _)| *p == port).map(|&(_, i)| i)
    }

    /// The service named by `name.namespace.domain`, case-insensitively (a trailing dot ignored).
    pub fn by_fqdn(&self, fqdn: &str) -> Option<&Service> {
        self.fqdns.get(normalize(fqdn).as_ref()).map(|&i| &self.services[i])
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// Lowercase without a trailing dot, allocating only when there is uppercase to fold.
fn normalize(host: &str) -> Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn located(file: &str, span: Option<Span>, field: &str, message: &str) -> String {
    let at = span.map_or(String::new(), |s| format!(":{}:{}", s.start.line, s.start.column));
    let field = if field.is_empty() {
        String::new()
    } else {
        format!(" {field}:")
    };
    format!("{file}{at}:{field} {message}")
}

fn with_help(p: &load::Problem) -> String {
    match &p.help {
        Some(help) => format!("{}; {help}", p.message),
        None => p.message.clone(),
    }
}

fn join<'s>(at: &[Seg<'s>], seg: Seg<'s>) -> Vec<Seg<'s>> {
    let mut p = at.to_vec();
    p.push(seg);
    p
}

/// Collects every error of a file while walking it.
struct Walk<'f> {
    file: &'f str,
    errors: Vec<String>,
}

impl Walk<'_> {
    fn error(&mut self, span: Span, at: &[Seg<'_>], message: impl AsRef<str>) {
        let error = located(self.file, Some(span), &path::format(at), message.as_ref());
        self.errors.push(error);
    }

    /// Whether `node` is a mapping (reported if not), with its unknown fields reported.
    fn mapping(&mut self, node: &Node<'_>, at: &[Seg<'_>], known: &[&str]) -> Option<()> {
        let Some(entries) = node.as_map() else {
            self.error(node.span, at, format!("expected a mapping, found {}", node.describe()));
            return None;
        };
        for e in entries.iter().filter(|e| !known.contains(&e.key)) {
            let hint = match did_you_mean(e.key, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the fields here are {}", known.join(", ")),
            };
            self.error(
                e.key_span,
                &join(at, Seg::Key(e.key)),
                format!("unknown field `{}`; {hint}", e.key),
            );
        }
        Some(())
    }

    /// A field's value; null counts as absent.
    fn optional<'n, 'a>(node: &'n Node<'a>, key: &str) -> Option<&'n Node<'a>> {
        node.get(key).map(|e| &e.value).filter(|v| !v.is_null())
    }

    fn required<'n, 'a>(&mut self, node: &'n Node<'a>, at: &[Seg<'_>], key: &str) -> Option<&'n Node<'a>> {
        let value = Self::optional(node, key);
        if value.is_none() {
            let span = node.get(key).map_or(Span::point(node.span.start), |e| e.key_span);
            self.error(
                span,
                &join(at, Seg::Key(key)),
                format!("missing required field `{key}`"),
            );
        }
        value
    }

    fn string<'n>(&mut self, node: &'n Node<'_>, at: &[Seg<'_>]) -> Option<&'n str> {
        let s = node.as_str();
        if s.is_none() {
            let quote = node
                .as_scalar()
                .map_or(String::new(), |s| format!("; quote it: \"{}\"", s.text));
            self.error(
                node.span,
                at,
                format!("expected a string, found {}{quote}", node.describe()),
            );
        }
        s
    }

    fn list<'n, 'a>(&mut self, node: Option<&'n Node<'a>>, at: &[Seg<'_>]) -> &'n [Node<'a>] {
        match node.map(|n| (n, &n.value)) {
            None => &[],
            Some((_, Value::Seq(items))) => items,
            Some((n, _)) => {
                self.error(n.span, at, format!("expected a list, found {}", n.describe()));
                &[]
            }
        }
    }

    fn root(&mut self, root: &Node<'_>) -> Vec<Service> {
        if root.as_map().is_none() {
            let found = root.describe();
            self.error(
                root.span,
                &[],
                format!("expected a mapping with a `services` list, found {found}"),
            );
            return Vec::new();
        }
        self.mapping(root, &[], TOP_FIELDS);
        let Some(list) = root.get("services") else {
            let at = [Seg::Key("services")];
            self.error(Span::point(root.span.start), &at, "missing required field `services`");
            return Vec::new();
        };
        let items = self.list(Some(&list.value).filter(|v| !v.is_null()), &[Seg::Key("services")]);
        let mut services = Vec::with_capacity(items.len());
        let mut seen = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            services.extend(self.service(item, i, &mut seen));
        }
        services
    }

    /// The `i`th service, or None when it has errors (reported). `seen` holds the (name, namespace)
    /// of the services before it, valid or not, and where each is named.
    fn service(
        &mut self,
        node: &Node<'_>,
        i: usize,
        seen: &mut HashMap<(String, String), (usize, Span)>,
    ) -> Option<Service> {
        let at = &[Seg::Key("services"), Seg::Index(i)];
        self.mapping(node, at, SERVICE_FIELDS)?;
        let before = self.errors.len();
        let field = |key| join(at, Seg::Key(key));
        let name_node = self.required(node, at, "name");
        let name = name_node.and_then(|n| self.dns_label(n, &field("name"), "service name"));
        let namespace = match Self::optional(node, "namespace") {
            Some(n) => self.dns_label(n, &field("namespace"), "namespace"),
            None => Some(DEFAULT_NAMESPACE.to_string()),
        };
        if let (Some(name), Some(namespace), Some(name_node)) = (&name, &namespace, name_node) {
            let key = (name.clone(), namespace.clone());
            if let Some(&(first, span)) = seen.get(&key) {
                let (file, line, column) = (self.file, span.start.line, span.start.column);
                let message = format!(
                    "duplicate service `{name}.{namespace}`: services[{first}] at {file}:{line}:{column} already defines it"
                );
                self.error(name_node.span, &field("name"), message);
            } else {
                seen.insert(key, (i, name_node.span));
            }
        }
        let domain = match Self::optional(node, "domain") {
            Some(n) => self.domain(n, &field("domain")),
            None => Some(DEFAULT_DOMAIN.to_string()),
        };
        let port = self
            .required(node, at, "port")
            .and_then(|n| self.port(n, &field("port")));
        let items = self.list(Self::optional(node, "endpoints"), &field("endpoints"));
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, (usize, Span)> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = join(&field("endpoints"), Seg::Index(i));
            let Some((endpoint, span)) = self.endpoint(item, &at) else {
                continue;
            };
            let address = endpoint.address();
            if let Some(&(first, first_span)) = seen.get(&address) {
                let (file, line, column) = (self.file, first_span.start.line, first_span.start.column);
                let message = format!(
                    "duplicate endpoint `{address}`: endpoints[{first}] at {file}:{line}:{column} already lists it"
                );
                self.error(span, &join(&at, Seg::Key("address")), message);
                continue;
            }
            seen.insert(address, (i, span));
            endpoints.push(endpoint);
        }
        if self.errors.len() > before {
            return None;
        }
        let (name, namespace, domain) = (name?, namespace?, domain?);
        Some(Service {
            fqdn: format!("{name}.{namespace}.{domain}"),
            name,
            namespace,
            domain,
            port: port?,
            endpoints,
        })
    }

    fn endpoint(&mut self, node: &Node<'_>, at: &[Seg<'_>]) -> Option<(Endpoint, Span)> {
        self.mapping(node, at, ENDPOINT_FIELDS)?;
        let before = self.errors.len();
        let address_at = join(at, Seg::Key("address"));
        let address = self.required(node, at, "address");
        let parsed = address.and_then(|n| {
            let text = self.string(n, &address_at)?;
            parse_address(text).map_err(|e| self.error(n.span, &address_at, e)).ok()
        });
        let mut labels = BTreeMap::new();
        if let Some(map) = Self::optional(node, "labels") {
            labels = self.labels(map, &join(at, Seg::Key("labels")));
        }
        let (host, port) = parsed?;
        (self.errors.len() == before).then(|| (Endpoint { host, port, labels }, address.map_or(node.span, |n| n.span)))
    }

    fn labels(&mut self, node: &Node<'_>, at: &[Seg<'_>]) -> BTreeMap<String, String> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                at,
                format!("expected a mapping of label names to values, found {}", node.describe()),
            );
            return BTreeMap::new();
        };
        let mut labels = BTreeMap::new();
        for e in entries {
            let here = join(at, Seg::Key(e.key));
            if let Some(problem) = label_key_problem(e.key) {
                self.error(e.key_span, &here, problem);
                continue;
            }
            let Some(value) = self.string(&e.value, &here) else {
                continue;
            };
            if !label_value_ok(value) {
                let message = format!(
                    "`{value}` is not a valid label value: at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                );
                self.error(e.value.span, &here, message);
                continue;
            }
            labels.insert(e.key.to_string(), value.to_string());
        }
        labels
    }

    fn dns_label(&mut self, node: &Node<'_>, at: &[Seg<'_>], what: &str) -> Option<String> {
        let s = self.string(node, at)?;
        if is_dns1123_label(s) {
            return Some(s.to_string());
        }
        let message = format!(
            "`{s}` is not a valid {what}: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        );
        self.error(node.span, at, message);
        None
    }

    fn domain(&mut self, node: &Node<'_>, at: &[Seg<'_>]) -> Option<String> {
        let s = self.string(node, at)?;
        let domain = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        // A numeric last label would let `NAME.NAMESPACE.DOMAIN` spell an IPv4 address.
        if is_dns_name(s) && !is_numeric_label(&domain) {
            return Some(domain);
        }
        self.error(
            node.span,
            at,
            format!("`{s}` is not a valid DNS domain (such as svc.cluster.local)"),
        );
        None
    }

    fn port(&mut self, node: &Node<'_>, at: &[Seg<'_>]) -> Option<u16> {
        let resolved = node.as_scalar().map(|s| s.resolve());
        if let Some(Resolved::Int(n)) = resolved {
            let port = u16::try_from(n).ok().filter(|&p| p != 0);
            if port.is_none() {
                self.error(node.span, at, format!("{n} is not a valid port: it must be 1-65535"));
            }
            return port;
        }
        let unquote = match node.as_scalar() {
            Some(s) if resolved == Some(Resolved::Str) && s.text.trim().parse::<u16>().is_ok() => {
                format!("; remove the quotes: {}", s.text.trim())
            }
            _ => String::new(),
        };
        self.error(
            node.span,
            at,
            format!("expected a port number (1-65535), found {}{unquote}", node.describe()),
        );
        None
    }
}

/// Whether a DNS name's last label is all digits.
fn is_numeric_label(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits `HOST:PORT` (HOST an IPv4 address, a bracketed IPv6 address or a DNS name) into a
/// bracket-free host in canonical form and a port.
fn parse_address(s: &str) -> Result<(String, u16), String> {
    let example = "write HOST:PORT, such as 10.0.0.5:8080, [fd00::5]:8080 or reviews-v1:9080";
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else {
            return Err(format!("`{s}` has no closing `]`; {example}"));
        };
        let Ok(ip) = ip.parse::<Ipv6Addr>() else {
            return Err(format!("`{ip}` in `{s}` is not an IPv6 address"));
        };
        let Some(port) = port.strip_prefix(':') else {
            return Err(format!("`{s}` has no port; {example}"));
        };
        (ip.to_string(), port)
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("`{s}` has no port; {example}"));
        };
        if host.contains(':') {
            let hint = if host.parse::<Ipv6Addr>().is_ok() {
                format!(": `[{host}]:{port}`")
            } else {
                String::new()
            };
            return Err(format!("`{s}`: an IPv6 address must be in brackets{hint}"));
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            (ip.to_string(), port)
        } else if is_dns_name(host) && !is_numeric_label(host) {
            (host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase(), port)
        } else {
            return Err(format!(
                "`{host}` in `{s}` is neither an IP address nor a DNS name; {example}"
            ));
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((host, p)),
        _ => Err(format!("`{port}` in `{s}` is not a valid port: it must be 1-65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
services:
- name: reviews
  port: 9080
  endpoints:
  - address: 127.0.0.1:9081
    labels: {version: v1}
  - address: '[::1]:9082'
    labels:
      version: v2
      app.kubernetes.io/name: reviews
- name: reviews
  namespace: prod
  domain: Mesh.Example.
  port: 9080
- name: ratings
  namespace: prod
  port: 9080
  endpoints:
  - address: Ratings.local:80
";

    fn good() -> Registry {
        Registry::parse(GOOD, "s.yaml").unwrap()
    }

    fn err(text: &str) -> String {
        Registry::parse(text, "s.yaml").unwrap_err()
    }

    #[test]
    fn parses_with_defaults() {
        let r = good();
        assert_eq!(r.len(), 3);
        let s = &r.services()[0];
        assert_eq!(
            (s.namespace.as_str(), s.domain.as_str()),
            ("default", "svc.cluster.local")
        );
        assert_eq!(s.fqdn(), "reviews.default.svc.cluster.local");
        assert_eq!(s.endpoints[0].address(), "127.0.0.1:9081");
        assert_eq!(s.endpoints[1].host, "::1");
        assert_eq!(s.endpoints[1].address(), "[::1]:9082");
        assert_eq!(r.services()[1].fqdn(), "reviews.prod.mesh.example");
        assert_eq!(r.services()[2].endpoints[0].address(), "ratings.local:80");
        let v2 = BTreeMap::from([("version".to_string(), "v2".to_string())]);
        assert!(s.endpoints[1].matches(&v2) && !s.endpoints[0].matches(&v2));
        assert!(s.endpoints[0].matches(&BTreeMap::new()));
    }

    #[test]
    fn empty_files() {
        for text in ["", "# nothing\n", "services: []\n", "services:\n", "---\n"] {
            assert!(Registry::parse(text, "s.yaml").unwrap().is_empty(), "{text:?}");
        }
        assert!(Registry::empty().lookup("reviews", 9080).is_none());
    }

    #[test]
    fn lookup_forms() {
        let r = good();
        for host in [
            "reviews",
            "reviews.default",
            "reviews.default.svc",
            "reviews.default.svc.cluster.local",
            "REVIEWS.Default.SVC.cluster.local.",
            "reviews.",
        ] {
            assert_eq!(r.lookup_index(host, 9080), Some(0), "{host}");
        }
        assert_eq!(r.lookup_index("reviews.prod", 9080), Some(1));
        assert_eq!(r.lookup_index("reviews.prod.svc", 9080), Some(1));
        assert_eq!(r.lookup_index("reviews.prod.mesh.example", 9080), Some(1));
        assert_eq!(r.lookup_index("ratings", 9080), Some(2));
        assert!(r.lookup("reviews", 9081).is_none());
        assert!(r.lookup("reviews.prod.svc.cluster.local", 9080).is_none());
        assert!(r.lookup("reviews.default.svc.cluster", 9080).is_none());
        assert!(r.lookup("[::1]", 9080).is_none());
        assert!(r.lookup("127.0.0.1", 9080).is_none());
        assert_eq!(r.by_fqdn("Reviews.Prod.Mesh.Example").map(|s| s.port), Some(9080));
        assert!(r.by_fqdn("reviews.prod").is_none());
    }

    #[test]
    fn bare_name_prefers_default_then_file_order() {
        let text = "services:\n- {name: a, namespace: x, port: 80}\n- {name: a, namespace: y, port: 80}\n\
                    - {name: a, port: 80}\n- {name: b, namespace: y, port: 80}\n- {name: b, namespace: x, port: 80}\n";
        let r = Registry::parse(text, "s.yaml").unwrap();
        assert_eq!(r.lookup_index("a", 80), Some(2));
        assert_eq!(r.lookup_index("b", 80), Some(3));
        assert_eq!(r.lookup_index("a.y", 80), Some(1));
    }

    #[test]
    fn serializes_for_config_dump() {
        let json = serde_json::to_value(good()).unwrap();
        assert_eq!(json[0]["name"], "reviews");
        assert_eq!(json[0]["port"], 9080);
        assert_eq!(json[0]["endpoints"][1]["address"], "[::1]:9082");
        assert_eq!(json[0]["endpoints"][1]["labels"]["version"], "v2");
        assert_eq!(json[1]["domain"], "mesh.example");
    }

    #[track_caller]
    fn assert_error(text: &str, want: &[&str]) {
        let e = err(text);
        for w in want {
            assert!(e.contains(w), "expected {w:?} in:\n{e}");
        }
    }

    #[test]
    fn structure_errors() {
        assert_error(
            "- a\n",
            &["s.yaml:1:1: expected a mapping with a `services` list, found a list"],
        );
        assert_error(
            "servics: []\n",
            &["s.yaml:1:1: servics: unknown field `servics`; did you mean `services`?"],
        );
        assert_error(
            "other: 1\n",
            &["s.yaml:1:1: services: missing required field `services`"],
        );
        assert_error(
            "services: {}\n",
            &["s.yaml:1:11: services: expected a list, found a mapping"],
        );
        assert_error(
            "services: [3]\n",
            &["s.yaml:1:12: services[0]: expected a mapping, found the number 3"],
        );
        assert_error(
            "services: []\n---\nservices: []\n",
            &["s.yaml:3:1: a services file holds one YAML document"],
        );
    }

    #[test]
    fn service_errors() {
        let e = err("services:\n- name: Reviews\n  nmae: x\n  port: 0\n- namespace: a_b\n  port: '80'\n");
        assert!(
            e.contains("s.yaml:2:9: services[0].name: `Reviews` is not a valid service name"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:3:3: services[0].nmae: unknown field `nmae`; did you mean `name`?"),
            "{e}"
        );
        assert!(e.contains("s.yaml:4:9: services[0].port: 0 is not a valid port"), "{e}");
        assert!(
            e.contains("s.yaml:5:3: services[1].name: missing required field `name`"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:5:14: services[1].namespace: `a_b` is not a valid namespace"),
            "{e}"
        );
        assert!(e.contains("s.yaml:6:9: services[1].port: expected a port number (1-65535), found the string \"80\"; remove the quotes"), "{e}");
        assert_error(
            "services:\n- {name: a, port: 70000}\n",
            &["s.yaml:2:19: services[0].port: 70000 is not a valid port"],
        );
        assert_error(
            "services:\n- {name: a, domain: 'x y', port: 1}\n",
            &["s.yaml:2:21: services[0].domain: `x y` is not a valid DNS domain"],
        );
        assert_error(
            "services:\n- {name: a, domain: 10.0.0, port: 1}\n",
            &["services[0].domain: `10.0.0` is not a valid DNS domain"],
        );
        assert_error(
            "services:\n- {name: 12, port: 1}\n",
            &["s.yaml:2:10: services[0].name: expected a string, found the number 12; quote it"],
        );
        assert_error(
            "services:\n- {name: a}\n",
            &["s.yaml:2:3: services[0].port: missing required field `port`"],
        );
    }

    #[test]
    fn duplicate_service_names_both_positions() {
        let text =
            "services:\n- name: a\n  port: 1\n- name: b\n  port: 1\n- name: a\n  namespace: default\n  port: 2\n";
        assert_error(
            text,
            &[
                "s.yaml:6:9: services[2].name: duplicate service `a.default`: services[0] at s.yaml:2:9 already defines it",
            ],
        );
        // Reported even when the first one has other errors.
        assert_error(
            "services:\n- {name: a, port: 0}\n- {name: a, port: 1}\n",
            &["s.yaml:3:10: services[1].name: duplicate"],
        );
        // Same name, other namespace: fine.
        assert!(
            Registry::parse(
                "services:\n- {name: a, port: 1}\n- {name: a, namespace: b, port: 1}\n",
                "s"
            )
            .is_ok()
        );
    }

    #[test]
    fn endpoint_errors() {
        let e = err(
            "services:\n- name: a\n  port: 1\n  endpoints:\n  - address: 10.0.0.1\n  - adress: x:1\n  - address: '::1:80'\n    labels: {version: 1, Bad Key: v, app: -x}\n",
        );
        assert!(
            e.contains("s.yaml:5:14: services[0].endpoints[0].address: `10.0.0.1` has no port"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:6:5: services[0].endpoints[1].adress: unknown field `adress`; did you mean `address`?"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:6:5: services[0].endpoints[1].address: missing required field `address`"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:7:14: services[0].endpoints[2].address: `::1:80`: an IPv6 address must be in brackets"),
            "{e}"
        );
        assert!(
            e.contains(
                "s.yaml:8:23: services[0].endpoints[2].labels.version: expected a string, found the number 1; quote it"
            ),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:8:26: services[0].endpoints[2].labels[\"Bad Key\"]: `Bad Key` is not a valid label key"),
            "{e}"
        );
        assert!(
            e.contains("s.yaml:8:43: services[0].endpoints[2].labels.app: `-x` is not a valid label value"),
            "{e}"
        );
        for (address, want) in [
            ("'[::1]'", "has no port"),
            ("'[zz]:1'", "is not an IPv6 address"),
            ("10.0.0.300:1", "neither an IP address nor a DNS name"),
            ("a_b:1", "neither an IP address nor a DNS name"),
            ("a:0", "`0` in `a:0` is not a valid port"),
            ("a:+1", "is not a valid port"),
            ("a:65536", "is not a valid port"),
            ("42", "expected a string, found the number 42"),
        ] {
            let text = format!("services:\n- name: a\n  port: 1\n  endpoints:\n  - address: {address}\n");
            assert_error(&text, &["s.yaml:5:14: services[0].endpoints[0].address: ", want]);
        }
    }

    #[test]
    fn duplicate_endpoints() {
        let text = "services:\n- name: a\n  port: 1\n  endpoints:\n  - address: '[::1]:80'\n  - address: '[0::1]:80'\n";
        assert_error(
            text,
            &[
                "s.yaml:6:14: services[0].endpoints[1].address: duplicate endpoint `[::1]:80`: endpoints[0] at s.yaml:5:14 already lists it",
            ],
        );
        let text = "services:\n- name: a\n  port: 1\n  endpoints:\n  - address: Host:80\n  - address: host.:80\n";
        assert_error(text, &["duplicate endpoint `host:80`"]);
    }

    #[test]
    fn yaml_problems_are_positioned() {
        assert_error("services:\n- name: [a\n", &["s.yaml:"]);
        assert!(err("services:\n- name: [a\n").contains("invalid YAML"));
        assert_error(
            "services: []\nservices: []\n",
            &["s.yaml:2:1: services: duplicate key `services`"],
        );
        assert_error("services:\n\t- name: a\n", &["s.yaml:2:1:", "tab"]);
    }

    #[test]
    fn load_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, GOOD).unwrap();
        assert_eq!(Registry::load(&path).unwrap().len(), 3);
        std::fs::write(&path, b"services: [\xff]").unwrap();
        assert!(
            Registry::load(&path)
                .unwrap_err()
                .contains(":1:12: the file is not valid UTF-8")
        );
        assert!(
            Registry::load(&dir.path().join("missing"))
                .unwrap_err()
                .starts_with("cannot read")
        );
    }
}
