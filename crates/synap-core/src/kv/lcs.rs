//! LCS: the longest common subsequence of two strings, by the dynamic program Redis uses, so that ties
//! resolve the same way and IDX lists the same ranges (from the end of the strings backward).

use bytes::Bytes;

use crate::command::Reply;
use crate::error::{CommandError, Result};

/// The most cells (`(len(a) + 1) * (len(b) + 1)`, 4 bytes each) one LCS may fill: 16 MB, about 40 ms
/// of work (the command runs on a worker thread).
pub(crate) const MAX_LCS_CELLS: usize = 4 << 20;

/// Refuses strings whose table would pass [`MAX_LCS_CELLS`].
pub(crate) fn check_size(alen: usize, blen: usize) -> Result<usize> {
    (alen + 1).checked_mul(blen + 1).filter(|&c| c <= MAX_LCS_CELLS).ok_or_else(|| {
        CommandError::Invalid(format!(
            "LCS of strings of {alen} and {blen} bytes needs more than {MAX_LCS_CELLS} table cells; compare shorter strings"
        ))
    })
}

pub(crate) fn lcs(a: &[u8], b: &[u8], idx: bool, len_only: bool, with_len: bool, min_len: u64) -> Result<Reply> {
    let (alen, blen) = (a.len(), b.len());
    let cells = check_size(alen, blen)?;
    let mut t = vec![0u32; cells];
    let at = |i: usize, j: usize| i * (blen + 1) + j;
    for i in 1..=alen {
        for j in 1..=blen {
            t[at(i, j)] =
                if a[i - 1] == b[j - 1] { t[at(i - 1, j - 1)] + 1 } else { t[at(i - 1, j)].max(t[at(i, j - 1)]) };
        }
    }
    let total = t[at(alen, blen)] as usize;
    if len_only {
        return Ok(Reply::Int(total as i64));
    }
    let mut result = vec![0u8; total];
    let mut out = total;
    let mut matches = Vec::new();
    // The current range; `a_start == alen` means none.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[out - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            out -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[at(i - 1, j)] > t[at(i, j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let len = (a_end - a_start + 1) as u64;
            if idx && (min_len == 0 || len >= min_len) {
                let range = |s: usize, e: usize| Reply::Array(vec![Reply::Int(s as i64), Reply::Int(e as i64)]);
                let mut m = vec![range(a_start, a_end), range(b_start, b_end)];
                if with_len {
                    m.push(Reply::Int(len as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if idx {
        return Ok(Reply::Map(vec![
            (Reply::bulk(&b"matches"[..]), Reply::Array(matches)),
            (Reply::bulk(&b"len"[..]), Reply::Int(total as i64)),
        ]));
    }
    Ok(Reply::Bulk(Bytes::from(result)))
}
