//! A blocking RESP2/RESP3 client that keeps replies as values, with the normalizations the comparison
//! allows.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A reply, as either server sends it. Doubles keep their text: formatting is compared too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum V {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<V>>),
    Null,
    Double(Vec<u8>),
    Bool(bool),
    Verbatim(Vec<u8>),
    BigNum(Vec<u8>),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Push(Vec<V>),
}

impl V {
    /// Element order that Redis does not promise: sorted (a map's entries, a flat RESP2 field-value
    /// array when `pairs`).
    pub fn unordered(self, pairs: bool) -> V {
        match self {
            V::Array(Some(v)) if pairs && v.len() % 2 == 0 => {
                let mut chunks: Vec<Vec<V>> = v.chunks(2).map(|c| c.to_vec()).collect();
                chunks.sort();
                V::Array(Some(chunks.concat()))
            }
            V::Array(Some(mut v)) => {
                v.sort();
                V::Array(Some(v))
            }
            V::Set(mut v) => {
                v.sort();
                V::Set(v)
            }
            V::Map(mut m) => {
                m.sort();
                V::Map(m)
            }
            other => other,
        }
    }

    /// For random picks: only the shape (nil or not, how many items) is compared.
    pub fn shape(self) -> V {
        match self {
            V::Bulk(Some(_)) => V::Bulk(Some(Vec::new())),
            V::Array(Some(v)) => V::Array(Some(vec![V::Null; v.len()])),
            V::Set(v) => V::Set(vec![V::Null; v.len()]),
            V::Map(m) => V::Map(vec![(V::Null, V::Null); m.len()]),
            other => other,
        }
    }

    /// A remaining time: any positive value is the same (the two servers do not run at the same moment).
    pub fn ttl(self) -> V {
        match self {
            V::Int(n) if n > 0 => V::Int(1),
            other => other,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, V::Error(_))
    }
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let list = |f: &mut std::fmt::Formatter<'_>, open: &str, v: &[V]| {
            write!(f, "{open}")?;
            for (i, x) in v.iter().enumerate() {
                write!(f, "{}{x}", if i > 0 { ", " } else { "" })?;
            }
            write!(f, "]")
        };
        match self {
            V::Simple(b) => write!(f, "+{}", s(b)),
            V::Error(b) => write!(f, "-{}", s(b)),
            V::Int(n) => write!(f, ":{n}"),
            V::Bulk(None) => write!(f, "nil"),
            V::Array(None) => write!(f, "nil-array"),
            V::Bulk(Some(b)) => write!(f, "{:?}", s(b)),
            V::Array(Some(v)) => list(f, "[", v),
            V::Null => write!(f, "null"),
            V::Double(b) => write!(f, ",{}", s(b)),
            V::Bool(b) => write!(f, "#{b}"),
            V::Verbatim(b) => write!(f, "={}", s(b)),
            V::BigNum(b) => write!(f, "({}", s(b)),
            V::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    write!(f, "{}{k}: {v}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "}}")
            }
            V::Set(v) => list(f, "~[", v),
            V::Push(v) => list(f, ">[", v),
        }
    }
}

/// One connection.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// The most a reply may hold (items or bytes): a generated command never asks for more.
const MAX_REPLY: i64 = 64 << 20;

impl Client {
    pub fn connect(addr: &str) -> Result<Client> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Client { r: BufReader::new(s.try_clone()?), w: s })
    }

    pub fn send(&mut self, args: &[Vec<u8>]) -> Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out)?;
        Ok(())
    }

    pub fn call(&mut self, args: &[Vec<u8>]) -> Result<V> {
        self.send(args)?;
        self.read()
    }

    pub fn call_str(&mut self, line: &str) -> Result<V> {
        let args: Vec<Vec<u8>> = line.split(' ').map(|a| a.as_bytes().to_vec()).collect();
        self.call(&args)
    }

    pub fn read(&mut self) -> Result<V> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            bail!("connection closed or bad reply line {:?}", String::from_utf8_lossy(&line));
        }
        line.truncate(line.len() - 2);
        let (kind, rest) = (line[0], line[1..].to_vec());
        let n = || -> Result<i64> {
            let n: i64 = std::str::from_utf8(&rest)?.parse()?;
            if n > MAX_REPLY {
                bail!("reply length {n} too large");
            }
            Ok(n)
        };
        Ok(match kind {
            b'+' => V::Simple(rest),
            b'-' => V::Error(rest),
            b':' => V::Int(std::str::from_utf8(&rest)?.parse()?),
            b'_' => V::Null,
            b',' => V::Double(rest),
            b'#' => V::Bool(rest == b"t"),
            b'(' => V::BigNum(rest),
            b'$' | b'=' | b'!' if n()? < 0 => V::Bulk(None),
            b'$' | b'=' | b'!' => {
                let mut buf = vec![0; n()? as usize + 2];
                self.r.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                match kind {
                    b'=' => V::Verbatim(buf),
                    b'!' => V::Error(buf),
                    _ => V::Bulk(Some(buf)),
                }
            }
            b'*' if n()? < 0 => V::Array(None),
            b'*' | b'~' | b'>' => {
                let items = (0..n()?).map(|_| self.read()).collect::<Result<Vec<_>>>()?;
                match kind {
                    b'*' => V::Array(Some(items)),
                    b'~' => V::Set(items),
                    _ => V::Push(items),
                }
            }
            b'%' => {
                let mut pairs = Vec::new();
                for _ in 0..n()? {
                    let k = self.read()?;
                    pairs.push((k, self.read()?));
                }
                V::Map(pairs)
            }
            _ => bail!("unexpected reply line {:?}", String::from_utf8_lossy(&line)),
        })
    }
}
