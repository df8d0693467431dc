//! Reply decoding for clients (the CLI, the bench tool, the Rust SDK): RESP2 and RESP3 values.
//!
//! [`decode`] looks at a buffer that may hold a partial reply and returns the first complete value and the
//! bytes it took, or `Ok(None)`. Lengths are checked against what the buffer holds before anything is
//! allocated, and nesting is bounded.

use bytes::Bytes;
use thiserror::Error;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Double(f64),
    Bool(bool),
    /// RESP3 out-of-band push (pub/sub messages).
    Push(Vec<Value>),
    /// RESP3 big number, as text.
    BigNumber(String),
    /// RESP3 verbatim string: format and text.
    Verbatim(String, Bytes),
}

impl Value {
    /// The value as text when it is a string of some kind.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Simple(s) | Value::BigNumber(s) => Some(s.clone()),
            Value::Bulk(b) | Value::Verbatim(_, b) => Some(String::from_utf8_lossy(b).to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown reply type byte {0:#04x}")]
    UnknownType(u8),
    #[error("invalid length or number in reply header")]
    BadHeader,
    #[error("reply nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("bulk reply not terminated by CRLF")]
    MissingCrlf,
}

const MAX_DEPTH: usize = 64;

/// Decodes the first complete value in `buf`: `Ok(Some((value, consumed)))`, or `Ok(None)` if incomplete.
pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, DecodeError> {
    let mut pos = 0;
    match value(buf, &mut pos, 0)? {
        Some(v) => Ok(Some((v, pos))),
        None => Ok(None),
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*pos..];
    let nl = memchr::memchr(b'\n', rest)?;
    let end = if nl > 0 && rest[nl - 1] == b'\r' { nl - 1 } else { nl };
    *pos += nl + 1;
    Some(&rest[..end])
}

fn number(l: &[u8]) -> Result<i64, DecodeError> {
    std::str::from_utf8(l).ok().and_then(|s| s.parse().ok()).ok_or(DecodeError::BadHeader)
}

fn blob(buf: &[u8], pos: &mut usize, len: i64) -> Result<Option<Bytes>, DecodeError> {
    let len = usize::try_from(len).map_err(|_| DecodeError::BadHeader)?;
    if buf.len() < *pos + len + 2 {
        return Ok(None);
    }
    if &buf[*pos + len..*pos + len + 2] != b"\r\n" {
        return Err(DecodeError::MissingCrlf);
    }
    let b = Bytes::copy_from_slice(&buf[*pos..*pos + len]);
    *pos += len + 2;
    Ok(Some(b))
}

fn items(buf: &[u8], pos: &mut usize, n: i64, depth: usize) -> Result<Option<Vec<Value>>, DecodeError> {
    let n = usize::try_from(n).map_err(|_| DecodeError::BadHeader)?;
    // Every element takes at least 3 bytes: a count beyond what is buffered cannot be complete yet, and
    // the vector never grows past what the buffer can hold.
    if n > (buf.len() - *pos) / 3 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match value(buf, pos, depth + 1)? {
            Some(v) => out.push(v),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

fn value(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    if *pos >= buf.len() {
        return Ok(None);
    }
    let t = buf[*pos];
    *pos += 1;
    let Some(l) = line(buf, pos) else { return Ok(None) };
    let text = || String::from_utf8_lossy(l).to_string();
    Ok(Some(match t {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(number(l)?),
        b'$' => {
            let n = number(l)?;
            if n < 0 {
                Value::Nil
            } else {
                match blob(buf, pos, n)? {
                    Some(b) => Value::Bulk(b),
                    None => return Ok(None),
                }
            }
        }
        b'!' => match blob(buf, pos, number(l)?)? {
            Some(b) => Value::Error(String::from_utf8_lossy(&b).to_string()),
            None => return Ok(None),
        },
        b'=' => match blob(buf, pos, number(l)?)? {
            Some(b) if b.len() >= 4 && b[3] == b':' => {
                Value::Verbatim(String::from_utf8_lossy(&b[..3]).to_string(), b.slice(4..))
            }
            Some(b) => Value::Verbatim(String::new(), b),
            None => return Ok(None),
        },
        b'*' | b'~' | b'>' => {
            let n = number(l)?;
            if n < 0 {
                Value::Nil
            } else {
                match items(buf, pos, n, depth)? {
                    Some(v) if t == b'*' => Value::Array(v),
                    Some(v) if t == b'~' => Value::Set(v),
                    Some(v) => Value::Push(v),
                    None => return Ok(None),
                }
            }
        }
        b'%' => {
            let n = number(l)?;
            match items(buf, pos, n.checked_mul(2).ok_or(DecodeError::BadHeader)?, depth)? {
                Some(v) => {
                    let mut it = v.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Value::Map(pairs)
                }
                None => return Ok(None),
            }
        }
        b'_' => Value::Nil,
        b',' => {
            let s = text();
            Value::Double(match s.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => s.parse().map_err(|_| DecodeError::BadHeader)?,
            })
        }
        b'#' => Value::Bool(l == b"t"),
        b'(' => Value::BigNumber(text()),
        other => return Err(DecodeError::UnknownType(other)),
    }))
}

/// Encodes a command as a multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        crate::encode::bulk(out, a.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_resp2_and_resp3_and_waits_for_more() {
        let input = b"*3\r\n$1\r\na\r\n:5\r\n%1\r\n+k\r\n,1.5\r\n";
        for cut in 0..input.len() {
            assert_eq!(decode(&input[..cut]).unwrap(), None, "cut {cut}");
        }
        let (v, n) = decode(input).unwrap().unwrap();
        assert_eq!(n, input.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Bulk(Bytes::from("a")),
                Value::Int(5),
                Value::Map(vec![(Value::Simple("k".into()), Value::Double(1.5))])
            ])
        );
        assert_eq!(decode(b"$-1\r\n").unwrap().unwrap().0, Value::Nil);
        assert_eq!(decode(b"-ERR x\r\n").unwrap().unwrap().0, Value::Error("ERR x".into()));
        assert_eq!(decode(b"#t\r\n").unwrap().unwrap().0, Value::Bool(true));
        assert!(decode(b"?\r\n").is_err());
        // A huge claimed count is incomplete, not an allocation.
        assert_eq!(decode(b"*999999999999\r\n").unwrap(), None);
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&["SET", "k", "v"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    }
}
