//! The argument cursor every parser reads a command's arguments from, and Redis's rules for the numbers in
//! them. A parser takes what it expects in order (`next_*`), tests for option words (`eat`), and ends with
//! [`Args::finish`], which refuses anything left over: arity is checked before a parser runs, so a parser
//! only decides what each argument means.

use bytes::Bytes;

use crate::error::{CommandError, Result};

/// A command's arguments after its name, read front to back.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    name: &'static str,
    args: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// `name` is the command's name as the table spells it (for error messages); `args` follow the name.
    pub fn new(name: &'static str, args: &'a [Bytes]) -> Args<'a> {
        Args { name, args, pos: 0 }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Arguments not read yet.
    pub fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next argument without taking it.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.args.get(self.pos)
    }

    /// The argument `n` places ahead without taking anything.
    pub fn peek_at(&self, n: usize) -> Option<&'a Bytes> {
        self.args.get(self.pos + n)
    }

    /// The next argument; `syntax error` when there is none.
    pub fn next_bytes(&mut self) -> Result<Bytes> {
        let a = self.args.get(self.pos).ok_or(CommandError::Syntax)?;
        self.pos += 1;
        Ok(a.clone())
    }

    /// The next argument as an integer (`value is not an integer or out of range`).
    pub fn next_int(&mut self) -> Result<i64> {
        let a = self.next_bytes()?;
        parse_i64(&a).ok_or(CommandError::NotInteger)
    }

    /// The next argument as a non-negative integer (a negative one is `value is not an integer or out of
    /// range`, as Redis's `getPositiveLongFromObject` words it).
    pub fn next_u64(&mut self) -> Result<u64> {
        u64::try_from(self.next_int()?).map_err(|_| CommandError::NotInteger)
    }

    /// The next argument as an integer, with `err` when it is not one.
    pub fn next_int_or(&mut self, err: impl FnOnce() -> CommandError) -> Result<i64> {
        let a = self.next_bytes()?;
        parse_i64(&a).ok_or_else(err)
    }

    /// The next argument as a float (`value is not a valid float`).
    pub fn next_f64(&mut self) -> Result<f64> {
        let a = self.next_bytes()?;
        parse_f64(&a).ok_or(CommandError::NotFloat)
    }

    /// Takes the next argument when it is `word` (case-insensitive).
    pub fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(a) if is(a, word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Every argument not read yet.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let out = self.args[self.pos..].to_vec();
        self.pos = self.args.len();
        out
    }

    /// The arguments not read yet, as a slice, without taking them.
    pub fn rest_slice(&self) -> &'a [Bytes] {
        &self.args[self.pos..]
    }

    /// Takes `n` arguments (`syntax error` when fewer are left).
    pub fn take(&mut self, n: usize) -> Result<Vec<Bytes>> {
        if self.remaining() < n {
            return Err(CommandError::Syntax);
        }
        let out = self.args[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Every argument left, as pairs; `wrong number of arguments` when they do not pair up (or there are
    /// none).
    pub fn pairs(&mut self) -> Result<Vec<(Bytes, Bytes)>> {
        let rest = &self.args[self.pos..];
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(arity_error(self.name));
        }
        self.pos = self.args.len();
        Ok(rest.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
    }

    /// Ends parsing: `syntax error` when an argument is left over.
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() { Ok(()) } else { Err(CommandError::Syntax) }
    }
}

/// Whether `arg` is `word`, case-insensitively.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// `wrong number of arguments for 'name' command`.
pub fn arity_error(name: &str) -> CommandError {
    CommandError::Invalid(format!("wrong number of arguments for '{name}' command"))
}

/// `unknown subcommand 'x'. Try NAME HELP.`
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> CommandError {
    CommandError::Invalid(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        cmd.to_uppercase()
    ))
}

/// Parses a value the way Redis's `string2ll` does: optional `-`, digits, no spaces, no `+`, at most 20
/// characters, no leading zeros (except `0` itself).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Parses a float as Redis does for INCRBYFLOAT: no spaces, no NaN.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// A score as Redis reads one: a float, `inf`, `+inf` or `-inf`; never NaN.
pub fn parse_score(b: &[u8]) -> Option<f64> {
    match &b.to_ascii_lowercase()[..] {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        _ => parse_f64(b),
    }
}

/// Formats a float as INCRBYFLOAT replies: shortest round-trip form, no exponent, no trailing `.0`.
pub fn format_f64(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Formats a double as Redis 7.0 replies with one (scores): C's `%.17g` (17 significant digits, an
/// exponent below 1e-4 and from 1e17), with `inf`, `-inf`, `nan`.
pub fn format_g17(v: f64) -> String {
    format_g(v, 17)
}

/// C's `%.<precision>g` (`precision` significant digits, exponent form below 1e-4 and from
/// 10^precision), with `inf`, `-inf`, `nan`.
pub fn format_g(v: f64, precision: usize) -> String {
    let precision = precision.clamp(1, 17);
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:.*e}", precision - 1);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if !(-4..precision as i32).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{:.*}", (precision as i32 - 1 - exp) as usize, v))
    }
}

/// A cursor argument (SCAN and its kin): an unsigned integer, else `invalid cursor`.
pub fn parse_cursor(b: &[u8]) -> Result<u64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CommandError::Invalid("invalid cursor".into()))
}

/// A blocking command's timeout in seconds (a float, as BLPOP takes it), in milliseconds; `None` for 0
/// (wait forever).
pub fn timeout_secs(b: &[u8]) -> Result<Option<u64>> {
    let secs: f64 = std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| CommandError::Invalid("timeout is not a float or out of range".into()))?;
    if secs < 0.0 {
        return Err(CommandError::Invalid("timeout is negative".into()));
    }
    let ms = (secs * 1000.0).ceil() as u64;
    Ok((ms > 0).then_some(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn integers_parse_as_redis_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"+1", b" 1", b"1 ", b"01", b"-0", b"9223372036854775808", b"1.0", b"abc"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_format_without_exponent() {
        assert_eq!(format_f64(10.5), "10.5");
        // Expected texts are redis-server 7.0.15's ZSCORE replies.
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(123456789.5), "123456789.5");
        assert_eq!(format_g17(-2.5e-7), "-2.4999999999999999e-07");
        assert_eq!(format_f64(3000.0), "3000");
        assert_eq!(format_f64(1e30), "1000000000000000000000000000000");
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_score(b"-INF"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"nan"), None);
    }

    #[test]
    fn the_cursor_reads_in_order_and_refuses_leftovers() {
        let v = args(&["k", "12", "NX", "1.5", "x"]);
        let mut a = Args::new("cmd", &v);
        assert_eq!(a.next_bytes().unwrap(), "k");
        assert_eq!(a.next_int().unwrap(), 12);
        assert!(!a.eat("xx"));
        assert!(a.eat("nx"));
        assert_eq!(a.next_f64().unwrap(), 1.5);
        assert_eq!(a.finish(), Err(CommandError::Syntax));
        assert_eq!(a.rest(), args(&["x"]));
        assert_eq!(a.finish(), Ok(()));
        assert_eq!(a.next_bytes(), Err(CommandError::Syntax));
    }

    #[test]
    fn number_errors_carry_redis_wording() {
        let v = args(&["abc", "abc", "-1"]);
        let mut a = Args::new("cmd", &v);
        assert_eq!(a.next_int().unwrap_err().to_string(), "ERR value is not an integer or out of range");
        assert_eq!(a.next_f64().unwrap_err().to_string(), "ERR value is not a valid float");
        assert_eq!(a.next_u64().unwrap_err(), CommandError::NotInteger);
        let v = args(&["a", "b", "c"]);
        let mut a = Args::new("hset", &v);
        assert_eq!(a.pairs().unwrap_err().to_string(), "ERR wrong number of arguments for 'hset' command");
    }

    #[test]
    fn timeouts_are_float_seconds() {
        assert_eq!(timeout_secs(b"0"), Ok(None));
        assert_eq!(timeout_secs(b"0.0001"), Ok(Some(1)));
        assert_eq!(timeout_secs(b"1.5"), Ok(Some(1500)));
        assert_eq!(timeout_secs(b"-1").unwrap_err().to_string(), "ERR timeout is negative");
        assert_eq!(timeout_secs(b"inf").unwrap_err().to_string(), "ERR timeout is not a float or out of range");
        assert_eq!(parse_cursor(b"x").unwrap_err().to_string(), "ERR invalid cursor");
    }
}
