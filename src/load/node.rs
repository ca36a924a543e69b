//! The positioned document tree the loader builds: every node knows where it stands in its file.
//!
//! Scalars keep their text and whether they were plain (unquoted); their type (null, bool, number,
//! string) is resolved only when a field asks for one, by YAML 1.2's core schema. That keeps the text a
//! user wrote for messages ("found the number 2; quote it") and avoids parsing numbers nobody reads.

use std::borrow::Cow;

use crate::diag::Span;

/// A node of a document. The tree lives in an arena (see `load::yaml::parse_stream`): children and
/// text are borrowed slices, so a node is a plain copyable value and a whole file's tree is freed at
/// once when its arena is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Scalar(Scalar<'a>),
    Seq(&'a [Node<'a>]),
    Map(&'a [Entry<'a>]),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalar<'a> {
    pub text: &'a str,
    /// Unquoted, so subject to type resolution (`true`, `3`, `null`).
    pub plain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    /// The key as text (keys are always scalars) and its position.
    pub key: &'a str,
    pub key_span: Span,
    pub value: Node<'a>,
}

/// What a plain scalar resolves to under YAML 1.2's core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

impl Scalar<'_> {
    pub fn resolve(&self) -> Resolved {
        if !self.plain {
            return Resolved::Str;
        }
        resolve_plain(self.text)
    }
}

/// Resolves a plain scalar's text (YAML 1.2 core schema).
pub fn resolve_plain(t: &str) -> Resolved {
    // Most scalars in rule files are names: one look at the first byte settles them.
    match t.as_bytes().first() {
        None => return Resolved::Null,
        Some(b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'.' | b'+' | b'-' | b'0'..=b'9') => {}
        Some(_) => return Resolved::Str,
    }
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let first = t.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Resolved::Str;
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16).map_or(Resolved::Str, Resolved::Int);
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return i128::from_str_radix(oct, 8).map_or(Resolved::Str, Resolved::Int);
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i128>().map_or(Resolved::Str, Resolved::Int);
    }
    // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && !(a.is_empty() && b.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    if mantissa_ok && exponent_ok && !(mantissa.starts_with('.') && mantissa.len() == 1) {
        return t.parse::<f64>().map_or(Resolved::Str, Resolved::Float);
    }
    Resolved::Str
}

impl<'a> Node<'a> {
    pub fn as_map(&self) -> Option<&'a [Entry<'a>]> {
        match self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar<'a>> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&'a Entry<'a>> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// A plain `null`, `~` or empty value.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && matches!(resolve_plain(s.text), Resolved::Null))
    }

    /// The scalar's text when it is a string (quoted, or plain and not null/bool/number).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) if s.resolve() == Resolved::Str => Some(s.text),
            _ => None,
        }
    }

    /// A short description of the node's type, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => "null".to_string(),
                Resolved::Bool(b) => format!("the boolean {b}"),
                Resolved::Int(_) | Resolved::Float(_) => format!("the number {}", s.text),
                Resolved::Str => format!("the string {:?}", truncate(s.text, 40)),
            },
        }
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::{Resolved, resolve_plain};

    #[test]
    fn core_schema_resolution() {
        assert_eq!(resolve_plain(""), Resolved::Null);
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("True"), Resolved::Bool(true));
        assert_eq!(resolve_plain("yes"), Resolved::Str);
        assert_eq!(resolve_plain("42"), Resolved::Int(42));
        assert_eq!(resolve_plain("-7"), Resolved::Int(-7));
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("0o17"), Resolved::Int(15));
        assert_eq!(resolve_plain("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_plain("."), Resolved::Str);
        assert_eq!(resolve_plain("1.5s"), Resolved::Str);
        assert_eq!(resolve_plain("10.0.0.5/32"), Resolved::Str);
        assert_eq!(resolve_plain("v1"), Resolved::Str);
        assert_eq!(resolve_plain("-"), Resolved::Str);
    }
}
