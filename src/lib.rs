//! meshctl: lint, manage and enforce service-mesh traffic rules (Istio's `config.istio.io/v1alpha2`
//! RouteRule, EgressRule and DestinationPolicy).
//!
//! Layers, each using only those below it: `cli` → `server` → `store` → `validate` → `load` → `model`;
//! `diag` is shared.

pub mod cli;
pub mod context;
pub mod diag;
pub mod load;
pub mod memory;
pub mod model;
pub mod proxy;
pub mod server;
pub mod store;
pub mod suggest;
pub mod validate;
