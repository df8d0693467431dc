//! Stream commands ([`StreamCmd`]): Synap's own (`stream.*` over HTTP) and Redis's (`X*` over RESP), the
//! stream ids both address events by, and the parsers of Redis's commands with Redis's ID rules and error
//! strings.

use std::fmt;

use bytes::Bytes;

use super::Command;
use super::args::{Args, arity_error, is, parse_i64};
use crate::error::{CommandError, Result};

/// A Redis stream id: milliseconds and a sequence number. Ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id after this one (saturating at the maximum).
    pub fn next(self) -> StreamId {
        if self.seq < u64::MAX {
            StreamId { ms: self.ms, seq: self.seq + 1 }
        } else if self.ms < u64::MAX {
            StreamId { ms: self.ms + 1, seq: 0 }
        } else {
            self
        }
    }

    /// The id before this one (saturating at 0-0).
    pub fn prev(self) -> StreamId {
        if self.seq > 0 {
            StreamId { ms: self.ms, seq: self.seq - 1 }
        } else if self.ms > 0 {
            StreamId { ms: self.ms - 1, seq: u64::MAX }
        } else {
            self
        }
    }

    /// Parses `ms-seq`, or `ms` alone with `seq_default` as its sequence. `None` when malformed.
    pub fn parse(s: &[u8], seq_default: u64) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = match s.split_once('-') {
            Some((ms, seq)) => (ms, Some(seq)),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) {
            return None;
        }
        let ms = ms.parse().ok()?;
        let seq = match seq {
            Some(q) if digits(q) => q.parse().ok()?,
            Some(_) => return None,
            None => seq_default,
        };
        Some(StreamId { ms, seq })
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Retention and partitions as a client gives them; what is missing comes from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomOptions {
    pub partitions: Option<u32>,
    pub max_events: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_age_ms: Option<u64>,
}

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
    /// `block`: BLOCK ms (`Some(0)`: wait forever).
    XRead {
        streams: Vec<(Bytes, ReadFrom)>,
        count: Option<usize>,
        block: Option<u64>,
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
    /// `block` only when every stream reads new events (a history read answers at once).
    XReadGroup {
        group: Bytes,
        consumer: Bytes,
        count: Option<usize>,
        noack: bool,
        streams: Vec<(Bytes, Option<StreamId>)>,
        block: Option<u64>,
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
    pub fn name(&self) -> &'static str {
        match self {
            StreamCmd::Create { .. } => "stream.create",
            StreamCmd::Delete { .. } => "stream.delete",
            StreamCmd::List => "stream.list",
            StreamCmd::Stats { .. } => "stream.stats",
            StreamCmd::Publish { .. } => "stream.publish",
            StreamCmd::Read { .. } => "stream.consume",
            StreamCmd::GroupCreate { .. } => "stream.group.create",
            StreamCmd::GroupDelete { .. } => "stream.group.delete",
            StreamCmd::GroupRead { .. } => "stream.group.read",
            StreamCmd::GroupAck { .. } => "stream.group.ack",
            StreamCmd::GroupClaim { .. } => "stream.group.claim",
            StreamCmd::Trim { .. } => "stream.trim",
            StreamCmd::XAdd { .. } => "xadd",
            StreamCmd::XLen { .. } => "xlen",
            StreamCmd::XRange { rev: false, .. } => "xrange",
            StreamCmd::XRange { rev: true, .. } => "xrevrange",
            StreamCmd::XRead { .. } => "xread",
            StreamCmd::XTrim { .. } => "xtrim",
            StreamCmd::XDel { .. } => "xdel",
            StreamCmd::XGroupCreate { .. } => "xgroup|create",
            StreamCmd::XGroupDestroy { .. } => "xgroup|destroy",
            StreamCmd::XGroupSetId { .. } => "xgroup|setid",
            StreamCmd::XGroupCreateConsumer { .. } => "xgroup|createconsumer",
            StreamCmd::XGroupDelConsumer { .. } => "xgroup|delconsumer",
            StreamCmd::XReadGroup { .. } => "xreadgroup",
            StreamCmd::XAck { .. } => "xack",
            StreamCmd::XPending { .. } => "xpending",
            StreamCmd::XClaim(_) => "xclaim",
            StreamCmd::XAutoClaim { .. } => "xautoclaim",
            StreamCmd::XInfo(XInfo::Stream { .. }) => "xinfo|stream",
            StreamCmd::XInfo(XInfo::Groups { .. }) => "xinfo|groups",
            StreamCmd::XInfo(XInfo::Consumers { .. }) => "xinfo|consumers",
        }
    }

    /// The streams the command names.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            StreamCmd::List => vec![],
            StreamCmd::XRead { streams, .. } => streams.iter().map(|(k, _)| k).collect(),
            StreamCmd::XReadGroup { streams, .. } => streams.iter().map(|(k, _)| k).collect(),
            StreamCmd::Create { room, .. }
            | StreamCmd::Delete { room }
            | StreamCmd::Stats { room }
            | StreamCmd::Publish { room, .. }
            | StreamCmd::Read { room, .. }
            | StreamCmd::GroupCreate { room, .. }
            | StreamCmd::GroupDelete { room, .. }
            | StreamCmd::GroupRead { room, .. }
            | StreamCmd::GroupAck { room, .. }
            | StreamCmd::GroupClaim { room, .. }
            | StreamCmd::Trim { room, .. } => vec![room],
            StreamCmd::XAdd { key, .. }
            | StreamCmd::XLen { key }
            | StreamCmd::XRange { key, .. }
            | StreamCmd::XTrim { key, .. }
            | StreamCmd::XDel { key, .. }
            | StreamCmd::XGroupCreate { key, .. }
            | StreamCmd::XGroupDestroy { key, .. }
            | StreamCmd::XGroupSetId { key, .. }
            | StreamCmd::XGroupCreateConsumer { key, .. }
            | StreamCmd::XGroupDelConsumer { key, .. }
            | StreamCmd::XAck { key, .. }
            | StreamCmd::XPending { key, .. }
            | StreamCmd::XAutoClaim { key, .. } => vec![key],
            StreamCmd::XClaim(a) => vec![&a.key],
            StreamCmd::XInfo(XInfo::Stream { key, .. } | XInfo::Groups { key } | XInfo::Consumers { key, .. }) => {
                vec![key]
            }
        }
    }

    /// The stream a command creates when it is missing, if it may: XADD (without NOMKSTREAM), XGROUP
    /// CREATE ... MKSTREAM, and Synap's create and publish.
    pub fn creates(&self) -> Option<&Bytes> {
        match self {
            StreamCmd::XAdd { key, nomkstream: false, .. } => Some(key),
            StreamCmd::XGroupCreate { key, mkstream: true, .. } => Some(key),
            StreamCmd::Create { room, .. } | StreamCmd::Publish { room, .. } => Some(room),
            _ => None,
        }
    }
}

// ---- parsers of Redis's stream commands ----

fn stream(c: StreamCmd) -> Result<Command> {
    Ok(Command::Stream(c))
}

fn invalid_id() -> CommandError {
    CommandError::Invalid("Invalid stream ID specified as stream command argument".into())
}

fn id(arg: &[u8], seq_default: u64) -> Result<StreamId> {
    StreamId::parse(arg, seq_default).ok_or_else(invalid_id)
}

fn int(arg: &[u8]) -> Result<i64> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

fn nonneg(arg: &[u8]) -> Result<u64> {
    u64::try_from(int(arg)?).map_err(|_| CommandError::Invalid("value is out of range, must be positive".into()))
}

fn timeout(arg: &[u8]) -> Result<u64> {
    let n = parse_i64(arg).ok_or_else(|| CommandError::Invalid("timeout is not an integer or out of range".into()))?;
    u64::try_from(n).map_err(|_| CommandError::Invalid("timeout is negative".into()))
}

/// One end of XRANGE: `-`, `+`, `(id` or `id` (an `ms` alone means `ms-0` as start, `ms-max` as end).
fn bound(arg: &[u8], is_start: bool) -> Result<IdBound> {
    match arg {
        b"-" => Ok(IdBound::Incl(StreamId::MIN)),
        b"+" => Ok(IdBound::Incl(StreamId::MAX)),
        [b'(', rest @ ..] => {
            if rest == b"-" || rest == b"+" {
                return Err(invalid_id());
            }
            Ok(IdBound::Excl(id(rest, if is_start { 0 } else { u64::MAX })?))
        }
        _ => Ok(IdBound::Incl(id(arg, if is_start { 0 } else { u64::MAX })?)),
    }
}

/// `MAXLEN|MINID [=|~] threshold [LIMIT n]`, the word MAXLEN or MINID next.
fn trim_spec(a: &mut Args<'_>) -> Result<TrimSpec> {
    let maxlen = a.eat("maxlen");
    if !maxlen && !a.eat("minid") {
        return Err(CommandError::Syntax);
    }
    let approx = match a.peek().map(|b| &b[..]) {
        Some(b"~") => {
            a.next_bytes()?;
            true
        }
        Some(b"=") => {
            a.next_bytes()?;
            false
        }
        _ => false,
    };
    let threshold = a.next_bytes()?;
    let strategy = if maxlen {
        TrimStrategy::MaxLen(
            u64::try_from(int(&threshold)?)
                .map_err(|_| CommandError::Invalid("The MAXLEN argument must be >= 0.".into()))?,
        )
    } else {
        TrimStrategy::MinId(id(&threshold, 0)?)
    };
    if a.eat("limit") {
        if !approx {
            return Err(CommandError::Invalid(
                "syntax error, LIMIT cannot be used without the special ~ option".into(),
            ));
        }
        nonneg(&a.next_bytes()?)?;
    }
    Ok(TrimSpec { strategy, approx })
}

pub(super) fn xadd(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let mut nomkstream = false;
    let mut trim = None;
    loop {
        if a.eat("nomkstream") {
            nomkstream = true;
        } else if a.peek().is_some_and(|w| is(w, "maxlen") || is(w, "minid")) {
            trim = Some(trim_spec(a)?);
        } else {
            break;
        }
    }
    let raw = a.next_bytes()?;
    let xid = if &raw[..] == b"*" {
        XAddId::Auto
    } else if let Some(ms) = raw.strip_suffix(b"-*") {
        XAddId::AutoSeq(id(ms, 0)?.ms)
    } else {
        XAddId::Explicit(id(&raw, 0)?)
    };
    let fields = a.pairs().map_err(|_| arity_error("xadd"))?;
    if xid == XAddId::Explicit(StreamId::MIN) {
        return Err(CommandError::Invalid("The ID specified in XADD must be greater than 0-0".into()));
    }
    stream(StreamCmd::XAdd { key, id: xid, fields, nomkstream, trim })
}

pub(super) fn xlen(a: &mut Args<'_>) -> Result<Command> {
    stream(StreamCmd::XLen { key: a.next_bytes()? })
}

fn range(a: &mut Args<'_>, rev: bool) -> Result<Command> {
    let key = a.next_bytes()?;
    let (first, second) = (a.next_bytes()?, a.next_bytes()?);
    let (lo, hi) = if rev { (second, first) } else { (first, second) };
    let count = match a.remaining() {
        0 => None,
        2 if a.eat("count") => Some(usize::try_from(a.next_int()?).unwrap_or(0)),
        _ => return Err(CommandError::Syntax),
    };
    stream(StreamCmd::XRange { key, start: bound(&lo, true)?, end: bound(&hi, false)?, count, rev })
}

pub(super) fn xrange(a: &mut Args<'_>) -> Result<Command> {
    range(a, false)
}

pub(super) fn xrevrange(a: &mut Args<'_>) -> Result<Command> {
    range(a, true)
}

pub(super) fn xtrim(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let trim = trim_spec(a)?;
    a.finish()?;
    stream(StreamCmd::XTrim { key, trim })
}

pub(super) fn xdel(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let ids = a.rest().iter().map(|x| id(x, 0)).collect::<Result<_>>()?;
    stream(StreamCmd::XDel { key, ids })
}

/// `[COUNT n] [BLOCK ms] [NOACK] STREAMS k1 k2 id1 id2`: (count, block, noack, keys and ids).
#[allow(clippy::type_complexity)]
fn read_options(a: &mut Args<'_>, group: bool) -> Result<(Option<usize>, Option<u64>, bool, Vec<(Bytes, Bytes)>)> {
    let (mut count, mut block, mut noack) = (None, None, false);
    loop {
        if a.eat("count") {
            let n = a.next_int()?;
            count = if n > 0 { Some(n as usize) } else { None };
        } else if a.eat("block") {
            block = Some(timeout(&a.next_bytes()?)?);
        } else if group && a.eat("noack") {
            noack = true;
        } else if a.eat("streams") {
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let rest = a.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::Invalid(
            "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into(),
        ));
    }
    let (keys, ids) = rest.split_at(rest.len() / 2);
    Ok((count, block, noack, keys.iter().cloned().zip(ids.iter().cloned()).collect()))
}

pub(super) fn xread(a: &mut Args<'_>) -> Result<Command> {
    let (count, block, _, pairs) = read_options(a, false)?;
    let streams = pairs
        .into_iter()
        .map(|(k, x)| {
            let from = match &x[..] {
                b"$" => ReadFrom::Last,
                b"+" => ReadFrom::LastEntry,
                _ => ReadFrom::After(id(&x, 0)?),
            };
            Ok((k, from))
        })
        .collect::<Result<Vec<_>>>()?;
    stream(StreamCmd::XRead { streams, count, block })
}

pub(super) fn xreadgroup(a: &mut Args<'_>) -> Result<Command> {
    if !a.eat("group") {
        return Err(CommandError::Syntax);
    }
    let (group, consumer) = (a.next_bytes()?, a.next_bytes()?);
    let (count, block, noack, pairs) = read_options(a, true)?;
    let streams = pairs
        .into_iter()
        .map(|(k, x)| {
            let from = match &x[..] {
                b">" => None,
                b"$" => {
                    return Err(CommandError::Invalid(
                        "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of \
                         this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID \
                         would just return an empty result set."
                            .into(),
                    ));
                }
                _ => Some(id(&x, 0)?),
            };
            Ok((k, from))
        })
        .collect::<Result<Vec<_>>>()?;
    // Only reads of new events block; a history read answers at once.
    let block = if streams.iter().any(|(_, f)| f.is_some()) { None } else { block };
    stream(StreamCmd::XReadGroup { group, consumer, count, noack, streams, block })
}

fn group_start(arg: &[u8]) -> Result<GroupStart> {
    match arg {
        b"$" => Ok(GroupStart::Latest),
        b"0" | b"0-0" | b"-" => Ok(GroupStart::Earliest),
        _ => Ok(GroupStart::AfterId(id(arg, 0)?)),
    }
}

pub(super) fn xgroup(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let wrong = || arity_error(&format!("xgroup|{}", String::from_utf8_lossy(&sub).to_lowercase()));
    // `[ENTRIESREAD n]` is accepted and checked (entries-read is derived from the position here).
    let tail = |a: &mut Args<'_>, allow_mkstream: bool| -> Result<bool> {
        let mut mk = false;
        while !a.is_empty() {
            if allow_mkstream && a.eat("mkstream") {
                mk = true;
            } else if a.remaining() >= 2 && a.eat("entriesread") {
                a.next_int()?;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(mk)
    };
    let need = |a: &Args<'_>, n: usize| if a.remaining() < n { Err(wrong()) } else { Ok(()) };
    if is(&sub, "create") {
        need(a, 3)?;
        let (key, group, start) = (a.next_bytes()?, a.next_bytes()?, group_start(&a.next_bytes()?)?);
        let mkstream = tail(a, true)?;
        stream(StreamCmd::XGroupCreate { key, group, start, mkstream })
    } else if is(&sub, "setid") {
        need(a, 3)?;
        let (key, group, start) = (a.next_bytes()?, a.next_bytes()?, group_start(&a.next_bytes()?)?);
        tail(a, false)?;
        stream(StreamCmd::XGroupSetId { key, group, start })
    } else if is(&sub, "destroy") {
        need(a, 2)?;
        let (key, group) = (a.next_bytes()?, a.next_bytes()?);
        a.finish()?;
        stream(StreamCmd::XGroupDestroy { key, group })
    } else if is(&sub, "createconsumer") || is(&sub, "delconsumer") {
        need(a, 3)?;
        let (key, group, consumer) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
        a.finish()?;
        if is(&sub, "createconsumer") {
            stream(StreamCmd::XGroupCreateConsumer { key, group, consumer })
        } else {
            stream(StreamCmd::XGroupDelConsumer { key, group, consumer })
        }
    } else {
        Err(super::args::unknown_subcommand(&sub, "xgroup"))
    }
}

pub(super) fn xack(a: &mut Args<'_>) -> Result<Command> {
    let (key, group) = (a.next_bytes()?, a.next_bytes()?);
    let ids = a.rest().iter().map(|x| id(x, 0)).collect::<Result<_>>()?;
    stream(StreamCmd::XAck { key, group, ids })
}

pub(super) fn xpending(a: &mut Args<'_>) -> Result<Command> {
    let (key, group) = (a.next_bytes()?, a.next_bytes()?);
    if a.is_empty() {
        return stream(StreamCmd::XPending { key, group, range: None });
    }
    let mut min_idle_ms = 0;
    if a.eat("idle") {
        min_idle_ms = nonneg(&a.next_bytes()?)?;
    }
    if !(3..=4).contains(&a.remaining()) {
        return Err(CommandError::Syntax);
    }
    let start = bound(&a.next_bytes()?, true)?;
    let end = bound(&a.next_bytes()?, false)?;
    let count = usize::try_from(a.next_int()?).unwrap_or(0);
    let consumer = if a.is_empty() { None } else { Some(a.next_bytes()?) };
    stream(StreamCmd::XPending { key, group, range: Some(PendingRange { min_idle_ms, start, end, count, consumer }) })
}

pub(super) fn xclaim(a: &mut Args<'_>) -> Result<Command> {
    let (key, group, consumer) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    let min_idle_ms = nonneg(&a.next_bytes()?)
        .map_err(|_| CommandError::Invalid("Invalid min-idle-time argument for XCLAIM".into()))?;
    let mut args = ClaimArgs {
        key,
        group,
        consumer,
        min_idle_ms,
        ids: Vec::new(),
        idle_ms: None,
        delivered_at: None,
        retry_count: None,
        force: false,
        just_id: false,
    };
    while let Some(x) = a.peek().and_then(|x| StreamId::parse(x, 0)) {
        args.ids.push(x);
        a.next_bytes()?;
    }
    if args.ids.is_empty() {
        return Err(invalid_id());
    }
    while let Some(w) = a.peek() {
        let w = w.clone();
        a.next_bytes()?;
        let val = |a: &mut Args<'_>| a.next_bytes().and_then(|v| nonneg(&v));
        if is(&w, "idle") {
            args.idle_ms = Some(val(a)?);
        } else if is(&w, "time") {
            args.delivered_at = Some(val(a)?);
        } else if is(&w, "retrycount") {
            args.retry_count = Some(u32::try_from(val(a)?).unwrap_or(u32::MAX));
        } else if is(&w, "force") {
            args.force = true;
        } else if is(&w, "justid") {
            args.just_id = true;
        } else if is(&w, "lastid") {
            id(&a.next_bytes()?, 0)?;
        } else {
            return Err(CommandError::Invalid(format!("Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(&w))));
        }
    }
    stream(StreamCmd::XClaim(args))
}

pub(super) fn xautoclaim(a: &mut Args<'_>) -> Result<Command> {
    let (key, group, consumer) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    let min_idle_ms = nonneg(&a.next_bytes()?)
        .map_err(|_| CommandError::Invalid("Invalid min-idle-time argument for XAUTOCLAIM".into()))?;
    let start = match &a.next_bytes()?[..] {
        b"-" => StreamId::MIN,
        x => id(x, 0)?,
    };
    let (mut count, mut just_id) = (100usize, false);
    while !a.is_empty() {
        if a.eat("count") {
            let n = a.next_int()?;
            if !(1..=(i64::MAX / 10)).contains(&n) {
                return Err(CommandError::Invalid("COUNT must be > 0".into()));
            }
            count = (n as usize).min(100_000);
        } else if a.eat("justid") {
            just_id = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    stream(StreamCmd::XAutoClaim { key, group, consumer, min_idle_ms, start, count, just_id })
}

pub(super) fn xinfo(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    if is(&sub, "stream") {
        let key = a.next_bytes()?;
        let (full, count) = match a.remaining() {
            0 => (false, 0),
            1 if a.eat("full") => (true, 10),
            3 if a.eat("full") && a.eat("count") => (true, usize::try_from(a.next_int()?).unwrap_or(0)),
            _ => return Err(CommandError::Syntax),
        };
        stream(StreamCmd::XInfo(XInfo::Stream { key, full, count }))
    } else if is(&sub, "groups") {
        stream(StreamCmd::XInfo(XInfo::Groups { key: a.next_bytes()? }))
    } else if is(&sub, "consumers") {
        stream(StreamCmd::XInfo(XInfo::Consumers { key: a.next_bytes()?, group: a.next_bytes()? }))
    } else {
        Err(super::args::unknown_subcommand(&sub, "xinfo"))
    }
}
