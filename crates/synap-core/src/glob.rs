//! Redis glob patterns (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
//!
//! Matching runs in O(pattern × subject) worst case with one backtrack point (the last `*`), never
//! exponential, whatever the pattern.

/// One pattern element matched against one byte.
fn match_class(pat: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    // `pat[p]` is just after '['. Returns (matched, index after ']').
    let negate = pat.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pat.get(p) {
            None => break, // unterminated class: treat the end as ']'
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pat.len() => {
                if pat[p + 1] == c {
                    matched = true;
                }
                p += 2;
            }
            Some(&lo) if pat.get(p + 1) == Some(&b'-') && p + 2 < pat.len() && pat[p + 2] != b']' => {
                let hi = pat[p + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                if (lo..=hi).contains(&c) {
                    matched = true;
                }
                p += 3;
            }
            Some(&x) => {
                if x == c {
                    matched = true;
                }
                p += 1;
            }
        }
    }
    (matched != negate, p)
}

/// Whether `subject` matches the Redis glob `pattern`.
pub fn glob_match(pattern: &[u8], subject: &[u8]) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    // Backtrack point: pattern index after the last '*' and the subject index it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        let c = subject[s];
        let step = match pattern.get(p) {
            Some(b'*') => {
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, s));
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => {
                let (ok, next) = match_class(pattern, p + 1, c);
                ok.then_some(next)
            }
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
            Some(&x) => (x == c).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                s += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    p = sp;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// The literal prefix of a pattern (before its first special character), used to skip keys cheaply.
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern.iter().position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\')).unwrap_or(pattern.len());
    &pattern[..end]
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn redis_cases() {
        assert!(m(b"*", b""));
        assert!(m(b"*", b"anything"));
        assert!(m(b"h?llo", b"hello"));
        assert!(!m(b"h?llo", b"hllo"));
        assert!(m(b"h*llo", b"heeeello"));
        assert!(m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
        assert!(m(b"h\\*llo", b"h*llo"));
        assert!(!m(b"h\\*llo", b"hello"));
        assert!(m(b"user:*:name", b"user:42:name"));
        assert!(!m(b"user:*:name", b"user:42:nam"));
        assert!(m(b"a*b*c", b"axxbyyc"));
        assert!(!m(b"a*b*c", b"axxbyy"));
        assert!(m(b"", b""));
        assert!(!m(b"", b"a"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let subject = vec![b'a'; 10_000];
        let pattern = b"*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!m(pattern, &subject));
    }
}
