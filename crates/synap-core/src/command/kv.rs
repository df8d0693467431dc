//! String commands ([`KvCmd`]) and commands on keys of any type ([`KeysCmd`]), with their parsers.

use bytes::Bytes;

use super::args::{Args, is, parse_cursor, parse_i64, unknown_subcommand};
use super::{Command, TimeUnit};
use crate::error::{CommandError, Result};

/// A time-to-live as given by a client, resolved to an absolute time by the engine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Relative, in milliseconds (EX is converted by the parser, with an overflow check).
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

/// What GETEX does to the key's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetExpiry {
    /// No option: the expiry stays.
    Keep,
    /// PERSIST: the key stops expiring.
    Persist,
    /// EX, PX, EXAT, PXAT.
    Set(Ttl),
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

/// The string commands.
#[derive(Debug, Clone, PartialEq)]
pub enum KvCmd {
    Get {
        key: Bytes,
    },
    /// SET and the commands that are forms of it (SETEX, PSETEX, GETSET).
    Set(SetArgs),
    /// SETNX: sets when absent, answers 1 or 0.
    SetNx {
        key: Bytes,
        value: Bytes,
    },
    GetDel {
        key: Bytes,
    },
    GetEx {
        key: Bytes,
        expiry: GetExpiry,
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
    /// `by` as given: read (as a long double, see [`crate::decimal`]) after the key, as Redis does.
    IncrByFloat {
        key: Bytes,
        by: Bytes,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    Strlen {
        key: Bytes,
    },
    /// SETRANGE: overwrites from `offset`, zero-padding a shorter value.
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    /// GETRANGE and SUBSTR (inclusive indexes, negative from the end).
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    /// LCS: the longest common subsequence of two strings.
    Lcs {
        a: Bytes,
        b: Bytes,
        /// The options as given: Redis reads them after it has looked the keys up.
        options: Vec<Bytes>,
    },
    SetBit {
        key: Bytes,
        offset: u64,
        bit: bool,
    },
    GetBit {
        key: Bytes,
        offset: u64,
    },
    /// BITCOUNT and BITPOS: `range` is what follows the key (and BITPOS's bit), read after the key is
    /// looked up, in Redis's order (a missing key answers before its range is checked).
    BitCount {
        key: Bytes,
        range: Vec<Bytes>,
    },
    BitPos {
        key: Bytes,
        bit: bool,
        range: Vec<Bytes>,
    },
    BitOp {
        op: BitOp,
        dest: Bytes,
        keys: Vec<Bytes>,
    },
    /// BITFIELD and BITFIELD_RO (`readonly`: only GET is allowed, checked after parsing, as in Redis).
    BitField {
        key: Bytes,
        ops: Vec<BitFieldOp>,
        readonly: bool,
    },
    PfAdd {
        key: Bytes,
        elements: Vec<Bytes>,
    },
    PfCount {
        keys: Vec<Bytes>,
    },
    PfMerge {
        dest: Bytes,
        sources: Vec<Bytes>,
    },
    /// PFSELFTEST.
    PfSelfTest,
    /// `word` is the subcommand as given: an unknown one is reported after the key is looked up.
    PfDebug {
        sub: Option<PfDebug>,
        word: Bytes,
        key: Bytes,
    },
}

/// BITFIELD's overflow behaviour for the operations after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// One BITFIELD operation on an integer of `bits` bits at bit `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitFieldOp {
    Get { signed: bool, bits: u32, offset: u64 },
    Set { signed: bool, bits: u32, offset: u64, value: i64, overflow: Overflow },
    IncrBy { signed: bool, bits: u32, offset: u64, value: i64, overflow: Overflow },
}

impl BitFieldOp {
    /// (offset, bits)
    pub fn place(&self) -> (u64, u32) {
        match *self {
            BitFieldOp::Get { bits, offset, .. }
            | BitFieldOp::Set { bits, offset, .. }
            | BitFieldOp::IncrBy { bits, offset, .. } => (offset, bits),
        }
    }
}

/// PFDEBUG's subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfDebug {
    GetReg,
    Decode,
    Encoding,
    ToDense,
}

/// BITOP's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

impl KvCmd {
    pub fn name(&self) -> &'static str {
        match self {
            KvCmd::Get { .. } => "get",
            KvCmd::Set(_) => "set",
            KvCmd::SetNx { .. } => "setnx",
            KvCmd::GetDel { .. } => "getdel",
            KvCmd::GetEx { .. } => "getex",
            KvCmd::MGet { .. } => "mget",
            KvCmd::MSet { nx: false, .. } => "mset",
            KvCmd::MSet { nx: true, .. } => "msetnx",
            KvCmd::IncrBy { .. } => "incrby",
            KvCmd::IncrByFloat { .. } => "incrbyfloat",
            KvCmd::Append { .. } => "append",
            KvCmd::Strlen { .. } => "strlen",
            KvCmd::SetRange { .. } => "setrange",
            KvCmd::GetRange { .. } => "getrange",
            KvCmd::Lcs { .. } => "lcs",
            KvCmd::SetBit { .. } => "setbit",
            KvCmd::GetBit { .. } => "getbit",
            KvCmd::BitCount { .. } => "bitcount",
            KvCmd::BitPos { .. } => "bitpos",
            KvCmd::BitOp { .. } => "bitop",
            KvCmd::BitField { readonly: false, .. } => "bitfield",
            KvCmd::BitField { readonly: true, .. } => "bitfield_ro",
            KvCmd::PfAdd { .. } => "pfadd",
            KvCmd::PfCount { .. } => "pfcount",
            KvCmd::PfMerge { .. } => "pfmerge",
            KvCmd::PfDebug { .. } => "pfdebug",
            KvCmd::PfSelfTest => "pfselftest",
        }
    }
}

/// SORT's options, in Redis's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct SortArgs {
    pub key: Bytes,
    /// BY: a pattern with `*` (the element) and optionally `->field`; one without `*` skips sorting.
    pub by: Option<Bytes>,
    /// LIMIT offset count (negative count: to the end).
    pub limit: (i64, i64),
    /// GET patterns, in order (`#` is the element itself).
    pub get: Vec<Bytes>,
    pub desc: bool,
    pub alpha: bool,
    pub store: Option<Bytes>,
    /// SORT_RO (STORE is a syntax error there).
    pub readonly: bool,
}

/// What OBJECT reports about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectInfo {
    Encoding,
    IdleTime,
    Freq,
    RefCount,
}

/// Commands on keys of any type, and on the keyspace as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum KeysCmd {
    Del {
        keys: Vec<Bytes>,
    },
    Exists {
        keys: Vec<Bytes>,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (`name` is the one given, for its error message).
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
    Object {
        info: ObjectInfo,
        key: Bytes,
    },
    Keys {
        pattern: Bytes,
    },
    Scan(ScanArgs),
    RandomKey,
    DbSize,
    /// FLUSHALL: every database.
    FlushAll,
    /// FLUSHDB: the client's database.
    FlushDb,
    /// COPY: the value and expiry of `from` under `to` as well (in database `db` when given).
    Copy {
        from: Bytes,
        to: Bytes,
        replace: bool,
        db: Option<i64>,
    },
    /// SELECT: the client's database from now on.
    Select {
        db: i64,
    },
    /// MOVE: the key goes to database `db` (unless a key of its name is there).
    Move {
        key: Bytes,
        db: i64,
    },
    /// SWAPDB: two databases trade contents.
    SwapDb {
        a: i64,
        b: i64,
    },
    /// SORT and SORT_RO.
    Sort(SortArgs),
    Dump {
        key: Bytes,
    },
    /// RESTORE: `ttl` as given (Redis checks it after the key).
    Restore {
        key: Bytes,
        ttl: Bytes,
        payload: Bytes,
        opts: crate::kv::RestoreOpts,
    },
    /// TOUCH: how many of the keys exist (their access time is updated).
    Touch {
        keys: Vec<Bytes>,
    },
}

impl KeysCmd {
    pub fn name(&self) -> &'static str {
        match self {
            KeysCmd::Del { .. } => "del",
            KeysCmd::Exists { .. } => "exists",
            KeysCmd::Expire { name, .. } => name,
            KeysCmd::Ttl { unit: TimeUnit::Seconds, .. } => "ttl",
            KeysCmd::Ttl { unit: TimeUnit::Millis, .. } => "pttl",
            KeysCmd::ExpireTime { unit: TimeUnit::Seconds, .. } => "expiretime",
            KeysCmd::ExpireTime { unit: TimeUnit::Millis, .. } => "pexpiretime",
            KeysCmd::Persist { .. } => "persist",
            KeysCmd::Type { .. } => "type",
            KeysCmd::Rename { nx: false, .. } => "rename",
            KeysCmd::Rename { nx: true, .. } => "renamenx",
            KeysCmd::Object { info: ObjectInfo::Encoding, .. } => "object|encoding",
            KeysCmd::Object { info: ObjectInfo::IdleTime, .. } => "object|idletime",
            KeysCmd::Object { info: ObjectInfo::Freq, .. } => "object|freq",
            KeysCmd::Object { info: ObjectInfo::RefCount, .. } => "object|refcount",
            KeysCmd::Keys { .. } => "keys",
            KeysCmd::Scan(_) => "scan",
            KeysCmd::RandomKey => "randomkey",
            KeysCmd::DbSize => "dbsize",
            KeysCmd::FlushAll => "flushall",
            KeysCmd::FlushDb => "flushdb",
            KeysCmd::Select { .. } => "select",
            KeysCmd::Move { .. } => "move",
            KeysCmd::SwapDb { .. } => "swapdb",
            KeysCmd::Copy { .. } => "copy",
            KeysCmd::Touch { .. } => "touch",
            KeysCmd::Sort(a) if a.readonly => "sort_ro",
            KeysCmd::Sort(_) => "sort",
            KeysCmd::Dump { .. } => "dump",
            KeysCmd::Restore { .. } => "restore",
        }
    }
}

fn kv(c: KvCmd) -> Result<Command> {
    Ok(Command::Kv(c))
}

fn keys(c: KeysCmd) -> Result<Command> {
    Ok(Command::Keys(c))
}

/// A relative or absolute TTL in `unit_ms` milliseconds per unit, checked for overflow and positivity.
fn ttl_arg(a: &mut Args<'_>, unit_ms: i64, absolute: bool, name: &'static str) -> Result<Ttl> {
    let n = a.next_int()?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire(name));
    }
    let ms = n.checked_mul(unit_ms).ok_or(CommandError::InvalidExpire(name))?;
    Ok(if absolute { Ttl::At(ms) } else { Ttl::In(ms) })
}

/// `EX s | PX ms | EXAT s | PXAT ms` when the next word is one of them.
fn ttl_option(a: &mut Args<'_>, name: &'static str) -> Result<Option<Ttl>> {
    for (word, unit, absolute) in [("ex", 1000, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)] {
        if a.peek().is_some_and(|w| is(w, word)) && a.peek_at(1).is_some() {
            a.eat(word);
            return ttl_arg(a, unit, absolute, name).map(Some);
        }
    }
    Ok(None)
}

pub(super) fn get(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::Get { key: a.next_bytes()? })
}

pub(super) fn set(a: &mut Args<'_>) -> Result<Command> {
    let mut args = SetArgs::new(a.next_bytes()?, a.next_bytes()?);
    while !a.is_empty() {
        if args.cond == SetCond::Always && a.eat("nx") {
            args.cond = SetCond::IfAbsent;
        } else if args.cond == SetCond::Always && a.eat("xx") {
            args.cond = SetCond::IfPresent;
        } else if a.eat("get") {
            args.get = true;
        } else if args.ttl.is_none() && a.eat("keepttl") {
            args.keep_ttl = true;
        } else if args.ttl.is_none()
            && !args.keep_ttl
            && let Some(ttl) = ttl_option(a, "set")?
        {
            args.ttl = Some(ttl);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    kv(KvCmd::Set(args))
}

pub(super) fn setnx(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::SetNx { key: a.next_bytes()?, value: a.next_bytes()? })
}

fn setex(a: &mut Args<'_>, unit_ms: i64, name: &'static str) -> Result<Command> {
    let key = a.next_bytes()?;
    let ttl = ttl_arg(a, unit_ms, false, name)?;
    kv(KvCmd::Set(SetArgs { ttl: Some(ttl), ..SetArgs::new(key, a.next_bytes()?) }))
}

pub(super) fn setex_secs(a: &mut Args<'_>) -> Result<Command> {
    setex(a, 1000, "setex")
}

pub(super) fn psetex(a: &mut Args<'_>) -> Result<Command> {
    setex(a, 1, "psetex")
}

pub(super) fn getset(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::Set(SetArgs { get: true, ..SetArgs::new(a.next_bytes()?, a.next_bytes()?) }))
}

pub(super) fn getdel(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::GetDel { key: a.next_bytes()? })
}

pub(super) fn getex(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let expiry = if a.eat("persist") {
        GetExpiry::Persist
    } else {
        match ttl_option(a, "getex")? {
            Some(ttl) => GetExpiry::Set(ttl),
            None => GetExpiry::Keep,
        }
    };
    a.finish()?;
    kv(KvCmd::GetEx { key, expiry })
}

pub(super) fn mget(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::MGet { keys: a.rest() })
}

pub(super) fn mset(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::MSet { pairs: a.pairs()?, nx: false })
}

pub(super) fn msetnx(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::MSet { pairs: a.pairs()?, nx: true })
}

pub(super) fn incr(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::IncrBy { key: a.next_bytes()?, by: 1 })
}

pub(super) fn decr(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::IncrBy { key: a.next_bytes()?, by: -1 })
}

pub(super) fn incrby(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::IncrBy { key: a.next_bytes()?, by: a.next_int()? })
}

pub(super) fn decrby(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let by = a.next_int()?.checked_neg().ok_or_else(|| CommandError::Invalid("decrement would overflow".into()))?;
    kv(KvCmd::IncrBy { key, by })
}

pub(super) fn incrbyfloat(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::IncrByFloat { key: a.next_bytes()?, by: a.next_bytes()? })
}

pub(super) fn append(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::Append { key: a.next_bytes()?, value: a.next_bytes()? })
}

pub(super) fn strlen(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::Strlen { key: a.next_bytes()? })
}

pub(super) fn del(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Del { keys: a.rest() })
}

pub(super) fn exists(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Exists { keys: a.rest() })
}

fn expire(a: &mut Args<'_>, name: &'static str, absolute: bool, unit_ms: i64) -> Result<Command> {
    let key = a.next_bytes()?;
    let n = a.next_int()?;
    let ms = n.checked_mul(unit_ms).ok_or(CommandError::InvalidExpire(name))?;
    let ttl = if absolute { Ttl::At(ms) } else { Ttl::In(ms) };
    let mut cond = ExpireCond::Always;
    while let Some(opt) = a.peek() {
        let c = if is(opt, "nx") {
            ExpireCond::Nx
        } else if is(opt, "xx") {
            ExpireCond::Xx
        } else if is(opt, "gt") {
            ExpireCond::Gt
        } else if is(opt, "lt") {
            ExpireCond::Lt
        } else {
            return Err(CommandError::Invalid(format!("Unsupported option {}", String::from_utf8_lossy(opt))));
        };
        if cond != ExpireCond::Always && cond != c {
            let gt_lt = matches!((cond, c), (ExpireCond::Gt, ExpireCond::Lt) | (ExpireCond::Lt, ExpireCond::Gt));
            return Err(CommandError::Invalid(if gt_lt {
                "GT and LT options at the same time are not compatible".into()
            } else {
                "NX and XX, GT or LT options at the same time are not compatible".into()
            }));
        }
        cond = c;
        a.next_bytes()?;
    }
    keys(KeysCmd::Expire { key, ttl, cond, name })
}

pub(super) fn expire_secs(a: &mut Args<'_>) -> Result<Command> {
    expire(a, "expire", false, 1000)
}

pub(super) fn pexpire(a: &mut Args<'_>) -> Result<Command> {
    expire(a, "pexpire", false, 1)
}

pub(super) fn expireat(a: &mut Args<'_>) -> Result<Command> {
    expire(a, "expireat", true, 1000)
}

pub(super) fn pexpireat(a: &mut Args<'_>) -> Result<Command> {
    expire(a, "pexpireat", true, 1)
}

pub(super) fn ttl(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Ttl { key: a.next_bytes()?, unit: TimeUnit::Seconds })
}

pub(super) fn pttl(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Ttl { key: a.next_bytes()?, unit: TimeUnit::Millis })
}

pub(super) fn expiretime(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::ExpireTime { key: a.next_bytes()?, unit: TimeUnit::Seconds })
}

pub(super) fn pexpiretime(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::ExpireTime { key: a.next_bytes()?, unit: TimeUnit::Millis })
}

pub(super) fn persist(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Persist { key: a.next_bytes()? })
}

pub(super) fn key_type(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Type { key: a.next_bytes()? })
}

pub(super) fn rename(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Rename { from: a.next_bytes()?, to: a.next_bytes()?, nx: false })
}

pub(super) fn renamenx(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Rename { from: a.next_bytes()?, to: a.next_bytes()?, nx: true })
}

pub(super) fn object(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let info = if is(&sub, "encoding") {
        ObjectInfo::Encoding
    } else if is(&sub, "idletime") {
        ObjectInfo::IdleTime
    } else if is(&sub, "freq") {
        ObjectInfo::Freq
    } else if is(&sub, "refcount") {
        ObjectInfo::RefCount
    } else {
        return Err(unknown_subcommand(&sub, "object"));
    };
    keys(KeysCmd::Object { info, key: a.next_bytes()? })
}

pub(super) fn keys_cmd(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Keys { pattern: a.next_bytes()? })
}

pub(super) fn scan(a: &mut Args<'_>) -> Result<Command> {
    let cursor = parse_cursor(&a.next_bytes()?)?;
    let mut args = ScanArgs { cursor, count: 10, ..ScanArgs::default() };
    while !a.is_empty() {
        if a.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        if a.eat("match") {
            args.pattern = Some(a.next_bytes()?);
        } else if a.eat("count") {
            let n = a.next_int()?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            args.count = n.min(1 << 20) as usize;
        } else if a.eat("type") {
            args.type_filter = Some(String::from_utf8_lossy(&a.next_bytes()?).to_string());
        } else {
            return Err(CommandError::Syntax);
        }
    }
    keys(KeysCmd::Scan(args))
}

pub(super) fn randomkey(_: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::RandomKey)
}

pub(super) fn dbsize(_: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::DbSize)
}

pub(super) fn flushall(a: &mut Args<'_>) -> Result<Command> {
    if !a.is_empty() && !a.eat("async") && !a.eat("sync") {
        return Err(CommandError::Syntax);
    }
    a.finish()?;
    keys(KeysCmd::FlushAll)
}

pub(super) fn flushdb(a: &mut Args<'_>) -> Result<Command> {
    if !a.is_empty() && !a.eat("async") && !a.eat("sync") {
        return Err(CommandError::Syntax);
    }
    a.finish()?;
    keys(KeysCmd::FlushDb)
}

/// A database index as Redis reads one (`getIntFromObjectOrReply`: a 32-bit integer): `msg` when it is
/// not one, or Redis's own errors without `msg`; whether the database exists is the engine's check.
fn db_index(a: &mut Args<'_>, msg: Option<&str>) -> Result<i64> {
    let err = || msg.map_or(CommandError::NotInteger, |m| CommandError::Invalid(m.into()));
    let n = a.next_int_or(err)?;
    i32::try_from(n).map(i64::from).map_err(|_| match msg {
        Some(m) => CommandError::Invalid(m.into()),
        None => CommandError::Invalid("value is out of range, value must between -2147483648 and 2147483647".into()),
    })
}

pub(super) fn select(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Select { db: db_index(a, None)? })
}

pub(super) fn move_cmd(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    keys(KeysCmd::Move { key, db: db_index(a, None)? })
}

pub(super) fn swapdb(a: &mut Args<'_>) -> Result<Command> {
    let first = db_index(a, Some("invalid first DB index"))?;
    let second = db_index(a, Some("invalid second DB index"))?;
    keys(KeysCmd::SwapDb { a: first, b: second })
}

pub(super) fn setrange(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let offset = a.next_int()?;
    let offset = u64::try_from(offset).map_err(|_| CommandError::Invalid("offset is out of range".into()))?;
    kv(KvCmd::SetRange { key, offset, value: a.next_bytes()? })
}

pub(super) fn getrange(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::GetRange { key: a.next_bytes()?, start: a.next_int()?, end: a.next_int()? })
}

pub(super) fn lcs(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::Lcs { a: a.next_bytes()?, b: a.next_bytes()?, options: a.rest() })
}

/// The largest bit offset: the last bit of a 512 MB string, as in Redis.
const MAX_BIT_OFFSET: i64 = (512 << 20) * 8 - 1;

fn bit_offset(a: &mut Args<'_>) -> Result<u64> {
    let bad = || CommandError::Invalid("bit offset is not an integer or out of range".into());
    let n = a.next_int_or(bad)?;
    if !(0..=MAX_BIT_OFFSET).contains(&n) {
        return Err(bad());
    }
    Ok(n as u64)
}

pub(super) fn setbit(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let offset = bit_offset(a)?;
    let bad = || CommandError::Invalid("bit is not an integer or out of range".into());
    let bit = match a.next_int_or(bad)? {
        0 => false,
        1 => true,
        _ => return Err(bad()),
    };
    kv(KvCmd::SetBit { key, offset, bit })
}

pub(super) fn getbit(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::GetBit { key: a.next_bytes()?, offset: bit_offset(a)? })
}

pub(super) fn bitcount(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::BitCount { key: a.next_bytes()?, range: a.rest() })
}

pub(super) fn bitpos(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let bit = match a.next_int()? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::Invalid("The bit argument must be 1 or 0.".into())),
    };
    kv(KvCmd::BitPos { key, bit, range: a.rest() })
}

pub(super) fn bitop(a: &mut Args<'_>) -> Result<Command> {
    let word = a.next_bytes()?;
    let op = if is(&word, "and") {
        BitOp::And
    } else if is(&word, "or") {
        BitOp::Or
    } else if is(&word, "xor") {
        BitOp::Xor
    } else if is(&word, "not") {
        BitOp::Not
    } else {
        return Err(CommandError::Syntax);
    };
    let dest = a.next_bytes()?;
    let keys = a.rest();
    if op == BitOp::Not && keys.len() != 1 {
        return Err(CommandError::Invalid("BITOP NOT must be called with a single source key.".into()));
    }
    kv(KvCmd::BitOp { op, dest, keys })
}

pub(super) fn bitfield(a: &mut Args<'_>) -> Result<Command> {
    bitfield_args(a, false)
}

pub(super) fn bitfield_ro(a: &mut Args<'_>) -> Result<Command> {
    bitfield_args(a, true)
}

/// `i1`..`i64`, `u1`..`u63`: (signed, bits).
fn bitfield_type(arg: &[u8]) -> Result<(bool, u32)> {
    let bad = || {
        CommandError::Invalid(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.".into(),
        )
    };
    let arg = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
    let signed = match arg.first() {
        Some(b'i' | b'I') => true,
        Some(b'u' | b'U') => false,
        _ => return Err(bad()),
    };
    let bits = parse_i64(&arg[1..]).ok_or_else(bad)?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(bad());
    }
    Ok((signed, bits as u32))
}

fn bitfield_args(a: &mut Args<'_>, readonly: bool) -> Result<Command> {
    let key = a.next_bytes()?;
    let mut overflow = Overflow::Wrap;
    let mut ops = Vec::new();
    while let Some(word) = a.peek() {
        let left = a.remaining() - 1;
        let get = is(word, "get") && left >= 2;
        let set = is(word, "set") && left >= 3;
        let incr = is(word, "incrby") && left >= 3;
        if is(word, "overflow") && left >= 1 {
            a.next_bytes()?;
            let t = a.next_bytes()?;
            overflow = if is(&t, "wrap") {
                Overflow::Wrap
            } else if is(&t, "sat") {
                Overflow::Sat
            } else if is(&t, "fail") {
                Overflow::Fail
            } else {
                return Err(CommandError::Invalid("Invalid OVERFLOW type specified".into()));
            };
            continue;
        }
        if !(get || set || incr) {
            return Err(CommandError::Syntax);
        }
        a.next_bytes()?;
        let (signed, bits) = bitfield_type(&a.next_bytes()?)?;
        let offset = crate::kv::bitfield_offset(&a.next_bytes()?, bits)
            .ok_or_else(|| CommandError::Invalid("bit offset is not an integer or out of range".into()))?;
        ops.push(if get {
            BitFieldOp::Get { signed, bits, offset }
        } else if set {
            BitFieldOp::Set { signed, bits, offset, value: a.next_int()?, overflow }
        } else {
            BitFieldOp::IncrBy { signed, bits, offset, value: a.next_int()?, overflow }
        });
    }
    kv(KvCmd::BitField { key, ops, readonly })
}

pub(super) fn pfadd(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::PfAdd { key: a.next_bytes()?, elements: a.rest() })
}

pub(super) fn pfcount(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::PfCount { keys: a.rest() })
}

pub(super) fn pfmerge(a: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::PfMerge { dest: a.next_bytes()?, sources: a.rest() })
}

pub(super) fn pfselftest(_: &mut Args<'_>) -> Result<Command> {
    kv(KvCmd::PfSelfTest)
}

pub(super) fn pfdebug(a: &mut Args<'_>) -> Result<Command> {
    let word = a.next_bytes()?;
    let sub = if is(&word, "getreg") {
        Some(PfDebug::GetReg)
    } else if is(&word, "decode") {
        Some(PfDebug::Decode)
    } else if is(&word, "encoding") {
        Some(PfDebug::Encoding)
    } else if is(&word, "todense") {
        Some(PfDebug::ToDense)
    } else {
        None
    };
    kv(KvCmd::PfDebug { sub, word, key: a.next_bytes()? })
}

pub(super) fn copy(a: &mut Args<'_>) -> Result<Command> {
    let (from, to) = (a.next_bytes()?, a.next_bytes()?);
    let mut replace = false;
    let mut db = None;
    while !a.is_empty() {
        if a.eat("replace") {
            replace = true;
        } else if a.remaining() >= 2 && a.eat("db") {
            db = Some(db_index(a, None)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    keys(KeysCmd::Copy { from, to, replace, db })
}

pub(super) fn dump(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Dump { key: a.next_bytes()? })
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ n] (IDLETIME and FREQ are checked
/// and accepted; the access stamp starts fresh).
pub(super) fn restore(a: &mut Args<'_>) -> Result<Command> {
    let (key, ttl, payload) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    let mut opts = crate::kv::RestoreOpts::default();
    let (mut idle, mut freq) = (false, false);
    while !a.is_empty() {
        if a.eat("replace") {
            opts.replace = true;
        } else if a.eat("absttl") {
            opts.absttl = true;
        } else if a.peek().is_some_and(|w| is(w, "idletime")) && a.remaining() >= 2 && !freq {
            a.next_bytes()?;
            if a.next_int()? < 0 {
                return Err(CommandError::Invalid("Invalid IDLETIME value, must be >= 0".into()));
            }
            idle = true;
        } else if a.peek().is_some_and(|w| is(w, "freq")) && a.remaining() >= 2 && !idle {
            a.next_bytes()?;
            if !(0..=255).contains(&a.next_int()?) {
                return Err(CommandError::Invalid("Invalid FREQ value, must be >= 0 and <= 255".into()));
            }
            freq = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    keys(KeysCmd::Restore { key, ttl, payload, opts })
}

pub(super) fn sort(a: &mut Args<'_>) -> Result<Command> {
    sort_args(a, false)
}

pub(super) fn sort_ro(a: &mut Args<'_>) -> Result<Command> {
    sort_args(a, true)
}

/// SORT's options in any order, as Redis reads them (the last ASC/DESC wins; LIMIT, STORE, BY and GET
/// need their arguments, or the word is a syntax error).
fn sort_args(a: &mut Args<'_>, readonly: bool) -> Result<Command> {
    let key = a.next_bytes()?;
    let mut s =
        SortArgs { key, by: None, limit: (0, -1), get: Vec::new(), desc: false, alpha: false, store: None, readonly };
    while let Some(word) = a.peek() {
        let left = a.remaining() - 1;
        if is(word, "asc") {
            s.desc = false;
        } else if is(word, "desc") {
            s.desc = true;
        } else if is(word, "alpha") {
            s.alpha = true;
        } else if is(word, "limit") && left >= 2 {
            a.next_bytes()?;
            s.limit = (a.next_int()?, a.next_int()?);
            continue;
        } else if !readonly && is(word, "store") && left >= 1 {
            a.next_bytes()?;
            s.store = Some(a.next_bytes()?);
            continue;
        } else if is(word, "by") && left >= 1 {
            a.next_bytes()?;
            s.by = Some(a.next_bytes()?);
            continue;
        } else if is(word, "get") && left >= 1 {
            a.next_bytes()?;
            s.get.push(a.next_bytes()?);
            continue;
        } else {
            return Err(CommandError::Syntax);
        }
        a.next_bytes()?;
    }
    keys(KeysCmd::Sort(s))
}

pub(super) fn touch(a: &mut Args<'_>) -> Result<Command> {
    keys(KeysCmd::Touch { keys: a.rest() })
}
