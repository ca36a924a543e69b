//! meshctl: lint, manage and enforce service-mesh traffic rules (Istio's `config.istio.io/v1alpha2`
//! RouteRule, EgressRule and DestinationPolicy).
//!
//! Layers, each using only those below it: `cli` → `validate` → `load` → `model`; `diag` is shared.

pub mod cli;
pub mod diag;
pub mod load;
pub mod model;
pub mod suggest;
pub mod validate;
