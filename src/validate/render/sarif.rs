//! SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers: one run whose tool lists a
//! rule for every diagnostic code, and one result per diagnostic.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::PrettyFormatter;

use super::Summary;
use super::github::repository_path;
use super::json::SafeFormatter;
use crate::diag::{Code, Diagnostic, Severity, Span};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/meshctl/meshctl";

/// Writes the SARIF log, pretty-printed, with a trailing newline.
pub fn render(out: &mut dyn Write, diagnostics: &[Diagnostic], summary: &Summary) -> io::Result<()> {
    let log = Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "meshctl",
                    information_uri: INFORMATION_URI,
                    version: env!("CARGO_PKG_VERSION"),
                    rules: Code::ALL.iter().map(|&code| Rule::new(code)).collect(),
                },
            },
            column_kind: "unicodeCodePoints",
            results: diagnostics.iter().map(SarifResult::new).collect(),
            properties: RunProperties { summary: *summary },
        }],
    };
    let formatter = SafeFormatter(PrettyFormatter::with_indent(b"  "));
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    log.serialize(&mut serializer)?;
    out.write_all(b"\n")
}

// The SARIF objects used, each with the properties meshctl fills in. Field order is key order.

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool,
    /// Our columns count characters, which is what SARIF calls code points.
    column_kind: &'static str,
    results: Vec<SarifResult<'a>>,
    properties: RunProperties,
}

#[derive(Serialize)]
struct RunProperties {
    #[serde(serialize_with = "serialize_summary")]
    summary: Summary,
}

fn serialize_summary<S: serde::Serializer>(s: &Summary, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut summary = serializer.serialize_struct("Summary", 6)?;
    summary.serialize_field("files", &s.files)?;
    summary.serialize_field("checked", &s.checked)?;
    summary.serialize_field("skipped", &s.skipped)?;
    summary.serialize_field("empty", &s.empty)?;
    summary.serialize_field("errors", &s.errors)?;
    summary.serialize_field("warnings", &s.warnings)?;
    summary.end()
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    information_uri: &'static str,
    version: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: &'static str,
    name: String,
    short_description: Message<'static>,
    default_configuration: Configuration,
}

impl Rule {
    fn new(code: Code) -> Rule {
        // Warnings are the W codes; `--strict` raises a result's level, not the rule's.
        let level = if code.id().starts_with('W') { "warning" } else { "error" };
        Rule {
            id: code.id(),
            name: pascal_case(code.slug()),
            short_description: Message {
                text: Cow::Borrowed(code.title()),
            },
            default_configuration: Configuration { level },
        }
    }
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    text: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<usize>,
    level: &'static str,
    message: Message<'a>,
    locations: [Location<'a>; 1],
}

impl<'a> SarifResult<'a> {
    fn new(d: &'a Diagnostic) -> SarifResult<'a> {
        let text = match &d.help {
            Some(help) => Cow::Owned(format!("{}\nhelp: {help}", d.message)),
            None => Cow::Borrowed(d.message.as_str()),
        };
        SarifResult {
            rule_id: d.code.id(),
            rule_index: Code::ALL.iter().position(|&c| c == d.code),
            level: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            message: Message { text },
            locations: [Location {
                physical_location: PhysicalLocation {
                    artifact_location: ArtifactLocation {
                        uri: repository_path(&d.file).map_or_else(|| "stdin".to_string(), |p| uri_reference(&p)),
                    },
                    // GitHub code scanning needs a region with a start line on every result.
                    region: d.span.map_or_else(Region::first_line, Region::new),
                },
                logical_locations: d
                    .field
                    .as_deref()
                    .map(|field| LogicalLocation {
                        fully_qualified_name: field,
                    })
                    .into_iter()
                    .collect(),
            }],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logical_locations: Vec<LogicalLocation<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation<'a> {
    fully_qualified_name: &'a str,
}

/// Lines and columns are 1-based; the end column is the one after the region, as in our spans.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_column: Option<u32>,
}

impl Region {
    fn new(span: Span) -> Region {
        let start_line = span.start.line.max(1);
        let start_column = span.start.column.max(1);
        let (end_line, end_column) = if (span.end.line, span.end.column) > (start_line, start_column) {
            (span.end.line, span.end.column.max(1))
        } else {
            // A point (or backwards) span marks one character, as the text output's single caret.
            (start_line, start_column.saturating_add(1))
        };
        Region {
            start_line,
            start_column: Some(start_column),
            end_line: Some(end_line),
            end_column: Some(end_column),
        }
    }

    /// A diagnostic without a position is put on the file's first line (all of it).
    fn first_line() -> Region {
        Region {
            start_line: 1,
            start_column: None,
            end_line: None,
            end_column: None,
        }
    }
}

/// `out-of-range` → `OutOfRange`.
fn pascal_case(slug: &str) -> String {
    slug.split('-')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect()
}

/// A relative path as a URI reference: bytes outside the characters a path may hold are
/// percent-encoded (a space is `%20`), as is `:` (in a first segment it would read as a scheme).
fn uri_reference(path: &str) -> String {
    let mut uri = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::diag::{ObjectRef, Pos};

    fn span(line: u32, column: u32, end_line: u32, end_column: u32) -> Option<Span> {
        Some(Span {
            start: Pos { line, column },
            end: Pos {
                line: end_line,
                column: end_column,
            },
        })
    }

    fn weight() -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: Code::OutOfRange,
            message: "weight 120 is out of range".to_string(),
            help: Some("a weight is between 0 and 100".to_string()),
            file: Arc::from("./rules/reviews v3.yaml"),
            span: span(14, 13, 14, 16),
            document: Some(1),
            object: ObjectRef::default(),
            field: Some("spec.route[1].weight".to_string()),
            snippet: None,
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

    fn sarif(diagnostics: &[Diagnostic]) -> (String, Value) {
        let mut out = Vec::new();
        render(&mut out, diagnostics, &Summary::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    #[test]
    fn log_and_tool() {
        let (text, log) = sarif(&[]);
        assert!(text.starts_with("{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n"));
        assert!(text.ends_with("}\n"));
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(log["runs"].as_array().unwrap().len(), 1);
        let driver = &log["runs"][0]["tool"]["driver"];
        assert_eq!(driver["name"], "meshctl");
        assert_eq!(driver["informationUri"], INFORMATION_URI);
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(log["runs"][0]["columnKind"], "unicodeCodePoints");
        assert_eq!(log["runs"][0]["results"], json!([]));
    }

    #[test]
    fn summary_in_the_run_properties() {
        let summary = Summary {
            files: 2,
            checked: 5,
            skipped: 1,
            empty: 3,
            errors: 4,
            warnings: 6,
        };
        let mut out = Vec::new();
        render(&mut out, &[], &summary).unwrap();
        let log: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            log["runs"][0]["properties"],
            json!({"summary": {"files": 2, "checked": 5, "skipped": 1, "empty": 3, "errors": 4, "warnings": 6}})
        );
    }

    #[test]
    fn a_rule_for_every_code() {
        let (_, log) = sarif(&[]);
        let rules = log["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Code::ALL.len());
        for (rule, code) in rules.iter().zip(Code::ALL) {
            assert_eq!(rule["id"], code.id());
            assert_eq!(rule["shortDescription"]["text"], code.title());
        }
        let out_of_range = Code::ALL.iter().position(|&c| c == Code::OutOfRange).unwrap();
        assert_eq!(
            rules[out_of_range],
            json!({
                "id": "E0304",
                "name": "OutOfRange",
                "shortDescription": {"text": "A number outside its allowed range"},
                "defaultConfiguration": {"level": "error"},
            })
        );
        let zero_weight = Code::ALL.iter().position(|&c| c == Code::ZeroWeight).unwrap();
        assert_eq!(rules[zero_weight]["name"], "ZeroWeight");
        assert_eq!(rules[zero_weight]["defaultConfiguration"]["level"], "warning");
    }

    #[test]
    fn result_with_region_and_field() {
        let (_, log) = sarif(&[weight()]);
        let index = Code::ALL.iter().position(|&c| c == Code::OutOfRange).unwrap();
        assert_eq!(
            log["runs"][0]["results"][0],
            json!({
                "ruleId": "E0304",
                "ruleIndex": index,
                "level": "error",
                "message": {"text": "weight 120 is out of range\nhelp: a weight is between 0 and 100"},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": "rules/reviews%20v3.yaml"},
                        "region": {"startLine": 14, "startColumn": 13, "endLine": 14, "endColumn": 16},
                    },
                    "logicalLocations": [{"fullyQualifiedName": "spec.route[1].weight"}],
                }],
            })
        );
        // The rule the index points at is the result's rule.
        assert_eq!(log["runs"][0]["tool"]["driver"]["rules"][index]["id"], "E0304");
    }

    #[test]
    fn result_without_span_from_stdin() {
        let (_, log) = sarif(&[bare()]);
        let named = Diagnostic {
            file: Arc::from("<stdin>"),
            ..bare()
        };
        let (_, named) = sarif(&[named]);
        assert_eq!(named["runs"][0]["results"][0], log["runs"][0]["results"][0]);
        assert_eq!(
            log["runs"][0]["results"][0],
            json!({
                "ruleId": "W0002",
                "ruleIndex": Code::ALL.iter().position(|&c| c == Code::OpenEgress).unwrap(),
                "level": "warning",
                "message": {"text": "every address is open"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": "stdin"},
                    "region": {"startLine": 1},
                }}],
            })
        );
    }

    #[test]
    fn results_keep_order_and_strict_levels() {
        let raised = Diagnostic {
            severity: Severity::Error,
            ..bare()
        };
        let (_, log) = sarif(&[weight(), raised]);
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["ruleId"], "E0304");
        assert_eq!(results[1]["ruleId"], "W0002");
        assert_eq!(results[1]["level"], "error");
    }

    #[test]
    fn regions() {
        let region = |s: Option<Span>| serde_json::to_value(Region::new(s.unwrap())).unwrap();
        assert_eq!(
            region(span(3, 5, 3, 5)),
            json!({"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 6})
        );
        assert_eq!(
            region(span(3, 5, 9, 1)),
            json!({"startLine": 3, "startColumn": 5, "endLine": 9, "endColumn": 1})
        );
        assert_eq!(
            region(span(0, 0, 0, 0)),
            json!({"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 2})
        );
        assert_eq!(
            region(span(3, 5, 2, 9)),
            json!({"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 6})
        );
    }

    #[test]
    fn uris_and_names() {
        assert_eq!(uri_reference("rules/a b%.yaml"), "rules/a%20b%25.yaml");
        assert_eq!(uri_reference("C:/x/ü.yaml"), "C%3A/x/%C3%BC.yaml");
        assert_eq!(pascal_case("invalid-egress-host"), "InvalidEgressHost");
        assert_eq!(pascal_case("deprecated"), "Deprecated");
    }

    #[test]
    fn terminal_controls_are_escaped() {
        let d = Diagnostic {
            message: "x\u{1b}[2J\u{9b}y".to_string(),
            ..bare()
        };
        let (text, log) = sarif(&[d]);
        assert!(text.contains(r#""text": "x\u001b[2J\u009by""#), "{text}");
        assert_eq!(log["runs"][0]["results"][0]["message"]["text"], "x\u{1b}[2J\u{9b}y");
    }
}
