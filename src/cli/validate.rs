//! `meshctl validate`: lint rule files for CI, with precise positions and trustworthy exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rayon::prelude::*;

use crate::cli::{ColorChoice, Outcome, UsageError};
use crate::diag::{Diagnostic, Severity};
use crate::load::LoadOptions;
use crate::load::files::{self, Input};
use crate::model::Kind;
use crate::validate::render::{self, Summary};
use crate::validate::{self, FileReport};

/// Check rule files: syntax, schema and Istio's semantics
///
/// Exit status: 0 when no errors were found (warnings are allowed unless --strict), 1 when any
/// error was found, 2 on bad usage or a file that cannot be read.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl validate -f rules/ -R\n  meshctl validate -f egress-rule-mysql.yaml -o json\n  cat rule.yaml | meshctl validate -f -"
)]
pub struct Args {
    /// Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Descend into directories recursively
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Print only problems: no summary line when all is well
    #[arg(short, long)]
    pub quiet: bool,
    /// Check only these kinds (comma-separated; any alias, e.g. egressrules,rr)
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub kinds: Vec<Kind>,
    /// Worker threads (default: one per core)
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// When to colour text output
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// rustc-style diagnostics with the source line
    Text,
    /// one JSON object per line (diagnostics, then a summary)
    Json,
    /// GitHub Actions annotations
    Github,
    /// SARIF 2.1.0, for code scanning
    Sarif,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let inputs = files::collect(&args.files, args.recursive).map_err(|e| UsageError(e.to_string()))?;
    let opts = LoadOptions {
        kinds: args.kinds.clone(),
        // Only the diagnostics are reported; the objects would be kept alive for nothing.
        keep_resources: false,
        ..LoadOptions::default()
    };
    let checked = check_inputs(&inputs, &opts, args.jobs)?;

    let mut summary = Summary {
        files: inputs.len(),
        ..Summary::default()
    };
    let mut diagnostics = Vec::new();
    let mut definitions = Vec::new();
    let mut io_errors = Vec::new();
    for (input, result) in inputs.iter().zip(checked) {
        match result {
            Ok(report) => {
                summary.checked += report.counts.checked;
                summary.skipped += report.counts.skipped;
                summary.empty += report.counts.empty;
                diagnostics.extend(report.diagnostics);
                definitions.push(report.definitions);
            }
            Err(e) => io_errors.push(format!("{}: {e}", input.display())),
        }
    }
    diagnostics.extend(validate::duplicate_definitions(&definitions));
    if args.strict {
        for d in &mut diagnostics {
            d.severity = Severity::Error;
        }
    }
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    summary.count(&diagnostics);

    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Text => {
            let opts = render::text::TextOptions {
                color: args.color.enabled(),
                quiet: args.quiet,
            };
            render::text::render(&mut out, &diagnostics, &summary, &opts)?;
        }
        Format::Json => render::json::render(&mut out, &diagnostics, &summary)?,
        Format::Github => render::github::render(&mut out, &diagnostics, &summary)?,
        Format::Sarif => render::sarif::render(&mut out, &diagnostics, &summary)?,
    }
    out.flush()?;
    if !io_errors.is_empty() {
        let mut err = anstream::stderr();
        for e in &io_errors {
            writeln!(err, "Error: {e}")?;
        }
        return Ok(Outcome::UsageOrIo);
    }
    Ok(exit_for(&diagnostics))
}

fn exit_for(diagnostics: &[Diagnostic]) -> Outcome {
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// Reads and checks every input, in parallel, keeping the inputs' order.
fn check_inputs(
    inputs: &[Input],
    opts: &LoadOptions,
    jobs: Option<usize>,
) -> anyhow::Result<Vec<std::io::Result<FileReport>>> {
    let check = |input: &Input| -> std::io::Result<FileReport> {
        let bytes = input.read()?;
        let name: Arc<str> = Arc::from(input.display());
        Ok(validate::check_file(&name, &bytes, opts))
    };
    if jobs == Some(0) {
        return Err(UsageError("--jobs must be at least 1".to_string()).into());
    }
    for_each_file(inputs, jobs, check)
}

/// Applies `f` to every input on `worker_threads` threads, keeping the inputs' order. One thread (a
/// pre-commit hook's single file, or `-j 1`) runs on the calling thread, with no pool to start and
/// stop. The parse-only floor (examples/parse_only.rs) calls this too, so both share the threading.
pub fn for_each_file<T, F>(inputs: &[Input], jobs: Option<usize>, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send,
    F: Fn(&Input) -> T + Sync,
{
    let threads = worker_threads(jobs, inputs.len());
    if threads <= 1 {
        return Ok(inputs.iter().map(f).collect());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting worker threads")?;
    Ok(pool.install(|| inputs.par_iter().map(&f).collect()))
}

/// How many threads check `files` files: `--jobs`, or one per core, and never more than there are
/// files.
pub fn worker_threads(jobs: Option<usize>, files: usize) -> usize {
    let wanted = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    wanted.min(files).max(1)
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn never_more_threads_than_files_nor_fewer_than_one() {
        assert_eq!(worker_threads(Some(8), 1), 1);
        assert_eq!(worker_threads(Some(8), 0), 1);
        assert_eq!(worker_threads(Some(2), 10), 2);
        assert_eq!(worker_threads(Some(1), 10), 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(worker_threads(None, 10_000), cores);
    }
}
