//! Integration tests: the real binary on real files. One test binary, one module per area.

mod common;
mod fuzz;
mod roundtrip;
mod sarif;
mod serve;
mod snapshots;
mod store_cli;
mod validate;
