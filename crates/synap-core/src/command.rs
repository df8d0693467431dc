//! The one vocabulary every front end speaks: [`Command`] in, [`Reply`] out.
//!
//! Front ends (HTTP, RESP, ...) parse their wire format into a `Command`, call
//! [`crate::Engine::execute`], and render the `Reply` or [`crate::CommandError`].

use bytes::Bytes;

use crate::queue::{ConsumeArgs, PublishArgs, QueueOptions};
use crate::stream::StreamCmd;

/// A time-to-live as given by a client, resolved to an absolute time by the engine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Relative, in milliseconds (EX is converted by the codec, with an overflow check).
    In(i64),
    /// Absolute Unix time in milliseconds (EXAT/PXAT, EXPIREAT/PEXPIREAT).
    At(i64),
}

/// SET's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCond {
    #[default]
    Always,
    /// Only if the key does not exist (NX).
    IfAbsent,
    /// Only if the key exists (XX).
    IfPresent,
}

/// EXPIRE's condition (Redis 7: NX XX GT LT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireCond {
    #[default]
    Always,
    /// Only when the key has no expiry.
    Nx,
    /// Only when the key has an expiry.
    Xx,
    /// Only when the new expiry is greater (no expiry counts as infinite).
    Gt,
    /// Only when the new expiry is less.
    Lt,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetArgs {
    pub key: Bytes,
    pub value: Bytes,
    pub ttl: Option<Ttl>,
    pub keep_ttl: bool,
    pub cond: SetCond,
    /// Reply with the previous value (SET ... GET, GETSET).
    pub get: bool,
}

impl SetArgs {
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        SetArgs { key: key.into(), value: value.into(), ttl: None, keep_ttl: false, cond: SetCond::Always, get: false }
    }
}

/// Unit of a TTL reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanArgs {
    pub cursor: u64,
    /// Redis glob pattern (MATCH).
    pub pattern: Option<Bytes>,
    /// Literal key prefix (HTTP `prefix=`); combined with `pattern` when both are given.
    pub prefix: Option<Bytes>,
    /// Roughly how many keys to examine (COUNT, default 10).
    pub count: usize,
    /// Only keys of this type (TYPE).
    pub type_filter: Option<String>,
}

/// Every operation the engine knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Get {
        key: Bytes,
    },
    Set(SetArgs),
    GetDel {
        key: Bytes,
    },
    Del {
        keys: Vec<Bytes>,
    },
    Exists {
        keys: Vec<Bytes>,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    /// MSET, or MSETNX when `nx` (all or nothing).
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        nx: bool,
    },
    IncrBy {
        key: Bytes,
        by: i64,
    },
    IncrByFloat {
        key: Bytes,
        by: f64,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    Strlen {
        key: Bytes,
    },
    Expire {
        key: Bytes,
        ttl: Ttl,
        cond: ExpireCond,
        name: &'static str,
    },
    Ttl {
        key: Bytes,
        unit: TimeUnit,
    },
    ExpireTime {
        key: Bytes,
        unit: TimeUnit,
    },
    Persist {
        key: Bytes,
    },
    Type {
        key: Bytes,
    },
    Rename {
        from: Bytes,
        to: Bytes,
        nx: bool,
    },
    Keys {
        pattern: Bytes,
    },
    Scan(ScanArgs),
    RandomKey,
    DbSize,
    FlushAll,
    /// Creates a queue (no change if it exists); options not given come from the defaults.
    QueueCreate {
        name: Bytes,
        options: QueueOptions,
    },
    QueueDelete {
        name: Bytes,
    },
    QueueList,
    QueuePublish(PublishArgs),
    QueueConsume(ConsumeArgs),
    QueueAck {
        queue: Bytes,
        ids: Vec<u64>,
    },
    QueueNack {
        queue: Bytes,
        id: u64,
        requeue: bool,
    },
    QueueStats {
        queue: Bytes,
    },
    QueuePurge {
        queue: Bytes,
    },
    /// Lists a queue's dead letters without delivering them.
    QueueDlqList {
        queue: Bytes,
        max: usize,
    },
    /// Moves dead letters back to their queue.
    QueueRedrive {
        queue: Bytes,
        max: usize,
    },
    QueueDlqPurge {
        queue: Bytes,
    },
    /// Publishes to a channel/topic; answers the number of receivers.
    Publish {
        channel: Bytes,
        payload: Bytes,
    },
    /// PUBSUB CHANNELS [pattern]
    PubSubChannels {
        pattern: Option<Bytes>,
    },
    /// PUBSUB NUMSUB channel...
    PubSubNumSub {
        channels: Vec<Bytes>,
    },
    /// PUBSUB NUMPAT
    PubSubNumPat,
    /// A stream command (Synap's or Redis's).
    Stream(StreamCmd),
    /// A hash, list, set or sorted-set command with its Redis arguments (after the name).
    Coll {
        cmd: crate::kv::types::CollCmd,
        args: Vec<Bytes>,
    },
}

impl Command {
    /// Whether the command may change state (checked against the log's health and the memory limit).
    pub fn is_write(&self) -> bool {
        if let Command::Stream(c) = self {
            return c.is_write();
        }
        if let Command::Coll { cmd, .. } = self {
            return cmd.is_write();
        }
        !matches!(
            self,
            Command::Get { .. }
                | Command::Exists { .. }
                | Command::MGet { .. }
                | Command::Strlen { .. }
                | Command::Ttl { .. }
                | Command::ExpireTime { .. }
                | Command::Type { .. }
                | Command::Keys { .. }
                | Command::Scan(_)
                | Command::RandomKey
                | Command::DbSize
                | Command::QueueList
                | Command::QueueStats { .. }
                | Command::QueueDlqList { .. }
                | Command::Publish { .. }
                | Command::PubSubChannels { .. }
                | Command::PubSubNumSub { .. }
                | Command::PubSubNumPat
        )
    }

    /// Whether the command may grow memory use, so that it is refused (or evicts keys) at the memory limit,
    /// which counts queues and streams as well as keys. Deletions and expiry changes stay allowed at the
    /// limit, as in Redis.
    pub fn may_grow(&self) -> bool {
        if let Command::Stream(c) = self {
            return c.may_grow();
        }
        if let Command::Coll { cmd, .. } = self {
            use crate::kv::types::CollCmd::*;
            return cmd.is_write()
                && !matches!(
                    cmd,
                    HDel | LPop
                        | RPop
                        | LRem
                        | LTrim
                        | SRem
                        | SPop
                        | ZRem
                        | ZPopMin
                        | ZPopMax
                        | ZRemRangeByScore
                        | ZRemRangeByRank
                        | BLPop
                        | BRPop
                        | BZPopMin
                        | BZPopMax
                );
        }
        matches!(
            self,
            Command::Set(_)
                | Command::MSet { .. }
                | Command::IncrBy { .. }
                | Command::IncrByFloat { .. }
                | Command::Append { .. }
                | Command::QueueCreate { .. }
                | Command::QueuePublish(_)
        )
    }
}

/// What the engine answers. Front ends render it; the RESP codec maps it one to one.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A short status word (`+string`, `+none`).
    Status(&'static str),
    /// Absent value (null bulk string).
    Nil,
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
    /// Key-value pairs (a RESP3 map; a flat array in RESP2).
    Map(Vec<(Reply, Reply)>),
    /// A floating-point number (RESP3 double; a bulk string in RESP2).
    Double(f64),
}

impl Reply {
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }
}
