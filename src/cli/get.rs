//! `meshctl get`: show rules from the store, as a table (kubectl's layout) or as YAML/JSON that
//! `meshctl create -f` accepts back.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, SystemTime};

use comfy_table::{Attribute, Cell, ContentArrangement, Table};
use serde_json::{Value, json};

use crate::cli::objects;
use crate::cli::{ColorChoice, Global, Outcome, UsageError};
use crate::model::meta::DEFAULT_NAMESPACE;
use crate::model::{Kind, Resource, Spec, StringMap};
use crate::store::{ObjectKey, Selector};

/// Show rules from the store
///
/// KIND is any name of a kind (egressrules, egressrule, egress-rule, er, RouteRule, ...) or `all`.
/// Without names, lists the kind in the namespace (-n, default `default`) or in all namespaces (-A).
/// Exit status: 0 shown (also when there is nothing to show), 1 a named rule does not exist (the
/// others are still shown), 2 bad usage or an unreachable store.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meshctl get egressrules\n  meshctl get egressrule mysql -o yaml\n  meshctl get routerules -A -o wide\n  meshctl get all -o json > backup.json   # meshctl create -f backup.json restores it"
)]
pub struct Args {
    /// The kind of rule (any alias: egressrules, egress-rule, er, ...), or `all`
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// Only these rules (by name)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// The namespace to look in
    #[arg(short, long, value_name = "NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Look in every namespace
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Short)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// a table: NAME, KIND, NAMESPACE, AGE
    Short,
    /// the table with a one-line summary of each rule's spec
    Wide,
    /// YAML documents separated by `---`
    Yaml,
    /// one JSON object, or a `kind: List` of them
    Json,
    /// `egress-rule/mysql` lines, for scripts
    Name,
}

/// Parses KIND: a kind, or None for `all`.
pub fn parse_kind(text: &str) -> Result<Option<Kind>, UsageError> {
    if text.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    text.parse::<Kind>().map(Some).map_err(|e| {
        UsageError(format!(
            "{e} (kinds: routerules, egressrules, destinationpolicies, or all)"
        ))
    })
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    let kind = parse_kind(&args.kind)?;
    if !args.names.is_empty() {
        if args.all_namespaces {
            return Err(UsageError(
                "a rule cannot be looked up by name across all namespaces: use -n NAMESPACE".to_string(),
            )
            .into());
        }
        if kind.is_none() {
            return Err(UsageError(
                "`get all` takes no names: name a kind, e.g. `meshctl get egressrule mysql`".to_string(),
            )
            .into());
        }
    }
    let store = objects::open_store(global)?;
    let mut outcome = Outcome::Success;
    let (items, revision) = match kind {
        Some(kind) if !args.names.is_empty() => {
            let mut seen = HashSet::new();
            let mut items = Vec::new();
            for name in args.names.iter().filter(|n| seen.insert(n.as_str())) {
                match store.get(&ObjectKey::new(kind, &args.namespace, name)) {
                    Ok(object) => items.push(object),
                    Err(e) => {
                        objects::report(e)?;
                        outcome = Outcome::Failure;
                    }
                }
            }
            (items, None)
        }
        _ => {
            let selector = Selector {
                kind,
                namespace: (!args.all_namespaces).then(|| args.namespace.clone()),
            };
            match store.list(&selector) {
                Ok(listing) => (listing.items, Some(listing.revision)),
                Err(e) => {
                    objects::report(e)?;
                    return Ok(Outcome::Failure);
                }
            }
        }
    };
    let single = args.names.len() == 1;
    if items.is_empty() && args.names.is_empty() {
        let mut err = anstream::stderr();
        if args.all_namespaces {
            writeln!(err, "No resources found.")?;
        } else {
            writeln!(err, "No resources found in {} namespace.", args.namespace)?;
        }
        if args.output != Format::Json {
            return Ok(outcome);
        }
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Short | Format::Wide => {
            if !items.is_empty() {
                let table = table(
                    &items,
                    args.all_namespaces,
                    args.output == Format::Wide,
                    SystemTime::now(),
                );
                out.write_all(table.as_bytes())?;
            }
        }
        Format::Yaml => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"---\n")?;
                }
                out.write_all(crate::load::emit::to_yaml(&serde_json::to_value(item)?).as_bytes())?;
            }
        }
        Format::Json => {
            let value = match (single, items.as_slice()) {
                (true, [item]) => serde_json::to_value(item)?,
                (true, []) => return Ok(outcome),
                _ => list(&items, revision)?,
            };
            serde_json::to_writer_pretty(&mut out, &value)?;
            out.write_all(b"\n")?;
        }
        Format::Name => {
            for item in &items {
                writeln!(out, "{}/{}", item.kind.istioctl_name(), item.name())?;
            }
        }
    }
    out.flush()?;
    Ok(outcome)
}

/// A `kind: List` as kubectl prints one (and as the loader reads back).
fn list(items: &[Resource], revision: Option<u64>) -> serde_json::Result<Value> {
    let items: Vec<Value> = items.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": revision.map(|r| r.to_string()).unwrap_or_default()},
        "items": items,
    }))
}

/// The table: NAME, KIND, NAMESPACE, AGE (NAMESPACE first with -A, as kubectl), and SUMMARY for
/// wide. No borders, three spaces between columns, no wrapping.
fn table(items: &[Resource], all_namespaces: bool, wide: bool, now: SystemTime) -> String {
    let mut header = if all_namespaces {
        vec!["NAMESPACE", "NAME", "KIND", "AGE"]
    } else {
        vec!["NAME", "KIND", "NAMESPACE", "AGE"]
    };
    if wide {
        header.push("SUMMARY");
    }
    let color = ColorChoice::Auto.enabled();
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(header.iter().map(|h| {
        let cell = Cell::new(h);
        if color {
            cell.add_attribute(Attribute::Bold)
        } else {
            cell
        }
    }));
    for item in items {
        let age = age(item, now);
        let mut row = if all_namespaces {
            vec![
                item.namespace().to_string(),
                item.name().to_string(),
                item.kind.name().to_string(),
                age,
            ]
        } else {
            vec![
                item.name().to_string(),
                item.kind.name().to_string(),
                item.namespace().to_string(),
                age,
            ]
        };
        if wide {
            row.push(summary(item));
        }
        table.add_row(row.iter().map(|c| clean(c)));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Control characters (escape sequences) from a store never reach the terminal.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The object's age as kubectl prints it, or `<unknown>`.
fn age(item: &Resource, now: SystemTime) -> String {
    item.metadata
        .creation_timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .map_or_else(
            || "<unknown>".to_string(),
            |created| human_duration(now.duration_since(created).unwrap_or_default()),
        )
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `15m`, `5h3m`, `20h`, `3d4h`, `90d`, `2y30d`, `8y`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = secs / 3600;
    let days = hours / 24;
    let years = days / 365;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 3 * 60 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if years < 2 {
        format!("{days}d")
    } else if years < 8 {
        match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        }
    } else {
        format!("{years}y")
    }
}

/// One line about what a rule does, for `-o wide`.
pub fn summary(item: &Resource) -> String {
    match &item.spec {
        Spec::EgressRule(s) => {
            let dest = s.destination.as_ref().and_then(|d| d.display_name()).unwrap_or("?");
            let ports: Vec<String> = s
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    let port = p.port.map_or_else(|| "?".to_string(), |n| n.to_string());
                    match &p.protocol {
                        Some(proto) => format!("{}:{port}", proto.to_ascii_lowercase()),
                        None => port,
                    }
                })
                .collect();
            let mut line = format!("{dest} {}", ports.join(","));
            if s.use_egress_proxy == Some(true) {
                line.push_str(" via egress proxy");
            }
            line
        }
        Spec::RouteRule(s) => {
            let dest = s.destination.as_ref().and_then(|d| d.display_name()).unwrap_or("?");
            if let Some(redirect) = &s.redirect {
                let to = [redirect.authority.as_deref(), redirect.uri.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("");
                return format!("{dest} redirect {to}");
            }
            let routes = s.route.as_deref().unwrap_or_default();
            let targets: Vec<String> = routes
                .iter()
                .map(|r| {
                    let service = r.destination.as_ref().and_then(|d| d.display_name());
                    let version = r.labels.as_ref().map(labels).filter(|l| !l.is_empty());
                    let target = match (service, version) {
                        (Some(svc), Some(v)) => format!("{svc}:{v}"),
                        (Some(svc), None) => svc.to_string(),
                        (None, Some(v)) => v,
                        (None, None) => dest.to_string(),
                    };
                    match r.weight {
                        Some(w) if routes.len() > 1 => format!("{target} {w}%"),
                        _ => target,
                    }
                })
                .collect();
            let mut line = if targets.is_empty() {
                dest.to_string()
            } else {
                format!("{dest} -> {}", targets.join(", "))
            };
            if let Some(p) = s.precedence.filter(|p| *p != 0) {
                line.push_str(&format!(" (precedence {p})"));
            }
            line
        }
        Spec::DestinationPolicy(s) => {
            let dest = s.destination.as_ref();
            let mut line = dest.and_then(|d| d.display_name()).unwrap_or("?").to_string();
            if let Some(v) = dest
                .and_then(|d| d.labels.as_ref())
                .map(labels)
                .filter(|l| !l.is_empty())
            {
                line.push(':');
                line.push_str(&v);
            }
            if let Some(lb) = s.load_balancing.as_ref().and_then(|l| l.name.as_deref()) {
                line.push(' ');
                line.push_str(lb);
            }
            if s.circuit_breaker.is_some() {
                line.push_str(" circuit-breaker");
            }
            line
        }
    }
}

/// `v3` for the usual `version: v3`, else `k=v,k=v`.
fn labels(l: &StringMap) -> String {
    match l.iter().collect::<Vec<_>>().as_slice() {
        [(k, v)] if k.as_str() == "version" => (*v).clone(),
        all => all
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (secs, expected) in [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (180, "3m"),
            (15 * 60, "15m"),
            (2 * 3600, "120m"),
            (5 * 3600 + 180, "5h3m"),
            (20 * 3600, "20h"),
            (4 * 86400, "4d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (90 * 86400, "90d"),
            (3 * 365 * 86400 + 30 * 86400, "3y30d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), expected, "{secs}");
        }
    }

    #[test]
    fn kinds_and_all() {
        assert_eq!(parse_kind("er").expect("kind"), Some(Kind::EgressRule));
        assert_eq!(parse_kind("ALL").expect("all"), None);
        let err = parse_kind("egresrules").expect_err("typo").to_string();
        assert!(err.contains("did you mean `egressrules`"), "{err}");
    }
}
