//! `meshctl get`: show rules from the store, as a table (kubectl's layout) or as YAML/JSON that
//! `meshctl create -f` accepts back.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, SystemTime};

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
    // The process exits right after this, which frees everything at once: freeing thousands of
    // objects one by one first would only add time (8 M instructions for 10,000 rules).
    std::mem::forget(items);
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
/// wide. No borders, three spaces between columns, no wrapping, the header bold when colour is on.
///
/// This is the table comfy-table draws with its `NOTHING` preset, padding (0, 3) and content
/// arrangement disabled (lines trimmed at the end), written out by hand: the same bytes, but about
/// ten times cheaper, which matters for a list of thousands of rules (comfy-table took more than half
/// of `get`'s instructions for 10,000 rows). The test `same_bytes_as_comfy_table` holds the two
/// together.
fn table(items: &[Resource], all_namespaces: bool, wide: bool, now: SystemTime) -> String {
    let mut header = if all_namespaces {
        vec!["NAMESPACE", "NAME", "KIND", "AGE"]
    } else {
        vec!["NAME", "KIND", "NAMESPACE", "AGE"]
    };
    if wide {
        header.push("SUMMARY");
    }
    let mut cells: Vec<Cow<'_, str>> = Vec::with_capacity(items.len() * header.len());
    let mut ages = Ages::new(now);
    for item in items {
        let (namespace, name, kind) = (
            clean(item.namespace()),
            clean(item.name()),
            Cow::Borrowed(item.kind.name()),
        );
        if all_namespaces {
            cells.extend([namespace, name, kind]);
        } else {
            cells.extend([name, kind, namespace]);
        }
        cells.push(Cow::Owned(ages.of(item)));
        if wide {
            cells.push(Cow::Owned(clean(&summary(item)).into_owned()));
        }
    }
    aligned(&header, &cells, ColorChoice::Auto.enabled())
}

/// Lays out `cells` (row after row, `header.len()` to a row) under `header`: each column as wide as
/// its widest cell (in terminal columns), cells left-aligned and followed by three spaces, each line
/// trimmed at the end. With `bold`, each header cell, its padding included, is wrapped in the ANSI
/// bold and reset sequences, as comfy-table styles a cell.
fn aligned(header: &[&str], cells: &[Cow<'_, str>], bold: bool) -> String {
    const GAP: usize = 3;
    let columns = header.len();
    let width = |s: &str| {
        if s.is_ascii() {
            s.len()
        } else {
            unicode_width::UnicodeWidthStr::width(s)
        }
    };
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    let mut cell_widths = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let w = width(cell);
        widths[i % columns] = widths[i % columns].max(w);
        cell_widths.push(w);
    }
    let line_len: usize = widths.iter().map(|w| w + GAP).sum();
    let mut out = String::with_capacity((cells.len() / columns.max(1) + 1) * (line_len + 1));
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    for (h, w) in header.iter().zip(&widths) {
        if bold {
            out.push_str("\x1b[1m");
        }
        out.push_str(h);
        pad(&mut out, w - width(h) + GAP);
        if bold {
            out.push_str("\x1b[0m");
        }
    }
    trim_line_end(&mut out, 0);
    for (row, row_widths) in cells.chunks(columns).zip(cell_widths.chunks(columns)) {
        let start = out.len();
        for ((cell, cw), w) in row.iter().zip(row_widths).zip(&widths) {
            out.push_str(cell);
            pad(&mut out, w - cw + GAP);
        }
        trim_line_end(&mut out, start);
    }
    out
}

/// Trims the whitespace at the end of the line that starts at `start` (as `str::trim_end` does) and
/// ends it with a newline.
fn trim_line_end(out: &mut String, start: usize) {
    let kept = out[start..].trim_end().len();
    out.truncate(start + kept);
    out.push('\n');
}

/// Control characters (escape sequences) from a store never reach the terminal.
fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { '?' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Ages of objects, remembering the last creation time read: objects created in the same second
/// (a bulk create) share one parse.
struct Ages {
    now: SystemTime,
    last: Option<(String, String)>,
}

impl Ages {
    fn new(now: SystemTime) -> Ages {
        Ages { now, last: None }
    }

    fn of(&mut self, item: &Resource) -> String {
        let Some(created) = item.metadata.creation_timestamp.as_deref() else {
            return age(item, self.now);
        };
        match &self.last {
            Some((t, age)) if t == created => age.clone(),
            _ => {
                let age = age(item, self.now);
                self.last = Some((created.to_string(), age.clone()));
                age
            }
        }
    }
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

    /// The table as comfy-table drew it before `aligned` replaced it (the reference for its bytes).
    fn comfy_table(header: &[&str], rows: &[Vec<String>], color: bool) -> String {
        use comfy_table::{Attribute, Cell, ContentArrangement, Table};
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
        for row in rows {
            table.add_row(row.iter().map(|c| clean(c).into_owned()));
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

    #[test]
    fn same_bytes_as_comfy_table() {
        let header = ["NAMESPACE", "NAME", "KIND", "AGE", "SUMMARY"];
        let cells = [
            "default",
            "mysql",
            "EgressRule",
            "3d4h",
            "10.0.0.5/32 tcp:3306",
            "a-very-long-namespace-name",
            "x",
            "RouteRule",
            "<unknown>",
            "",
            "ns",
            "wide-\u{4e2d}\u{6587}-name",
            "DestinationPolicy",
            "45s",
            "reviews -> reviews:v1 50%, reviews:v3 50%",
            "ns",
            "esc\u{1b}[31mred\ttab\nline",
            "EgressRule",
            "0s",
            "trailing space   ",
            "e\u{301}",
            "nbsp\u{a0}",
            "EgressRule",
            "1y",
            "ideographic\u{3000}",
            "",
            "",
            "",
            "",
            "",
        ];
        for columns in [4, 5] {
            let rows: Vec<Vec<String>> = cells
                .chunks(5)
                .map(|r| r[..columns].iter().map(|c| c.to_string()).collect())
                .collect();
            let flat: Vec<Cow<'_, str>> = rows.iter().flatten().map(|c| clean(c)).collect();
            for take in [0, 1, rows.len()] {
                let flat = &flat[..take * columns];
                for color in [false, true] {
                    assert_eq!(
                        aligned(&header[..columns], flat, color),
                        comfy_table(&header[..columns], &rows[..take], color),
                        "{columns} columns, {take} rows, color {color}"
                    );
                }
            }
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
