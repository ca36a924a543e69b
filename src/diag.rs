//! Diagnostics: what the loader and the validator report, with where and why. Renderers only format.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A position in a source file: 1-based line, and 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A range in a source file, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn point(pos: Pos) -> Span {
        Span { start: pos, end: pos }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = ($id:literal, $slug:literal, $title:literal), )*) => {
        /// Every diagnostic code. Codes are stable: tools match on them; a retired code is never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $(#[$doc])* $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// `E0201`.
            pub fn id(self) -> &'static str { match self { $(Code::$variant => $id,)* } }
            /// `unknown-field`.
            pub fn slug(self) -> &'static str { match self { $(Code::$variant => $slug,)* } }
            /// A short description, for SARIF rules and the docs.
            pub fn title(self) -> &'static str { match self { $(Code::$variant => $title,)* } }
        }
    };
}

codes! {
    // Reading and parsing files.
    YamlSyntax = ("E0001", "yaml-syntax", "The file is not valid YAML (or JSON)"),
    InvalidUtf8 = ("E0002", "invalid-utf8", "The file is not valid UTF-8"),
    DuplicateKey = ("E0003", "duplicate-key", "A mapping has the same key twice"),
    AliasLimit = ("E0004", "alias-limit", "Aliases expand beyond the limit, or name no anchor"),
    TooDeep = ("E0005", "too-deep", "Nesting is deeper than the limit"),
    TabIndent = ("E0006", "tab-indent", "A tab is used for indentation"),
    UnsupportedYaml = ("E0007", "unsupported-yaml", "A YAML feature rules cannot use (tags, non-string keys)"),
    // What a document is.
    MissingApiVersion = ("E0101", "missing-api-version", "A document has no apiVersion"),
    MissingKind = ("E0102", "missing-kind", "A document has no kind"),
    UnknownKind = ("E0103", "unknown-kind", "The kind is a misspelt traffic-rule kind"),
    UnknownApiVersion = ("E0104", "unknown-api-version", "The apiVersion is a misspelt config.istio.io/v1alpha2"),
    NotAnObject = ("E0105", "not-an-object", "A document (or List item) is not a mapping"),
    // Shape.
    UnknownField = ("E0201", "unknown-field", "A field the kind does not have"),
    WrongType = ("E0202", "wrong-type", "A value of the wrong type"),
    MissingField = ("E0203", "missing-field", "A required field is missing"),
    ConflictingFields = ("E0204", "conflicting-fields", "Fields that cannot be used together"),
    // Values.
    InvalidName = ("E0301", "invalid-name", "A name or namespace is not a DNS-1123 label"),
    InvalidLabel = ("E0302", "invalid-label", "A label key or value is not a valid Kubernetes label"),
    InvalidDuration = ("E0303", "invalid-duration", "A duration does not parse, or is below 1ms"),
    OutOfRange = ("E0304", "out-of-range", "A number outside its allowed range"),
    InvalidRegex = ("E0305", "invalid-regex", "A regular expression does not compile"),
    InvalidHeaderName = ("E0306", "invalid-header-name", "Not a valid HTTP header name"),
    InvalidHttpStatus = ("E0307", "invalid-http-status", "Not a valid HTTP status code"),
    InvalidSubnet = ("E0308", "invalid-subnet", "Not an IP address or CIDR"),
    InvalidValue = ("E0309", "invalid-value", "A value outside the allowed set"),
    // Route rules.
    WeightSum = ("E0401", "weight-sum", "Route weights do not add up to 100"),
    RedirectConflict = ("E0402", "redirect-conflict", "A redirect rule also routes, rewrites, injects faults or mirrors"),
    HeaderMatch = ("E0403", "header-match", "A header match does not have exactly one of exact, prefix, regex"),
    // Egress rules.
    InvalidEgressHost = ("E0501", "invalid-egress-host", "An egress destination is not a host name, wildcard domain, IP or CIDR"),
    DuplicatePort = ("E0502", "duplicate-port", "An egress rule lists a port twice"),
    ProtocolMismatch = ("E0503", "protocol-mismatch", "The protocol does not fit the kind of destination"),
    // Warnings.
    ZeroWeight = ("W0001", "zero-weight", "A route sends all traffic to one entry; the others have weight 0"),
    OpenEgress = ("W0002", "open-egress", "An egress rule opens every address"),
    DuplicateName = ("W0003", "duplicate-name", "The same rule is defined more than once"),
    Deprecated = ("W0004", "deprecated", "A deprecated field"),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The object a diagnostic is about, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
    /// The file as the user named it (`-` for standard input).
    pub file: Arc<str>,
    pub span: Option<Span>,
    /// 0-based index of the document in its file.
    pub document: Option<usize>,
    pub object: ObjectRef,
    /// The field path (`spec.route[1].weight`).
    pub field: Option<String>,
    /// The source line `span.start` is on, for rendering a caret under it.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// Orders diagnostics by file, then position, then code: the stable output order.
    pub fn sort_key(&self) -> (&str, Option<Pos>, Code, &str) {
        (&self.file, self.span.map(|s| s.start), self.code, &self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_once() {
        let doc = include_str!("../docs/diagnostics.md");
        for code in Code::ALL {
            let row = format!("| {} | {} |", code.id(), code.slug());
            assert_eq!(
                doc.matches(&row).count(),
                1,
                "docs/diagnostics.md needs one row for {row}"
            );
        }
    }

    #[test]
    fn codes_and_slugs_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
        let mut slugs: Vec<&str> = Code::ALL.iter().map(|c| c.slug()).collect();
        for id in &ids {
            assert!(id.len() == 5 && (id.starts_with('E') || id.starts_with('W')), "{id}");
        }
        ids.sort_unstable();
        ids.dedup();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(ids.len(), Code::ALL.len());
        assert_eq!(slugs.len(), Code::ALL.len());
    }
}
