//! Builds positioned document trees from saphyr-parser's events.
//!
//! The event parser never expands aliases itself, so every safety bound is enforced here: nesting
//! depth, the number of nodes that aliases may copy (a "billion laughs" file stops at the bound, in
//! bounded memory), and duplicate keys (an error: the second value silently winning is how typos slip
//! through). YAML 1.1 merge keys (`<<: *base`), which Kubernetes manifests use, are honoured.

use std::borrow::Cow;
use std::collections::HashMap;

use bumpalo::Bump;
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, StrInput};

use super::Problem;
use super::node::{Entry, Node, Scalar, Value};
use super::path::Seg;
use crate::diag::{Code, Pos, Span};

/// Limits that keep hostile input cheap.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of collections.
    pub max_depth: usize,
    /// Most nodes that alias expansion may copy in one file.
    pub max_alias_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_alias_nodes: 100_000,
        }
    }
}

/// One document of a stream: its root (None when the document is empty) and where it starts.
#[derive(Debug)]
pub struct RawDocument<'a> {
    pub index: usize,
    pub root: Option<Node<'a>>,
    pub start: Pos,
}

/// The documents of one file, and the problems met while reading it. Documents completed before a
/// syntax error are kept, so one bad document does not hide the diagnostics of the others.
#[derive(Debug, Default)]
pub struct Stream<'a> {
    pub documents: Vec<RawDocument<'a>>,
    pub problems: Vec<Problem>,
}

pub fn pos(m: saphyr_parser::Marker) -> Pos {
    Pos {
        line: saturate(m.line()),
        column: saturate(m.col() + 1),
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where a collection ends. A flow collection's closing bracket is a real token; a block collection's
/// end event has no width and sits on the next token (possibly past the end of the input), so a block
/// collection ends where its last child does.
fn collection_end(end_event: Span, last_child: Option<Pos>, start: Pos) -> Pos {
    if end_event.start != end_event.end {
        return end_event.end;
    }
    last_child.map_or(start, |end| end.max(start))
}

fn span(s: saphyr_parser::Span) -> Span {
    Span {
        start: pos(s.start),
        end: pos(s.end),
    }
}

/// An open collection. Its children so far sit at the end of the builder's `items` or `entries`, from
/// `first` on: one growing buffer for all open collections, so that each finished collection is copied
/// once into an allocation of its exact size instead of growing its own vector step by step.
enum Frame<'a> {
    Seq {
        first: usize,
        start: Pos,
        anchor: usize,
    },
    Map {
        first: usize,
        key: Option<(&'a str, Span)>,
        merges: Vec<Node<'a>>,
        start: Pos,
        anchor: usize,
        skip_value: bool,
    },
}

struct Builder<'a> {
    arena: &'a Bump,
    limits: Limits,
    stack: Vec<Frame<'a>>,
    /// The items of the open sequences, innermost last.
    items: Vec<Node<'a>>,
    /// The entries of the open mappings, innermost last.
    entries: Vec<Entry<'a>>,
    anchors: HashMap<usize, (Node<'a>, usize)>,
    alias_nodes: usize,
    root: Option<Node<'a>>,
    problems: Vec<Problem>,
    document: usize,
}

/// Why a file stopped being read.
struct Fatal;

/// The next event from `parser`. `meshctl validate` and its parse-only floor (examples/parse_only.rs)
/// both pull events through this one function, kept out of line: the compiler then inlines the parser
/// into it the same way in both binaries. Inlined into each caller instead, the parser's code (four
/// fifths of a validation) changed from build to build with unrelated edits around it, by up to 8% of
/// its instructions, which moved the measured ratio by more than any change to the checks did.
#[inline(never)]
pub fn next_event<'a>(
    parser: &mut Parser<'a, StrInput<'a>>,
) -> Option<Result<(Event<'a>, saphyr_parser::Span), ScanError>> {
    parser.next_event()
}

/// Parses every document in `src`. The trees are built in `arena` (text the parser had to copy, and
/// every collection's children): nothing of a tree is freed on its own, the arena frees it all at once.
pub fn parse_stream<'a>(src: &'a str, arena: &'a Bump, limits: Limits) -> Stream<'a> {
    parse_stream_from(src, Resume::default(), arena, limits)
}

/// Where to start reading a stream: at the line where document `document` starts (a document starts
/// on a line of its own: `---` begins a line). Documents before it are not read, and positions stay
/// those of the whole file. Only for a file with no directive (`%YAML`, `%TAG`), which would belong
/// to a document that starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub document: usize,
    /// The line, counted from 1.
    pub line: u32,
}

impl Default for Resume {
    fn default() -> Self {
        Resume { document: 0, line: 1 }
    }
}

/// Parses the documents of `src` from `from` on (see `Resume`).
pub fn parse_stream_from<'a>(src: &'a str, from: Resume, arena: &'a Bump, limits: Limits) -> Stream<'a> {
    let (src, lines_before) = match from.line.checked_sub(1).filter(|n| *n > 0) {
        None => (src, 0),
        Some(n) => {
            // The byte where line `from.line` starts: after the (n)th line feed.
            let start = memchr::memchr_iter(b'\n', src.as_bytes())
                .nth(usize::try_from(n - 1).unwrap_or(usize::MAX))
                .map_or(src.len(), |i| i + 1);
            (src.get(start..).unwrap_or_default(), n)
        }
    };
    let shift = |mut s: Span| {
        s.start.line = s.start.line.saturating_add(lines_before);
        s.end.line = s.end.line.saturating_add(lines_before);
        s
    };
    let mut parser = Parser::new_from_str(src);
    let mut b = Builder {
        arena,
        limits,
        stack: Vec::new(),
        items: Vec::new(),
        entries: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        problems: Vec::new(),
        document: from.document,
    };
    let mut documents = Vec::new();
    let mut doc_start = Pos { line: 1, column: 1 };
    loop {
        let (event, ev_span) = match next_event(&mut parser) {
            None => break,
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                let mut problem = scan_problem(src, &e, b.document);
                problem.span = problem.span.map(shift);
                b.problems.push(problem);
                break;
            }
        };
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                doc_start = shift(span(ev_span)).start;
                b.stack.clear();
                b.items.clear();
                b.entries.clear();
                b.anchors.clear();
                b.root = None;
            }
            Event::DocumentEnd => {
                documents.push(RawDocument {
                    index: b.document,
                    root: b.root.take(),
                    start: doc_start,
                });
                b.document += 1;
            }
            other => {
                if b.event(other, shift(span(ev_span))).is_err() {
                    break;
                }
            }
        }
    }
    Stream {
        documents,
        problems: b.problems,
    }
}

fn scan_problem(src: &str, e: &ScanError, document: usize) -> Problem {
    let mut at = pos(*e.marker());
    let info = e.info();
    let line = usize::try_from(at.line)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|n| src.split('\n').nth(n))
        .unwrap_or("");
    let (code, message, help) = if info.contains("tab") {
        // Point at the tab itself, not at what follows it.
        if let Some(i) = line.chars().take_while(|c| c.is_whitespace()).position(|c| c == '\t') {
            at.column = u32::try_from(i + 1).unwrap_or(at.column);
        }
        (
            Code::TabIndent,
            "a tab character is used for indentation".to_string(),
            Some("YAML allows only spaces for indentation; replace the tab with spaces".to_string()),
        )
    } else if info.contains("recursion limit") {
        (
            Code::TooDeep,
            "nesting is deeper than the parser allows (255 flow levels)".to_string(),
            Some("rule files nest a few levels deep; this file looks generated or hostile".to_string()),
        )
    } else if info.contains("unknown anchor") {
        let skip = usize::try_from(at.column).unwrap_or(1).saturating_sub(1);
        let alias: String = line
            .chars()
            .skip(skip)
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
            .collect();
        let message = if alias.starts_with('*') && alias.len() > 1 {
            format!("the alias `{alias}` names no anchor defined before it")
        } else {
            "this alias names no anchor defined before it".to_string()
        };
        let help = "define the anchor (`&name`) earlier in the same document; anchors do not cross `---`";
        (Code::YamlSyntax, message, Some(help.to_string()))
    } else {
        (Code::YamlSyntax, format!("invalid YAML: {info}"), None)
    };
    Problem {
        code,
        span: Some(Span::point(at)),
        message,
        help,
        document: Some(document),
        field: None,
    }
}

impl<'a> Builder<'a> {
    fn event(&mut self, event: Event<'a>, at: Span) -> Result<(), Fatal> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let mut plain = style == ScalarStyle::Plain;
                if let Some(tag) = tag {
                    match (tag.handle.as_str(), tag.suffix.as_str()) {
                        ("tag:yaml.org,2002:" | "!!", "str") => plain = false,
                        ("tag:yaml.org,2002:" | "!!", "int" | "float" | "bool" | "null") => {}
                        _ => self.unsupported_tag(&tag.handle, &tag.suffix, at),
                    }
                }
                let text: &'a str = match text {
                    Cow::Borrowed(t) => t,
                    // The parser's own copy is freed at once, so the allocator hands the same memory
                    // out for the next scalar.
                    Cow::Owned(t) => self.arena.alloc_str(&t),
                };
                let node = Node {
                    value: Value::Scalar(Scalar { text, plain }),
                    span: at,
                };
                self.complete(node, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", at);
                self.open(
                    Frame::Seq {
                        first: self.items.len(),
                        start: at.start,
                        anchor,
                    },
                    at,
                )
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", at);
                self.open(
                    Frame::Map {
                        first: self.entries.len(),
                        key: None,
                        merges: Vec::new(),
                        start: at.start,
                        anchor,
                        skip_value: false,
                    },
                    at,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return Ok(()) };
                match frame {
                    Frame::Seq { first, start, anchor } => {
                        let items: &'a [Node<'a>] =
                            self.arena.alloc_slice_copy(self.items.get(first..).unwrap_or_default());
                        self.items.truncate(first);
                        let end = collection_end(at, items.last().map(|n| n.span.end), start);
                        let node = Node {
                            value: Value::Seq(items),
                            span: Span { start, end },
                        };
                        self.complete(node, anchor)
                    }
                    Frame::Map {
                        first,
                        merges,
                        start,
                        anchor,
                        ..
                    } => {
                        let own = self.entries.get(first..).unwrap_or_default();
                        let end = collection_end(at, own.last().map(|e| e.value.span.end), start);
                        merge_into(&mut self.entries, first, &merges);
                        let entries: &'a [Entry<'a>] = self
                            .arena
                            .alloc_slice_copy(self.entries.get(first..).unwrap_or_default());
                        self.entries.truncate(first);
                        let node = Node {
                            value: Value::Map(entries),
                            span: Span { start, end },
                        };
                        self.complete(node, anchor)
                    }
                }
            }
            Event::Alias(id) => {
                let Some((node, count)) = self.anchors.get(&id) else {
                    self.problems.push(Problem::at(
                        Code::AliasLimit,
                        at,
                        "this alias names no anchor defined before it",
                        self.document,
                    ));
                    return Err(Fatal);
                };
                self.alias_nodes += count;
                if self.alias_nodes > self.limits.max_alias_nodes {
                    self.problems.push(
                        Problem::at(
                            Code::AliasLimit,
                            at,
                            format!(
                                "aliases expand to more than {} nodes in this file",
                                self.limits.max_alias_nodes
                            ),
                            self.document,
                        )
                        .with_help(
                            "rule files do not need deep alias chains; this looks like a \"billion laughs\" document",
                        ),
                    );
                    return Err(Fatal);
                }
                let mut copy = *node;
                copy.span = at;
                self.complete(copy, 0)
            }
            _ => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame<'a>, at: Span) -> Result<(), Fatal> {
        if self.stack.len() >= self.limits.max_depth {
            self.problems.push(Problem::at(
                Code::TooDeep,
                at,
                format!("nesting is deeper than {} levels", self.limits.max_depth),
                self.document,
            ));
            return Err(Fatal);
        }
        self.stack.push(frame);
        Ok(())
    }

    fn unsupported_tag(&mut self, handle: &str, suffix: &str, at: Span) {
        self.problems.push(
            Problem::at(
                Code::UnsupportedYaml,
                at,
                format!("the tag `{handle}{suffix}` is not supported in rule files"),
                self.document,
            )
            .with_help("remove the tag; values are read as plain YAML"),
        );
    }

    fn check_collection_tag(&mut self, tag: Option<&saphyr_parser::Tag>, expected: &str, at: Span) {
        if let Some(tag) = tag {
            let core = matches!(tag.handle.as_str(), "tag:yaml.org,2002:" | "!!");
            if !(core && tag.suffix == expected) {
                self.unsupported_tag(&tag.handle, &tag.suffix, at);
            }
        }
    }

    /// The field path (`spec.route[0].weight`) of `key` in the innermost open mapping, for problems
    /// found while building. The mapping's own pending key has been taken already, so every open
    /// mapping below it contributes its pending key and every open list its next index.
    fn field_path(&self, key: &str) -> String {
        let mut segs = Vec::with_capacity(self.stack.len() + 1);
        for (i, frame) in self.stack.iter().enumerate() {
            match frame {
                Frame::Seq { first, .. } => {
                    // This sequence's items end where the next open sequence's begin.
                    let end = self.stack[i + 1..]
                        .iter()
                        .find_map(|f| match f {
                            Frame::Seq { first, .. } => Some(*first),
                            Frame::Map { .. } => None,
                        })
                        .unwrap_or(self.items.len());
                    segs.push(Seg::Index(end - first));
                }
                Frame::Map { key: Some((k, _)), .. } => segs.push(Seg::Key(k)),
                Frame::Map { key: None, .. } => {}
            }
        }
        segs.push(Seg::Key(key));
        crate::load::path::format(&segs)
    }

    /// Places a finished node in its parent (or as the document's root).
    fn complete(&mut self, node: Node<'a>, anchor: usize) -> Result<(), Fatal> {
        if anchor != 0 {
            let count = count_nodes(&node);
            self.anchors.insert(anchor, (node, count));
        }
        let document = self.document;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { .. }) => self.items.push(node),
            Some(Frame::Map {
                first,
                key,
                merges,
                skip_value,
                ..
            }) => match key.take() {
                None => match node.value {
                    Value::Scalar(s) => *key = Some((s.text, node.span)),
                    _ => {
                        self.problems.push(Problem::at(
                            Code::UnsupportedYaml,
                            node.span,
                            "a mapping key must be a string, not a list or mapping",
                            document,
                        ));
                        *key = Some(("", node.span));
                        *skip_value = true;
                    }
                },
                Some((k, key_span)) => {
                    if std::mem::take(skip_value) {
                        return Ok(());
                    }
                    if k == "<<" {
                        merges.push(node);
                        return Ok(());
                    }
                    if let Some(earlier) = self
                        .entries
                        .get(*first..)
                        .unwrap_or_default()
                        .iter()
                        .find(|e| e.key == k)
                    {
                        let first_line = earlier.key_span.start.line;
                        let problem =
                            Problem::at(Code::DuplicateKey, key_span, format!("duplicate key `{k}`"), document).with_help(format!(
                                "`{k}` is already set on line {first_line}; YAML parsers disagree on which value wins, so remove one"
                            ));
                        let field = self.field_path(k);
                        self.problems.push(problem.with_field(field));
                        return Ok(());
                    }
                    self.entries.push(Entry {
                        key: k,
                        key_span,
                        value: node,
                    });
                }
            },
        }
        Ok(())
    }
}

/// Applies `<<` merge keys to the mapping whose entries are `entries[first..]`: entries of the merged
/// mappings that the mapping does not set itself.
fn merge_into<'a>(entries: &mut Vec<Entry<'a>>, first: usize, merges: &[Node<'a>]) {
    for merge in merges {
        let sources: &[Node<'a>] = match &merge.value {
            Value::Map(_) => std::slice::from_ref(merge),
            Value::Seq(items) => items,
            Value::Scalar(_) => &[],
        };
        for source in sources {
            let Value::Map(source) = source.value else { continue };
            for entry in source {
                if !entries
                    .get(first..)
                    .unwrap_or_default()
                    .iter()
                    .any(|e| e.key == entry.key)
                {
                    entries.push(*entry);
                }
            }
        }
    }
}

fn count_nodes(node: &Node<'_>) -> usize {
    match &node.value {
        Value::Scalar(_) => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|e| 1 + count_nodes(&e.value)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use bumpalo::Bump;

    use super::{Limits, parse_stream};
    use crate::load::node::{Node, Value};

    fn keys<'a>(node: &Node<'a>) -> Vec<&'a str> {
        node.as_map().unwrap_or_default().iter().map(|e| e.key).collect()
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_set_in_order() {
        let arena = Bump::new();
        let src = "base: &b {a: 1, b: 2}\nother: &o {b: 3, c: 4}\nm:\n  <<: [*b, *o]\n  a: 9\n";
        let stream = parse_stream(src, &arena, Limits::default());
        assert!(stream.problems.is_empty(), "{:?}", stream.problems);
        let root = stream.documents[0].root.as_ref().map(|r| r.get("m"));
        let m = &root.flatten().map(|e| e.value).expect("m is there");
        assert_eq!(keys(m), ["a", "b", "c"]);
        let text = |k: &str| m.get(k).and_then(|e| e.value.as_scalar()).map(|s| s.text);
        assert_eq!(text("a"), Some("9"), "the mapping's own value wins");
        assert_eq!(text("b"), Some("2"), "the first merged mapping wins over the second");
        assert_eq!(text("c"), Some("4"));
    }

    #[test]
    fn an_empty_mapping_ends_where_it_starts_not_at_its_parents_last_entry() {
        let arena = Bump::new();
        let src = "a: 1\nb: {}\nc:\n  d: {}\n";
        let stream = parse_stream(src, &arena, Limits::default());
        let root = stream.documents[0].root.as_ref().expect("a root");
        let b = root.get("b").expect("b").value;
        assert!(matches!(b.value, Value::Map(m) if m.is_empty()));
        assert_eq!((b.span.start.line, b.span.end.line), (2, 2));
        let d = root.get("c").and_then(|c| c.value.get("d")).expect("c.d").value;
        assert_eq!((d.span.start.line, d.span.start.column), (4, 6));
        assert_eq!(d.span.end.line, 4);
    }

    #[test]
    fn aliases_copy_the_anchored_node_and_take_the_alias_position() {
        let arena = Bump::new();
        let src = "x: &l [1, 2]\ny: *l\n";
        let stream = parse_stream(src, &arena, Limits::default());
        let root = stream.documents[0].root.as_ref().expect("a root");
        let y = root.get("y").expect("y").value;
        let Value::Seq(items) = y.value else {
            panic!("y is a list: {y:?}")
        };
        assert_eq!(
            items
                .iter()
                .filter_map(|n| n.as_scalar())
                .map(|s| s.text)
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!((y.span.start.line, y.span.start.column), (2, 4));
    }

    #[test]
    fn text_the_parser_had_to_rewrite_is_kept_in_the_arena() {
        let arena = Bump::new();
        let src = "folded: >\n  one\n  two\nquoted: \"tab\\there\"\nplain: word\n";
        let stream = parse_stream(src, &arena, Limits::default());
        let root = stream.documents[0].root.as_ref().expect("a root");
        let text = |k: &str| root.get(k).and_then(|e| e.value.as_scalar()).map(|s| s.text);
        assert_eq!(text("folded"), Some("one two\n"));
        assert_eq!(text("quoted"), Some("tab\there"));
        assert_eq!(text("plain"), Some("word"));
        assert!(arena.allocated_bytes() > 0);
    }
}
