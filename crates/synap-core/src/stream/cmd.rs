//! Stream commands: Synap's own (`stream.*` over HTTP) and Redis's (`X*` over RESP).

use bytes::Bytes;

use super::{RoomOptions, StreamId};

/// The id XADD is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAddId {
    /// `*`
    Auto,
    /// `ms-*`
    AutoSeq(u64),
    Explicit(StreamId),
}

/// XTRIM / XADD trimming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimStrategy {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimSpec {
    pub strategy: TrimStrategy,
    /// `~`: may keep more (Synap trims exactly either way; the flag is accepted for compatibility).
    pub approx: bool,
}

/// One end of an XRANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdBound {
    Incl(StreamId),
    Excl(StreamId),
}

/// Where XREAD starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Events after this id.
    After(StreamId),
    /// `$`: only events added from now on (resolved by the front end before it blocks).
    Last,
    /// `+`: the last event.
    LastEntry,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// From the oldest retained event.
    Earliest,
    /// Only events added from now on (`$`).
    Latest,
    /// Events after this id (Redis).
    AfterId(StreamId),
    /// From this offset in every partition (Synap).
    Offset(u64),
}

/// XPENDING's extended form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRange {
    pub min_idle_ms: u64,
    pub start: IdBound,
    pub end: IdBound,
    pub count: usize,
    pub consumer: Option<Bytes>,
}

/// XCLAIM's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimArgs {
    pub key: Bytes,
    pub group: Bytes,
    pub consumer: Bytes,
    pub min_idle_ms: u64,
    pub ids: Vec<StreamId>,
    /// IDLE: the entries' idle time to record.
    pub idle_ms: Option<u64>,
    /// TIME: the delivery time to record (absolute Unix ms).
    pub delivered_at: Option<u64>,
    pub retry_count: Option<u32>,
    pub force: bool,
    pub just_id: bool,
}

/// XINFO's subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XInfo {
    Stream { key: Bytes, full: bool, count: usize },
    Groups { key: Bytes },
    Consumers { key: Bytes, group: Bytes },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamCmd {
    // ---- Synap's API ----
    /// Creates a stream; fails when it exists.
    Create {
        room: Bytes,
        options: RoomOptions,
    },
    Delete {
        room: Bytes,
    },
    List,
    Stats {
        room: Bytes,
    },
    /// Publishes one event: to `partition`, else by `key`, else round robin.
    Publish {
        room: Bytes,
        key: Bytes,
        partition: Option<u32>,
        fields: Vec<(Bytes, Bytes)>,
    },
    /// Reads a partition from an offset (`None`: from the oldest retained).
    Read {
        room: Bytes,
        partition: u32,
        from: Option<u64>,
        limit: usize,
    },
    /// Creates a consumer group (Synap: redelivery of idle pending events after `redeliver_ms`; `u64::MAX`
    /// takes the store's default).
    GroupCreate {
        room: Bytes,
        group: Bytes,
        start: GroupStart,
        redeliver_ms: u64,
    },
    GroupDelete {
        room: Bytes,
        group: Bytes,
    },
    /// Delivers up to `count` events to `consumer`: idle pending ones first, then new ones.
    GroupRead {
        room: Bytes,
        group: Bytes,
        consumer: Bytes,
        count: usize,
    },
    GroupAck {
        room: Bytes,
        group: Bytes,
        partition: u32,
        offsets: Vec<u64>,
    },
    /// Moves pending events idle for `min_idle_ms` to `consumer` and delivers them.
    GroupClaim {
        room: Bytes,
        group: Bytes,
        consumer: Bytes,
        min_idle_ms: u64,
        partition: u32,
        offsets: Vec<u64>,
    },
    /// Trims every partition to its newest `max_events`.
    Trim {
        room: Bytes,
        max_events: u64,
    },

    // ---- Redis's commands (single-partition streams) ----
    XAdd {
        key: Bytes,
        id: XAddId,
        fields: Vec<(Bytes, Bytes)>,
        nomkstream: bool,
        trim: Option<TrimSpec>,
    },
    XLen {
        key: Bytes,
    },
    XRange {
        key: Bytes,
        start: IdBound,
        end: IdBound,
        count: Option<usize>,
        rev: bool,
    },
    XRead {
        streams: Vec<(Bytes, ReadFrom)>,
        count: Option<usize>,
    },
    XTrim {
        key: Bytes,
        trim: TrimSpec,
    },
    XDel {
        key: Bytes,
        ids: Vec<StreamId>,
    },
    XGroupCreate {
        key: Bytes,
        group: Bytes,
        start: GroupStart,
        mkstream: bool,
    },
    XGroupDestroy {
        key: Bytes,
        group: Bytes,
    },
    XGroupSetId {
        key: Bytes,
        group: Bytes,
        start: GroupStart,
    },
    XGroupCreateConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    XGroupDelConsumer {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    /// `ids` holds one entry per key: `None` for `>` (new events), else history after that id.
    XReadGroup {
        group: Bytes,
        consumer: Bytes,
        count: Option<usize>,
        noack: bool,
        streams: Vec<(Bytes, Option<StreamId>)>,
    },
    XAck {
        key: Bytes,
        group: Bytes,
        ids: Vec<StreamId>,
    },
    XPending {
        key: Bytes,
        group: Bytes,
        range: Option<PendingRange>,
    },
    XClaim(ClaimArgs),
    XAutoClaim {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        min_idle_ms: u64,
        start: StreamId,
        count: usize,
        just_id: bool,
    },
    XInfo(XInfo),
}

impl StreamCmd {
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            StreamCmd::List
                | StreamCmd::Stats { .. }
                | StreamCmd::Read { .. }
                | StreamCmd::XLen { .. }
                | StreamCmd::XRange { .. }
                | StreamCmd::XRead { .. }
                | StreamCmd::XPending { .. }
                | StreamCmd::XInfo(_)
        )
    }

    /// Whether the command adds data (refused at the memory limit, as Redis's `denyoom` commands): new
    /// streams, groups, consumers and events. Reads that deliver (and so add pending entries) stay
    /// allowed, as XREADGROUP does in Redis: consumers must be able to drain a full server.
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            StreamCmd::Create { .. }
                | StreamCmd::Publish { .. }
                | StreamCmd::XAdd { .. }
                | StreamCmd::GroupCreate { .. }
                | StreamCmd::XGroupCreate { .. }
                | StreamCmd::XGroupCreateConsumer { .. }
        )
    }
}
