//! The command table: the one description of every command — name, arity, flags, key positions, group,
//! ACL categories, summary and parser. RESP dispatch, COMMAND INFO/DOCS, MULTI queueing, the engine's
//! write and memory checks (and the ACL checks and replication to come) read it; nothing else restates
//! it. Rows without a parser are subcommands (`xgroup|create`: their container parses them) and commands
//! only HTTP reaches (`stream.create`).
//!
//! Adding a command: a row here, its parse function next to its typed command (`command/<service>.rs`),
//! its engine function in the service, a test.

use std::sync::LazyLock;

use super::args::Args;
use super::{Command, geo, hash, kv, list, pubsub, queue, script, server, set, stream, zset};
use crate::error::{CommandError, Result};

/// Turns a command's arguments (after its name) into a typed [`Command`].
pub type Parse = fn(&mut Args<'_>) -> Result<Command>;

/// Command flags, with Redis's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// May change state: refused while the log is failed.
    pub const WRITE: Flags = Flags(1);
    pub const READONLY: Flags = Flags(1 << 1);
    /// May grow memory: refused (or evicts) at the memory limit.
    pub const DENYOOM: Flags = Flags(1 << 2);
    pub const FAST: Flags = Flags(1 << 3);
    /// May wait before it answers.
    pub const BLOCKING: Flags = Flags(1 << 4);
    pub const ADMIN: Flags = Flags(1 << 5);
    pub const PUBSUB: Flags = Flags(1 << 6);
    pub const NOSCRIPT: Flags = Flags(1 << 7);
    pub const LOADING: Flags = Flags(1 << 8);
    pub const STALE: Flags = Flags(1 << 9);
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 10);
    pub const ALLOW_BUSY: Flags = Flags(1 << 11);

    const NAMES: [(Flags, &'static str); 12] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::PUBSUB, "pubsub"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::BLOCKING, "blocking"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::SKIP_SLOWLOG, "skip_slowlog"),
        (Flags::FAST, "fast"),
        (Flags::ALLOW_BUSY, "allow_busy"),
    ];

    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags' names, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES.into_iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| n)
    }
}

const W: Flags = Flags::WRITE.with(Flags::DENYOOM);
const WF: Flags = W.with(Flags::FAST);
const WD: Flags = Flags::WRITE.with(Flags::FAST);
const WO: Flags = Flags::WRITE;
const WB: Flags = Flags::WRITE.with(Flags::BLOCKING);
const WDB: Flags = W.with(Flags::BLOCKING);
const R: Flags = Flags::READONLY;
const RF: Flags = R.with(Flags::FAST);
const RB: Flags = R.with(Flags::BLOCKING);
const CONN: Flags = Flags::LOADING.with(Flags::STALE).with(Flags::FAST);
const INFO: Flags = Flags::LOADING.with(Flags::STALE);
const ADMIN: Flags = Flags::ADMIN.with(INFO);
const TIME: Flags = CONN;
const TX: Flags = Flags::NOSCRIPT.with(CONN).with(Flags::ALLOW_BUSY);
const EXEC: Flags = Flags::NOSCRIPT.with(INFO).with(Flags::SKIP_SLOWLOG);
const PUB: Flags = Flags::PUBSUB.with(INFO);
const PUBF: Flags = PUB.with(Flags::FAST);
/// EVAL and its kin: not write themselves (the commands a script calls are checked one by one).
const EVAL: Flags = Flags::NOSCRIPT.with(Flags::STALE);
const SCRIPT: Flags = Flags::NOSCRIPT;
const ACLADMIN: Flags = ADMIN.with(Flags::NOSCRIPT);
const ACLINFO: Flags = INFO.with(Flags::NOSCRIPT);
const CLIENTSUB: Flags = INFO.with(Flags::NOSCRIPT);

/// Where a command's keys are among its arguments (Redis's first, last, step; 0 = no keys, last -1 =
/// through the end, -2 = all but the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub first: i32,
    pub last: i32,
    pub step: i32,
}

/// One row of the table.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments including the name, -N means at least N.
    pub arity: i32,
    pub flags: Flags,
    pub keys: KeySpec,
    /// Redis's command group (`string`, `generic`, `sorted-set`, ...; `queue` for Synap's queues).
    pub group: &'static str,
    /// ACL categories beyond those the flags and the group give (`@dangerous`, `@admin`).
    pub acl: &'static [&'static str],
    pub summary: &'static str,
    /// `None`: not a command of its own on RESP (a subcommand, or HTTP only).
    pub parse: Option<Parse>,
}

impl Spec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 { argc == a as usize } else { argc >= (-a) as usize }
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(Flags::WRITE)
    }

    pub fn may_grow(&self) -> bool {
        self.flags.contains(Flags::DENYOOM)
    }

    pub fn is_blocking(&self) -> bool {
        self.flags.contains(Flags::BLOCKING)
    }

    /// A subcommand (`container|sub`).
    pub fn is_subcommand(&self) -> bool {
        self.name.contains('|')
    }

    /// The command's ACL categories, as Redis derives them: read/write, fast/slow, blocking, the group's,
    /// and the row's own.
    pub fn categories(&self) -> Vec<&'static str> {
        // A container (CONFIG, CLIENT, ...) has no categories of its own: its subcommands do.
        if subcommands(self.name).next().is_some() && self.name != "command" {
            return vec!["@slow"];
        }
        let mut out = Vec::new();
        if self.flags.contains(Flags::WRITE) {
            out.push("@write");
        }
        // Scripts are @scripting, not @read, even read-only ones (EVAL_RO), as in Redis.
        if self.flags.contains(Flags::READONLY) && self.group != "scripting" {
            out.push("@read");
        }
        if self.name == "command" || self.name.starts_with("command|") {
            out.push("@connection");
        }
        let group = match self.group {
            "string" => Some("@string"),
            "scripting" => Some("@scripting"),
            // SORT is in its types' categories rather than @keyspace, as in Redis; WAIT in @connection.
            "generic" if !self.acl.contains(&"@list") && !self.acl.contains(&"@connection") => Some("@keyspace"),
            "bitmap" => Some("@bitmap"),
            "hyperloglog" => Some("@hyperloglog"),
            "geo" => Some("@geo"),
            "hash" => Some("@hash"),
            "list" => Some("@list"),
            "set" => Some("@set"),
            "sorted-set" => Some("@sortedset"),
            "stream" => Some("@stream"),
            "pubsub" => Some("@pubsub"),
            "connection" => Some("@connection"),
            "transactions" => Some("@transaction"),
            "queue" => Some("@queue"),
            _ => None,
        };
        out.extend(group);
        if self.flags.contains(Flags::ADMIN) {
            out.extend(["@admin", "@dangerous"]);
        }
        if self.flags.contains(Flags::PUBSUB) && self.group != "pubsub" {
            out.push("@pubsub");
        }
        for c in self.acl {
            if !out.contains(c) {
                out.push(c);
            }
        }
        out.push(if self.flags.contains(Flags::FAST) { "@fast" } else { "@slow" });
        if self.flags.contains(Flags::BLOCKING) {
            out.push("@blocking");
        }
        out
    }
}

macro_rules! resp {
    ($name:literal, $arity:expr, $flags:expr, ($f:expr, $l:expr, $s:expr), $group:literal, $summary:literal, $parse:expr $(, acl = $acl:expr)?) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec { first: $f, last: $l, step: $s },
            group: $group,
            acl: resp!(@acl $($acl)?),
            summary: $summary,
            parse: Some($parse),
        }
    };
    (@acl) => { &[] };
    (@acl $acl:expr) => { $acl };
}

/// A subcommand row (its container parses it) or an HTTP-only command.
macro_rules! sub {
    ($name:literal, $arity:expr, $flags:expr, ($f:expr, $l:expr, $s:expr), $group:literal, $summary:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec { first: $f, last: $l, step: $s },
            group: $group,
            acl: &[],
            summary: $summary,
            parse: None,
        }
    };
}

/// Every command.
pub static COMMANDS: &[Spec] = &[
    resp!("multi", 1, TX, (0, 0, 0), "transactions", "Starts a transaction.", server::multi),
    resp!("exec", 1, EXEC, (0, 0, 0), "transactions", "Executes all commands in a transaction.", server::exec),
    resp!("discard", 1, TX, (0, 0, 0), "transactions", "Discards a transaction.", server::discard),
    resp!(
        "watch",
        -2,
        TX,
        (1, -1, 1),
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
        server::watch
    ),
    resp!("unwatch", 1, TX, (0, 0, 0), "transactions", "Forgets about watched keys of a transaction.", server::unwatch),
    resp!("hset", -4, WF, (1, 1, 1), "hash", "Sets the values of one or more fields in a hash.", hash::hset),
    resp!("hmset", -4, WF, (1, 1, 1), "hash", "Sets the values of multiple fields.", hash::hmset),
    resp!(
        "hsetnx",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Sets the value of a field in a hash only when the field doesn't exist.",
        hash::hsetnx
    ),
    resp!("hget", 3, RF, (1, 1, 1), "hash", "Returns the value of a field in a hash.", hash::hget),
    resp!("hmget", -3, RF, (1, 1, 1), "hash", "Returns the values of all fields in a hash.", hash::hmget),
    resp!("hgetall", 2, R, (1, 1, 1), "hash", "Returns all fields and values in a hash.", hash::hgetall),
    resp!("hdel", -3, WD, (1, 1, 1), "hash", "Deletes one or more fields and their values from a hash.", hash::hdel),
    resp!("hexists", 3, RF, (1, 1, 1), "hash", "Determines whether a field exists in a hash.", hash::hexists),
    resp!("hlen", 2, RF, (1, 1, 1), "hash", "Returns the number of fields in a hash.", hash::hlen),
    resp!("hkeys", 2, R, (1, 1, 1), "hash", "Returns all fields in a hash.", hash::hkeys),
    resp!("hvals", 2, R, (1, 1, 1), "hash", "Returns all values in a hash.", hash::hvals),
    resp!(
        "hincrby",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Increments the integer value of a field in a hash by a number.",
        hash::hincrby
    ),
    resp!(
        "hincrbyfloat",
        4,
        WF,
        (1, 1, 1),
        "hash",
        "Increments the floating point value of a field by a number.",
        hash::hincrbyfloat
    ),
    resp!("hstrlen", 3, RF, (1, 1, 1), "hash", "Returns the length of the value of a field.", hash::hstrlen),
    resp!("hrandfield", -2, R, (1, 1, 1), "hash", "Returns one or more random fields from a hash.", hash::hrandfield),
    resp!("hscan", -3, R, (1, 1, 1), "hash", "Iterates over fields and values of a hash.", hash::hscan),
    resp!("lpush", -3, WF, (1, 1, 1), "list", "Prepends one or more elements to a list.", list::lpush),
    resp!("rpush", -3, WF, (1, 1, 1), "list", "Appends one or more elements to a list.", list::rpush),
    resp!(
        "lpushx",
        -3,
        WF,
        (1, 1, 1),
        "list",
        "Prepends one or more elements to a list only when the list exists.",
        list::lpushx
    ),
    resp!("rpushx", -3, WF, (1, 1, 1), "list", "Appends an element to a list only when the list exists.", list::rpushx),
    resp!("lpop", -2, WD, (1, 1, 1), "list", "Returns the first elements in a list after removing it.", list::lpop),
    resp!("rpop", -2, WD, (1, 1, 1), "list", "Returns and removes the last elements of a list.", list::rpop),
    resp!("llen", 2, RF, (1, 1, 1), "list", "Returns the length of a list.", list::llen),
    resp!("lrange", 4, R, (1, 1, 1), "list", "Returns a range of elements from a list.", list::lrange),
    resp!("lindex", 3, R, (1, 1, 1), "list", "Returns an element from a list by its index.", list::lindex),
    resp!("lset", 4, W, (1, 1, 1), "list", "Sets the value of an element in a list by its index.", list::lset),
    resp!(
        "linsert",
        5,
        W,
        (1, 1, 1),
        "list",
        "Inserts an element before or after another element in a list.",
        list::linsert
    ),
    resp!("lrem", 4, WO, (1, 1, 1), "list", "Removes elements from a list.", list::lrem),
    resp!("ltrim", 4, WO, (1, 1, 1), "list", "Removes elements from both ends a list.", list::ltrim),
    resp!("lpos", -3, R, (1, 1, 1), "list", "Returns the index of matching elements in a list.", list::lpos),
    resp!(
        "lmove",
        5,
        W,
        (1, 2, 1),
        "list",
        "Returns an element after popping it from one list and pushing it to another.",
        list::lmove
    ),
    resp!(
        "rpoplpush",
        3,
        W,
        (1, 2, 1),
        "list",
        "Returns the last element of a list after removing and pushing it to another list.",
        list::rpoplpush
    ),
    resp!(
        "blpop",
        -3,
        WB.with(Flags::NOSCRIPT),
        (1, -2, 1),
        "list",
        "Removes and returns the first element in a list. Blocks until an element is available otherwise.",
        list::blpop
    ),
    resp!(
        "brpop",
        -3,
        WB.with(Flags::NOSCRIPT),
        (1, -2, 1),
        "list",
        "Removes and returns the last element in a list. Blocks until an element is available otherwise.",
        list::brpop
    ),
    resp!(
        "lmpop",
        -4,
        WO,
        (0, 0, 0),
        "list",
        "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        list::lmpop
    ),
    resp!(
        "blmpop",
        -5,
        WB,
        (0, 0, 0),
        "list",
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        list::blmpop
    ),
    resp!(
        "blmove",
        6,
        WDB.with(Flags::NOSCRIPT),
        (1, 2, 1),
        "list",
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.",
        list::blmove
    ),
    resp!(
        "brpoplpush",
        4,
        WDB.with(Flags::NOSCRIPT),
        (1, 2, 1),
        "list",
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.",
        list::brpoplpush
    ),
    resp!("sadd", -3, WF, (1, 1, 1), "set", "Adds one or more members to a set.", set::sadd),
    resp!("srem", -3, WD, (1, 1, 1), "set", "Removes one or more members from a set.", set::srem),
    resp!("sismember", 3, RF, (1, 1, 1), "set", "Determines whether a member belongs to a set.", set::sismember),
    resp!(
        "smismember",
        -3,
        RF,
        (1, 1, 1),
        "set",
        "Determines whether multiple members belong to a set.",
        set::smismember
    ),
    resp!("smembers", 2, R, (1, 1, 1), "set", "Returns all members of a set.", set::smembers),
    resp!("scard", 2, RF, (1, 1, 1), "set", "Returns the number of members in a set.", set::scard),
    resp!(
        "spop",
        -2,
        WD,
        (1, 1, 1),
        "set",
        "Returns one or more random members from a set after removing them.",
        set::spop
    ),
    resp!("srandmember", -2, R, (1, 1, 1), "set", "Get one or multiple random members from a set.", set::srandmember),
    resp!("smove", 4, WD, (1, 2, 1), "set", "Moves a member from one set to another.", set::smove),
    resp!("sinter", -2, R, (1, -1, 1), "set", "Returns the intersect of multiple sets.", set::sinter),
    resp!("sunion", -2, R, (1, -1, 1), "set", "Returns the union of multiple sets.", set::sunion),
    resp!("sdiff", -2, R, (1, -1, 1), "set", "Returns the difference of multiple sets.", set::sdiff),
    resp!("sinterstore", -3, W, (1, -1, 1), "set", "Stores the intersect of multiple sets in a key.", set::sinterstore),
    resp!("sunionstore", -3, W, (1, -1, 1), "set", "Stores the union of multiple sets in a key.", set::sunionstore),
    resp!("sdiffstore", -3, W, (1, -1, 1), "set", "Stores the difference of multiple sets in a key.", set::sdiffstore),
    resp!(
        "sintercard",
        -3,
        R,
        (0, 0, 0),
        "set",
        "Returns the number of members of the intersect of multiple sets.",
        set::sintercard
    ),
    resp!("sscan", -3, R, (1, 1, 1), "set", "Iterates over members of a set.", set::sscan),
    resp!(
        "zadd",
        -4,
        WF,
        (1, 1, 1),
        "sorted-set",
        "Adds one or more members to a sorted set, or updates their scores.",
        zset::zadd
    ),
    resp!("zrem", -3, WD, (1, 1, 1), "sorted-set", "Removes one or more members from a sorted set.", zset::zrem),
    resp!("zscore", 3, RF, (1, 1, 1), "sorted-set", "Returns the score of a member in a sorted set.", zset::zscore),
    resp!(
        "zmscore",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the score of one or more members in a sorted set.",
        zset::zmscore
    ),
    resp!(
        "zincrby",
        4,
        WF,
        (1, 1, 1),
        "sorted-set",
        "Increments the score of a member in a sorted set.",
        zset::zincrby
    ),
    resp!("zcard", 2, RF, (1, 1, 1), "sorted-set", "Returns the number of members in a sorted set.", zset::zcard),
    resp!(
        "zcount",
        4,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the count of members in a sorted set that have scores within a range.",
        zset::zcount
    ),
    resp!(
        "zrange",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of indexes.",
        zset::zrange
    ),
    resp!(
        "zrevrange",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of indexes in reverse order.",
        zset::zrevrange
    ),
    resp!(
        "zrangebyscore",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of scores.",
        zset::zrangebyscore
    ),
    resp!(
        "zrevrangebyscore",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a range of scores in reverse order.",
        zset::zrevrangebyscore
    ),
    resp!(
        "zrangebylex",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a lexicographical range.",
        zset::zrangebylex
    ),
    resp!(
        "zrevrangebylex",
        -4,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns members in a sorted set within a lexicographical range in reverse order.",
        zset::zrevrangebylex
    ),
    resp!(
        "zlexcount",
        4,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the number of members in a sorted set within a lexicographical range.",
        zset::zlexcount
    ),
    resp!(
        "zremrangebylex",
        4,
        WO,
        (1, 1, 1),
        "sorted-set",
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.",
        zset::zremrangebylex
    ),
    resp!(
        "zrandmember",
        -2,
        R,
        (1, 1, 1),
        "sorted-set",
        "Returns one or more random members from a sorted set.",
        zset::zrandmember
    ),
    resp!(
        "zrangestore",
        -5,
        W,
        (1, 2, 1),
        "sorted-set",
        "Stores a range of members from sorted set in a key.",
        zset::zrangestore
    ),
    resp!(
        "zrank",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the index of a member in a sorted set ordered by ascending scores.",
        zset::zrank
    ),
    resp!(
        "zrevrank",
        -3,
        RF,
        (1, 1, 1),
        "sorted-set",
        "Returns the index of a member in a sorted set ordered by descending scores.",
        zset::zrevrank
    ),
    resp!(
        "zpopmin",
        -2,
        WD,
        (1, 1, 1),
        "sorted-set",
        "Returns the lowest-scoring members from a sorted set after removing them.",
        zset::zpopmin
    ),
    resp!(
        "zpopmax",
        -2,
        WD,
        (1, 1, 1),
        "sorted-set",
        "Returns the highest-scoring members from a sorted set after removing them.",
        zset::zpopmax
    ),
    resp!(
        "bzpopmin",
        -3,
        WB.with(Flags::NOSCRIPT).with(Flags::FAST),
        (1, -2, 1),
        "sorted-set",
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.",
        zset::bzpopmin
    ),
    resp!(
        "bzpopmax",
        -3,
        WB.with(Flags::NOSCRIPT).with(Flags::FAST),
        (1, -2, 1),
        "sorted-set",
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.",
        zset::bzpopmax
    ),
    resp!(
        "zremrangebyscore",
        4,
        WO,
        (1, 1, 1),
        "sorted-set",
        "Removes members in a sorted set within a range of scores.",
        zset::zremrangebyscore
    ),
    resp!(
        "zremrangebyrank",
        4,
        WO,
        (1, 1, 1),
        "sorted-set",
        "Removes members in a sorted set within a range of indexes.",
        zset::zremrangebyrank
    ),
    resp!(
        "zunionstore",
        -4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Stores the union of multiple sorted sets in a key.",
        zset::zunionstore
    ),
    resp!(
        "zinterstore",
        -4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Stores the intersect of multiple sorted sets in a key.",
        zset::zinterstore
    ),
    resp!(
        "zdiffstore",
        -4,
        W,
        (1, 1, 1),
        "sorted-set",
        "Stores the difference of multiple sorted sets in a key.",
        zset::zdiffstore
    ),
    resp!("zunion", -3, R, (0, 0, 0), "sorted-set", "Returns the union of multiple sorted sets.", zset::zunion),
    resp!("zinter", -3, R, (0, 0, 0), "sorted-set", "Returns the intersect of multiple sorted sets.", zset::zinter),
    resp!("zdiff", -3, R, (0, 0, 0), "sorted-set", "Returns the difference between multiple sorted sets.", zset::zdiff),
    resp!(
        "zintercard",
        -3,
        R,
        (0, 0, 0),
        "sorted-set",
        "Returns the number of members of the intersect of multiple sorted sets.",
        zset::zintercard
    ),
    resp!(
        "zmpop",
        -4,
        WO,
        (0, 0, 0),
        "sorted-set",
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.",
        zset::zmpop
    ),
    resp!(
        "bzmpop",
        -5,
        WB,
        (0, 0, 0),
        "sorted-set",
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        zset::bzmpop
    ),
    resp!("zscan", -3, R, (1, 1, 1), "sorted-set", "Iterates over members and scores of a sorted set.", zset::zscan),
    resp!(
        "xadd",
        -5,
        WF,
        (1, 1, 1),
        "stream",
        "Appends a new message to a stream. Creates the key if it doesn't exist.",
        stream::xadd
    ),
    resp!("xlen", 2, RF, (1, 1, 1), "stream", "Return the number of messages in a stream.", stream::xlen),
    resp!(
        "xrange",
        -4,
        R,
        (1, 1, 1),
        "stream",
        "Returns the messages from a stream within a range of IDs.",
        stream::xrange
    ),
    resp!(
        "xrevrange",
        -4,
        R,
        (1, 1, 1),
        "stream",
        "Returns the messages from a stream within a range of IDs in reverse order.",
        stream::xrevrange
    ),
    resp!(
        "xread",
        -4,
        RB,
        (0, 0, 0),
        "stream",
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        stream::xread
    ),
    resp!(
        "xreadgroup",
        -7,
        WB,
        (0, 0, 0),
        "stream",
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        stream::xreadgroup
    ),
    resp!("xtrim", -4, WO, (1, 1, 1), "stream", "Deletes messages from the beginning of a stream.", stream::xtrim),
    resp!(
        "xdel",
        -3,
        WD,
        (1, 1, 1),
        "stream",
        "Returns the number of messages after removing them from a stream.",
        stream::xdel
    ),
    resp!("xgroup", -2, WO, (2, 2, 1), "stream", "A container for consumer groups commands.", stream::xgroup),
    resp!(
        "xack",
        -4,
        WD,
        (1, 1, 1),
        "stream",
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        stream::xack
    ),
    resp!(
        "xpending",
        -3,
        R,
        (1, 1, 1),
        "stream",
        "Returns the information and entries from a stream consumer group's pending entries list.",
        stream::xpending
    ),
    resp!(
        "xclaim",
        -6,
        WD,
        (1, 1, 1),
        "stream",
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        stream::xclaim
    ),
    resp!(
        "xautoclaim",
        -6,
        WD,
        (1, 1, 1),
        "stream",
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        stream::xautoclaim
    ),
    resp!("xinfo", -2, R, (2, 2, 1), "stream", "A container for stream introspection commands.", stream::xinfo),
    resp!("get", 2, RF, (1, 1, 1), "string", "Returns the string value of a key.", kv::get),
    resp!("set", -3, W, (1, 1, 1), "string", "Sets the string value of a key, ignoring its type.", kv::set),
    resp!(
        "setnx",
        3,
        WF,
        (1, 1, 1),
        "string",
        "Set the string value of a key only when the key doesn't exist.",
        kv::setnx
    ),
    resp!("setex", 4, W, (1, 1, 1), "string", "Sets the string value and expiration time of a key.", kv::setex_secs),
    resp!(
        "psetex",
        4,
        W,
        (1, 1, 1),
        "string",
        "Sets the string value and expiration time in milliseconds of a key.",
        kv::psetex
    ),
    resp!(
        "getset",
        3,
        WF,
        (1, 1, 1),
        "string",
        "Returns the previous string value of a key after setting it to a new value.",
        kv::getset
    ),
    resp!(
        "getdel",
        2,
        WD,
        (1, 1, 1),
        "string",
        "Returns the string value of a key after deleting the key.",
        kv::getdel
    ),
    resp!(
        "getex",
        -2,
        WD,
        (1, 1, 1),
        "string",
        "Returns the string value of a key after setting its expiration time.",
        kv::getex
    ),
    resp!("del", -2, WO, (1, -1, 1), "generic", "Deletes one or more keys.", kv::del),
    resp!("unlink", -2, WD, (1, -1, 1), "generic", "Asynchronously deletes one or more keys.", kv::del),
    resp!("exists", -2, RF, (1, -1, 1), "generic", "Determines whether one or more keys exist.", kv::exists),
    resp!("mget", -2, RF, (1, -1, 1), "string", "Atomically returns the string values of one or more keys.", kv::mget),
    resp!(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "Atomically creates or modifies the string values of one or more keys.",
        kv::mset
    ),
    resp!(
        "msetnx",
        -3,
        W,
        (1, -1, 2),
        "string",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        kv::msetnx
    ),
    resp!("incr", 2, WF, (1, 1, 1), "string", "Increments the integer value of a key by one.", kv::incr),
    resp!("decr", 2, WF, (1, 1, 1), "string", "Decrements the integer value of a key by one.", kv::decr),
    resp!("incrby", 3, WF, (1, 1, 1), "string", "Increments the integer value of a key by a number.", kv::incrby),
    resp!("decrby", 3, WF, (1, 1, 1), "string", "Decrements a number from the integer value of a key.", kv::decrby),
    resp!(
        "incrbyfloat",
        3,
        WF,
        (1, 1, 1),
        "string",
        "Increment the floating point value of a key by a number.",
        kv::incrbyfloat
    ),
    resp!("append", 3, WF, (1, 1, 1), "string", "Appends a string to the value of a key.", kv::append),
    resp!("strlen", 2, RF, (1, 1, 1), "string", "Returns the length of a string value.", kv::strlen),
    resp!(
        "setrange",
        4,
        W,
        (1, 1, 1),
        "string",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        kv::setrange
    ),
    resp!("getrange", 4, R, (1, 1, 1), "string", "Returns a substring of the string stored at a key.", kv::getrange),
    resp!("substr", 4, R, (1, 1, 1), "string", "Returns a substring from a string value.", kv::getrange),
    resp!("lcs", -3, R, (1, 2, 1), "string", "Finds the longest common substring.", kv::lcs),
    resp!(
        "setbit",
        4,
        W,
        (1, 1, 1),
        "bitmap",
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        kv::setbit
    ),
    resp!("getbit", 3, RF, (1, 1, 1), "bitmap", "Returns a bit value by offset.", kv::getbit),
    resp!(
        "bitcount",
        -2,
        R,
        (1, 1, 1),
        "bitmap",
        "Counts the number of set bits (population counting) in a string.",
        kv::bitcount
    ),
    resp!("bitpos", -3, R, (1, 1, 1), "bitmap", "Finds the first set (1) or clear (0) bit in a string.", kv::bitpos),
    resp!(
        "bitop",
        -4,
        W,
        (2, -1, 1),
        "bitmap",
        "Performs bitwise operations on multiple strings, and stores the result.",
        kv::bitop
    ),
    resp!(
        "bitfield",
        -2,
        W,
        (1, 1, 1),
        "bitmap",
        "Performs arbitrary bitfield integer operations on strings.",
        kv::bitfield
    ),
    resp!(
        "bitfield_ro",
        -2,
        RF,
        (1, 1, 1),
        "bitmap",
        "Performs arbitrary read-only bitfield integer operations on strings.",
        kv::bitfield_ro
    ),
    resp!(
        "geoadd",
        -5,
        W,
        (1, 1, 1),
        "geo",
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
        geo::geoadd
    ),
    resp!(
        "geopos",
        -2,
        R,
        (1, 1, 1),
        "geo",
        "Returns the longitude and latitude of members from a geospatial index.",
        geo::geopos
    ),
    resp!(
        "geodist",
        -4,
        R,
        (1, 1, 1),
        "geo",
        "Returns the distance between two members of a geospatial index.",
        geo::geodist
    ),
    resp!(
        "geohash",
        -2,
        R,
        (1, 1, 1),
        "geo",
        "Returns members from a geospatial index as geohash strings.",
        geo::geohash
    ),
    resp!(
        "georadius",
        -6,
        W,
        (1, 1, 1),
        "geo",
        "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
        geo::georadius
    ),
    resp!(
        "georadius_ro",
        -6,
        R,
        (1, 1, 1),
        "geo",
        "Returns members from a geospatial index that are within a distance from a coordinate.",
        geo::georadius_ro
    ),
    resp!(
        "georadiusbymember",
        -5,
        W,
        (1, 1, 1),
        "geo",
        "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
        geo::georadiusbymember
    ),
    resp!(
        "georadiusbymember_ro",
        -5,
        R,
        (1, 1, 1),
        "geo",
        "Returns members from a geospatial index that are within a distance from a member.",
        geo::georadiusbymember_ro
    ),
    resp!(
        "geosearch",
        -7,
        R,
        (1, 1, 1),
        "geo",
        "Queries a geospatial index for members inside an area of a box or a circle.",
        geo::geosearch
    ),
    resp!(
        "geosearchstore",
        -8,
        W,
        (1, 2, 1),
        "geo",
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
        geo::geosearchstore
    ),
    resp!(
        "pfadd",
        -2,
        WF,
        (1, 1, 1),
        "hyperloglog",
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        kv::pfadd
    ),
    resp!(
        "pfcount",
        -2,
        R,
        (1, -1, 1),
        "hyperloglog",
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        kv::pfcount
    ),
    resp!(
        "pfmerge",
        -2,
        W,
        (1, -1, 1),
        "hyperloglog",
        "Merges one or more HyperLogLog values into a single key.",
        kv::pfmerge
    ),
    Spec {
        name: "pfdebug",
        arity: 3,
        flags: W.with(Flags::ADMIN),
        keys: KeySpec { first: 2, last: 2, step: 1 },
        group: "hyperloglog",
        acl: &["@dangerous"],
        summary: "Internal commands for debugging HyperLogLog values.",
        parse: Some(kv::pfdebug),
    },
    resp!(
        "pfselftest",
        1,
        ADMIN,
        (0, 0, 0),
        "hyperloglog",
        "An internal command for testing HyperLogLog values.",
        kv::pfselftest,
        acl = &["@dangerous"]
    ),
    resp!("expire", -3, WD, (1, 1, 1), "generic", "Sets the expiration time of a key in seconds.", kv::expire_secs),
    resp!("pexpire", -3, WD, (1, 1, 1), "generic", "Sets the expiration time of a key in milliseconds.", kv::pexpire),
    resp!(
        "expireat",
        -3,
        WD,
        (1, 1, 1),
        "generic",
        "Sets the expiration time of a key to a Unix timestamp.",
        kv::expireat
    ),
    resp!(
        "pexpireat",
        -3,
        WD,
        (1, 1, 1),
        "generic",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        kv::pexpireat
    ),
    resp!("ttl", 2, RF, (1, 1, 1), "generic", "Returns the expiration time in seconds of a key.", kv::ttl),
    resp!("pttl", 2, RF, (1, 1, 1), "generic", "Returns the expiration time in milliseconds of a key.", kv::pttl),
    resp!(
        "expiretime",
        2,
        RF,
        (1, 1, 1),
        "generic",
        "Returns the expiration time of a key as a Unix timestamp.",
        kv::expiretime
    ),
    resp!(
        "pexpiretime",
        2,
        RF,
        (1, 1, 1),
        "generic",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        kv::pexpiretime
    ),
    resp!("persist", 2, WD, (1, 1, 1), "generic", "Removes the expiration time of a key.", kv::persist),
    resp!("type", 2, RF, (1, 1, 1), "generic", "Determines the type of value stored at a key.", kv::key_type),
    resp!("copy", -3, W, (1, 2, 1), "generic", "Copies the value of a key to a new key.", kv::copy),
    resp!("move", 3, WD, (1, 1, 1), "generic", "Moves a key to another database.", kv::move_cmd),
    resp!(
        "swapdb",
        3,
        WD,
        (0, 0, 0),
        "server",
        "Swaps two Redis databases.",
        kv::swapdb,
        acl = &["@keyspace", "@dangerous"]
    ),
    resp!(
        "dump",
        2,
        R,
        (1, 1, 1),
        "generic",
        "Returns a serialized representation of the value stored at a key.",
        kv::dump
    ),
    resp!(
        "restore",
        -4,
        W,
        (1, 1, 1),
        "generic",
        "Creates a key from the serialized representation of a value.",
        kv::restore,
        acl = &["@dangerous"]
    ),
    resp!(
        "sort",
        -2,
        W,
        (1, 1, 1),
        "generic",
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        kv::sort,
        acl = &["@set", "@sortedset", "@list", "@dangerous"]
    ),
    resp!(
        "sort_ro",
        -2,
        R,
        (1, 1, 1),
        "generic",
        "Returns the sorted elements of a list, a set, or a sorted set.",
        kv::sort_ro,
        acl = &["@set", "@sortedset", "@list", "@dangerous"]
    ),
    resp!(
        "touch",
        -2,
        RF,
        (1, -1, 1),
        "generic",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        kv::touch
    ),
    resp!("object", -2, R, (2, 2, 1), "generic", "A container for object introspection commands.", kv::object),
    resp!("eval", -3, EVAL, (0, 0, 0), "scripting", "Executes a server-side Lua script.", script::eval),
    resp!(
        "evalsha",
        -3,
        EVAL,
        (0, 0, 0),
        "scripting",
        "Executes a server-side Lua script by SHA1 digest.",
        script::evalsha
    ),
    resp!(
        "eval_ro",
        -3,
        EVAL.with(Flags::READONLY),
        (0, 0, 0),
        "scripting",
        "Executes a read-only server-side Lua script.",
        script::eval_ro
    ),
    resp!(
        "evalsha_ro",
        -3,
        EVAL.with(Flags::READONLY),
        (0, 0, 0),
        "scripting",
        "Executes a read-only server-side Lua script by SHA1 digest.",
        script::evalsha_ro
    ),
    resp!(
        "script",
        -2,
        Flags::NONE,
        (0, 0, 0),
        "scripting",
        "A container for Lua scripts management commands.",
        script::script_cmd
    ),
    resp!("fcall", -3, EVAL, (0, 0, 0), "scripting", "Invokes a function.", script::fcall),
    resp!(
        "fcall_ro",
        -3,
        EVAL.with(Flags::READONLY),
        (0, 0, 0),
        "scripting",
        "Invokes a read-only function.",
        script::fcall_ro
    ),
    resp!(
        "function",
        -2,
        Flags::NONE,
        (0, 0, 0),
        "scripting",
        "A container for function commands.",
        script::function_cmd
    ),
    resp!("rename", 3, WO, (1, 2, 1), "generic", "Renames a key and overwrites the destination.", kv::rename),
    resp!(
        "renamenx",
        3,
        WD,
        (1, 2, 1),
        "generic",
        "Renames a key only when the target key name doesn't exist.",
        kv::renamenx
    ),
    resp!(
        "keys",
        2,
        R,
        (0, 0, 0),
        "generic",
        "Returns all key names that match a pattern.",
        kv::keys_cmd,
        acl = &["@dangerous"]
    ),
    resp!("scan", -2, R, (0, 0, 0), "generic", "Iterates over the key names in the database.", kv::scan),
    resp!("randomkey", 1, R, (0, 0, 0), "generic", "Returns a random key name from the database.", kv::randomkey),
    resp!(
        "dbsize",
        1,
        RF,
        (0, 0, 0),
        "server",
        "Returns the number of keys in the database.",
        kv::dbsize,
        acl = &["@keyspace"]
    ),
    resp!(
        "flushall",
        -1,
        WO,
        (0, 0, 0),
        "server",
        "Removes all keys from all databases.",
        kv::flushall,
        acl = &["@keyspace", "@dangerous"]
    ),
    resp!(
        "flushdb",
        -1,
        WO,
        (0, 0, 0),
        "server",
        "Remove all keys from the current database.",
        kv::flushdb,
        acl = &["@keyspace", "@dangerous"]
    ),
    resp!("ping", -1, CONN, (0, 0, 0), "connection", "Returns the server's liveliness response.", server::ping),
    resp!("echo", 2, CONN, (0, 0, 0), "connection", "Returns the given string.", server::echo),
    resp!("hello", -1, CONN, (0, 0, 0), "connection", "Handshakes with the Redis server.", server::hello),
    resp!(
        "auth",
        -2,
        CONN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "connection",
        "Authenticates the connection.",
        server::auth
    ),
    resp!("acl", -2, Flags::NONE, (0, 0, 0), "server", "A container for Access List Control commands.", server::acl),
    resp!("select", 2, CONN, (0, 0, 0), "connection", "Changes the selected database.", kv::select),
    resp!("quit", -1, CONN, (0, 0, 0), "connection", "Closes the connection.", server::quit),
    resp!(
        "info",
        -1,
        INFO,
        (0, 0, 0),
        "server",
        "Returns information and statistics about the server.",
        server::info,
        acl = &["@dangerous"]
    ),
    resp!(
        "config",
        -2,
        ADMIN,
        (0, 0, 0),
        "server",
        "A container for server configuration commands.",
        server::config,
        acl = &["@admin", "@dangerous"]
    ),
    resp!(
        "client",
        -2,
        INFO,
        (0, 0, 0),
        "connection",
        "A container for client connection commands.",
        server::client,
        acl = &["@admin", "@dangerous"]
    ),
    resp!(
        "command",
        -1,
        INFO,
        (0, 0, 0),
        "server",
        "Returns detailed information about all commands.",
        server::command
    ),
    resp!("time", 1, TIME, (0, 0, 0), "server", "Returns the server time.", server::time),
    resp!(
        "save",
        1,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Synchronously saves the database(s) to disk.",
        server::save
    ),
    resp!(
        "bgsave",
        -1,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Asynchronously saves the database(s) to disk.",
        server::bgsave
    ),
    resp!(
        "bgrewriteaof",
        1,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Asynchronously rewrites the append-only file to disk.",
        server::bgrewriteaof
    ),
    resp!(
        "monitor",
        1,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Listens for all requests received by the server in real-time.",
        server::monitor
    ),
    resp!(
        "lastsave",
        1,
        CONN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Returns the Unix timestamp of the last successful save to disk.",
        server::lastsave,
        acl = &["@admin", "@dangerous"]
    ),
    resp!(
        "psync",
        -3,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "An internal command used in replication.",
        server::psync
    ),
    resp!(
        "sync",
        1,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "An internal command used in replication.",
        server::sync
    ),
    resp!(
        "replconf",
        -1,
        ADMIN.with(Flags::NOSCRIPT).with(Flags::ALLOW_BUSY),
        (0, 0, 0),
        "server",
        "An internal command for configuring the replication stream.",
        server::replconf
    ),
    resp!(
        "replicaof",
        3,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Configures a server as replica of another, or promotes it to a master.",
        server::replicaof
    ),
    resp!(
        "slaveof",
        3,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Sets a Redis server as a replica of another, or promotes it to being a master.",
        server::replicaof
    ),
    resp!(
        "role",
        1,
        CONN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "Returns the replication role.",
        server::role,
        acl = &["@admin", "@dangerous"]
    ),
    resp!(
        "cluster",
        -2,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "cluster",
        "A container for this node's failover cluster: INFO, MYID, ADDNODE, REMOVENODE.",
        server::cluster
    ),
    resp!(
        "sentinel",
        -2,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "sentinel",
        "The Sentinel commands clients use to find the primary (answered by every cluster node).",
        server::sentinel
    ),
    resp!(
        "wait",
        3,
        Flags::NOSCRIPT,
        (0, 0, 0),
        "generic",
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        server::wait,
        acl = &["@connection"]
    ),
    resp!(
        "debug",
        -2,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "server",
        "A container for debugging commands.",
        server::debug,
        acl = &["@dangerous"]
    ),
    resp!("slowlog", -2, Flags::NONE, (0, 0, 0), "server", "A container for slow log commands.", server::slowlog),
    resp!(
        "latency",
        -2,
        Flags::NONE,
        (0, 0, 0),
        "server",
        "A container for latency diagnostics commands.",
        server::latency
    ),
    resp!(
        "memory",
        -2,
        Flags::NONE,
        (0, 0, 0),
        "server",
        "A container for memory diagnostics commands.",
        server::memory
    ),
    resp!(
        "qcreate",
        -2,
        W,
        (1, 1, 1),
        "queue",
        "Creates a queue: QCREATE name [MAXDEPTH n] [ACKDEADLINE ms] [MAXRETRIES n] [DLQ name] [MAXBYTES n] [PREFETCH n].",
        queue::qcreate
    ),
    resp!("qdelete", 2, WD, (1, 1, 1), "queue", "Deletes a queue and its messages.", queue::qdelete),
    resp!("qlist", 1, RF, (0, 0, 0), "queue", "Lists the queues.", queue::qlist),
    resp!(
        "qpublish",
        -3,
        WF,
        (1, 1, 1),
        "queue",
        "Publishes a message: QPUBLISH queue payload [PRIORITY p] [DELAY ms] [TTL ms] [HEADERS k v ...].",
        queue::qpublish
    ),
    resp!(
        "qconsume",
        -3,
        WD,
        (1, 1, 1),
        "queue",
        "Takes messages: QCONSUME queue consumer [COUNT n] [BLOCK ms].",
        queue::qconsume
    ),
    resp!("qack", -3, WD, (1, 1, 1), "queue", "Acknowledges messages: QACK queue id [id ...].", queue::qack),
    resp!("qnack", -3, WD, (1, 1, 1), "queue", "Rejects a message: QNACK queue id [REQUEUE].", queue::qnack),
    resp!("qstats", 2, RF, (1, 1, 1), "queue", "Returns a queue's statistics.", queue::qstats),
    resp!("qpurge", 2, WD, (1, 1, 1), "queue", "Removes every message of a queue.", queue::qpurge),
    resp!("qdlq", -2, RF, (1, 1, 1), "queue", "Lists a queue's dead letters: QDLQ queue [COUNT n].", queue::qdlq),
    resp!(
        "qredrive",
        -2,
        WD,
        (1, 1, 1),
        "queue",
        "Moves dead letters back to their queue: QREDRIVE queue [COUNT n].",
        queue::qredrive
    ),
    resp!(
        "qdlqpurge",
        2,
        WD,
        (1, 1, 1),
        "queue",
        "Removes every dead letter of a queue: QDLQPURGE queue.",
        queue::qdlqpurge
    ),
    resp!("publish", 3, PUBF, (0, 0, 0), "pubsub", "Posts a message to a channel.", pubsub::publish),
    resp!("subscribe", -2, PUB, (0, 0, 0), "pubsub", "Listens for messages published to channels.", pubsub::subscribe),
    resp!(
        "unsubscribe",
        -1,
        PUB,
        (0, 0, 0),
        "pubsub",
        "Stops listening to messages posted to channels.",
        pubsub::unsubscribe
    ),
    resp!(
        "psubscribe",
        -2,
        PUB,
        (0, 0, 0),
        "pubsub",
        "Listens for messages published to channels that match patterns.",
        pubsub::psubscribe
    ),
    resp!(
        "punsubscribe",
        -1,
        PUB,
        (0, 0, 0),
        "pubsub",
        "Stops listening to messages published to channels that match patterns.",
        pubsub::punsubscribe
    ),
    resp!("pubsub", -2, PUB, (0, 0, 0), "pubsub", "A container for Pub/Sub commands.", pubsub::pubsub),
    resp!("reset", 1, TIME, (0, 0, 0), "connection", "Resets the connection.", server::reset),
    // ---- subcommands (parsed by their container) ----
    sub!("xgroup|create", -5, W, (2, 2, 1), "stream", "Creates a consumer group."),
    sub!("xgroup|setid", -5, WO, (2, 2, 1), "stream", "Sets the last-delivered ID of a consumer group."),
    sub!("xgroup|destroy", 4, WO, (2, 2, 1), "stream", "Destroys a consumer group."),
    sub!("xgroup|createconsumer", 5, W, (2, 2, 1), "stream", "Creates a consumer in a consumer group."),
    sub!("xgroup|delconsumer", 5, WO, (2, 2, 1), "stream", "Deletes a consumer from a consumer group."),
    sub!("xinfo|stream", -3, R, (2, 2, 1), "stream", "Returns information about a stream."),
    sub!("xinfo|groups", 3, R, (2, 2, 1), "stream", "Returns a list of the consumer groups of a stream."),
    sub!("xinfo|consumers", 4, R, (2, 2, 1), "stream", "Returns a list of the consumers in a consumer group."),
    sub!("script|load", 3, SCRIPT, (0, 0, 0), "scripting", "Loads a server-side Lua script to the script cache."),
    sub!(
        "script|exists",
        -3,
        SCRIPT,
        (0, 0, 0),
        "scripting",
        "Determines whether server-side Lua scripts exist in the script cache."
    ),
    sub!(
        "script|flush",
        -2,
        SCRIPT,
        (0, 0, 0),
        "scripting",
        "Removes all server-side Lua scripts from the script cache."
    ),
    sub!(
        "script|kill",
        2,
        SCRIPT.with(Flags::ALLOW_BUSY),
        (0, 0, 0),
        "scripting",
        "Terminates a server-side Lua script during execution."
    ),
    sub!("function|load", -3, SCRIPT.with(W), (0, 0, 0), "scripting", "Creates a library."),
    sub!("function|delete", 3, SCRIPT.with(WO), (0, 0, 0), "scripting", "Deletes a library and its functions."),
    sub!("function|flush", -2, SCRIPT.with(WO), (0, 0, 0), "scripting", "Deletes all libraries and functions."),
    sub!("function|list", -2, SCRIPT, (0, 0, 0), "scripting", "Returns information about all libraries."),
    sub!(
        "function|stats",
        2,
        SCRIPT.with(Flags::ALLOW_BUSY),
        (0, 0, 0),
        "scripting",
        "Returns information about a function during execution."
    ),
    sub!(
        "function|kill",
        2,
        SCRIPT.with(Flags::ALLOW_BUSY),
        (0, 0, 0),
        "scripting",
        "Terminates a function during execution."
    ),
    sub!("function|dump", 2, SCRIPT, (0, 0, 0), "scripting", "Dumps all libraries into a serialized binary payload."),
    sub!("function|restore", -3, SCRIPT.with(W), (0, 0, 0), "scripting", "Restores all libraries from a payload."),
    sub!("object|encoding", 3, R, (2, 2, 1), "generic", "Returns the internal encoding of a value."),
    sub!("object|idletime", 3, R, (2, 2, 1), "generic", "Returns the time since the last access to a key."),
    sub!("object|freq", 3, R, (2, 2, 1), "generic", "Returns the logarithmic access frequency counter of a key."),
    sub!("object|refcount", 3, R, (2, 2, 1), "generic", "Returns the reference count of a value."),
    sub!("pubsub|channels", -2, PUB, (0, 0, 0), "pubsub", "Returns the active channels."),
    sub!("pubsub|numsub", -2, PUB, (0, 0, 0), "pubsub", "Returns a count of subscribers to channels."),
    sub!("pubsub|numpat", 2, PUB, (0, 0, 0), "pubsub", "Returns a count of unique pattern subscriptions."),
    sub!("config|get", -3, ADMIN, (0, 0, 0), "server", "Returns the effective values of configuration parameters."),
    sub!("config|set", -4, ADMIN, (0, 0, 0), "server", "Sets configuration parameters in-flight."),
    sub!("config|resetstat", 2, ADMIN, (0, 0, 0), "server", "Resets the server's statistics."),
    sub!("config|rewrite", 2, ADMIN, (0, 0, 0), "server", "Persists the effective configuration to file."),
    sub!("client|pause", -3, ADMIN.with(Flags::NOSCRIPT), (0, 0, 0), "connection", "Suspends commands processing."),
    sub!(
        "client|unpause",
        2,
        ADMIN.with(Flags::NOSCRIPT),
        (0, 0, 0),
        "connection",
        "Resumes processing commands from paused clients."
    ),
    sub!(
        "client|tracking",
        -3,
        CLIENTSUB,
        (0, 0, 0),
        "connection",
        "Controls server-assisted client-side caching for the connection."
    ),
    sub!(
        "client|caching",
        3,
        CLIENTSUB,
        (0, 0, 0),
        "connection",
        "Instructs the server whether to track the keys in the next request."
    ),
    sub!(
        "client|getredir",
        2,
        CLIENTSUB,
        (0, 0, 0),
        "connection",
        "Returns the client ID to which the connection's tracking notifications are redirected."
    ),
    sub!(
        "client|trackinginfo",
        2,
        CLIENTSUB,
        (0, 0, 0),
        "connection",
        "Returns information about server-assisted client-side caching for the connection."
    ),
    sub!("acl|cat", -2, ACLINFO, (0, 0, 0), "server", "Lists the ACL categories, or the commands inside a category."),
    sub!("acl|deluser", -3, ACLADMIN, (0, 0, 0), "server", "Deletes ACL users, and terminates their connections."),
    sub!(
        "acl|dryrun",
        -4,
        ACLADMIN,
        (0, 0, 0),
        "server",
        "Simulates the execution of a command by a user, without executing the command."
    ),
    sub!(
        "acl|genpass",
        -2,
        ACLINFO,
        (0, 0, 0),
        "server",
        "Generates a pseudorandom, secure password that can be used to identify ACL users."
    ),
    sub!("acl|getuser", 3, ACLADMIN, (0, 0, 0), "server", "Lists the ACL rules of a user."),
    sub!("acl|help", 2, INFO, (0, 0, 0), "server", "Returns helpful text about the different subcommands."),
    sub!("acl|list", 2, ACLADMIN, (0, 0, 0), "server", "Dumps the effective rules in ACL file format."),
    sub!("acl|load", 2, ACLADMIN, (0, 0, 0), "server", "Reloads the rules from the configured ACL file."),
    sub!("acl|log", -2, ACLADMIN, (0, 0, 0), "server", "Lists recent security events generated due to ACL rejections."),
    sub!("acl|save", 2, ACLADMIN, (0, 0, 0), "server", "Saves the effective ACL rules in the configured ACL file."),
    sub!("acl|setuser", -3, ACLADMIN, (0, 0, 0), "server", "Creates and modifies an ACL user and its rules."),
    sub!("acl|users", 2, ACLADMIN, (0, 0, 0), "server", "Lists all ACL users."),
    sub!(
        "acl|whoami",
        2,
        ACLINFO,
        (0, 0, 0),
        "server",
        "Returns the authenticated username of the current connection."
    ),
    sub!("client|kill", -3, ADMIN.with(Flags::NOSCRIPT), (0, 0, 0), "connection", "Terminates open connections."),
    sub!("client|reply", 3, CLIENTSUB, (0, 0, 0), "connection", "Instructs the server whether to reply to commands."),
    sub!("command|getkeys", -3, INFO, (0, 0, 0), "server", "Extracts the key names from an arbitrary command."),
    sub!(
        "command|getkeysandflags",
        -3,
        INFO,
        (0, 0, 0),
        "server",
        "Extracts the key names and access flags for an arbitrary command."
    ),
    sub!("command|list", -2, INFO, (0, 0, 0), "server", "Returns a list of command names."),
    sub!("slowlog|get", -2, ADMIN, (0, 0, 0), "server", "Returns the slow log's entries."),
    sub!("slowlog|len", 2, ADMIN, (0, 0, 0), "server", "Returns the number of entries in the slow log."),
    sub!("slowlog|reset", 2, ADMIN, (0, 0, 0), "server", "Clears all entries from the slow log."),
    sub!("slowlog|help", 2, INFO, (0, 0, 0), "server", "Show helpful text about the different subcommands"),
    sub!("latency|latest", 2, ACLADMIN, (0, 0, 0), "server", "Returns the latest latency samples for all events."),
    sub!("latency|history", 3, ACLADMIN, (0, 0, 0), "server", "Returns timestamp-latency samples for an event."),
    sub!("latency|reset", -2, ACLADMIN, (0, 0, 0), "server", "Resets the latency data for one or more events."),
    sub!("latency|doctor", 2, ACLADMIN, (0, 0, 0), "server", "Returns a human-readable latency analysis report."),
    sub!("latency|graph", 3, ACLADMIN, (0, 0, 0), "server", "Returns a latency graph for an event."),
    sub!(
        "latency|histogram",
        -2,
        ACLADMIN,
        (0, 0, 0),
        "server",
        "Returns the cumulative distribution of latencies of a subset or all commands."
    ),
    sub!("latency|help", 2, INFO, (0, 0, 0), "server", "Returns helpful text about the different subcommands."),
    sub!("memory|usage", -3, R, (2, 2, 1), "server", "Estimates the memory usage of a key."),
    sub!("memory|stats", 2, Flags::NONE, (0, 0, 0), "server", "Returns details about memory usage."),
    sub!("memory|doctor", 2, Flags::NONE, (0, 0, 0), "server", "Outputs a memory problems report."),
    sub!("memory|malloc-stats", 2, Flags::NONE, (0, 0, 0), "server", "Returns the allocator statistics."),
    sub!("memory|purge", 2, Flags::NONE, (0, 0, 0), "server", "Asks the allocator to release memory."),
    sub!("memory|help", 2, Flags::NONE, (0, 0, 0), "server", "Returns helpful text about the different subcommands."),
    sub!("client|setname", 3, CLIENTSUB, (0, 0, 0), "connection", "Sets the connection name."),
    sub!("client|getname", 2, CLIENTSUB, (0, 0, 0), "connection", "Returns the name of the connection."),
    sub!("client|id", 2, CLIENTSUB, (0, 0, 0), "connection", "Returns the unique client ID of the connection."),
    sub!("client|list", -2, ACLADMIN, (0, 0, 0), "connection", "Lists open connections."),
    sub!("client|info", 2, CLIENTSUB, (0, 0, 0), "connection", "Returns information about the connection."),
    sub!("client|setinfo", 4, CONN, (0, 0, 0), "connection", "Sets information specific to the client or connection."),
    sub!("client|no-evict", 3, ACLADMIN, (0, 0, 0), "connection", "Sets the client eviction mode of the connection."),
    sub!("command|count", 2, INFO, (0, 0, 0), "server", "Returns a count of commands."),
    sub!("command|docs", -2, INFO, (0, 0, 0), "server", "Returns documentary information about commands."),
    sub!("command|info", -2, INFO, (0, 0, 0), "server", "Returns information about commands."),
    // ---- Synap's stream API (HTTP) ----
    sub!("stream.create", 0, W, (0, 0, 0), "stream", "Creates a partitioned stream."),
    sub!("stream.delete", 0, WO, (0, 0, 0), "stream", "Deletes a stream."),
    sub!("stream.list", 0, R, (0, 0, 0), "stream", "Lists the streams."),
    sub!("stream.stats", 0, R, (0, 0, 0), "stream", "Returns a stream's partitions, groups and counters."),
    sub!("stream.publish", 0, WF, (0, 0, 0), "stream", "Appends an event to a partition of a stream."),
    sub!("stream.consume", 0, R, (0, 0, 0), "stream", "Reads a partition from an offset."),
    sub!("stream.trim", 0, WO, (0, 0, 0), "stream", "Trims every partition to its newest events."),
    sub!("stream.group.create", 0, W, (0, 0, 0), "stream", "Creates a consumer group over every partition."),
    sub!("stream.group.delete", 0, WO, (0, 0, 0), "stream", "Deletes a consumer group."),
    sub!("stream.group.read", 0, WD, (0, 0, 0), "stream", "Delivers events to a consumer of a group."),
    sub!("stream.group.ack", 0, WD, (0, 0, 0), "stream", "Acknowledges events of a group."),
    sub!("stream.group.claim", 0, WD, (0, 0, 0), "stream", "Moves idle pending events to a consumer."),
];

/// A RESP command's row as the name index holds it: its position in the table and whether the table has
/// subcommand rows under it are decided once.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub spec: &'static Spec,
    /// The position in [`COMMANDS`] (CLIENT LIST's `cmd=`).
    pub index: usize,
    container: bool,
}

impl Row {
    /// The row a command line runs as: a container's subcommand row when the table has one (`client|list`),
    /// else this row; `None` for a container given a subcommand it does not have.
    pub fn effective(&self, args: &[bytes::Bytes]) -> Option<usize> {
        if !self.container {
            return Some(self.index);
        }
        match args.get(1) {
            None => Some(self.index),
            Some(sub) => {
                let mut buf = [0u8; 64];
                match BY_NAME.get(lowered(&mut buf, self.spec.name.as_bytes(), Some(sub))?) {
                    Some(r) => Some(r.index),
                    // Containers that take arguments of their own (COMMAND's are subcommands; SENTINEL
                    // and CLUSTER have rows per subcommand only for some) count as themselves.
                    None => Some(self.index),
                }
            }
        }
    }

    /// Parses a command line (`args[0]` is the name) of this row; arity is checked before the parser runs.
    pub fn parse(&self, args: &[bytes::Bytes]) -> Result<Command> {
        let spec = self.spec;
        if !spec.arity_ok(args.len()) {
            return Err(CommandError::WrongArity(spec.name));
        }
        // A container's subcommand with a row of its own has its own arity (`object|encoding` takes a key).
        if self.container
            && let Some(sub) = args.get(1).and_then(|s| subcommand(spec, s))
            && !sub.arity_ok(args.len())
        {
            return Err(CommandError::WrongArity(sub.name));
        }
        let parse = spec.parse.expect("rows found by name have a parser");
        let mut a = Args::new(spec.name, &args[1..]);
        parse(&mut a)
    }
}

/// Every row by its exact name (foldhash: this lookup runs for every command).
static BY_NAME: LazyLock<hashbrown::HashMap<&'static [u8], Row, foldhash::fast::FixedState>> = LazyLock::new(|| {
    let container = |name: &str| COMMANDS.iter().any(|c| c.name.strip_prefix(name).is_some_and(|r| r.starts_with('|')));
    COMMANDS
        .iter()
        .enumerate()
        .map(|(index, s)| (s.name.as_bytes(), Row { spec: s, index, container: container(s.name) }))
        .collect()
});

/// `name`, lowercased, then `|sub` when given, in `buf`: `None` when it does not fit.
fn lowered<'b>(buf: &'b mut [u8; 64], name: &[u8], sub: Option<&[u8]>) -> Option<&'b [u8]> {
    let len = name.len() + sub.map_or(0, |s| s.len() + 1);
    if len > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    if let Some(sub) = sub {
        buf[name.len()] = b'|';
        for (d, s) in buf[name.len() + 1..len].iter_mut().zip(sub) {
            *d = s.to_ascii_lowercase();
        }
    }
    Some(&buf[..len])
}

/// A RESP command's row by name, case-insensitively, without allocating: only rows with a parser.
pub fn row(name: &[u8]) -> Option<Row> {
    let mut buf = [0u8; 64];
    BY_NAME.get(lowered(&mut buf, name, None)?).copied().filter(|r| r.spec.parse.is_some())
}

/// A RESP command by name, case-insensitively, without allocating: only rows with a parser.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    row(name).map(|r| r.spec)
}

/// A row by its exact name (any row). Every name a typed command gives has one (a test checks).
pub fn spec(name: &str) -> &'static Spec {
    BY_NAME.get(name.as_bytes()).map_or(&UNKNOWN, |r| r.spec)
}

/// The position in [`COMMANDS`] of a row, by its exact name.
pub fn index(name: &str) -> Option<usize> {
    BY_NAME.get(name.as_bytes()).map(|r| r.index)
}

/// What [`spec`] answers for a name with no row: treated as a write that may grow memory, the safe side.
static UNKNOWN: Spec = sub!("unknown", 0, W, (0, 0, 0), "server", "A command missing from the table.");

/// The RESP commands (rows with a parser), as COMMAND lists them.
pub fn resp_commands() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().filter(|s| s.parse.is_some())
}

/// The subcommand rows of a container (`xgroup` -> `xgroup|create`, ...).
pub fn subcommands(container: &str) -> impl Iterator<Item = &'static Spec> + '_ {
    COMMANDS.iter().filter(move |s| s.name.strip_prefix(container).is_some_and(|r| r.starts_with('|')))
}

/// The row of `container|sub`, if the table has one.
fn subcommand(container: &Spec, sub: &[u8]) -> Option<&'static Spec> {
    let mut buf = [0u8; 64];
    BY_NAME.get(lowered(&mut buf, container.name.as_bytes(), Some(sub))?).map(|r| r.spec)
}

/// Parses a RESP command line (`args[0]` is the name): the row and its typed command. `Ok(None)` for an
/// unknown command.
pub fn parse(args: &[bytes::Bytes]) -> Result<Option<(&'static Spec, Command)>> {
    let Some(row) = row(&args[0]) else { return Ok(None) };
    Ok(Some((row.spec, row.parse(args)?)))
}

/// Whether a parse error is one Redis gives when a command is queued in MULTI (and that then aborts
/// EXEC): a wrong number of arguments or an unknown subcommand. Other argument errors are found when
/// EXEC runs the command.
pub fn refused_at_queue_time(e: &CommandError) -> bool {
    match e {
        CommandError::WrongArity(_) => true,
        CommandError::Invalid(m) => m.starts_with("unknown subcommand"),
        _ => false,
    }
}

/// COMMAND GETKEYS: the keys of a command line (and whether the command writes), from the table's key
/// positions, or from the arguments for the commands whose keys move (numkeys, STORE, STREAMS).
pub fn command_keys(args: &[bytes::Bytes]) -> Result<Vec<(bytes::Bytes, bool)>, String> {
    let Some(row) = args.first().and_then(|a| row(a)) else {
        return Err("ERR Invalid command specified".into());
    };
    let spec = row.spec;
    if !spec.arity_ok(args.len()) {
        return Err("ERR Invalid number of arguments specified for command".into());
    }
    let write = spec.is_write();
    let numkeys = |at: usize| -> Result<Vec<(bytes::Bytes, bool)>, String> {
        let n = args.get(at).and_then(|a| super::args::parse_i64(a)).filter(|n| *n >= 0);
        let n = n.ok_or("ERR Invalid arguments specified for command")? as usize;
        let keys = args.get(at + 1..at + 1 + n).ok_or("ERR Invalid arguments specified for command")?;
        Ok(keys.iter().map(|k| (k.clone(), write)).collect())
    };
    let mut keys = match spec.name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop" | "bzmpop" => numkeys(2)?,
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => numkeys(1)?,
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut k = vec![(args[1].clone(), true)];
            k.extend(numkeys(2)?.into_iter().map(|(k, _)| (k, false)));
            k
        }
        "xread" | "xreadgroup" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"streams"))
                .ok_or("ERR Invalid arguments specified for command")?;
            let rest = &args[at + 1..];
            rest[..rest.len() / 2].iter().map(|k| (k.clone(), write)).collect()
        }
        _ if spec.keys.first > 0 => {
            let (first, step) = (spec.keys.first as usize, spec.keys.step.max(1) as usize);
            let last = match spec.keys.last {
                l if l < 0 => (args.len() as i32 + l) as usize,
                l => l as usize,
            };
            (first..=last.min(args.len() - 1)).step_by(step).map(|i| (args[i].clone(), write)).collect()
        }
        _ => Vec::new(),
    };
    // STORE destinations: SORT and GEORADIUS name them among their options.
    if matches!(spec.name, "sort" | "georadius" | "georadiusbymember") {
        for w in args.windows(2) {
            if w[0].eq_ignore_ascii_case(b"store") || w[0].eq_ignore_ascii_case(b"storedist") {
                keys.push((w[1].clone(), true));
            }
        }
    }
    if keys.is_empty() {
        return Err("ERR The command has no key arguments".into());
    }
    Ok(keys)
}
