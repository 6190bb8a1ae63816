//! An incremental, bounded HTTP/1.1 response parser.
//!
//! Bytes are fed as they arrive, in any split; each byte is looked at a constant number
//! of times (the head is scanned once for its end and parsed once), and everything kept
//! is bounded: the head by [`MAX_HEAD`] and [`MAX_HEADERS`], a chunk-size line by
//! [`MAX_CHUNK_LINE`], the trailers by [`MAX_HEAD`], the body by [`MAX_RESPONSE_BODY`].
//! A server that never ends a line is cut off at the bound with a named error instead
//! of being read until the deadline.

use std::time::Duration;

use gateway_auth_api::NetError;

use super::wire::Response;
use super::{HttpError, Limit, MAX_RESPONSE_BODY};

/// The largest response head (status line and header fields), in bytes; interim (1xx)
/// heads count towards it too.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields one response head may have.
pub const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (size and extensions), in bytes.
pub const MAX_CHUNK_LINE: usize = 1024;

/// Parses one response, fed in pieces.
#[derive(Default)]
pub struct ResponseParser {
    state: State,
    /// The head read so far (or the whole head, until it is parsed).
    head: Vec<u8>,
    /// Head bytes seen in total, interim responses included.
    head_total: usize,
    /// The response, once its head is parsed.
    response: Option<Response>,
    /// Whether the connection may carry another exchange after this response.
    reusable: bool,
    /// Bytes arrived after the end of the response: the connection is out of step.
    trailing: bool,
    /// The server's own idle limit, from `Keep-Alive: timeout=N`.
    server_idle: Option<Duration>,
}

/// What a response says about reusing its connection for another request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// How long the server says it keeps an idle connection, when it says.
    pub server_idle: Option<Duration>,
}

#[derive(Default)]
enum State {
    #[default]
    Head,
    Length(u64),
    UntilClose,
    Chunk(Chunk),
    Done,
}

enum Chunk {
    /// Reading a chunk-size line: its bytes so far.
    Size(Vec<u8>),
    /// Reading chunk data: bytes left.
    Data(u64),
    /// After chunk data: whether the CR was seen.
    DataEnd { cr: bool },
    /// In the trailer section: bytes so far and the current line's length.
    Trailers { total: usize, line: usize },
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

impl ResponseParser {
    /// A parser for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes from the connection; returns the response once it is
    /// complete. Bytes after a complete response are not read: they only make the
    /// connection unfit for reuse ([`Self::keep_alive`]).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Option<Response>, HttpError> {
        while !input.is_empty() {
            let used = match &mut self.state {
                State::Head => self.head_bytes(input)?,
                State::Length(left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    *left -= n as u64;
                    let done = *left == 0;
                    self.body(&input[..n])?;
                    if done {
                        self.state = State::Done;
                    }
                    n
                }
                State::UntilClose => {
                    self.body(input)?;
                    input.len()
                }
                State::Chunk(_) => self.chunk_bytes(input)?,
                State::Done => input.len(),
            };
            input = &input[used..];
            if matches!(self.state, State::Done) {
                self.trailing |= !input.is_empty();
                return Ok(self.response.take());
            }
        }
        Ok(None)
    }

    /// Whether the connection may carry another request once the response is complete
    /// (RFC 9112 §9.3): HTTP/1.1 without `Connection: close`, a body framed by its
    /// length or by chunks and read to its end, and nothing after it.
    pub fn keep_alive(&self) -> Option<KeepAlive> {
        (self.reusable && !self.trailing && matches!(self.state, State::Done)).then_some(
            KeepAlive {
                server_idle: self.server_idle,
            },
        )
    }

    /// The peer closed the connection: the response if its framing says it is
    /// complete, else why not.
    pub fn close(&mut self) -> Result<Response, HttpError> {
        match self.state {
            State::UntilClose | State::Done => self
                .response
                .take()
                .ok_or_else(|| malformed("the response was already taken")),
            State::Head if self.head_total == 0 => Err(HttpError::Transport(NetError::Reset(
                "the server closed the connection before answering".into(),
            ))),
            State::Head => Err(HttpError::Transport(NetError::Reset(
                "the server closed the connection in the middle of the response head".into(),
            ))),
            _ => Err(HttpError::Transport(NetError::Reset(
                "the server closed the connection in the middle of the body".into(),
            ))),
        }
    }

    /// Adds head bytes up to the end of the head; parses it when it is complete.
    fn head_bytes(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        for (i, &byte) in input.iter().enumerate() {
            // Skipped bytes count too: a server sending only empty lines is cut off.
            self.head_total += 1;
            if self.head_total > MAX_HEAD {
                return Err(HttpError::TooLarge(Limit::Head(MAX_HEAD)));
            }
            // Empty lines before a status line are skipped (RFC 9112 §2.2).
            if self.head.is_empty() && (byte == b'\r' || byte == b'\n') {
                continue;
            }
            self.head.push(byte);
            if byte == b'\n' && (self.head.ends_with(b"\n\n") || self.head.ends_with(b"\n\r\n")) {
                self.parse_head()?;
                return Ok(i + 1);
            }
        }
        Ok(input.len())
    }

    fn parse_head(&mut self) -> Result<(), HttpError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(malformed("incomplete response head")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::TooLarge(Limit::HeaderCount(MAX_HEADERS)));
            }
            Err(e) => return Err(malformed(format!("response head: {e}"))),
        }
        let status = parsed.code.unwrap_or(0);
        let http11 = parsed.version == Some(1);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        self.head.clear();
        match status {
            101 => {
                return Err(malformed(
                    "101 switching protocols, which was not asked for",
                ));
            }
            // An interim response: the final one follows.
            100..=199 => return Ok(()),
            _ => {}
        }
        let response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        self.state = framing(&response)?;
        let delimited = match self.state {
            State::Length(_) | State::Chunk(_) => true,
            // A redirect's body is skipped, not read: the connection is out of step.
            State::Done => !matches!(status, 300..=399),
            State::UntilClose | State::Head => false,
        };
        self.reusable = http11 && delimited && !asks_to_close(&response);
        self.server_idle = response.header("keep-alive").and_then(server_idle);
        self.response = Some(response);
        Ok(())
    }

    fn body(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        let response = self.response.as_mut().expect("a body follows a head");
        if !within_body_bound(response.body.len() as u64, bytes.len() as u64) {
            return Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
        }
        response.body.extend_from_slice(bytes);
        Ok(())
    }

    fn body_len(&self) -> usize {
        self.response.as_ref().map_or(0, |r| r.body.len())
    }

    fn chunk_bytes(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let body_len = self.body_len() as u64;
        let State::Chunk(chunk) = &mut self.state else {
            unreachable!("called in the chunked state")
        };
        match chunk {
            Chunk::Size(line) => {
                for (i, &byte) in input.iter().enumerate() {
                    if byte == b'\n' {
                        let size = chunk_size(line)?;
                        if size == 0 {
                            *chunk = Chunk::Trailers { total: 0, line: 0 };
                        } else if !within_body_bound(body_len, size) {
                            return Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
                        } else {
                            *chunk = Chunk::Data(size);
                        }
                        return Ok(i + 1);
                    }
                    if line.len() >= MAX_CHUNK_LINE {
                        return Err(HttpError::TooLarge(Limit::ChunkLine(MAX_CHUNK_LINE)));
                    }
                    line.push(byte);
                }
                Ok(input.len())
            }
            Chunk::Data(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    *chunk = Chunk::DataEnd { cr: false };
                }
                self.body(&input[..n])?;
                Ok(n)
            }
            Chunk::DataEnd { cr } => match input[0] {
                b'\r' if !*cr => {
                    *cr = true;
                    Ok(1)
                }
                b'\n' => {
                    *chunk = Chunk::Size(Vec::new());
                    Ok(1)
                }
                _ => Err(malformed("chunk data is not followed by CRLF")),
            },
            Chunk::Trailers { total, line } => {
                for (i, &byte) in input.iter().enumerate() {
                    *total += 1;
                    if *total > MAX_HEAD {
                        return Err(HttpError::TooLarge(Limit::Trailers(MAX_HEAD)));
                    }
                    match byte {
                        b'\n' if *line == 0 => {
                            self.state = State::Done;
                            return Ok(i + 1);
                        }
                        b'\n' => *line = 0,
                        b'\r' => {}
                        _ => *line += 1,
                    }
                }
                Ok(input.len())
            }
        }
    }
}

/// How the body of `response` is delimited (RFC 9112 §6.3).
fn framing(response: &Response) -> Result<State, HttpError> {
    // A redirect's body is not wanted: redirects are never followed. (No request here
    // is a HEAD, so every other status but 204 and 304 may have a body.)
    if matches!(response.status, 204 | 300..=399) {
        return Ok(State::Done);
    }
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for (name, value) in &response.headers {
        match name.as_str() {
            "transfer-encoding" => {
                for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    if !coding.eq_ignore_ascii_case("chunked") || chunked {
                        return Err(malformed(format!("unsupported transfer-encoding: {value}")));
                    }
                    chunked = true;
                }
            }
            "content-length" => {
                for item in value.split(',').map(str::trim) {
                    let n = (!item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| item.parse::<u64>().ok())
                        .flatten()
                        .ok_or_else(|| malformed(format!("invalid content-length: {value}")))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(malformed("conflicting content-length values"));
                    }
                    length = Some(n);
                }
            }
            _ => {}
        }
    }
    // Transfer-Encoding overrides Content-Length.
    Ok(match (chunked, length) {
        (true, _) => State::Chunk(Chunk::Size(Vec::new())),
        (false, Some(n)) if n > MAX_RESPONSE_BODY as u64 => {
            return Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
        }
        (false, Some(0)) => State::Done,
        (false, Some(n)) => State::Length(n),
        (false, None) => State::UntilClose,
    })
}

/// Whether the response's `Connection` field carries the `close` option.
fn asks_to_close(response: &Response) -> bool {
    response
        .headers
        .iter()
        .filter(|(name, _)| name == "connection")
        .flat_map(|(_, value)| value.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case("close"))
}

/// The `timeout` parameter of a `Keep-Alive` field (`timeout=5, max=100`), in seconds.
fn server_idle(value: &str) -> Option<Duration> {
    value.split(',').find_map(|param| {
        let (name, seconds) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("timeout"))
            .then(|| seconds.trim().parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// Whether `more` body bytes after `so_far` stay within [`MAX_RESPONSE_BODY`]. Checked:
/// a declared chunk size near 2^64 must not wrap the sum to a small number.
fn within_body_bound(so_far: u64, more: u64) -> bool {
    so_far
        .checked_add(more)
        .is_some_and(|total| total <= MAX_RESPONSE_BODY as u64)
}

/// The size on a chunk-size line: hex digits, then optional extensions after `;`. A
/// size too large for a `u64` is larger than the body bound, and refused as such.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(malformed("invalid chunk size"));
    }
    digits
        .iter()
        .try_fold(0u64, |size, &digit| {
            let value = char::from(digit).to_digit(16)?;
            size.checked_mul(16)?.checked_add(u64::from(value))
        })
        .ok_or(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)))
}

#[cfg(test)]
mod tests;
