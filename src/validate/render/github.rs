//! GitHub Actions output: one workflow command per diagnostic
//! (`::error file=F,line=L,col=C,title=E0304 out-of-range::message`), which the runner turns into an
//! annotation on the file, then the summary line as plain text for the log.

use std::borrow::Cow;
use std::io::{self, Write};

use super::Summary;
use super::text::{is_unsafe, summary_line};
use crate::diag::{Diagnostic, Severity};

/// Writes one workflow command per diagnostic, in the order given, then the summary line.
pub fn render(out: &mut dyn Write, diagnostics: &[Diagnostic], summary: &Summary) -> io::Result<()> {
    for d in diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties: Vec<(&str, String)> = Vec::new();
        if let Some(file) = repository_path(&d.file) {
            properties.push(("file", file.into_owned()));
        }
        if let Some(span) = d.span {
            let (line, column) = (span.start.line.max(1), span.start.column.max(1));
            properties.push(("line", line.to_string()));
            properties.push(("col", column.to_string()));
            // Annotations take an end column only on the start line (as GitHub's checks API says);
            // a point span, or one over several lines, is marked at its start.
            if span.end.line == span.start.line && span.end.column > column {
                properties.push(("endLine", line.to_string()));
                properties.push(("endColumn", span.end.column.to_string()));
            }
        }
        properties.push(("title", format!("{} {}", d.code.id(), d.code.slug())));

        write!(out, "::{command}")?;
        for (i, (key, value)) in properties.iter().enumerate() {
            let separator = if i == 0 { ' ' } else { ',' };
            write!(out, "{separator}{key}={}", escape_property(value))?;
        }
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        writeln!(out, "::{}", escape_data(&message))?;
    }
    writeln!(out, "{}", summary_line(summary))
}

/// The file as a path in the repository, for annotations and SARIF: forward slashes, without a
/// leading `./`. `None` for standard input (named `<stdin>` by the loader, `-` on the command line),
/// which is no file in the repository.
pub(super) fn repository_path(file: &str) -> Option<Cow<'_, str>> {
    if file == "-" || file == "<stdin>" {
        return None;
    }
    let mut path = file;
    // An absolute path under the checkout (`-f $GITHUB_WORKSPACE/rules`) is made relative to it, as
    // annotations and code scanning expect paths from the repository's root.
    if std::path::Path::new(file).is_absolute() {
        let roots = [
            std::env::var_os("GITHUB_WORKSPACE").map(std::path::PathBuf::from),
            std::env::current_dir().ok(),
        ];
        for root in roots.into_iter().flatten() {
            if let Ok(rel) = std::path::Path::new(file).strip_prefix(&root) {
                if let Some(rel) = rel.to_str().filter(|r| !r.is_empty()) {
                    path = rel;
                    break;
                }
            }
        }
    }
    while let Some(rest) = path.strip_prefix("./") {
        path = rest.trim_start_matches('/');
    }
    if std::path::MAIN_SEPARATOR == '\\' {
        Some(Cow::Owned(path.replace('\\', "/")))
    } else {
        Some(Cow::Borrowed(path))
    }
}

/// Escapes a command's message: `%`, CR and LF as GitHub decodes them. Other unsafe characters
/// (escape sequences would colour or rewrite the log) become U+FFFD.
fn escape_data(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '\r' => escaped.push_str("%0D"),
            '\n' => escaped.push_str("%0A"),
            '\t' => escaped.push(c),
            c if is_unsafe(c) => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escapes a property value: as a message, and also `:` and `,`, which end a value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::diag::{Code, ObjectRef, Pos, Span};

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
            file: Arc::from("rules/reviews.yaml"),
            span: span(14, 13, 14, 16),
            document: Some(1),
            object: ObjectRef::default(),
            field: Some("spec.route[1].weight".to_string()),
            snippet: None,
        }
    }

    fn github(diagnostics: &[Diagnostic]) -> String {
        let summary = Summary {
            files: 1,
            checked: 2,
            skipped: 0,
            empty: 1,
            errors: 1,
            warnings: 0,
        };
        let mut out = Vec::new();
        render(&mut out, diagnostics, &summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn error_with_a_range_and_help() {
        assert_eq!(
            github(&[weight()]),
            "::error file=rules/reviews.yaml,line=14,col=13,endLine=14,endColumn=16,title=E0304 out-of-range::weight 120 is out of range%0Ahelp: a weight is between 0 and 100\n\
             checked 2 documents in 1 file: 1 error, 0 warnings (skipped 1 empty document)\n"
        );
    }

    #[test]
    fn warning_without_position_or_file() {
        let d = Diagnostic {
            severity: Severity::Warning,
            code: Code::OpenEgress,
            file: Arc::from("-"),
            span: None,
            help: None,
            message: "every address is open".to_string(),
            ..weight()
        };
        let out = github(&[d]);
        assert_eq!(
            out.lines().next(),
            Some("::warning title=W0002 open-egress::every address is open")
        );
    }

    #[test]
    fn point_and_multi_line_spans_are_marked_at_their_start() {
        for span in [span(3, 5, 3, 5), span(3, 5, 9, 8), span(3, 5, 3, 2)] {
            let d = Diagnostic {
                span,
                help: None,
                ..weight()
            };
            assert_eq!(
                github(&[d]).lines().next(),
                Some(
                    "::error file=rules/reviews.yaml,line=3,col=5,title=E0304 out-of-range::weight 120 is out of range"
                )
            );
        }
        // Line and column 0 are not valid annotation positions.
        let d = Diagnostic {
            span: span(0, 0, 7, 1),
            help: None,
            ..weight()
        };
        assert!(github(&[d]).starts_with("::error file=rules/reviews.yaml,line=1,col=1,title="));
    }

    #[test]
    fn escapes() {
        let d = Diagnostic {
            file: Arc::from("./dir,with:odd%name/r.yaml"),
            message: "100% wrong:\r\nnext, line \u{1b}[31mred".to_string(),
            help: Some("a:b,c".to_string()),
            ..weight()
        };
        assert_eq!(
            github(&[d]).lines().next(),
            Some(
                "::error file=dir%2Cwith%3Aodd%25name/r.yaml,line=14,col=13,endLine=14,endColumn=16,title=E0304 out-of-range\
                 ::100%25 wrong:%0D%0Anext, line \u{fffd}[31mred%0Ahelp: a:b,c"
            )
        );
    }

    #[test]
    fn one_line_per_diagnostic() {
        let d = Diagnostic {
            message: "a\nb\rc".to_string(),
            ..weight()
        };
        let out = github(&[d.clone(), d]);
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(out.lines().take(2).all(|l| l.starts_with("::error ")), "{out}");
    }

    #[test]
    fn repository_paths() {
        assert_eq!(repository_path("-"), None);
        assert_eq!(repository_path("<stdin>"), None);
        assert_eq!(repository_path("./a/b.yaml").as_deref(), Some("a/b.yaml"));
        assert_eq!(repository_path("././/a.yaml").as_deref(), Some("a.yaml"));
        assert_eq!(repository_path("/abs/a.yaml").as_deref(), Some("/abs/a.yaml"));
        assert_eq!(repository_path("a/./b.yaml").as_deref(), Some("a/./b.yaml"));
    }
}
