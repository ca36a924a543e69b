//! Integration tests: the real binary on real files. One test binary, one module per area.

mod check;
mod common;
mod fuzz;
mod proxy_faults;
mod proxy_forward;
mod proxy_http;
mod proxy_lane;
mod proxy_mysql;
mod proxy_netns;
mod proxy_routing;
mod proxy_store;
mod proxy_upstream_framing;
mod roundtrip;
mod sarif;
mod serve;
mod serve_etcd;
mod snapshots;
mod store_cli;
mod store_copy;
#[path = "../support/mod.rs"]
mod support;
mod validate;
