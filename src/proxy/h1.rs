//! The proxy's HTTP/1.1 client for mesh requests: one pooled connection to an endpoint, a request
//! written in one piece, the answer's head parsed with `httparse` and its body framed here.
//!
//! hyper's client does the same job through a connection task, a dispatch channel and a body channel
//! per request; on a keep-alive connection that costs about 2.6 µs of CPU per request more than this
//! (`bench/h1-cost.sh`), a seventh of what a routed request costs the proxy in all. The request's task
//! drives its connection itself: the connection is borrowed for the request and its answer's head, and
//! moved into the answer's body, which gives it back (to its pool) once the body has ended cleanly.
//!
//! Framing follows RFC 9112: an answer to HEAD, a 1xx, 204 or 304 has no body; `Transfer-Encoding`
//! ending in `chunked` is decoded (extensions and trailers skipped), any other transfer coding is read
//! to the close; otherwise `Content-Length` (several equal values allowed, differing ones refused), else
//! the body runs to the close. Interim answers (`100 Continue`) are skipped. A connection is kept for
//! another request only when the answer is HTTP/1.1 without `Connection: close` (or HTTP/1.0 with
//! `keep-alive`), its body had a length or was chunked, and every byte of it was read.

use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body_util::BodyExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::http::{CountingBody, HOP_BY_HOP};

/// The most header fields an answer may have (hyper's limit too).
pub(super) const MAX_HEADERS: usize = 100;
/// The most bytes an answer's head (status line and header fields) may take.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The most bytes of one chunk-size line or trailer section.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;
/// Body pieces up to this size are copied out of the read buffer rather than split off it.
const COPY_BELOW: usize = 4 * 1024;
/// Free space below which the read buffer grows before a read, and by how much.
const READ_MIN: usize = 2 * 1024;
const READ_GROW: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the connection closed before an answer")]
    Closed,
    #[error("the connection closed before the end of the chunked body")]
    Cut,
    #[error("the connection closed with {0} bytes of the answer's body missing")]
    Truncated(u64),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid answer: {0}")]
    Invalid(String),
    #[error("reading the request body: {0}")]
    RequestBody(hyper::Error),
}

impl Error {
    /// Whether the request failed before any byte of an answer came: the connection was closed or
    /// reset under it (what happens to a request sent on a keep-alive connection the upstream was
    /// closing).
    pub fn before_any_answer(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// A request body.
pub enum Payload {
    None,
    Bytes(Bytes),
    Stream(CountingBody),
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the upstream closes.
    UntilClose,
    /// 101 Switching Protocols: the connection now carries the upgraded protocol.
    Upgrade,
}

/// An answer's head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// How a request's body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// No body and no framing field (a GET, usually).
    Nothing,
    Length(u64),
    Chunked,
}

enum Parsed {
    Head(Head),
    /// An interim answer (1xx other than 101), consumed.
    Interim,
    /// Not all of the head is in yet.
    Partial,
}

/// Where the reading of a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers(usize),
    UntilClose,
    Done,
}

impl BodyState {
    pub fn new(framing: Framing) -> BodyState {
        match framing {
            Framing::Empty | Framing::Upgrade | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::ChunkSize,
            Framing::UntilClose => BodyState::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == BodyState::Done
    }

    /// The bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyState::Length(n) => Some(*n),
            BodyState::Done => Some(0),
            _ => None,
        }
    }
}

/// One connection to an upstream.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request head being written (kept to reuse its allocation).
    out: Vec<u8>,
    /// The field names of the last answers, by position: as written, and parsed. An upstream sends
    /// the same fields in the same order answer after answer, so each name is parsed once per
    /// connection rather than once per answer.
    /// (Positions of fields that are not passed on stay empty.)
    names: Vec<Option<(Box<[u8]>, HeaderName)>>,
}

/// The most field positions whose names a connection remembers.
const NAMES_KEPT: usize = 32;

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Whether an idle connection can carry another request: nothing unasked is waiting in it and the
    /// upstream has not closed it. Costs no system call unless the socket was reported readable.
    pub fn reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the answer just read left nothing behind it (a clean end for a keep-alive connection).
    pub fn drained(&self) -> bool {
        self.buf.is_empty()
    }

    /// The socket and any bytes already read past the answer's head (after a 101).
    pub fn into_io(self) -> (TcpStream, BytesMut) {
        (self.io, self.buf)
    }

    /// Sends a request and reads its answer's head. `target` is the request target in origin form;
    /// `headers` go as they are, except the framing fields, which are written here for `body`.
    pub async fn send(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: Payload,
    ) -> Result<Head, Error> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let written = self.write_request(&mut out, method, target, headers, body).await;
        self.out = out;
        written?;
        self.read_head(method).await
    }

    async fn write_request(
        &mut self,
        out: &mut Vec<u8>,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: Payload,
    ) -> Result<(), Error> {
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let framing = match &body {
            Payload::None => {
                // A body-less GET says nothing; a body-less POST, PUT or PATCH says its length is 0.
                let announced = headers.contains_key(header::CONTENT_LENGTH);
                if announced || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                    Sent::Length(0)
                } else {
                    Sent::Nothing
                }
            }
            Payload::Bytes(b) => Sent::Length(b.len() as u64),
            Payload::Stream(s) => {
                use hyper::body::Body as _;
                match s.size_hint().exact() {
                    _ if s.is_end_stream() => Sent::Length(0),
                    Some(n) => Sent::Length(n),
                    None => Sent::Chunked,
                }
            }
        };
        match framing {
            Sent::Nothing => out.extend_from_slice(b"\r\n"),
            Sent::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa_u64(n, &mut [0u8; 20]));
                out.extend_from_slice(b"\r\n\r\n");
            }
            Sent::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
        }
        // Head and body go together in one vectored write where they can.
        match body {
            Payload::None => self.io.write_all(out).await?,
            Payload::Bytes(b) => self.io.write_all_buf(&mut (&out[..]).chain(b)).await?,
            Payload::Stream(mut s) => {
                self.io.write_all(out).await?;
                while let Some(frame) = s.frame().await {
                    let frame = frame.map_err(Error::RequestBody)?;
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    if framing == Sent::Chunked {
                        let mut size = [0u8; 18];
                        let n = hex_line(data.len(), &mut size);
                        let mut chunk = (&size[..n]).chain(data).chain(&b"\r\n"[..]);
                        self.io.write_all_buf(&mut chunk).await?;
                    } else {
                        self.io.write_all(&data).await?;
                    }
                }
                if framing == Sent::Chunked {
                    self.io.write_all(b"0\r\n\r\n").await?;
                }
            }
        }
        Ok(())
    }

    async fn read_head(&mut self, method: &Method) -> Result<Head, Error> {
        loop {
            match self.parse_head(method)? {
                Parsed::Head(head) => return Ok(head),
                // The next answer may already be in.
                Parsed::Interim => continue,
                Parsed::Partial => {}
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 && self.buf.is_empty() {
                return Err(Error::Closed);
            }
            if n == 0 {
                return Err(Error::Invalid("the connection closed in the middle of its head".into()));
            }
        }
    }

    /// Parses the head at the front of the buffer.
    fn parse_head(&mut self, method: &Method) -> Result<Parsed, Error> {
        // Left uninitialised: zeroing room for 100 fields cost more than parsing a short head.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &self.buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > MAX_HEAD {
                    return Err(Error::Invalid(format!("its head is over {} KiB", MAX_HEAD / 1024)));
                }
                return Ok(Parsed::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Invalid(format!("more than {MAX_HEADERS} header fields")));
            }
            Err(e) => return Err(Error::Invalid(e.to_string())),
        };
        let code = resp.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid(format!("status {code}")))?;
        let version = if resp.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            self.buf.advance(len);
            return Ok(Parsed::Interim);
        }
        // The values are slices of one copy of the head (one allocation for all of them); the read
        // buffer itself is not shared, so that the next read reuses it.
        let raw = Bytes::copy_from_slice(&self.buf[..len]);
        let base = self.buf.as_ptr() as usize;
        // One pass over the fields gathers what framing and reuse depend on, and keeps only the
        // end-to-end ones (all of them for a 101, whose Upgrade and Connection the client needs).
        let keep_all = status == StatusCode::SWITCHING_PROTOCOLS;
        let mut fields = Fields::default();
        let mut headers = HeaderMap::with_capacity(resp.headers.len());
        for (i, field) in resp.headers.iter().enumerate() {
            let raw_name = field.name.as_bytes();
            let end_to_end = fields.add(raw_name, field.value);
            if !(end_to_end || keep_all) {
                continue;
            }
            let name = match self.names.get(i) {
                Some(Some((raw, name))) if **raw == *raw_name => name.clone(),
                _ => {
                    let name = HeaderName::from_bytes(raw_name)
                        .map_err(|_| Error::Invalid(format!("header name {:?}", field.name)))?;
                    if i < NAMES_KEPT {
                        if self.names.len() <= i {
                            self.names.resize_with(i + 1, || None);
                        }
                        self.names[i] = Some((Box::from(raw_name), name.clone()));
                    }
                    name
                }
            };
            let at = field.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(raw.slice(at..at + field.value.len()))
                .map_err(|_| Error::Invalid(format!("the value of {name}")))?;
            headers.append(name, value);
        }
        if !keep_all {
            // Fields that `Connection` names belong to this hop too (rare: a token other than close
            // or keep-alive).
            for value in &fields.connection_names {
                for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if let Ok(name) = HeaderName::from_bytes(token) {
                        headers.remove(name);
                    }
                }
            }
        }
        let framing = framing(method, status, &fields)?;
        // Both framings at once: Transfer-Encoding decides, the length must not travel on with the
        // decoded body, and the connection is not trusted with another request (RFC 9112, 6.3).
        let both = fields.transfer_encoding.is_some() && fields.content_length.is_some();
        if both {
            headers.remove(header::CONTENT_LENGTH);
        }
        let smuggled = both && framing != Framing::Empty;
        let keep_alive = match version {
            Version::HTTP_11 => !fields.close,
            _ => !fields.close && fields.keep_alive,
        } && !smuggled
            && matches!(framing, Framing::Empty | Framing::Length(_) | Framing::Chunked);
        self.buf.advance(len);
        Ok(Parsed::Head(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }))
    }

    /// Reads more bytes into the buffer: how many (0 at the upstream's end).
    ///
    /// A read that did not fill the free space took all the socket had, so the socket is marked not
    /// readable at once rather than by one more read that would fail with `EAGAIN`: that read would
    /// come with the next request's `reusable` check, a system call per request for nothing. A later
    /// arrival raises a new readiness event that this does not erase (tokio clears only the event it
    /// saw), and an end of stream stays marked (tokio never clears read-closed), so `reusable` still
    /// sees a connection the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_MIN {
            self.buf.reserve(READ_GROW);
        }
        loop {
            ready!(self.io.poll_read_ready(cx))?;
            let free = self.buf.capacity() - self.buf.len();
            match self.io.try_read_buf(&mut self.buf) {
                Ok(n) => {
                    if n > 0 && n < free {
                        let _ = self.io.try_io(tokio::io::Interest::READABLE, || {
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The first `n` buffered bytes. A small piece is copied, which leaves the read buffer unshared for
    /// the next read; a large one is handed over without a copy (the buffer grows anew).
    fn take(&mut self, n: usize) -> Bytes {
        if n <= COPY_BELOW {
            let piece = Bytes::copy_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            piece
        } else {
            self.buf.split_to(n).freeze()
        }
    }

    /// The next piece of an answer's body; `Ready(None)` at its end.
    pub fn poll_body(&mut self, state: &mut BodyState, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            match step(state, &self.buf)? {
                Step::Data(n) => return Poll::Ready(Some(Ok(self.take(n)))),
                Step::Framing(n) => {
                    self.buf.advance(n);
                    continue;
                }
                Step::Done => return Poll::Ready(None),
                Step::More => {}
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(at_close(state).map(Err)),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(Error::Io(e)))),
            }
        }
    }
}

/// What the bytes at the front of a body's buffer are: see [`step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first n bytes are body data.
    Data(usize),
    /// The first n bytes were framing (a chunk-size line, a chunk's CRLF, trailers), read into the state.
    Framing(usize),
    /// More bytes are needed.
    More,
    /// The body has ended.
    Done,
}

/// Reads the front of `buf`, the bytes of a body framed as `state` says, and moves `state` past what
/// it names. The caller consumes the bytes a `Data` or `Framing` step names before the next step.
pub fn step(state: &mut BodyState, buf: &[u8]) -> Result<Step, Error> {
    Ok(match *state {
        BodyState::Done => Step::Done,
        BodyState::Length(rest) | BodyState::ChunkData(rest) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let n = rest.min(buf.len() as u64);
            let left = rest - n;
            *state = match (*state, left) {
                (BodyState::Length(_), 0) => BodyState::Done,
                (BodyState::Length(_), _) => BodyState::Length(left),
                (_, 0) => BodyState::ChunkEnd,
                _ => BodyState::ChunkData(left),
            };
            // `n` is at most the buffer's length, a usize.
            Step::Data(n as usize)
        }
        BodyState::UntilClose if buf.is_empty() => Step::More,
        BodyState::UntilClose => Step::Data(buf.len()),
        BodyState::ChunkSize => match memchr::memchr(b'\n', buf) {
            Some(end) => {
                let size = chunk_size(&buf[..end])?;
                *state = if size == 0 {
                    BodyState::Trailers(0)
                } else {
                    BodyState::ChunkData(size)
                };
                Step::Framing(end + 1)
            }
            None if buf.len() > MAX_CHUNK_LINE => return Err(Error::Invalid("a chunk-size line is too long".into())),
            None => Step::More,
        },
        BodyState::ChunkEnd => {
            if buf.starts_with(b"\r\n") || buf.starts_with(b"\n") {
                *state = BodyState::ChunkSize;
                return Ok(Step::Framing(if buf[0] == b'\r' { 2 } else { 1 }));
            }
            if buf.len() >= 2 || buf.first().is_some_and(|b| *b != b'\r') {
                return Err(Error::Invalid("a chunk does not end with CRLF".into()));
            }
            Step::More
        }
        BodyState::Trailers(seen) => match memchr::memchr(b'\n', buf) {
            Some(end) => {
                let empty = buf[..end].iter().all(|b| *b == b'\r');
                *state = if empty {
                    BodyState::Done
                } else {
                    BodyState::Trailers(seen + end + 1)
                };
                if seen + end + 1 > MAX_TRAILERS {
                    return Err(Error::Invalid("the trailers are too long".into()));
                }
                Step::Framing(end + 1)
            }
            None => Step::More,
        },
    })
}

/// What the upstream closing its connection means for a body framed as `state`: None when that is
/// the body's end (it ran to the close), else the error.
pub fn at_close(state: &mut BodyState) -> Option<Error> {
    match *state {
        BodyState::UntilClose | BodyState::Done => {
            *state = BodyState::Done;
            None
        }
        BodyState::Length(n) => Some(Error::Truncated(n)),
        _ => Some(Error::Cut),
    }
}

/// What an answer's framing and its connection's reuse depend on, gathered from its fields in one pass.
#[derive(Default)]
pub(super) struct Fields<'h> {
    /// The last transfer coding named, once a `Transfer-Encoding` field was seen (empty when it named
    /// none).
    pub transfer_encoding: Option<&'h [u8]>,
    /// The `Content-Length`, once one was seen: its value, or why it cannot be used.
    pub content_length: Option<Result<u64, String>>,
    /// `Connection` tokens.
    pub close: bool,
    pub keep_alive: bool,
    /// `Connection` values that name other fields, to be dropped with it.
    pub connection_names: Vec<&'h [u8]>,
}

/// Whether a field belongs to one hop (`http::HOP_BY_HOP`) and is not passed on. `name` is lowercase.
fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| h.as_str().as_bytes() == name)
}

/// `name` in lowercase, when it is short enough for a hop-by-hop field's name (the longest has 19
/// bytes); None otherwise, which no such name is.
fn lowercase_short(name: &[u8], buf: &mut [u8; 20]) -> Option<usize> {
    let out = buf.get_mut(..name.len())?;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(name.len())
}

impl<'h> Fields<'h> {
    /// Takes in one field; whether it is end-to-end (to be passed on).
    pub fn add(&mut self, name: &[u8], value: &'h [u8]) -> bool {
        // Only names of these lengths are read here (te; trailer, upgrade; connection, keep-alive;
        // content-length; proxy-connection; transfer-encoding; proxy-authenticate;
        // proxy-authorization): most fields are settled by their length alone.
        if !matches!(name.len(), 2 | 7 | 10 | 14 | 16 | 17 | 18 | 19) {
            return true;
        }
        let mut buf = [0u8; 20];
        let Some(n) = lowercase_short(name, &mut buf) else {
            return true;
        };
        match &buf[..n] {
            b"content-length" => {
                self.add_length(value);
                true
            }
            b"transfer-encoding" => {
                let last = value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|t| !t.is_empty());
                self.transfer_encoding = match (last, self.transfer_encoding) {
                    (Some(t), _) => Some(t),
                    (None, Some(earlier)) => Some(earlier),
                    (None, None) => Some(b""),
                };
                false
            }
            b"connection" => {
                let mut names_others = false;
                for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if !token.is_empty() {
                        let mut b = [0u8; 20];
                        names_others |= lowercase_short(token, &mut b).is_none_or(|n| !is_hop_by_hop(&b[..n]));
                    }
                }
                if names_others {
                    self.connection_names.push(value);
                }
                false
            }
            lower => !is_hop_by_hop(lower),
        }
    }

    fn add_length(&mut self, value: &[u8]) {
        if matches!(self.content_length, Some(Err(_))) {
            return;
        }
        for part in value.split(|b| *b == b',') {
            let text = part.trim_ascii();
            let n = if !text.is_empty() && text.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(text).ok().and_then(|t| t.parse::<u64>().ok())
            } else {
                None
            };
            self.content_length = Some(match (n, &self.content_length) {
                (None, _) => Err(format!("Content-Length {:?}", String::from_utf8_lossy(text))),
                (Some(n), Some(Ok(l))) if *l != n => Err("Content-Length fields that disagree".into()),
                (Some(n), _) => Ok(n),
            });
            if matches!(self.content_length, Some(Err(_))) {
                return;
            }
        }
    }
}

/// How the answer's body is delimited (RFC 9112, section 6.3).
pub(super) fn framing(method: &Method, status: StatusCode, fields: &Fields<'_>) -> Result<Framing, Error> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Framing::Upgrade);
    }
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(last) = fields.transfer_encoding {
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    match &fields.content_length {
        None => Ok(Framing::UntilClose),
        Some(Ok(n)) => Ok(Framing::Length(*n)),
        Some(Err(why)) => Err(Error::Invalid(why.clone())),
    }
}

/// The size of a chunk from its size line (without the line feed): hex digits, then optional
/// whitespace and extensions.
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest.is_empty() || matches!(rest.iter().find(|b| **b != b' ' && **b != b'\t'), None | Some(b';'));
    if digits == 0 || digits > 15 || !rest_ok {
        return Err(Error::Invalid(format!(
            "chunk-size line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        )));
    }
    let hex = std::str::from_utf8(&line[..digits]).unwrap_or("0");
    u64::from_str_radix(hex, 16).map_err(|e| Error::Invalid(format!("chunk size: {e}")))
}

/// `n` in decimal, written into `buf`.
pub(super) fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A chunk-size line for `n` bytes (`{n:x}\r\n`) written into `buf`: its length.
pub(super) fn hex_line(n: usize, buf: &mut [u8; 18]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = DIGITS[v & 0xf];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    buf[..len].copy_from_slice(&digits[i..]);
    buf[len..len + 2].copy_from_slice(b"\r\n");
    len + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn fields<'h>(pairs: &[(&str, &'h str)]) -> Fields<'h> {
        let mut f = Fields::default();
        for (k, v) in pairs {
            f.add(k.as_bytes(), v.as_bytes());
        }
        f
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let ok = StatusCode::OK;
        assert_eq!(
            framing(&Method::HEAD, ok, &fields(&[("content-length", "5")])).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(&get, StatusCode::NO_CONTENT, &fields(&[])).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(&get, StatusCode::NOT_MODIFIED, &fields(&[("content-length", "9")])).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(&get, StatusCode::SWITCHING_PROTOCOLS, &fields(&[])).unwrap(),
            Framing::Upgrade
        );
        assert_eq!(
            framing(&get, ok, &fields(&[("content-length", "5")])).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing(&get, ok, &fields(&[("content-length", "5, 5")])).unwrap(),
            Framing::Length(5)
        );
        assert!(framing(&get, ok, &fields(&[("content-length", "5"), ("content-length", "6")])).is_err());
        assert!(framing(&get, ok, &fields(&[("content-length", "+5")])).is_err());
        assert!(framing(&get, ok, &fields(&[("content-length", "")])).is_err());
        // Transfer-Encoding wins over Content-Length; a final coding other than chunked runs to the close.
        let both = fields(&[("content-length", "5"), ("transfer-encoding", "gzip, Chunked")]);
        assert_eq!(framing(&get, ok, &both).unwrap(), Framing::Chunked);
        assert_eq!(
            framing(&get, ok, &fields(&[("transfer-encoding", "chunked, gzip")])).unwrap(),
            Framing::UntilClose
        );
        assert_eq!(framing(&get, ok, &fields(&[])).unwrap(), Framing::UntilClose);
        // Field names are matched whatever their case, and several fields of a kind read as one list.
        assert_eq!(
            framing(&get, ok, &fields(&[("Content-LENGTH", "7"), ("content-length", "7")])).unwrap(),
            Framing::Length(7)
        );
        let split = fields(&[
            ("Transfer-Encoding", "gzip"),
            ("transfer-encoding", "chunked"),
            ("Transfer-Encoding", " "),
        ]);
        assert_eq!(framing(&get, ok, &split).unwrap(), Framing::Chunked);
        assert!(framing(&get, ok, &fields(&[("content-length", "99999999999999999999999")])).is_err());
    }

    #[test]
    fn every_hop_by_hop_field_is_held_back_whatever_its_case() {
        for name in [
            "TE",
            "Trailer",
            "Upgrade",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "Transfer-Encoding",
            "Proxy-Authenticate",
            "PROXY-AUTHORIZATION",
        ] {
            assert!(!Fields::default().add(name.as_bytes(), b"x"), "{name}");
        }
        for name in ["Content-Length", "Date", "Server", "X-Trailer", "Upgrades", "Te"] {
            let mut f = Fields::default();
            let kept = f.add(name.as_bytes(), b"1");
            assert_eq!(kept, name != "Te", "{name}");
        }
        let mut f = Fields::default();
        assert!(f.add(b"CONTENT-length", b"12"));
        assert_eq!(f.content_length, Some(Ok(12)));
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a\r").unwrap(), 26);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"ff;name=value\r").unwrap(), 255);
        assert_eq!(chunk_size(b"10 ;x\r").unwrap(), 16);
        assert!(chunk_size(b"\r").is_err());
        assert!(chunk_size(b"zz\r").is_err());
        assert!(chunk_size(b"1 2\r").is_err());
        assert!(chunk_size(b"1234567890abcdef0\r").is_err());
    }

    #[test]
    fn numbers_are_written_in_decimal_and_hex() {
        for n in [0u64, 7, 10, 1234, u64::MAX] {
            assert_eq!(itoa_u64(n, &mut [0; 20]), n.to_string().as_bytes());
        }
        for n in [0usize, 9, 10, 255, 16 * 1024, usize::MAX] {
            let mut b = [0; 18];
            let len = hex_line(n, &mut b);
            assert_eq!(&b[..len], format!("{n:x}\r\n").as_bytes());
        }
    }

    /// An upstream on loopback that writes `answer` after reading one request head.
    async fn answering(answer: &'static [u8]) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        answering_in(answer.to_vec(), 7).await
    }

    /// An upstream that reads one request head, writes `answer` in pieces of `piece` bytes, and closes.
    async fn answering_in(answer: Vec<u8>, piece: usize) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while memchr::memmem::find(&got, b"\r\n\r\n").is_none() {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            // Answered in pieces, so the parser sees partial heads and chunks.
            for piece in answer.chunks(piece) {
                // The client may give up on a bad answer before it is all written.
                if s.write_all(piece).await.is_err() {
                    break;
                }
                let _ = s.flush().await;
                tokio::task::yield_now().await;
            }
            got
        });
        let io = TcpStream::connect(addr).await.unwrap();
        (Conn::new(io), server)
    }

    async fn body_of(conn: &mut Conn, framing: Framing) -> Result<Vec<u8>, Error> {
        let mut state = BodyState::new(framing);
        let mut out = Vec::new();
        while let Some(piece) = std::future::poll_fn(|cx| conn.poll_body(&mut state, cx)).await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever the chunk sizes, the trailers and the pieces the answer arrives in, the body comes
        /// out whole and nothing is left behind it.
        #[test]
        fn chunked_bodies_decode_whole_whatever_the_pieces(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            sizes in proptest::collection::vec(1usize..700, 1..6),
            piece in 1usize..80,
            trailers in proptest::prelude::any::<bool>(),
        ) {
            let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut rest = &body[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                wire.extend_from_slice(format!("{:X};n=1\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
                rest = tail;
            }
            wire.extend_from_slice(if trailers { b"0\r\nX-T: 1\r\n\r\n".as_slice() } else { b"0\r\n\r\n" });
            let (got, drained) = block_on(async {
                let (mut conn, _server) = answering_in(wire, piece).await;
                let head = conn.send(&Method::GET, "/", &HeaderMap::new(), Payload::None).await.unwrap();
                let got = body_of(&mut conn, head.framing).await.unwrap();
                (got, conn.drained())
            });
            proptest::prop_assert_eq!(got, body);
            proptest::prop_assert!(drained);
        }

        /// Any bytes as an answer, after a plausible head or not: the exchange ends, with a body or
        /// an error, and never panics or hangs.
        #[test]
        fn any_answer_ends_in_a_body_or_an_error(
            head in proptest::sample::select(vec![
                "",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 100 Continue\r\n\r\n",
            ]),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            piece in 1usize..40,
        ) {
            let mut wire = head.as_bytes().to_vec();
            wire.extend_from_slice(&tail);
            let ended = block_on(async {
                let exchange = async {
                    let (mut conn, _server) = answering_in(wire, piece).await;
                    match conn.send(&Method::GET, "/", &HeaderMap::new(), Payload::None).await {
                        Ok(head) => body_of(&mut conn, head.framing).await.map(|_| ()),
                        Err(e) => Err(e),
                    }
                };
                tokio::time::timeout(std::time::Duration::from_secs(20), exchange).await.is_ok()
            });
            proptest::prop_assert!(ended, "the exchange did not end");
        }
    }

    #[tokio::test]
    async fn a_chunked_answer_after_an_interim_one_is_decoded() {
        let (mut conn, server) = answering(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
        )
        .await;
        let head = conn
            .send(&Method::GET, "/p?q=1", &headers(&[("host", "svc")]), Payload::None)
            .await
            .unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.keep_alive);
        assert_eq!(head.headers.get("x-a").unwrap(), "b");
        assert_eq!(body_of(&mut conn, head.framing).await.unwrap(), b"hello, world");
        assert!(conn.drained());
        let request = server.await.unwrap();
        assert_eq!(request, b"GET /p?q=1 HTTP/1.1\r\nhost: svc\r\n\r\n");
    }

    #[tokio::test]
    async fn an_answer_with_both_framings_is_read_as_chunked_and_its_connection_not_kept() {
        let (mut conn, _server) = answering(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        let head = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
        assert!(!head.headers.contains_key(header::CONTENT_LENGTH));
        assert_eq!(body_of(&mut conn, head.framing).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn hop_by_hop_fields_of_an_answer_are_read_and_not_kept() {
        let (mut conn, _server) = answering(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret, upgrade\r\nKeep-Alive: timeout=5\r\n\
              X-Secret: 1\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: x\r\nX-Kept: yes\r\n\
              Content-Length: 2\r\n\r\nok",
        )
        .await;
        let head = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap();
        let mut names: Vec<&str> = head.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
        assert!(head.keep_alive);
        assert_eq!(body_of(&mut conn, head.framing).await.unwrap(), b"ok");

        // A 101 keeps them all: the client needs its Upgrade and Connection.
        let (mut conn, _server) =
            answering(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").await;
        let head = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap();
        assert_eq!(head.framing, Framing::Upgrade);
        assert_eq!(head.headers.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(head.headers.get(header::CONNECTION).unwrap(), "Upgrade");

        // `Connection: close` is read, and the connection not kept.
        let (mut conn, _server) = answering(b"HTTP/1.1 200 OK\r\nCONNECTION: Close\r\nContent-Length: 0\r\n\r\n").await;
        let head = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap();
        assert!(!head.keep_alive);
        assert!(head.headers.get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn field_names_remembered_from_one_answer_do_not_leak_into_the_next() {
        use tokio::io::AsyncReadExt as _;
        // Three answers on one connection, each after its request: the same names, then others in
        // other places and cases.
        let answers: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nServer: a\r\nX-One: 1\r\nContent-Length: 1\r\n\r\n1",
            b"HTTP/1.1 200 OK\r\nServer: b\r\nX-One: 2\r\nContent-Length: 1\r\n\r\n2",
            b"HTTP/1.1 200 OK\r\nX-ONE: 3\r\nConnection: keep-alive\r\nX-Two: 4\r\nserver: c\r\nETag: \"e\"\r\n\
              Content-Length: 1\r\n\r\n3",
        ];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            for answer in answers {
                while memchr::memmem::find(&got, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut chunk).await.unwrap();
                    got.extend_from_slice(&chunk[..n]);
                }
                got.clear();
                s.write_all(answer).await.unwrap();
            }
            // Held open until the client is done.
            let _ = s.read(&mut chunk).await;
        });
        let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let mut seen = Vec::new();
        for _ in 0..3 {
            let head = conn
                .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
                .await
                .unwrap();
            let fields: Vec<String> = head
                .headers
                .iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect();
            seen.push(fields.join(" "));
            body_of(&mut conn, head.framing).await.unwrap();
        }
        assert_eq!(
            seen,
            [
                "server=a x-one=1 content-length=1",
                "server=b x-one=2 content-length=1",
                "x-one=3 x-two=4 server=c etag=\"e\" content-length=1",
            ]
        );
        // Names after a field that is not passed on are remembered too.
        let last = conn.names.get(5).cloned().flatten().map(|(_, n)| n);
        assert_eq!(last, Some(header::CONTENT_LENGTH));
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_not_a_short_success() {
        let (mut conn, _server) = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nonly ten b").await;
        let head = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap();
        assert!(matches!(
            body_of(&mut conn, head.framing).await,
            Err(Error::Truncated(10))
        ));
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_the_close_and_the_connection_is_not_kept() {
        let (mut conn, _server) = answering(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").await;
        let head = conn
            .send(
                &Method::POST,
                "/",
                &HeaderMap::new(),
                Payload::Bytes(Bytes::from_static(b"x")),
            )
            .await
            .unwrap();
        assert!(!head.keep_alive);
        assert_eq!(body_of(&mut conn, head.framing).await.unwrap(), b"until the end");
    }

    #[tokio::test]
    async fn garbage_is_an_invalid_answer() {
        let (mut conn, _server) = answering(b"HTTP/1.1 abc\r\n\r\n").await;
        let err = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }

    #[tokio::test]
    async fn a_close_before_any_answer_is_reported_as_such() {
        let (mut conn, _server) = answering(b"").await;
        let err = conn
            .send(&Method::GET, "/", &HeaderMap::new(), Payload::None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
    }
}
