//! The Synap engine: one command vocabulary, one write path, the data services. No sockets, no files.
//!
//! Layout (the request path, top to bottom):
//! - [`command`]  `Command` in, `Reply` out: what every front end parses into and renders from
//! - [`error`]    `CommandError`: the one error catalog, with stable codes and HTTP classes
//! - [`engine`]   `Engine::execute`: checks, dispatch to a service, durability ticket (`ExecCtx::lsn`)
//! - [`mutation`] `Mutation` records, their encoding, and the `MutationLog` the WAL implements
//! - [`kv`]       the sharded keyspace: TTLs, active expiry, eviction, SCAN
//! - [`queue`]    acknowledged work queues: priorities, deadlines, retries, dead letters
//! - [`stream`]   event streams: partitioned logs, offsets, consumer groups, retention
//! - [`pubsub`]   fire-and-forget pub/sub: exact channels, topic wildcards, Redis globs, bounded sinks
//! - [`glob`]     Redis glob patterns
//! - [`clock`]    wall-clock time behind a trait

pub mod clock;
pub mod command;
pub mod engine;
pub mod error;
pub mod glob;
pub mod kv;
pub mod mutation;
pub mod notify;
pub mod pubsub;
pub mod queue;
pub mod stream;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, ExpireCond, Reply, ScanArgs, SetArgs, SetCond, TimeUnit, Ttl};
pub use engine::{Engine, EngineConfig, EngineCursor, ExecCtx};
pub use error::{CommandError, ErrorKind, Result};
pub use kv::{Blockers, EvictionPolicy, KvConfig, KvStats, SnapshotCursor, WatchRegistry};
pub use mutation::{DecodeError, Mutation, MutationLog, StreamOp, decode_batch, encode_batch, encoded_len};
