//! The handle every front end holds: the engine plus what makes a reply safe to send (durability), and
//! the one wait every long poll and blocking command goes through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use synap_core::command::{Block, Command, StreamCmd, WaitOn};
use synap_core::stream::{ReadFrom, StreamId};
use synap_core::{Blockers, CommandError, Engine, ExecCtx, Reply};
use synap_storage::Persistence;
use tokio::sync::Notify;

use crate::config::Config;

pub struct Service {
    pub engine: Arc<Engine>,
    pub config: Arc<Config>,
    pub persistence: Option<Arc<Persistence>>,
    pub replication: Arc<crate::replication::Replication>,
    pub started: Instant,
    pub http_stats: Arc<crate::http::serve::HttpStats>,
    /// Commands, errors, slow log and latency events of every front end.
    pub stats: Arc<crate::stats::ServerStats>,
    /// The RESP front end's shared state, once it listens (its clients, for INFO and `/metrics`).
    pub resp: std::sync::OnceLock<std::sync::Weak<crate::resp::RespShared>>,
    /// This node's cluster membership (`cluster.enabled`), once its port is up.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// A queue consume with a wait re-reads at least this often: delayed messages become due without a
/// publish to wake it.
const QUEUE_RECHECK: Duration = Duration::from_millis(250);

impl Service {
    pub fn new(
        engine: Arc<Engine>,
        config: Arc<Config>,
        persistence: Option<Arc<Persistence>>,
        replication: Arc<crate::replication::Replication>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Service {
        let stats = Arc::new(crate::stats::ServerStats::new(synap_core::command::table::COMMANDS.len(), &config));
        Service {
            engine,
            config,
            persistence,
            replication,
            started: Instant::now(),
            http_stats: Default::default(),
            stats,
            resp: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            stop,
        }
    }

    /// Resolves when the server shuts down: long-lived sessions (SSE, WebSocket, long polls) end then,
    /// so that a graceful shutdown does not wait for them forever.
    pub async fn stopped(&self) {
        let mut rx = self.stop.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Executes a batch of commands in order and returns their results once every write among them is
    /// durable as the fsync policy requires. One wait serves the whole batch (pipelines, group commit).
    /// Each command names its database.
    pub async fn execute_batch(&self, cmds: Vec<(u32, Command)>) -> Vec<Result<Reply, CommandError>> {
        if self.replication.roles.fenced() {
            return cmds.iter().map(|_| Err(self.replication.roles.fenced_error())).collect();
        }
        let mut ctx = ExecCtx::default();
        let replies: Vec<_> = self.run_engine(|| {
            cmds.into_iter()
                .map(|(db, c)| {
                    ctx.db = db;
                    self.timed(&mut ctx, c)
                })
                .collect()
        });
        match self.wait_durable(ctx.lsn).await {
            Ok(()) => replies,
            Err(e) => replies.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
        }
    }

    /// Executes one command in database 0.
    pub async fn execute(&self, cmd: Command) -> Result<Reply, CommandError> {
        self.execute_in(0, cmd).await
    }

    /// Executes one command in database `db`.
    pub async fn execute_in(&self, db: u32, cmd: Command) -> Result<Reply, CommandError> {
        if self.replication.roles.fenced() {
            return Err(self.replication.roles.fenced_error());
        }
        let mut ctx = ExecCtx { db, ..ExecCtx::default() };
        let reply = self.run_engine(|| self.timed(&mut ctx, cmd))?;
        self.wait_durable(ctx.lsn).await?;
        Ok(reply)
    }

    /// Runs one command of an HTTP client in the engine, counted in the HTTP statistics (by its command
    /// row) and, when it fails, in the error statistics.
    fn timed(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply, CommandError> {
        use crate::stats::Outcome;
        let index = synap_core::command::table::index(cmd.name());
        let start = self.stats.timing.then(std::time::Instant::now);
        let reply = self.engine.execute(ctx, cmd);
        let took = start.map(|s| s.elapsed());
        let outcome = match &reply {
            Ok(_) => Outcome::Ok,
            Err(e) => {
                let line = e.to_string();
                self.stats.http_errors.record(line.as_bytes());
                if crate::stats::is_rejection(crate::stats::error_code(line.as_bytes())) {
                    Outcome::Rejected
                } else {
                    Outcome::Failed
                }
            }
        };
        if let Some(i) = index {
            self.stats.http.record(i, outcome, took);
        }
        reply
    }

    /// Runs engine work; while a script runs (and may hold the engine for a while) the worker hands its
    /// other tasks over first, on a multi-threaded runtime.
    fn run_engine<R>(&self, f: impl FnOnce() -> R) -> R {
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi && self.engine.scripts().running() { tokio::task::block_in_place(f) } else { f() }
    }

    /// Waits until the log holds `lsn` as durably as configured and, under
    /// `replication.min_replicas_to_ack`, until that many replicas hold it.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), CommandError> {
        if lsn == 0 {
            return Ok(());
        }
        if let Some(p) = &self.persistence {
            p.wal().wait(lsn).await?;
        }
        self.replication.wait_replicated(lsn).await
    }

    /// The persistence failure that makes the store refuse writes, if any.
    pub fn persistence_failure(&self) -> Option<String> {
        self.persistence.as_ref().and_then(|p| p.wal().failure())
    }

    /// Runs a command that may wait: a blocking command (BLPOP, XREAD BLOCK, QCONSUME BLOCK, ...) or a
    /// long poll. It is tried at once; while its attempt finds nothing, the wait goes on until something
    /// may have arrived on what it waits for (then it is tried again), its timeout passes (`None`: as long
    /// as the server runs; a queue's wait is capped by `queue.max_wait_ms`), or the server stops. Answers
    /// the last attempt (nil for a blocking pop that never got its turn).
    ///
    /// Blocked pops queue per key, first come first served (an attempt takes only the keys on which the
    /// client is first in line). Every wake-up handle is registered before the attempt, so a change in
    /// between is not missed.
    pub async fn wait(&self, cmd: Command, block: Block) -> Result<Reply, CommandError> {
        self.wait_in(0, cmd, block).await
    }

    /// [`Service::wait`] for a client of database `db` (blocked pops wait on its keys).
    pub async fn wait_in(&self, db: u32, cmd: Command, block: Block) -> Result<Reply, CommandError> {
        let cmd = self.fix_last_ids(cmd);
        let timeout = match &block.on {
            WaitOn::Queue(_) => {
                let cap = Duration::from_millis(self.config.queue.max_wait_ms);
                Some(block.timeout_ms.map_or(cap, |ms| Duration::from_millis(ms).min(cap)))
            }
            _ => block.timeout_ms.map(Duration::from_millis),
        };
        // A timeout too far to represent is no timeout.
        let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
        let line = match &block.on {
            WaitOn::Keys(keys) => Some(Line::join(self.engine.blockers(), db, keys.clone())),
            _ => None,
        };
        loop {
            let (waiters, recheck) = match &block.on {
                WaitOn::Keys(_) => (line.as_ref().map(|l| l.notifies.clone()).unwrap_or_default(), None),
                WaitOn::Streams(rooms) => {
                    let streams = self.engine.streams();
                    let w = rooms.iter().map(|r| streams.waiter(r).unwrap_or_else(|| streams.creation_waiter()));
                    (w.collect(), None)
                }
                // A missing queue: the attempt answers its error at once.
                WaitOn::Queue(q) => match self.engine.queues().waiter(q) {
                    Some(w) => (vec![w], Some(QUEUE_RECHECK)),
                    None => return self.execute(cmd).await,
                },
            };
            let mut notified: Vec<_> = waiters.iter().map(|w| Box::pin(w.notified())).collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            let attempt = match &line {
                Some(line) => {
                    let heads = line.heads();
                    (!heads.is_empty()).then(|| cmd.only_keys(heads))
                }
                None => Some(cmd.clone()),
            };
            let reply = match attempt {
                // BUSY (a long script) is not this client's answer: it waits on.
                Some(c) => match self.execute_in(db, c).await {
                    Ok(r) => Some(r),
                    Err(e) if e.code() == "BUSY" => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            if let Some(r) = &reply
                && !r.is_nothing()
            {
                return Ok(reply.expect("checked"));
            }
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(reply.unwrap_or(Reply::Nil));
            }
            let wake_at = match (deadline, recheck) {
                (Some(d), Some(r)) => Some(d.min(now + r)),
                (Some(d), None) => Some(d),
                (None, Some(r)) => Some(now + r),
                (None, None) => None,
            };
            let sleep = async {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let any = async {
                if notified.is_empty() {
                    std::future::pending::<()>().await
                } else {
                    futures_util::future::select_all(notified).await;
                }
            };
            tokio::select! {
                _ = any => {}
                _ = sleep => {}
                _ = self.stopped() => return Ok(reply.unwrap_or(Reply::Nil)),
            }
        }
    }

    /// XREAD's `$` means "after the newest event now", fixed once before the wait.
    fn fix_last_ids(&self, mut cmd: Command) -> Command {
        if let Command::Stream(StreamCmd::XRead { streams, .. }) = &mut cmd {
            for (key, from) in streams.iter_mut() {
                if *from == ReadFrom::Last {
                    let last = self.engine.streams().last_id(key).unwrap_or(StreamId::MIN);
                    *from = ReadFrom::After(last);
                }
            }
        }
        cmd
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// A blocked client's place in the lines of the keys it waits on; it leaves them however the wait ends
/// (reply, timeout, error, or the client going away).
struct Line<'a> {
    blockers: &'a Blockers,
    id: u64,
    db: u32,
    keys: Vec<Bytes>,
    notifies: Vec<Arc<Notify>>,
}

impl<'a> Line<'a> {
    fn join(blockers: &'a Blockers, db: u32, keys: Vec<Bytes>) -> Line<'a> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let notifies = blockers.register(id, db, &keys);
        Line { blockers, id, db, keys, notifies }
    }

    /// The keys on which this client is first in line.
    fn heads(&self) -> Vec<Bytes> {
        self.blockers.heads(self.id, self.db, &self.keys)
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        self.blockers.unregister(self.id, self.db, &self.keys);
    }
}
