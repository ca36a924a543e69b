//! `meshctl version`: the version of meshctl and of the rule API it speaks.

use std::io::Write;

use crate::cli::Outcome;
use crate::model::API_VERSION;

/// Print meshctl's version
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only the version number
    #[arg(long)]
    pub short: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    match (args.output, args.short) {
        (Format::Json, _) => {
            let v = serde_json::json!({ "version": version, "apiVersion": API_VERSION });
            writeln!(out, "{v}")?;
        }
        (Format::Text, true) => writeln!(out, "{version}")?,
        (Format::Text, false) => writeln!(out, "meshctl {version} (rules: {API_VERSION})")?,
    }
    Ok(Outcome::Success)
}
