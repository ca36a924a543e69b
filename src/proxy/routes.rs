//! RouteRules and DestinationPolicies compiled for the services of the registry: per service, its
//! rules in the order they are tried (precedence, then namespace and name), each with its match
//! compiled (regexes built once) and its route resolved to clusters (a service and a subset of its
//! endpoints, with the policy that governs them). A request looks up its service in a hash table and
//! tries only that service's rules, so its cost does not grow with the rules of other services.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;
use serde_json::{Value, json};

use super::mesh::{ClusterState, ServiceCounters, States};
use super::services::{FastMap, Registry, Service};
use crate::model::destination_policy::{DestinationPolicy, LbPolicy, SimpleCircuitBreaker};
use crate::model::route_rule::{HttpFaultInjection, RouteRule};
use crate::model::{IstioService, Resource, Spec, StringMap, StringMatch};

const DEFAULT_DOMAIN: &str = "svc.cluster.local";
/// Envoy's route timeout, which Istio 0.x sidecars applied when a rule set none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Who the proxy speaks for: `match.source` and `match.sourceLabels` are tested against it, and a
/// DestinationPolicy with a `source` applies only when it names it.
#[derive(Debug, Clone, Default)]
pub struct SourceIdentity {
    pub name: Option<String>,
    pub namespace: String,
    pub labels: StringMap,
}

/// The compiled routing of every registered service.
#[derive(Default)]
pub struct RouteTable {
    services: FastMap<String, ServiceRoutes>,
    pub route_rules: usize,
    pub policies: usize,
}

/// One service's rules, in order, and the route taken when none matches.
pub struct ServiceRoutes {
    pub fqdn: String,
    pub port: u16,
    pub rules: Vec<Arc<CompiledRule>>,
    /// All endpoints, balanced by the service-wide policy.
    pub fallback: Arc<RouteAction>,
    pub counters: Arc<ServiceCounters>,
    /// RouteRules naming this service that cannot apply to this proxy's source.
    pub skipped: Vec<String>,
}

pub struct CompiledRule {
    /// `route-rule/NAMESPACE/NAME`.
    pub id: String,
    pub precedence: i64,
    conditions: Vec<(Field, Matcher)>,
    /// When `uri` was matched by prefix: the prefix a `rewrite.uri` replaces.
    pub uri_prefix: Option<String>,
    pub action: RuleAction,
}

pub enum RuleAction {
    Redirect {
        uri: Option<String>,
        authority: Option<String>,
    },
    Route(Arc<RouteAction>),
}

/// What happens to a request a rule (or the fallback) routes.
pub struct RouteAction {
    pub targets: Vec<Target>,
    /// Sum of the targets' weights.
    pub total_weight: u32,
    pub rewrite_uri: Option<String>,
    pub rewrite_authority: Option<String>,
    pub append_headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub timeout_header: Option<HeaderName>,
    pub retry: Option<Retry>,
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
    pub mirror: Option<Arc<Cluster>>,
    pub cors: Option<Cors>,
    pub websocket: bool,
}

pub struct Target {
    pub cluster: Arc<Cluster>,
    pub weight: u32,
}

/// A service and a subset of its endpoints (by labels), with the policy that applies to them.
pub struct Cluster {
    pub service: String,
    pub port: u16,
    pub labels: StringMap,
    /// `version=v3` (sorted, comma-separated); empty for the whole service.
    pub subset: String,
    pub endpoints: Vec<Arc<super::mesh::EndpointState>>,
    pub policy: Arc<Policy>,
    pub state: Arc<ClusterState>,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Delay {
    pub percent: f64,
    pub fixed: Option<Duration>,
    /// Mean of an exponential distribution.
    pub exponential: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Abort {
    pub percent: f64,
    pub status: StatusCode,
}

#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origin: Vec<String>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

impl Cors {
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origin.iter().any(|o| o == "*" || o == origin)
    }
}

/// A DestinationPolicy's settings (or the defaults when none applies).
#[derive(Debug, Clone)]
pub struct Policy {
    /// `destination-policy/NAMESPACE/NAME`, or None for the defaults.
    pub id: Option<String>,
    pub lb: LbPolicy,
    pub max_connections: u64,
    pub max_pending: u64,
    pub max_requests: u64,
    pub max_requests_per_connection: Option<u64>,
    pub max_retries: u64,
    pub outlier: Option<Outlier>,
}

#[derive(Debug, Clone)]
pub struct Outlier {
    pub consecutive_errors: u32,
    pub interval: Duration,
    pub sleep_window: Duration,
    pub max_ejection_percent: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            id: None,
            lb: LbPolicy::RoundRobin,
            max_connections: 1024,
            max_pending: 1024,
            max_requests: 1024,
            max_requests_per_connection: None,
            max_retries: 3,
            outlier: None,
        }
    }
}

/// What a request looks like to a match.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    pub authority: &'a str,
    pub headers: Headers<'a>,
}

/// A request's header fields: parsed into a map (hyper's server), or as `httparse` read them off the
/// wire (the forward loop's).
#[derive(Clone, Copy)]
pub enum Headers<'a> {
    Map(&'a http::HeaderMap),
    Raw(&'a [httparse::Header<'a>]),
}

impl<'a> Headers<'a> {
    /// Calls `f` with each value of the field `name`, in order, skipping values that are not visible
    /// ASCII (what `HeaderValue::to_str` refuses).
    fn each(self, name: &HeaderName, mut f: impl FnMut(&'a str)) {
        match self {
            Headers::Map(map) => map.get_all(name).iter().filter_map(|v| v.to_str().ok()).for_each(f),
            Headers::Raw(fields) => {
                for field in fields {
                    if !field.name.eq_ignore_ascii_case(name.as_str()) {
                        continue;
                    }
                    let visible = field.value.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t');
                    if let (true, Ok(v)) = (visible, std::str::from_utf8(field.value)) {
                        f(v);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Uri,
    Authority,
    Scheme,
    Method,
    Header(HeaderName),
}

enum Matcher {
    Exact(String),
    Prefix(String),
    /// The anchored regex, and the rule's own text for display.
    Regex(Regex, String),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => value == s,
            Matcher::Prefix(p) => value.starts_with(p.as_str()),
            Matcher::Regex(r, _) => r.is_match(value),
        }
    }
}

impl CompiledRule {
    fn matches(&self, req: &RequestFacts<'_>) -> bool {
        self.conditions.iter().all(|(field, m)| match field {
            Field::Uri => m.matches(req.path),
            Field::Authority => m.matches(req.authority),
            Field::Scheme => m.matches("http"),
            Field::Method => m.matches(req.method),
            Field::Header(name) => {
                // Several fields of one name are matched as one value, joined by commas.
                let mut first: Option<&str> = None;
                let mut joined: Option<String> = None;
                req.headers.each(name, |v| match (&mut joined, first) {
                    (Some(j), _) => {
                        j.push(',');
                        j.push_str(v);
                    }
                    (None, Some(f)) => joined = Some(format!("{f},{v}")),
                    (None, None) => first = Some(v),
                });
                match (joined, first) {
                    (Some(j), _) => m.matches(&j),
                    (None, Some(f)) => m.matches(f),
                    (None, None) => false,
                }
            }
        })
    }
}

/// The FQDN an `IstioService` names: `service` as written (a short name is completed with the
/// namespace and domain), else `name.namespace.domain`.
pub fn service_fqdn(s: &IstioService, rule_namespace: &str) -> Option<String> {
    let namespace = s.namespace.as_deref().unwrap_or(rule_namespace);
    let domain = s.domain.as_deref().unwrap_or(DEFAULT_DOMAIN);
    if let Some(service) = &s.service {
        let service = service.trim_end_matches('.').to_ascii_lowercase();
        return Some(match service.matches('.').count() {
            0 => format!("{service}.{namespace}.{domain}"),
            1 => format!("{service}.{domain}"),
            2 if service.ends_with(".svc") => format!("{}.{}", service, domain.trim_start_matches("svc.")),
            _ => service,
        });
    }
    let name = s.name.as_deref()?.to_ascii_lowercase();
    Some(format!("{name}.{namespace}.{domain}"))
}

fn labels_string(labels: &StringMap) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn subset_of(wanted: &StringMap, have: &StringMap) -> bool {
    wanted.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl SourceIdentity {
    /// Whether `match.source` (and its labels) and `match.sourceLabels` name this source.
    fn matches(&self, source: Option<&IstioService>, labels: Option<&StringMap>, rule_ns: &str) -> bool {
        if let Some(s) = source {
            if s.name.is_some() || s.service.is_some() {
                let Some(own) = &self.name else { return false };
                let own = format!("{own}.{}.{DEFAULT_DOMAIN}", self.namespace);
                let wanted = service_fqdn(s, rule_ns).unwrap_or_default();
                let wanted_short = format!(
                    "{}.{}.{DEFAULT_DOMAIN}",
                    s.name.as_deref().unwrap_or(""),
                    s.namespace.as_deref().unwrap_or(rule_ns)
                );
                if own != wanted && own != wanted_short {
                    return false;
                }
            }
            if let Some(l) = &s.labels {
                if !subset_of(l, &self.labels) {
                    return false;
                }
            }
        }
        labels.is_none_or(|l| subset_of(l, &self.labels))
    }
}

struct PolicySource<'a> {
    id: String,
    service: String,
    labels: StringMap,
    has_source: bool,
    spec: &'a DestinationPolicy,
}

impl RouteTable {
    /// Compiles the RouteRules and DestinationPolicies of `objects` for the services of `registry`.
    /// The objects have been validated; anything that still cannot be used (a regex that fails, a
    /// rule for a service not in the registry) is skipped rather than refused.
    pub fn compile(objects: &[Resource], registry: &Registry, source: &SourceIdentity, states: &States) -> RouteTable {
        let mut table = RouteTable::default();
        // Policies first: clusters need them.
        let mut policies: Vec<PolicySource<'_>> = Vec::new();
        let mut rules: HashMap<String, Vec<(&Resource, &RouteRule)>> = HashMap::new();
        for obj in objects {
            match &obj.spec {
                Spec::DestinationPolicy(p) => {
                    table.policies += 1;
                    let Some(dest) = &p.destination else { continue };
                    let Some(service) = service_fqdn(dest, obj.namespace()) else {
                        continue;
                    };
                    if let Some(src) = &p.source {
                        if !source.matches(Some(src), None, obj.namespace()) {
                            continue;
                        }
                    }
                    policies.push(PolicySource {
                        id: obj.istioctl_ref(),
                        service,
                        labels: dest.labels.clone().unwrap_or_default(),
                        has_source: p.source.is_some(),
                        spec: p,
                    });
                }
                Spec::RouteRule(r) => {
                    table.route_rules += 1;
                    let Some(dest) = &r.destination else { continue };
                    let Some(service) = service_fqdn(dest, obj.namespace()) else {
                        continue;
                    };
                    rules.entry(service).or_default().push((obj, r));
                }
                Spec::EgressRule(_) => {}
            }
        }
        // Most specific first: with labels before without, with a source before without.
        policies.sort_by(|a, b| {
            (b.labels.len(), b.has_source)
                .cmp(&(a.labels.len(), a.has_source))
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut builder = Builder {
            registry,
            policies: &policies,
            states,
            clusters: HashMap::new(),
        };
        for svc in registry.services() {
            let fqdn = svc.fqdn().to_string();
            let counters = states.service(&fqdn);
            let fallback = Arc::new(RouteAction::plain(builder.cluster(svc, &StringMap::new())));
            let mut compiled = Vec::new();
            let mut skipped = Vec::new();
            let mut own = rules.remove(&fqdn).unwrap_or_default();
            own.sort_by(|(a, ra), (b, rb)| {
                rb.precedence
                    .unwrap_or(0)
                    .cmp(&ra.precedence.unwrap_or(0))
                    .then_with(|| a.namespace().cmp(b.namespace()))
                    .then_with(|| a.name().cmp(b.name()))
            });
            for (obj, r) in own {
                let m = r.match_.as_ref();
                if !source.matches(
                    m.and_then(|m| m.source.as_ref()),
                    m.and_then(|m| m.source_labels.as_ref()),
                    obj.namespace(),
                ) {
                    skipped.push(obj.istioctl_ref());
                    continue;
                }
                match builder.rule(obj, r, svc) {
                    Some(rule) => compiled.push(Arc::new(rule)),
                    None => skipped.push(obj.istioctl_ref()),
                }
            }
            table.services.insert(
                fqdn.clone(),
                ServiceRoutes {
                    fqdn,
                    port: svc.port,
                    rules: compiled,
                    fallback,
                    counters,
                    skipped,
                },
            );
        }
        table
    }

    pub fn service(&self, fqdn: &str) -> Option<&ServiceRoutes> {
        self.services.get(fqdn)
    }

    /// The routes and policies in force, for `/config_dump`.
    pub fn dump(&self) -> Value {
        let mut services: Vec<&ServiceRoutes> = self.services.values().collect();
        services.sort_by(|a, b| a.fqdn.cmp(&b.fqdn));
        Value::Array(
            services
                .into_iter()
                .map(|s| {
                    json!({
                        "service": format!("{}:{}", s.fqdn, s.port),
                        "rules": s.rules.iter().map(|r| r.describe()).collect::<Vec<_>>(),
                        "default": s.fallback.describe(),
                        "notApplicable": s.skipped,
                    })
                })
                .collect(),
        )
    }
}

impl ServiceRoutes {
    /// The first rule whose match fits, or None (the fallback applies).
    pub fn select(&self, req: &RequestFacts<'_>) -> Option<&Arc<CompiledRule>> {
        self.rules.iter().find(|r| r.matches(req))
    }
}

impl RouteAction {
    fn plain(cluster: Arc<Cluster>) -> RouteAction {
        RouteAction {
            targets: vec![Target { cluster, weight: 100 }],
            total_weight: 100,
            rewrite_uri: None,
            rewrite_authority: None,
            append_headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            timeout_header: None,
            retry: None,
            delay: None,
            abort: None,
            mirror: None,
            cors: None,
            websocket: false,
        }
    }

    /// A weighted random choice among the targets.
    pub fn pick(&self) -> &Arc<Cluster> {
        let first = &self.targets[0].cluster;
        if self.targets.len() == 1 || self.total_weight == 0 {
            return first;
        }
        let mut n = fastrand::u32(0..self.total_weight);
        for t in &self.targets {
            if n < t.weight {
                return &t.cluster;
            }
            n -= t.weight;
        }
        first
    }

    pub fn describe(&self) -> Value {
        json!({
            "route": self.targets.iter().map(|t| json!({
                "service": t.cluster.service,
                "labels": t.cluster.labels,
                "weight": t.weight,
                "endpoints": t.cluster.endpoints.iter().map(|e| e.address.clone()).collect::<Vec<_>>(),
                "policy": t.cluster.policy.describe(),
            })).collect::<Vec<_>>(),
            "rewrite": (self.rewrite_uri.is_some() || self.rewrite_authority.is_some())
                .then(|| json!({"uri": self.rewrite_uri, "authority": self.rewrite_authority})),
            "appendHeaders": self.append_headers.iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_str().unwrap_or("").to_string())))
                .collect::<serde_json::Map<_, _>>(),
            "timeout": humantime::format_duration(self.timeout).to_string(),
            "retries": self.retry.as_ref().map(|r| json!({
                "attempts": r.attempts,
                "perTryTimeout": r.per_try_timeout.map(|d| humantime::format_duration(d).to_string()),
            })),
            "faults": {
                "delay": self.delay.as_ref().map(Delay::describe),
                "abort": self.abort.as_ref().map(|a| json!({"percent": a.percent, "httpStatus": a.status.as_u16()})),
            },
            "mirror": self.mirror.as_ref().map(|m| json!({"service": m.service, "labels": m.labels})),
            "cors": self.cors.is_some(),
            "websocketUpgrade": self.websocket,
        })
    }
}

impl Delay {
    pub fn describe(&self) -> Value {
        json!({
            "percent": self.percent,
            "fixedDelay": self.fixed.map(|d| humantime::format_duration(d).to_string()),
            "exponentialDelay": self.exponential.map(|d| humantime::format_duration(d).to_string()),
        })
    }

    /// This request's delay (the fixed one, or a draw from the exponential distribution).
    pub fn sample(&self) -> Duration {
        if let Some(d) = self.fixed {
            return d;
        }
        let mean = self.exponential.unwrap_or_default().as_secs_f64();
        // Inverse transform: -ln(U) * mean, U in (0, 1]; capped so a freak draw stays sane.
        let u = 1.0 - fastrand::f64();
        Duration::from_secs_f64((-u.ln() * mean).min(mean * 20.0))
    }
}

/// True with probability `percent`/100.
pub fn chance(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && fastrand::f64() * 100.0 < percent)
}

impl Policy {
    pub fn describe(&self) -> Value {
        json!({
            "policy": self.id,
            "loadBalancing": match self.lb {
                LbPolicy::RoundRobin => "ROUND_ROBIN",
                LbPolicy::LeastConn => "LEAST_CONN",
                LbPolicy::Random => "RANDOM",
            },
            "maxConnections": self.max_connections,
            "httpMaxPendingRequests": self.max_pending,
            "httpMaxRequests": self.max_requests,
            "httpMaxRequestsPerConnection": self.max_requests_per_connection,
            "httpMaxRetries": self.max_retries,
            "outlierDetection": self.outlier.as_ref().map(|o| json!({
                "httpConsecutiveErrors": o.consecutive_errors,
                "httpDetectionInterval": humantime::format_duration(o.interval).to_string(),
                "sleepWindow": humantime::format_duration(o.sleep_window).to_string(),
                "httpMaxEjectionPercent": o.max_ejection_percent,
            })),
        })
    }

    fn from_spec(id: String, p: &DestinationPolicy) -> Policy {
        let mut policy = Policy {
            id: Some(id),
            ..Policy::default()
        };
        if let Some(lb) = p.load_balancing.as_ref().and_then(|l| l.name.as_deref()) {
            policy.lb = LbPolicy::parse(lb).unwrap_or(LbPolicy::RoundRobin);
        }
        if let Some(cb) = p.circuit_breaker.as_ref().and_then(|c| c.simple_cb.as_ref()) {
            apply_cb(&mut policy, cb);
        }
        policy
    }
}

fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn duration(d: Option<&crate::model::Duration>) -> Option<Duration> {
    d.and_then(|d| d.parse().ok())
}

fn apply_cb(policy: &mut Policy, cb: &SimpleCircuitBreaker) {
    if let Some(n) = count(cb.max_connections) {
        policy.max_connections = n.max(1);
    }
    if let Some(n) = count(cb.http_max_pending_requests) {
        policy.max_pending = n;
    }
    if let Some(n) = count(cb.http_max_requests) {
        policy.max_requests = n.max(1);
    }
    policy.max_requests_per_connection = count(cb.http_max_requests_per_connection).filter(|n| *n > 0);
    if let Some(n) = count(cb.http_max_retries) {
        policy.max_retries = n;
    }
    // Istio turned outlier detection on with the simple circuit breaker, with Envoy's defaults for
    // what the rule leaves out.
    policy.outlier = Some(Outlier {
        consecutive_errors: count(cb.http_consecutive_errors)
            .map_or(5, |n| u32::try_from(n).unwrap_or(u32::MAX))
            .max(1),
        interval: duration(cb.http_detection_interval.as_ref()).unwrap_or(Duration::from_secs(10)),
        sleep_window: duration(cb.sleep_window.as_ref()).unwrap_or(Duration::from_secs(30)),
        max_ejection_percent: count(cb.http_max_ejection_percent).map_or(10, |n| n.min(100) as u32),
    });
}

struct Builder<'a> {
    registry: &'a Registry,
    policies: &'a [PolicySource<'a>],
    states: &'a States,
    clusters: HashMap<(String, String), Arc<Cluster>>,
}

impl Builder<'_> {
    fn cluster(&mut self, svc: &Service, labels: &StringMap) -> Arc<Cluster> {
        let fqdn = svc.fqdn().to_string();
        let subset = labels_string(labels);
        let key = (fqdn.clone(), subset.clone());
        if let Some(c) = self.clusters.get(&key) {
            return c.clone();
        }
        let policy = self
            .policies
            .iter()
            .find(|p| p.service == fqdn && subset_of(&p.labels, labels))
            .map(|p| Policy::from_spec(p.id.clone(), p.spec))
            .unwrap_or_default();
        let state = self.states.cluster(&fqdn, &subset);
        let endpoints = svc
            .endpoints
            .iter()
            .filter(|e| e.matches(labels))
            .map(|e| state.endpoint(&e.host, e.port))
            .collect();
        let cluster = Arc::new(Cluster {
            service: fqdn,
            port: svc.port,
            labels: labels.clone(),
            subset,
            endpoints,
            policy: Arc::new(policy),
            state,
        });
        self.clusters.insert(key, cluster.clone());
        cluster
    }

    /// The cluster an `IstioService` (a route entry's or mirror's `destination`) names, defaulting to
    /// `own`; None when it names a service the registry does not have.
    fn named_cluster(
        &mut self,
        dest: Option<&IstioService>,
        labels: &StringMap,
        own: &Service,
        ns: &str,
    ) -> Option<Arc<Cluster>> {
        let svc = match dest {
            Some(d) if d.name.is_some() || d.service.is_some() => {
                let fqdn = service_fqdn(d, ns)?;
                self.registry.by_fqdn(&fqdn)?
            }
            _ => own,
        };
        Some(self.cluster(svc, labels))
    }

    fn rule(&mut self, obj: &Resource, r: &RouteRule, svc: &Service) -> Option<CompiledRule> {
        let ns = obj.namespace();
        let mut conditions = Vec::new();
        let mut uri_prefix = None;
        let headers = r
            .match_
            .as_ref()
            .and_then(|m| m.request.as_ref())
            .and_then(|q| q.headers.as_ref());
        for (name, sm) in headers.into_iter().flatten() {
            let lower = name.to_ascii_lowercase();
            let field = match lower.as_str() {
                "uri" => Field::Uri,
                "authority" => Field::Authority,
                "scheme" => Field::Scheme,
                "method" => Field::Method,
                _ => Field::Header(HeaderName::from_bytes(lower.as_bytes()).ok()?),
            };
            let matcher = compile_match(sm)?;
            if let (Field::Uri, Matcher::Prefix(p)) = (&field, &matcher) {
                uri_prefix = Some(p.clone());
            }
            conditions.push((field, matcher));
        }
        let action = if let Some(redirect) = &r.redirect {
            RuleAction::Redirect {
                uri: redirect.uri.clone(),
                authority: redirect.authority.clone(),
            }
        } else {
            RuleAction::Route(Arc::new(self.action(r, svc, ns)?))
        };
        Some(CompiledRule {
            id: obj.istioctl_ref(),
            precedence: r.precedence.unwrap_or(0),
            conditions,
            uri_prefix,
            action,
        })
    }

    fn action(&mut self, r: &RouteRule, svc: &Service, ns: &str) -> Option<RouteAction> {
        let mut targets = Vec::new();
        match r.route.as_deref() {
            None | Some([]) => targets.push(Target {
                cluster: self.cluster(svc, &StringMap::new()),
                weight: 100,
            }),
            Some(entries) => {
                let single = entries.len() == 1;
                for e in entries {
                    let labels = e.labels.clone().unwrap_or_default();
                    let weight = match e.weight {
                        Some(w) => u32::try_from(w).unwrap_or(0),
                        None if single => 100,
                        None => 0,
                    };
                    let cluster = self.named_cluster(e.destination.as_ref(), &labels, svc, ns)?;
                    targets.push(Target { cluster, weight });
                }
            }
        }
        let total_weight = targets.iter().map(|t| t.weight).sum();
        let timeout = r.http_req_timeout.as_ref().and_then(|t| t.simple_timeout.as_ref());
        let mut action = RouteAction::plain(targets[0].cluster.clone());
        action.targets = targets;
        action.total_weight = total_weight;
        if let Some(rw) = &r.rewrite {
            action.rewrite_uri = rw.uri.clone();
            action.rewrite_authority = rw.authority.clone();
        }
        for (k, v) in r.append_headers.iter().flatten() {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                action.append_headers.push((k, v));
            }
        }
        if let Some(t) = timeout.and_then(|t| duration(t.timeout.as_ref())) {
            action.timeout = t;
        }
        action.timeout_header = timeout
            .and_then(|t| t.override_header_name.as_deref())
            .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok());
        if let Some(rt) = r.http_req_retries.as_ref().and_then(|r| r.simple_retry.as_ref()) {
            action.retry = Some(Retry {
                attempts: count(rt.attempts).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                per_try_timeout: duration(rt.per_try_timeout.as_ref()),
            });
        }
        if let Some(f) = &r.http_fault {
            let (delay, abort) = faults(f);
            action.delay = delay;
            action.abort = abort;
        }
        if let Some(m) = &r.mirror {
            let labels = m.labels.clone().unwrap_or_default();
            action.mirror = self.named_cluster(Some(m), &labels, svc, ns);
        }
        if let Some(c) = &r.cors_policy {
            let join = |v: &Option<Vec<String>>| v.as_deref().unwrap_or_default().join(", ");
            action.cors = Some(Cors {
                allow_origin: c.allow_origin.clone().unwrap_or_default(),
                allow_methods: join(&c.allow_methods),
                allow_headers: join(&c.allow_headers),
                expose_headers: join(&c.expose_headers),
                max_age: duration(c.max_age.as_ref()).map(|d| d.as_secs()),
                allow_credentials: c.allow_credentials.unwrap_or(false),
            });
        }
        action.websocket = r.websocket_upgrade.unwrap_or(false);
        Some(action)
    }
}

fn faults(f: &HttpFaultInjection) -> (Option<Delay>, Option<Abort>) {
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = duration(d.fixed_delay.as_ref());
        let exponential = duration(d.exponential_delay.as_ref());
        (fixed.is_some() || exponential.is_some()).then(|| Delay {
            percent: d.percent.unwrap_or(100.0),
            fixed,
            exponential,
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let status = a
            .http_status
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())?;
        Some(Abort {
            percent: a.percent.unwrap_or(100.0),
            status,
        })
    });
    (delay, abort)
}

fn compile_match(sm: &StringMatch) -> Option<Matcher> {
    if let Some(e) = &sm.exact {
        return Some(Matcher::Exact(e.clone()));
    }
    if let Some(p) = &sm.prefix {
        return Some(Matcher::Prefix(p.clone()));
    }
    let re = sm.regex.as_ref()?;
    // Envoy matched the whole value (std::regex_match); anchor so `user=jason` does not match
    // `user=jasonx`.
    Regex::new(&format!("^(?:{re})$"))
        .ok()
        .map(|r| Matcher::Regex(r, re.clone()))
}

impl CompiledRule {
    pub fn describe(&self) -> Value {
        let conditions: BTreeMap<String, String> = self
            .conditions
            .iter()
            .map(|(f, m)| {
                let name = match f {
                    Field::Uri => "uri".to_string(),
                    Field::Authority => "authority".to_string(),
                    Field::Scheme => "scheme".to_string(),
                    Field::Method => "method".to_string(),
                    Field::Header(h) => h.to_string(),
                };
                let how = match m {
                    Matcher::Exact(s) => format!("exact {s}"),
                    Matcher::Prefix(s) => format!("prefix {s}"),
                    Matcher::Regex(_, text) => format!("regex {text}"),
                };
                (name, how)
            })
            .collect();
        let action = match &self.action {
            RuleAction::Redirect { uri, authority } => json!({"redirect": {"uri": uri, "authority": authority}}),
            RuleAction::Route(a) => a.describe(),
        };
        json!({
            "rule": self.id,
            "precedence": self.precedence,
            "match": conditions,
            "action": action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadOptions;

    fn registry() -> Registry {
        Registry::parse(
            "services:\n\
             - name: reviews\n  port: 9080\n  endpoints:\n\
             \x20 - {address: 127.0.0.1:1, labels: {version: v1}}\n\
             \x20 - {address: 127.0.0.1:2, labels: {version: v2}}\n\
             \x20 - {address: 127.0.0.1:3, labels: {version: v3}}\n\
             - name: ratings\n  port: 9080\n  endpoints:\n\
             \x20 - {address: 127.0.0.1:4, labels: {version: v1}}\n",
            "services.yaml",
        )
        .unwrap()
    }

    fn objects(yaml: &str) -> Vec<Resource> {
        let file: Arc<str> = Arc::from("rules.yaml");
        let report = crate::validate::check_file(&file, yaml.as_bytes(), &LoadOptions::default());
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        report.resources
    }

    fn table(yaml: &str, source: &SourceIdentity) -> RouteTable {
        RouteTable::compile(&objects(yaml), &registry(), source, &States::default())
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn selected(t: &RouteTable, service: &str, path: &str, h: &http::HeaderMap) -> Option<String> {
        let s = t.service(service).unwrap();
        let facts = RequestFacts {
            method: "GET",
            path,
            authority: "reviews:9080",
            headers: Headers::Map(h),
        };
        s.select(&facts).map(|r| r.id.clone())
    }

    const JASON: &str = "
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-default}
spec:
  destination: {name: reviews}
  precedence: 1
  route:
  - labels: {version: v1}
---
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: reviews-test-v2}
spec:
  destination: {name: reviews}
  precedence: 2
  match:
    request:
      headers:
        cookie:
          regex: \"^(.*?;)?(user=jason)(;.*)?$\"
  route:
  - labels: {version: v2}
";

    #[test]
    fn precedence_and_header_regex() {
        let t = table(JASON, &SourceIdentity::default());
        let svc = "reviews.default.svc.cluster.local";
        let jason = headers(&[("cookie", "session=1;user=jason")]);
        assert_eq!(
            selected(&t, svc, "/", &jason).as_deref(),
            Some("route-rule/default/reviews-test-v2")
        );
        let other = headers(&[("cookie", "user=jasonx")]);
        assert_eq!(
            selected(&t, svc, "/", &other).as_deref(),
            Some("route-rule/default/reviews-default")
        );
        let none = headers(&[]);
        assert_eq!(
            selected(&t, svc, "/", &none).as_deref(),
            Some("route-rule/default/reviews-default")
        );
        assert!(t.service("ratings.default.svc.cluster.local").unwrap().rules.is_empty());
        let rule = t.service(svc).unwrap().select(&RequestFacts {
            method: "GET",
            path: "/",
            authority: "reviews",
            headers: Headers::Map(&jason),
        });
        let RuleAction::Route(a) = &rule.unwrap().action else {
            panic!("a route")
        };
        assert_eq!(a.targets.len(), 1);
        assert_eq!(a.targets[0].cluster.subset, "version=v2");
        assert_eq!(a.targets[0].cluster.endpoints.len(), 1);
        assert_eq!(a.targets[0].cluster.endpoints[0].address, "127.0.0.1:2");
    }

    #[test]
    fn weighted_split_lands_near_its_weights() {
        let t = table(
            "
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: split}
spec:
  destination: {name: reviews}
  route:
  - {labels: {version: v1}, weight: 80}
  - {labels: {version: v3}, weight: 20}
",
            &SourceIdentity::default(),
        );
        let s = t.service("reviews.default.svc.cluster.local").unwrap();
        let RuleAction::Route(a) = &s.rules[0].action else {
            panic!("a route")
        };
        let v1 = (0..10_000).filter(|_| a.pick().subset == "version=v1").count();
        assert!((7_600..=8_400).contains(&v1), "{v1} of 10000 went to v1");
    }

    #[test]
    fn source_matches_filter_rules_at_compile_time() {
        let yaml = "
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: from-productpage}
spec:
  destination: {name: reviews}
  match:
    source: {name: productpage, labels: {version: v1}}
  route:
  - labels: {version: v3}
";
        let pp = SourceIdentity {
            name: Some("productpage".into()),
            namespace: "default".into(),
            labels: [
                ("app".to_string(), "productpage".to_string()),
                ("version".to_string(), "v1".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let t = table(yaml, &pp);
        assert_eq!(t.service("reviews.default.svc.cluster.local").unwrap().rules.len(), 1);
        let other = SourceIdentity {
            name: Some("details".into()),
            namespace: "default".into(),
            labels: StringMap::new(),
        };
        let t = table(yaml, &other);
        let s = t.service("reviews.default.svc.cluster.local").unwrap();
        assert!(s.rules.is_empty());
        assert_eq!(s.skipped, vec!["route-rule/default/from-productpage".to_string()]);
    }

    #[test]
    fn the_most_specific_policy_wins() {
        let yaml = "
apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata: {name: all}
spec:
  destination: {name: reviews}
  loadBalancing: {name: RANDOM}
---
apiVersion: config.istio.io/v1alpha2
kind: DestinationPolicy
metadata: {name: v1-only}
spec:
  destination: {name: reviews, labels: {version: v1}}
  loadBalancing: {name: LEAST_CONN}
  circuitBreaker:
    simpleCb: {maxConnections: 1, httpMaxPendingRequests: 2}
---
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: split}
spec:
  destination: {name: reviews}
  route:
  - {labels: {version: v1}, weight: 50}
  - {labels: {version: v2}, weight: 50}
";
        let t = table(yaml, &SourceIdentity::default());
        let s = t.service("reviews.default.svc.cluster.local").unwrap();
        let RuleAction::Route(a) = &s.rules[0].action else {
            panic!("a route")
        };
        let v1 = &a.targets[0].cluster.policy;
        assert_eq!(v1.id.as_deref(), Some("destination-policy/default/v1-only"));
        assert_eq!(v1.lb, LbPolicy::LeastConn);
        assert_eq!((v1.max_connections, v1.max_pending), (1, 2));
        assert!(v1.outlier.is_some());
        let v2 = &a.targets[1].cluster.policy;
        assert_eq!(v2.id.as_deref(), Some("destination-policy/default/all"));
        assert_eq!(v2.lb, LbPolicy::Random);
        assert!(v2.outlier.is_none());
        assert_eq!(s.fallback.targets[0].cluster.policy.lb, LbPolicy::Random);
    }

    #[test]
    fn fqdns_from_names_and_services() {
        let s = |name: Option<&str>, service: Option<&str>, ns: Option<&str>| IstioService {
            name: name.map(String::from),
            service: service.map(String::from),
            namespace: ns.map(String::from),
            ..IstioService::default()
        };
        assert_eq!(
            service_fqdn(&s(Some("reviews"), None, None), "default").as_deref(),
            Some("reviews.default.svc.cluster.local")
        );
        assert_eq!(
            service_fqdn(&s(Some("reviews"), None, Some("prod")), "default").as_deref(),
            Some("reviews.prod.svc.cluster.local")
        );
        assert_eq!(
            service_fqdn(&s(None, Some("reviews.prod.svc.cluster.local"), None), "default").as_deref(),
            Some("reviews.prod.svc.cluster.local")
        );
        assert_eq!(
            service_fqdn(&s(None, Some("Reviews"), None), "team").as_deref(),
            Some("reviews.team.svc.cluster.local")
        );
        assert_eq!(
            service_fqdn(&s(None, Some("reviews.prod"), None), "team").as_deref(),
            Some("reviews.prod.svc.cluster.local")
        );
    }

    #[test]
    fn exponential_delays_average_near_their_mean() {
        let d = Delay {
            percent: 100.0,
            fixed: None,
            exponential: Some(Duration::from_millis(100)),
        };
        let mean: f64 = (0..20_000).map(|_| d.sample().as_secs_f64()).sum::<f64>() / 20_000.0;
        assert!((0.09..0.11).contains(&mean), "mean {mean}");
    }
}
