//! What every connection shares: the rules in force (swapped whole on each change), the counters,
//! the access log and the upstream TLS configuration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::access_log::AccessLog;
use super::mesh::States;
use super::metrics::Metrics;
use super::routes::{RouteTable, SourceIdentity};
use super::rules::RuleSet;
use super::services::Registry;
use crate::model::{Kind, Resource};

/// What routing needs besides the rules: who the proxy speaks for, the service registry in force,
/// and the runtime state (pools, counters, ejections) that outlives a change of either.
pub struct Routing {
    pub source: SourceIdentity,
    pub states: States,
    registry: Mutex<Arc<Registry>>,
    /// Held while a new [`Active`] is built and installed, so that a rules change and a registry
    /// change that happen together do not undo one another.
    installing: Mutex<()>,
}

impl Routing {
    pub fn new(source: SourceIdentity, registry: Registry) -> Routing {
        Routing {
            source,
            states: States::default(),
            registry: Mutex::new(Arc::new(registry)),
            installing: Mutex::new(()),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set_registry(&self, registry: Registry) {
        *self.registry.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(registry);
    }

    pub fn installing(&self) -> MutexGuard<'_, ()> {
        self.installing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One compiled rule set and where it came from. Connections take a snapshot when they decide, so a
/// change applies to new connections and requests and never to one already established.
pub struct Active {
    pub rules: RuleSet,
    /// Routes and policies for the services of `registry`.
    pub routes: RouteTable,
    pub registry: Arc<Registry>,
    /// The store's revision, or a load counter for `-f` files.
    pub revision: u64,
    /// The objects the rules were compiled from (for `/config_dump`).
    pub objects: Vec<Resource>,
    /// `sqlite:PATH`, a URL, or the files.
    pub source: String,
    pub loaded_at: SystemTime,
}

impl Active {
    pub fn new(objects: Vec<Resource>, revision: u64, source: String, routing: &Routing) -> Active {
        let registry = routing.registry();
        Active {
            rules: RuleSet::compile(&objects),
            routes: RouteTable::compile(&objects, &registry, &routing.source, &routing.states),
            registry,
            revision,
            objects,
            source,
            loaded_at: SystemTime::now(),
        }
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.objects.iter().filter(|o| o.kind == kind).count()
    }
}

pub struct Shared {
    pub active: ArcSwap<Active>,
    pub routing: Arc<Routing>,
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
