//! What the engine answers: values front ends render (RESP2, RESP3, JSON) from their type. Plain values
//! (`Int`, `Bulk`, `Array`, ...) render the same way everywhere; the typed ones (`Expiry`, `Scan`, `Read`,
//! `Decimal`) say what they are, so that a front end never decodes a sentinel (`-2`) or looks for a map
//! key to learn what a reply means.

use bytes::Bytes;

/// Unit of a TTL reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
}

/// A key's expiry, as TTL, PTTL, EXPIRETIME and PEXPIRETIME answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No such key (RESP `-2`).
    Missing,
    /// The key does not expire (RESP `-1`).
    Persistent,
    /// Time left, in milliseconds (TTL, PTTL); rendered in `unit`, seconds rounded up.
    Remaining { ms: u64, unit: TimeUnit },
    /// Absolute Unix time in milliseconds (EXPIRETIME, PEXPIRETIME); rendered in `unit`.
    At { ms: u64, unit: TimeUnit },
}

impl Expiry {
    /// The integer Redis answers.
    pub fn redis_value(self) -> i64 {
        match self {
            Expiry::Missing => -2,
            Expiry::Persistent => -1,
            Expiry::Remaining { ms, unit: TimeUnit::Millis } | Expiry::At { ms, unit: TimeUnit::Millis } => ms as i64,
            Expiry::Remaining { ms, unit: TimeUnit::Seconds } => ms.div_ceil(1000) as i64,
            Expiry::At { ms, unit: TimeUnit::Seconds } => (ms / 1000) as i64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A short status word (`+string`, `+none`).
    Status(&'static str),
    /// A status line made at run time (a script's `{ok = ...}`).
    Simple(String),
    /// An error line inside a reply (an element of a script's array; a top-level error is a
    /// `CommandError`).
    Error(String),
    /// Absent value (null bulk string; RESP3 null).
    Nil,
    /// Absent array (RESP2 `*-1`; RESP3 null): XREAD and the blocking pops when nothing came, LPOP with
    /// a count on a missing key.
    NullArray,
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
    /// Key-value pairs (a RESP3 map; a flat array in RESP2).
    Map(Vec<(Reply, Reply)>),
    /// Elements in no promised order (a RESP3 set; an array in RESP2): SMEMBERS, SINTER, SPOP with a count.
    Set(Vec<Reply>),
    /// Element-value pairs (RESP3: an array of `[element, value]` arrays; RESP2: a flat array): ZRANGE
    /// WITHSCORES, ZPOPMIN with a count, HRANDFIELD WITHVALUES.
    Pairs(Vec<(Reply, Reply)>),
    /// Per-key results (RESP3: a map; RESP2: an array of `[key, value]` arrays): XREAD, XREADGROUP.
    Keyed(Vec<(Reply, Reply)>),
    /// A floating-point number (RESP3 double; a bulk string in RESP2): scores.
    Double(f64),
    /// A number Redis answers as its text in both protocols (INCRBYFLOAT, HINCRBYFLOAT: see
    /// [`crate::decimal`]); a number in JSON.
    Decimal(Bytes),
    /// A floating-point number already formatted (RESP3 double; a bulk string in RESP2): GEOPOS and the
    /// coordinates of the geo searches, which Redis prints with `%.17Lf`.
    DoubleText(Bytes),
    /// A key's expiry.
    Expiry(Expiry),
    /// One page of a cursor walk (SCAN, HSCAN, SSCAN, ZSCAN): RESP `[cursor, items]`; 0 ends the walk.
    Scan {
        cursor: u64,
        items: Vec<Reply>,
    },
    /// One read of a stream partition by offset: its events and the offset to read from next.
    Read {
        partition: u32,
        next_offset: u64,
        events: Vec<Reply>,
    },
}

impl Reply {
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// Whether a read found nothing: nil, an empty array, or a partition read without events. Long polls
    /// and blocking commands wait while their attempt answers this.
    pub fn is_nothing(&self) -> bool {
        match self {
            Reply::Nil | Reply::NullArray => true,
            Reply::Array(items) | Reply::Set(items) => items.is_empty(),
            Reply::Pairs(pairs) | Reply::Keyed(pairs) => pairs.is_empty(),
            Reply::Read { events, .. } => events.is_empty(),
            _ => false,
        }
    }
}
