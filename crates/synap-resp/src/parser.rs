//! The request parser: multibulk (`*N\r\n$len\r\narg\r\n...`) and inline commands (`PING\r\n`), resumable
//! and bounded.
//!
//! The parser consumes bytes from the front of the connection's `BytesMut` as soon as a part of a command
//! is complete (the `*N` header, each `$len` header, each argument), and keeps the partial command in its
//! own state. A read that brings the next few bytes therefore only looks at those bytes: nothing already
//! parsed is scanned again. Arguments are split off the buffer as `Bytes`, without copying.
//!
//! Limits (each a [`ProtocolError`], after which the connection answers `-ERR Protocol error: ...` and
//! closes, as Redis does): argument count, bulk length, inline line length. Pre-allocation never trusts
//! the client: the argument vector starts at `min(N, 1024)`, and a bulk's buffer space is reserved up to
//! a cap, growing as bytes really arrive.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Parser limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most arguments in one command (Redis: 1M... here configurable).
    pub max_args: usize,
    /// Largest single argument.
    pub max_bulk: usize,
    /// Longest inline command line, and longest `*N` / `$len` header line.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_args: 1024 * 1024, max_bulk: 512 * 1024 * 1024, max_inline: 64 * 1024 }
    }
}

/// Protocol violations; the message is what Redis answers after `-ERR `.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: bulk argument not terminated by CRLF")]
    MissingCrlf,
}

/// Space reserved ahead for a big bulk, at most (the rest grows as data arrives).
const RESERVE_CAP: usize = 1024 * 1024;
const ARGS_PREALLOC_CAP: usize = 1024;

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    /// Inside a multibulk: `remaining` arguments to go; `bulk` is the length of the argument whose
    /// header was read and whose bytes have not all arrived.
    Multibulk { remaining: usize, args: Vec<Bytes>, bulk: Option<usize> },
}

/// A resumable request parser; one per connection.
#[derive(Debug, Default)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// Bytes of the arguments of the current (incomplete) command already split off the buffer.
    held: usize,
}

/// The end of a header line (`*N` or `$len`): the index of its `\r`, `Ok(None)` while incomplete. A line
/// longer than `max` is `too_long` whether or not its end has arrived, so the outcome does not depend on
/// how the bytes were split into reads.
fn header_line(
    buf: &[u8],
    max: usize,
    too_long: ProtocolError,
    invalid: ProtocolError,
) -> Result<Option<usize>, ProtocolError> {
    match memchr::memchr(b'\n', buf) {
        None if buf.len() > max => Err(too_long),
        None => Ok(None),
        Some(nl) if nl > max => Err(too_long),
        Some(nl) if nl == 0 || buf[nl - 1] != b'\r' => Err(invalid),
        Some(nl) => Ok(Some(nl - 1)),
    }
}

/// Parses a decimal i64 header value strictly (as Redis's `string2ll`).
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let (neg, d) = if digits[0] == b'-' { (true, &digits[1..]) } else { (false, digits) };
    if d.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, state: State::Idle, held: 0 }
    }

    /// Bytes the parser holds for the command in progress (they left the read buffer, but still count
    /// against the connection's pending-input limit).
    /// Changes the limits from the next header read on (a client that authenticated gets the full ones).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// True when a command has started but is not complete.
    pub fn in_progress(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Returns the next complete command, `Ok(None)` when more bytes are needed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match &mut self.state {
                State::Idle => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'*' {
                        match self.parse_inline(buf)? {
                            Some(args) if args.is_empty() => continue, // empty line: ignored
                            other => return Ok(other),
                        }
                    }
                    let Some(cr) = header_line(
                        buf,
                        self.limits.max_inline,
                        ProtocolError::TooBigMultibulkCount,
                        ProtocolError::InvalidMultibulkLength,
                    )?
                    else {
                        return Ok(None);
                    };
                    let n = parse_len(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if n > self.limits.max_args as i64 {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    buf.advance(cr + 2);
                    if n <= 0 {
                        continue; // `*0` and `*-1` are no commands
                    }
                    let n = n as usize;
                    self.state = State::Multibulk {
                        remaining: n,
                        args: Vec::with_capacity(n.min(ARGS_PREALLOC_CAP)),
                        bulk: None,
                    };
                }
                State::Multibulk { remaining, args, bulk } => {
                    while *remaining > 0 {
                        let len = match *bulk {
                            Some(len) => len,
                            None => {
                                if buf.is_empty() {
                                    return Ok(None);
                                }
                                if buf[0] != b'$' {
                                    return Err(ProtocolError::ExpectedDollar(buf[0] as char));
                                }
                                let Some(cr) = header_line(
                                    buf,
                                    self.limits.max_inline,
                                    ProtocolError::TooBigBulkCount,
                                    ProtocolError::InvalidBulkLength,
                                )?
                                else {
                                    return Ok(None);
                                };
                                let len = parse_len(&buf[1..cr]).ok_or(ProtocolError::InvalidBulkLength)?;
                                if len < 0 || len as u64 > self.limits.max_bulk as u64 {
                                    return Err(ProtocolError::InvalidBulkLength);
                                }
                                buf.advance(cr + 2);
                                let len = len as usize;
                                *bulk = Some(len);
                                // Reserve room for the argument, but never more than the cap up front.
                                let want = (len + 2).min(RESERVE_CAP);
                                if buf.capacity() - buf.len() < want {
                                    buf.reserve(want);
                                }
                                len
                            }
                        };
                        if buf.len() < len + 2 {
                            return Ok(None);
                        }
                        if &buf[len..len + 2] != b"\r\n" {
                            return Err(ProtocolError::MissingCrlf);
                        }
                        let arg = buf.split_to(len).freeze();
                        buf.advance(2);
                        self.held += len;
                        args.push(arg);
                        *bulk = None;
                        *remaining -= 1;
                    }
                    let State::Multibulk { args, .. } = std::mem::take(&mut self.state) else { unreachable!() };
                    self.held = 0;
                    return Ok(Some(args));
                }
            }
        }
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            if buf.len() > self.limits.max_inline {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        if nl > self.limits.max_inline {
            return Err(ProtocolError::TooBigInline);
        }
        let line = buf.split_to(nl + 1);
        let mut line = &line[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let args = split_args(line)?;
        if args.len() > self.limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        Ok(Some(args))
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line as Redis's `sdssplitargs`: whitespace-separated words, `"..."` with
/// `\n \r \t \b \a \\ \" \xHH` escapes, and `'...'` with `\'`. A closing quote must be followed by a space
/// or the end.
pub fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= line.len() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3]))
                {
                    cur.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < line.len() {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else if insq {
                if i >= line.len() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else {
                if i >= line.len() {
                    break;
                }
                match line[i] {
                    c if c.is_ascii_whitespace() => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = Parser::new(limits);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = p.parse(&mut buf)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn multibulk_and_inline() {
        let got =
            parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\nPING\r\n\r\n*0\r\nGET  k\n", Limits::default())
                .unwrap();
        assert_eq!(got, vec![args(&["SET", "k", "v\r\nxy"]), args(&["PING"]), args(&["GET", "k"])]);
    }

    #[test]
    fn resumes_at_every_split_point() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let whole = parse_all(input, Limits::default()).unwrap();
        for cut in 0..input.len() {
            let mut p = Parser::default();
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            while let Some(c) = p.parse(&mut buf).unwrap() {
                got.push(c);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(c) = p.parse(&mut buf).unwrap() {
                got.push(c);
            }
            assert_eq!(got, whole, "split at {cut}");
        }
    }

    #[test]
    fn limits_and_malformed_frames() {
        let small = Limits { max_args: 2, max_bulk: 4, max_inline: 16 };
        assert_eq!(parse_all(b"*3\r\n", small), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*1\r\n$5\r\n", small), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n", small), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(&[b'A'; 17], small), Err(ProtocolError::TooBigInline));
        assert_eq!(parse_all(b"*1\r\n:4\r\n", small), Err(ProtocolError::ExpectedDollar(':')));
        assert_eq!(parse_all(b"*x\r\n", small), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*1\r\n$2\r\nabcd", small), Err(ProtocolError::MissingCrlf));
        assert_eq!(parse_all(b"SET \"a\r\n", small), Err(ProtocolError::UnbalancedQuotes));
        // A huge claimed count allocates nothing up front.
        let mut p = Parser::default();
        let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(p.in_progress());
    }

    #[test]
    fn inline_quotes_and_escapes() {
        assert_eq!(
            split_args(br#"set "a b" 'c\'d' "\x41\n""#).unwrap(),
            vec![Bytes::from("set"), Bytes::from("a b"), Bytes::from("c'd"), Bytes::from("A\n")]
        );
        assert_eq!(split_args(br#""a"b"#), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(split_args(b"   ").unwrap(), Vec::<Bytes>::new());
    }
}

#[cfg(test)]
mod held_tests {
    use super::*;

    #[test]
    fn held_bytes_count_the_arguments_of_the_command_in_progress() {
        let mut p = Parser::default();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$11\r\nwor"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert_eq!(p.held_bytes(), 8, "SET + hello left the buffer but are still held");
        buf.extend_from_slice(b"ld-12345\r\n");
        assert!(p.parse(&mut buf).unwrap().is_some());
        assert_eq!(p.held_bytes(), 0);
    }
}
