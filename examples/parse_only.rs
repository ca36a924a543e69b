//! The floor that `meshctl validate` is measured against: the same files, read the same way, parsed
//! by the same YAML crate with the same parallelism, and nothing else (no tree, no typing, no checks).
//!
//! ```text
//! cargo run --release --example parse_only -- DIR... [-j N]
//! ```
//!
//! Directories are walked recursively for `.yaml`, `.yml` and `.json` files, sorted, exactly as
//! `meshctl validate -f DIR -R` finds them; each file is read, decoded as UTF-8 (with the same scan
//! for lone carriage returns), and every `saphyr_parser` event is pulled to the end of the stream
//! through `meshctl::load::yaml::next_event`, the function `meshctl validate` pulls them through, so
//! both run the same parser code. Prints the totals, so the work cannot be optimised away and can be
//! compared between runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use saphyr_parser::Event;

use meshctl::load::{self, files};

/// The same allocator as the `meshctl` binary, so that the floor is not raised by a slower malloc.
#[global_allocator]
static GLOBAL: meshctl::memory::Allocator = meshctl::memory::Allocator;

#[derive(Debug, Parser)]
#[command(about = "Parse rule files with saphyr-parser and nothing more")]
struct Args {
    /// Files or directories (walked recursively)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Worker threads (default: one per core)
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
}

/// What parsing one file produced.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    events: u64,
    documents: u64,
    errors: u64,
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            events: self.events + o.events,
            documents: self.documents + o.documents,
            errors: self.errors + o.errors,
        }
    }
}

fn parse(input: &files::Input) -> std::io::Result<Tally> {
    let bytes = input.read()?;
    let mut tally = Tally::default();
    let Ok(src) = load::decode(&bytes) else {
        tally.errors += 1;
        return Ok(tally);
    };
    // The same preparation as `meshctl validate` (a scan for lone carriage returns).
    let src = &*load::lone_carriage_returns_as_lf(src);
    let mut parser = saphyr_parser::Parser::new_from_str(src);
    // The same out-of-line entry point as `meshctl validate`, so both binaries run the same parser code.
    while let Some(next) = load::yaml::next_event(&mut parser) {
        match next {
            Ok((event, _span)) => {
                tally.events += 1;
                match event {
                    Event::DocumentEnd => tally.documents += 1,
                    Event::StreamEnd => break,
                    _ => {}
                }
            }
            Err(_) => {
                tally.errors += 1;
                break;
            }
        }
    }
    Ok(tally)
}

fn main() -> anyhow::Result<ExitCode> {
    meshctl::memory::disable_transparent_huge_pages();
    let args = Args::parse();
    let inputs = files::collect(&args.paths, true)?;
    anyhow::ensure!(args.jobs != Some(0), "--jobs must be at least 1");
    // The same threading as `meshctl validate`: no pool for one file or `-j 1`.
    let tallies = meshctl::cli::validate::for_each_file(&inputs, args.jobs, parse)?;
    let mut total = Tally::default();
    for (input, tally) in inputs.iter().zip(tallies) {
        total = total + tally.with_context(|| input.display())?;
    }
    println!(
        "{} events, {} documents in {} files ({} with YAML errors)",
        total.events,
        total.documents,
        inputs.len(),
        total.errors
    );
    Ok(if total.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
