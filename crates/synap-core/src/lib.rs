//! The Synap engine: one command vocabulary, one write path, the data services. No sockets, no files.
//!
//! Layout (the request path, top to bottom):
//! - [`command`]  typed commands in, typed replies out, and the command table every front end reads
//! - [`error`]    `CommandError`: the one error catalog, with stable codes and HTTP classes
//! - [`engine`]   `Engine::execute`: checks, dispatch to a service, durability ticket (`ExecCtx::lsn`)
//! - [`mutation`] `Mutation` records, their encoding, and the `MutationLog` the WAL implements
//! - [`kv`]       the sharded keyspace (every key, streams' included): TTLs, expiry, eviction, SCAN
//! - [`queue`]    acknowledged work queues: priorities, deadlines, retries, dead letters
//! - [`stream`]   event streams: partitioned logs, offsets, consumer groups, retention
//! - [`pubsub`]   fire-and-forget pub/sub: exact channels, topic wildcards, Redis globs, bounded sinks
//! - [`multi`]    WATCH; [`blocking`] clients blocked on keys; [`notify`] keyspace notifications
//! - [`glob`]     Redis glob patterns; [`clock`] wall-clock time behind a trait

pub mod acl;
pub mod blocking;
mod cjson;
pub mod clock;
mod cmsgpack;
pub mod command;
pub mod decimal;
pub mod engine;
pub mod error;
pub mod glob;
pub mod histogram;
pub mod kv;
mod lstruct;
pub mod multi;
pub mod mutation;
pub mod notify;
mod pqsort;
pub mod pubsub;
pub mod queue;
pub mod script;
pub mod stream;
pub mod tracking;

pub use blocking::Blockers;
pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, ExpireCond, Reply, ScanArgs, SetArgs, SetCond, TimeUnit, Ttl};
pub use engine::{Engine, EngineConfig, EngineCursor, ExecCtx};
pub use error::{CommandError, ErrorKind, Result};
pub use kv::{EvictionPolicy, KvConfig, KvStats, SnapshotCursor};
pub use multi::WatchRegistry;
pub use mutation::{DecodeError, Mutation, MutationLog, StreamOp, decode_batch, encode_batch, encoded_len};
