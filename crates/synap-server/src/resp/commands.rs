//! The RESP command table: name, arity, flags and a parser per command (as Redis describes commands as
//! data). Parsing turns arguments into an [`Action`]: an engine [`Command`] or a connection/server
//! operation. Arity is checked in one place, before any parser runs; each parser rejects leftover or
//! unknown arguments with `syntax error`.

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use synap_core::kv::types::CollCmd;
use synap_core::pubsub::Kind;
use synap_core::queue::{ConsumeArgs, PublishArgs, QueueOptions, parse_id};
use synap_core::{Command, CommandError, ExpireCond, ScanArgs, SetArgs, SetCond, TimeUnit, Ttl};

pub type Args<'a> = &'a [Bytes];

/// What a command asks for.
#[derive(Debug)]
pub enum Action {
    Engine(Command, Shape),
    Ping(Option<Bytes>),
    Echo(Bytes),
    Hello {
        proto: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    Auth,
    Select(i64),
    Quit,
    Info(Vec<String>),
    ConfigGet(Vec<Bytes>),
    ConfigSet,
    ConfigResetStat,
    Client(ClientOp),
    CommandCount,
    CommandDocs(Vec<Bytes>),
    CommandInfo(Vec<Bytes>),
    CommandList,
    Time,
    /// QCONSUME ... BLOCK ms: wait for messages before answering.
    QueueConsumeBlock(ConsumeArgs, u64),
    /// XREAD / XREADGROUP ... BLOCK ms: the read, the streams it waits on, the timeout (0 = forever).
    StreamBlock(Command, Vec<Bytes>, u64),
    /// BLPOP, BZPOPMIN, ...: the command, its arguments without the timeout, the timeout in ms (0 = forever).
    CollBlock(CollCmd, Vec<Bytes>, u64),
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
    /// SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE: kind, subscribe?, names.
    Subscription(synap_core::pubsub::Kind, bool, Vec<Bytes>),
    Reset,
}

#[derive(Debug)]
pub enum ClientOp {
    SetName(Bytes),
    GetName,
    Id,
    List,
    Info,
    SetInfo,
    NoEvict,
}

/// How an engine reply is reshaped for the RESP command that asked (SETNX answers 1/0, not OK/nil).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    AsIs,
    /// `OK` -> 1, nil -> 0.
    OkAsOne,
}

pub struct Spec {
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments including the name, -N means at least N.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    pub parse: fn(Args<'_>) -> Result<Action, CommandError>,
}

impl Spec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 { argc == a as usize } else { argc >= (-a) as usize }
    }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const ADMIN: &[&str] = &["loading", "stale", "fast"];
const WB: &[&str] = &["write", "blocking"];
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $summary:literal, $parse:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $keys.0,
            last_key: $keys.1,
            step: $keys.2,
            group: $group,
            summary: $summary,
            parse: $parse,
        }
    };
}

use super::streams as xs;

pub static COMMANDS: &[Spec] = &[
    spec!("multi", 1, TX, (0, 0, 0), "transactions", "Starts a transaction.", |_| Ok(Action::Multi)),
    spec!(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        (0, 0, 0),
        "transactions",
        "Executes all commands in a transaction.",
        |_| Ok(Action::Exec)
    ),
    spec!("discard", 1, TX, (0, 0, 0), "transactions", "Discards a transaction.", |_| Ok(Action::Discard)),
    spec!(
        "watch",
        -2,
        TX,
        (1, -1, 1),
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
        |a| Ok(Action::Watch(a[1..].to_vec()))
    ),
    spec!("unwatch", 1, TX, (0, 0, 0), "transactions", "Forgets about watched keys of a transaction.", |_| Ok(
        Action::Unwatch
    )),
    spec!("hset", -4, WF, (1, 1, 1), "hash", "Sets the values of one or more fields in a hash.", parse_coll),
    spec!("hmset", -4, WF, (1, 1, 1), "hash", "Sets the values of multiple fields.", parse_coll),
    spec!(
        "hsetnx",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Sets the value of a field in a hash only when the field doesn't exist.",
        parse_coll
    ),
    spec!("hget", 3, RF, (1, 1, 1), "hash", "Returns the value of a field in a hash.", parse_coll),
    spec!("hmget", -3, RF, (1, 1, 1), "hash", "Returns the values of all fields in a hash.", parse_coll),
    spec!("hgetall", 2, R, (1, 1, 1), "hash", "Returns all fields and values in a hash.", parse_coll),
    spec!("hdel", -3, WD, (1, 1, 1), "hash", "Deletes one or more fields and their values from a hash.", parse_coll),
    spec!("hexists", 3, RF, (1, 1, 1), "hash", "Determines whether a field exists in a hash.", parse_coll),
    spec!("hlen", 2, RF, (1, 1, 1), "hash", "Returns the number of fields in a hash.", parse_coll),
    spec!("hkeys", 2, R, (1, 1, 1), "hash", "Returns all fields in a hash.", parse_coll),
    spec!("hvals", 2, R, (1, 1, 1), "hash", "Returns all values in a hash.", parse_coll),
    spec!(
        "hincrby",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Increments the integer value of a field in a hash by a number.",
        parse_coll
    ),
    spec!(
        "hincrbyfloat",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Increments the floating point value of a field by a number.",
        parse_coll
    ),
    spec!("hstrlen", 3, RF, (1, 1, 1), "hash", "Returns the length of the value of a field.", parse_coll),
    spec!("hrandfield", -2, R, (1, 1, 1), "hash", "Returns one or more random fields from a hash.", parse_coll),
    spec!("hscan", -3, R, (1, 1, 1), "hash", "Iterates over fields and values of a hash.", parse_coll),
    spec!("lpush", -3, WF, (1, 1, 1), "list", "Prepends one or more elements to a list.", parse_coll),
    spec!("rpush", -3, WF, (1, 1, 1), "list", "Appends one or more elements to a list.", parse_coll),
    spec!(
        "lpushx",
        -3,
        WF,
        (1, 1, 1),
        "list",
        "Prepends one or more elements to a list only when the list exists.",
        parse_coll
    ),
    spec!("rpushx", -3, WF, (1, 1, 1), "list", "Appends an element to a list only when the list exists.", parse_coll),
    spec!("lpop", -2, WD, (1, 1, 1), "list", "Returns the first elements in a list after removing it.", parse_coll),
    spec!("rpop", -2, WD, (1, 1, 1), "list", "Returns and removes the last elements of a list.", parse_coll),
    spec!("llen", 2, RF, (1, 1, 1), "list", "Returns the length of a list.", parse_coll),
    spec!("lrange", 4, R, (1, 1, 1), "list", "Returns a range of elements from a list.", parse_coll),
    spec!("lindex", 3, R, (1, 1, 1), "list", "Returns an element from a list by its index.", parse_coll),
    spec!("lset", 4, W, (1, 1, 1), "list", "Sets the value of an element in a list by its index.", parse_coll),
    spec!(
        "linsert",
        5,
        W,
        (1, 1, 1),
        "list",
        "Inserts an element before or after another element in a list.",
        parse_coll
    ),
    spec!("lrem", 4, W, (1, 1, 1), "list", "Removes elements from a list.", parse_coll),
    spec!("ltrim", 4, W, (1, 1, 1), "list", "Removes elements from both ends a list.", parse_coll),
    spec!("lpos", -3, R, (1, 1, 1), "list", "Returns the index of matching elements in a list.", parse_coll),
    spec!(
        "lmove",
        5,
        W,
        (1, 2, 1),
        "list",
        "Returns an element after popping it from one list and pushing it to another.",
        parse_coll
    ),
    spec!(
        "rpoplpush",
        3,
        W,
        (1, 2, 1),
        "list",
        "Returns the last element of a list after removing and pushing it to another list.",
        parse_coll
    ),
    spec!(
        "blpop",
        -3,
        WB,
        (1, -2, 1),
        "list",
        "Removes and returns the first element in a list. Blocks until an element is available otherwise.",
        parse_coll
    ),
    spec!(
        "brpop",
        -3,
        WB,
        (1, -2, 1),
        "list",
        "Removes and returns the last element in a list. Blocks until an element is available otherwise.",
        parse_coll
    ),
    spec!(
        "blmove",
        6,
        WB,
        (1, 2, 1),
        "list",
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.",
        parse_coll
    ),
    spec!(
        "brpoplpush",
        4,
        WB,
        (1, 2, 1),
        "list",
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.",
        parse_coll
    ),
    spec!("sadd", -3, WF, (1, 1, 1), "set", "Adds one or more members to a set.", parse_coll),
    spec!("srem", -3, WD, (1, 1, 1), "set", "Removes one or more members from a set.", parse_coll),
    spec!("sismember", 3, RF, (1, 1, 1), "set", "Determines whether a member belongs to a set.", parse_coll),
    spec!("smismember", -3, RF, (1, 1, 1), "set", "Determines whether multiple members belong to a set.", parse_coll),
    spec!("smembers", 2, R, (1, 1, 1), "set", "Returns all members of a set.", parse_coll),
    spec!("scard", 2, RF, (1, 1, 1), "set", "Returns the number of members in a set.", parse_coll),
    spec!(
        "spop",
        -2,
        WD,
        (1, 1, 1),
        "set",
        "Returns one or more random members from a set after removing them.",
        parse_coll
    ),
    spec!("srandmember", -2, R, (1, 1, 1), "set", "Get one or multiple random members from a set.", parse_coll),
    spec!("smove", 4, WF, (1, 2, 1), "set", "Moves a member from one set to another.", parse_coll),
    spec!("sinter", -2, R, (1, -1, 1), "set", "Returns the intersect of multiple sets.", parse_coll),
    spec!("sunion", -2, R, (1, -1, 1), "set", "Returns the union of multiple sets.", parse_coll),
    spec!("sdiff", -2, R, (1, -1, 1), "set", "Returns the difference of multiple sets.", parse_coll),
    spec!("sinterstore", -3, W, (1, -1, 1), "set", "Stores the intersect of multiple sets in a key.", parse_coll),
    spec!("sunionstore", -3, W, (1, -1, 1), "set", "Stores the union of multiple sets in a key.", parse_coll),
    spec!("sdiffstore", -3, W, (1, -1, 1), "set", "Stores the difference of multiple sets in a key.", parse_coll),
    spec!(
        "sintercard",
        -3,
        R,
        (0, 0, 0),
        "set",
        "Returns the number of members of the intersect of multiple sets.",
        parse_coll
    ),
    spec!("sscan", -3, R, (1, 1, 1), "set", "Iterates over members of a set.", parse_coll),
    spec!(
        "zadd",
        -4,
        WF,
        (1, 1, 1),
        "sorted-set",
        "Adds one or more members to a sorted set, or updates their scores.",
        parse_coll
    ),
    spec!("zrem", -3, WD, (1, 1, 1), "sorted-set", "Removes one or more members from a sorted set.", parse_coll),
    spec!("zscore", 3, RF, (1, 1, 1), "sorted-set", "Returns the score of a member in a sorted set.", parse_coll),
    spec!(
        "zmscore",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the score of one or more members in a sorted set.",
        parse_coll
    ),
    spec!("zincrby", 4, WF, (1, 1, 1), "sorted-set", "Increments the score of a member in a sorted set.", parse_coll),
    spec!("zcard", 2, RF, (1, 1, 1), "sorted-set", "Returns the number of members in a sorted set.", parse_coll),
    spec!(
        "zcount",
        4,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the count of members in a sorted set that have scores within a range.",
        parse_coll
    ),
    spec!(
        "zrange",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of indexes.",
        parse_coll
    ),
    spec!(
        "zrevrange",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of indexes in reverse order.",
        parse_coll
    ),
    spec!(
        "zrangebyscore",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of scores.",
        parse_coll
    ),
    spec!(
        "zrevrangebyscore",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of scores in reverse order.",
        parse_coll
    ),
    spec!(
        "zrangebylex",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a lexicographical range.",
        parse_coll
    ),
    spec!(
        "zrangestore",
        -5,
        W,
        (1, 2, 1),
        "sorted-set",
        "Stores a range of members from sorted set in a key.",
        parse_coll
    ),
    spec!(
        "zrank",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the index of a member in a sorted set ordered by ascending scores.",
        parse_coll
    ),
    spec!(
        "zrevrank",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the index of a member in a sorted set ordered by descending scores.",
        parse_coll
    ),
    spec!(
        "zpopmin",
        -2,
        WF,
        (1, 1, 1),
        "sorted-set",
        "Returns the lowest-scoring members from a sorted set after removing them.",
        parse_coll
    ),
    spec!(
        "zpopmax",
        -2,
        WF,
        (1, 1, 1),
        "sorted-set",
        "Returns the highest-scoring members from a sorted set after removing them.",
        parse_coll
    ),
    spec!(
        "bzpopmin",
        -3,
        WB,
        (1, -2, 1),
        "sorted-set",
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.",
        parse_coll
    ),
    spec!(
        "bzpopmax",
        -3,
        WB,
        (1, -2, 1),
        "sorted-set",
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.",
        parse_coll
    ),
    spec!(
        "zremrangebyscore",
        4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Removes members in a sorted set within a range of scores.",
        parse_coll
    ),
    spec!(
        "zremrangebyrank",
        4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Removes members in a sorted set within a range of indexes.",
        parse_coll
    ),
    spec!(
        "zunionstore",
        -4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Stores the union of multiple sorted sets in a key.",
        parse_coll
    ),
    spec!(
        "zinterstore",
        -4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Stores the intersect of multiple sorted sets in a key.",
        parse_coll
    ),
    spec!("zscan", -3, R, (1, 1, 1), "sorted-set", "Iterates over members and scores of a sorted set.", parse_coll),
    spec!(
        "xadd",
        -5,
        WF,
        (1, 1, 1),
        "stream",
        "Appends a new message to a stream. Creates the key if it doesn't exist.",
        xs::parse_xadd
    ),
    spec!("xlen", 2, RF, (1, 1, 1), "stream", "Return the number of messages in a stream.", |a| eng(Command::Stream(
        synap_core::stream::StreamCmd::XLen { key: a[1].clone() }
    ))),
    spec!("xrange", -4, R, (1, 1, 1), "stream", "Returns the messages from a stream within a range of IDs.", |a| {
        xs::parse_xrange(a, false)
    }),
    spec!(
        "xrevrange",
        -4,
        R,
        (1, 1, 1),
        "stream",
        "Returns the messages from a stream within a range of IDs in reverse order.",
        |a| xs::parse_xrange(a, true)
    ),
    spec!(
        "xread",
        -4,
        &["readonly", "blocking"],
        (0, 0, 0),
        "stream",
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        xs::parse_xread
    ),
    spec!(
        "xreadgroup",
        -7,
        &["write", "blocking"],
        (0, 0, 0),
        "stream",
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        xs::parse_xreadgroup
    ),
    spec!("xtrim", -4, W, (1, 1, 1), "stream", "Deletes messages from the beginning of a stream.", xs::parse_xtrim),
    spec!(
        "xdel",
        -3,
        WD,
        (1, 1, 1),
        "stream",
        "Returns the number of messages after removing them from a stream.",
        xs::parse_xdel
    ),
    spec!("xgroup", -2, W, (2, 2, 1), "stream", "A container for consumer groups commands.", xs::parse_xgroup),
    spec!(
        "xack",
        -4,
        WD,
        (1, 1, 1),
        "stream",
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        xs::parse_xack
    ),
    spec!(
        "xpending",
        -3,
        R,
        (1, 1, 1),
        "stream",
        "Returns the information and entries from a stream consumer group's pending entries list.",
        xs::parse_xpending
    ),
    spec!(
        "xclaim",
        -6,
        WD,
        (1, 1, 1),
        "stream",
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        xs::parse_xclaim
    ),
    spec!(
        "xautoclaim",
        -6,
        WD,
        (1, 1, 1),
        "stream",
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        xs::parse_xautoclaim
    ),
    spec!("xinfo", -2, R, (2, 2, 1), "stream", "A container for stream introspection commands.", xs::parse_xinfo),
    spec!("get", 2, RF, (1, 1, 1), "string", "Returns the string value of a key.", |a| eng(Command::Get {
        key: a[1].clone()
    })),
    spec!("set", -3, W, (1, 1, 1), "string", "Sets the string value of a key, ignoring its type.", parse_set),
    spec!("setnx", 3, WF, (1, 1, 1), "string", "Set the string value of a key only when the key doesn't exist.", |a| {
        let args = SetArgs { cond: SetCond::IfAbsent, ..SetArgs::new(a[1].clone(), a[2].clone()) };
        Ok(Action::Engine(Command::Set(args), Shape::OkAsOne))
    }),
    spec!("setex", 4, W, (1, 1, 1), "string", "Sets the string value and expiration time of a key.", |a| parse_setex(
        a, 1000, "setex"
    )),
    spec!(
        "psetex",
        4,
        W,
        (1, 1, 1),
        "string",
        "Sets the string value and expiration time in milliseconds of a key.",
        |a| parse_setex(a, 1, "psetex")
    ),
    spec!(
        "getset",
        3,
        WF,
        (1, 1, 1),
        "string",
        "Returns the previous string value of a key after setting it to a new value.",
        |a| { eng(Command::Set(SetArgs { get: true, ..SetArgs::new(a[1].clone(), a[2].clone()) })) }
    ),
    spec!("getdel", 2, WD, (1, 1, 1), "string", "Returns the string value of a key after deleting the key.", |a| eng(
        Command::GetDel { key: a[1].clone() }
    )),
    spec!("del", -2, &["write"], (1, -1, 1), "generic", "Deletes one or more keys.", |a| eng(Command::Del {
        keys: a[1..].to_vec()
    })),
    spec!("unlink", -2, WD, (1, -1, 1), "generic", "Asynchronously deletes one or more keys.", |a| eng(Command::Del {
        keys: a[1..].to_vec()
    })),
    spec!("exists", -2, RF, (1, -1, 1), "generic", "Determines whether one or more keys exist.", |a| eng(
        Command::Exists { keys: a[1..].to_vec() }
    )),
    spec!("mget", -2, RF, (1, -1, 1), "string", "Atomically returns the string values of one or more keys.", |a| eng(
        Command::MGet { keys: a[1..].to_vec() }
    )),
    spec!(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "Atomically creates or modifies the string values of one or more keys.",
        |a| parse_mset(a, false)
    ),
    spec!(
        "msetnx",
        -3,
        W,
        (1, -1, 2),
        "string",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        |a| parse_mset(a, true)
    ),
    spec!("incr", 2, WF, (1, 1, 1), "string", "Increments the integer value of a key by one.", |a| eng(
        Command::IncrBy { key: a[1].clone(), by: 1 }
    )),
    spec!("decr", 2, WF, (1, 1, 1), "string", "Decrements the integer value of a key by one.", |a| eng(
        Command::IncrBy { key: a[1].clone(), by: -1 }
    )),
    spec!("incrby", 3, WF, (1, 1, 1), "string", "Increments the integer value of a key by a number.", |a| eng(
        Command::IncrBy { key: a[1].clone(), by: int(&a[2])? }
    )),
    spec!("decrby", 3, WF, (1, 1, 1), "string", "Decrements a number from the integer value of a key.", |a| {
        let by = int(&a[2])?.checked_neg().ok_or(CommandError::Overflow)?;
        eng(Command::IncrBy { key: a[1].clone(), by })
    }),
    spec!("incrbyfloat", 3, WF, (1, 1, 1), "string", "Increment the floating point value of a key by a number.", |a| {
        let by = synap_core::kv::parse_f64(&a[2]).ok_or(CommandError::NotFloat)?;
        eng(Command::IncrByFloat { key: a[1].clone(), by })
    }),
    spec!("append", 3, WF, (1, 1, 1), "string", "Appends a string to the value of a key.", |a| eng(Command::Append {
        key: a[1].clone(),
        value: a[2].clone()
    })),
    spec!("strlen", 2, RF, (1, 1, 1), "string", "Returns the length of a string value.", |a| eng(Command::Strlen {
        key: a[1].clone()
    })),
    spec!("expire", -3, WD, (1, 1, 1), "generic", "Sets the expiration time of a key in seconds.", |a| parse_expire(
        a, "expire", false, 1000
    )),
    spec!("pexpire", -3, WD, (1, 1, 1), "generic", "Sets the expiration time of a key in milliseconds.", |a| {
        parse_expire(a, "pexpire", false, 1)
    }),
    spec!("expireat", -3, WD, (1, 1, 1), "generic", "Sets the expiration time of a key to a Unix timestamp.", |a| {
        parse_expire(a, "expireat", true, 1000)
    }),
    spec!(
        "pexpireat",
        -3,
        WD,
        (1, 1, 1),
        "generic",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        |a| parse_expire(a, "pexpireat", true, 1)
    ),
    spec!("ttl", 2, RF, (1, 1, 1), "generic", "Returns the expiration time in seconds of a key.", |a| eng(
        Command::Ttl { key: a[1].clone(), unit: TimeUnit::Seconds }
    )),
    spec!("pttl", 2, RF, (1, 1, 1), "generic", "Returns the expiration time in milliseconds of a key.", |a| eng(
        Command::Ttl { key: a[1].clone(), unit: TimeUnit::Millis }
    )),
    spec!(
        "expiretime",
        2,
        RF,
        (1, 1, 1),
        "generic",
        "Returns the expiration time of a key as a Unix timestamp.",
        |a| eng(Command::ExpireTime { key: a[1].clone(), unit: TimeUnit::Seconds })
    ),
    spec!(
        "pexpiretime",
        2,
        RF,
        (1, 1, 1),
        "generic",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        |a| eng(Command::ExpireTime { key: a[1].clone(), unit: TimeUnit::Millis })
    ),
    spec!("persist", 2, WD, (1, 1, 1), "generic", "Removes the expiration time of a key.", |a| eng(Command::Persist {
        key: a[1].clone()
    })),
    spec!("type", 2, RF, (1, 1, 1), "generic", "Determines the type of value stored at a key.", |a| eng(
        Command::Type { key: a[1].clone() }
    )),
    spec!("rename", 3, &["write"], (1, 2, 1), "generic", "Renames a key and overwrites the destination.", |a| eng(
        Command::Rename { from: a[1].clone(), to: a[2].clone(), nx: false }
    )),
    spec!("renamenx", 3, WD, (1, 2, 1), "generic", "Renames a key only when the target key name doesn't exist.", |a| {
        eng(Command::Rename { from: a[1].clone(), to: a[2].clone(), nx: true })
    }),
    spec!("keys", 2, R, (0, 0, 0), "generic", "Returns all key names that match a pattern.", |a| eng(Command::Keys {
        pattern: a[1].clone()
    })),
    spec!("scan", -2, R, (0, 0, 0), "generic", "Iterates over the key names in the database.", parse_scan),
    spec!("randomkey", 1, R, (0, 0, 0), "generic", "Returns a random key name from the database.", |_| eng(
        Command::RandomKey
    )),
    spec!("dbsize", 1, RF, (0, 0, 0), "server", "Returns the number of keys in the database.", |_| eng(
        Command::DbSize
    )),
    spec!("flushall", -1, &["write"], (0, 0, 0), "server", "Removes all keys from all databases.", parse_flush),
    spec!("flushdb", -1, &["write"], (0, 0, 0), "server", "Remove all keys from the current database.", parse_flush),
    spec!("ping", -1, ADMIN, (0, 0, 0), "connection", "Returns the server's liveliness response.", |a| match a.len() {
        1 => Ok(Action::Ping(None)),
        2 => Ok(Action::Ping(Some(a[1].clone()))),
        _ => Err(arity_error("ping")),
    }),
    spec!("echo", 2, ADMIN, (0, 0, 0), "connection", "Returns the given string.", |a| Ok(Action::Echo(a[1].clone()))),
    spec!("hello", -1, ADMIN, (0, 0, 0), "connection", "Handshakes with the Redis server.", parse_hello),
    spec!("auth", -2, ADMIN, (0, 0, 0), "connection", "Authenticates the connection.", |_| Ok(Action::Auth)),
    spec!("select", 2, ADMIN, (0, 0, 0), "connection", "Changes the selected database.", |a| Ok(Action::Select(int(
        &a[1]
    )?))),
    spec!("quit", -1, ADMIN, (0, 0, 0), "connection", "Closes the connection.", |_| Ok(Action::Quit)),
    spec!(
        "info",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        "server",
        "Returns information and statistics about the server.",
        |a| { Ok(Action::Info(a[1..].iter().map(|s| String::from_utf8_lossy(s).to_lowercase()).collect())) }
    ),
    spec!(
        "config",
        -2,
        &["admin", "loading", "stale"],
        (0, 0, 0),
        "server",
        "A container for server configuration commands.",
        parse_config
    ),
    spec!(
        "client",
        -2,
        &["loading", "stale"],
        (0, 0, 0),
        "connection",
        "A container for client connection commands.",
        parse_client
    ),
    spec!(
        "command",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        "server",
        "Returns detailed information about all commands.",
        parse_command
    ),
    spec!("time", 1, &["loading", "stale", "fast"], (0, 0, 0), "server", "Returns the server time.", |_| Ok(
        Action::Time
    )),
    spec!(
        "qcreate",
        -2,
        WD,
        (1, 1, 1),
        "queue",
        "Creates a queue: QCREATE name [MAXDEPTH n] [ACKDEADLINE ms] [MAXRETRIES n] [DLQ name] [MAXBYTES n] [PREFETCH n].",
        parse_qcreate
    ),
    spec!("qdelete", 2, WD, (1, 1, 1), "queue", "Deletes a queue and its messages.", |a| eng(Command::QueueDelete {
        name: a[1].clone()
    })),
    spec!("qlist", 1, RF, (0, 0, 0), "queue", "Lists the queues.", |_| eng(Command::QueueList)),
    spec!(
        "qpublish",
        -3,
        WF,
        (1, 1, 1),
        "queue",
        "Publishes a message: QPUBLISH queue payload [PRIORITY p] [DELAY ms] [TTL ms] [HEADERS k v ...].",
        parse_qpublish
    ),
    spec!(
        "qconsume",
        -3,
        WF,
        (1, 1, 1),
        "queue",
        "Takes messages: QCONSUME queue consumer [COUNT n] [BLOCK ms].",
        parse_qconsume
    ),
    spec!("qack", -3, WF, (1, 1, 1), "queue", "Acknowledges messages: QACK queue id [id ...].", |a| {
        let ids = a[2..].iter().map(|id| parse_id(id).ok_or_else(bad_id)).collect::<Result<_, _>>()?;
        eng(Command::QueueAck { queue: a[1].clone(), ids })
    }),
    spec!("qnack", -3, WF, (1, 1, 1), "queue", "Rejects a message: QNACK queue id [REQUEUE].", |a| {
        let id = parse_id(&a[2]).ok_or_else(bad_id)?;
        let requeue = match a.get(3) {
            None => false,
            Some(w) if is(w, "requeue") && a.len() == 4 => true,
            Some(_) => return Err(CommandError::Syntax),
        };
        eng(Command::QueueNack { queue: a[1].clone(), id, requeue })
    }),
    spec!("qstats", 2, RF, (1, 1, 1), "queue", "Returns a queue's statistics.", |a| eng(Command::QueueStats {
        queue: a[1].clone()
    })),
    spec!("qpurge", 2, WD, (1, 1, 1), "queue", "Removes every message of a queue.", |a| eng(Command::QueuePurge {
        queue: a[1].clone()
    })),
    spec!("qdlq", -2, RF, (1, 1, 1), "queue", "Lists a queue's dead letters: QDLQ queue [COUNT n].", |a| {
        eng(Command::QueueDlqList { queue: a[1].clone(), max: count_opt(a, 2, 100)? })
    }),
    spec!(
        "qredrive",
        -2,
        WD,
        (1, 1, 1),
        "queue",
        "Moves dead letters back to their queue: QREDRIVE queue [COUNT n].",
        |a| { eng(Command::QueueRedrive { queue: a[1].clone(), max: count_opt(a, 2, 1000)? }) }
    ),
    spec!(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        (0, 0, 0),
        "pubsub",
        "Posts a message to a channel.",
        |a| { eng(Command::Publish { channel: a[1].clone(), payload: a[2].clone() }) }
    ),
    spec!(
        "subscribe",
        -2,
        &["pubsub", "loading", "stale"],
        (0, 0, 0),
        "pubsub",
        "Listens for messages published to channels.",
        |a| { Ok(Action::Subscription(Kind::Channel, true, a[1..].to_vec())) }
    ),
    spec!(
        "unsubscribe",
        -1,
        &["pubsub", "loading", "stale"],
        (0, 0, 0),
        "pubsub",
        "Stops listening to messages posted to channels.",
        |a| { Ok(Action::Subscription(Kind::Channel, false, a[1..].to_vec())) }
    ),
    spec!(
        "psubscribe",
        -2,
        &["pubsub", "loading", "stale"],
        (0, 0, 0),
        "pubsub",
        "Listens for messages published to channels that match patterns.",
        |a| { Ok(Action::Subscription(Kind::Glob, true, a[1..].to_vec())) }
    ),
    spec!(
        "punsubscribe",
        -1,
        &["pubsub", "loading", "stale"],
        (0, 0, 0),
        "pubsub",
        "Stops listening to messages published to channels that match patterns.",
        |a| { Ok(Action::Subscription(Kind::Glob, false, a[1..].to_vec())) }
    ),
    spec!(
        "pubsub",
        -2,
        &["pubsub", "loading", "stale"],
        (0, 0, 0),
        "pubsub",
        "A container for Pub/Sub commands.",
        parse_pubsub
    ),
    spec!("reset", 1, &["loading", "stale", "fast"], (0, 0, 0), "connection", "Resets the connection.", |_| Ok(
        Action::Reset
    )),
];

static BY_NAME: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| COMMANDS.iter().enumerate().map(|(i, s)| (s.name, i)).collect());

/// Looks a command up by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    lookup_index(name).map(|i| &COMMANDS[i])
}

/// Like [`lookup`], giving the command's index in [`COMMANDS`].
pub fn lookup_index(name: &[u8]) -> Option<usize> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..name.len()]).ok().and_then(|n| BY_NAME.get(n).copied())
}

pub fn arity_error(name: &str) -> CommandError {
    CommandError::Invalid(format!("wrong number of arguments for '{name}' command"))
}

/// Every hash, list, set and sorted-set command: the engine parses the arguments. A blocking pop's last
/// argument is its timeout in seconds (a float), taken here.
fn parse_coll(a: Args<'_>) -> Result<Action, CommandError> {
    let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    let cmd = CollCmd::from_name(&name).ok_or_else(|| CommandError::Invalid(format!("unknown command '{name}'")))?;
    if cmd.is_blocking() {
        let t = a.last().expect("arity checked");
        let secs: f64 = std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| CommandError::Invalid("timeout is not a float or out of range".into()))?;
        if secs < 0.0 {
            return Err(CommandError::Invalid("timeout is negative".into()));
        }
        let ms = (secs * 1000.0).ceil() as u64;
        return Ok(Action::CollBlock(cmd, a[1..a.len() - 1].to_vec(), ms));
    }
    eng(Command::Coll { cmd, args: a[1..].to_vec() })
}

fn eng(cmd: Command) -> Result<Action, CommandError> {
    Ok(Action::Engine(cmd, Shape::AsIs))
}

pub fn int(b: &[u8]) -> Result<i64, CommandError> {
    synap_core::kv::parse_i64(b).ok_or(CommandError::NotInteger)
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A relative or absolute TTL in `unit_ms` milliseconds per unit, checked for overflow and positivity.
fn ttl_arg(arg: &[u8], unit_ms: i64, absolute: bool, name: &'static str) -> Result<Ttl, CommandError> {
    let n = int(arg)?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire(name));
    }
    let ms = n.checked_mul(unit_ms).ok_or(CommandError::InvalidExpire(name))?;
    Ok(if absolute { Ttl::At(ms) } else { Ttl::In(ms) })
}

fn parse_set(a: Args<'_>) -> Result<Action, CommandError> {
    let mut args = SetArgs::new(a[1].clone(), a[2].clone());
    let mut i = 3;
    while i < a.len() {
        let opt = &a[i];
        let next = a.get(i + 1);
        if is(opt, "nx") && args.cond == SetCond::Always {
            args.cond = SetCond::IfAbsent;
        } else if is(opt, "xx") && args.cond == SetCond::Always {
            args.cond = SetCond::IfPresent;
        } else if is(opt, "get") {
            args.get = true;
        } else if is(opt, "keepttl") && args.ttl.is_none() {
            args.keep_ttl = true;
        } else if (is(opt, "ex") || is(opt, "px") || is(opt, "exat") || is(opt, "pxat"))
            && args.ttl.is_none()
            && !args.keep_ttl
            && let Some(v) = next
        {
            let unit = if is(opt, "ex") || is(opt, "exat") { 1000 } else { 1 };
            let absolute = is(opt, "exat") || is(opt, "pxat");
            args.ttl = Some(ttl_arg(v, unit, absolute, "set")?);
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    eng(Command::Set(args))
}

fn parse_setex(a: Args<'_>, unit_ms: i64, name: &'static str) -> Result<Action, CommandError> {
    let ttl = ttl_arg(&a[2], unit_ms, false, name)?;
    eng(Command::Set(SetArgs { ttl: Some(ttl), ..SetArgs::new(a[1].clone(), a[3].clone()) }))
}

fn parse_mset(a: Args<'_>, nx: bool) -> Result<Action, CommandError> {
    if a.len().is_multiple_of(2) {
        return Err(arity_error(if nx { "msetnx" } else { "mset" }));
    }
    let pairs = a[1..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    eng(Command::MSet { pairs, nx })
}

fn parse_expire(a: Args<'_>, name: &'static str, absolute: bool, unit_ms: i64) -> Result<Action, CommandError> {
    let n = int(&a[2])?;
    let ms = n.checked_mul(unit_ms).ok_or(CommandError::InvalidExpire(name))?;
    let ttl = if absolute { Ttl::At(ms) } else { Ttl::In(ms) };
    let mut cond = ExpireCond::Always;
    for opt in &a[3..] {
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
            return Err(CommandError::Invalid(
                "NX and XX, GT or LT options at the same time are not compatible".into(),
            ));
        }
        cond = c;
    }
    eng(Command::Expire { key: a[1].clone(), ttl, cond, name })
}

fn parse_scan(a: Args<'_>) -> Result<Action, CommandError> {
    let cursor = std::str::from_utf8(&a[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CommandError::Invalid("invalid cursor".into()))?;
    let mut args = ScanArgs { cursor, count: 10, ..ScanArgs::default() };
    let mut i = 2;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else { return Err(CommandError::Syntax) };
        if is(&a[i], "match") {
            args.pattern = Some(v.clone());
        } else if is(&a[i], "count") {
            let n = int(v)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            args.count = n.min(1 << 20) as usize;
        } else if is(&a[i], "type") {
            args.type_filter = Some(String::from_utf8_lossy(v).to_string());
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    eng(Command::Scan(args))
}

fn parse_flush(a: Args<'_>) -> Result<Action, CommandError> {
    match a.len() {
        1 => eng(Command::FlushAll),
        2 if is(&a[1], "async") || is(&a[1], "sync") => eng(Command::FlushAll),
        _ => Err(CommandError::Syntax),
    }
}

fn parse_hello(a: Args<'_>) -> Result<Action, CommandError> {
    let mut proto = None;
    let mut auth = None;
    let mut setname = None;
    let mut i = 1;
    if a.len() > 1 {
        let v = int(&a[1])
            .map_err(|_| CommandError::Invalid("Protocol version is not an integer or out of range".into()))?;
        proto = Some(v);
        i = 2;
    }
    while i < a.len() {
        if is(&a[i], "auth") && i + 2 < a.len() {
            auth = Some((a[i + 1].clone(), a[i + 2].clone()));
            i += 3;
        } else if is(&a[i], "setname") && i + 1 < a.len() {
            setname = Some(a[i + 1].clone());
            i += 2;
        } else {
            return Err(CommandError::Invalid(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&a[i])
            )));
        }
    }
    Ok(Action::Hello { proto, auth, setname })
}

fn unknown_subcommand(sub: &[u8], cmd: &str) -> CommandError {
    CommandError::Invalid(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        cmd.to_uppercase()
    ))
}

fn parse_config(a: Args<'_>) -> Result<Action, CommandError> {
    let sub = &a[1];
    if is(sub, "get") {
        if a.len() < 3 {
            return Err(arity_error("config|get"));
        }
        Ok(Action::ConfigGet(a[2..].to_vec()))
    } else if is(sub, "set") {
        if a.len() < 4 || !a.len().is_multiple_of(2) {
            return Err(arity_error("config|set"));
        }
        Ok(Action::ConfigSet)
    } else if is(sub, "resetstat") {
        Ok(Action::ConfigResetStat)
    } else {
        Err(unknown_subcommand(sub, "config"))
    }
}

fn parse_client(a: Args<'_>) -> Result<Action, CommandError> {
    let sub = &a[1];
    let op = if is(sub, "setname") && a.len() == 3 {
        if a[2].iter().any(|&c| c <= b' ' || c > b'~') {
            return Err(CommandError::Invalid(
                "Client names cannot contain spaces, newlines or special characters.".into(),
            ));
        }
        ClientOp::SetName(a[2].clone())
    } else if is(sub, "getname") && a.len() == 2 {
        ClientOp::GetName
    } else if is(sub, "id") && a.len() == 2 {
        ClientOp::Id
    } else if is(sub, "list") {
        ClientOp::List
    } else if is(sub, "info") && a.len() == 2 {
        ClientOp::Info
    } else if is(sub, "setinfo") && a.len() == 4 {
        ClientOp::SetInfo
    } else if is(sub, "no-evict") && a.len() == 3 {
        ClientOp::NoEvict
    } else if ["setname", "getname", "id", "info", "setinfo", "no-evict"].iter().any(|s| is(sub, s)) {
        return Err(arity_error(&format!("client|{}", String::from_utf8_lossy(sub).to_lowercase())));
    } else {
        return Err(unknown_subcommand(sub, "client"));
    };
    Ok(Action::Client(op))
}

fn parse_command(a: Args<'_>) -> Result<Action, CommandError> {
    if a.len() == 1 {
        return Ok(Action::CommandList);
    }
    let sub = &a[1];
    if is(sub, "count") && a.len() == 2 {
        Ok(Action::CommandCount)
    } else if is(sub, "docs") {
        Ok(Action::CommandDocs(a[2..].to_vec()))
    } else if is(sub, "info") {
        Ok(Action::CommandInfo(a[2..].to_vec()))
    } else {
        Err(unknown_subcommand(sub, "command"))
    }
}

fn bad_id() -> CommandError {
    CommandError::Invalid("invalid message id".into())
}

fn uint(b: &[u8]) -> Result<u64, CommandError> {
    let n = int(b)?;
    u64::try_from(n).map_err(|_| CommandError::NotInteger)
}

/// `[COUNT n]` at `at`, or the default.
fn count_opt(a: Args<'_>, at: usize, default: usize) -> Result<usize, CommandError> {
    match (a.get(at), a.get(at + 1), a.len()) {
        (None, _, _) => Ok(default),
        (Some(w), Some(n), len) if is(w, "count") && len == at + 2 => {
            let n = uint(n)?;
            if n == 0 || n > 10_000 {
                return Err(CommandError::Invalid("COUNT must be between 1 and 10000".into()));
            }
            Ok(n as usize)
        }
        _ => Err(CommandError::Syntax),
    }
}

fn parse_qcreate(a: Args<'_>) -> Result<Action, CommandError> {
    let mut o = QueueOptions::default();
    let mut i = 2;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else { return Err(CommandError::Syntax) };
        let w = &a[i];
        if is(w, "maxdepth") {
            o.max_depth = Some(uint(v)?);
        } else if is(w, "ackdeadline") {
            o.ack_deadline_ms = Some(uint(v)?);
        } else if is(w, "maxretries") {
            o.max_retries = Some(u32::try_from(uint(v)?).map_err(|_| CommandError::NotInteger)?);
        } else if is(w, "dlq") {
            o.dead_letter_queue = Some(v.clone());
        } else if is(w, "maxbytes") {
            o.max_message_bytes = Some(uint(v)?);
        } else if is(w, "prefetch") {
            o.prefetch = Some(u32::try_from(uint(v)?).map_err(|_| CommandError::NotInteger)?);
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    eng(Command::QueueCreate { name: a[1].clone(), options: o })
}

fn parse_qpublish(a: Args<'_>) -> Result<Action, CommandError> {
    let mut p = PublishArgs { queue: a[1].clone(), payload: a[2].clone(), ..PublishArgs::default() };
    let mut i = 3;
    while i < a.len() {
        let w = &a[i];
        if is(w, "headers") {
            let rest = &a[i + 1..];
            if rest.is_empty() || !rest.len().is_multiple_of(2) {
                return Err(CommandError::Syntax);
            }
            p.headers = rest.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
            break;
        }
        let Some(v) = a.get(i + 1) else { return Err(CommandError::Syntax) };
        if is(w, "priority") {
            let n = uint(v)?;
            if n > 9 {
                return Err(CommandError::Invalid("PRIORITY must be between 0 and 9".into()));
            }
            p.priority = n as u8;
        } else if is(w, "delay") {
            p.delay_ms = uint(v)?;
        } else if is(w, "ttl") {
            p.ttl_ms = uint(v)?;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    eng(Command::QueuePublish(p))
}

fn parse_qconsume(a: Args<'_>) -> Result<Action, CommandError> {
    let mut args = ConsumeArgs { queue: a[1].clone(), consumer: a[2].clone(), max: 1 };
    let mut block = None;
    let mut i = 3;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else { return Err(CommandError::Syntax) };
        if is(&a[i], "count") {
            let n = uint(v)?;
            if n == 0 || n > 10_000 {
                return Err(CommandError::Invalid("COUNT must be between 1 and 10000".into()));
            }
            args.max = n as usize;
        } else if is(&a[i], "block") {
            block = Some(uint(v)?);
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    match block {
        Some(ms) => Ok(Action::QueueConsumeBlock(args, ms)),
        None => eng(Command::QueueConsume(args)),
    }
}

fn parse_pubsub(a: Args<'_>) -> Result<Action, CommandError> {
    let sub = &a[1];
    if is(sub, "channels") && a.len() <= 3 {
        eng(Command::PubSubChannels { pattern: a.get(2).cloned() })
    } else if is(sub, "numsub") {
        eng(Command::PubSubNumSub { channels: a[2..].to_vec() })
    } else if is(sub, "numpat") && a.len() == 2 {
        eng(Command::PubSubNumPat)
    } else {
        Err(unknown_subcommand(sub, "pubsub"))
    }
}
