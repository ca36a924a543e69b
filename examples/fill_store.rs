//! Fills an embedded store with EgressRules, for `bench/get.sh`.
//!
//! ```text
//! cargo run --release --example fill_store -- STORE_FILE [--rules N]
//! ```
//!
//! Writes through `SqliteStore::create`, the code path `meshctl create` uses (validated, stamped with
//! revision, uid and creation time, one durable transaction each). The rules are deterministic
//! (`examples/common/egress.rs`); the file must not hold them already.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use meshctl::store::Store;
use meshctl::store::sqlite::SqliteStore;

#[path = "common/egress.rs"]
mod egress;

#[derive(Debug, Parser)]
#[command(about = "Fill an embedded meshctl store with EgressRules")]
struct Args {
    /// The store file (created if missing)
    store: PathBuf,
    /// How many rules
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = SqliteStore::open(&args.store)?;
    let start = Instant::now();
    for i in 0..args.rules {
        let rule = egress::resource(i)?;
        store
            .create(&rule)
            .with_context(|| format!("creating {}/{}", egress::namespace(i), egress::name(i)))?;
    }
    eprintln!(
        "fill_store: {} EgressRules in {} in {:.1}s",
        args.rules,
        args.store.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
