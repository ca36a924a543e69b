//! Loading rule files: bytes → positioned documents → typed objects, with every problem located.
//!
//! A file may hold many YAML documents, a JSON document, or a `kind: List` wrapper. Documents that are
//! not traffic rules (a Deployment, a Mixer `rule`) are skipped and counted; near-misses of a traffic
//! rule's kind or apiVersion are errors that name the intended one.

pub mod de;
pub mod emit;
pub mod files;
pub mod node;
pub mod path;
pub mod yaml;

use crate::diag::{Code, Pos, Span};
use crate::model::{self, API_GROUP, API_VERSION, Kind, Metadata, Resource, Spec};
use crate::suggest::did_you_mean;
use node::{Node, Value};
use path::Seg;
use std::borrow::Cow;

pub use yaml::Limits;

/// A problem found in a file, before it is tied to the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub span: Option<Span>,
    pub message: String,
    pub help: Option<String>,
    pub document: Option<usize>,
    pub field: Option<String>,
}

impl Problem {
    pub fn at(code: Code, span: Span, message: impl Into<String>, document: usize) -> Problem {
        Problem {
            code,
            span: Some(span),
            message: message.into(),
            help: None,
            document: Some(document),
            field: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }
}

/// What the loader made of one rule document.
#[derive(Debug)]
pub struct RuleDocument<'a> {
    /// Index of the document in its file.
    pub index: usize,
    /// Where the rule object sits in the document: empty, or `items[3]` inside a List.
    pub base: Vec<Seg<'static>>,
    /// The object's mapping node.
    pub node: &'a Node<'a>,
    pub kind: Kind,
    /// The typed object; None when its shape could not be recovered (the problems say how). Boxed: a
    /// Resource is large (over a kilobyte), and documents are moved around in vectors.
    pub resource: Option<Box<Resource>>,
    /// Field paths (full, as in diagnostics) that had shape problems. Values there are stand-ins, so
    /// semantic checks on or around them are not reported.
    pub shape_problems: Vec<String>,
    /// Field paths of unknown fields (a subset of `shape_problems`). A required field reported missing
    /// next to an unknown one is most likely that field misspelt, which the unknown field's "did you
    /// mean" already says.
    pub unknown_fields: Vec<String>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Traffic rules checked.
    pub checked: usize,
    /// Documents of other APIs or kinds, or excluded by `--kinds`.
    pub skipped: usize,
    /// Empty documents.
    pub empty: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.checked += o.checked;
        self.skipped += o.skipped;
        self.empty += o.empty;
    }
}

/// Options for reading documents.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub limits: Limits,
    /// Only these kinds are checked; others are skipped (all when empty).
    pub kinds: Vec<Kind>,
    /// Whether `validate::check_file` hands back the valid objects (`FileReport::resources`). On by
    /// default; `meshctl validate` turns it off: linting needs only the diagnostics, and keeping every
    /// object of a large rule set alive until all files are checked costs memory and time.
    pub keep_resources: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            limits: Limits::default(),
            kinds: Vec::new(),
            keep_resources: true,
        }
    }
}

/// Decodes a file's bytes. Invalid UTF-8 is a problem located at the first bad byte.
pub fn decode(bytes: &[u8]) -> Result<&str, Problem> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.strip_prefix('\u{feff}').unwrap_or(s)),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            // Lines as YAML counts them (see `lone_carriage_returns_as_lf`); the byte after the
            // prefix is the bad one, so a carriage return that ends the prefix is a lone one.
            let (mut line, mut column) = (1u32, 1u32);
            for (i, c) in prefix.char_indices() {
                if c == '\n' || lone_carriage_return(valid, i) {
                    (line, column) = (line.saturating_add(1), 1);
                } else {
                    column = column.saturating_add(1);
                }
            }
            let at = Pos { line, column };
            Err(Problem {
                code: Code::InvalidUtf8,
                span: Some(Span::point(at)),
                message: format!(
                    "the file is not valid UTF-8 (bad byte 0x{:02x})",
                    bytes[e.valid_up_to()]
                ),
                help: Some("save the file as UTF-8".to_string()),
                document: None,
                field: None,
            })
        }
    }
}

/// YAML reads a carriage return that no line feed follows as a line break, and numbers lines that
/// way; editors, `--> file:line` readers and the snippets here count line feeds. Each such carriage
/// return becomes a line feed (one byte for one, so every column stays where it was), which YAML reads
/// the same way, so the parser's line numbers and the file's lines agree. Borrowed when there is none.
pub fn lone_carriage_returns_as_lf(src: &str) -> Cow<'_, str> {
    let bytes = src.as_bytes();
    let lone = |i: usize| lone_carriage_return(bytes, i);
    if !bytes.contains(&b'\r') || !(0..bytes.len()).any(lone) {
        return Cow::Borrowed(src);
    }
    let replaced: String = src
        .char_indices()
        .map(|(i, c)| if c == '\r' && lone(i) { '\n' } else { c })
        .collect();
    Cow::Owned(replaced)
}

/// Whether `bytes[i]` is a carriage return that no line feed follows (a line break to YAML).
fn lone_carriage_return(bytes: &[u8], i: usize) -> bool {
    bytes.get(i) == Some(&b'\r') && bytes.get(i + 1) != Some(&b'\n')
}

/// Turns the documents of a parsed stream into rule documents, recording problems and counts.
pub fn rule_documents<'a>(
    stream: &'a yaml::Stream<'a>,
    opts: &LoadOptions,
    problems: &mut Vec<Problem>,
    counts: &mut Counts,
) -> Vec<RuleDocument<'a>> {
    let mut out = Vec::with_capacity(stream.documents.len());
    for doc in &stream.documents {
        let Some(root) = doc.root.as_ref().filter(|r| !r.is_null()) else {
            counts.empty += 1;
            continue;
        };
        classify(root, doc.index, Vec::new(), opts, problems, counts, &mut out);
    }
    out
}

fn classify<'a>(
    node: &'a Node<'a>,
    index: usize,
    base: Vec<Seg<'static>>,
    opts: &LoadOptions,
    problems: &mut Vec<Problem>,
    counts: &mut Counts,
    out: &mut Vec<RuleDocument<'a>>,
) {
    let Value::Map(_) = &node.value else {
        let what = if base.is_empty() {
            "this document"
        } else {
            "this List item"
        };
        problems.push(
            Problem::at(
                Code::NotAnObject,
                node.span,
                format!("{what} is {}, not a mapping", node.describe()),
                index,
            )
            .with_help("a rule is a mapping with apiVersion, kind, metadata and spec")
            .with_field(path::format(&base)),
        );
        return;
    };
    let api_version = node.get("apiVersion");
    let kind = node.get("kind");
    let kind_text = kind.and_then(|e| e.value.as_str());
    let api_text = api_version.and_then(|e| e.value.as_str());

    if kind_text.is_some_and(is_list_kind) {
        match node.get("items").map(|e| &e.value) {
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => {
                for (i, item) in items.iter().enumerate() {
                    let mut item_base = base.clone();
                    item_base.push(Seg::Key("items"));
                    item_base.push(Seg::Index(i));
                    classify(item, index, item_base, opts, problems, counts, out);
                }
            }
            Some(other) if !other.is_null() => {
                problems.push(
                    Problem::at(
                        Code::WrongType,
                        other.span,
                        format!("expected a list of objects, found {}", other.describe()),
                        index,
                    )
                    .with_field("items"),
                );
            }
            _ => counts.empty += 1,
        }
        return;
    }

    let field = |name: &'static str| {
        let mut p = base.clone();
        p.push(Seg::Key(name));
        path::format(&p)
    };
    let missing = |what: &str, name: &'static str, help: String| {
        let code = if name == "kind" {
            Code::MissingKind
        } else {
            Code::MissingApiVersion
        };
        Problem::at(code, Span::point(node.span.start), what.to_string(), index)
            .with_help(help)
            .with_field(field(name))
    };

    // Wrong types for the identity fields.
    for entry in [api_version, kind].into_iter().flatten() {
        if entry.value.as_str().is_none() && !entry.value.is_null() {
            problems.push(
                Problem::at(
                    Code::WrongType,
                    entry.value.span,
                    format!("expected a string, found {}", entry.value.describe()),
                    index,
                )
                .with_field(field(if entry.key == "kind" { "kind" } else { "apiVersion" })),
            );
            return;
        }
    }

    let rule_kind = kind_text.and_then(Kind::from_kind_field);

    match (api_text, kind_text) {
        (None, None) => {
            problems.push(missing(
                "this document has neither apiVersion nor kind",
                "kind",
                format!("a traffic rule starts with `apiVersion: {API_VERSION}` and `kind: RouteRule`, `EgressRule` or `DestinationPolicy`"),
            ));
            return;
        }
        (None, Some(k)) => {
            let help = match rule_kind {
                Some(_) => format!("add `apiVersion: {API_VERSION}`"),
                None => "every Kubernetes-style object names its apiVersion".to_string(),
            };
            problems.push(missing(&format!("this {k} has no apiVersion"), "apiVersion", help));
            return;
        }
        (Some(a), None) => {
            let help = if a == API_VERSION || a.starts_with(API_GROUP) {
                "add `kind: RouteRule`, `kind: EgressRule` or `kind: DestinationPolicy`".to_string()
            } else {
                "every Kubernetes-style object names its kind".to_string()
            };
            problems.push(missing("this document has no kind", "kind", help));
            return;
        }
        (Some(a), Some(k)) => match identify(a, k) {
            Identity::Rule(_) => {}
            Identity::Other => {
                counts.skipped += 1;
                return;
            }
            Identity::NearKind(intended) => {
                let e = kind.map_or(node.span, |e| e.value.span);
                problems.push(
                    Problem::at(
                        Code::UnknownKind,
                        e,
                        format!("unknown kind `{k}`: did you mean `{intended}`?"),
                        index,
                    )
                    .with_help(format!(
                        "the traffic-rule kinds of {API_VERSION} are RouteRule, EgressRule and DestinationPolicy"
                    ))
                    .with_field(field("kind")),
                );
                return;
            }
            Identity::NearApiVersion => {
                let e = api_version.map_or(node.span, |e| e.value.span);
                problems.push(
                    Problem::at(
                        Code::UnknownApiVersion,
                        e,
                        format!("unknown apiVersion `{a}` for {k}: did you mean `{API_VERSION}`?"),
                        index,
                    )
                    .with_help(format!("{k} belongs to {API_VERSION}"))
                    .with_field(field("apiVersion")),
                );
                return;
            }
        },
    }
    let Some(kind) = rule_kind else { return };
    if !opts.kinds.is_empty() && !opts.kinds.contains(&kind) {
        counts.skipped += 1;
        return;
    }
    counts.checked += 1;
    let before = problems.len();
    let resource = typed(node, kind, index, &base, problems);
    let shape_problems = problems[before..].iter().filter_map(|p| p.field.clone()).collect();
    let unknown_fields = problems[before..]
        .iter()
        .filter(|p| p.code == Code::UnknownField)
        .filter_map(|p| p.field.clone())
        .collect();
    out.push(RuleDocument {
        index,
        base,
        node,
        kind,
        resource,
        shape_problems,
        unknown_fields,
    });
}

/// Whether a `kind` names a list of objects (`List`, or `RouteRuleList` and the like), whose `items`
/// are read as documents of their own.
pub fn is_list_kind(kind: &str) -> bool {
    kind == "List"
        || kind
            .strip_suffix("List")
            .is_some_and(|k| Kind::from_kind_field(k).is_some())
}

/// What a document is, by its apiVersion and kind (both strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A traffic rule of `config.istio.io/v1alpha2`.
    Rule(Kind),
    /// Another API's object, or a kind of ours in another API group: skipped.
    Other,
    /// An unknown kind in our API (or one near it) that is a few edits from one of ours: an error.
    NearKind(&'static str),
    /// One of our kinds under an apiVersion a few edits from ours: an error.
    NearApiVersion,
}

pub fn identify(api_version: &str, kind: &str) -> Identity {
    let api_is_rules = api_version == API_VERSION;
    let api_near = !api_is_rules && is_near_api_version(api_version);
    match Kind::from_kind_field(kind) {
        // Not one of ours, unless it is a typo of one of ours in our API.
        None => match (api_is_rules || api_near)
            .then(|| did_you_mean(kind, Kind::ALL.iter().map(|k| k.name())))
            .flatten()
        {
            Some(intended) => Identity::NearKind(intended),
            None => Identity::Other,
        },
        Some(k) if api_is_rules => Identity::Rule(k),
        Some(_) if api_near => Identity::NearApiVersion,
        // A kind of the same name in some other API group.
        Some(_) => Identity::Other,
    }
}

/// config.istio.io with another version, or a string a few edits from config.istio.io/v1alpha2.
fn is_near_api_version(a: &str) -> bool {
    a.starts_with("config.istio.io") || strsim::levenshtein(a, API_VERSION) <= 3 || a.eq_ignore_ascii_case(API_VERSION)
}

/// Deserializes a rule document's metadata and spec.
fn typed<'a>(
    node: &'a Node<'a>,
    kind: Kind,
    index: usize,
    base: &[Seg<'static>],
    problems: &mut Vec<Problem>,
) -> Option<Box<Resource>> {
    const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
    let mut metadata = None;
    let mut spec = None;
    let mut recovered = true;
    for entry in node.as_map().unwrap_or_default() {
        match entry.key {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let sub = de::Ctx::new(&with(base, "metadata"), index);
                metadata = de::from_node::<Metadata>(&entry.value, &sub);
                recovered &= metadata.is_some();
                problems.extend(sub.into_problems());
            }
            "spec" => {
                let sub = de::Ctx::new(&with(base, "spec"), index);
                spec = match kind {
                    Kind::RouteRule => {
                        de::from_node::<model::RouteRule>(&entry.value, &sub).map(|r| Spec::RouteRule(Box::new(r)))
                    }
                    Kind::EgressRule => de::from_node::<model::EgressRule>(&entry.value, &sub).map(Spec::EgressRule),
                    Kind::DestinationPolicy => de::from_node::<model::DestinationPolicy>(&entry.value, &sub)
                        .map(|d| Spec::DestinationPolicy(Box::new(d))),
                };
                recovered &= spec.is_some();
                problems.extend(sub.into_problems());
            }
            other => {
                let help = match did_you_mean(other, TOP.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a rule has apiVersion, kind, metadata and spec".to_string(),
                };
                let mut p = base.to_vec();
                p.push(Seg::Key(other));
                problems.push(
                    Problem::at(
                        Code::UnknownField,
                        entry.key_span,
                        format!("unknown field `{other}`"),
                        index,
                    )
                    .with_help(help)
                    .with_field(path::format(&p)),
                );
            }
        }
    }
    if !recovered {
        return None;
    }
    let spec = match spec {
        Some(s) => s,
        // A missing spec is reported by validation; an empty one stands in so it can be.
        None if node.get("spec").is_none_or(|e| e.value.is_null()) => match kind {
            Kind::RouteRule => Spec::RouteRule(Default::default()),
            Kind::EgressRule => Spec::EgressRule(Default::default()),
            Kind::DestinationPolicy => Spec::DestinationPolicy(Default::default()),
        },
        None => return None,
    };
    Some(Box::new(Resource {
        api_version: API_VERSION.to_string(),
        kind,
        metadata: metadata.unwrap_or_default(),
        spec,
    }))
}

fn with(base: &[Seg<'static>], key: &'static str) -> Vec<Seg<'static>> {
    let mut p = base.to_vec();
    p.push(Seg::Key(key));
    p
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::lone_carriage_returns_as_lf;

    #[test]
    fn only_lone_carriage_returns_become_line_feeds() {
        assert!(matches!(
            lone_carriage_returns_as_lf("a: 1\r\nb: 2\n"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(lone_carriage_returns_as_lf("a: 1\n"), Cow::Borrowed(_)));
        assert_eq!(lone_carriage_returns_as_lf("a: é\rb: 2\r\nc\r"), "a: é\nb: 2\r\nc\n");
        assert_eq!(lone_carriage_returns_as_lf("\r\r\n\r"), "\n\r\n\n");
    }
}
