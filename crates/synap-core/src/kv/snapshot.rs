//! Snapshots and digests of the keyspace: chunks of records written shard by shard under one shard lock
//! at a time, a large collection as batches of its elements, and an order-independent digest of the
//! contents.

use super::value::{Coll, Kind};
use super::{Keyspace, NO_EXPIRE};
use crate::mutation::Mutation;

/// A snapshot chunk stops growing past this many payload bytes (chunks must stay far below a record's cap).
pub(crate) const SNAPSHOT_CHUNK_BYTES: usize = 64 << 20;

/// Where a snapshot walk stands: a shard and the number of positions below the cursor not yet written,
/// and the batches of a large collection still to hand out.
#[derive(Debug, Clone)]
pub struct SnapshotCursor {
    shard: usize,
    remaining: usize,
    /// Encoded batches (count, mutations) of collections too large for one record.
    queued: std::collections::VecDeque<(u32, Vec<u8>)>,
    /// A chunk's size limit; a collection larger than this is written as its elements.
    chunk_bytes: usize,
}

impl Default for SnapshotCursor {
    fn default() -> Self {
        SnapshotCursor::with_chunk_bytes(SNAPSHOT_CHUNK_BYTES)
    }
}

impl SnapshotCursor {
    /// A cursor whose chunks stop growing past `chunk_bytes` (tests use small ones).
    pub fn with_chunk_bytes(chunk_bytes: usize) -> SnapshotCursor {
        SnapshotCursor { shard: 0, remaining: usize::MAX, queued: Default::default(), chunk_bytes: chunk_bytes.max(1) }
    }
}

/// A collection too large for one record, as batches of element records: `Del` first (the value starts
/// from nothing), its elements, then its expiry. Replayed in order they rebuild it; over a fuzzy snapshot
/// each element record is idempotent, as every other record is.
fn collection_batches(key: &[u8], c: &Coll, expire_at: u64, max_bytes: usize) -> Vec<(u32, Vec<u8>)> {
    struct Batches {
        out: Vec<(u32, Vec<u8>)>,
        buf: Vec<u8>,
        n: u32,
        max: usize,
    }
    impl Batches {
        fn add(&mut self, m: Mutation<'_>) {
            crate::mutation::encode_one(&m, &mut self.buf);
            self.n += 1;
            if self.buf.len() >= self.max {
                self.out.push((self.n, std::mem::take(&mut self.buf)));
                self.n = 0;
            }
        }
    }
    let mut b = Batches { out: Vec::new(), buf: Vec::new(), n: 0, max: max_bytes };
    b.add(Mutation::Del { key });
    match c {
        Coll::Hash(h) => h.pairs().into_iter().for_each(|(field, value)| b.add(Mutation::HSet { key, field, value })),
        Coll::List(l) => l.items().into_iter().for_each(|(idx, value)| b.add(Mutation::LPut { key, idx, value })),
        Coll::Set(s) => s.members().into_iter().for_each(|member| b.add(Mutation::SAdd { key, member })),
        Coll::ZSet(z) => {
            z.range(0, z.len()).into_iter().for_each(|(score, member)| b.add(Mutation::ZSet { key, member, score }))
        }
        Coll::Stream => {}
    }
    if expire_at != NO_EXPIRE {
        b.add(Mutation::SetExpire { key, expire_at });
    }
    if b.n > 0 {
        b.out.push((b.n, b.buf));
    }
    b.out
}

impl Keyspace {
    /// Encodes up to `max` live entries as one batch of `Set` mutations into `out`, continuing from `cursor`;
    /// returns how many were encoded, or `None` once every shard is done. Each call holds one shard lock
    /// briefly, so a snapshot never stalls writes for its whole duration. Positions are walked downwards as
    /// SCAN does, so a key present throughout is always written (see `scan`).
    pub fn snapshot_chunk(&self, cursor: &mut SnapshotCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if let Some((n, batch)) = cursor.queued.pop_front() {
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&batch);
            return Some(n as usize);
        }
        let now = self.now();
        while cursor.shard < self.shards.len() {
            let shard = self.shards[cursor.shard].lock();
            let mut pos = cursor.remaining.min(shard.len());
            if pos == 0 {
                drop(shard);
                cursor.shard += 1;
                cursor.remaining = usize::MAX;
                continue;
            }
            let mut batch = Vec::with_capacity(max.min(pos));
            let mut encoded: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut bytes = 0usize;
            while pos > 0 && batch.len() < max && bytes < cursor.chunk_bytes {
                pos -= 1;
                let e = shard.entry(pos);
                if !e.is_expired(now) {
                    match &e.coll {
                        // A stream is in the stream store's part of the snapshot, its expiry with it.
                        Some(c) if c.kind() == Kind::Stream => {}
                        None => {
                            bytes += e.key().len() + e.value().len();
                            batch.push(Mutation::Set { key: e.key(), value: e.value(), expire_at: e.expire_at });
                        }
                        Some(c) if c.mem() > cursor.chunk_bytes => {
                            // Too large for one record: its elements follow in chunks of their own, and
                            // this call stops here, so one call encodes at most one such collection.
                            cursor.queued.extend(collection_batches(e.key(), c, e.expire_at, cursor.chunk_bytes));
                            break;
                        }
                        Some(c) => {
                            // Placeholder now, the collection's encoding after the loop (it must outlive `batch`).
                            let data = c.encode();
                            bytes += e.key().len() + data.len();
                            encoded.push((batch.len(), data));
                            batch.push(Mutation::Del { key: e.key() });
                        }
                    }
                }
            }
            for (i, data) in &encoded {
                let e_key = super::apply::single_key(&batch[*i]);
                let pos = shard.find(self.hash(e_key), e_key).expect("entry present under the lock");
                let e = shard.entry(pos);
                let kind = e.kind() as u8;
                batch[*i] = Mutation::Restore { key: e.key(), kind, data, expire_at: e.expire_at };
            }
            crate::mutation::encode_batch(&batch, out);
            cursor.remaining = pos;
            return Some(batch.len());
        }
        None
    }

    /// DEBUG RELOAD: every key is written out in its snapshot records and read back into its emptied
    /// shard, one shard at a time (so the copy in between is one shard's). Values come back in the
    /// encodings their size calls for now, with fresh access stamps; expiry times stay (an expired key is
    /// reclaimed later as any other, with its logged removal); a stream's entry stays as it is (its
    /// stream is not reloaded). Nothing is logged: the contents do not change. The caller runs alone.
    pub(crate) fn reload(&self) {
        /// One entry as it comes back: a stream's entry as it was, any other as its records.
        enum Back {
            Stream(Vec<u8>, u64),
            Records(Vec<Vec<u8>>),
        }
        for idx in 0..self.shards.len() {
            let mut back: Vec<Back> = Vec::new();
            let mut shard = self.shards[idx].lock();
            for e in shard.iter() {
                let mut out = Vec::new();
                match &e.coll {
                    Some(c) if c.kind() == Kind::Stream => {
                        back.push(Back::Stream(e.key().to_vec(), e.expire_at));
                        continue;
                    }
                    None => crate::mutation::encode_batch(
                        &[Mutation::Set { key: e.key(), value: e.value(), expire_at: e.expire_at }],
                        &mut out,
                    ),
                    Some(c) if c.mem() > SNAPSHOT_CHUNK_BYTES => {
                        let batches = collection_batches(e.key(), c, e.expire_at, SNAPSHOT_CHUNK_BYTES)
                            .into_iter()
                            .map(|(n, body)| {
                                let mut b = n.to_le_bytes().to_vec();
                                b.extend_from_slice(&body);
                                b
                            })
                            .collect();
                        back.push(Back::Records(batches));
                        continue;
                    }
                    Some(c) => {
                        let data = c.encode();
                        let m = Mutation::Restore {
                            key: e.key(),
                            kind: c.kind() as u8,
                            data: &data,
                            expire_at: e.expire_at,
                        };
                        crate::mutation::encode_batch(&[m], &mut out);
                    }
                }
                back.push(Back::Records(vec![out]));
            }
            let old = shard.clear();
            drop(shard);
            drop(old);
            // In the order they were: a snapshot walking positions meanwhile finds every key where it was.
            let now = self.now();
            for b in back {
                match b {
                    Back::Stream(key, expire_at) => {
                        let h = self.hash(&key);
                        self.lock(h).upsert_coll(h, &key, Coll::Stream, expire_at, self.initial_access(now));
                    }
                    Back::Records(batches) => {
                        for b in batches {
                            self.apply_batch(
                                &crate::mutation::decode_batch(&b).expect("records this keyspace encoded"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// An order-independent digest of every live key, value and expiry at time `now`. Two keyspaces with
    /// the same contents have the same digest, whatever their history, shard count or hash seed.
    pub fn digest(&self, now: u64) -> u64 {
        let mut sum = 0u64;
        let mut count = 0u64;
        for s in self.shards.iter() {
            let g = s.lock();
            for e in g.iter().filter(|e| !e.is_expired(now)) {
                let mut h = fnv1a(FNV_OFFSET, e.key());
                h = fnv1a(h, &[0xff, e.kind() as u8]);
                match &e.coll {
                    None => h = fnv1a(h, e.value()),
                    Some(c) => h = fnv1a(h, &c.digest()),
                }
                h = fnv1a(h, &e.expire_at.to_le_bytes());
                sum = sum.wrapping_add(mix(h));
                count += 1;
            }
        }
        mix(sum ^ count.rotate_left(32))
    }
}

impl Keyspace {
    /// One key's digest (DEBUG DIGEST-VALUE): its type, value and expiry; `None` when it is missing.
    pub fn key_digest(&self, key: &[u8], now: u64) -> Option<u64> {
        let h = self.hash(key);
        let shard = self.lock(h);
        let pos = shard.find(h, key)?;
        let e = shard.entry(pos);
        if e.is_expired(now) {
            return None;
        }
        let mut d = fnv1a(FNV_OFFSET, &[0xff, e.kind() as u8]);
        d = match &e.coll {
            None => fnv1a(d, e.value()),
            Some(c) => fnv1a(d, &c.digest()),
        };
        Some(mix(fnv1a(d, &e.expire_at.to_le_bytes())))
    }

    /// The memory a key takes, as the memory limit counts it (MEMORY USAGE); `None` when it is missing.
    pub fn memory_usage(&self, key: &[u8], now: u64) -> Option<usize> {
        let h = self.hash(key);
        let shard = self.lock(h);
        let pos = shard.find(h, key)?;
        let e = shard.entry(pos);
        (!e.is_expired(now)).then(|| e.charge())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A 64-bit finalizer (splitmix64), so that sums of digests do not cancel easily.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
