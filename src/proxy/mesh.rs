//! Mesh requests: HTTP to a service of the registry, routed by the RouteRules and balanced and
//! guarded by the DestinationPolicies compiled in [`super::routes`]. This is the runtime half: the
//! state that outlives a rule change (connection pools, circuit-breaker counters, ejections, figures),
//! the balancer, and the request's way through faults, retries and timeouts to an endpoint.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::access_log::{Decision, Entry, MeshInfo};
use super::clock::ConnClock;
use super::conn::{self, UpstreamError};
use super::h1::{self, BodyState, Framing, Payload};
use super::http::{CountingBody, LogOnDrop, ProxyBody, local, strip_hop_by_hop};
use super::routes::{Cluster, Headers, RequestFacts, RouteAction, RuleAction, chance};
use super::state::{Active, Shared};
use crate::model::destination_policy::LbPolicy;

/// Request bodies up to this size are kept so that a retry or a mirror can send them again.
const REPLAY_LIMIT: u64 = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Instants as nanoseconds since this, so that they fit an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_nanos() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
}

// === State that outlives a rule change ===

/// Every cluster's and service's runtime state, kept by key so that a recompiled rule set finds the
/// counters, pools and ejections of the one before.
#[derive(Default)]
pub struct States {
    clusters: Mutex<BTreeMap<(String, String), Arc<ClusterState>>>,
    services: Mutex<BTreeMap<String, Arc<ServiceCounters>>>,
}

impl States {
    pub fn cluster(&self, service: &str, subset: &str) -> Arc<ClusterState> {
        lock(&self.clusters)
            .entry((service.to_string(), subset.to_string()))
            .or_insert_with(|| {
                Arc::new(ClusterState {
                    service: service.to_string(),
                    subset: subset.to_string(),
                    ..ClusterState::default()
                })
            })
            .clone()
    }

    pub fn service(&self, fqdn: &str) -> Arc<ServiceCounters> {
        lock(&self.services).entry(fqdn.to_string()).or_default().clone()
    }

    /// The mesh families of `/metrics`.
    pub fn render(&self, out: &mut String) {
        let clusters: Vec<Arc<ClusterState>> = lock(&self.clusters).values().cloned().collect();
        let services: Vec<(String, Arc<ServiceCounters>)> = lock(&self.services)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let cl = |c: &ClusterState| format!("service=\"{}\",subset=\"{}\"", c.service, c.subset);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);

        let mut samples = Vec::new();
        for c in &clusters {
            for (code, n) in lock(&c.codes).iter() {
                samples.push((format!("{{{},code=\"{code}\"}}", cl(c)), n.to_string()));
            }
        }
        family(
            out,
            "meshctl_proxy_mesh_requests_total",
            "counter",
            "Mesh requests, by destination service, subset and status code.",
            samples,
        );

        let name = "meshctl_proxy_mesh_request_duration_seconds";
        let mut samples = Vec::new();
        for c in &clusters {
            let h = lock(&c.latency);
            if h.count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                samples.push((format!("_bucket{{{},le=\"{le}\"}}", cl(c)), cumulative.to_string()));
            }
            samples.push((format!("_bucket{{{},le=\"+Inf\"}}", cl(c)), h.count.to_string()));
            samples.push((format!("_sum{{{}}}", cl(c)), h.sum.to_string()));
            samples.push((format!("_count{{{}}}", cl(c)), h.count.to_string()));
        }
        family(
            out,
            name,
            "histogram",
            "Time to the upstream's response headers, by service and subset.",
            samples,
        );

        let samples = services
            .iter()
            .map(|(s, c)| (format!("{{service=\"{s}\"}}"), get(&c.retries).to_string()))
            .collect();
        family(
            out,
            "meshctl_proxy_mesh_retries_total",
            "counter",
            "Retries of mesh requests, by service.",
            samples,
        );

        let samples = services
            .iter()
            .flat_map(|(s, c)| {
                [("delay", get(&c.delays)), ("abort", get(&c.aborts))]
                    .map(|(kind, n)| (format!("{{service=\"{s}\",type=\"{kind}\"}}"), n.to_string()))
            })
            .collect();
        family(
            out,
            "meshctl_proxy_mesh_faults_total",
            "counter",
            "Faults injected by RouteRules, by service and type.",
            samples,
        );

        let per_cluster = |f: &dyn Fn(&ClusterState) -> u64| -> Vec<(String, String)> {
            clusters
                .iter()
                .map(|c| (format!("{{{}}}", cl(c)), f(c).to_string()))
                .collect()
        };
        family(
            out,
            "meshctl_proxy_mesh_ejections_total",
            "counter",
            "Endpoints ejected by outlier detection, by service and subset.",
            per_cluster(&|c| get(&c.ejections)),
        );
        let samples = clusters
            .iter()
            .flat_map(|c| {
                [
                    ("pending", get(&c.overflow_pending)),
                    ("requests", get(&c.overflow_requests)),
                ]
                .map(|(limit, n)| (format!("{{{},limit=\"{limit}\"}}", cl(c)), n.to_string()))
            })
            .collect();
        family(
            out,
            "meshctl_proxy_mesh_overflows_total",
            "counter",
            "Requests refused (503) by a circuit breaker limit, by service, subset and limit.",
            samples,
        );
        family(
            out,
            "meshctl_proxy_mesh_upstream_connections",
            "gauge",
            "Open upstream connections, by service and subset.",
            per_cluster(&|c| get(&c.connections)),
        );
    }
}

/// One metric family: its HELP and TYPE lines, then `NAME` + each sample's suffix (labels) and value.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<(String, String)>) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (suffix, value) in samples {
        let _ = writeln!(out, "{name}{suffix} {value}");
    }
}

#[derive(Default)]
pub struct ServiceCounters {
    pub retries: AtomicU64,
    pub delays: AtomicU64,
    pub aborts: AtomicU64,
}

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; 12],
    count: u64,
    sum: f64,
}

/// A service's subset: its counters, circuit-breaker state and endpoints (with their pools).
#[derive(Default)]
pub struct ClusterState {
    pub service: String,
    pub subset: String,
    rr: AtomicUsize,
    in_flight: AtomicU64,
    pending: AtomicU64,
    connections: AtomicU64,
    retries_in_flight: AtomicU64,
    /// Signalled when a connection goes back to a pool or closes.
    freed: Notify,
    endpoints: Mutex<HashMap<(String, u16), Arc<EndpointState>>>,
    codes: Mutex<BTreeMap<u16, u64>>,
    latency: Mutex<Histogram>,
    ejections: AtomicU64,
    overflow_pending: AtomicU64,
    overflow_requests: AtomicU64,
}

impl ClusterState {
    pub fn endpoint(self: &Arc<Self>, host: &str, port: u16) -> Arc<EndpointState> {
        lock(&self.endpoints)
            .entry((host.to_string(), port))
            .or_insert_with(|| {
                Arc::new(EndpointState {
                    host: host.to_string(),
                    port,
                    ip: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, port)),
                    address: format!("{}:{port}", conn::bracket(host)),
                    in_flight: AtomicU64::new(0),
                    errors: AtomicU32::new(0),
                    ejected_until: AtomicU64::new(0),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    pub(super) fn record(&self, status: u16, took: Duration) {
        *lock(&self.codes).entry(status).or_default() += 1;
        let secs = took.as_secs_f64();
        let mut h = lock(&self.latency);
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }
}

pub struct EndpointState {
    pub host: String,
    pub port: u16,
    /// The address, when the host is an IP address (else it is resolved per connection).
    pub ip: Option<SocketAddr>,
    /// `host:port`.
    pub address: String,
    in_flight: AtomicU64,
    errors: AtomicU32,
    /// Nanoseconds since [`EPOCH`] until which the endpoint is ejected; 0 when it is not.
    ejected_until: AtomicU64,
    idle: Mutex<Vec<Pooled>>,
}

impl EndpointState {
    fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }
}

/// An idle upstream connection and how many requests it has carried.
struct Pooled {
    conn: h1::Conn,
    uses: u64,
    _counted: Counted,
}

/// Counts a connection in its cluster for as long as it is open.
pub(super) struct Counted(Arc<ClusterState>);

impl Counted {
    /// Counts one more connection of `cluster`, unless it has reached its `maxConnections`.
    pub(super) fn open(cluster: &Cluster) -> Option<Counted> {
        let state = &cluster.state;
        let max = cluster.policy.max_connections;
        state
            .connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Counted(state.clone()))
    }
}

/// Whether `cluster` has `httpMaxRequests` requests in flight.
pub(super) fn at_max_requests(cluster: &Cluster) -> bool {
    cluster.state.in_flight.load(Ordering::Relaxed) >= cluster.policy.max_requests
}

/// Counts a request in flight on `endpoint` of `cluster` (`up`), or its end.
pub(super) fn in_flight(cluster: &Cluster, endpoint: &EndpointState, up: bool) {
    if up {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        cluster.state.in_flight.fetch_add(1, Ordering::Relaxed);
    } else {
        endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        cluster.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.freed.notify_waiters();
    }
}

/// A request in flight on one endpoint's connection. Dropped when the response is done: a clean end
/// puts the connection back in the pool (unless it has carried its share of requests), anything
/// else closes it.
pub struct Lease {
    conn: Option<Pooled>,
    endpoint: Arc<EndpointState>,
    cluster: Arc<ClusterState>,
    max_uses: Option<u64>,
    pub clean: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.cluster.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(mut c) = self.conn.take() {
            c.uses += 1;
            if self.clean && self.max_uses.is_none_or(|m| c.uses < m) && c.conn.drained() {
                lock(&self.endpoint.idle).push(c);
                self.cluster.freed.notify_waiters();
            }
        }
    }
}

// === The answer's body ===

/// An upstream answer's body, read from its connection; the connection goes back to its pool (by
/// the lease) as soon as the body has been read to a clean end.
pub struct UpstreamBody {
    /// Holds the connection while the body is read; None once the request is over.
    lease: Option<Lease>,
    state: BodyState,
    keep_alive: bool,
}

impl UpstreamBody {
    fn new(lease: Lease, head: &h1::Head) -> UpstreamBody {
        let mut body = UpstreamBody {
            lease: Some(lease),
            state: BodyState::new(head.framing),
            keep_alive: head.keep_alive,
        };
        // A body-less answer (204, Content-Length: 0, HEAD) is never polled: its connection is free
        // as soon as the head is in.
        if body.state.is_done() {
            body.release(true);
        }
        body
    }

    /// Ends the request on its connection: back to the pool when `clean` and the answer allows it.
    fn release(&mut self, clean: bool) {
        if let Some(mut lease) = self.lease.take() {
            lease.clean = clean && self.keep_alive;
        }
    }

    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, h1::Error>>> {
        let Some(pooled) = self.lease.as_mut().and_then(|l| l.conn.as_mut()) else {
            return Poll::Ready(None);
        };
        let r = pooled.conn.poll_body(&mut self.state, cx);
        match &r {
            Poll::Ready(Some(Err(_))) => self.release(false),
            Poll::Ready(_) if self.state.is_done() => self.release(true),
            _ => {}
        }
        r
    }

    pub fn is_end_stream(&self) -> bool {
        self.state.is_done()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.state.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

// === Handling a request ===

/// Which mesh service a request goes to, and by what name the client reached it.
pub struct Destination<'a> {
    pub fqdn: &'a str,
    pub port: u16,
    /// The authority the request is treated as having (a `--forward` names the service; the
    /// client's own Host names the forward's local address); else its Host header.
    pub authority: Option<&'a str>,
}

/// The request's way to a mesh service: rule, faults, route, policy, endpoint.
pub async fn handle(
    mut req: Request<Incoming>,
    active: Arc<Active>,
    dest: Destination<'_>,
    peer: SocketAddr,
    clock: &ConnClock,
    shared: &Arc<Shared>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let Destination { fqdn, port, authority } = dest;
    let authority: String = match authority {
        Some(a) => a.to_string(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| format!("{fqdn}:{port}")),
    };
    // The URL the client asked for, for the access log and timeout answers: built when needed.
    let path_and_query = req.uri().path_and_query().cloned();
    let url = |authority: &str| {
        format!(
            "http://{authority}{}",
            path_and_query.as_ref().map_or("/", |p| p.as_str())
        )
    };
    // What only the access log shows is not built when there is none.
    let logging = shared.log.enabled();
    let service = if logging {
        format!("{fqdn}:{port}")
    } else {
        String::new()
    };
    let mut entry = Entry::new("http", peer, service.clone());
    if logging {
        entry.method = Some(req.method().to_string());
        entry.url = Some(url(&authority));
    }
    entry.decision = Decision::Allow;
    let mut info = MeshInfo {
        service,
        ..MeshInfo::default()
    };
    shared.metrics.request(true);

    let Some(routes) = active.routes.service(fqdn) else {
        return finish_local(
            shared,
            entry,
            info,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("meshctl proxy: {fqdn} is not in the service registry\n"),
        );
    };
    let rule = routes.select(&RequestFacts {
        method: req.method().as_str(),
        path: req.uri().path(),
        authority: &authority,
        headers: Headers::Map(req.headers()),
    });
    let (action, uri_prefix) = match rule {
        Some(r) => {
            entry.rule = Some(r.id.clone());
            match &r.action {
                RuleAction::Redirect { uri, authority: to } => {
                    let location = format!(
                        "http://{}{}",
                        to.as_deref().unwrap_or(&authority),
                        uri.as_deref()
                            .unwrap_or_else(|| req.uri().path_and_query().map_or("/", |p| p.as_str()))
                    );
                    let mut resp = local(
                        StatusCode::MOVED_PERMANENTLY,
                        format!("meshctl proxy: moved to {location}\n"),
                    );
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                    return logged(shared, entry, info, resp);
                }
                RuleAction::Route(a) => (a.clone(), r.uri_prefix.clone()),
            }
        }
        None => (routes.fallback.clone(), None),
    };
    let counters = routes.counters.clone();

    // CORS: a preflight from an allowed origin is answered here.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let cors = action.cors.as_ref().zip(origin.as_deref()).filter(|(c, o)| c.allows(o));
    if let Some((c, o)) = cors {
        if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            let mut resp = local(StatusCode::OK, "");
            let h = resp.headers_mut();
            put(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            put(h, header::ACCESS_CONTROL_ALLOW_METHODS, &c.allow_methods);
            put(h, header::ACCESS_CONTROL_ALLOW_HEADERS, &c.allow_headers);
            if let Some(age) = c.max_age {
                put(h, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
            }
            if c.allow_credentials {
                put(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
            }
            return logged(shared, entry, info, resp);
        }
    }

    // The deadline counts from the request's arrival, so that it covers an injected delay: a rule can
    // try its own timeout with a delay fault.
    let timeout = action
        .timeout_header
        .as_ref()
        .and_then(|h| req.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(action.timeout, Duration::from_millis);
    // The connection's clock keeps the deadline (no timer of its own per request).
    let deadline = started + timeout;
    let timed_out = |shared: &Arc<Shared>, mut entry: Entry, info: MeshInfo, cluster: Option<&Cluster>| {
        if let Some(c) = cluster {
            c.state.record(504, started.elapsed());
        }
        entry.status = Some(504);
        finish_local(
            shared,
            entry,
            info,
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "meshctl proxy: upstream request timeout: {} took longer than {}\n",
                url(&authority),
                humantime::format_duration(timeout)
            ),
        )
    };

    // Faults: the delay, then the abort.
    if let Some(d) = &action.delay {
        if chance(d.percent) {
            counters.delays.fetch_add(1, Ordering::Relaxed);
            info.fault = Some("delay");
            let delayed = tokio::select! {
                biased;
                () = tokio::time::sleep(d.sample()) => true,
                () = clock.deadline(deadline) => false,
            };
            if !delayed {
                return timed_out(shared, entry, info, None);
            }
        }
    }
    if let Some(a) = &action.abort {
        if chance(a.percent) {
            counters.aborts.fetch_add(1, Ordering::Relaxed);
            info.fault = Some("abort");
            return finish_local(shared, entry, info, a.status, "fault filter abort".to_string());
        }
    }

    let cluster = action.pick().clone();
    if logging {
        info.subset = cluster.subset.clone();
    }
    if cluster.endpoints.is_empty() {
        let labels = if cluster.subset.is_empty() {
            "(any)".to_string()
        } else {
            cluster.subset.clone()
        };
        let why = entry
            .rule
            .as_deref()
            .map_or("no RouteRule".to_string(), |r| r.replacen('/', " ", 1));
        let body = format!(
            "meshctl proxy: no endpoint of {} with labels {labels} ({why})\n",
            cluster.service
        );
        return finish_local(shared, entry, info, StatusCode::SERVICE_UNAVAILABLE, body);
    }
    let policy = cluster.policy.clone();
    let state = cluster.state.clone();
    if at_max_requests(&cluster) {
        state.overflow_requests.fetch_add(1, Ordering::Relaxed);
        return overflow(shared, entry, info, &cluster, "httpMaxRequests", policy.max_requests);
    }

    // WebSocket: passed through only when the rule asks for it.
    let websocket = action.websocket && is_websocket(req.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    let upgrade_headers = websocket.then(|| {
        (
            parts.headers.get(header::UPGRADE).cloned(),
            parts.headers.get(header::CONNECTION).cloned(),
        )
    });
    strip_hop_by_hop(&mut parts.headers);
    if let Some((upgrade, connection)) = upgrade_headers {
        if let (Some(u), Some(c)) = (upgrade, connection) {
            parts.headers.insert(header::UPGRADE, u);
            parts.headers.insert(header::CONNECTION, c);
        }
    }
    // The request goes upstream in origin form: its path and query (rewritten by the rule's rewrite).
    if let Some(new) = &action.rewrite_uri {
        let old = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let rewritten = rewrite_path(old, uri_prefix.as_deref(), new);
        parts.uri = rewritten.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
    }
    let host = action.rewrite_authority.as_deref().unwrap_or(&authority);
    if let Ok(v) = HeaderValue::from_str(host) {
        parts.headers.insert(header::HOST, v);
    }
    for (k, v) in &action.append_headers {
        parts.headers.append(k.clone(), v.clone());
    }

    // Keep the body when a retry or a mirror may need it again and it is small.
    let wants_copy = action.retry.as_ref().is_some_and(|r| r.attempts > 0) || action.mirror.is_some();
    let sent = Arc::new(AtomicU64::new(0));
    let small = body.is_end_stream() || body.size_hint().upper().is_some_and(|n| n <= REPLAY_LIMIT);
    let body = if wants_copy && small && !websocket {
        match collect(body).await {
            Ok(bytes) => Replay::Bytes(bytes),
            Err(e) => {
                entry.error = Some(format!("reading the request body: {e}"));
                return finish_local(
                    shared,
                    entry,
                    info,
                    StatusCode::BAD_REQUEST,
                    "meshctl proxy: the request body could not be read\n".to_string(),
                );
            }
        }
    } else {
        Replay::Stream(Some(CountingBody::new(body, sent.clone())))
    };
    if let (Some(m), Replay::Bytes(b)) = (&action.mirror, &body) {
        mirror(m.clone(), &parts, b.clone(), host, shared);
    }

    // The same deadline as the delay's: an injected delay counts against the rule's timeout.
    let outcome = tokio::select! {
        biased;
        r = attempts(parts, body, &action, &cluster, shared, &counters, &mut info, websocket) => Some(r),
        () = clock.deadline(deadline) => None,
    };
    let Some(result) = outcome else {
        return timed_out(shared, entry, info, Some(&cluster));
    };
    match result {
        Err(Failure::Local(status, body, counted)) => {
            if counted {
                state.record(status.as_u16(), started.elapsed());
            }
            let mut resp = local(status, body);
            if status == StatusCode::SERVICE_UNAVAILABLE && !counted {
                resp.headers_mut()
                    .insert("x-meshctl-overloaded", HeaderValue::from_static("true"));
            }
            entry.status = Some(status.as_u16());
            logged(shared, entry, info, resp)
        }
        Ok((head, mut lease)) => {
            if head.framing == Framing::Upgrade {
                let (Some(client), Some(upstream)) = (client_upgrade, lease.conn.take()) else {
                    state.record(502, started.elapsed());
                    entry.status = Some(502);
                    let body = format!(
                        "meshctl proxy: {}: the upstream switched protocols without being asked to\n",
                        info.upstream.as_deref().unwrap_or("?")
                    );
                    return logged(shared, entry, info, local(StatusCode::BAD_GATEWAY, body));
                };
                state.record(101, started.elapsed());
                entry.status = Some(101);
                entry.mesh = Some(Box::new(info));
                tunnel(client, upstream, entry, shared.clone(), lease);
                let mut out = Response::new(ProxyBody::Local(None));
                *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                *out.headers_mut() = head.headers;
                return out;
            }
            let body = UpstreamBody::new(lease, &head);
            let h1::Head {
                status, mut headers, ..
            } = head;
            state.record(status.as_u16(), started.elapsed());
            entry.status = Some(status.as_u16());
            // The head carries only end-to-end fields: h1 read the hop-by-hop ones and left them out.
            if let Some((c, o)) = cors {
                put(&mut headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
                if !c.expose_headers.is_empty() {
                    put(&mut headers, header::ACCESS_CONTROL_EXPOSE_HEADERS, &c.expose_headers);
                }
                if c.allow_credentials {
                    put(&mut headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
                }
            }
            if logging {
                entry.mesh = Some(Box::new(info));
            }
            let mut resp = Response::new(ProxyBody::Mesh {
                inner: body,
                log: Some(Box::new(LogOnDrop::new(entry, sent, shared.clone()))),
            });
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp
        }
    }
}

enum Replay {
    Bytes(Bytes),
    Stream(Option<CountingBody>),
}

enum Failure {
    /// Answered by the proxy: status, body, and whether it counts as the upstream's answer (a
    /// circuit-breaker overflow does not).
    Local(StatusCode, String, bool),
}

/// Tries the request, and again on a connect failure, a 5xx or a per-try timeout while the rule's
/// retries and the policy's retry budget last.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    parts: http::request::Parts,
    mut body: Replay,
    action: &RouteAction,
    cluster: &Arc<Cluster>,
    shared: &Arc<Shared>,
    counters: &super::mesh::ServiceCounters,
    info: &mut MeshInfo,
    websocket: bool,
) -> Result<(h1::Head, Lease), Failure> {
    let retry = action.retry.clone().unwrap_or(super::routes::Retry {
        attempts: 0,
        per_try_timeout: None,
    });
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let mut tries = 0u32;
    let empty_body = match &body {
        Replay::Bytes(b) => b.is_empty(),
        Replay::Stream(s) => s.as_ref().is_none_or(|s| s.is_end_stream()),
    };
    // Holds a place in the retry budget from the first retry until the request ends, however it
    // ends (the overall timeout drops this future mid-try).
    let mut retrying = RetryBudget(None);
    let result = loop {
        let can_retry = idempotent && matches!(body, Replay::Bytes(_)) && tries < retry.attempts && !websocket;
        let endpoint = pick(cluster);
        info.upstream = Some(endpoint.address.clone());
        let tried = 'try_once: {
            let mut lease = match take(cluster, &endpoint, shared, websocket).await {
                Ok(l) => l,
                Err(f) => break 'try_once Err(f),
            };
            let mut replayed = false;
            let answer = loop {
                let Some(pooled) = lease.conn.as_mut() else {
                    let body = "meshctl proxy: no upstream connection\n".to_string();
                    break 'try_once Err(Failure::Local(StatusCode::BAD_GATEWAY, body, true));
                };
                let reused = pooled.uses > 0;
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let sending = pooled
                    .conn
                    .send(&parts.method, target, &parts.headers, payload(&mut body));
                let answer = match retry.per_try_timeout {
                    Some(t) => tokio::time::timeout(t, sending).await.ok(),
                    None => Some(sending.await),
                };
                // An idle connection the upstream closed just as the request went out: the request
                // goes once more, on a new connection, when it is safe to send again (as HTTP
                // clients do). Not a retry of the rule's, and not the endpoint's failure.
                let stale = matches!(&answer, Some(Err(e)) if e.before_any_answer());
                if stale && reused && !replayed && idempotent && (empty_body || matches!(body, Replay::Bytes(_))) {
                    replayed = true;
                    drop(lease);
                    lease = match take(cluster, &endpoint, shared, true).await {
                        Ok(l) => l,
                        Err(f) => break 'try_once Err(f),
                    };
                    continue;
                }
                break answer;
            };
            match answer {
                Some(Ok(head)) => Ok((head, lease)),
                Some(Err(e)) => {
                    shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let body = format!("meshctl proxy: {}: the upstream failed: {e}\n", endpoint.address);
                    Err(Failure::Local(StatusCode::BAD_GATEWAY, body, true))
                }
                None => {
                    let body = format!(
                        "meshctl proxy: upstream request timeout: {} gave no answer within the per-try timeout\n",
                        endpoint.address
                    );
                    Err(Failure::Local(StatusCode::GATEWAY_TIMEOUT, body, true))
                }
            }
        };
        let failed = match &tried {
            Ok((head, _)) => head.status.is_server_error(),
            // A circuit-breaker overflow (not counted) ends the request at once.
            Err(Failure::Local(_, _, counted)) => {
                if !counted {
                    break tried;
                }
                true
            }
        };
        outcome(cluster, &endpoint, failed);
        if failed && can_retry && start_retry(cluster, &mut retrying) {
            tries += 1;
            counters.retries.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        break tried;
    };
    drop(retrying);
    info.retries = tries;
    result
}

struct RetryBudget<'a>(Option<&'a ClusterState>);

impl Drop for RetryBudget<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.0 {
            state.retries_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Takes a place in the cluster's retry budget (`httpMaxRetries` retries at once) for this request,
/// once; false when the budget is spent.
fn start_retry<'a>(cluster: &'a Cluster, retrying: &mut RetryBudget<'a>) -> bool {
    if retrying.0.is_some() {
        return true;
    }
    let state = &cluster.state;
    let max = cluster.policy.max_retries;
    let ok = state
        .retries_in_flight
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
        .is_ok();
    if ok {
        retrying.0 = Some(state);
    }
    ok
}

/// The body for one try: the kept bytes (again for a retry), or the client's stream (once).
fn payload(body: &mut Replay) -> Payload {
    match body {
        Replay::Bytes(b) if b.is_empty() => Payload::None,
        Replay::Bytes(b) => Payload::Bytes(b.clone()),
        Replay::Stream(s) => match s.take() {
            Some(s) => Payload::Stream(s),
            None => Payload::None,
        },
    }
}

/// The endpoint for the next request, by the policy's balancer, skipping ejected endpoints unless
/// every one is ejected.
pub(super) fn pick(cluster: &Cluster) -> Arc<EndpointState> {
    let eps = &cluster.endpoints;
    let n = eps.len();
    let start = cluster.state.rr.fetch_add(1, Ordering::Relaxed);
    if n == 1 {
        return eps[0].clone();
    }
    let now = now_nanos();
    let usable = |e: &EndpointState| !e.ejected(now);
    let any_usable = eps.iter().any(|e| usable(e));
    let ok = |e: &EndpointState| !any_usable || usable(e);
    match cluster.policy.lb {
        LbPolicy::RoundRobin => (0..n)
            .map(|i| &eps[(start + i) % n])
            .find(|e| ok(e))
            .unwrap_or(&eps[start % n])
            .clone(),
        LbPolicy::Random => {
            let first = fastrand::usize(0..n);
            (0..n)
                .map(|i| &eps[(first + i) % n])
                .find(|e| ok(e))
                .unwrap_or(&eps[first])
                .clone()
        }
        LbPolicy::LeastConn => (0..n)
            .map(|i| &eps[(start + i) % n])
            .filter(|e| ok(e))
            .min_by_key(|e| e.in_flight.load(Ordering::Relaxed))
            .unwrap_or(&eps[start % n])
            .clone(),
    }
}

/// Outlier detection: consecutive failures eject the endpoint for the sleep window, within the
/// ejection budget; a success resets the count.
fn outcome(cluster: &Cluster, endpoint: &EndpointState, failed: bool) {
    let Some(o) = &cluster.policy.outlier else { return };
    if !failed {
        endpoint.errors.store(0, Ordering::Relaxed);
        return;
    }
    let n = endpoint.errors.fetch_add(1, Ordering::Relaxed) + 1;
    if n < o.consecutive_errors {
        return;
    }
    let now = now_nanos();
    if endpoint.ejected(now) {
        return;
    }
    let total = cluster.endpoints.len() as u64;
    let allowed = if o.max_ejection_percent == 0 {
        0
    } else {
        (total * u64::from(o.max_ejection_percent) / 100).max(1)
    };
    let ejected = cluster.endpoints.iter().filter(|e| e.ejected(now)).count() as u64;
    if ejected >= allowed {
        return;
    }
    let until = now.saturating_add(u64::try_from(o.sleep_window.as_nanos()).unwrap_or(u64::MAX));
    endpoint.ejected_until.store(until, Ordering::Relaxed);
    endpoint.errors.store(0, Ordering::Relaxed);
    cluster.state.ejections.fetch_add(1, Ordering::Relaxed);
    eprintln!(
        "meshctl proxy: ejected {} of {}{} for {} after {n} consecutive errors",
        endpoint.address,
        cluster.service,
        if cluster.subset.is_empty() {
            String::new()
        } else {
            format!(" ({})", cluster.subset)
        },
        humantime::format_duration(o.sleep_window)
    );
}

enum Acquire {
    /// `httpMaxPendingRequests` reached.
    Overflow,
    Failed(UpstreamError),
}

/// Decrements the pending count when a waiting request stops waiting.
struct PendingGuard<'a>(&'a ClusterState);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection to `endpoint`: an idle one from its pool, else a new one while the cluster is under
/// `maxConnections`, else the request waits as pending (up to `httpMaxPendingRequests`) for one to
/// come free. An upgrade (WebSocket) always takes a connection of its own.
async fn acquire(
    cluster: &Cluster,
    endpoint: &Arc<EndpointState>,
    shared: &Shared,
    fresh: bool,
) -> Result<Lease, Acquire> {
    let state = &cluster.state;
    let policy = &cluster.policy;
    let mut pending: Option<PendingGuard<'_>> = None;
    loop {
        if !fresh {
            loop {
                let Some(mut c) = lock(&endpoint.idle).pop() else { break };
                // One the upstream closed while it was idle is dropped (and uncounted).
                if c.conn.reusable() {
                    return Ok(lease(cluster, endpoint, Some(c)));
                }
            }
        }
        if let Some(counted) = Counted::open(cluster) {
            let conn = connect(endpoint, shared).await.map_err(Acquire::Failed)?;
            return Ok(lease(
                cluster,
                endpoint,
                Some(Pooled {
                    conn,
                    uses: 0,
                    _counted: counted,
                }),
            ));
        }
        // At the connection limit: an idle connection to another endpoint is closed to make room.
        if evict_one(cluster, endpoint) {
            continue;
        }
        if pending.is_none() {
            let queued = state
                .pending
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < policy.max_pending).then_some(n + 1)
                })
                .is_ok();
            if !queued {
                return Err(Acquire::Overflow);
            }
            pending = Some(PendingGuard(state));
        }
        // Wait for a connection to come back or close: listen first, then look once more, so that
        // one freed between the look above and now is not missed (the timeout is a backstop).
        let freed = state.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let idle_now = !fresh && !lock(&endpoint.idle).is_empty();
        if idle_now || state.connections.load(Ordering::Relaxed) < policy.max_connections {
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
    }
}

/// `acquire`, with its failures as the answers they give.
async fn take(
    cluster: &Cluster,
    endpoint: &Arc<EndpointState>,
    shared: &Shared,
    fresh: bool,
) -> Result<Lease, Failure> {
    match acquire(cluster, endpoint, shared, fresh).await {
        Ok(l) => Ok(l),
        Err(Acquire::Overflow) => {
            // Not the endpoint's fault, and no retry would fare better.
            cluster.state.overflow_pending.fetch_add(1, Ordering::Relaxed);
            let limit = cluster.policy.max_pending;
            Err(overflow_failure(cluster, "httpMaxPendingRequests", limit))
        }
        Err(Acquire::Failed(e)) => {
            shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            let body = format!("meshctl proxy: {}: {e}\n", endpoint.address);
            Err(Failure::Local(e.http_status(), body, true))
        }
    }
}

fn lease(cluster: &Cluster, endpoint: &Arc<EndpointState>, conn: Option<Pooled>) -> Lease {
    in_flight(cluster, endpoint, true);
    Lease {
        conn,
        endpoint: endpoint.clone(),
        cluster: cluster.state.clone(),
        max_uses: cluster.policy.max_requests_per_connection,
        clean: false,
    }
}

fn evict_one(cluster: &Cluster, keep: &Arc<EndpointState>) -> bool {
    for e in &cluster.endpoints {
        if Arc::ptr_eq(e, keep) {
            continue;
        }
        if lock(&e.idle).pop().is_some() {
            return true;
        }
    }
    false
}

async fn connect(endpoint: &EndpointState, shared: &Shared) -> Result<h1::Conn, UpstreamError> {
    let tcp = conn::connect(&endpoint.host, endpoint.port, shared.connect_timeout).await?;
    Ok(h1::Conn::new(tcp))
}

/// A copy of the request for the mirror, sent on its own connection; its answer is read and dropped.
fn mirror(cluster: Arc<Cluster>, parts: &http::request::Parts, body: Bytes, host: &str, shared: &Arc<Shared>) {
    if cluster.endpoints.is_empty() {
        return;
    }
    let endpoint = pick(&cluster);
    let method = parts.method.clone();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut headers = parts.headers.clone();
    // As Envoy did: `-shadow` appended to the whole authority.
    let shadow = format!("{host}-shadow");
    if let Ok(v) = HeaderValue::from_str(&shadow) {
        headers.insert(header::HOST, v);
    }
    let payload = if body.is_empty() {
        Payload::None
    } else {
        Payload::Bytes(body)
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let exchange = async {
            let mut conn = connect(&endpoint, &shared).await.ok()?;
            let head = conn.send(&method, &target, &headers, payload).await.ok()?;
            let mut state = BodyState::new(head.framing);
            while let Some(Ok(_)) = std::future::poll_fn(|cx| conn.poll_body(&mut state, cx)).await {}
            Some(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), exchange).await;
    });
}

/// After a 101: bytes both ways between the client and the upstream until either side ends.
fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: Pooled, mut entry: Entry, shared: Arc<Shared>, lease: Lease) {
    tokio::spawn(async move {
        let _lease = lease;
        let Pooled {
            conn,
            _counted: counted,
            ..
        } = upstream;
        let _counted = counted;
        // Bytes the upstream sent right after its 101 are the first of the new protocol.
        let (mut upstream, early) = conn.into_io();
        match client.await {
            Ok(c) => {
                let mut c = TokioIo::new(c);
                let copied = async {
                    if !early.is_empty() {
                        tokio::io::AsyncWriteExt::write_all(&mut c, &early).await?;
                    }
                    tokio::io::copy_bidirectional(&mut c, &mut upstream).await
                };
                match copied.await {
                    Ok((sent, received)) => {
                        entry.sent = sent;
                        entry.received = received + early.len() as u64;
                    }
                    Err(e) => entry.error = Some(format!("websocket: {e}")),
                }
            }
            Err(e) => entry.error = Some(format!("upgrade: {e}")),
        }
        entry.finish();
        shared.metrics.bytes(entry.sent, entry.received);
        shared.log.write(&entry);
    });
}

async fn collect(body: Incoming) -> Result<Bytes, hyper::Error> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `rewrite.uri`: replaces the prefix the rule matched, else the whole path; the query stays.
pub(super) fn rewrite_path(path_and_query: &str, prefix: Option<&str>, new: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out = match prefix.and_then(|p| path.strip_prefix(p)) {
        Some(rest) => format!("{new}{rest}"),
        None => new.to_string(),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Sets a header; an empty value is left out (an empty CORS list says nothing).
fn put(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if value.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn overflow_failure(cluster: &Cluster, limit: &str, n: u64) -> Failure {
    Failure::Local(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "meshctl proxy: circuit breaker open for {} ({limit} {n} reached)\n",
            cluster.service
        ),
        false,
    )
}

fn overflow(
    shared: &Shared,
    entry: Entry,
    info: MeshInfo,
    cluster: &Cluster,
    limit: &str,
    n: u64,
) -> Response<ProxyBody> {
    let Failure::Local(status, body, _) = overflow_failure(cluster, limit, n);
    let mut entry = entry;
    entry.status = Some(status.as_u16());
    let mut resp = local(status, body);
    resp.headers_mut()
        .insert("x-meshctl-overloaded", HeaderValue::from_static("true"));
    logged(shared, entry, info, resp)
}

fn finish_local(
    shared: &Shared,
    mut entry: Entry,
    info: MeshInfo,
    status: StatusCode,
    body: String,
) -> Response<ProxyBody> {
    entry.status = Some(status.as_u16());
    logged(shared, entry, info, local(status, body))
}

fn logged(shared: &Shared, mut entry: Entry, info: MeshInfo, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    entry.status = Some(resp.status().as_u16());
    entry.mesh = Some(Box::new(info));
    entry.finish();
    shared.log.write(&entry);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_keep_the_query_and_replace_the_matched_prefix() {
        assert_eq!(rewrite_path("/old/a?x=1", Some("/old"), "/new"), "/new/a?x=1");
        assert_eq!(rewrite_path("/old/a", None, "/new"), "/new");
        assert_eq!(rewrite_path("/other", Some("/old"), "/new"), "/new");
    }
}
