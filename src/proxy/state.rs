//! What every connection shares: the rules in force (swapped whole on each change), the counters,
//! the access log and the upstream TLS configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::access_log::AccessLog;
use super::metrics::Metrics;
use super::rules::RuleSet;
use crate::model::Resource;

/// One compiled rule set and where it came from. Connections take a snapshot when they decide, so a
/// change applies to new connections and requests and never to one already established.
pub struct Active {
    pub rules: RuleSet,
    /// The store's revision, or a load counter for `-f` files.
    pub revision: u64,
    /// The objects the rules were compiled from (for `/config_dump`).
    pub objects: Vec<Resource>,
    /// `sqlite:PATH`, a URL, or the files.
    pub source: String,
    pub loaded_at: SystemTime,
}

impl Active {
    pub fn new(objects: Vec<Resource>, revision: u64, source: String) -> Active {
        Active {
            rules: RuleSet::compile(&objects),
            revision,
            objects,
            source,
            loaded_at: SystemTime::now(),
        }
    }
}

pub struct Shared {
    pub active: ArcSwap<Active>,
    pub metrics: Metrics,
    pub log: AccessLog,
    /// For `https` egress ports: TLS toward the destination.
    pub tls: tokio_rustls::TlsConnector,
    pub connect_timeout: Duration,
    /// Set once the rules are loaded and every listener is bound.
    pub ready: AtomicBool,
    /// Turned true on SIGTERM: listeners stop accepting, HTTP connections finish their current
    /// request and close.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn rules(&self) -> arc_swap::Guard<Arc<Active>> {
        self.active.load()
    }

    pub fn install(&self, active: Active) {
        self.metrics.rules_revision.store(active.revision, Ordering::Relaxed);
        self.active.store(Arc::new(active));
    }
}
