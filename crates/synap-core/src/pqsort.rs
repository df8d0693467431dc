//! Partial quicksort, as Redis does it (Bentley and McIlroy's engineered quicksort, recursing only into
//! the parts that overlap the wanted range): Redis sorts with it when only a range of the result is
//! returned (SORT ... BY ... LIMIT, the geo searches with COUNT). Elements that compare equal come out
//! in the order this algorithm leaves them, which is not their original order; following the same
//! steps gives the same order as Redis.

use std::cmp::Ordering;

/// Sorts `v` so that positions `lo..=hi` hold what a full sort would put there.
pub fn pqsort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    if v.is_empty() || lo > hi {
        return;
    }
    sort(v, 0, v.len(), cmp, lo, hi);
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    let lt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Less;
    let gt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Greater;
    if lt(a, b) {
        if lt(b, c) {
            b
        } else if lt(a, c) {
            c
        } else {
            a
        }
    } else if gt(b, c) {
        b
    } else if lt(a, c) {
        a
    } else {
        c
    }
}

fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Sorts the `n` elements from `a` (indexes into `v`), keeping to the parts that overlap `lrange..=rrange`.
fn sort<T>(v: &mut [T], mut a: usize, mut n: usize, cmp: &impl Fn(&T, &T) -> Ordering, lrange: usize, rrange: usize) {
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) == Ordering::Greater {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // `pc` and `pd` may step below `a`: kept as signed.
        let (mut pc, mut pd) = ((a + n - 1) as isize, (a + n - 1) as isize);
        loop {
            while pb as isize <= pc {
                let r = cmp(&v[pb], &v[a]);
                if r == Ordering::Greater {
                    break;
                }
                if r == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let r = cmp(&v[pc as usize], &v[a]);
                if r == Ordering::Less {
                    break;
                }
                if r == Ordering::Equal {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && !(lrange < a && rrange < a || lrange > a + r - 1 && rrange > a + r - 1) {
            sort(v, a, r, cmp, lrange, rrange);
        }
        let r = (pd - pc) as usize;
        if r > 1 {
            a = pn - r;
            n = r;
            if !(lrange < a && rrange < a || lrange > a + r - 1 && rrange > a + r - 1) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_range_is_sorted() {
        let mut state = 12345u64;
        for n in [0usize, 1, 5, 7, 8, 40, 41, 100, 1000] {
            let v: Vec<u32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 40) as u32 % 50
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort();
            for (lo, hi) in [(0, n.saturating_sub(1)), (0, 2), (n / 2, n / 2 + 3)] {
                if n == 0 || hi >= n {
                    continue;
                }
                let mut w = v.clone();
                pqsort(&mut w, lo, hi, &|a: &u32, b: &u32| a.cmp(b));
                assert_eq!(w[lo..=hi], sorted[lo..=hi], "n {n} range {lo}..={hi}");
            }
        }
    }
}
