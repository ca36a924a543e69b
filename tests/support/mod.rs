//! Test fixtures shared by several test binaries. A test crate at `tests/NAME.rs` includes them with
//! `mod support;`; one in a directory (`tests/integration/main.rs`) with
//! `#[path = "../support/mod.rs"] mod support;`. Not a test target itself: cargo builds only
//! `tests/*.rs` and `tests/*/main.rs`.

pub mod etcd;
