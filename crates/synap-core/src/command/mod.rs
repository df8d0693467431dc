//! The one vocabulary every front end speaks: typed [`Command`]s in, [`Reply`]s out, and the table that
//! describes every command once.
//!
//! - [`table`]  name, arity, flags, keys, group, ACL categories and parser of each command
//! - [`args`]   the argument cursor parsers read from, and Redis's number rules
//! - `kv`, `hash`, `list`, `set`, `zset`, `stream`, `queue`, `pubsub`, `server`: each service's typed
//!   commands and their parse functions
//! - [`reply`]  typed replies
//!
//! RESP parses a command line with [`table::parse`]; HTTP builds the same typed commands from JSON. The
//! engine runs them (`Command::Server` excepted: a front end answers those from its own state).

pub mod args;
pub mod geo;
pub mod hash;
pub mod kv;
pub mod list;
pub mod pubsub;
pub mod queue;
pub mod reply;
pub mod script;
pub mod server;
pub mod set;
pub mod stream;
pub mod table;
pub mod zset;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use hash::{CollScan, HashCmd};
pub use kv::{
    BitFieldOp, BitOp, ExpireCond, GetExpiry, KeysCmd, KvCmd, ObjectInfo, Overflow, PfDebug, ScanArgs, SetArgs,
    SetCond, SortArgs, Ttl,
};
pub use list::ListCmd;
pub use pubsub::{PubSubCmd, SubKind};
pub use queue::{ConsumeArgs, PublishArgs, QueueCmd, QueueOptions};
pub use reply::{Expiry, Reply, TimeUnit};
pub use script::{RestorePolicy, ScriptCmd, ScriptRef};
pub use server::{
    ClientOp, CommandOp, ConfigOp, DebugOp, KillFilter, LatencyOp, MemoryOp, ReplyMode, ServerCmd, SlowlogOp,
    TrackingArgs,
};
pub use set::{SetCmd, SetOp};
pub use stream::StreamCmd;
pub use table::{Flags, Spec};
pub use zset::{ZRange, ZRangeBy, ZSetCmd};

/// Every command, by the service that runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Strings.
    Kv(KvCmd),
    /// Keys of any type, and the keyspace as a whole.
    Keys(KeysCmd),
    Hash(HashCmd),
    List(ListCmd),
    Set(SetCmd),
    ZSet(ZSetCmd),
    Stream(StreamCmd),
    Queue(QueueCmd),
    PubSub(PubSubCmd),
    /// Lua scripts (EVAL) and the script cache.
    Script(ScriptCmd),
    /// Answered by the front end from connection and server state.
    Server(ServerCmd),
}

/// What a blocking command waits for before it tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOn {
    /// Elements pushed to one of these keys (BLPOP, BZPOPMIN, BLMOVE, ...), first come first served.
    Keys(Vec<Bytes>),
    /// Events appended to one of these streams (XREAD, XREADGROUP ... BLOCK).
    Streams(Vec<Bytes>),
    /// Messages published to this queue (QCONSUME ... BLOCK).
    Queue(Bytes),
}

/// A blocking command's wait: what for, and how long (`None`: until there is something, or the server
/// stops; a queue consume is capped by `queue.max_wait_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub on: WaitOn,
    pub timeout_ms: Option<u64>,
}

impl Command {
    /// The name of the command's row in the [`table`].
    pub fn name(&self) -> &'static str {
        match self {
            Command::Kv(c) => c.name(),
            Command::Keys(c) => c.name(),
            Command::Hash(c) => c.name(),
            Command::List(c) => c.name(),
            Command::Set(c) => c.name(),
            Command::ZSet(c) => c.name(),
            Command::Stream(c) => c.name(),
            Command::Queue(c) => c.name(),
            Command::PubSub(c) => c.name(),
            Command::Script(c) => c.name(),
            Command::Server(c) => c.name(),
        }
    }

    /// The command's row in the [`table`].
    pub fn spec(&self) -> &'static Spec {
        table::spec(self.name())
    }

    /// Whether the command may change state (refused while the log is failed).
    pub fn is_write(&self) -> bool {
        self.spec().is_write()
    }

    /// Whether the command may grow memory (refused, or evicts keys, at the memory limit, which counts
    /// queues and streams as well as keys). Deletions and expiry changes stay allowed at the limit.
    pub fn may_grow(&self) -> bool {
        self.spec().may_grow()
    }

    /// The wait of a command that blocks: `None` for every other command, and for a blocking command run
    /// without a wait (XREAD without BLOCK).
    pub fn block(&self) -> Option<Block> {
        let (on, timeout_ms) = match self {
            Command::List(ListCmd::BPop { keys, timeout_ms, .. }) => (WaitOn::Keys(keys.clone()), *timeout_ms),
            Command::List(ListCmd::BMove { src, timeout_ms, .. }) => (WaitOn::Keys(vec![src.clone()]), *timeout_ms),
            Command::ZSet(ZSetCmd::BPop { keys, timeout_ms, .. }) => (WaitOn::Keys(keys.clone()), *timeout_ms),
            Command::List(ListCmd::MPop { keys, block: Some(t), .. }) => (WaitOn::Keys(keys.clone()), *t),
            Command::ZSet(ZSetCmd::MPop { keys, block: Some(t), .. }) => (WaitOn::Keys(keys.clone()), *t),
            Command::Stream(StreamCmd::XRead { streams, block: Some(ms), .. }) => {
                (WaitOn::Streams(streams.iter().map(|(k, _)| k.clone()).collect()), (*ms > 0).then_some(*ms))
            }
            Command::Stream(StreamCmd::XReadGroup { streams, block: Some(ms), .. }) => {
                (WaitOn::Streams(streams.iter().map(|(k, _)| k.clone()).collect()), (*ms > 0).then_some(*ms))
            }
            Command::Queue(QueueCmd::Consume { args, wait_ms: Some(ms) }) => {
                (WaitOn::Queue(args.queue.clone()), (*ms > 0).then_some(*ms))
            }
            _ => return None,
        };
        Some(Block { on, timeout_ms })
    }

    /// A blocking pop narrowed to `keys` (the keys on which its client is first in line).
    pub fn only_keys(&self, keys: Vec<Bytes>) -> Command {
        match self {
            Command::List(ListCmd::BPop { left, timeout_ms, .. }) => {
                Command::List(ListCmd::BPop { keys, left: *left, timeout_ms: *timeout_ms })
            }
            Command::ZSet(ZSetCmd::BPop { max, timeout_ms, .. }) => {
                Command::ZSet(ZSetCmd::BPop { keys, max: *max, timeout_ms: *timeout_ms })
            }
            Command::List(ListCmd::MPop { left, count, block, .. }) => {
                Command::List(ListCmd::MPop { keys, left: *left, count: *count, block: *block })
            }
            Command::ZSet(ZSetCmd::MPop { max, count, block, .. }) => {
                Command::ZSet(ZSetCmd::MPop { keys, max: *max, count: *count, block: *block })
            }
            other => other.clone(),
        }
    }
}

impl From<KvCmd> for Command {
    fn from(c: KvCmd) -> Command {
        Command::Kv(c)
    }
}

impl From<KeysCmd> for Command {
    fn from(c: KeysCmd) -> Command {
        Command::Keys(c)
    }
}

impl From<HashCmd> for Command {
    fn from(c: HashCmd) -> Command {
        Command::Hash(c)
    }
}

impl From<ListCmd> for Command {
    fn from(c: ListCmd) -> Command {
        Command::List(c)
    }
}

impl From<SetCmd> for Command {
    fn from(c: SetCmd) -> Command {
        Command::Set(c)
    }
}

impl From<ZSetCmd> for Command {
    fn from(c: ZSetCmd) -> Command {
        Command::ZSet(c)
    }
}

impl From<StreamCmd> for Command {
    fn from(c: StreamCmd) -> Command {
        Command::Stream(c)
    }
}

impl From<QueueCmd> for Command {
    fn from(c: QueueCmd) -> Command {
        Command::Queue(c)
    }
}

impl From<PubSubCmd> for Command {
    fn from(c: PubSubCmd) -> Command {
        Command::PubSub(c)
    }
}
