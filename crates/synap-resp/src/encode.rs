//! Reply encoding, RESP2 or RESP3 (after `HELLO 3`).

use synap_core::{CommandError, Reply};

/// Protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

fn header(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double as Redis does in replies (`inf`, `-inf`, `nan`, shortest round trip otherwise).
pub fn format_double(v: f64) -> String {
    synap_core::command::args::format_g17(v)
}

/// Appends one reply.
pub fn encode(out: &mut Vec<u8>, reply: &Reply, proto: Protocol) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Status(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Simple(s) => {
            out.push(b'+');
            out.extend(s.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(e) => error_line(out, e),
        Reply::Nil => match proto {
            Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
        },
        Reply::NullArray => match proto {
            Protocol::Resp2 => out.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
        },
        Reply::Int(n) => header(out, b':', *n),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Array(items) => {
            header(out, b'*', items.len() as i64);
            for item in items {
                encode(out, item, proto);
            }
        }
        Reply::Map(pairs) => {
            match proto {
                Protocol::Resp2 => header(out, b'*', 2 * pairs.len() as i64),
                Protocol::Resp3 => header(out, b'%', pairs.len() as i64),
            }
            for (k, v) in pairs {
                encode(out, k, proto);
                encode(out, v, proto);
            }
        }
        Reply::Set(items) => {
            header(out, if proto == Protocol::Resp3 { b'~' } else { b'*' }, items.len() as i64);
            for item in items {
                encode(out, item, proto);
            }
        }
        Reply::Pairs(pairs) => match proto {
            Protocol::Resp2 => {
                header(out, b'*', 2 * pairs.len() as i64);
                for (a, b) in pairs {
                    encode(out, a, proto);
                    encode(out, b, proto);
                }
            }
            Protocol::Resp3 => {
                header(out, b'*', pairs.len() as i64);
                for (a, b) in pairs {
                    header(out, b'*', 2);
                    encode(out, a, proto);
                    encode(out, b, proto);
                }
            }
        },
        Reply::Keyed(pairs) => {
            match proto {
                Protocol::Resp2 => header(out, b'*', pairs.len() as i64),
                Protocol::Resp3 => header(out, b'%', pairs.len() as i64),
            }
            for (k, v) in pairs {
                if proto == Protocol::Resp2 {
                    header(out, b'*', 2);
                }
                encode(out, k, proto);
                encode(out, v, proto);
            }
        }
        Reply::Double(v) => match proto {
            Protocol::Resp2 => bulk(out, format_double(*v).as_bytes()),
            Protocol::Resp3 => {
                out.push(b',');
                out.extend_from_slice(format_double(*v).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        },
        Reply::DoubleText(text) => match proto {
            Protocol::Resp2 => bulk(out, text),
            Protocol::Resp3 => {
                out.push(b',');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        },
        // INCRBYFLOAT answers its value's text in both protocols.
        Reply::Decimal(text) => bulk(out, text),
        Reply::Expiry(e) => header(out, b':', e.redis_value()),
        Reply::Scan { cursor, items } => {
            header(out, b'*', 2);
            let mut b = itoa::Buffer::new();
            bulk(out, b.format(*cursor).as_bytes());
            header(out, b'*', items.len() as i64);
            for item in items {
                encode(out, item, proto);
            }
        }
        Reply::Read { partition, next_offset, events } => {
            let map = Reply::Map(vec![
                (Reply::bulk("events"), Reply::Array(events.clone())),
                (Reply::bulk("next_offset"), Reply::Int(*next_offset as i64)),
                (Reply::bulk("partition"), Reply::Int(*partition as i64)),
            ]);
            encode(out, &map, proto);
        }
    }
}

/// Appends an error line: `-CODE message\r\n` (line breaks in the message become spaces).
pub fn error_line(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(text.bytes().map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    out.extend_from_slice(b"\r\n");
}

pub fn error(out: &mut Vec<u8>, e: &CommandError) {
    error_line(out, &e.to_string());
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use synap_core::command::{Expiry, TimeUnit};

    use super::*;

    fn enc(r: Reply, p: Protocol) -> String {
        let mut out = Vec::new();
        encode(&mut out, &r, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shapes_in_both_protocols() {
        assert_eq!(enc(Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(Reply::Nil, Protocol::Resp3), "_\r\n");
        assert_eq!(enc(Reply::Int(-3), Protocol::Resp2), ":-3\r\n");
        assert_eq!(enc(Reply::Bulk(Bytes::from("hi")), Protocol::Resp2), "$2\r\nhi\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(map.clone(), Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(enc(Reply::Double(3.0), Protocol::Resp2), "$1\r\n3\r\n");
        assert_eq!(enc(Reply::Decimal("10.5".into()), Protocol::Resp3), "$4\r\n10.5\r\n");
        let ttl = |e| enc(Reply::Expiry(e), Protocol::Resp3);
        assert_eq!(ttl(Expiry::Missing), ":-2\r\n");
        assert_eq!(ttl(Expiry::Persistent), ":-1\r\n");
        assert_eq!(ttl(Expiry::Remaining { ms: 1001, unit: TimeUnit::Seconds }), ":2\r\n");
        assert_eq!(ttl(Expiry::At { ms: 1999, unit: TimeUnit::Seconds }), ":1\r\n");
        let scan = Reply::Scan { cursor: 17, items: vec![Reply::bulk("k")] };
        assert_eq!(enc(scan, Protocol::Resp2), "*2\r\n$2\r\n17\r\n*1\r\n$1\r\nk\r\n");
        let mut out = Vec::new();
        error_line(&mut out, "ERR bad\r\nthing");
        assert_eq!(out, b"-ERR bad  thing\r\n");
    }
}
