//! The engine: owns the data services and executes [`Command`]s.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::command::{Command, Reply};
use crate::error::Result;
use crate::kv::{Keyspace, KvConfig};
use crate::mutation::{Mutation, MutationLog};

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub kv: KvConfig,
}

/// Per-call context a front end keeps for its client.
#[derive(Debug, Default, Clone)]
pub struct ExecCtx {
    /// Log sequence number of the last mutation batch this client caused. A front end waits until the log
    /// has made it durable (per the fsync policy) before it acknowledges the reply.
    pub lsn: u64,
    /// "Now" in Unix ms for the commands of one batch (0: read the clock per command). A front end that
    /// executes a pipeline sets it once per batch, as Redis caches the time per event-loop pass.
    pub now_ms: u64,
}

/// The engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    kv: Keyspace,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// An engine that logs every mutation batch to `log` (or to nothing).
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>, log: Option<Arc<dyn MutationLog>>) -> Engine {
        Engine { kv: Keyspace::new(config.kv, clock.clone(), log), clock }
    }

    /// An in-memory engine on the system clock (tests, benchmarks).
    pub fn in_memory(config: EngineConfig) -> Engine {
        Engine::new(config, Arc::new(SystemClock), None)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn kv(&self) -> &Keyspace {
        &self.kv
    }

    /// Executes one command. Write commands are refused while the log is failed, and commands that may grow
    /// memory first make room under the memory limit (or fail with OOM).
    pub fn execute(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply> {
        if cmd.is_write() {
            self.kv.check_writable()?;
        }
        if cmd.may_grow() {
            let lsn = self.kv.ensure_memory()?;
            ctx.lsn = ctx.lsn.max(lsn);
        }
        let mut lsn = 0;
        let kv = &self.kv;
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        let reply = match cmd {
            Command::Get { key } => Ok(kv.get(&key, now)),
            Command::Set(args) => kv.set(&args, &mut lsn, now),
            Command::GetDel { key } => Ok(kv.getdel(&key, &mut lsn, now)),
            Command::Del { keys } => Ok(kv.del(&keys, &mut lsn, now)),
            Command::Exists { keys } => Ok(kv.exists(&keys, now)),
            Command::MGet { keys } => Ok(kv.mget(&keys, now)),
            Command::MSet { pairs, nx } => kv.mset(&pairs, nx, &mut lsn, now),
            Command::IncrBy { key, by } => kv.incr_by(&key, by, &mut lsn, now),
            Command::IncrByFloat { key, by } => kv.incr_by_float(&key, by, &mut lsn, now),
            Command::Append { key, value } => kv.append(&key, &value, &mut lsn, now),
            Command::Strlen { key } => Ok(kv.strlen(&key, now)),
            Command::Expire { key, ttl, cond, name } => kv.expire(&key, ttl, cond, name, &mut lsn, now),
            Command::Ttl { key, unit } => Ok(kv.ttl(&key, unit, now)),
            Command::ExpireTime { key, unit } => Ok(kv.expire_time(&key, unit, now)),
            Command::Persist { key } => Ok(kv.persist(&key, &mut lsn, now)),
            Command::Type { key } => Ok(kv.key_type(&key, now)),
            Command::Rename { from, to, nx } => kv.rename(&from, &to, nx, &mut lsn, now),
            Command::Keys { pattern } => {
                Ok(Reply::Array(kv.keys(&pattern, now).into_iter().map(Reply::Bulk).collect()))
            }
            Command::Scan(args) => {
                let (cursor, keys) = kv.scan(&args, now);
                Ok(Reply::Array(vec![
                    Reply::bulk(cursor.to_string()),
                    Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
                ]))
            }
            Command::RandomKey => Ok(kv.random_key(now)),
            Command::DbSize => Ok(Reply::Int(kv.len() as i64)),
            Command::FlushAll => Ok(kv.flush_all(&mut lsn, now)),
        };
        ctx.lsn = ctx.lsn.max(lsn);
        reply
    }

    /// Attaches the mutation log (after recovery replayed the old one). Fails if one is attached already.
    pub fn attach_log(&self, log: Arc<dyn MutationLog>) -> std::result::Result<(), Arc<dyn MutationLog>> {
        self.kv.attach_log(log)
    }

    /// The one applier for recorded mutations (recovery, replicas): applies without logging.
    pub fn apply_batch(&self, batch: &[Mutation<'_>]) {
        self.kv.apply_batch(batch);
    }

    /// A digest of the whole state as of now (live data only).
    pub fn digest(&self) -> u64 {
        self.kv.digest(self.now_ms())
    }

    /// One background maintenance pass (active expiry) within `budget`.
    pub fn maintenance(&self, budget: Duration) -> crate::kv::ExpireReport {
        self.kv.active_expire_pass(budget)
    }
}
