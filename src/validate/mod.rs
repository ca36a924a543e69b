//! Validation: Istio's semantics for each kind, applied to typed objects, reported with positions.
//!
//! `check_resource` works on an object alone and names problems by field path, so the config store
//! can reuse it for objects that arrive as JSON; `check_file` runs the loader and the checks over a
//! file and places every problem at its line and column. When the caller does not want the typed
//! objects (`meshctl validate`), `check_file` first tries `fast`, which proves most files clean from
//! the parser's events alone; the full path takes over from the first document it cannot prove so.

pub mod checker;
pub mod common;
pub mod destination_policy;
pub mod egress_rule;
mod fast;
pub mod render;
pub mod route_rule;

use std::cell::RefCell;
use std::sync::Arc;

use bumpalo::Bump;

use checker::{Checker, Finding};

use crate::diag::{Code, Diagnostic, ObjectRef, Pos, Severity, Span};
use crate::load::path::{self, Seg};
use crate::load::{self, Counts, LoadOptions, Problem, RuleDocument};
use crate::model::{Kind, Resource, Spec};

/// Checks one object's metadata and spec. Paths are relative to the object.
/// Checks one object that does not come from a file (a store write, an API request body): the same
/// checks as `meshctl validate`, located by field path only. Warnings are included; callers refuse the
/// object when any diagnostic is an error.
pub fn check_object(r: &Resource) -> Vec<Diagnostic> {
    let file: Arc<str> = Arc::from(r.istioctl_ref());
    let object = ObjectRef {
        kind: Some(r.kind.name().to_string()),
        namespace: r.metadata.namespace.clone(),
        name: r.metadata.name.clone(),
    };
    check_resource(r)
        .into_iter()
        .map(|f| Diagnostic {
            severity: f.severity,
            code: f.code,
            message: f.message,
            help: f.help,
            file: file.clone(),
            span: None,
            document: None,
            object: object.clone(),
            field: Some(path::format(&f.path)),
            snippet: None,
        })
        .collect()
}

pub fn check_resource(r: &Resource) -> Vec<Finding<'_>> {
    let mut c = Checker::default();
    let m = &r.metadata;
    match m.name.as_deref() {
        None | Some("") => {
            c.at("metadata", |c| {
                c.missing("name", "metadata.name is required")
                    .help("every rule needs a name, e.g. `name: reviews-v3`");
            });
        }
        Some(name) => c.at("metadata", |c| {
            c.at("name", |c| common::check_dns_label(c, "name", name))
        }),
    }
    c.at("metadata", |c| {
        c.opt("namespace", m.namespace.as_ref(), |c, ns| {
            common::check_dns_label(c, "namespace", ns)
        });
        c.opt("labels", m.labels.as_ref(), |c, l| common::check_labels(c, l));
        c.opt("annotations", m.annotations.as_ref(), |c, a| {
            for key in a.keys() {
                c.at(key, |c| {
                    if let Some(problem) = common::label_key_problem(key) {
                        c.error_key(Code::InvalidLabel, problem.replace("label key", "annotation key"));
                    }
                });
            }
        });
    });
    c.at("spec", |c| match &r.spec {
        Spec::RouteRule(s) => route_rule::check(c, s),
        Spec::EgressRule(s) => egress_rule::check(c, s),
        Spec::DestinationPolicy(s) => destination_policy::check(c, s),
    });
    c.findings
}

/// Where a rule was defined, for the cross-file "defined twice" warning. Every rule has one, so it is
/// kept small: the namespace, the name and the source line share one allocation, and the key's hash is
/// computed by the worker thread that found it, so that the single-threaded search for duplicates only
/// sorts numbers.
#[derive(Debug, Clone)]
pub struct Definition {
    pub kind: Kind,
    /// `namespace`, then `name`, then the source line of the name (when known).
    text: Box<str>,
    namespace_end: usize,
    name_end: usize,
    has_snippet: bool,
    /// A hash of (kind, namespace, name): equal keys have equal hashes.
    hash: u64,
    pub file: Arc<str>,
    pub span: Span,
    pub document: usize,
}

impl Definition {
    pub fn new(
        kind: Kind,
        namespace: &str,
        name: &str,
        snippet: Option<&str>,
        file: Arc<str>,
        span: Span,
        document: usize,
    ) -> Definition {
        let mut text = String::with_capacity(namespace.len() + name.len() + snippet.map_or(0, str::len));
        text.push_str(namespace);
        text.push_str(name);
        text.push_str(snippet.unwrap_or(""));
        Definition {
            kind,
            text: text.into_boxed_str(),
            namespace_end: namespace.len(),
            name_end: namespace.len() + name.len(),
            has_snippet: snippet.is_some(),
            hash: key_hash(kind, namespace, name),
            file,
            span,
            document,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.text[..self.namespace_end]
    }

    pub fn name(&self) -> &str {
        &self.text[self.namespace_end..self.name_end]
    }

    /// The source line that holds the name.
    pub fn snippet(&self) -> Option<&str> {
        self.has_snippet.then(|| &self.text[self.name_end..])
    }

    fn same_key(&self, other: &Definition) -> bool {
        self.kind == other.kind && self.namespace() == other.namespace() && self.name() == other.name()
    }
}

/// A hash of (kind, namespace, name) with std's hasher and its fixed keys, so a run's output does not
/// depend on it (strings hash with a terminator, which keeps `ab`+`c` apart from `a`+`bc`).
fn key_hash(kind: Kind, namespace: &str, name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (kind, namespace, name).hash(&mut h);
    h.finish()
}

/// What checking one file found.
#[derive(Debug, Default)]
pub struct FileReport {
    pub diagnostics: Vec<Diagnostic>,
    pub counts: Counts,
    pub definitions: Vec<Definition>,
    /// The valid objects, in file order (only those without errors), unless
    /// `LoadOptions::keep_resources` is off.
    pub resources: Vec<Resource>,
}

thread_local! {
    /// The arena for the document trees of the file a thread is checking. Emptied after each file but
    /// kept, so the next file's tree is built in memory that is already allocated and warm in the
    /// caches, and a whole tree is freed at once instead of node by node.
    static TREES: RefCell<Bump> = RefCell::new(Bump::new());
}

/// An arena larger than this after a file is given back rather than kept: a rule file's tree takes
/// five to seven times the file's size, so files up to ~150 kB reuse the memory, and a thread of a
/// long-running process (`serve`, `proxy`) that once checked a large file does not hold on to it.
const KEEP_ARENA_BYTES: usize = 1 << 20;

/// Loads and checks one file's contents.
pub fn check_file(file: &Arc<str>, bytes: &[u8], opts: &LoadOptions) -> FileReport {
    TREES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut arena) => {
            let report = check_file_in(&arena, file, bytes, opts);
            if arena.allocated_bytes() > KEEP_ARENA_BYTES {
                *arena = Bump::new();
            } else {
                arena.reset();
            }
            report
        }
        // Only if checking a file ever checked another one on the same thread.
        Err(_) => check_file_in(&Bump::new(), file, bytes, opts),
    })
}

fn check_file_in(arena: &Bump, file: &Arc<str>, bytes: &[u8], opts: &LoadOptions) -> FileReport {
    let mut report = FileReport::default();
    let src = match load::decode(bytes) {
        Ok(s) => s,
        Err(p) => {
            report.diagnostics.push(diagnostic(file, None, p, ObjectRef::default()));
            return report;
        }
    };
    let src = &*load::lone_carriage_returns_as_lf(src);
    // Most files are clean: those are proved so from the parser's events alone. A caller that wants
    // the typed objects takes the full path; so does a file the fast path is unsure of, from the
    // first document the fast path could not prove clean.
    let mut from = load::yaml::Resume::default();
    if !opts.keep_resources {
        match fast::clean_file(file, src, opts) {
            Ok(clean) => return clean,
            Err(unfinished) => (from, report) = (unfinished.from, unfinished.report),
        }
    }
    let lines = LineIndex::new(src);
    // The definitions' lines come in file order: a cursor finds them without the line table, which
    // is then built only for files that have diagnostics.
    let mut names = LineCursor::new(src);
    let stream = load::yaml::parse_stream_from(src, from, arena, opts.limits);
    let mut problems = stream.problems.clone();
    let documents = load::rule_documents(&stream, opts, &mut problems, &mut report.counts);
    for p in problems {
        report
            .diagnostics
            .push(diagnostic(file, Some(&lines), p, ObjectRef::default()));
    }
    let mut documents = documents;
    // Problems met while reading the YAML (a duplicate key) make the value there a stand-in too.
    for p in &stream.problems {
        if let (Some(index), Some(field)) = (p.document, &p.field) {
            for doc in documents.iter_mut().filter(|d| d.index == index) {
                doc.shape_problems.push(field.clone());
            }
        }
    }
    for doc in &mut documents {
        if let Some((namespace, name, span)) = definition_of(doc) {
            report.definitions.push(Definition::new(
                doc.kind,
                namespace.unwrap_or(crate::model::meta::DEFAULT_NAMESPACE),
                name,
                names.line(span.start.line),
                file.clone(),
                span,
                doc.index,
            ));
        }
        let Some(resource) = doc.resource.take() else { continue };
        let mut findings = check_resource(&resource);
        if doc.node.get("spec").is_none() {
            // One error for the missing spec, not one per required field inside it.
            findings.retain(|f| f.path.first() != Some(&Seg::Key("spec")));
            findings.push(missing_spec(doc.kind));
        }
        let clean = doc.shape_problems.is_empty() && !findings.iter().any(|f| f.severity == Severity::Error);
        // Most rules have no findings: their object reference is never built.
        let object = if findings.is_empty() {
            ObjectRef::default()
        } else {
            object_ref(doc)
        };
        for f in findings {
            let mut full: Vec<Seg<'_>> = doc.base.clone();
            full.extend(f.path.iter().copied());
            let field = path::format(&full);
            if doc.shape_problems.iter().any(|p| related(p, &field)) {
                continue;
            }
            if f.code == Code::MissingField && misspelt(doc, &f.path) {
                continue;
            }
            let span = path::locate(doc.node, &f.path, f.target);
            let p = Problem {
                code: f.code,
                span: Some(span),
                message: f.message,
                help: f.help,
                document: Some(doc.index),
                field: Some(field),
            };
            let mut d = diagnostic(file, Some(&lines), p, object.clone());
            d.severity = f.severity;
            report.diagnostics.push(d);
        }
        if clean && opts.keep_resources {
            report.resources.push(*resource);
        }
    }
    // Attach the object to load-level problems of a document that has one (shape errors).
    for d in &mut report.diagnostics {
        if d.object == ObjectRef::default() {
            if let Some(doc) = documents.iter().find(|doc| {
                Some(doc.index) == d.document
                    && d.field
                        .as_deref()
                        .is_some_and(|f| doc.base.is_empty() || f.starts_with(&path::format(&doc.base)))
            }) {
                d.object = object_ref(doc);
            }
        }
    }
    report.diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    report
}

fn missing_spec(kind: Kind) -> Finding<'static> {
    let example = match kind {
        Kind::RouteRule => "spec: {destination: {name: reviews}, route: [{labels: {version: v1}}]}",
        Kind::EgressRule => "spec: {destination: {service: 10.0.0.5/32}, ports: [{port: 3306, protocol: tcp}]}",
        Kind::DestinationPolicy => "spec: {destination: {name: reviews}, loadBalancing: {name: RANDOM}}",
    };
    Finding {
        severity: Severity::Error,
        code: Code::MissingField,
        path: vec![Seg::Key("spec")],
        target: path::Target::Key,
        message: format!("this {kind} has no spec"),
        help: Some(format!("for example `{example}`")),
    }
}

/// Whether a required field reported missing sits in a mapping (the deepest one that exists on its
/// path) that also has an unknown field: `destinaton` next to a missing `destination`, or `specs` at
/// the top of a rule that has no `spec`. The unknown field's error and its suggestion say it all.
fn misspelt(doc: &RuleDocument<'_>, path: &[Seg<'_>]) -> bool {
    let parent_len = path.len().saturating_sub(1);
    let depth = path::existing_depth(doc.node, &path[..parent_len]);
    let mut parent: Vec<Seg<'_>> = doc.base.clone();
    parent.extend(path[..depth].iter().copied());
    let parent = path::format(&parent);
    doc.unknown_fields.iter().any(|u| {
        let u_parent = match u.rfind(['.', '[']) {
            Some(i) => &u[..i],
            None => "",
        };
        u_parent == parent
    })
}

/// Whether one field path contains the other (`spec.route` and `spec.route[1].weight`).
fn related(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    within(a, b) || within(b, a)
}

fn object_ref(doc: &RuleDocument<'_>) -> ObjectRef {
    let (namespace, name) = identity(doc);
    ObjectRef {
        kind: Some(doc.kind.name().to_string()),
        namespace: namespace.map(str::to_string),
        name: name.map(|(n, _)| n.to_string()),
    }
}

/// The namespace and the name (with its place) of a rule, where they are strings.
fn identity<'d>(doc: &'d RuleDocument<'_>) -> (Option<&'d str>, Option<(&'d str, Span)>) {
    let Some(meta) = doc.node.get("metadata").map(|e| &e.value) else {
        return (None, None);
    };
    let namespace = meta.get("namespace").and_then(|e| e.value.as_str());
    let name = meta.get("name").and_then(|e| Some((e.value.as_str()?, e.value.span)));
    (namespace, name)
}

/// The namespace (when set), the name and the name's place of a rule that has a string name.
fn definition_of<'d>(doc: &'d RuleDocument<'_>) -> Option<(Option<&'d str>, &'d str, Span)> {
    let (namespace, name) = identity(doc);
    let (name, span) = name?;
    Some((namespace, name, span))
}

/// Warns about rules defined more than once (same kind, namespace and name), at every later definition.
/// The definitions come file by file (`FileReport::definitions`), in input order, so none is copied;
/// their hashes are sorted (input order kept among equal hashes), and only definitions whose hashes
/// are equal are compared.
pub fn duplicate_definitions(per_file: &[Vec<Definition>]) -> Vec<Diagnostic> {
    let mut order: Vec<(u64, usize, usize)> = Vec::with_capacity(per_file.iter().map(Vec::len).sum());
    for (f, defs) in per_file.iter().enumerate() {
        order.extend(defs.iter().enumerate().map(|(i, d)| (d.hash, f, i)));
    }
    order.sort_unstable();
    let mut out = Vec::new();
    // The first definition of each distinct key in a group (almost always one key per hash), so that
    // a file defining the same rule 100,000 times costs linear time, not quadratic.
    let mut firsts: Vec<&Definition> = Vec::new();
    for group in order.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        firsts.clear();
        for &(_, f, i) in group {
            let d = &per_file[f][i];
            match firsts.iter().find(|e| e.same_key(d)) {
                Some(earlier) => out.push(duplicate_warning(d, earlier)),
                None => firsts.push(d),
            }
        }
    }
    out
}

fn duplicate_warning(d: &Definition, earlier: &Definition) -> Diagnostic {
    let (namespace, name) = (d.namespace(), d.name());
    Diagnostic {
        severity: Severity::Warning,
        code: Code::DuplicateName,
        message: format!("{} {namespace}/{name} is defined more than once", d.kind),
        help: Some(format!(
            "it is also defined at {}:{}:{}; the store keeps one object per name, so one definition would replace the other",
            earlier.file, earlier.span.start.line, earlier.span.start.column
        )),
        file: d.file.clone(),
        span: Some(d.span),
        document: Some(d.document),
        object: ObjectRef {
            kind: Some(d.kind.name().to_string()),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
        },
        field: Some("metadata.name".to_string()),
        snippet: d.snippet().map(str::to_string),
    }
}

fn diagnostic(file: &Arc<str>, lines: Option<&LineIndex<'_>>, mut p: Problem, object: ObjectRef) -> Diagnostic {
    if let (Some(lines), Some(span)) = (lines, p.span) {
        p.span = Some(lines.clamp(span));
    }
    let snippet = match (lines, p.span) {
        // Very long lines (minified or generated files) are not echoed.
        (Some(lines), Some(span)) => lines
            .line(span.start.line)
            .filter(|l| l.len() <= 1000)
            .map(str::to_string),
        _ => None,
    };
    Diagnostic {
        severity: Severity::Error,
        code: p.code,
        message: p.message,
        help: p.help,
        file: file.clone(),
        span: p.span,
        document: p.document,
        object,
        field: p.field.filter(|f| !f.is_empty()),
        snippet,
    }
}

/// Finds source lines by number, for snippets and for keeping positions inside the input. The line
/// table is built on first use, so clean files never pay for it.
struct LineIndex<'a> {
    src: &'a str,
    starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> LineIndex<'a> {
    fn new(src: &'a str) -> Self {
        LineIndex {
            src,
            starts: std::cell::OnceCell::new(),
        }
    }

    fn starts(&self) -> &[usize] {
        self.starts.get_or_init(|| {
            let mut starts = Vec::with_capacity(self.src.len() / 24 + 2);
            starts.push(0);
            starts.extend(memchr::memchr_iter(b'\n', self.src.as_bytes()).map(|i| i + 1));
            starts
        })
    }

    fn line(&self, n: u32) -> Option<&'a str> {
        let starts = self.starts();
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        let start = *starts.get(i)?;
        let end = starts.get(i + 1).map_or(self.src.len(), |next| next - 1);
        let line = self.src.get(start..end)?;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// The position just past the last character of the input.
    fn end(&self) -> Pos {
        let starts = self.starts();
        let last = starts.last().copied().unwrap_or(0);
        Pos {
            line: u32::try_from(starts.len()).unwrap_or(u32::MAX),
            column: u32::try_from(self.src[last..].chars().count() + 1).unwrap_or(u32::MAX),
        }
    }

    /// Pulls a position the parser placed past the end of the input (an error at end of file) back to
    /// the end, so every reported position lies inside the file.
    fn clamp(&self, span: Span) -> Span {
        let end = self.end();
        Span {
            start: span.start.min(end),
            end: span.end.min(end),
        }
    }
}

/// Finds source lines by number walking forward from the last one asked for, with no table: for
/// lines asked for in increasing order (the rules' names in a file), the file is scanned once.
struct LineCursor<'a> {
    src: &'a str,
    /// The number of the line that starts at `start`.
    line: u32,
    start: usize,
}

impl<'a> LineCursor<'a> {
    fn new(src: &'a str) -> Self {
        LineCursor { src, line: 1, start: 0 }
    }

    fn line(&mut self, n: u32) -> Option<&'a str> {
        if n == 0 {
            return None;
        }
        if n < self.line {
            (self.line, self.start) = (1, 0);
        }
        let bytes = self.src.as_bytes();
        while self.line < n {
            let next = memchr::memchr(b'\n', bytes.get(self.start..)?)?;
            self.start += next + 1;
            self.line += 1;
        }
        let rest = bytes.get(self.start..)?;
        let end = memchr::memchr(b'\n', rest).map_or(self.src.len(), |i| self.start + i);
        let line = self.src.get(self.start..end)?;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// What checking a set of files found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Every diagnostic, cross-file duplicates included, in output order.
    pub diagnostics: Vec<Diagnostic>,
    /// Files, documents and diagnostics counted.
    pub summary: render::Summary,
    /// The valid objects, each with the index (in `inputs`) of the file it came from.
    pub resources: Vec<(usize, Resource)>,
}

/// Reads and checks files as `meshctl validate` does, keeping the valid objects: the one loop that
/// `create`/`replace`/`apply`, `check` and the proxy's `-f` share. A file that cannot be read is an
/// error naming it.
pub fn check_inputs(inputs: &[load::files::Input], opts: &LoadOptions) -> Result<Checked, String> {
    let mut checked = Checked {
        summary: render::Summary {
            files: inputs.len(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut definitions = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let bytes = input.read().map_err(|e| format!("{}: {e}", input.display()))?;
        let name: Arc<str> = Arc::from(input.display());
        let report = check_file(&name, &bytes, opts);
        checked.summary.checked += report.counts.checked;
        checked.summary.skipped += report.counts.skipped;
        checked.summary.empty += report.counts.empty;
        checked.diagnostics.extend(report.diagnostics);
        definitions.push(report.definitions);
        checked.resources.extend(report.resources.into_iter().map(|r| (i, r)));
    }
    checked.diagnostics.extend(duplicate_definitions(&definitions));
    checked.diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    checked.summary.count(&checked.diagnostics);
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Definition, KEEP_ARENA_BYTES, LineCursor, LineIndex, TREES, check_file, duplicate_definitions};
    use crate::diag::{Pos, Span};
    use crate::load::LoadOptions;
    use crate::model::Kind;

    #[test]
    fn a_thread_reusing_its_arena_reports_the_same_as_a_fresh_one() {
        let opts = LoadOptions::default();
        let file: Arc<str> = Arc::from("a.yaml");
        let bad = b"apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n  name: Bad_Name\nspec:\n  destination:\n    service: db.example.com\n  ports:\n  - port: 70000\n    protocol: tcp\n";
        let first = format!("{:?}", check_file(&file, bad, &opts));
        assert!(first.contains("70000"), "{first}");
        let other = b"apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: ok\nspec:\n  destination:\n    name: reviews\n";
        let _ = check_file(&file, other, &opts);
        assert_eq!(format!("{:?}", check_file(&file, bad, &opts)), first);
    }

    #[test]
    fn a_very_large_files_arena_is_given_back_afterwards() {
        // 300,000 list items: several times the kept size in nodes alone.
        let src = format!("items:\n{}", "- a\n".repeat(300_000));
        let report = check_file(&Arc::from("big.yaml"), src.as_bytes(), &LoadOptions::default());
        assert!(
            report.diagnostics.iter().any(|d| d.message.contains("apiVersion")),
            "{:?}",
            report.diagnostics
        );
        let kept = TREES.with(|t| t.borrow().allocated_bytes());
        assert!(kept <= KEEP_ARENA_BYTES, "{kept} bytes kept");
    }

    fn def(kind: Kind, namespace: &str, name: &str, file: &str, line: u32) -> Definition {
        let at = Pos { line, column: 9 };
        let snippet = format!("  name: {name}");
        Definition::new(
            kind,
            namespace,
            name,
            Some(&snippet),
            Arc::from(file),
            Span::point(at),
            0,
        )
    }

    #[test]
    fn later_definitions_of_a_key_point_at_the_first() {
        let per_file = vec![
            vec![
                def(Kind::RouteRule, "default", "reviews", "a.yaml", 3),
                def(Kind::EgressRule, "default", "reviews", "a.yaml", 9),
            ],
            vec![def(Kind::RouteRule, "other", "reviews", "b.yaml", 3)],
            vec![
                def(Kind::RouteRule, "default", "reviews", "c.yaml", 4),
                def(Kind::RouteRule, "default", "reviews", "c.yaml", 12),
            ],
        ];
        let found = duplicate_definitions(&per_file);
        let mut seen: Vec<(String, u32, String)> = found
            .iter()
            .map(|d| {
                let span = d.span.map_or(0, |s| s.start.line);
                (d.file.to_string(), span, d.help.clone().unwrap_or_default())
            })
            .collect();
        seen.sort();
        assert_eq!(seen.len(), 2, "{found:?}");
        assert_eq!((seen[0].0.as_str(), seen[0].1), ("c.yaml", 4));
        assert_eq!((seen[1].0.as_str(), seen[1].1), ("c.yaml", 12));
        assert!(
            seen.iter()
                .all(|s| s.2.starts_with("it is also defined at a.yaml:3:9;")),
            "{seen:?}"
        );
        assert_eq!(found[0].message, "RouteRule default/reviews is defined more than once");
        assert_eq!(found[0].snippet.as_deref(), Some("  name: reviews"));
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line_for_positions_and_snippets() {
        // YAML reads the lone CR after `metadata:` as a line break: the missing `:` after `spec` is
        // on line 5, and the snippet must be that line, not the fourth line feed's.
        let src = "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\r  name: ratings\nspec\n  destination:\n    name: ratings\n";
        let report = super::check_file(
            &Arc::from("cr.yaml"),
            src.as_bytes(),
            &crate::load::LoadOptions::default(),
        );
        let d = report.diagnostics.first().expect("a syntax error");
        let span = d.span.expect("a position");
        let snippet = d.snippet.as_deref().expect("a snippet");
        assert!(span.start.column as usize <= snippet.chars().count() + 1, "{d:?}");
        let yaml_line = src.split(['\n', '\r']).nth(span.start.line as usize - 1);
        assert_eq!(Some(snippet), yaml_line, "{d:?}");
    }

    #[test]
    fn equal_hashes_of_different_keys_are_not_duplicates() {
        let a = def(Kind::RouteRule, "ab", "c", "a.yaml", 1);
        let mut b = def(Kind::RouteRule, "a", "bc", "b.yaml", 1);
        assert_eq!((b.namespace(), b.name(), b.snippet()), ("a", "bc", Some("  name: bc")));
        assert_ne!(a.hash, b.hash, "the separator keeps the split apart");
        b.hash = a.hash;
        assert!(duplicate_definitions(&[vec![a.clone()], vec![b.clone()]]).is_empty());
        // Two keys sharing a hash, each defined twice: each later one points at its own first.
        let (mut a2, mut b2) = (a.clone(), b.clone());
        (a2.span.start.line, b2.span.start.line) = (7, 8);
        let found = duplicate_definitions(&[vec![a, b], vec![a2, b2]]);
        let mut got: Vec<(u32, String)> = found
            .iter()
            .map(|d| (d.span.map_or(0, |s| s.start.line), d.message.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (7, "RouteRule ab/c is defined more than once".to_string()),
                (8, "RouteRule a/bc is defined more than once".to_string())
            ]
        );
        assert!(
            found
                .iter()
                .all(|d| d.help.as_deref().is_some_and(|h| h.contains(":1:9;")))
        );
    }

    #[test]
    fn the_cursor_finds_the_same_lines_as_the_table() {
        for src in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n", "x: 1\n  y: é\n\nz\n"] {
            let table = LineIndex::new(src);
            let last = u32::try_from(src.lines().count()).unwrap_or(0) + 3;
            let mut forward = LineCursor::new(src);
            for n in 0..=last {
                assert_eq!(forward.line(n), table.line(n), "{src:?} line {n}");
            }
            // Asked out of order, it starts again and still agrees.
            let mut backward = LineCursor::new(src);
            for n in (0..=last).rev() {
                assert_eq!(backward.line(n), table.line(n), "{src:?} line {n}, backwards");
            }
        }
    }
}
