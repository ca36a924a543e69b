//! Property tests: whatever bytes arrive, loading and validation never panic, and every position they
//! report lies inside the input.

use std::sync::Arc;

use meshctl::load::LoadOptions;
use meshctl::validate::check_file;
use proptest::prelude::*;

/// Checks the invariants on one input. `meshctl validate` (which does not keep the typed objects, and
/// so tries the fast path for clean files first) reports exactly what the full path reports.
fn check(bytes: &[u8]) {
    let name: Arc<str> = Arc::from("fuzz.yaml");
    let report = check_file(&name, bytes, &LoadOptions::default());
    let lint = LoadOptions {
        keep_resources: false,
        ..LoadOptions::default()
    };
    let validate = check_file(&name, bytes, &lint);
    assert_eq!(
        validate.diagnostics,
        report.diagnostics,
        "{}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(validate.counts, report.counts);
    let definitions = |r: &meshctl::validate::FileReport| -> Vec<String> {
        r.definitions
            .iter()
            .map(|d| {
                format!(
                    "{} {}/{} {:?} {:?} {}",
                    d.kind,
                    d.namespace(),
                    d.name(),
                    d.snippet(),
                    d.span,
                    d.document
                )
            })
            .collect()
    };
    assert_eq!(definitions(&validate), definitions(&report));
    let text = String::from_utf8_lossy(bytes);
    let lines = yaml_lines(&text);
    for d in &report.diagnostics {
        let Some(span) = d.span else { continue };
        for pos in [span.start, span.end] {
            let line = pos.line as usize;
            assert!(
                line >= 1 && line <= lines.len(),
                "line {line} outside 1..={} for {d:?}",
                lines.len()
            );
            let len = lines[line - 1].chars().count();
            assert!(
                pos.column >= 1 && pos.column as usize <= len + 1,
                "column {} outside 1..={} for {d:?}",
                pos.column,
                len + 1
            );
        }
        assert!(span.start <= span.end, "span ends before it starts: {d:?}");
        assert!(!d.message.is_empty());
    }
}

/// The input's lines as YAML counts them: a line feed, a carriage return and line feed, or a
/// carriage return alone ends a line.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    lines.push(&text[start..]);
    lines
}

/// Words that make generated documents reach deep into the rule model.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "spec",
    "destination",
    "service",
    "route",
    "weight",
    "match",
    "request",
    "headers",
    "exact",
    "prefix",
    "regex",
    "ports",
    "port",
    "protocol",
    "httpFault",
    "delay",
    "abort",
    "percent",
    "fixedDelay",
    "httpStatus",
    "httpReqTimeout",
    "simpleTimeout",
    "timeout",
    "loadBalancing",
    "circuitBreaker",
    "simpleCb",
    "maxConnections",
    "items",
    "corsPolicy",
    "maxAge",
    "<<",
    "x",
];
const SCALARS: &[&str] = &[
    "config.istio.io/v1alpha2",
    "RouteRule",
    "EgressRule",
    "DestinationPolicy",
    "List",
    "v1",
    "reviews",
    "10.0.0.5/32",
    "*.example.com",
    "tcp",
    "http",
    "100",
    "-1",
    "1.5s",
    "0",
    "~",
    "true",
    "\"quoted\"",
    "'single'",
    "ROUND_ROBIN",
    "&a x",
    "*a",
    "!!str 3",
    "[]",
    "{}",
    "",
    "1e400",
    "0x1F",
    "é",
    "\t",
];

#[derive(Debug, Clone)]
enum Tree {
    Scalar(usize),
    Seq(Vec<Tree>),
    Map(Vec<(usize, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = (0..SCALARS.len()).prop_map(Tree::Scalar);
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::Seq),
            prop::collection::vec((0..KEYS.len(), inner), 0..6).prop_map(Tree::Map),
        ]
    })
}

/// Writes a tree as block YAML, or flow YAML when `flow`.
fn render(t: &Tree, indent: usize, flow: bool, out: &mut String) {
    match t {
        Tree::Scalar(i) => out.push_str(SCALARS[*i]),
        Tree::Seq(items) if flow || items.is_empty() => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                render(item, indent, true, out);
            }
            out.push(']');
        }
        Tree::Map(entries) if flow || entries.is_empty() => {
            out.push('{');
            for (n, (k, v)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                out.push_str(KEYS[*k]);
                out.push_str(": ");
                render(v, indent, true, out);
            }
            out.push('}');
        }
        Tree::Seq(items) => {
            for item in items {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                render(item, indent + 2, false, out);
            }
        }
        Tree::Map(entries) => {
            for (k, v) in entries {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                out.push_str(KEYS[*k]);
                out.push(':');
                out.push(' ');
                render(v, indent + 2, false, out);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_yaml_structures_never_panic(t in tree(), flow in any::<bool>(), docs in 1usize..3) {
        let mut text = String::new();
        for _ in 0..docs {
            text.push_str("---");
            render(&t, 0, flow, &mut text);
            text.push('\n');
        }
        check(text.as_bytes());
    }

    #[test]
    fn mutated_rule_files_never_panic(
        file in prop::sample::select(testdata_files()),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, any::<u8>()), 1..8),
    ) {
        let mut bytes = std::fs::read(&file).unwrap_or_default();
        for (at, op, byte) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            const TOKENS: &[&[u8]] = &[b": ", b"- ", b"[", b"{", b"&a ", b"*a", b"\t", b"\"", b"'", b"|", b"---\n", b"\n  "];
            match op {
                0 => { bytes.remove(i); }
                1 => bytes[i] = byte,
                2 => { let t = TOKENS[byte as usize % TOKENS.len()]; bytes.splice(i..i, t.iter().copied()); }
                _ => bytes.truncate(i),
            }
        }
        check(&bytes);
    }
}

fn testdata_files() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        if let Ok(entries) = std::fs::read_dir(crate::common::testdata(dir)) {
            out.extend(entries.flatten().map(|e| e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_inputs_are_diagnosed_not_fatal() {
    let deep_flow = format!("a: {}", "[".repeat(100_000));
    let deep_block: String = (0..500).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    let laughs = std::fs::read(crate::common::testdata("invalid/billion-laughs.yaml")).unwrap();
    for (input, code) in [
        (deep_flow.as_bytes(), "E0005"),
        (deep_block.as_bytes(), "E0005"),
        (&laughs[..], "E0004"),
    ] {
        let report = check_file(&Arc::from("x.yaml"), input, &LoadOptions::default());
        assert!(
            report.diagnostics.iter().any(|d| d.code.id() == code),
            "{code}: {:?}",
            report.diagnostics
        );
        check(input);
    }
}
