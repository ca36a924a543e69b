//! A serde `Deserializer` over the positioned tree that reports every shape problem it meets, located,
//! and keeps going.
//!
//! Unknown fields are reported (with a suggestion from the type's own field list, which serde hands to
//! `deserialize_struct`) and skipped; a value of the wrong type is reported and replaced by an empty
//! one. So one pass over a document finds all its shape problems, not just the first. The caller treats
//! a document with any shape problem as invalid and does not run semantic checks on the stand-in values.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::Problem;
use super::node::{Entry, Node, Resolved, Scalar, Value};
use super::path::{self, Seg};
use crate::diag::{Code, Span};
use crate::suggest::did_you_mean;

/// The error serde sees. Problems are recorded in the context as they are found; this only carries an
/// unlocated message up to the nearest node that can place it.
#[derive(Debug)]
pub struct Error {
    message: Option<String>,
}

impl Error {
    fn reported() -> Error {
        Error { message: None }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("reported"))
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: Some(msg.to_string()),
        }
    }
}

/// The state of one document's deserialization: where we are, and what went wrong so far.
pub struct Ctx<'n> {
    path: RefCell<Vec<Seg<'n>>>,
    problems: RefCell<Vec<Problem>>,
    document: usize,
}

impl<'n> Ctx<'n> {
    pub fn new(base: &[Seg<'n>], document: usize) -> Self {
        Ctx {
            path: RefCell::new({
                // Room for the nesting of a rule without growing the vector.
                let mut path = Vec::with_capacity(base.len() + 8);
                path.extend_from_slice(base);
                path
            }),
            problems: RefCell::new(Vec::new()),
            document,
        }
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems.into_inner()
    }

    fn report(&self, code: Code, span: Span, message: String, help: Option<String>, extra: Option<Seg<'n>>) {
        let mut field = self.path.borrow().clone();
        field.extend(extra);
        self.problems.borrow_mut().push(Problem {
            code,
            span: Some(span),
            message,
            help,
            document: Some(self.document),
            field: Some(path::format(&field)),
        });
    }

    fn with<T>(&self, seg: Seg<'n>, f: impl FnOnce() -> T) -> T {
        self.path.borrow_mut().push(seg);
        let out = f();
        self.path.borrow_mut().pop();
        out
    }
}

/// Deserializes `node` into `T`, recording problems in `ctx`. Returns None when a problem could not be
/// recovered from (it has been recorded).
pub fn from_node<'n, T: de::DeserializeOwned>(node: &'n Node<'n>, ctx: &Ctx<'n>) -> Option<T> {
    T::deserialize(NodeDe { node, ctx }).ok()
}

#[derive(Clone, Copy)]
struct NodeDe<'c, 'n> {
    node: &'n Node<'n>,
    ctx: &'c Ctx<'n>,
}

impl<'c, 'n> NodeDe<'c, 'n> {
    /// Places an unlocated error from a visitor at this node.
    fn locate<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| {
            if let Some(message) = e.message {
                self.ctx.report(Code::WrongType, self.node.span, message, None, None);
            }
            Error::reported()
        })
    }

    fn wrong_type(&self, expected: &str, help: Option<String>) {
        let message = format!("expected {expected}, found {}", self.node.describe());
        self.ctx.report(Code::WrongType, self.node.span, message, help, None);
    }

    fn scalar(&self) -> Option<(&'n Scalar<'n>, Resolved)> {
        match &self.node.value {
            Value::Scalar(s) => Some((s, s.resolve())),
            _ => None,
        }
    }

    fn quote_help(&self) -> Option<String> {
        match self.scalar() {
            Some((s, Resolved::Bool(_) | Resolved::Int(_) | Resolved::Float(_))) => {
                Some(format!("quote it to make it a string: \"{}\"", s.text))
            }
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self.scalar() {
            Some((_, Resolved::Int(i))) => match i64::try_from(i) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.ctx.report(
                        Code::OutOfRange,
                        self.node.span,
                        format!("the number {i} is too large"),
                        None,
                        None,
                    );
                    Some(0)
                }
            },
            Some((s, Resolved::Str)) if s.text.trim().parse::<i64>().is_ok() => {
                self.wrong_type("an integer", Some(format!("remove the quotes: {}", s.text.trim())));
                None
            }
            Some((s, Resolved::Float(_))) => {
                self.wrong_type(
                    "a whole number",
                    Some(format!("{} has a fraction; write a whole number", s.text)),
                );
                None
            }
            _ => {
                self.wrong_type("an integer", None);
                None
            }
        }
    }
}

macro_rules! forward_int {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let v = self.int().unwrap_or(0);
            self.locate(visitor.visit_i64(v))
        }
    )*};
}

impl<'de, 'c, 'n> de::Deserializer<'de> for NodeDe<'c, 'n> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => match i64::try_from(i) {
                    Ok(v) => visitor.visit_i64(v),
                    Err(_) => visitor.visit_str(s.text),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_str(s.text),
            },
            Value::Seq(items) => visitor.visit_seq(Seq {
                items,
                index: 0,
                ctx: self.ctx,
            }),
            Value::Map(entries) => visitor.visit_map(Map::new(entries, None, self.ctx)),
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = match self.scalar() {
            Some((_, Resolved::Bool(b))) => b,
            Some((s, Resolved::Str))
                if matches!(s.text, "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n") =>
            {
                let help = if s.plain {
                    "YAML 1.2 reads yes/no/on/off as strings; write true or false".to_string()
                } else {
                    "remove the quotes".to_string()
                };
                self.wrong_type("true or false", Some(help));
                false
            }
            _ => {
                self.wrong_type("true or false", None);
                false
            }
        };
        self.locate(visitor.visit_bool(v))
    }

    forward_int!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = match self.scalar() {
            Some((_, Resolved::Int(i))) => i as f64,
            Some((_, Resolved::Float(f))) if f.is_finite() => f,
            Some((s, Resolved::Str)) if s.text.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                self.wrong_type("a number", Some(format!("remove the quotes: {}", s.text.trim())));
                0.0
            }
            _ => {
                self.wrong_type("a number", None);
                0.0
            }
        };
        self.locate(visitor.visit_f64(v))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text: &str = match self.scalar() {
            Some((s, Resolved::Str)) => s.text,
            _ => {
                self.wrong_type("a string", self.quote_help());
                ""
            }
        };
        self.locate(visitor.visit_str(text))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            self.locate(visitor.visit_none())
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.locate(visitor.visit_unit())
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.locate(visitor.visit_unit())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == "Duration" {
            let text: &str = match self.scalar() {
                Some((s, Resolved::Str)) => s.text,
                Some((s, Resolved::Int(_) | Resolved::Float(_))) => {
                    let help = format!("add a unit: {}s for seconds, {}ms for milliseconds", s.text, s.text);
                    self.wrong_type("a duration such as 10s or 500ms", Some(help));
                    "1s"
                }
                _ => {
                    self.wrong_type("a duration such as 10s or 500ms", None);
                    "1s"
                }
            };
            return self.locate(visitor.visit_str(text));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: &[Node<'n>] = match &self.node.value {
            Value::Seq(items) => items,
            _ if self.node.is_null() => &[],
            _ => {
                let help = self.node.as_map().map(|_| "start each list item with `- `".to_string());
                self.wrong_type("a list", help);
                &[]
            }
        };
        self.locate(visitor.visit_seq(Seq {
            items,
            index: 0,
            ctx: self.ctx,
        }))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let entries = self.entries("a mapping");
        self.locate(visitor.visit_map(Map::new(entries, None, self.ctx)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let entries = self.entries("a mapping of fields");
        self.locate(visitor.visit_map(Map::new(entries, Some(fields), self.ctx)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let chosen: &str = match self.scalar() {
            Some((s, Resolved::Str)) if variants.contains(&s.text) => s.text,
            _ => {
                let help = match self.scalar() {
                    Some((s, _)) => {
                        did_you_mean(s.text, variants.iter().copied()).map(|v| format!("did you mean `{v}`?"))
                    }
                    None => None,
                }
                .or_else(|| Some(format!("one of: {}", variants.join(", "))));
                self.wrong_type(&format!("one of {}", variants.join(", ")), help);
                variants.first().copied().unwrap_or_default()
            }
        };
        self.locate(visitor.visit_enum(chosen.into_deserializer()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

impl<'n> NodeDe<'_, 'n> {
    fn entries(&self, expected: &str) -> &'n [Entry<'n>] {
        match &self.node.value {
            Value::Map(entries) => entries,
            _ if self.node.is_null() => &[],
            _ => {
                let help = match &self.node.value {
                    Value::Seq(_) => {
                        Some("remove the `- ` in front: this field takes a mapping, not a list".to_string())
                    }
                    _ => None,
                };
                self.wrong_type(expected, help);
                &[]
            }
        }
    }
}

struct Seq<'c, 'n> {
    items: &'n [Node<'n>],
    index: usize,
    ctx: &'c Ctx<'n>,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    // Out of line, like `Map::next_value_seed`.
    #[inline(never)]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let i = self.index;
        self.index += 1;
        self.ctx.with(Seg::Index(i), || {
            seed.deserialize(NodeDe { node, ctx: self.ctx }).map(Some)
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct Map<'c, 'n> {
    entries: &'n [Entry<'n>],
    index: usize,
    /// The struct's fields, when deserializing a struct: other keys are reported and skipped.
    fields: Option<&'static [&'static str]>,
    ctx: &'c Ctx<'n>,
}

impl<'c, 'n> Map<'c, 'n> {
    fn new(entries: &'n [Entry<'n>], fields: Option<&'static [&'static str]>, ctx: &'c Ctx<'n>) -> Self {
        Map {
            entries,
            index: 0,
            fields,
            ctx,
        }
    }
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        while let Some(entry) = self.entries.get(self.index) {
            if let Some(fields) = self.fields {
                if !fields.contains(&entry.key) {
                    self.index += 1;
                    let help = match did_you_mean(entry.key, fields.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the fields here are: {}", fields.join(", ")),
                    };
                    self.ctx.report(
                        Code::UnknownField,
                        entry.key_span,
                        format!("unknown field `{}`", entry.key),
                        Some(help),
                        Some(Seg::Key(entry.key)),
                    );
                    continue;
                }
            }
            let key: de::value::StrDeserializer<'_, Error> = entry.key.into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    /// Kept out of line: there is one instance per field type, which the visitors of every struct
    /// holding that type share; inlined, each field's whole deserialization was copied into its
    /// struct's visitor (70 kB of code for RouteRule's), more than the instruction cache holds.
    #[inline(never)]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some(entry) = self.entries.get(self.index) else {
            return Err(de::Error::custom("value requested past the end of a mapping"));
        };
        self.index += 1;
        self.ctx.with(Seg::Key(entry.key), || {
            seed.deserialize(NodeDe {
                node: &entry.value,
                ctx: self.ctx,
            })
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}
