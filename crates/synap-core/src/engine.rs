//! The engine: owns the data services and executes [`Command`]s. Its dispatch is one arm per service; the
//! checks every command passes (a failed log refuses writes, the memory limit refuses growth) read the
//! command's row of the table.

use std::sync::Arc;
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
        EngineCursor { kv: SnapshotCursor::with_chunk_bytes(chunk_bytes), ..Default::default() }
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
    kv_done: bool,
    queues: QueueCursor,
    queues_done: bool,
    streams: StreamCursor,
    /// The last function library written, by name.
    functions_after: Option<String>,
    functions_done: bool,
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
    notifier: Arc<Notifier>,
}

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
        Engine {
            kv,
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
            notifier,
        }
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
        self.kv.used_memory() + self.queues.used_memory() + self.streams.used_memory()
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
                let keys = self.kv.keys(pattern, now, Some(&gate))?;
                return Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()));
            }
            Command::Keys(KeysCmd::Scan(args)) => {
                let gate = || self.read_gate();
                let (cursor, keys) = self.kv.scan(args, now, Some(&gate))?;
                return Ok(Reply::Scan { cursor, items: keys.into_iter().map(Reply::Bulk).collect() });
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

    /// A script command; EVAL runs with the gate held (by [`Engine::eval_atomic`] or a transaction), the
    /// time frozen for the whole run as in Redis.
    fn run_script(&self, ctx: &mut ExecCtx, cmd: ScriptCmd, now: u64) -> Result<Reply> {
        match cmd {
            ScriptCmd::Eval { script, keys, args, read_only } => {
                let frozen = ctx.now_ms;
                ctx.now_ms = now;
                let mut exec = |c: Command| self.execute_inner(ctx, c.spec(), c);
                let reply = self.scripts.eval(&script, &keys, &args, read_only, &mut exec);
                ctx.now_ms = frozen;
                reply
            }
            ScriptCmd::FCall { name, keys, args, read_only } => {
                let frozen = ctx.now_ms;
                ctx.now_ms = now;
                let mut exec = |c: Command| self.execute_inner(ctx, c.spec(), c);
                let reply = self.scripts.fcall(&name, &keys, &args, read_only, &mut exec);
                ctx.now_ms = frozen;
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
            let lsn = self.kv.ensure_memory(self.queues.used_memory() + self.streams.used_memory())?;
            ctx.lsn = ctx.lsn.max(lsn);
        }
        let mut lsn = 0;
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        let reply = match cmd {
            Command::Kv(c) => self.kv.string_cmd(c, &mut lsn, now),
            Command::Keys(c) => self.kv.keys_cmd(c, &mut lsn, now),
            Command::Hash(c) => self.kv.hash_cmd(c, &mut lsn, now),
            Command::List(c) => self.kv.list_cmd(c, &mut lsn, now),
            Command::Set(c) => self.kv.set_cmd(c, &mut lsn, now),
            Command::ZSet(c) => self.kv.zset_cmd(c, &mut lsn, now),
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
            StreamCmd::Delete { room } => return Ok(Reply::Int(self.kv.delete_stream(room, lsn, now) as i64)),
            StreamCmd::Publish { room, .. } if self.streams.settings.auto_create => {
                self.ensure_stream(room, defaults, lsn, now)?;
            }
            _ => match cmd.creates() {
                Some(key) => {
                    self.ensure_stream(key, RoomConfig { partitions: 1, ..defaults }, lsn, now)?;
                }
                None => {
                    for key in cmd.keys() {
                        self.kv.check_stream_key(key, now)?;
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
        if self.kv.check_stream_key(key, now)? {
            return Ok(false);
        }
        let mut prepared = Some(self.streams.prepare(key, config)?);
        let created = self.kv.create_stream_key(key, now, || {
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
        for (i, m) in batch.iter().enumerate() {
            if m.is_queue() || m.is_stream() || m.is_function() {
                if start < i {
                    self.kv.apply_batch(&batch[start..i]);
                }
                if m.is_queue() {
                    self.queues.apply(m);
                } else if m.is_function() {
                    self.apply_function(m);
                } else {
                    self.apply_stream(m);
                }
                start = i + 1;
            }
        }
        if start < batch.len() {
            self.kv.apply_batch(&batch[start..]);
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
            StreamOp::Create { .. } if self.streams.exists(room) => self.kv.stream_created(room),
            StreamOp::Delete { .. } if !self.streams.exists(room) => self.kv.stream_deleted(room),
            StreamOp::Rename { to, .. } if self.streams.exists(to) => self.kv.stream_renamed(room, to),
            _ => {}
        }
    }

    /// A digest of the whole state as of now (live data only).
    pub fn digest(&self) -> u64 {
        self.kv.digest(self.now_ms()) ^ self.queues.digest().rotate_left(17) ^ self.streams.digest().rotate_left(31)
    }

    /// Encodes the next chunk of a snapshot (at most `max` records) into `out`; `None` when done.
    pub fn snapshot_chunk(&self, cursor: &mut EngineCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        // Not in the middle of a transaction: a snapshot must not hold half of one.
        let _gate = self.gate.read();
        if !cursor.kv_done {
            match self.kv.snapshot_chunk(&mut cursor.kv, max, out) {
                Some(n) => return Some(n),
                None => cursor.kv_done = true,
            }
        }
        if !cursor.queues_done {
            match self.queues.snapshot_chunk(&mut cursor.queues, max, out) {
                Some(n) => return Some(n),
                None => cursor.queues_done = true,
            }
        }
        if let Some(n) = self.streams.snapshot_chunk(&mut cursor.streams, max, out, &|key| self.kv.expiry_of(key)) {
            return Some(n);
        }
        // The function libraries last, one record each, walked by name.
        if cursor.functions_done {
            return None;
        }
        let libs = self.scripts.libraries_after(cursor.functions_after.as_deref(), max.max(1));
        let Some((last, _)) = libs.last() else {
            cursor.functions_done = true;
            return None;
        };
        cursor.functions_after = Some(last.clone());
        let batch: Vec<Mutation<'_>> = libs.iter().map(|(_, c)| Mutation::FunctionLoad { code: c }).collect();
        crate::mutation::encode_batch(&batch, out);
        Some(batch.len())
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
        self.kv.active_expire_pass(budget, &self.gate)
    }

    /// The queue sweep: delayed messages, expired deadlines and TTLs. Returns the LSN it logged up to.
    pub fn queue_sweep(&self) -> u64 {
        self.queues.sweep(self.now_ms(), &self.gate).1
    }
}
