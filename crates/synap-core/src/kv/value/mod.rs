//! Collection values: hashes, lists, sets and sorted sets, each with a compact encoding for small
//! collections and a general one past a size threshold (as Redis's listpack and hashtable/quicklist/
//! skiplist encodings).
//!
//! - Compact ("packed"): one `Vec<u8>` of length-prefixed items (varint length + bytes), read and rewritten
//!   whole; used while a collection is within the thresholds of [`ENCODINGS`], Redis's
//!   `*-max-listpack-*` and `set-max-intset-entries` settings. A value converted to the general encoding
//!   stays there (as in Redis).
//! - General: hash -> a hash table of `[field_len][field][value]` blobs; set -> a hash set; list -> a deque;
//!   sorted set -> an order-statistic treap (rank and score lookups in O(log n)) plus a member index.
//!
//! Every list element carries an `idx` (i64), increasing from head to tail: list mutations name elements by
//! it (push at idx, delete idx, set idx), so replaying them is idempotent, as the fuzzy-snapshot rule of
//! `mutation` requires.

mod hash;
mod list;
mod set;
mod zset;

pub(crate) use hash::HashV;
pub(crate) use list::ListV;
pub(crate) use set::SetV;
pub(crate) use zset::ZSetV;

use foldhash::fast::FixedState;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// The thresholds of the compact encodings, under Redis's names, changeable at run time (CONFIG SET);
/// they hold for the whole process.
pub struct Encodings {
    pub hash_max_listpack_entries: AtomicUsize,
    pub hash_max_listpack_value: AtomicUsize,
    pub zset_max_listpack_entries: AtomicUsize,
    pub zset_max_listpack_value: AtomicUsize,
    pub set_max_intset_entries: AtomicUsize,
    pub set_max_listpack_entries: AtomicUsize,
    pub set_max_listpack_value: AtomicUsize,
    /// Entries (positive) or a size class (-1 to -5: 4, 8, 16, 32, 64 KB), as Redis's.
    pub list_max_listpack_size: AtomicI64,
}

/// The process's thresholds, Redis's defaults until changed.
pub static ENCODINGS: Encodings = Encodings {
    hash_max_listpack_entries: AtomicUsize::new(128),
    hash_max_listpack_value: AtomicUsize::new(64),
    zset_max_listpack_entries: AtomicUsize::new(128),
    zset_max_listpack_value: AtomicUsize::new(64),
    set_max_intset_entries: AtomicUsize::new(512),
    set_max_listpack_entries: AtomicUsize::new(128),
    set_max_listpack_value: AtomicUsize::new(64),
    list_max_listpack_size: AtomicI64::new(-2),
};

/// A compact list is rewritten whole on every change, so it holds at most this many elements whatever
/// `list-max-listpack-size` allows (Redis's listpack changes in place).
pub const LIST_PACK_MAX_ITEMS: usize = 128;
/// A positive `list-max-listpack-size` still keeps a compact list within 8 KB (Redis's
/// `SIZE_SAFETY_LIMIT`).
const LIST_PACK_SAFETY_BYTES: usize = 8192;
/// The other compact encodings are also rewritten whole on each change: whatever the thresholds say,
/// they hold at most this many entries of at most this many bytes.
pub const PACK_HARD_MAX_ITEMS: usize = 4096;
pub const PACK_HARD_MAX_VALUE: usize = 4096;

fn load(a: &AtomicUsize) -> usize {
    a.load(Ordering::Relaxed)
}

fn items_cap(a: &AtomicUsize) -> usize {
    load(a).min(PACK_HARD_MAX_ITEMS)
}

fn value_cap(a: &AtomicUsize) -> usize {
    load(a).min(PACK_HARD_MAX_VALUE)
}

fn fits_hash(items: usize, longest: usize) -> bool {
    let e = &ENCODINGS;
    items <= items_cap(&e.hash_max_listpack_entries) && longest <= value_cap(&e.hash_max_listpack_value)
}

fn fits_zset(items: usize, longest: usize) -> bool {
    let e = &ENCODINGS;
    items <= items_cap(&e.zset_max_listpack_entries) && longest <= value_cap(&e.zset_max_listpack_value)
}

/// Whether a member is an integer an intset would hold (Redis's `string2ll`).
fn is_int(m: &[u8]) -> bool {
    crate::command::args::parse_i64(m).is_some()
}

/// A set stays compact as an intset (integers only, up to `set-max-intset-entries`) or as a listpack
/// (Redis 7.2's small sets of other members).
fn fits_set(members: &[&[u8]]) -> bool {
    let e = &ENCODINGS;
    let n = members.len();
    if members.iter().all(|m| is_int(m)) {
        return n <= items_cap(&e.set_max_intset_entries);
    }
    n <= items_cap(&e.set_max_listpack_entries)
        && members.iter().all(|m| m.len() <= value_cap(&e.set_max_listpack_value))
}

/// A list stays compact while within `list-max-listpack-size` (entries, or bytes for a negative size
/// class) and [`LIST_PACK_MAX_ITEMS`].
fn fits_list(items: usize, bytes: usize) -> bool {
    if items > LIST_PACK_MAX_ITEMS {
        return false;
    }
    match ENCODINGS.list_max_listpack_size.load(Ordering::Relaxed) {
        n if n > 0 => items as i64 <= n && bytes <= LIST_PACK_SAFETY_BYTES,
        // 0 lets a listpack hold one element, as Redis's.
        0 => items <= 1,
        n => bytes <= 4096 << ((-n).min(5) - 1),
    }
}

fn hasher() -> FixedState {
    FixedState::with_seed(0x5eed_c011)
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let byte = b[*pos];
        *pos += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// The items of a packed buffer with their byte ranges, without allocating.
fn pack_items(b: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= b.len() {
            return None;
        }
        let n = get_varint(b, &mut pos);
        let start = pos;
        pos += n;
        Some((start, &b[start..pos]))
    })
}

/// The items of a packed buffer.
pub(crate) fn unpack(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let n = get_varint(b, &mut pos);
        out.push(&b[pos..pos + n]);
        pos += n;
    }
    out
}

pub(crate) fn pack<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        put_varint(&mut out, it.len());
        out.extend_from_slice(it);
    }
    out
}

/// The size class a jemalloc-like allocator rounds a request up to (4 classes per doubling past 128).
pub(crate) fn size_class(n: usize) -> usize {
    if n <= 8 {
        return 8;
    }
    if n <= 128 {
        return n.div_ceil(16) * 16;
    }
    let shift = usize::BITS - (n - 1).leading_zeros(); // 2^shift >= n
    let step = 1usize << (shift - 3);
    n.div_ceil(step) * step
}

/// One page of a positional scan (HSCAN, SSCAN, ZSCAN over the general encodings): from `cursor` (0: the
/// start; otherwise the positions below the cursor not visited yet), walking `count` positions
/// downwards, and stopping early once the page holds `max_bytes` (as `size` counts them). Returns the
/// next cursor (0: done) and the page.
fn scan_positions<T>(
    len: usize,
    cursor: u64,
    count: usize,
    max_bytes: usize,
    item: impl Fn(usize) -> Option<T>,
    size: impl Fn(&T) -> usize,
) -> (u64, Vec<T>) {
    let top = if cursor == 0 { len } else { (cursor as usize).min(len) };
    let bottom = top.saturating_sub(count.max(1));
    let mut page = Vec::new();
    let mut bytes = 0;
    let mut pos = top;
    while pos > bottom {
        pos -= 1;
        if let Some(t) = item(pos) {
            bytes += size(&t);
            page.push(t);
        }
        if max_bytes > 0 && bytes >= max_bytes {
            break;
        }
    }
    (pos as u64, page)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
    /// A stream: its events live in the stream store; the keyspace holds its name, type and expiry.
    Stream = 5,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::String,
            1 => Kind::Hash,
            2 => Kind::List,
            3 => Kind::Set,
            4 => Kind::ZSet,
            5 => Kind::Stream,
            _ => return None,
        })
    }
}

pub(crate) enum Coll {
    Hash(HashV),
    List(ListV),
    Set(SetV),
    ZSet(ZSetV),
    /// A stream's place in the keyspace (its data is in the stream store).
    Stream,
}

impl Coll {
    pub fn empty(kind: Kind) -> Coll {
        match kind {
            Kind::Hash => Coll::Hash(HashV::Small(Vec::new())),
            Kind::List => Coll::List(ListV::Small(Vec::new())),
            Kind::Set => Coll::Set(SetV::Small(Vec::new())),
            Kind::ZSet | Kind::String => Coll::ZSet(ZSetV::Small(Vec::new())),
            Kind::Stream => Coll::Stream,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Coll::Hash(_) => Kind::Hash,
            Coll::List(_) => Kind::List,
            Coll::Set(_) => Kind::Set,
            Coll::ZSet(_) => Kind::ZSet,
            Coll::Stream => Kind::Stream,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Coll::Hash(h) => h.len(),
            Coll::List(l) => l.len(),
            Coll::Set(s) => s.len(),
            Coll::ZSet(z) => z.len(),
            Coll::Stream => 0,
        }
    }

    /// Whether a collection has no elements left (and goes); a stream's place never empties.
    pub fn is_empty(&self) -> bool {
        !matches!(self, Coll::Stream) && self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports, in Redis's words for the encoding that plays the same part.
    pub fn encoding(&self) -> &'static str {
        match self {
            Coll::Set(SetV::Small(b)) if pack_items(b).all(|(_, m)| is_int(m)) => "intset",
            Coll::Hash(HashV::Small(_)) | Coll::List(ListV::Small(_)) | Coll::Set(SetV::Small(_)) => "listpack",
            Coll::ZSet(ZSetV::Small(_)) => "listpack",
            Coll::Hash(_) | Coll::Set(_) => "hashtable",
            Coll::List(_) => "quicklist",
            Coll::ZSet(_) => "skiplist",
            Coll::Stream => "stream",
        }
    }

    /// Bytes charged for the value (allocator size classes of its parts).
    pub fn mem(&self) -> usize {
        32 + match self {
            Coll::Hash(h) => h.mem(),
            Coll::List(l) => l.mem(),
            Coll::Set(s) => s.mem(),
            Coll::ZSet(z) => z.mem(),
            Coll::Stream => 0,
        }
    }

    /// The whole value as a `Restore` record body: `count:u32` then items (see `docs/format.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Coll::Hash(h) => {
                for (f, v) in h.pairs() {
                    put(f);
                    put(v);
                }
            }
            Coll::List(l) => {
                for (i, v) in l.items() {
                    put(&i.to_le_bytes());
                    put(v);
                }
            }
            Coll::Set(s) => {
                for m in s.members() {
                    put(m);
                }
            }
            Coll::ZSet(z) => {
                for (s, m) in z.range(0, z.len()) {
                    put(&s.to_bits().to_le_bytes());
                    put(m);
                }
            }
            Coll::Stream => {}
        }
        out
    }

    /// Rebuilds a value from [`Coll::encode`]'s output; `None` when malformed (odd pairs, a string kind,
    /// list indexes out of order).
    pub fn decode(kind: Kind, b: &[u8]) -> Option<Coll> {
        if kind == Kind::String || kind == Kind::Stream {
            return None;
        }
        let mut items = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let n = u32::from_le_bytes(b.get(pos..pos + 4)?.try_into().ok()?) as usize;
            pos += 4;
            items.push(b.get(pos..pos + n)?);
            pos += n;
        }
        let mut c = Coll::empty(kind);
        match &mut c {
            Coll::Hash(h) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                for p in items.chunks(2) {
                    h.set(p[0], p[1]);
                }
            }
            Coll::List(l) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                let mut list: Vec<(i64, &[u8])> = Vec::with_capacity(items.len() / 2);
                for p in items.chunks(2) {
                    let idx = i64::from_le_bytes(p[0].try_into().ok()?);
                    if list.last().is_some_and(|(last, _)| *last >= idx) {
                        return None;
                    }
                    list.push((idx, p[1]));
                }
                *l = ListV::from_items(list);
            }
            Coll::Set(s) => {
                for m in items {
                    s.add(m);
                }
            }
            Coll::ZSet(z) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                for p in items.chunks(2) {
                    z.set(p[1], f64::from_bits(u64::from_le_bytes(p[0].try_into().ok()?)));
                }
            }
            Coll::Stream => return None,
        }
        Some(c)
    }

    /// An order-independent digest of the contents (for replay checks).
    pub fn digest(&self) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = match self {
            Coll::Hash(h) => h.pairs().into_iter().map(|(f, v)| [f, b"\xff", v].concat()).collect(),
            Coll::Set(s) => s.members().into_iter().map(|m| m.to_vec()).collect(),
            Coll::List(l) => {
                return l.items().into_iter().flat_map(|(i, v)| [&i.to_le_bytes()[..], v, b"\xfe"].concat()).collect();
            }
            Coll::ZSet(z) => {
                return z
                    .range(0, z.len())
                    .into_iter()
                    .flat_map(|(s, m)| [&s.to_bits().to_le_bytes()[..], m].concat())
                    .collect();
            }
            Coll::Stream => return Vec::new(),
        };
        parts.sort();
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_convert_and_round_trip() {
        let mut h = Coll::empty(Kind::Hash);
        let Coll::Hash(hv) = &mut h else { panic!() };
        for i in 0..200 {
            hv.set(format!("f{i}").as_bytes(), b"v");
        }
        assert!(matches!(hv, HashV::Big { .. }));
        assert_eq!(hv.get(b"f7"), Some(&b"v"[..]));
        let back = Coll::decode(Kind::Hash, &h.encode()).unwrap();
        assert_eq!(back.digest(), h.digest());
        let mut l = ListV::Small(Vec::new());
        for i in 0..10 {
            l.put(i, b"x");
        }
        l.put(-1, b"head");
        l.del(3);
        l.keep(-1, 5);
        assert_eq!(l.items().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![-1, 0, 1, 2, 4, 5]);
        // Past the default 8 KB of list-max-listpack-size (-2).
        let long = vec![b'y'; 9000];
        l.put(6, &long);
        assert!(matches!(l, ListV::Big { .. }));
        assert_eq!(l.at(0), Some((-1, &b"head"[..])));
    }
}
