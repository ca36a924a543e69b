//! Writing rules back out: YAML that this loader (and any YAML 1.1 or 1.2 parser) reads back to the
//! same values, and the JSON view of a loaded YAML tree.
//!
//! The emitter works on `serde_json::Value`, the shape every model type serializes to, so one small
//! writer serves `get -o yaml` and the round-trip tests. Block style throughout; a string is written
//! plain only when no parser could read it as anything else, otherwise as a JSON string, which is a
//! valid YAML double-quoted scalar.

use std::fmt::Write;

use serde_json::{Map, Number, Value};

use super::node::{Node, Resolved, Value as NodeValue, resolve_plain};

/// One YAML document (no leading `---`) for `value`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// A scalar, or an empty collection, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => false,
    }
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a mapping's entries at `level`; with `after_dash`, the first entry continues the line of a
/// list item's `- `.
fn write_map(out: &mut String, map: &Map<String, Value>, level: usize, after_dash: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !after_dash {
            indent(out, level);
        }
        out.push_str(&string(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, level + 2, false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(out, items, level);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, level + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                // A list in a list: `- - a`, continued at the deeper indentation.
                let mut nested = String::new();
                write_seq(&mut nested, inner, level + 2);
                let _ = write!(out, "{}", nested.trim_start());
            }
            scalar => {
                debug_assert!(!is_block(scalar));
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A string as a plain scalar when that is unambiguous, else double-quoted.
fn string(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_string()
    } else {
        // JSON string syntax is a subset of YAML's double-quoted style.
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
    }
}

/// Whether `s` written plain reads back as the same string under YAML 1.2's core schema and under
/// YAML 1.1 (where yes, no, on, off and y/n are booleans, and 010 is octal), in block context.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if resolve_plain(s) != Resolved::Str {
        return false;
    }
    let yaml11 = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "<<", "=",
    ];
    if yaml11.contains(&s) {
        return false;
    }
    // Anything starting like a number (1.5s is fine for both, but 1_000 or 0b1 are numbers in 1.1)
    // is quoted unless it is clearly a duration or an address, to keep the rule simple: quote
    // whenever a digit-led string has no letter after the digits other than a unit suffix.
    if first.is_ascii_digit()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '_' | ':' | '.' | '+' | '-' | 'e' | 'E' | 'b' | 'x' | 'o'))
    {
        // 10.0.0.5 or 2001:db8::1 look like this too; quoting them is harmless.
        return false;
    }
    // YAML 1.1 reads `2026-11-25` and `2026-11-25T11:19:46Z` as timestamps, not strings.
    let b = s.as_bytes();
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !(matches!(first, '-' | '?' | ':') && s.len() > 1 && !s[1..].starts_with(' '))
    {
        return false;
    }
    if first.is_whitespace() || s.ends_with(char::is_whitespace) || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains(['\n', '\r', '\t']) {
        return false;
    }
    !s.chars()
        .any(|c| c.is_control() || c == '\u{feff}' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}')
}

/// A loaded YAML tree as JSON, resolving plain scalars by YAML 1.2's core schema: what a JSON-based
/// tool (a schema linter, an editor) sees in the file.
pub fn node_to_json(node: &Node<'_>) -> Value {
    match &node.value {
        NodeValue::Scalar(s) => match s.resolve() {
            Resolved::Null => Value::Null,
            Resolved::Bool(b) => Value::Bool(b),
            Resolved::Int(i) => i64::try_from(i).map_or_else(|_| Value::String(s.text.to_string()), Value::from),
            Resolved::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Resolved::Str => Value::String(s.text.to_string()),
        },
        NodeValue::Seq(items) => Value::Array(items.iter().map(node_to_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|e| (e.key.to_string(), node_to_json(&e.value)))
                .collect::<Map<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::load::yaml::{Limits, parse_stream};

    /// Emits `value`, reads it back with the loader, and compares.
    fn round_trip(value: &Value) {
        let text = to_yaml(value);
        let arena = bumpalo::Bump::new();
        let stream = parse_stream(&text, &arena, Limits::default());
        assert!(stream.problems.is_empty(), "{text}\n{:?}", stream.problems);
        let root = stream.documents.first().and_then(|d| d.root.as_ref());
        let back = root.map_or(Value::Null, node_to_json);
        assert_eq!(&back, value, "emitted:\n{text}");
    }

    #[test]
    fn strings_that_look_like_other_things_are_quoted() {
        for s in [
            "",
            "true",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "null",
            "~",
            "1",
            "1.5",
            "0x1F",
            "1e3",
            "010",
            "1_000",
            ".inf",
            "- a",
            "a: b",
            "a #b",
            "#x",
            "&a",
            "*a",
            "!t",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%x",
            "@x",
            "`x",
            " lead",
            "trail ",
            "line\nbreak",
            "tab\there",
            "{x}",
            "[x]",
            "x:",
            ":",
            "?",
            "-",
            "10.0.0.5",
            "2001:db8::1",
            "\u{1b}[31m",
            "2026-11-25",
            "2026-11-25T11:19:46Z",
        ] {
            round_trip(&json!({ "k": s }));
            round_trip(&json!([s]));
            round_trip(&json!({ s: 1 }));
        }
    }

    #[test]
    fn plain_where_plain_is_safe() {
        let text = to_yaml(
            &json!({"name": "reviews", "service": "*.example.com", "timeout": "1.5s", "cidr": "10.0.0.5/32", "path": "/api/v1"}),
        );
        assert!(text.contains("name: reviews\n"), "{text}");
        assert!(text.contains("timeout: 1.5s\n"), "{text}");
        assert!(text.contains("service: \"*.example.com\"\n"), "{text}");
        assert!(text.contains("path: /api/v1\n"), "{text}");
        let stamp = to_yaml(&json!({"creationTimestamp": "2026-11-25T11:19:46Z"}));
        assert_eq!(
            stamp, "creationTimestamp: \"2026-11-25T11:19:46Z\"\n",
            "YAML 1.1 would read a timestamp"
        );
    }

    #[test]
    fn nested_collections_round_trip() {
        round_trip(&json!({
            "apiVersion": "config.istio.io/v1alpha2",
            "kind": "RouteRule",
            "metadata": {"name": "reviews", "labels": {}},
            "spec": {
                "route": [{"labels": {"version": "v1"}, "weight": 80}, {"weight": 20}],
                "empty": [],
                "deep": [[1, [2, 3]], [], {}, [{"a": [true, null, 1.5]}]],
                "match": {"request": {"headers": {"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}}}
            }
        }));
        round_trip(&json!([1, "two", {"three": 3}]));
        round_trip(&json!("top"));
    }
}
