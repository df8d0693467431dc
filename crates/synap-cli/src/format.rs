//! Reply formatting as `redis-cli` prints it, and the `--raw` form.

use synap_resp::Value;

/// Quotes bytes as redis-cli does: `"text"`, with `\n`, `\"`, `\\` and `\xNN` escapes.
pub fn quote(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// The human form (`(integer) 1`, `1) "a"`, `(nil)`, `(error) ERR ...`).
pub fn human(v: &Value) -> String {
    let mut out = String::new();
    write_human(v, 0, &mut out);
    out
}

fn write_human(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Simple(s) => out.push_str(s),
        Value::Error(e) => {
            out.push_str("(error) ");
            out.push_str(e);
        }
        Value::Int(n) => out.push_str(&format!("(integer) {n}")),
        Value::Bulk(b) => out.push_str(&quote(b)),
        Value::Verbatim(_, b) => out.push_str(&String::from_utf8_lossy(b)),
        Value::Nil => out.push_str("(nil)"),
        Value::Double(d) => out.push_str(&format!("(double) {d}")),
        Value::Bool(b) => out.push_str(if *b { "(true)" } else { "(false)" }),
        Value::BigNumber(n) => out.push_str(&format!("(big number) {n}")),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            if items.is_empty() {
                out.push_str(if matches!(v, Value::Set(_)) { "(empty set)" } else { "(empty array)" });
                return;
            }
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                let label = format!("{:>width$}) ", i + 1);
                out.push_str(&label);
                write_human(item, indent + label.len(), out);
            }
        }
        Value::Map(pairs) => {
            if pairs.is_empty() {
                out.push_str("(empty hash)");
                return;
            }
            let width = pairs.len().to_string().len();
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                let label = format!("{:>width$}# ", i + 1);
                out.push_str(&label);
                write_human(k, indent + label.len(), out);
                out.push_str(" => ");
                write_human(val, indent + label.len() + 4, out);
            }
        }
    }
}

/// The `--raw` form: values as they are, one per line, errors as their text.
pub fn raw(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_raw(v, &mut out);
    out
}

fn write_raw(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Simple(s) | Value::Error(s) | Value::BigNumber(s) => out.extend_from_slice(s.as_bytes()),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bulk(b) | Value::Verbatim(_, b) => out.extend_from_slice(b),
        Value::Nil => {}
        Value::Double(d) => out.extend_from_slice(d.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"1" } else { b"0" }),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                write_raw(item, out);
            }
        }
        Value::Map(pairs) => {
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                write_raw(k, out);
                out.push(b'\n');
                write_raw(val, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn formats_like_redis_cli() {
        assert_eq!(human(&Value::Int(3)), "(integer) 3");
        assert_eq!(human(&Value::Nil), "(nil)");
        assert_eq!(human(&Value::Bulk(Bytes::from_static(b"a\"b\x01"))), "\"a\\\"b\\x01\"");
        let nested = Value::Array(vec![
            Value::Bulk(Bytes::from("0")),
            Value::Array(vec![Value::Bulk(Bytes::from("k1")), Value::Bulk(Bytes::from("k2"))]),
        ]);
        assert_eq!(human(&nested), "1) \"0\"\n2) 1) \"k1\"\n   2) \"k2\"");
        assert_eq!(human(&Value::Array(vec![])), "(empty array)");
        assert_eq!(raw(&nested), b"0\nk1\nk2");
    }
}
