//! The engine: owns the data services and executes [`Command`]s. Its dispatch is one arm per service; the
//! checks every command passes (a failed log refuses writes, the memory limit refuses growth) read the
//! command's row of the table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::blocking::Blockers;
use crate::clock::{Clock, Monotonic, SystemClock};
use crate::command::table::Spec;
use crate::command::{Command, KeysCmd, PubSubCmd, Reply, RestorePolicy, ScriptCmd, StreamCmd};
use crate::error::{CommandError, Result};
use crate::kv::{Keyspace, KvConfig, SnapshotCursor};
use crate::multi::WatchRegistry;
use crate::mutation::{LogSlot, Mutation, MutationLog, StreamOp};
use crate::notify::{Notifier, NotifyFlags};
use crate::pubsub::PubSub;
use crate::queue::{QueueCursor, QueueSettings, QueueStore};
use crate::script::Scripts;
use crate::stream::{RoomConfig, StreamBackend, StreamCursor, StreamSettings, StreamStore};

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub kv: KvConfig,
    pub queues: QueueSettings,
    pub streams: StreamSettings,
    /// Where stream partitions live.
    pub stream_storage: StreamBackend,
    /// Keyspace notifications (off by default).
    pub notify: NotifyFlags,
}

impl EngineCursor {
    /// A cursor whose key-value chunks stop growing past `chunk_bytes` (tests use small ones to exercise
    /// collections split over several chunks).
    pub fn with_chunk_bytes(chunk_bytes: usize) -> EngineCursor {
        EngineCursor {
            kv: SnapshotCursor::with_chunk_bytes(chunk_bytes),
            kv_chunk_bytes: chunk_bytes,
            ..Default::default()
        }
    }

    /// The walk of a snapshot that covers the log up to `lsn` (streams created after it are left out).
    pub fn at_lsn(lsn: u64) -> EngineCursor {
        EngineCursor { streams: StreamCursor::at_lsn(lsn), ..Default::default() }
    }
}

/// Where a snapshot walk of the whole engine stands.
#[derive(Debug, Clone, Default)]
pub struct EngineCursor {
    kv: SnapshotCursor,
    /// The database being walked, and the chunk size each database's walk starts with.
    kv_db: u32,
    kv_chunk_bytes: usize,
    /// Which keyspace each database index named when the snapshot's LSN was taken: the walk labels a
    /// keyspace by it even if a SWAPDB moves it meanwhile, since replay of the log after that LSN
    /// repeats the swap (taken at the first chunk when not given).
    kv_slots: Option<Box<[usize]>>,
    kv_done: bool,
    queues: QueueCursor,
    queues_done: bool,
    streams: StreamCursor,
    /// The last function library written, by name.
    functions_after: Option<String>,
    functions_done: bool,
    /// The users, walked by name after the function libraries.
    users_after: Option<bytes::Bytes>,
    users_done: bool,
    keys_done: bool,
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
    /// The client's database (SELECT changes it; a script's SELECT lasts until the script ends).
    pub db: u32,
    /// The client's user when its permissions are restricted: the commands a script calls are checked
    /// against it (`None`: everything allowed).
    pub user: Option<std::sync::Arc<crate::acl::User>>,
}

/// The engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    /// The databases (SELECT), each a keyspace, created when first used; `slots` maps a database index
    /// to its keyspace here (SWAPDB trades two entries). Database 0 always exists.
    dbs: Box<[OnceLock<Keyspace>]>,
    slots: Box<[AtomicUsize]>,
    /// Where the next eviction round over several databases starts.
    evict_next_db: AtomicUsize,
    /// The database the next active-expiry pass starts with (each pass goes on where its budget ran
    /// out, so that a large database 0 does not starve the others).
    expire_next_db: AtomicUsize,
    queues: QueueStore,
    streams: Arc<StreamStore>,
    pubsub: Arc<PubSub>,
    watch: Arc<WatchRegistry>,
    blockers: Arc<Blockers>,
    log: Arc<LogSlot>,
    clock: Arc<dyn Clock>,
    /// Commands run under the read side; a transaction (EXEC) takes the write side, so that no other
    /// command interleaves with it. Background passes and snapshot chunks take the read side too.
    gate: parking_lot::RwLock<()>,
    scripts: Scripts,
    /// Serializes changes to the function libraries with their log records (the log's order is theirs).
    function_admin: parking_lot::Mutex<()>,
    /// The users and their permissions.
    acl: crate::acl::Acl,
    /// ACL changes one at a time: each reads a user, changes it and logs the result.
    acl_admin: parking_lot::Mutex<()>,
    notifier: Arc<Notifier>,
    /// Shows a command a script calls, with its database (MONITOR's `[db lua]` lines; set by a front end).
    script_monitor: OnceLock<ScriptMonitor>,
}

/// See [`Engine::set_script_monitor`].
pub type ScriptMonitor = Box<dyn Fn(u32, &[bytes::Bytes]) + Send + Sync>;

fn busy() -> CommandError {
    CommandError::Raw("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.".into())
}

impl Engine {
    /// An engine that logs every mutation batch to `log` (or to nothing).
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>, log: Option<Arc<dyn MutationLog>>) -> Engine {
        let clock: Arc<dyn Clock> = Arc::new(Monotonic::new(clock));
        let slot = Arc::new(LogSlot::default());
        if let Some(log) = log {
            let _ = slot.attach(log);
        }
        let pubsub = Arc::new(PubSub::default());
        let notifier = Arc::new(Notifier::new(config.notify, pubsub.clone()));
        let watch = Arc::new(WatchRegistry::default());
        let blockers = Arc::new(Blockers::default());
        let databases = config.kv.databases.clamp(1, crate::kv::MAX_DATABASES);
        let kv =
            Keyspace::new(config.kv, clock.clone(), slot.clone(), notifier.clone(), watch.clone(), blockers.clone());
        let streams = Arc::new(StreamStore::new(
            config.streams,
            config.stream_storage.0,
            clock.clone(),
            slot.clone(),
            notifier.clone(),
            watch.clone(),
        ));
        kv.set_streams(streams.clone());
        let dbs: Box<[OnceLock<Keyspace>]> = (0..databases).map(|_| OnceLock::new()).collect();
        let _ = dbs[0].set(kv);
        Engine {
            dbs,
            slots: (0..databases).map(AtomicUsize::new).collect(),
            expire_next_db: AtomicUsize::new(0),
            evict_next_db: AtomicUsize::new(0),
            queues: QueueStore::new(config.queues, clock.clone(), slot.clone()),
            streams,
            pubsub,
            watch,
            blockers,
            log: slot,
            clock,
            gate: parking_lot::RwLock::new(()),
            scripts: Scripts::default(),
            function_admin: parking_lot::Mutex::new(()),
            acl: crate::acl::Acl::new(),
            acl_admin: parking_lot::Mutex::new(()),
            notifier,
            script_monitor: OnceLock::new(),
        }
    }

    /// Installs the hook that shows the commands scripts call (once; MONITOR).
    pub fn set_script_monitor(&self, show: ScriptMonitor) {
        let _ = self.script_monitor.set(show);
    }

    /// An in-memory engine on the system clock (tests, benchmarks).
    pub fn in_memory(config: EngineConfig) -> Engine {
        Engine::new(config, Arc::new(SystemClock), None)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Database 0.
    pub fn kv(&self) -> &Keyspace {
        self.db(0)
    }

    /// Database `db` (created when first used). The index must be below [`Engine::databases`].
    pub fn db(&self, db: u32) -> &Keyspace {
        let slot = self.slots[db as usize].load(Ordering::Acquire);
        // An unused slot has never been swapped: slot and index are the same.
        self.dbs[slot].get_or_init(|| self.dbs[0].get().expect("database 0 exists").sibling(db))
    }

    /// The number of databases (the `databases` setting).
    pub fn databases(&self) -> u32 {
        self.dbs.len() as u32
    }

    /// Database `db` if it was ever used.
    fn db_in_use(&self, db: u32) -> Option<&Keyspace> {
        self.dbs[self.slots[db as usize].load(Ordering::Acquire)].get()
    }

    /// The databases in use, with their index.
    fn dbs_in_use(&self) -> impl Iterator<Item = (u32, &Keyspace)> {
        (0..self.dbs.len() as u32).filter_map(|i| self.db_in_use(i).map(|ks| (i, ks)))
    }

    /// INFO keyspace's `avg_ttl` of database `db` (milliseconds, sampled; 0 when no key has an expiry).
    pub fn avg_ttl_ms(&self, db: u32) -> u64 {
        self.db_in_use(db).map_or(0, |ks| ks.avg_ttl_ms())
    }

    /// Every database's key count and volatile key count, for the databases holding keys (INFO keyspace).
    pub fn keyspace_sizes(&self) -> Vec<(u32, usize, usize)> {
        self.dbs_in_use()
            .map(|(i, ks)| {
                let s = ks.stats();
                (i, s.keys, s.volatile_keys)
            })
            .filter(|(_, keys, _)| *keys > 0)
            .collect()
    }

    /// The key-value statistics of all databases together (the counters and memory are shared).
    pub fn kv_stats(&self) -> crate::kv::KvStats {
        let mut total = self.kv().stats();
        for (i, ks) in self.dbs_in_use() {
            if i != 0 {
                let s = ks.stats();
                total.keys += s.keys;
                total.volatile_keys += s.volatile_keys;
            }
        }
        total
    }

    /// The database index `db` names, or Redis's error when there is no such database.
    fn check_db(&self, db: i64) -> Result<u32> {
        if db < 0 || db >= self.dbs.len() as i64 {
            return Err(CommandError::Invalid("DB index is out of range".into()));
        }
        Ok(db as u32)
    }

    pub fn queues(&self) -> &QueueStore {
        &self.queues
    }

    pub fn streams(&self) -> &StreamStore {
        &self.streams
    }

    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// The scripting state (its busy threshold is a run-time setting).
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Keyspace notifications in force (CONFIG GET notify-keyspace-events).
    pub fn notify_flags(&self) -> NotifyFlags {
        self.notifier.flags()
    }

    /// CONFIG SET notify-keyspace-events.
    pub fn set_notify_flags(&self, flags: NotifyFlags) {
        self.notifier.set_flags(flags);
    }

    /// Clients watching keys (WATCH).
    pub fn watches(&self) -> &WatchRegistry {
        &self.watch
    }

    /// Clients blocked on keys (BLPOP, BZPOPMIN, ...).
    pub fn blockers(&self) -> &Blockers {
        &self.blockers
    }

    /// Memory the data holds, as counted against the memory limit: keys, queues and streams.
    pub fn used_memory(&self) -> usize {
        self.kv().used_memory() + self.queues.used_memory() + self.streams.used_memory()
    }

    /// Executes one command. Write commands are refused while the log is failed, and commands that may grow
    /// memory first make room under the memory limit (or fail with OOM).
    pub fn execute(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply> {
        self.execute_as(ctx, cmd.spec(), cmd)
    }

    /// [`Engine::execute`] with the command's row already at hand (a front end that looked it up to
    /// parse the command).
    pub fn execute_as(&self, ctx: &mut ExecCtx, spec: &'static Spec, cmd: Command) -> Result<Reply> {
        // Walks of the whole keyspace take the gate shard by shard: a transaction never waits for a walk
        // to finish, and commands never wait behind a transaction waiting for one.
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        match &cmd {
            Command::Keys(KeysCmd::Keys { pattern }) => {
                let gate = || self.read_gate();
                let keys = self.db(ctx.db).keys(pattern, now, Some(&gate))?;
                return Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()));
            }
            Command::Keys(KeysCmd::Scan(args)) => {
                let gate = || self.read_gate();
                let (cursor, keys) = self.db(ctx.db).scan(args, now, Some(&gate))?;
                return Ok(Reply::Scan { cursor, items: keys.into_iter().map(Reply::Bulk).collect() });
            }
            // Commands over several databases run alone, their changes one record.
            Command::Keys(
                KeysCmd::FlushAll | KeysCmd::Move { .. } | KeysCmd::SwapDb { .. } | KeysCmd::Copy { db: Some(_), .. },
            ) => return self.eval_atomic(ctx, cmd),
            // PFSELFTEST touches no data: it runs outside the gate (it takes a while).
            Command::Kv(crate::command::KvCmd::PfSelfTest) => {
                return self.kv().string_cmd(crate::command::KvCmd::PfSelfTest, &mut 0, now);
            }
            // SCRIPT KILL reaches a running script without waiting for it.
            Command::Script(ScriptCmd::Kill) => return self.scripts.function_kill(false),
            Command::Script(ScriptCmd::FunctionKill) => return self.scripts.function_kill(true),
            Command::Script(ScriptCmd::FunctionStats) => return Ok(self.scripts.function_stats()),
            Command::Script(ScriptCmd::Eval { .. } | ScriptCmd::FCall { .. }) => return self.eval_atomic(ctx, cmd),
            _ => {}
        }
        let _gate = self.read_gate()?;
        self.execute_inner(ctx, spec, cmd)
    }

    /// The gate's read side, or BUSY once a script has run past its busy threshold (the wait is then
    /// over, so a client can send SCRIPT KILL).
    fn read_gate(&self) -> Result<parking_lot::RwLockReadGuard<'_, ()>> {
        loop {
            if let Some(g) = self.gate.try_read_for(Duration::from_millis(10)) {
                return Ok(g);
            }
            if self.scripts.busy() {
                return Err(busy());
            }
        }
    }

    /// EVAL and its kin: the script runs alone (the gate's write side) and the mutations of the
    /// commands it calls are one log record.
    fn eval_atomic(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply> {
        let _gate = self.write_gate()?;
        let capture = self.log.capture();
        let reply = self.execute_inner(ctx, cmd.spec(), cmd);
        let lsn = capture.finish();
        self.streams.settle(lsn);
        ctx.lsn = ctx.lsn.max(lsn);
        reply
    }

    /// A command a script calls: shown to MONITOR clients (the front end's hook), and the keys its
    /// read-only calls read remembered for a tracking client first (the script runs alone: no write comes
    /// in between).
    fn script_call(&self, ctx: &mut ExecCtx, c: Command, args: &[bytes::Bytes]) -> Result<Reply> {
        let reads = crate::tracking::take_reads();
        if !reads.is_empty() {
            self.watch.tracking.remember(crate::tracking::current_client(), reads);
        }
        if let Some(user) = &ctx.user
            && let Some(row) = crate::command::table::row(&args[0])
            && let Err(denial) = user.check(row.index, args)
        {
            let (reason, object) = denial.reason_object();
            self.acl.log(reason, "lua", object, String::from_utf8_lossy(&user.name).into_owned(), String::new());
            // Redis's words for a refusal inside a script.
            let what = match denial {
                crate::acl::Denial::Command(_) => "run this command or subcommand",
                crate::acl::Denial::Key(_) => "access at least one of the keys mentioned in the command arguments",
                crate::acl::Denial::Channel(_) => "publish to the channel mentioned in the command",
            };
            return Err(CommandError::Raw(format!("ERR The user executing the script can't {what}")));
        }
        let reply = self.execute_inner(ctx, c.spec(), c);
        // Shown once it ran, with the database it left the script in (a SELECT shows its new one).
        if let Some(show) = self.script_monitor.get() {
            show(ctx.db, args);
        }
        reply
    }

    /// A script command; EVAL runs with the gate held (by [`Engine::eval_atomic`] or a transaction), the
    /// time frozen for the whole run as in Redis.
    fn run_script(&self, ctx: &mut ExecCtx, cmd: ScriptCmd, now: u64) -> Result<Reply> {
        match cmd {
            // A script's SELECT lasts until the script ends (Redis 7).
            ScriptCmd::Eval { script, keys, args, read_only } => {
                let (frozen, db) = (ctx.now_ms, ctx.db);
                ctx.now_ms = now;
                let mut exec = |c: Command, args: &[bytes::Bytes]| self.script_call(ctx, c, args);
                let reply = self.scripts.eval(&script, &keys, &args, read_only, &mut exec);
                (ctx.now_ms, ctx.db) = (frozen, db);
                reply
            }
            ScriptCmd::FCall { name, keys, args, read_only } => {
                let (frozen, db) = (ctx.now_ms, ctx.db);
                ctx.now_ms = now;
                let mut exec = |c: Command, args: &[bytes::Bytes]| self.script_call(ctx, c, args);
                let reply = self.scripts.fcall(&name, &keys, &args, read_only, &mut exec);
                (ctx.now_ms, ctx.db) = (frozen, db);
                reply
            }
            ScriptCmd::FunctionLoad { code, replace } => {
                let _admin = self.function_admin.lock();
                let name = self.scripts.function_load(&code, replace)?;
                ctx.lsn = ctx.lsn.max(self.log.append(&[Mutation::FunctionLoad { code: &code }]));
                Ok(Reply::Bulk(name.into()))
            }
            ScriptCmd::FunctionDelete(name) => {
                let _admin = self.function_admin.lock();
                self.scripts.function_delete(&name)?;
                ctx.lsn = ctx.lsn.max(self.log.append(&[Mutation::FunctionDelete { name: &name }]));
                Ok(Reply::Ok)
            }
            ScriptCmd::FunctionFlush => {
                let _admin = self.function_admin.lock();
                self.scripts.function_flush()?;
                ctx.lsn = ctx.lsn.max(self.log.append(&[Mutation::FunctionFlush]));
                Ok(Reply::Ok)
            }
            ScriptCmd::FunctionList { pattern, with_code } => {
                Ok(self.scripts.function_list(pattern.as_deref(), with_code))
            }
            ScriptCmd::FunctionDump => Ok(Reply::Bulk(crate::script::dump_libraries(&self.scripts.library_codes()))),
            ScriptCmd::FunctionRestore { payload, policy } => {
                let _admin = self.function_admin.lock();
                let codes = crate::script::parse_dump(&payload)?;
                self.scripts.check_restore(&codes, policy)?;
                if policy == RestorePolicy::Flush {
                    self.scripts.function_flush()?;
                    ctx.lsn = ctx.lsn.max(self.log.append(&[Mutation::FunctionFlush]));
                }
                for code in &codes {
                    self.scripts.function_load(code, policy != RestorePolicy::Append)?;
                    ctx.lsn = ctx.lsn.max(self.log.append(&[Mutation::FunctionLoad { code }]));
                }
                Ok(Reply::Ok)
            }
            other => self.scripts.admin(other),
        }
    }

    /// Runs a transaction (MULTI ... EXEC); BUSY when a script has run past its threshold: every command in order with no other command in between, its
    /// mutations logged as one record (after a crash it is there whole or not at all). `None` (nothing
    /// run) when a watched key changed (`watch` set).
    pub fn exec_transaction(
        &self,
        ctx: &mut ExecCtx,
        cmds: Vec<Command>,
        watch: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<Option<Vec<Result<Reply>>>> {
        let _gate = self.write_gate()?;
        if watch.is_some_and(|w| w.load(std::sync::atomic::Ordering::Acquire)) {
            return Ok(None);
        }
        let capture = self.log.capture();
        let replies = cmds.into_iter().map(|c| self.execute_inner(ctx, c.spec(), c)).collect();
        let lsn = capture.finish();
        // Streams created or deleted inside learn the LSN that makes them durable (the gate is still held:
        // no snapshot chunk sees them unsettled).
        self.streams.settle(lsn);
        ctx.lsn = ctx.lsn.max(lsn);
        Ok(Some(replies))
    }

    /// The gate's write side, or BUSY once a script has run past its busy threshold.
    fn write_gate(&self) -> Result<parking_lot::RwLockWriteGuard<'_, ()>> {
        loop {
            if let Some(g) = self.gate.try_write_for(Duration::from_millis(10)) {
                return Ok(g);
            }
            if self.scripts.busy() {
                return Err(busy());
            }
        }
    }

    fn execute_inner(&self, ctx: &mut ExecCtx, spec: &Spec, cmd: Command) -> Result<Reply> {
        if spec.is_write() {
            self.log.check_writable()?;
        }
        if spec.may_grow() {
            let lsn = self.ensure_memory()?;
            ctx.lsn = ctx.lsn.max(lsn);
        }
        let mut lsn = 0;
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        // The client's database (created when first used, by a key-value command only).
        let kv = || self.db(ctx.db);
        let reply = match cmd {
            Command::Kv(c) => kv().string_cmd(c, &mut lsn, now),
            Command::Keys(c) => self.keys_cmd(ctx, c, &mut lsn, now),
            Command::Hash(c) => kv().hash_cmd(c, &mut lsn, now),
            Command::List(c) => kv().list_cmd(c, &mut lsn, now),
            Command::Set(c) => kv().set_cmd(c, &mut lsn, now),
            Command::ZSet(c) => kv().zset_cmd(c, &mut lsn, now),
            Command::Stream(_) if ctx.db != 0 => {
                Err(CommandError::Invalid("streams live in database 0 in Synap (SELECT 0 to use them)".into()))
            }
            Command::Stream(c) => self.stream(c, &mut lsn, now),
            Command::Queue(c) => self.queues.execute(c, now, &mut lsn),
            Command::PubSub(c) => Ok(self.pubsub_cmd(c)),
            Command::Script(c) => self.run_script(ctx, c, now),
            Command::Server(c) => {
                Err(CommandError::Invalid(format!("'{}' is answered by the connection, not the engine", c.name())))
            }
        };
        ctx.lsn = ctx.lsn.max(lsn);
        reply
    }

    /// A command on keys; those over several databases are the engine's (they run alone: see
    /// [`Engine::execute_as`]).
    fn keys_cmd(&self, ctx: &mut ExecCtx, cmd: KeysCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            KeysCmd::Select { db } => {
                ctx.db = self.check_db(db)?;
                Ok(Reply::Ok)
            }
            KeysCmd::FlushAll => {
                for (i, ks) in self.dbs_in_use() {
                    ks.flush_db(lsn, now, i == 0);
                }
                Ok(Reply::Ok)
            }
            KeysCmd::SwapDb { a, b } => {
                let (a, b) = (self.check_db(a)?, self.check_db(b)?);
                self.swap_db(a, b, now)?;
                Ok(Reply::Ok)
            }
            KeysCmd::Move { key, db } => {
                let to = self.check_db(db)?;
                if to == ctx.db {
                    return Err(CommandError::Invalid("source and destination objects are the same".into()));
                }
                Ok(Reply::Int(self.db(ctx.db).move_to(&key, self.db(to), lsn, now)? as i64))
            }
            KeysCmd::Copy { from, to, replace, db: Some(db) } => {
                let db = self.check_db(db)?;
                let (src, dst) = (self.db(ctx.db), self.db(db));
                if db == ctx.db {
                    return src.keys_cmd(KeysCmd::Copy { from, to, replace, db: None }, lsn, now);
                }
                Ok(Reply::Int(src.copy_to(&from, dst, &to, replace, lsn, now)? as i64))
            }
            c => self.db(ctx.db).keys_cmd(c, lsn, now),
        }
    }

    /// SWAPDB: databases `a` and `b` trade contents (the caller runs alone). Streams live in database 0,
    /// so it moves only while it holds none.
    fn swap_db(&self, a: u32, b: u32, now: u64) -> Result<()> {
        if a == b {
            return Ok(());
        }
        if (a == 0 || b == 0) && self.streams.room_count() > 0 {
            return Err(CommandError::Invalid(
                "database 0 holds streams, which cannot move to another database in Synap".into(),
            ));
        }
        let (ka, kb) = (self.db(a), self.db(b));
        // As Redis: a watched key that exists on either side changed.
        for (db, mine, other) in [(a, ka, kb), (b, kb, ka)] {
            for key in self.watch.watched_in(db) {
                if mine.exists_live(&key, now) || other.exists_live(&key, now) {
                    self.watch.touch_watchers(db, &key);
                }
            }
        }
        self.swap_slots(a, b);
        self.log.append(&[Mutation::SwapDb { a, b }]);
        // Clients blocked in either database may find their keys now.
        self.blockers.wake_db(a);
        self.blockers.wake_db(b);
        Ok(())
    }

    /// Trades the keyspaces of databases `a` and `b` (both created first).
    fn swap_slots(&self, a: u32, b: u32) {
        let (ka, kb) = (self.db(a), self.db(b));
        ka.set_db(b);
        kb.set_db(a);
        let sa = self.slots[a as usize].load(Ordering::Acquire);
        let sb = self.slots[b as usize].swap(sa, Ordering::AcqRel);
        self.slots[a as usize].store(sb, Ordering::Release);
    }

    /// Makes room under the memory limit before a command that may grow memory. With one database in
    /// use it evicts there; with several, each database in turn gives up keys (a rotating start), until
    /// there is room or none has a candidate. Returns the LSN of the last eviction logged.
    fn ensure_memory(&self) -> Result<u64> {
        let other = self.queues.used_memory() + self.streams.used_memory();
        let used: Vec<&Keyspace> = self.dbs_in_use().map(|(_, ks)| ks).collect();
        if used.len() == 1 {
            return used[0].ensure_memory(other);
        }
        let first = self.evict_next_db.fetch_add(1, Ordering::Relaxed);
        let mut lsn = 0;
        let mut stuck = 0;
        let steps = crate::kv::MAX_EVICTIONS_PER_CALL + used.len();
        for i in (0..steps).map(|i| (first + i) % used.len()) {
            match used[i].ensure_memory_step(other) {
                crate::kv::EvictStep::Room => return Ok(lsn),
                crate::kv::EvictStep::Evicted(l) => {
                    lsn = lsn.max(l);
                    stuck = 0;
                }
                crate::kv::EvictStep::Refused => return Err(CommandError::OutOfMemory),
                crate::kv::EvictStep::Nothing => {
                    stuck += 1;
                    if stuck == used.len() {
                        return Err(CommandError::OutOfMemory);
                    }
                }
            }
        }
        // As many evictions as one command may make: room now, or still over the limit.
        let limit = used[0].limits.max_memory();
        if used[0].used_memory() + other <= limit { Ok(lsn) } else { Err(CommandError::OutOfMemory) }
    }

    /// A stream command: a stream is a key, so its name must hold a stream or nothing (WRONGTYPE
    /// otherwise), and a command that creates its stream creates it through the keyspace.
    fn stream(&self, cmd: StreamCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        let defaults = self.streams.settings.defaults;
        match &cmd {
            StreamCmd::Create { room, options } => {
                return if self.ensure_stream(room, options.resolve(&defaults), lsn, now)? {
                    Ok(Reply::Int(1))
                } else {
                    Err(CommandError::AlreadyExists(format!(
                        "stream '{}' already exists",
                        String::from_utf8_lossy(room)
                    )))
                };
            }
            StreamCmd::Delete { room } => return Ok(Reply::Int(self.kv().delete_stream(room, lsn, now) as i64)),
            StreamCmd::Publish { room, .. } if self.streams.settings.auto_create => {
                self.ensure_stream(room, defaults, lsn, now)?;
            }
            _ => match cmd.creates() {
                Some(key) => {
                    self.ensure_stream(key, RoomConfig { partitions: 1, ..defaults }, lsn, now)?;
                }
                None => {
                    for key in cmd.keys() {
                        self.kv().check_stream_key(key, now)?;
                    }
                }
            },
        }
        self.streams.execute(cmd, now, lsn)
    }

    /// Makes sure `key` holds a stream: creates one with `config` when it holds nothing (its partitions
    /// are opened outside every lock, then it is installed with the key's shard locked). `Ok(true)` when
    /// created; WRONGTYPE when the key holds another type.
    fn ensure_stream(&self, key: &bytes::Bytes, config: RoomConfig, lsn: &mut u64, now: u64) -> Result<bool> {
        if self.kv().check_stream_key(key, now)? {
            return Ok(false);
        }
        let mut prepared = Some(self.streams.prepare(key, config)?);
        let created = self.kv().create_stream_key(key, now, || {
            let (_, l) = self.streams.install(prepared.take().expect("installed once"));
            *lsn = (*lsn).max(l);
        });
        if let Some(p) = prepared {
            self.streams.discard(p);
        }
        created
    }

    fn pubsub_cmd(&self, cmd: PubSubCmd) -> Reply {
        match cmd {
            PubSubCmd::Publish { channel, payload } => Reply::Int(self.pubsub.publish(&channel, &payload) as i64),
            PubSubCmd::Channels { pattern } => {
                Reply::Array(self.pubsub.channels(pattern.as_deref()).into_iter().map(Reply::Bulk).collect())
            }
            PubSubCmd::NumSub { channels } => Reply::Array(
                channels
                    .into_iter()
                    .flat_map(|c| {
                        let n = self.pubsub.numsub(&c) as i64;
                        [Reply::Bulk(c), Reply::Int(n)]
                    })
                    .collect(),
            ),
            PubSubCmd::NumPat => Reply::Int(self.pubsub.numpat() as i64),
        }
    }

    /// Attaches the mutation log (after recovery replayed the old one). Fails if one is attached already.
    pub fn attach_log(&self, log: Arc<dyn MutationLog>) -> std::result::Result<(), Arc<dyn MutationLog>> {
        self.log.attach(log)
    }

    /// The one applier for recorded mutations (recovery, replicas): applies without logging. Runs of
    /// key-value mutations are applied together, so a batch's keys change at once. A stream's creation,
    /// deletion and rename also place, remove and move its entry in the keyspace.
    pub fn apply_batch(&self, batch: &[Mutation<'_>]) {
        let mut start = 0;
        // A batch starts in database 0; `SelectDb` records say where the key-value records that follow go.
        let mut db = 0;
        for (i, m) in batch.iter().enumerate() {
            if m.is_queue() || m.is_stream() || m.is_function() || m.is_db() || m.is_acl() {
                if start < i {
                    self.db(db).apply_batch(&batch[start..i]);
                }
                match m {
                    Mutation::SelectDb { db: d } if (*d as usize) < self.dbs.len() => db = *d,
                    Mutation::SelectDb { db: d } => {
                        // Records of a database this server does not have (a smaller `databases`
                        // setting than the log's writer had) are dropped, loudly.
                        tracing::error!(
                            db = d,
                            databases = self.dbs.len(),
                            "a record names a database beyond the `databases` setting; its changes are dropped"
                        );
                        db = u32::MAX;
                    }
                    Mutation::SwapDb { a, b } if (*a as usize) < self.dbs.len() && (*b as usize) < self.dbs.len() => {
                        if a != b {
                            self.swap_slots(*a, *b);
                        }
                    }
                    Mutation::SwapDb { a, b } => {
                        tracing::error!(
                            a,
                            b,
                            databases = self.dbs.len(),
                            "a SWAPDB record names a database beyond the `databases` setting; ignored"
                        );
                    }
                    m if m.is_queue() => self.queues.apply(m),
                    m if m.is_function() => self.apply_function(m),
                    m if m.is_acl() => self.acl.apply(m),
                    m => self.apply_stream(m),
                }
                start = i + 1;
            } else if db == u32::MAX {
                start = i + 1;
            }
        }
        if start < batch.len() && db != u32::MAX {
            self.db(db).apply_batch(&batch[start..]);
        }
    }

    /// Runs `f` with no command, transaction, snapshot step or background item in between (they all hold
    /// the gate's read side): a replica applying and logging its primary's records, so that a snapshot
    /// reading the log's last LSN finds every record up to it applied; a change of role, so that no
    /// background pass logs after it. Blocking: waits for a running script.
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _gate = self.gate.write();
        f()
    }

    /// [`Engine::exclusive`] if the gate comes free within `wait` (commands hold it briefly; a script
    /// holds it for its whole run); otherwise `f` is handed back, to run where waiting is allowed.
    pub fn try_exclusive_for<R, F: FnOnce() -> R>(&self, wait: Duration, f: F) -> std::result::Result<R, F> {
        match self.gate.try_write_for(wait) {
            Some(_gate) => Ok(f()),
            None => Err(f),
        }
    }

    /// Refuses a batch that names a database beyond the `databases` setting (a log written with a larger
    /// setting): recovery stops there rather than drop or misplace its keys.
    pub fn check_databases(&self, batch: &[Mutation<'_>]) -> std::result::Result<(), String> {
        let n = self.dbs.len() as u32;
        let highest = batch
            .iter()
            .filter_map(|m| match m {
                Mutation::SelectDb { db } => Some(*db),
                Mutation::SwapDb { a, b } => Some((*a).max(*b)),
                _ => None,
            })
            .max();
        match highest {
            Some(db) if db >= n => Err(format!(
                "the data names database {db}, but kv.databases is {n}: start with kv.databases of at least {}",
                db as u64 + 1
            )),
            _ => Ok(()),
        }
    }

    /// A library's record: loaded again from its code (which loaded when it was logged).
    fn apply_function(&self, m: &Mutation<'_>) {
        let outcome = match m {
            Mutation::FunctionLoad { code } => self.scripts.function_replay(code).map(|_| ()),
            Mutation::FunctionDelete { name } => self.scripts.function_delete(name),
            Mutation::FunctionFlush => self.scripts.function_flush(),
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!("a function library record did not apply: {e}");
        }
    }

    fn apply_stream(&self, m: &Mutation<'_>) {
        self.streams.apply(m);
        let Mutation::Stream { room, op } = m else { return };
        match op {
            StreamOp::Create { .. } if self.streams.exists(room) => self.kv().stream_created(room),
            StreamOp::Delete { .. } if !self.streams.exists(room) => self.kv().stream_deleted(room),
            StreamOp::Rename { to, .. } if self.streams.exists(to) => self.kv().stream_renamed(room, to),
            _ => {}
        }
    }

    /// A digest of the whole state as of now (live data only).
    pub fn digest(&self) -> u64 {
        let now = self.now_ms();
        // An empty database adds nothing (its digest is 0): one database or sixteen, the same data digests
        // alike.
        let kv = self
            .dbs_in_use()
            .map(|(i, ks)| match ks.digest(now) {
                0 => 0,
                d if i == 0 => d,
                d => d.rotate_left(i % 64) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            })
            .fold(0, |a, d| a ^ d);
        kv ^ self.queues.digest().rotate_left(17) ^ self.streams.digest().rotate_left(31)
    }

    /// Starts a snapshot: `last_lsn` is read (the LSN the snapshot covers) together with which keyspace
    /// each database index names, with no SWAPDB in between.
    pub fn snapshot_start(&self, last_lsn: impl FnOnce() -> u64) -> (u64, EngineCursor) {
        let _gate = self.gate.read();
        let lsn = last_lsn();
        let slots = self.slots.iter().map(|s| s.load(Ordering::Acquire)).collect();
        (lsn, EngineCursor { kv_slots: Some(slots), ..EngineCursor::at_lsn(lsn) })
    }

    /// Starts a full copy for a replica: a snapshot walk (see [`Engine::snapshot_start`]) that also carries
    /// every retained stream event, since the replica has no segment files of its own to hold them.
    pub fn copy_start(&self, last_lsn: impl FnOnce() -> u64) -> (u64, EngineCursor) {
        let (lsn, mut cursor) = self.snapshot_start(last_lsn);
        cursor.streams = cursor.streams.with_events();
        (lsn, cursor)
    }

    /// Empties every service (a replica about to load a full copy of its primary). Not logged: the log
    /// starts over with the copy.
    pub fn clear_all(&self) {
        let _gate = self.gate.write();
        let dbs: Vec<u32> = self.dbs_in_use().map(|(i, _)| i).collect();
        for &db in &dbs {
            for key in self.watch.watched_in(db) {
                self.watch.touch_watchers(db, &key);
            }
        }
        if self.watch.tracking.active() {
            self.watch.tracking.flushed();
        }
        for db in dbs.into_iter().rev() {
            // Database 0 last: its flush also removes every stream.
            self.apply_batch(&[Mutation::SelectDb { db }, Mutation::FlushAll]);
        }
        for name in self.queues.names() {
            self.queues.apply(&Mutation::QueueDelete { name: &name });
        }
        self.apply_function(&Mutation::FunctionFlush);
        // The users stay until the copy's users arrive (its first records), which replace them all.
        self.acl.replace_on_next_user();
    }

    /// Encodes the next chunk of a snapshot (at most `max` records) into `out`; `None` when done.
    pub fn snapshot_chunk(&self, cursor: &mut EngineCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        // Not in the middle of a transaction: a snapshot must not hold half of one.
        let _gate = self.gate.read();
        if let Some(n) = self.acl_chunk(cursor, max, out) {
            return Some(n);
        }
        let slots =
            cursor.kv_slots.get_or_insert_with(|| self.slots.iter().map(|s| s.load(Ordering::Acquire)).collect());
        while !cursor.kv_done {
            if cursor.kv_db as usize >= self.dbs.len() {
                cursor.kv_done = true;
                break;
            }
            let Some(ks) = self.dbs[slots[cursor.kv_db as usize]].get() else {
                cursor.kv_db += 1;
                continue;
            };
            let start = out.len();
            match ks.snapshot_chunk(&mut cursor.kv, max, out) {
                // A chunk of another database than 0 starts by naming it.
                Some(n) if cursor.kv_db != 0 => {
                    let body = out.split_off(start + 4);
                    out.truncate(start);
                    out.extend_from_slice(&(n as u32 + 1).to_le_bytes());
                    crate::mutation::encode_one(&Mutation::SelectDb { db: cursor.kv_db }, out);
                    out.extend_from_slice(&body);
                    return Some(n + 1);
                }
                Some(n) => return Some(n),
                None => {
                    cursor.kv_db += 1;
                    cursor.kv = match cursor.kv_chunk_bytes {
                        0 => SnapshotCursor::default(),
                        n => SnapshotCursor::with_chunk_bytes(n),
                    };
                }
            }
        }
        if !cursor.queues_done {
            match self.queues.snapshot_chunk(&mut cursor.queues, max, out) {
                Some(n) => return Some(n),
                None => cursor.queues_done = true,
            }
        }
        if let Some(n) = self.streams.snapshot_chunk(&mut cursor.streams, max, out, &|key| self.kv().expiry_of(key)) {
            return Some(n);
        }
        // The function libraries, one record each, walked by name.
        if !cursor.functions_done {
            let libs = self.scripts.libraries_after(cursor.functions_after.as_deref(), max.max(1));
            if let Some((last, _)) = libs.last() {
                cursor.functions_after = Some(last.clone());
                let batch: Vec<Mutation<'_>> = libs.iter().map(|(_, c)| Mutation::FunctionLoad { code: c }).collect();
                crate::mutation::encode_batch(&batch, out);
                return Some(batch.len());
            }
            cursor.functions_done = true;
        }
        None
    }

    /// The users, one record each, walked by name; then the API keys. First in a snapshot, so that a
    /// replica loading a full copy has its primary's users at once. `None` once both are done.
    fn acl_chunk(&self, cursor: &mut EngineCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if cursor.users_done {
            if cursor.keys_done {
                return None;
            }
            cursor.keys_done = true;
            let keys: Vec<(String, String)> = self
                .acl
                .api_keys()
                .into_iter()
                .filter_map(|k| serde_json::to_string(&k).ok().map(|d| (k.id, d)))
                .collect();
            if keys.is_empty() {
                return None;
            }
            let batch: Vec<Mutation<'_>> =
                keys.iter().map(|(id, d)| Mutation::ApiKeyPut { id: id.as_bytes(), data: d.as_bytes() }).collect();
            crate::mutation::encode_batch(&batch, out);
            return Some(batch.len());
        }
        let users: Vec<(bytes::Bytes, String)> = self
            .acl
            .users()
            .into_iter()
            .filter(|u| cursor.users_after.as_ref().is_none_or(|after| u.name > *after))
            .take(max.max(1))
            .map(|u| (u.name.clone(), u.describe()))
            .collect();
        let Some((last, _)) = users.last() else {
            cursor.users_done = true;
            // On to the API keys.
            return self.acl_chunk(cursor, max, out);
        };
        cursor.users_after = Some(last.clone());
        let batch: Vec<Mutation<'_>> =
            users.iter().map(|(n, r)| Mutation::AclSetUser { name: n, rules: r.as_bytes() }).collect();
        crate::mutation::encode_batch(&batch, out);
        Some(batch.len())
    }

    /// The users and their permissions.
    pub fn acl(&self) -> &crate::acl::Acl {
        &self.acl
    }

    /// Changes users: `change` reads the users it needs and returns the records that make the change
    /// (or an error, and nothing changes); they are applied and logged one change at a time, under the
    /// gate. Refused where writes are (a replica, a failed log). Hash passwords before: `change` runs
    /// with the gate held.
    pub fn acl_change<T>(
        &self,
        ctx: &mut ExecCtx,
        change: impl FnOnce(&crate::acl::Acl) -> Result<(Vec<crate::acl::AclRecord>, T)>,
    ) -> Result<T> {
        use crate::acl::AclRecord;
        let _admin = self.acl_admin.lock();
        // Under the gate, as every write: never inside a script's or a transaction's record.
        let _gate = self.read_gate()?;
        self.log.check_writable()?;
        let (records, out) = change(&self.acl)?;
        if records.is_empty() {
            return Ok(out);
        }
        // A record that would not apply on replay is refused now, not logged.
        for r in &records {
            if let AclRecord::SetUser(name, rules) = r {
                crate::acl::User::from_description(name.clone(), rules.as_bytes())
                    .map_err(|e| CommandError::Invalid(format!("the user cannot be recorded: {e}")))?;
            }
        }
        let data: Vec<Option<String>> = records
            .iter()
            .map(|r| match r {
                AclRecord::PutKey(k) => serde_json::to_string(k).ok(),
                _ => None,
            })
            .collect();
        let batch: Vec<Mutation<'_>> = records
            .iter()
            .zip(&data)
            .map(|(r, d)| match r {
                AclRecord::SetUser(name, rules) => Mutation::AclSetUser { name, rules: rules.as_bytes() },
                AclRecord::DelUser(name) => Mutation::AclDelUser { name },
                AclRecord::PutKey(k) => {
                    Mutation::ApiKeyPut { id: k.id.as_bytes(), data: d.as_deref().unwrap_or("{}").as_bytes() }
                }
                AclRecord::DelKey(id) => Mutation::ApiKeyDel { id: id.as_bytes() },
            })
            .collect();
        for m in &batch {
            self.acl.apply(m);
        }
        ctx.lsn = ctx.lsn.max(self.log.append(&batch));
        Ok(out)
    }

    /// DEBUG RELOAD: every database's keys are written out and read back (see `Keyspace::reload`), with no
    /// other command running. As Redis's flush before the load, the watched keys that exist change.
    pub fn reload(&self) -> Result<()> {
        let _gate = self.write_gate()?;
        let now = self.now_ms();
        for (db, ks) in self.dbs_in_use() {
            for key in self.watch.watched_in(db) {
                if ks.exists_live(&key, now) {
                    self.watch.touch_watchers(db, &key);
                }
            }
            ks.reload();
        }
        // As Redis's flush before its load, tracking clients drop their caches.
        if self.watch.tracking.active() {
            self.watch.tracking.flushed();
        }
        Ok(())
    }

    /// Makes every stream event durable in its segment files; a snapshot calls it before it claims an
    /// LSN, since snapshots carry stream metadata but not the events.
    pub fn sync_streams(&self) -> std::result::Result<(), String> {
        self.streams.sync()
    }

    /// Stream retention by age and size. Returns the LSN it logged up to.
    pub fn stream_sweep(&self) -> u64 {
        self.streams.sweep(self.now_ms(), &self.gate)
    }

    /// One background maintenance pass (active expiry) within `budget`.
    pub fn maintenance(&self, budget: Duration) -> crate::kv::ExpireReport {
        let mut total = crate::kv::ExpireReport::default();
        let started = std::time::Instant::now();
        let n = self.dbs.len();
        let first = self.expire_next_db.load(Ordering::Relaxed) % n;
        for i in (0..n).map(|i| (first + i) % n) {
            let Some(ks) = self.db_in_use(i as u32) else { continue };
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                // The next pass starts here.
                self.expire_next_db.store(i, Ordering::Relaxed);
                total.out_of_time = true;
                break;
            }
            let r = ks.active_expire_pass(left, &self.gate);
            if r.out_of_time {
                // The next pass starts in this database, where this one stopped.
                self.expire_next_db.store(i, Ordering::Relaxed);
            }
            total.sampled += r.sampled;
            total.expired += r.expired;
            total.shards_visited += r.shards_visited;
            total.out_of_time |= r.out_of_time;
        }
        total
    }

    /// The queue sweep: delayed messages, expired deadlines and TTLs. Returns the LSN it logged up to.
    pub fn queue_sweep(&self) -> u64 {
        self.queues.sweep(self.now_ms(), &self.gate).1
    }
}
