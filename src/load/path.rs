//! Field paths (`spec.route[1].weight`): how diagnostics name a field, and how they find its position.

use std::fmt::Write;

use super::node::{Node, Value};
use crate::diag::Span;

/// One step into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A field or map key.
    Key(&'a str),
    /// A list element.
    Index(usize),
}

/// Formats a path the way users read it: `spec.route[1].weight`, `labels["app.kubernetes.io/name"]`.
pub fn format(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Seg::Key(k) => {
                let plain = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    let _ = write!(out, "[{k:?}]");
                }
            }
        }
    }
    out
}

/// Which part of an entry a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key (`weight:`), for fields that should not be there.
    Key,
    /// The value, for values that are wrong.
    Value,
}

/// Finds the position of `path` in `root`. When the path does not exist (a missing field), the deepest
/// part that does is returned, pointing at its key: "spec.destination is required" points at `spec:`.
/// How many leading segments of `path` exist under `root`.
pub fn existing_depth(root: &Node<'_>, path: &[Seg<'_>]) -> usize {
    let mut node = root;
    for (depth, seg) in path.iter().enumerate() {
        let next = match (seg, &node.value) {
            (Seg::Key(k), Value::Map(entries)) => entries.iter().find(|e| e.key == *k).map(|e| &e.value),
            (Seg::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return depth,
        }
    }
    path.len()
}

pub fn locate(root: &Node<'_>, path: &[Seg<'_>], target: Target) -> Span {
    let mut node = root;
    let mut key_span: Option<Span> = None;
    for (depth, seg) in path.iter().enumerate() {
        let next = match (seg, &node.value) {
            (Seg::Key(k), Value::Map(entries)) => entries
                .iter()
                .find(|e| e.key == *k)
                .map(|e| (Some(e.key_span), &e.value)),
            (Seg::Index(i), Value::Seq(items)) => items.get(*i).map(|n| (None, n)),
            _ => None,
        };
        match next {
            Some((k, n)) => {
                key_span = k.or(Some(n.span));
                node = n;
            }
            None => {
                // Missing: point at the parent's key (or the parent itself at the top).
                let _ = depth;
                return key_span.unwrap_or(Span::point(node.span.start));
            }
        }
    }
    match target {
        Target::Key => key_span.unwrap_or(node.span),
        Target::Value => node.span,
    }
}
