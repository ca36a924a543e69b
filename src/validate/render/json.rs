//! JSON Lines output for tools: one compact object per diagnostic (`"type": "diagnostic"`), then one
//! summary object (`"type": "summary"`). Each line is a complete JSON document, so the output streams
//! and filters well (`jq 'select(.type == "diagnostic")'`). The fields are documented in
//! `docs/output-formats.md`; they only ever gain new keys.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use super::Summary;
use super::text::is_unsafe;
use crate::diag::{Diagnostic, Severity};

/// Writes one line per diagnostic, in the order given, then the summary line.
pub fn render(out: &mut dyn Write, diagnostics: &[Diagnostic], summary: &Summary) -> io::Result<()> {
    for d in diagnostics {
        write_line(out, &DiagnosticRecord::new(d))?;
    }
    write_line(out, &SummaryRecord::new(summary))
}

fn write_line(out: &mut dyn Write, record: &impl Serialize) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, SafeFormatter(CompactFormatter));
    record.serialize(&mut serializer)?;
    out.write_all(b"\n")
}

/// One diagnostic. Field order is the output's key order.
#[derive(Serialize)]
struct DiagnosticRecord<'a> {
    #[serde(rename = "type")]
    record: &'static str,
    file: &'a str,
    line: Option<u32>,
    column: Option<u32>,
    end_line: Option<u32>,
    end_column: Option<u32>,
    document: Option<usize>,
    kind: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    field: Option<&'a str>,
    code: &'static str,
    slug: &'static str,
    severity: Severity,
    message: &'a str,
    help: Option<&'a str>,
}

impl<'a> DiagnosticRecord<'a> {
    fn new(d: &'a Diagnostic) -> Self {
        DiagnosticRecord {
            record: "diagnostic",
            file: &d.file,
            line: d.span.map(|s| s.start.line),
            column: d.span.map(|s| s.start.column),
            end_line: d.span.map(|s| s.end.line),
            end_column: d.span.map(|s| s.end.column),
            // Counted from 1, like lines and columns and the text output.
            document: d.document.map(|n| n.saturating_add(1)),
            kind: d.object.kind.as_deref(),
            namespace: d.object.namespace.as_deref(),
            name: d.object.name.as_deref(),
            field: d.field.as_deref(),
            code: d.code.id(),
            slug: d.code.slug(),
            severity: d.severity,
            message: &d.message,
            help: d.help.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct SummaryRecord {
    #[serde(rename = "type")]
    record: &'static str,
    files: usize,
    checked: usize,
    skipped: usize,
    empty: usize,
    errors: usize,
    warnings: usize,
}

impl SummaryRecord {
    fn new(s: &Summary) -> Self {
        SummaryRecord {
            record: "summary",
            files: s.files,
            checked: s.checked,
            skipped: s.skipped,
            empty: s.empty,
            errors: s.errors,
            warnings: s.warnings,
        }
    }
}

// === impl SafeFormatter ===

/// A JSON formatter that also writes `\uXXXX` for the characters serde_json leaves raw but a terminal
/// must not see raw: DEL, the C1 controls (U+009B starts an escape sequence on some terminals) and
/// the bidirectional and line-separator marks. The JSON means the same; `cat` on it is safe.
pub(super) struct SafeFormatter<F>(pub(super) F);

impl<F: Formatter> Formatter for SafeFormatter<F> {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                // Every unsafe character is in the Basic Multilingual Plane: one `\u` escape.
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // The layout is the wrapped formatter's.

    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;
    use crate::diag::{Code, ObjectRef, Pos, Span};

    fn weight() -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: Code::OutOfRange,
            message: "weight 120 is out of range".to_string(),
            help: Some("a weight is between 0 and 100".to_string()),
            file: Arc::from("rules/reviews.yaml"),
            span: Some(Span {
                start: Pos { line: 14, column: 13 },
                end: Pos { line: 14, column: 16 },
            }),
            document: Some(1),
            object: ObjectRef {
                kind: Some("RouteRule".to_string()),
                namespace: Some("default".to_string()),
                name: Some("reviews-v3".to_string()),
            },
            field: Some("spec.route[1].weight".to_string()),
            snippet: Some("    weight: 120".to_string()),
        }
    }

    fn bare() -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            code: Code::OpenEgress,
            message: "every address is open".to_string(),
            help: None,
            file: Arc::from("-"),
            span: None,
            document: None,
            object: ObjectRef::default(),
            field: None,
            snippet: None,
        }
    }

    fn json(diagnostics: &[Diagnostic]) -> String {
        let summary = Summary {
            files: 2,
            checked: 3,
            skipped: 1,
            empty: 0,
            errors: 1,
            warnings: 1,
        };
        let mut out = Vec::new();
        render(&mut out, diagnostics, &summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_line_per_diagnostic_then_the_summary() {
        assert_eq!(
            json(&[weight(), bare()]),
            concat!(
                r#"{"type":"diagnostic","file":"rules/reviews.yaml","line":14,"column":13,"end_line":14,"end_column":16,"#,
                r#""document":2,"kind":"RouteRule","namespace":"default","name":"reviews-v3","field":"spec.route[1].weight","#,
                r#""code":"E0304","slug":"out-of-range","severity":"error","message":"weight 120 is out of range","#,
                r#""help":"a weight is between 0 and 100"}"#,
                "\n",
                r#"{"type":"diagnostic","file":"-","line":null,"column":null,"end_line":null,"end_column":null,"#,
                r#""document":null,"kind":null,"namespace":null,"name":null,"field":null,"#,
                r#""code":"W0002","slug":"open-egress","severity":"warning","message":"every address is open","help":null}"#,
                "\n",
                r#"{"type":"summary","files":2,"checked":3,"skipped":1,"empty":0,"errors":1,"warnings":1}"#,
                "\n",
            )
        );
    }

    #[test]
    fn span_over_several_lines() {
        let d = Diagnostic {
            span: Some(Span {
                start: Pos { line: 3, column: 5 },
                end: Pos { line: 9, column: 2 },
            }),
            ..bare()
        };
        let out = json(&[d]);
        assert!(
            out.contains(r#""line":3,"column":5,"end_line":9,"end_column":2,"#),
            "{out}"
        );
    }

    #[test]
    fn clean_run_is_just_the_summary() {
        let out = json(&[]);
        assert_eq!(out.lines().count(), 1);
        let summary: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(summary["type"], "summary");
        assert_eq!(summary["checked"], 3);
    }

    #[test]
    fn terminal_controls_are_escaped_and_round_trip() {
        let message = "a\u{1b}[2J b\u{7f} c\u{9b}31m d\u{202e} e\u{2028} f\"\\ 名".to_string();
        let d = Diagnostic {
            message: message.clone(),
            ..bare()
        };
        let out = json(&[d]);
        assert!(!out.lines().any(|l| l.chars().any(is_unsafe)), "{out:?}");
        assert!(
            out.contains(r#""message":"a\u001b[2J b\u007f c\u009b31m d\u202e e\u2028 f\"\\ 名""#),
            "{out}"
        );
        let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(first["message"], Value::String(message));
    }
}
