//! Text output for people: rustc-style diagnostics (header, location, the source line with a caret
//! under the problem, notes), then one summary line.
//!
//! Everything printed here that comes from a rule file (messages quote values, snippets are source
//! lines, file names and object names are the user's) goes through [`sanitize`] first: a control
//! character would otherwise reach the terminal raw, and a rule file could rewrite the screen with
//! escape sequences. Colour codes are written only when the caller asks for colour.

use std::borrow::Cow;
use std::io::{self, Write};

use anstyle::{AnsiColor, Color, Style};
use unicode_width::UnicodeWidthChar;

use super::Summary;
use crate::diag::{Diagnostic, ObjectRef, Severity, Span};

/// How to print text output; the caller resolves `--color`, the terminal and `NO_COLOR`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Write ANSI colour codes.
    pub color: bool,
    /// Print nothing at all when there is nothing to report (no summary line on a clean run).
    pub quiet: bool,
}

const ERROR: Style = Style::new().bold().fg_color(Some(Color::Ansi(AnsiColor::Red)));
const WARNING: Style = Style::new().bold().fg_color(Some(Color::Ansi(AnsiColor::Yellow)));
const GUTTER: Style = Style::new().bold().fg_color(Some(Color::Ansi(AnsiColor::Blue)));
const EMPHASIS: Style = Style::new().bold();

/// What a tab in a source line becomes; carets are placed by the same rule.
const TAB: &str = "    ";

/// Writes every diagnostic, in the order given, then the summary line.
///
/// With `quiet`, a run with no diagnostics prints nothing; otherwise output is the same.
pub fn render(
    out: &mut dyn Write,
    diagnostics: &[Diagnostic],
    summary: &Summary,
    opts: &TextOptions,
) -> io::Result<()> {
    let paint = Paint { color: opts.color };
    for d in diagnostics {
        write_diagnostic(out, d, paint)?;
        writeln!(out)?;
    }
    if opts.quiet && diagnostics.is_empty() {
        return Ok(());
    }
    let parts = SummaryParts::new(summary);
    out.write_all(parts.head.as_bytes())?;
    let errors_style = if summary.errors > 0 { ERROR } else { Style::new() };
    paint.write(out, errors_style, &parts.errors)?;
    out.write_all(b", ")?;
    let warnings_style = if summary.warnings > 0 { WARNING } else { Style::new() };
    paint.write(out, warnings_style, &parts.warnings)?;
    out.write_all(parts.tail.as_bytes())?;
    writeln!(out)
}

/// The summary line without colour: `checked 12 documents in 3 files: 1 error, 0 warnings`.
pub fn summary_line(summary: &Summary) -> String {
    let parts = SummaryParts::new(summary);
    format!("{}{}, {}{}", parts.head, parts.errors, parts.warnings, parts.tail)
}

/// Whether a character must not reach a terminal as it is: control characters (C0, DEL, C1, so
/// every escape sequence), and the invisible marks that reorder or break lines (bidirectional
/// overrides, line and paragraph separators), which could make a line read as something it is not.
pub(super) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Text from a rule file, made safe for one line of a terminal: a tab becomes a space, any other
/// unsafe character (see [`is_unsafe`]) U+FFFD.
pub(super) fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if is_unsafe(c) => '\u{fffd}',
                c => c,
            })
            .collect(),
    )
}

// === impl Paint ===

#[derive(Clone, Copy)]
struct Paint {
    color: bool,
}

impl Paint {
    fn write(self, out: &mut dyn Write, style: Style, text: &str) -> io::Result<()> {
        if self.color && !style.is_plain() && !text.is_empty() {
            write!(out, "{}{}{}", style.render(), text, style.render_reset())
        } else {
            out.write_all(text.as_bytes())
        }
    }
}

fn write_diagnostic(out: &mut dyn Write, d: &Diagnostic, paint: Paint) -> io::Result<()> {
    let severity_style = match d.severity {
        Severity::Error => ERROR,
        Severity::Warning => WARNING,
    };
    paint.write(out, severity_style, &format!("{}[{}]", d.severity, d.code.id()))?;
    paint.write(out, EMPHASIS, &format!(": {}", sanitize(&d.message)))?;
    writeln!(out)?;

    // The gutter is as wide as the line number shown in it.
    let width = d.span.map_or(1, |s| s.start.line.to_string().len());
    let pad = " ".repeat(width);

    paint.write(out, GUTTER, &format!("{pad}-->"))?;
    write!(out, " {}", sanitize(&d.file))?;
    if let Some(span) = d.span {
        write!(out, ":{}:{}", span.start.line, span.start.column)?;
    }
    writeln!(out)?;

    let field = d.field.as_deref().map(sanitize);
    let mut field_shown = false;
    if let (Some(span), Some(snippet)) = (d.span, d.snippet.as_deref()) {
        let line = SourceLine::new(snippet);
        let (start, len) = line.underline(span);
        paint.write(out, GUTTER, &format!("{pad} |"))?;
        writeln!(out)?;
        paint.write(out, GUTTER, &format!("{} |", span.start.line))?;
        if !line.text.is_empty() {
            write!(out, " {}", line.text)?;
        }
        writeln!(out)?;
        paint.write(out, GUTTER, &format!("{pad} |"))?;
        write!(out, " {}", " ".repeat(start))?;
        let mut label = "^".repeat(len);
        if let Some(field) = &field {
            label.push(' ');
            label.push_str(field);
            field_shown = true;
        }
        paint.write(out, severity_style, &label)?;
        writeln!(out)?;
    }

    let mut notes: Vec<(&str, Cow<'_, str>)> = Vec::new();
    if let Some(field) = field.filter(|_| !field_shown) {
        notes.push(("field", field));
    }
    if let Some(help) = &d.help {
        notes.push(("help", sanitize(help)));
    }
    if let Some(object) = describe_object(&d.object, d.document) {
        notes.push(("object", Cow::Owned(object)));
    }
    if !notes.is_empty() {
        paint.write(out, GUTTER, &format!("{pad} |"))?;
        writeln!(out)?;
    }
    for (label, text) in notes {
        paint.write(out, GUTTER, &format!("{pad} ="))?;
        write!(out, " ")?;
        paint.write(out, EMPHASIS, &format!("{label}:"))?;
        writeln!(out, " {text}")?;
    }
    Ok(())
}

/// `RouteRule default/reviews (document 2)`, with whatever is known; documents are counted from 1
/// here, as people count them (the JSON output keeps the 0-based index).
fn describe_object(object: &ObjectRef, document: Option<usize>) -> Option<String> {
    let mut words = Vec::new();
    if let Some(kind) = &object.kind {
        words.push(sanitize(kind).into_owned());
    }
    match (&object.namespace, &object.name) {
        (Some(namespace), Some(name)) => words.push(format!("{}/{}", sanitize(namespace), sanitize(name))),
        (None, Some(name)) => words.push(sanitize(name).into_owned()),
        // A namespace alone names nothing.
        (_, None) => {}
    }
    let document = document.map(|n| n.saturating_add(1));
    match (words.is_empty(), document) {
        (true, None) => None,
        (true, Some(n)) => Some(format!("document {n}")),
        (false, None) => Some(words.join(" ")),
        (false, Some(n)) => Some(format!("{} (document {n})", words.join(" "))),
    }
}

// === impl SourceLine ===

/// A source line as it is printed, with the display column where each of its characters starts.
struct SourceLine {
    text: String,
    /// `columns[i]` is the display column of the `i`th character; one more entry for the end.
    columns: Vec<usize>,
}

impl SourceLine {
    fn new(snippet: &str) -> SourceLine {
        let mut text = String::with_capacity(snippet.len());
        let mut columns = Vec::with_capacity(snippet.len() + 1);
        let mut column = 0;
        for c in snippet.chars() {
            columns.push(column);
            if c == '\t' {
                text.push_str(TAB);
                column += TAB.len();
            } else {
                let c = if is_unsafe(c) { '\u{fffd}' } else { c };
                text.push(c);
                column += c.width().unwrap_or(1);
            }
        }
        columns.push(column);
        SourceLine { text, columns }
    }

    /// Where the carets start and how many there are, in display columns. A span that ends on its
    /// first line is underlined to its end; any other gets one caret. Columns past the end of the
    /// line are taken as the end of the line (a missing value is reported there).
    fn underline(&self, span: Span) -> (usize, usize) {
        let last = self.columns.len() - 1;
        let index = |column: u32| {
            usize::try_from(column.saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(last)
        };
        let start = index(span.start.column);
        let width = if span.end.line == span.start.line && span.end.column > span.start.column {
            let end = index(span.end.column).max(start);
            self.columns[end] - self.columns[start]
        } else {
            1
        };
        (self.columns[start], width.max(1))
    }
}

// === impl SummaryParts ===

/// The summary line in pieces, so the counts can be coloured.
struct SummaryParts {
    head: String,
    errors: String,
    warnings: String,
    tail: String,
}

impl SummaryParts {
    fn new(s: &Summary) -> SummaryParts {
        let head = format!(
            "checked {} in {}: ",
            count(s.checked, "document", "documents"),
            count(s.files, "file", "files")
        );
        let other_kinds = match s.skipped {
            1 => "1 document of another kind".to_string(),
            n => format!("{n} documents of other kinds"),
        };
        let tail = match (s.skipped, s.empty) {
            (0, 0) => String::new(),
            (_, 0) => format!(" (skipped {other_kinds})"),
            (0, n) => format!(" (skipped {})", count(n, "empty document", "empty documents")),
            (_, n) => format!(" (skipped {other_kinds}, {n} empty)"),
        };
        SummaryParts {
            head,
            errors: count(s.errors, "error", "errors"),
            warnings: count(s.warnings, "warning", "warnings"),
            tail,
        }
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::diag::{Code, Pos};

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
            message: "weight 120 is out of range: a weight is between 0 and 100".to_string(),
            help: Some("lower the weight".to_string()),
            file: Arc::from("rules/reviews.yaml"),
            span: span(14, 13, 14, 16),
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

    fn bare(message: &str) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            code: Code::OpenEgress,
            message: message.to_string(),
            help: None,
            file: Arc::from("-"),
            span: None,
            document: None,
            object: ObjectRef::default(),
            field: None,
            snippet: None,
        }
    }

    fn summary(errors: usize, warnings: usize) -> Summary {
        Summary {
            files: 96,
            checked: 1240,
            skipped: 0,
            empty: 0,
            errors,
            warnings,
        }
    }

    fn text(diagnostics: &[Diagnostic], summary: &Summary, opts: TextOptions) -> String {
        let mut out = Vec::new();
        render(&mut out, diagnostics, summary, &opts).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn plain(diagnostics: &[Diagnostic]) -> String {
        text(diagnostics, &summary(1, 0), TextOptions::default())
    }

    /// Just the caret line of one diagnostic.
    fn carets(snippet: &str, span: Option<Span>) -> String {
        let d = Diagnostic {
            snippet: Some(snippet.to_string()),
            span,
            field: None,
            ..weight()
        };
        let out = plain(&[d]);
        out.lines().nth(4).unwrap().to_string()
    }

    #[test]
    fn full_diagnostic() {
        assert_eq!(
            plain(&[weight()]),
            "\
error[E0304]: weight 120 is out of range: a weight is between 0 and 100
  --> rules/reviews.yaml:14:13
   |
14 |     weight: 120
   |             ^^^ spec.route[1].weight
   |
   = help: lower the weight
   = object: RouteRule default/reviews-v3 (document 2)

checked 1240 documents in 96 files: 1 error, 0 warnings
"
        );
    }

    #[test]
    fn without_span_snippet_or_notes() {
        assert_eq!(
            plain(&[bare("every address is open")]),
            "\
warning[W0002]: every address is open
 --> -

checked 1240 documents in 96 files: 1 error, 0 warnings
"
        );
    }

    #[test]
    fn span_without_snippet_puts_the_field_in_the_notes() {
        let d = Diagnostic {
            snippet: None,
            help: None,
            object: ObjectRef {
                kind: Some("EgressRule".to_string()),
                namespace: None,
                name: Some("mysql".to_string()),
            },
            document: None,
            ..weight()
        };
        assert_eq!(
            plain(&[d]),
            "\
error[E0304]: weight 120 is out of range: a weight is between 0 and 100
  --> rules/reviews.yaml:14:13
   |
   = field: spec.route[1].weight
   = object: EgressRule mysql

checked 1240 documents in 96 files: 1 error, 0 warnings
"
        );
    }

    #[test]
    fn snippet_without_notes_or_field() {
        let d = Diagnostic {
            help: None,
            field: None,
            object: ObjectRef::default(),
            document: None,
            span: span(3, 1, 3, 1),
            snippet: Some("kind: RouteRul".to_string()),
            ..weight()
        };
        let out = plain(&[d]);
        assert_eq!(
            out.lines().skip(1).take(4).collect::<Vec<_>>(),
            [" --> rules/reviews.yaml:3:1", "  |", "3 | kind: RouteRul", "  | ^"]
        );
        assert!(out.contains("  | ^\n\nchecked"), "{out}");
    }

    #[test]
    fn document_only_object() {
        assert_eq!(
            describe_object(&ObjectRef::default(), Some(0)).as_deref(),
            Some("document 1")
        );
        assert_eq!(describe_object(&ObjectRef::default(), None), None);
        let only_namespace = ObjectRef {
            namespace: Some("prod".to_string()),
            ..ObjectRef::default()
        };
        assert_eq!(describe_object(&only_namespace, None), None);
    }

    #[test]
    fn caret_after_tabs() {
        // Two tabs (8 columns) then `x: 1`: the value `1` is character 6, display column 11.
        assert_eq!(
            carets("\t\tx: 1", span(14, 6, 14, 7)),
            format!("   | {}^", " ".repeat(11))
        );
        // A tab inside the underline counts four columns.
        assert_eq!(carets("a\tb", span(14, 1, 14, 4)), "   | ^^^^^^");
        // The source line is printed with the same expansion.
        let out = plain(&[Diagnostic {
            snippet: Some("\tx".to_string()),
            ..weight()
        }]);
        assert!(out.contains("\n14 |     x\n"), "{out}");
    }

    #[test]
    fn caret_after_and_under_wide_characters() {
        // `名前: 値` — each CJK character is two columns wide.
        assert_eq!(carets("名前: 値", span(14, 5, 14, 6)), "   |       ^^");
        assert_eq!(carets("名前: 値", span(14, 1, 14, 3)), "   | ^^^^");
        // A point span gets one caret, even on a wide character.
        assert_eq!(carets("名前: 値", span(14, 5, 14, 5)), "   |       ^");
    }

    #[test]
    fn caret_for_spans_that_leave_the_line() {
        // Ends on a later line: one caret.
        assert_eq!(carets("route:", span(14, 1, 20, 3)), "   | ^");
        // Ends before it starts: one caret.
        assert_eq!(carets("abcdef", span(14, 4, 14, 2)), "   |    ^");
        // Ends past the end of the line: underlined to the end of the line.
        assert_eq!(carets("abcdef", span(14, 4, 14, 99)), "   |    ^^^");
    }

    #[test]
    fn odd_positions_do_not_panic() {
        // Column past the end of the line: the caret sits just after it.
        assert_eq!(carets("ab", span(14, 40, 14, 41)), "   |   ^");
        // Column 0 is taken as column 1.
        assert_eq!(carets("ab", span(14, 0, 14, 0)), "   | ^");
        // Empty snippet: the source line has no trailing space.
        let out = plain(&[Diagnostic {
            snippet: Some(String::new()),
            ..weight()
        }]);
        assert!(out.contains("\n14 |\n   | ^ spec.route[1].weight\n"), "{out}");
        // The largest line number widens the gutter.
        let out = plain(&[Diagnostic {
            span: span(u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            snippet: Some("x".to_string()),
            ..weight()
        }]);
        assert!(out.contains("\n4294967295 | x\n           |  ^ spec"), "{out}");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let d = Diagnostic {
            message: "bad value \u{1b}[2J\u{1b}]0;pwned\u{7}".to_string(),
            help: Some("see \u{9b}31m".to_string()),
            file: Arc::from("evil\u{1b}[31m.yaml"),
            field: Some("spec.\u{1b}x".to_string()),
            object: ObjectRef {
                kind: Some("RouteRule".to_string()),
                namespace: Some("a\u{1b}".to_string()),
                name: Some("b\r".to_string()),
            },
            snippet: Some("name: \u{1b}[1mx\u{202e}y\u{0}".to_string()),
            span: span(14, 8, 14, 11),
            ..weight()
        };
        let out = plain(&[d]);
        for c in out.chars() {
            assert!(c == '\n' || !is_unsafe(c), "{c:?} in {out:?}");
        }
        assert!(out.contains("bad value \u{fffd}[2J\u{fffd}]0;pwned\u{fffd}\n"), "{out}");
        assert!(out.contains("14 | name: \u{fffd}[1mx\u{fffd}y\u{fffd}\n"), "{out}");
        // One replacement character per unsafe character keeps the caret in place: under `[1m`.
        assert!(
            out.contains(&format!("\n   | {}^^^ spec.{}x\n", " ".repeat(7), '\u{fffd}')),
            "{out}"
        );
        // With colour on, the only escapes are our own.
        let d = Diagnostic {
            message: "\u{1b}[2J".to_string(),
            ..weight()
        };
        let coloured = text(
            &[d],
            &summary(1, 0),
            TextOptions {
                color: true,
                quiet: false,
            },
        );
        assert!(!coloured.contains("\u{1b}[2J"), "{coloured:?}");
    }

    #[test]
    fn colour_only_when_asked() {
        let coloured = text(
            &[weight()],
            &summary(1, 0),
            TextOptions {
                color: true,
                quiet: false,
            },
        );
        assert!(coloured.contains(&format!("{}error[E0304]{}", ERROR.render(), ERROR.render_reset())));
        assert!(coloured.contains(&format!("{}   |{}", GUTTER.render(), GUTTER.render_reset())));
        assert!(coloured.contains(&format!("{}1 error{}", ERROR.render(), ERROR.render_reset())));
        // Zero warnings are not painted.
        assert!(coloured.contains(", 0 warnings\n"), "{coloured:?}");
        assert!(!plain(&[weight()]).contains('\u{1b}'));
    }

    #[test]
    fn blank_line_between_diagnostics() {
        let out = plain(&[bare("one"), bare("two")]);
        assert_eq!(
            out,
            "warning[W0002]: one\n --> -\n\nwarning[W0002]: two\n --> -\n\nchecked 1240 documents in 96 files: 1 error, 0 warnings\n"
        );
    }

    #[test]
    fn quiet_prints_nothing_when_clean_and_the_summary_otherwise() {
        let quiet = TextOptions {
            color: false,
            quiet: true,
        };
        assert_eq!(text(&[], &summary(0, 0), quiet), "");
        assert_eq!(
            text(&[], &summary(0, 0), TextOptions::default()),
            "checked 1240 documents in 96 files: 0 errors, 0 warnings\n"
        );
        let out = text(&[bare("one")], &summary(0, 1), quiet);
        assert!(
            out.ends_with("\n\nchecked 1240 documents in 96 files: 0 errors, 1 warning\n"),
            "{out}"
        );
    }

    #[test]
    fn summary_plurals() {
        let mut s = Summary {
            files: 1,
            checked: 1,
            skipped: 0,
            empty: 0,
            errors: 1,
            warnings: 1,
        };
        assert_eq!(summary_line(&s), "checked 1 document in 1 file: 1 error, 1 warning");
        s.skipped = 3;
        s.empty = 1;
        assert_eq!(
            summary_line(&s),
            "checked 1 document in 1 file: 1 error, 1 warning (skipped 3 documents of other kinds, 1 empty)"
        );
        s.skipped = 1;
        s.empty = 0;
        assert_eq!(
            summary_line(&s),
            "checked 1 document in 1 file: 1 error, 1 warning (skipped 1 document of another kind)"
        );
        s.skipped = 0;
        s.empty = 2;
        assert_eq!(
            summary_line(&s),
            "checked 1 document in 1 file: 1 error, 1 warning (skipped 2 empty documents)"
        );
        assert_eq!(
            summary_line(&Summary::default()),
            "checked 0 documents in 0 files: 0 errors, 0 warnings"
        );
    }
}
