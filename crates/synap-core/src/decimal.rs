//! The numbers INCRBYFLOAT and HINCRBYFLOAT work in: Redis computes them as C `long double` (x87 80-bit
//! extended precision on x86-64) and prints them with `%.17Lf`, trailing zeros removed. Doing the same
//! here (a software x87 float, exact decimal printing) gives the same text for the same inputs: `0.1`
//! plus `0.2` is `0.3`, not `0.30000000000000004`.

use rustc_apfloat::ieee::X87DoubleExtended as F80;
use rustc_apfloat::{Float, FloatConvert};

use crate::command::args::parse_f64;

/// An x87 extended-precision number.
#[derive(Clone, Copy, Debug)]
pub struct LongDouble(F80);

impl PartialEq for LongDouble {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// The longest text Redis reads as a long double (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble(F80::ZERO);

    /// Parses as Redis's `string2ld` (strtold): a decimal float, `inf`; no spaces, no NaN, nothing that
    /// overflows. Hexadecimal floats are refused (strtold reads them; nobody sends them).
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let as_f64 = parse_f64(text)?; // the syntax check: sign, digits, point, exponent, inf
        let s = std::str::from_utf8(text).ok()?;
        if as_f64.is_infinite() {
            let word = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
            if word == "inf" || word == "infinity" {
                let inf = F80::INFINITY;
                return Some(LongDouble(if s.starts_with('-') { -inf } else { inf }));
            }
        }
        let v = s.parse::<F80>().ok()?;
        // Out of the long double range (strtold's ERANGE): refused, as Redis does.
        // A nonzero mantissa that reads as zero underflowed (strtold's ERANGE for a tiny number).
        let mantissa = s.split(['e', 'E']).next().unwrap_or("");
        let underflow = v.is_zero() && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
        if v.is_infinite() || v.is_nan() || underflow {
            return None;
        }
        Some(LongDouble(v))
    }

    pub fn from_i64(n: i64) -> LongDouble {
        LongDouble(F80::from_i128(n as i128).value)
    }

    /// The sum, rounded to nearest as the x87 unit does; `None` when it is infinite or NaN.
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        let r = (self.0 + other.0).value;
        (!r.is_infinite() && !r.is_nan()).then_some(LongDouble(r))
    }

    pub fn is_finite(self) -> bool {
        !self.0.is_infinite() && !self.0.is_nan()
    }

    /// The nearest f64 (for JSON replies).
    pub fn to_f64(self) -> f64 {
        let mut lost = false;
        let v: rustc_apfloat::ieee::Double = self.0.convert(&mut lost).value;
        f64::from_bits(v.to_bits() as u64)
    }

    /// Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf` (exact, rounded half to even), then trailing
    /// zeros and a trailing point removed; `-0` is `0`.
    pub fn to_text(self) -> String {
        if self.0.is_infinite() {
            return if self.0.is_negative() { "-inf".into() } else { "inf".into() };
        }
        let bits = self.0.to_bits();
        let negative = bits >> 79 & 1 == 1;
        let exp_field = (bits >> 64 & 0x7fff) as i32;
        let sig = bits as u64;
        // value = sig * 2^e2 (sig holds the explicit integer bit).
        let e2 = if exp_field == 0 { 1 - 16383 - 63 } else { exp_field - 16383 - 63 };
        let (int_part, frac) = if e2 >= 0 {
            (shifted_decimal(sig, e2 as u32), 0u128)
        } else {
            let n = (-e2) as u32;
            const SCALE: u128 = 100_000_000_000_000_000; // 10^17
            let scaled = sig as u128 * SCALE; // < 2^121
            let q = if n >= 122 {
                0
            } else {
                let (q, rem) = (scaled >> n, scaled & ((1u128 << n) - 1));
                let half = 1u128 << (n - 1);
                if rem > half || (rem == half && q & 1 == 1) { q + 1 } else { q }
            };
            ((q / SCALE).to_string(), q % SCALE)
        };
        let mut s = String::with_capacity(int_part.len() + 20);
        if negative {
            s.push('-');
        }
        s.push_str(&int_part);
        if frac != 0 {
            let digits = format!("{frac:017}");
            s.push('.');
            s.push_str(digits.trim_end_matches('0'));
        }
        if s == "-0" { "0".into() } else { s }
    }
}

/// `sig * 2^shift` in decimal, by base-10^9 limbs (shift is at most about 16,400).
fn shifted_decimal(sig: u64, shift: u32) -> String {
    if shift < 64 {
        return ((sig as u128) << shift).to_string();
    }
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![sig % BASE, (sig / BASE) % BASE, sig / BASE / BASE]; // little-endian
    let mut left = shift;
    while left > 0 {
        let step = left.min(29);
        let mut carry = 0u64;
        for l in limbs.iter_mut() {
            let v = (*l << step) + carry;
            *l = v % BASE;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
        left -= step;
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut s = limbs.last().expect("one limb").to_string();
    for l in limbs.iter().rev().skip(1) {
        s.push_str(&format!("{l:09}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        let (a, b) = (LongDouble::parse(a.as_bytes()).unwrap(), LongDouble::parse(b.as_bytes()).unwrap());
        a.checked_add(b).unwrap().to_text()
    }

    /// Expected texts are redis-server 7.0.15's INCRBYFLOAT replies on x86-64.
    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("0", "123456789.123456789"), "123456789.12345678899873747");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("5.0e3", "0"), "5000");
        assert_eq!(sum("3e2", "-300"), "0");
        assert_eq!(sum("-0.25", "0"), "-0.25");
        assert_eq!(sum("1e-5", "0"), "0.00001");
        assert_eq!(sum("1e-20", "0"), "0");
        assert_eq!(sum("1e30", "0"), "1000000000000000000024696061952");
        assert_eq!(sum("0.3333333333333333333333", "0"), "0.33333333333333333");
        assert_eq!(sum("1.5e-17", "0"), "0.00000000000000002");
        assert_eq!(sum("-1e-18", "0"), "0");
        assert_eq!(
            sum("1.7976931348623157e308", "1e308"),
            "279769313486231570002352240441350078789299929179619934003987695617693370918830364684014944221042050987341155710361544171686148029276505307138777262321877129888036065002204239033812550598509174132739480498569620043582760541189365866551522561741435317031294527744011878159793174665688773926186886103199182225408"
        );
        assert!(LongDouble::parse(b"1e5000").is_none());
        assert!(LongDouble::parse(b"1e-5000").is_none(), "underflow is refused, as strtold's ERANGE");
        assert!(LongDouble::parse(b"0e-5000").is_some());
        assert!(LongDouble::parse(b" 1").is_none());
        assert!(LongDouble::parse(b"nan").is_none());
        assert!(LongDouble::parse(b"inf").is_some_and(|v| !v.is_finite()));
    }
}
