//! The fast path of `meshctl validate`: a file that is clean (no error and no warning) is proved
//! clean straight from the parser's events, with no document tree, no typed objects and no
//! positions kept beyond the names that the cross-file "defined twice" warning needs.
//!
//! It answers only "clean" or "unsure". Anything it does not prove clean, it leaves to the full path
//! (`check_file_in`), which builds the tree, types every object and places every diagnostic: a value
//! that breaks a rule, any warning, any YAML feature beyond plain mappings, lists and scalars (anchors,
//! aliases, merge keys, tags, complex keys), a `List` wrapper, a null where a value is expected, a
//! document whose `apiVersion` and `kind` do not come before its other fields. The full path then
//! starts at the document the fast path was unsure of (the documents before it were proved clean),
//! so unsure costs the walk of that document up to where it stopped. The answer is the same either
//! way, which the differential tests at the end of this file check against the full path.
//!
//! The predicates are the full path's own (`common`, `parse_egress_host`, `parse_duration`,
//! `regex_problem`, `Protocol::parse`, `LbPolicy::parse`); what is written again here is which field
//! holds which kind of value, and the checks that span several fields (weights that add up to 100, a
//! redirect with nothing to forward, one of `fixedDelay` or `exponentialDelay`, protocols that fit the
//! destination), each conservative: where the full path would need a closer look (a zero weight,
//! `match.sourceLabels`, an egress CIDR of length 0), the answer is unsure.
//!
//! A check added to the full path needs its counterpart here, or an unsure where it applies. The
//! differential tests catch a missing one only when their inputs reach it, so a new check should come
//! with a near miss in the tests' value pools (`VALUES`, and the random files' pools).

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use saphyr_parser::{Event, Parser, ScalarStyle, StrInput};

use super::common::{is_dns_name, is_dns1123_label, is_header_name, label_key_problem, label_value_ok, parse_subnet};
use super::egress_rule::{EgressHost, parse_egress_host};
use super::route_rule::regex_problem;
use super::{Definition, FileReport, LineCursor};
use crate::diag::Span;
use crate::load::node::{Resolved, resolve_plain};
use crate::load::{Counts, Identity, LoadOptions, identify, is_list_kind, yaml};
use crate::model::destination_policy::LbPolicy;
use crate::model::duration::parse_duration;
use crate::model::meta::DEFAULT_NAMESPACE;
use crate::model::{Kind, Metadata, Protocol, StringMatch};

/// The fast path cannot prove the file clean: the full path decides.
#[derive(Debug)]
pub(super) struct Unsure;

type R<T = ()> = Result<T, Unsure>;

fn ensure(ok: bool) -> R {
    if ok { Ok(()) } else { Err(Unsure) }
}

/// Where the fast path stopped, for the full path to go on from: the first document it could not
/// prove clean, and the counts and definitions of the documents before it.
pub(super) struct Unfinished {
    pub from: yaml::Resume,
    pub report: FileReport,
}

/// Proves `src` clean, or says where the full path should take over. `src` is decoded and has had
/// its lone carriage returns turned into line feeds, as the full path has it.
pub(super) fn clean_file(file: &Arc<str>, src: &str, opts: &LoadOptions) -> Result<FileReport, Unfinished> {
    let mut w = Walk {
        parser: Parser::new_from_str(src),
        ahead: None,
        depth: 0,
        last: saphyr_parser::Span::default(),
        // The walk recurses: its depth stays small whatever a caller sets (deeper is left to the full
        // path, which keeps its own stack).
        max_depth: opts.limits.max_depth.min(64),
    };
    let mut out = Clean {
        file,
        opts,
        names: LineCursor::new(src),
        report: FileReport::default(),
    };
    let from_the_start = || Unfinished {
        from: yaml::Resume::default(),
        report: FileReport::default(),
    };
    let mut index = 0;
    loop {
        match w.next() {
            Ok(Tok::StreamEnd) => return Ok(out.report),
            Ok(Tok::DocStart { line }) => {
                let (counts, definitions) = (out.report.counts, out.report.definitions.len());
                if out.document(&mut w, index).is_err() {
                    // The documents before this one are clean, and the full path can start at this
                    // one's line without reading them again, unless a directive (which belongs to
                    // the document after it) could be left behind.
                    if index == 0 || src.starts_with('%') || src.contains("\n%") {
                        return Err(from_the_start());
                    }
                    out.report.counts = counts;
                    out.report.definitions.truncate(definitions);
                    return Err(Unfinished {
                        from: yaml::Resume { document: index, line },
                        report: out.report,
                    });
                }
                index += 1;
            }
            Ok(_) | Err(Unsure) => return Err(from_the_start()),
        }
    }
}

/// An event, as far as the fast path tells events apart.
enum Tok<'a> {
    /// A scalar (its place is `Walk::last`).
    Scalar {
        text: Cow<'a, str>,
        plain: bool,
    },
    Map,
    Seq,
    /// The end of a mapping or a list.
    End,
    /// The start of a document, and its line.
    DocStart {
        line: u32,
    },
    DocEnd,
    StreamEnd,
}

struct Walk<'a> {
    parser: Parser<'a, StrInput<'a>>,
    /// A token read ahead (to see whether a list ends, or what a value is).
    ahead: Option<Tok<'a>>,
    /// Open collections, bounded as the full path bounds them.
    depth: usize,
    /// Where the last scalar read is.
    last: saphyr_parser::Span,
    max_depth: usize,
}

impl<'a> Walk<'a> {
    fn next(&mut self) -> R<Tok<'a>> {
        if let Some(t) = self.ahead.take() {
            return Ok(t);
        }
        loop {
            let (event, span) = match yaml::next_event(&mut self.parser) {
                None => return Ok(Tok::StreamEnd),
                Some(Ok(pair)) => pair,
                Some(Err(_)) => return Err(Unsure),
            };
            return Ok(match event {
                Event::StreamStart | Event::Nothing => continue,
                Event::StreamEnd => Tok::StreamEnd,
                Event::DocumentStart(_) => Tok::DocStart {
                    line: yaml::pos(span.start).line,
                },
                Event::DocumentEnd => Tok::DocEnd,
                Event::Scalar(text, style, anchor, tag) => {
                    ensure(anchor == 0 && tag.is_none())?;
                    self.last = span;
                    Tok::Scalar {
                        text,
                        plain: style == ScalarStyle::Plain,
                    }
                }
                Event::MappingStart(anchor, tag) => {
                    self.open(anchor, tag.is_some())?;
                    Tok::Map
                }
                Event::SequenceStart(anchor, tag) => {
                    self.open(anchor, tag.is_some())?;
                    Tok::Seq
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.depth = self.depth.saturating_sub(1);
                    Tok::End
                }
                Event::Alias(_) => return Err(Unsure),
            });
        }
    }

    fn open(&mut self, anchor: usize, tagged: bool) -> R {
        ensure(anchor == 0 && !tagged && self.depth < self.max_depth)?;
        self.depth += 1;
        Ok(())
    }

    /// Whether the next token ends the open collection (consumed if so).
    fn at_end(&mut self) -> R<bool> {
        let t = self.next()?;
        if matches!(t, Tok::End) {
            return Ok(true);
        }
        self.ahead = Some(t);
        Ok(false)
    }

    fn scalar(&mut self) -> R<(Cow<'a, str>, Resolved)> {
        match self.next()? {
            Tok::Scalar { text, plain } => {
                let resolved = if plain { resolve_plain(&text) } else { Resolved::Str };
                Ok((text, resolved))
            }
            _ => Err(Unsure),
        }
    }

    fn string(&mut self) -> R<Cow<'a, str>> {
        let (text, resolved) = self.scalar()?;
        ensure(resolved == Resolved::Str)?;
        Ok(text)
    }

    fn int(&mut self) -> R<i64> {
        match self.scalar()?.1 {
            Resolved::Int(i) => i64::try_from(i).map_err(|_| Unsure),
            _ => Err(Unsure),
        }
    }

    fn number(&mut self) -> R<f64> {
        match self.scalar()?.1 {
            #[allow(clippy::cast_precision_loss)] // as the full path reads it
            Resolved::Int(i) => Ok(i as f64),
            Resolved::Float(f) if f.is_finite() => Ok(f),
            _ => Err(Unsure),
        }
    }

    fn boolean(&mut self) -> R {
        ensure(matches!(self.scalar()?.1, Resolved::Bool(_)))
    }

    /// A duration Istio accepts: it parses, and it is at least 1 ms.
    fn duration(&mut self) -> R {
        let text = self.string()?;
        ensure(parse_duration(&text).is_ok_and(|d| d >= StdDuration::from_millis(1)))
    }

    fn header_name(&mut self) -> R {
        ensure(is_header_name(&self.string()?))
    }

    fn percent(&mut self) -> R {
        ensure((0.0..=100.0).contains(&self.number()?))
    }

    /// A count of Istio's int32 fields: 0 or more.
    fn count(&mut self) -> R {
        ensure((0..=i64::from(i32::MAX)).contains(&self.int()?))
    }

    /// A mapping whose keys are read by `entry`, which reads the value too.
    fn map(&mut self, mut entry: impl FnMut(&mut Self, &str) -> R) -> R {
        ensure(matches!(self.next()?, Tok::Map))?;
        loop {
            match self.next()? {
                Tok::End => return Ok(()),
                Tok::Scalar { text, .. } => {
                    // A merge key. No field, label or header is named `<<` either, so every reader of
                    // keys would refuse it too; this says why in one place.
                    ensure(text != "<<")?;
                    entry(self, &text)?;
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// A mapping of a struct whose fields are `names`: another key, or a key given twice, is unsure.
    fn fields(&mut self, names: &[&str], mut field: impl FnMut(&mut Self, &str) -> R) -> R {
        let mut seen: u64 = 0;
        self.map(|w, key| {
            let i = names.iter().position(|n| *n == key).ok_or(Unsure)?;
            let bit = 1u64.checked_shl(u32::try_from(i).map_err(|_| Unsure)?).ok_or(Unsure)?;
            ensure(seen & bit == 0)?;
            seen |= bit;
            field(w, key)
        })
    }

    /// A mapping of strings to strings (labels, annotations, headers). Returns its size.
    fn string_map(&mut self, mut entry: impl FnMut(&str, &str) -> R) -> R<usize> {
        let mut keys = Keys::default();
        self.map(|w, key| {
            keys.insert(key)?;
            let value = w.string()?;
            entry(key, &value)
        })?;
        Ok(keys.len)
    }

    fn list(&mut self, mut item: impl FnMut(&mut Self) -> R) -> R<usize> {
        ensure(matches!(self.next()?, Tok::Seq))?;
        let mut n = 0;
        while !self.at_end()? {
            item(self)?;
            n += 1;
        }
        Ok(n)
    }

    /// Skips a value of a document that is not checked, still refusing what the full path reports
    /// about any YAML (a duplicate key, a merge key, a complex key, nesting too deep).
    fn skip(&mut self) -> R {
        let t = self.next()?;
        match t {
            Tok::Scalar { .. } => Ok(()),
            Tok::Map => {
                self.ahead = Some(t);
                let mut keys = Keys::default();
                self.map(|w, key| {
                    keys.insert(key)?;
                    w.skip()
                })
            }
            Tok::Seq => {
                self.ahead = Some(t);
                self.list(Walk::skip).map(drop)
            }
            _ => Err(Unsure),
        }
    }
}

/// The keys of one free-form mapping, by hash: two equal hashes are taken for a duplicate key (unsure;
/// the full path tells), and so is a mapping of more keys than it holds.
#[derive(Default)]
struct Keys {
    hashes: [u64; 32],
    len: usize,
}

impl Keys {
    fn insert(&mut self, key: &str) -> R {
        let h = foldhash::fast::FixedState::with_seed(0).hash_one(key);
        let seen = self.hashes.get(..self.len).ok_or(Unsure)?;
        ensure(!seen.contains(&h))?;
        *self.hashes.get_mut(self.len).ok_or(Unsure)? = h;
        self.len += 1;
        Ok(())
    }
}

struct Clean<'f, 's> {
    file: &'f Arc<str>,
    opts: &'f LoadOptions,
    names: LineCursor<'s>,
    report: FileReport,
}

/// What a document turns out to be, once its `apiVersion` and `kind` are read.
#[derive(Clone, Copy)]
enum Role {
    Unknown,
    Check(Kind),
    Skip,
}

impl<'s> Clean<'_, 's> {
    /// One document, after its start.
    fn document(&mut self, w: &mut Walk<'s>, index: usize) -> R {
        match w.next()? {
            Tok::DocEnd => {
                self.report.counts.empty += 1;
                return Ok(());
            }
            Tok::Scalar { text, plain, .. } => {
                // A document that is only a null (or nothing) is empty; any other scalar is an error.
                ensure(plain && resolve_plain(&text) == Resolved::Null)?;
                self.report.counts.empty += 1;
            }
            t @ Tok::Map => {
                w.ahead = Some(t);
                self.object(w, index)?;
            }
            _ => return Err(Unsure),
        }
        ensure(matches!(w.next()?, Tok::DocEnd))
    }

    fn object(&mut self, w: &mut Walk<'s>, index: usize) -> R {
        let (mut api, mut kind): (Option<Cow<'s, str>>, Option<Cow<'s, str>>) = (None, None);
        let mut role = Role::Unknown;
        let mut meta = None;
        let mut spec = false;
        let mut keys = Keys::default();
        let kinds = &self.opts.kinds;
        w.map(|w, key| {
            keys.insert(key)?;
            match (key, role) {
                ("apiVersion", _) => api = Some(w.string()?),
                ("kind", _) => kind = Some(w.string()?),
                (_, Role::Unknown) => return Err(Unsure),
                (_, Role::Skip) => w.skip()?,
                ("metadata", Role::Check(_)) => meta = Some(metadata(w)?),
                ("spec", Role::Check(k)) => {
                    match k {
                        Kind::RouteRule => route_rule(w)?,
                        Kind::EgressRule => egress_rule(w)?,
                        Kind::DestinationPolicy => destination_policy(w)?,
                    }
                    spec = true;
                }
                _ => return Err(Unsure),
            }
            if let (Role::Unknown, Some(a), Some(k)) = (role, &api, &kind) {
                ensure(!is_list_kind(k))?;
                role = match identify(a, k) {
                    Identity::Rule(k) if kinds.is_empty() || kinds.contains(&k) => Role::Check(k),
                    Identity::Rule(_) | Identity::Other => Role::Skip,
                    Identity::NearKind(_) | Identity::NearApiVersion => return Err(Unsure),
                };
            }
            Ok(())
        })?;
        let counts: &mut Counts = &mut self.report.counts;
        match role {
            Role::Unknown => Err(Unsure),
            Role::Skip => {
                counts.skipped += 1;
                Ok(())
            }
            Role::Check(kind) => {
                let Some(Meta {
                    name: Some((name, at)),
                    namespace,
                }) = meta
                else {
                    return Err(Unsure);
                };
                ensure(spec)?;
                counts.checked += 1;
                let span = Span {
                    start: yaml::pos(at.start),
                    end: yaml::pos(at.end),
                };
                self.report.definitions.push(Definition::new(
                    kind,
                    namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
                    &name,
                    self.names.line(span.start.line),
                    self.file.clone(),
                    span,
                    index,
                ));
                Ok(())
            }
        }
    }
}

struct Meta<'a> {
    name: Option<(Cow<'a, str>, saphyr_parser::Span)>,
    namespace: Option<Cow<'a, str>>,
}

fn metadata<'a>(w: &mut Walk<'a>) -> R<Meta<'a>> {
    let mut m = Meta {
        name: None,
        namespace: None,
    };
    w.fields(Metadata::FIELDS, |w, key| {
        match key {
            "name" => {
                let (text, resolved) = w.scalar()?;
                ensure(resolved == Resolved::Str && is_dns1123_label(&text))?;
                m.name = Some((text, w.last));
            }
            "namespace" => {
                let ns = w.string()?;
                ensure(is_dns1123_label(&ns))?;
                m.namespace = Some(ns);
            }
            "labels" => {
                labels(w)?;
            }
            "annotations" => {
                w.string_map(|key, _| ensure(label_key_problem(key).is_none()))?;
            }
            "generation" => {
                w.int()?;
            }
            _ => {
                w.string()?;
            }
        }
        Ok(())
    })?;
    Ok(m)
}

/// A label map. Returns its size.
fn labels(w: &mut Walk<'_>) -> R<usize> {
    w.string_map(|key, value| ensure(label_key_problem(key).is_none() && label_value_ok(value)))
}

const SERVICE: &[&str] = &["name", "namespace", "domain", "service", "labels"];

/// A service reference that must name a service (`name` or `service`). Returns the size of its labels.
fn service(w: &mut Walk<'_>) -> R<usize> {
    let (mut named, mut label_count) = (false, 0);
    w.fields(SERVICE, |w, key| {
        match key {
            "name" => {
                let name = w.string()?;
                ensure(name.is_empty() || is_dns1123_label(&name))?;
                named |= !name.is_empty();
            }
            "namespace" => ensure(is_dns1123_label(&w.string()?))?,
            "domain" => ensure(is_dns_name(&w.string()?))?,
            "service" => {
                // Never empty: an empty string is not a DNS name.
                ensure(is_dns_name(&w.string()?))?;
                named = true;
            }
            _ => label_count = labels(w)?,
        }
        Ok(())
    })?;
    ensure(named)?;
    Ok(label_count)
}

// Each struct's fields, as the model names them (checked against the model's schema by a test).
const MATCH: &[&str] = &["source", "sourceLabels", "tcp", "udp", "request"];
const L4_MATCH: &[&str] = &["sourceSubnet", "destinationSubnet"];
const MATCH_REQUEST: &[&str] = &["headers"];
const DESTINATION_WEIGHT: &[&str] = &["destination", "labels", "weight"];
const URI_AND_AUTHORITY: &[&str] = &["uri", "authority"];
const SIMPLE_TIMEOUT: &[&str] = &["timeout", "overrideHeaderName"];
const SIMPLE_RETRY: &[&str] = &["attempts", "perTryTimeout", "overrideHeaderName"];
const HTTP_FAULT: &[&str] = &["delay", "abort"];
const DELAY: &[&str] = &["percent", "fixedDelay", "exponentialDelay", "overrideHeaderName"];
const ABORT: &[&str] = &[
    "percent",
    "grpcStatus",
    "http2Error",
    "httpStatus",
    "overrideHeaderName",
];
const L4_FAULT: &[&str] = &["throttle", "terminate"];
const TERMINATE: &[&str] = &["percent", "terminateAfterPeriod"];
const THROTTLE: &[&str] = &[
    "percent",
    "downstreamLimitBps",
    "upstreamLimitBps",
    "throttleAfterPeriod",
    "throttleAfterBytes",
    "throttleForPeriod",
];
const CORS: &[&str] = &[
    "allowOrigin",
    "allowMethods",
    "allowHeaders",
    "exposeHeaders",
    "maxAge",
    "allowCredentials",
];
const EGRESS_RULE: &[&str] = &["destination", "ports", "useEgressProxy"];
const EGRESS_PORT: &[&str] = &["port", "protocol"];
const DESTINATION_POLICY: &[&str] = &["destination", "source", "loadBalancing", "circuitBreaker"];

// === RouteRule ===

const ROUTE_RULE: &[&str] = &[
    "destination",
    "precedence",
    "match",
    "route",
    "redirect",
    "rewrite",
    "websocketUpgrade",
    "httpReqTimeout",
    "httpReqRetries",
    "httpFault",
    "l4Fault",
    "mirror",
    "corsPolicy",
    "appendHeaders",
];

fn route_rule(w: &mut Walk<'_>) -> R {
    let (mut destination, mut redirect) = (false, false);
    // What a redirect cannot go with: route, rewrite, a fault, a mirror, a TCP or UDP match.
    let mut forwards = false;
    w.fields(ROUTE_RULE, |w, key| {
        forwards |= matches!(key, "route" | "rewrite" | "httpFault" | "l4Fault" | "mirror");
        match key {
            "destination" => {
                // A RouteRule's destination is the whole service: labels are an error.
                ensure(service(w)? == 0)?;
                destination = true;
            }
            "precedence" => ensure(i32::try_from(w.int()?).is_ok())?,
            "match" => forwards |= route_match(w)?,
            "route" => route(w)?,
            "redirect" => {
                uri_and_authority(w)?;
                redirect = true;
            }
            "rewrite" => uri_and_authority(w)?,
            "websocketUpgrade" => w.boolean()?,
            "httpReqTimeout" => http_timeout(w)?,
            "httpReqRetries" => http_retry(w)?,
            "httpFault" => http_fault(w)?,
            "l4Fault" => l4_fault(w)?,
            "mirror" => {
                service(w)?;
            }
            "corsPolicy" => cors(w)?,
            _ => {
                w.string_map(|name, value| ensure(is_header_name(name) && !value.contains(['\r', '\n', '\0'])))?;
            }
        }
        Ok(())
    })?;
    ensure(destination && !(redirect && forwards))
}

/// A match. Returns whether it matches TCP or UDP (which a redirect cannot go with).
fn route_match(w: &mut Walk<'_>) -> R<bool> {
    let (mut any, mut l4) = (false, false);
    w.fields(MATCH, |w, key| {
        match key {
            "source" => {
                service(w)?;
            }
            // Deprecated: a warning.
            "sourceLabels" => return Err(Unsure),
            "tcp" | "udp" => {
                w.fields(L4_MATCH, |w, _| {
                    w.list(|w| ensure(parse_subnet(&w.string()?).is_ok()))?;
                    Ok(())
                })?;
                l4 = true;
            }
            _ => {
                w.fields(MATCH_REQUEST, |w, _| {
                    let mut names = Keys::default();
                    w.map(|w, name| {
                        names.insert(name)?;
                        ensure(is_header_name(name) && !name.bytes().any(|b| b.is_ascii_uppercase()))?;
                        string_match(w)
                    })
                })?;
            }
        }
        any = true;
        Ok(())
    })?;
    // An empty match matches nothing specific: an error.
    ensure(any)?;
    Ok(l4)
}

/// A header match: a string (exact), or one of `exact`, `prefix`, `regex`.
fn string_match(w: &mut Walk<'_>) -> R {
    let t = w.next()?;
    let is_map = matches!(t, Tok::Map);
    w.ahead = Some(t);
    if !is_map {
        w.string()?;
        return Ok(());
    }
    let mut set = 0;
    w.fields(StringMatch::FIELDS, |w, key| {
        let text = w.string()?;
        ensure(key != "regex" || regex_problem(&text).is_none())?;
        set += 1;
        Ok(())
    })?;
    ensure(set == 1)
}

fn route(w: &mut Walk<'_>) -> R {
    let (mut weights, mut sum, mut unplaced) = (0, 0i64, false);
    let n = w.list(|w| {
        let (mut label_count, mut destination) = (0, false);
        w.fields(DESTINATION_WEIGHT, |w, key| {
            match key {
                "destination" => {
                    service(w)?;
                    destination = true;
                }
                "labels" => label_count = labels(w)?,
                _ => {
                    // A weight of 0 may draw the "receives no traffic" warning: the full path decides.
                    let weight = w.int()?;
                    ensure((1..=100).contains(&weight))?;
                    weights += 1;
                    sum += weight;
                }
            }
            Ok(())
        })?;
        unplaced |= label_count == 0 && !destination;
        Ok(())
    })?;
    ensure(n > 0)?;
    if n > 1 {
        // Every entry says where it goes and what share it takes (a missing weight counts as 0).
        ensure(!unplaced && weights == n)?;
    }
    ensure(weights == 0 || sum == 100)
}

fn uri_and_authority(w: &mut Walk<'_>) -> R {
    let mut any = false;
    w.fields(URI_AND_AUTHORITY, |w, _| {
        w.string()?;
        any = true;
        Ok(())
    })?;
    ensure(any)
}

/// A required nested struct: `outer: {inner: {...}}` where `inner` must be there.
fn required(w: &mut Walk<'_>, inner: &str, mut read: impl FnMut(&mut Walk<'_>) -> R) -> R {
    let mut present = false;
    w.fields(&[inner], |w, _| {
        read(w)?;
        present = true;
        Ok(())
    })?;
    ensure(present)
}

fn http_timeout(w: &mut Walk<'_>) -> R {
    required(w, "simpleTimeout", |w| {
        let mut timeout = false;
        w.fields(SIMPLE_TIMEOUT, |w, key| {
            if key == "timeout" {
                timeout = true;
                w.duration()
            } else {
                w.header_name()
            }
        })?;
        ensure(timeout)
    })
}

fn http_retry(w: &mut Walk<'_>) -> R {
    required(w, "simpleRetry", |w| {
        let mut attempts = false;
        w.fields(SIMPLE_RETRY, |w, key| match key {
            "attempts" => {
                attempts = true;
                w.count()
            }
            "perTryTimeout" => w.duration(),
            _ => w.header_name(),
        })?;
        ensure(attempts)
    })
}

fn http_fault(w: &mut Walk<'_>) -> R {
    let mut any = false;
    w.fields(HTTP_FAULT, |w, key| {
        any = true;
        // Exactly one of the delays, or of the abort's kinds.
        let mut one_of = 0;
        if key == "delay" {
            w.fields(DELAY, |w, key| match key {
                "percent" => w.percent(),
                "overrideHeaderName" => w.header_name(),
                _ => {
                    one_of += 1;
                    w.duration()
                }
            })?;
        } else {
            w.fields(ABORT, |w, key| match key {
                "percent" => w.percent(),
                "overrideHeaderName" => w.header_name(),
                "httpStatus" => {
                    one_of += 1;
                    ensure((100..=599).contains(&w.int()?))
                }
                _ => {
                    one_of += 1;
                    w.string().map(drop)
                }
            })?;
        }
        ensure(one_of == 1)
    })?;
    ensure(any)
}

fn l4_fault(w: &mut Walk<'_>) -> R {
    let mut any = false;
    w.fields(L4_FAULT, |w, key| {
        any = true;
        if key == "terminate" {
            return w.fields(
                TERMINATE,
                |w, key| {
                    if key == "percent" { w.percent() } else { w.duration() }
                },
            );
        }
        let (mut after_period, mut after_bytes) = (false, false);
        w.fields(THROTTLE, |w, key| match key {
            "percent" => w.percent(),
            "throttleAfterPeriod" => {
                after_period = true;
                w.duration()
            }
            "throttleForPeriod" => w.duration(),
            _ => {
                after_bytes |= key == "throttleAfterBytes";
                ensure(w.number()? >= 0.0)
            }
        })?;
        ensure(!(after_period && after_bytes))
    })?;
    ensure(any)
}

fn cors(w: &mut Walk<'_>) -> R {
    w.fields(CORS, |w, key| match key {
        "allowOrigin" => w.list(|w| ensure(!w.string()?.trim().is_empty())).map(drop),
        "maxAge" => w.duration(),
        "allowCredentials" => w.boolean(),
        // Methods are tokens too.
        _ => w.list(Walk::header_name).map(drop),
    })
}

// === EgressRule ===

fn egress_rule(w: &mut Walk<'_>) -> R {
    let mut net: Option<bool> = None;
    let (mut tcp_level, mut http_level) = (false, false);
    let mut ports = false;
    w.fields(EGRESS_RULE, |w, key| match key {
        "destination" => w.fields(SERVICE, |w, key| {
            // Only `service` names an egress destination; the other fields are errors.
            ensure(key == "service")?;
            net = Some(match parse_egress_host(&w.string()?).map_err(|_| Unsure)? {
                // A CIDR of length 0 opens every address: a warning.
                EgressHost::Net(n) => {
                    ensure(n.prefix_len() != 0)?;
                    true
                }
                EgressHost::Name { .. } => false,
            });
            Ok(())
        }),
        "ports" => {
            let mut seen = [0i64; 16];
            let mut count = 0;
            let n = w.list(|w| {
                let (mut port, mut protocol) = (None, None);
                w.fields(EGRESS_PORT, |w, key| {
                    if key == "port" {
                        port = Some(w.int()?);
                    } else {
                        protocol = Some(Protocol::parse(&w.string()?).ok_or(Unsure)?);
                    }
                    Ok(())
                })?;
                let (Some(port), Some(protocol)) = (port, protocol) else {
                    return Err(Unsure);
                };
                ensure((1..=65535).contains(&port))?;
                let earlier = seen.get(..count).ok_or(Unsure)?;
                ensure(!earlier.contains(&port))?;
                *seen.get_mut(count).ok_or(Unsure)? = port;
                count += 1;
                if protocol.is_tcp_level() {
                    tcp_level = true;
                } else {
                    http_level = true;
                }
                Ok(())
            })?;
            ports = true;
            ensure(n > 0)
        }
        _ => w.boolean(),
    })?;
    ensure(ports)?;
    // The protocols fit the destination: TCP-level ones an address, the others a host name.
    match net {
        Some(true) => ensure(!http_level),
        Some(false) => ensure(!tcp_level),
        None => Err(Unsure),
    }
}

// === DestinationPolicy ===

const SIMPLE_CB: &[&str] = &[
    "maxConnections",
    "httpMaxPendingRequests",
    "httpMaxRequests",
    "sleepWindow",
    "httpConsecutiveErrors",
    "httpDetectionInterval",
    "httpMaxRequestsPerConnection",
    "httpMaxEjectionPercent",
    "httpMaxRetries",
];

fn destination_policy(w: &mut Walk<'_>) -> R {
    let mut destination = false;
    w.fields(DESTINATION_POLICY, |w, key| match key {
        "destination" => {
            service(w)?;
            destination = true;
            Ok(())
        }
        "source" => service(w).map(drop),
        "loadBalancing" => required(w, "name", |w| ensure(LbPolicy::parse(&w.string()?).is_some())),
        _ => required(w, "simpleCb", |w| {
            w.fields(SIMPLE_CB, |w, key| match key {
                "sleepWindow" | "httpDetectionInterval" => w.duration(),
                "httpMaxEjectionPercent" => ensure((0..=100).contains(&w.int()?)),
                _ => w.count(),
            })
        }),
    })?;
    ensure(destination)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::validate::check_file;

    fn opts(kinds: &[Kind], keep_resources: bool) -> LoadOptions {
        LoadOptions {
            kinds: kinds.to_vec(),
            keep_resources,
            ..LoadOptions::default()
        }
    }

    /// The full path's report (`keep_resources` keeps `check_file` off the fast path).
    fn full(src: &str, kinds: &[Kind]) -> FileReport {
        check_file(&Arc::from("f.yaml"), src.as_bytes(), &opts(kinds, true))
    }

    fn fast(src: &str, kinds: &[Kind]) -> Option<FileReport> {
        let src = crate::load::decode(src.as_bytes()).ok()?;
        clean_file(
            &Arc::from("f.yaml"),
            &crate::load::lone_carriage_returns_as_lf(src),
            &opts(kinds, false),
        )
        .ok()
    }

    /// What `meshctl validate` reports: the fast path, and the full path from where it stopped.
    fn validate(src: &str, kinds: &[Kind]) -> FileReport {
        check_file(&Arc::from("f.yaml"), src.as_bytes(), &opts(kinds, false))
    }

    type Def = (Kind, String, String, Option<String>, Span, usize);

    fn definitions(r: &FileReport) -> Vec<Def> {
        r.definitions
            .iter()
            .map(|d| {
                let snippet = d.snippet().map(str::to_string);
                (
                    d.kind,
                    d.namespace().to_string(),
                    d.name().to_string(),
                    snippet,
                    d.span,
                    d.document,
                )
            })
            .collect()
    }

    #[derive(Debug, Default)]
    struct Tally {
        fast_clean: usize,
        only_full_clean: usize,
        dirty: usize,
    }

    /// The property: a file the fast path calls clean is clean to the full path, with the same counts
    /// and the same definitions; and what `meshctl validate` reports (the fast path, then the full
    /// path from the first document it is unsure of) is what the full path reports over the whole
    /// file. With and without `--kinds`.
    fn agree(src: &str, tally: &mut Tally) {
        for kinds in [&[][..], &[Kind::RouteRule][..]] {
            let full = full(src, kinds);
            let validate = validate(src, kinds);
            assert_eq!(validate.diagnostics, full.diagnostics, "{src}");
            assert_eq!(validate.counts, full.counts, "{src}");
            assert_eq!(definitions(&validate), definitions(&full), "{src}");
            match fast(src, kinds) {
                Some(fast) => {
                    assert!(
                        full.diagnostics.is_empty(),
                        "the fast path calls this clean, the full path does not ({kinds:?}):\n{src}\n{:#?}",
                        full.diagnostics
                    );
                    assert_eq!(fast.counts, full.counts, "{src}");
                    assert_eq!(definitions(&fast), definitions(&full), "{src}");
                    tally.fast_clean += 1;
                }
                None if full.diagnostics.is_empty() => tally.only_full_clean += 1,
                None => tally.dirty += 1,
            }
        }
    }

    fn testdata(path: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn every_testdata_file_gets_the_full_paths_answer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let inputs = crate::load::files::collect(&[dir], true).unwrap_or_default();
        assert!(inputs.len() > 50, "{} files", inputs.len());
        let mut tally = Tally::default();
        for input in &inputs {
            let bytes = input.read().unwrap_or_default();
            // Files that are not UTF-8 never reach either path.
            if let Ok(src) = std::str::from_utf8(&bytes) {
                agree(src, &mut tally);
            }
        }
        assert!(tally.dirty > 100, "{tally:?}");
    }

    /// The rule files that use nothing the fast path leaves to the full path: it proves each clean.
    const PLAIN_CLEAN: &[&str] = &[
        "egress-rule-mysql.yaml",
        "route-rule-ratings-mysql.yaml",
        "route-rule-reviews-v3.yaml",
        "valid/bookinfo-rules.yaml",
        "valid/destination-policies.yaml",
        "valid/egress-rule.json",
        "valid/egress-rules.yaml",
        "valid/empty-and-comments.yaml",
        "valid/full-route-rule.yaml",
    ];

    #[test]
    fn clean_rule_files_take_the_fast_path() {
        for name in PLAIN_CLEAN {
            let src = testdata(name);
            let fast = fast(&src, &[]).unwrap_or_else(|| panic!("{name}: the fast path is unsure"));
            let full = full(&src, &[]);
            assert!(full.diagnostics.is_empty(), "{name}: {:?}", full.diagnostics);
            assert!(
                fast.counts.checked > 0 || name.contains("empty"),
                "{name}: {:?}",
                fast.counts
            );
            assert_eq!(fast.counts, full.counts, "{name}");
            assert_eq!(definitions(&fast), definitions(&full), "{name}");
        }
    }

    #[test]
    fn yaml_features_and_other_objects_are_left_to_the_full_path_or_skipped_alike() {
        let rule = "apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n  name: db\nspec:\n  destination:\n    service: 10.0.0.5\n  ports:\n  - port: 3306\n    protocol: tcp\n";
        assert!(fast(rule, &[]).is_some());
        let unsure = [
            rule.replace("  name: db", "  name: &n db"),
            rule.replace("kind: EgressRule", "kind: !!str EgressRule"),
            format!("base: &b {{}}\n---\n{rule}"),
            rule.replace("spec:\n", "spec:\n  <<: {}\n"),
            format!("metadata:\n  name: x\n{}", rule.replace("metadata:\n  name: db\n", "")),
            format!("apiVersion: v1\nkind: List\nitems: []\n---\n{rule}"),
            rule.replace("3306", "3306\n  - port: 3306\n    protocol: tcp"),
            format!(
                "{rule}---\napiVersion: v1\nkind: Deep\nspec: {}{}\n",
                "[".repeat(70),
                "]".repeat(70)
            ),
        ];
        for src in &unsure {
            assert!(fast(src, &[]).is_none(), "{src}");
            agree(src, &mut Tally::default());
        }
        // Other objects are skipped and counted, also when they come first, and duplicate keys in
        // them are still found.
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: b\n";
        let both = format!("{deployment}---\n{rule}");
        let report = fast(&both, &[]).expect("a Deployment next to a rule");
        assert_eq!((report.counts.checked, report.counts.skipped), (1, 1));
        let dup = both.replace("        image: b\n", "        image: b\n        image: c\n");
        assert!(fast(&dup, &[]).is_none());
        assert!(!full(&dup, &[]).diagnostics.is_empty());
    }

    /// Values to put in place of each value of a clean file: valid ones of every type, and every
    /// kind of near miss the checks look for.
    const VALUES: &[&str] = &[
        "",
        "0",
        "1",
        "-1",
        "5",
        "50",
        "99",
        "100",
        "101",
        "599",
        "600",
        "65535",
        "65536",
        "3306",
        "2147483648",
        "99999999999999999999",
        "0x10",
        "1.5",
        "0.5",
        "-0.5",
        "1e3",
        ".nan",
        ".inf",
        "true",
        "false",
        "yes",
        "null",
        "~",
        "\"\"",
        "\" \"",
        "\"80\"",
        "'x'",
        "x",
        "X",
        "v1",
        "v1.2_3",
        "-x",
        "x-",
        "a_b",
        "a.b",
        "a b",
        "a/b",
        "example.com/x",
        "*",
        "*.example.com",
        "*.*.example.com",
        "a.*.com",
        "example.com",
        "Example.com",
        "10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.1/8",
        "0.0.0.0/0",
        "::/0",
        "2001:db8::/48",
        "10.0.0.300",
        "0ms",
        "1ms",
        "500us",
        "1.5s",
        "1h30m",
        "1d",
        "-1s",
        "10",
        "tcp",
        "TCP",
        "http",
        "HTTPS",
        "mongo",
        "ftp",
        "RANDOM",
        "random",
        "ROUND_ROBIN",
        "[]",
        "{}",
        "[a]",
        "{a: b}",
        "{exact: x}",
        "{exact: x, prefix: y}",
        "{regex: \"^(\"}",
        "{regex: \"^a$\"}",
        "{exakt: x}",
        "*a",
        "&a x",
        "!!str x",
        "\"^(\"",
        "x-user",
        "X-User",
        "\"a\\nb\"",
        "\"a\\rb\"",
        "|\n  x",
    ];

    /// Lines of `src` changed one at a time: each value replaced, each line removed, repeated,
    /// indented further, and its key misspelt or made a merge key.
    fn mutants(src: &str) -> Vec<String> {
        let lines: Vec<&str> = src.lines().collect();
        let mut out = Vec::new();
        let with = |i: usize, replacement: &[String]| {
            let mut m: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
            m.splice(i..=i, replacement.iter().cloned());
            m.join("\n") + "\n"
        };
        for (i, line) in lines.iter().enumerate() {
            out.push(with(i, &[]));
            out.push(with(i, &[(*line).to_string(), (*line).to_string()]));
            out.push(with(i, &[format!("  {line}")]));
            if let Some(item) = line.trim_start().strip_prefix("- ").filter(|v| !v.contains(':')) {
                // A list item's value.
                let dash = line.len() - item.len();
                for v in VALUES {
                    out.push(with(i, &[format!("{}{v}", &line[..dash])]));
                }
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            out.push(with(i, &[format!("{key}x:{value}")]));
            out.push(with(
                i,
                &[format!(
                    "{}<<:{value}",
                    &key[..key.len() - key.trim_start_matches([' ', '-']).len()]
                )],
            ));
            if key.trim_start().starts_with('#') {
                continue;
            }
            if value.trim().is_empty() {
                // A field whose value is the block below it: the whole block replaced by one value.
                let indent = line.len() - line.trim_start().len();
                let end = lines[i + 1..]
                    .iter()
                    .position(|l| {
                        let deeper = l.len() - l.trim_start().len();
                        !(deeper > indent || (deeper == indent && l.trim_start().starts_with("- ")))
                    })
                    .map_or(lines.len(), |n| i + 1 + n);
                for v in ["[]", "{}", "null", "\"\"", "1", "[{}]"] {
                    let mut m: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
                    m.splice(i..end, [format!("{key}: {v}")]);
                    out.push(m.join("\n") + "\n");
                }
                continue;
            }
            for v in VALUES {
                out.push(with(i, &[format!("{key}: {v}")]));
            }
        }
        out
    }

    #[test]
    fn no_change_to_a_clean_file_makes_the_paths_disagree() {
        let mut tally = Tally::default();
        for name in PLAIN_CLEAN {
            for m in mutants(&testdata(name)) {
                agree(&m, &mut tally);
            }
        }
        // Both sides of the property are exercised: many changes keep the file clean and are proved so
        // by the fast path, many make it dirty.
        assert!(tally.fast_clean > 1000, "{tally:?}");
        assert!(tally.dirty > 5000, "{tally:?}");
        // What the fast path leaves to the full path although it is clean stays a small part.
        assert!(tally.only_full_clean < tally.fast_clean / 4, "{tally:?}");
    }

    /// A small deterministic generator of random numbers (xorshift), so a failing case can be rerun.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % (n as u64)).unwrap_or(0)
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        /// Mostly the first (valid) values of `pool`, sometimes any of them.
        fn pick<'p>(&mut self, valid: usize, pool: &[&'p str]) -> &'p str {
            let n = if valid > 0 && self.chance(85) {
                valid.min(pool.len())
            } else {
                pool.len()
            };
            pool[self.below(n)]
        }
    }

    const NAMES: &[&str] = &[
        "reviews", "ratings", "db", "Reviews", "\"\"", "a_b", "a.b", "1", "true", "null", "[]",
    ];
    const NAMESPACES: &[&str] = &["default", "bookinfo", "Default", "\"\"", "x_y"];
    const LABEL_KEYS: &[&str] = &[
        "version",
        "app",
        "app.kubernetes.io/name",
        "Bad Key",
        "UPPER.io/x",
        "-x",
    ];
    const LABEL_VALUES: &[&str] = &["v1", "v2", "canary", "\"\"", "-v1", "a b", "1", "true", "{}"];
    const INTS: &[&str] = &[
        "1",
        "5",
        "50",
        "0",
        "100",
        "101",
        "-1",
        "1.5",
        "\"5\"",
        "null",
        "99999999999",
    ];
    const WEIGHTS: &[&str] = &["50", "25", "75", "100", "0", "101", "-5", "\"50\"", "50.5"];
    const DURATIONS: &[&str] = &["1s", "500ms", "1h30m", "2.5s", "0ms", "0.5ms", "x", "5", "\"\"", "-1s"];
    const PERCENTS: &[&str] = &["10", "0.5", "100", "0", "-1", "101", ".nan", "\"5\""];
    const HEADERS: &[&str] = &["x-user", "cookie", "uri", "X-User", "a b", "x:y"];
    const HOSTS: &[&str] = &[
        "*.example.com",
        "api.example.com",
        "10.0.0.5",
        "10.0.0.0/8",
        "2001:db8::/48",
        "0.0.0.0/0",
        "10.0.0.5/8",
        "*.*.x.com",
        "bad_host.com",
        "\"\"",
    ];
    const PORTS: &[&str] = &["443", "3306", "80", "8080", "0", "65536", "\"443\"", "-1"];
    const PROTOCOLS: &[&str] = &["http", "https", "tcp", "mongo", "HTTPS", "grpc", "ftp", "\"\"", "1"];

    /// One field of a mapping, `indent` deep: `key: value` or `key:` and a nested block from `nested`.
    fn line(out: &mut String, indent: usize, key: &str, value: &str) {
        out.push_str(&" ".repeat(indent));
        out.push_str(key);
        out.push(':');
        if !value.is_empty() {
            out.push(' ');
            out.push_str(value);
        }
        out.push('\n');
    }

    /// A list item, `indent` deep.
    fn item(out: &mut String, indent: usize, value: &str) {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        out.push_str(value);
        out.push('\n');
    }

    fn gen_labels(r: &mut Rng, out: &mut String, indent: usize) {
        line(out, indent, "labels", "");
        for _ in 0..=r.below(2) {
            let key = r.pick(3, LABEL_KEYS);
            line(out, indent + 2, key, r.pick(3, LABEL_VALUES));
        }
    }

    fn gen_service(r: &mut Rng, out: &mut String, indent: usize, key: &str) {
        line(out, indent, key, "");
        let i = indent + 2;
        if r.chance(90) {
            line(out, i, "name", r.pick(3, NAMES));
        } else if r.chance(50) {
            line(out, i, "service", r.pick(2, HOSTS));
        }
        if r.chance(20) {
            line(out, i, "namespace", r.pick(2, NAMESPACES));
        }
        if r.chance(10) {
            line(
                out,
                i,
                "domain",
                r.pick(1, &["svc.cluster.local", "bad_domain", "\"\""]),
            );
        }
        if r.chance(15) {
            gen_labels(r, out, i);
        }
    }

    fn gen_route_rule(r: &mut Rng, out: &mut String) {
        if r.chance(95) {
            gen_service(r, out, 2, "destination");
        }
        if r.chance(30) {
            line(out, 2, "precedence", r.pick(3, INTS));
        }
        if r.chance(40) {
            line(out, 2, "match", "");
            if r.chance(40) {
                gen_service(r, out, 4, "source");
            }
            if r.chance(5) {
                gen_labels(r, out, 4);
            }
            if r.chance(15) {
                line(out, 4, r.pick(2, &["tcp", "udp"]), "");
                line(out, 6, "sourceSubnet", "");
                item(out, 6, r.pick(2, &["10.0.0.0/16", "10.1.2.3", "10.0.0.1/8", "x"]));
            }
            if r.chance(60) {
                line(out, 4, "request", "");
                line(out, 6, "headers", "");
                for _ in 0..=r.below(2) {
                    let name = r.pick(3, HEADERS);
                    match r.below(4) {
                        0 => line(out, 8, name, r.pick(1, &["jason", "1", "null", "{}"])),
                        _ => {
                            line(out, 8, name, "");
                            let kind = r.pick(3, &["exact", "prefix", "regex", "exakt"]);
                            let value = if kind == "regex" {
                                r.pick(2, &["\"^a.*$\"", "\".*x\"", "\"^(\""])
                            } else {
                                "/v1/"
                            };
                            line(out, 10, kind, value);
                            if r.chance(5) {
                                line(out, 10, "prefix", "/x");
                            }
                        }
                    }
                }
            }
        }
        let redirect = r.chance(8);
        if redirect {
            line(out, 2, "redirect", "");
            line(out, 4, r.pick(2, &["uri", "authority", "url"]), "/v2/x");
        }
        if !redirect || r.chance(10) {
            if r.chance(90) {
                line(out, 2, "route", "");
                let n = 1 + r.below(3);
                let split: &[&str] = match n {
                    1 => &["100"],
                    2 => &["80", "20"],
                    _ => &["50", "25", "25"],
                };
                for (i, w) in split.iter().enumerate() {
                    let mut fields: Vec<(&str, String)> = Vec::new();
                    if r.chance(90) {
                        fields.push(("labels", format!("{{version: v{}}}", i + 1)));
                    }
                    if (n > 1 && r.chance(95)) || r.chance(30) {
                        let w = if r.chance(90) { w } else { r.pick(0, WEIGHTS) };
                        fields.push(("weight", w.to_string()));
                    }
                    if r.chance(10) {
                        fields.push(("destination", "{name: ratings}".to_string()));
                    }
                    if fields.is_empty() {
                        fields.push(("labels", "{}".to_string()));
                    }
                    for (j, (key, value)) in fields.iter().enumerate() {
                        let key = if j == 0 { format!("- {key}") } else { format!("  {key}") };
                        line(out, 2, &key, value);
                    }
                }
            }
            if r.chance(10) {
                line(out, 2, "rewrite", "");
                line(out, 4, r.pick(2, &["uri", "authority", "url"]), "/v1/x");
            }
            if r.chance(20) {
                line(out, 2, "httpFault", "");
                if r.chance(60) {
                    line(out, 4, "delay", "");
                    line(out, 6, "percent", r.pick(3, PERCENTS));
                    line(
                        out,
                        6,
                        r.pick(2, &["fixedDelay", "exponentialDelay", "delay"]),
                        r.pick(4, DURATIONS),
                    );
                    if r.chance(5) {
                        line(out, 6, "exponentialDelay", "1s");
                    }
                }
                if r.chance(50) {
                    line(out, 4, "abort", "");
                    line(out, 6, "percent", r.pick(3, PERCENTS));
                    line(
                        out,
                        6,
                        r.pick(2, &["httpStatus", "grpcStatus"]),
                        r.pick(2, &["503", "UNAVAILABLE", "99", "600"]),
                    );
                    if r.chance(5) {
                        line(out, 6, "http2Error", "x");
                    }
                }
            }
            if r.chance(8) {
                line(out, 2, "l4Fault", "");
                line(out, 4, "throttle", "");
                line(out, 6, "percent", r.pick(3, PERCENTS));
                line(out, 6, "downstreamLimitBps", r.pick(2, &["1000", "0", "-5"]));
                line(out, 6, r.pick(1, &["throttleAfterPeriod", "throttleAfterBytes"]), "10s");
                if r.chance(10) {
                    line(out, 6, "throttleAfterBytes", "10");
                }
            }
            if r.chance(10) {
                gen_service(r, out, 2, "mirror");
            }
        }
        if r.chance(20) {
            line(out, 2, "httpReqTimeout", "");
            line(out, 4, r.pick(1, &["simpleTimeout", "simple"]), "");
            line(
                out,
                6,
                r.pick(1, &["timeout", "overrideHeaderName"]),
                r.pick(4, DURATIONS),
            );
        }
        if r.chance(20) {
            line(out, 2, "httpReqRetries", "");
            line(out, 4, "simpleRetry", "");
            line(out, 6, "attempts", r.pick(3, INTS));
            if r.chance(50) {
                line(out, 6, "perTryTimeout", r.pick(4, DURATIONS));
            }
        }
        if r.chance(10) {
            line(out, 2, "corsPolicy", "");
            line(out, 4, "allowOrigin", "");
            item(out, 4, r.pick(2, &["\"*\"", "example.com", "\" \""]));
            line(out, 4, "allowMethods", "");
            item(out, 4, r.pick(2, &["GET", "POST", "a b"]));
            line(out, 4, "maxAge", r.pick(4, DURATIONS));
        }
        if r.chance(10) {
            line(out, 2, "appendHeaders", "");
            line(out, 4, r.pick(3, HEADERS), r.pick(1, &["x", "\"a\\nb\""]));
        }
        if r.chance(3) {
            line(out, 2, "websocketUpgrade", r.pick(2, &["true", "false", "yes"]));
        }
    }

    fn gen_egress_rule(r: &mut Rng, out: &mut String) {
        let tcp = r.chance(40);
        if r.chance(95) {
            line(out, 2, "destination", "");
            let host = if tcp { r.pick(2, &HOSTS[2..]) } else { r.pick(2, HOSTS) };
            line(out, 4, r.pick(1, &["service", "name"]), host);
        }
        if r.chance(95) {
            line(out, 2, "ports", "");
            for _ in 0..=r.below(3) {
                line(out, 2, "- port", r.pick(4, PORTS));
                let protocol = if tcp {
                    r.pick(1, &PROTOCOLS[2..])
                } else {
                    r.pick(2, PROTOCOLS)
                };
                line(out, 4, "protocol", protocol);
            }
        }
        if r.chance(10) {
            line(out, 2, "useEgressProxy", r.pick(2, &["true", "false", "1"]));
        }
    }

    fn gen_destination_policy(r: &mut Rng, out: &mut String) {
        if r.chance(95) {
            gen_service(r, out, 2, "destination");
        }
        if r.chance(15) {
            gen_service(r, out, 2, "source");
        }
        if r.chance(50) {
            line(out, 2, "loadBalancing", "");
            line(
                out,
                4,
                "name",
                r.pick(3, &["RANDOM", "ROUND_ROBIN", "LEAST_CONN", "random", "X"]),
            );
        }
        if r.chance(60) {
            line(out, 2, "circuitBreaker", "");
            line(out, 4, "simpleCb", "");
            for field in SIMPLE_CB {
                if r.chance(40) {
                    let value = match *field {
                        "sleepWindow" | "httpDetectionInterval" => r.pick(4, DURATIONS),
                        "httpMaxEjectionPercent" => r.pick(4, PERCENTS),
                        _ => r.pick(5, INTS),
                    };
                    line(out, 6, field, value);
                }
            }
        }
    }

    /// A file of one to three random documents: rules of every kind with fields present or not, and
    /// values that are mostly valid and sometimes one of the near misses the checks look for.
    fn gen_file(r: &mut Rng) -> String {
        let mut out = String::new();
        for i in 0..=r.below(3) {
            if i > 0 {
                out.push_str("---\n");
            }
            let kind = r.pick(
                3,
                &[
                    "RouteRule",
                    "EgressRule",
                    "DestinationPolicy",
                    "Deployment",
                    "EgresRule",
                ],
            );
            line(
                &mut out,
                0,
                "apiVersion",
                r.pick(1, &["config.istio.io/v1alpha2", "config.istio.io/v1alpha3", "v1"]),
            );
            line(&mut out, 0, "kind", kind);
            line(&mut out, 0, "metadata", "");
            if r.chance(97) {
                line(&mut out, 2, "name", r.pick(3, NAMES));
            }
            if r.chance(30) {
                line(&mut out, 2, "namespace", r.pick(2, NAMESPACES));
            }
            if r.chance(10) {
                gen_labels(r, &mut out, 2);
            }
            if r.chance(97) {
                line(&mut out, 0, "spec", "");
                match kind {
                    "EgressRule" => gen_egress_rule(r, &mut out),
                    "DestinationPolicy" => gen_destination_policy(r, &mut out),
                    _ => gen_route_rule(r, &mut out),
                }
            }
        }
        out
    }

    #[test]
    fn random_rule_files_get_the_full_paths_answer() {
        let mut tally = Tally::default();
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4000 {
            agree(&gen_file(&mut r), &mut tally);
        }
        assert!(tally.fast_clean > 1000, "{tally:?}");
        assert!(tally.dirty > 1000, "{tally:?}");
        assert!(tally.only_full_clean < tally.fast_clean / 4, "{tally:?}");
    }

    /// Every list of fields the fast path accepts is the model's own list for that struct: a field the
    /// model does not have would be let through as clean, and a field the model gained would be left
    /// to the full path for ever.
    #[test]
    fn the_fast_paths_field_lists_are_the_models() {
        use crate::model::IstioService;
        use crate::model::destination_policy::*;
        use crate::model::egress_rule::*;
        use crate::model::route_rule::*;

        fn properties(schema: &schemars::Schema) -> Vec<String> {
            let mut keys: Vec<String> = schema
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        }
        fn sorted(list: &[&str]) -> Vec<String> {
            let mut v: Vec<String> = list.iter().map(|s| (*s).to_string()).collect();
            v.sort();
            v
        }
        let cases: Vec<(&str, &[&str], schemars::Schema)> = vec![
            ("Metadata", Metadata::FIELDS, schemars::schema_for!(Metadata)),
            ("IstioService", SERVICE, schemars::schema_for!(IstioService)),
            ("RouteRule", ROUTE_RULE, schemars::schema_for!(RouteRule)),
            ("MatchCondition", MATCH, schemars::schema_for!(MatchCondition)),
            ("L4MatchAttributes", L4_MATCH, schemars::schema_for!(L4MatchAttributes)),
            ("MatchRequest", MATCH_REQUEST, schemars::schema_for!(MatchRequest)),
            (
                "DestinationWeight",
                DESTINATION_WEIGHT,
                schemars::schema_for!(DestinationWeight),
            ),
            ("HttpRedirect", URI_AND_AUTHORITY, schemars::schema_for!(HttpRedirect)),
            ("HttpRewrite", URI_AND_AUTHORITY, schemars::schema_for!(HttpRewrite)),
            ("HttpTimeout", &["simpleTimeout"], schemars::schema_for!(HttpTimeout)),
            ("SimpleTimeout", SIMPLE_TIMEOUT, schemars::schema_for!(SimpleTimeout)),
            ("HttpRetry", &["simpleRetry"], schemars::schema_for!(HttpRetry)),
            ("SimpleRetry", SIMPLE_RETRY, schemars::schema_for!(SimpleRetry)),
            (
                "HttpFaultInjection",
                HTTP_FAULT,
                schemars::schema_for!(HttpFaultInjection),
            ),
            ("Delay", DELAY, schemars::schema_for!(Delay)),
            ("Abort", ABORT, schemars::schema_for!(Abort)),
            ("L4FaultInjection", L4_FAULT, schemars::schema_for!(L4FaultInjection)),
            ("Throttle", THROTTLE, schemars::schema_for!(Throttle)),
            ("Terminate", TERMINATE, schemars::schema_for!(Terminate)),
            ("CorsPolicy", CORS, schemars::schema_for!(CorsPolicy)),
            ("EgressRule", EGRESS_RULE, schemars::schema_for!(EgressRule)),
            ("EgressPort", EGRESS_PORT, schemars::schema_for!(EgressPort)),
            (
                "DestinationPolicy",
                DESTINATION_POLICY,
                schemars::schema_for!(DestinationPolicy),
            ),
            ("LoadBalancing", &["name"], schemars::schema_for!(LoadBalancing)),
            ("CircuitBreaker", &["simpleCb"], schemars::schema_for!(CircuitBreaker)),
            (
                "SimpleCircuitBreaker",
                SIMPLE_CB,
                schemars::schema_for!(SimpleCircuitBreaker),
            ),
        ];
        for (name, fast, schema) in cases {
            let model = properties(&schema);
            assert!(!model.is_empty(), "{name}: no properties in {schema:?}");
            assert_eq!(sorted(fast), model, "{name}");
        }
        assert_eq!(sorted(StringMatch::FIELDS), sorted(&["exact", "prefix", "regex"]));
    }
}
