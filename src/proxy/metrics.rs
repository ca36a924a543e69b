//! The proxy's counters and their Prometheus text form (served on the admin port's `/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::lane::Handover;

#[derive(Default)]
pub struct Metrics {
    pub connections_allowed: AtomicU64,
    pub connections_denied: AtomicU64,
    pub requests_allowed: AtomicU64,
    pub requests_denied: AtomicU64,
    /// Upstreams that refused, timed out or failed the TLS handshake.
    pub upstream_errors: AtomicU64,
    /// Client to upstream.
    pub bytes_sent: AtomicU64,
    /// Upstream to client.
    pub bytes_received: AtomicU64,
    pub active_connections: AtomicI64,
    pub rules_revision: AtomicU64,
    pub egress_rules: AtomicU64,
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    pub access_log_dropped: AtomicU64,
    /// Forward connections handed from the forward loop to the runtime, by `lane::Handover`.
    pub forward_handovers: [AtomicU64; 6],
}

/// Counts a connection as active for as long as it lives.
pub struct ActiveGuard<'a>(&'a Metrics);

impl Metrics {
    pub fn track(&self) -> ActiveGuard<'_> {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }

    pub fn connection(&self, allowed: bool) {
        let c = if allowed {
            &self.connections_allowed
        } else {
            &self.connections_denied
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, allowed: bool) {
        let c = if allowed {
            &self.requests_allowed
        } else {
            &self.requests_denied
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes(&self, sent: u64, received: u64) {
        self.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        self.bytes_received.fetch_add(received, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "meshctl_proxy_connections_total",
            "counter",
            "TCP connections, CONNECT and SOCKS5 tunnels, by decision.",
            &[
                ("{decision=\"allow\"}", get(&self.connections_allowed).to_string()),
                ("{decision=\"deny\"}", get(&self.connections_denied).to_string()),
            ],
        );
        family(
            "meshctl_proxy_requests_total",
            "counter",
            "HTTP requests, by decision.",
            &[
                ("{decision=\"allow\"}", get(&self.requests_allowed).to_string()),
                ("{decision=\"deny\"}", get(&self.requests_denied).to_string()),
            ],
        );
        family(
            "meshctl_proxy_upstream_errors_total",
            "counter",
            "Allowed connections whose upstream refused, timed out or failed TLS.",
            &[("", get(&self.upstream_errors).to_string())],
        );
        family(
            "meshctl_proxy_bytes_total",
            "counter",
            "Bytes carried: sent is client to upstream, received is upstream to client.",
            &[
                ("{direction=\"sent\"}", get(&self.bytes_sent).to_string()),
                ("{direction=\"received\"}", get(&self.bytes_received).to_string()),
            ],
        );
        family(
            "meshctl_proxy_active_connections",
            "gauge",
            "Client connections open now.",
            &[("", self.active_connections.load(Ordering::Relaxed).to_string())],
        );
        family(
            "meshctl_proxy_rules_revision",
            "gauge",
            "The revision of the rules in force.",
            &[("", get(&self.rules_revision).to_string())],
        );
        family(
            "meshctl_proxy_egress_rules",
            "gauge",
            "EgressRules in force.",
            &[("", get(&self.egress_rules).to_string())],
        );
        family(
            "meshctl_proxy_reloads_total",
            "counter",
            "Rule sets put in force after a change.",
            &[("", get(&self.reloads).to_string())],
        );
        family(
            "meshctl_proxy_reloads_refused_total",
            "counter",
            "Rule sets refused because they failed validation (the last good set stayed).",
            &[("", get(&self.reloads_refused).to_string())],
        );
        family(
            "meshctl_proxy_access_log_dropped_total",
            "counter",
            "Access log lines dropped because the log could not keep up.",
            &[("", get(&self.access_log_dropped).to_string())],
        );
        let handovers: Vec<(String, String)> = Handover::ALL
            .iter()
            .map(|h| {
                let n = self.forward_handovers.get(*h as usize).map_or(0, get);
                (format!("{{reason=\"{}\"}}", h.as_str()), n.to_string())
            })
            .collect();
        let handovers: Vec<(&str, String)> = handovers.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        family(
            "meshctl_proxy_forward_handovers_total",
            "counter",
            "Mesh connections through a forward that the forward loop handed to the general HTTP server, by the reason of the request that needed it.",
            &handovers,
        );
        out
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
