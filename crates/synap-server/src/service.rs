//! The handle every front end holds: the engine plus what makes a reply safe to send (durability).

use std::sync::Arc;
use std::time::{Duration, Instant};

use synap_core::kv::types::CollCmd;
use synap_core::queue::ConsumeArgs;
use synap_core::{Command, CommandError, Engine, ExecCtx, Reply};
use synap_storage::Persistence;

use crate::config::Config;

pub struct Service {
    pub engine: Arc<Engine>,
    pub config: Arc<Config>,
    pub persistence: Option<Arc<Persistence>>,
    pub started: Instant,
    pub http_stats: Arc<crate::http::serve::HttpStats>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Service {
    pub fn new(
        engine: Arc<Engine>,
        config: Arc<Config>,
        persistence: Option<Arc<Persistence>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Service {
        Service { engine, config, persistence, started: Instant::now(), http_stats: Default::default(), stop }
    }

    /// Resolves when the server shuts down: long-lived sessions (SSE, WebSocket, long polls) end then,
    /// so that a graceful shutdown does not wait for them forever.
    pub async fn stopped(&self) {
        let mut rx = self.stop.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Executes a batch of commands in order and returns their results once every write among them is
    /// durable as the fsync policy requires. One wait serves the whole batch (pipelines, group commit).
    pub async fn execute_batch(&self, cmds: Vec<Command>) -> Vec<Result<Reply, CommandError>> {
        let mut ctx = ExecCtx::default();
        let replies: Vec<_> = cmds.into_iter().map(|c| self.engine.execute(&mut ctx, c)).collect();
        match self.wait_durable(ctx.lsn).await {
            Ok(()) => replies,
            Err(e) => replies.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
        }
    }

    pub async fn execute(&self, cmd: Command) -> Result<Reply, CommandError> {
        let mut ctx = ExecCtx::default();
        let reply = self.engine.execute(&mut ctx, cmd)?;
        self.wait_durable(ctx.lsn).await?;
        Ok(reply)
    }

    /// Waits until the log holds `lsn` as durably as configured. Without a log there is nothing to wait for.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), CommandError> {
        match &self.persistence {
            Some(p) if lsn > 0 => p.wal().wait(lsn).await,
            _ => Ok(()),
        }
    }

    /// The persistence failure that makes the store refuse writes, if any.
    pub fn persistence_failure(&self) -> Option<String> {
        self.persistence.as_ref().and_then(|p| p.wal().failure())
    }

    /// QCONSUME with a wait: delivers what is there, or waits (at most `wait`, capped by
    /// `queue.max_wait_ms`) for messages to arrive. Answers an empty array when nothing came.
    pub async fn consume_wait(&self, args: ConsumeArgs, wait: Duration) -> Result<Reply, CommandError> {
        let wait = wait.min(Duration::from_millis(self.config.queue.max_wait_ms));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let waiter = self.engine.queues().waiter(&args.queue);
            let reply = match &waiter {
                Some(w) => {
                    // Register for wake-ups before looking, so a publish in between is not missed.
                    let notified = w.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let reply = self.execute(Command::QueueConsume(args.clone())).await?;
                    if !is_empty(&reply) || tokio::time::Instant::now() >= deadline {
                        return Ok(reply);
                    }
                    // Re-check now and then as well: delayed messages become due without a publish.
                    let nap = deadline.min(tokio::time::Instant::now() + Duration::from_millis(250));
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(nap) => {}
                        _ = self.stopped() => return Ok(reply),
                    }
                    continue;
                }
                None => self.execute(Command::QueueConsume(args.clone())).await?,
            };
            return Ok(reply);
        }
    }

    /// A stream read with a wait: answers at once when it finds events, else waits (up to `wait`; `None`
    /// waits until the server stops) for an append to one of `rooms` and reads again. Answers the empty
    /// reply when nothing came.
    pub async fn stream_wait(
        &self,
        cmd: Command,
        rooms: &[bytes::Bytes],
        wait: Option<Duration>,
    ) -> Result<Reply, CommandError> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let streams = self.engine.streams();
            let waiters: Vec<_> =
                rooms.iter().map(|r| streams.waiter(r).unwrap_or_else(|| streams.creation_waiter())).collect();
            // Register for wake-ups before reading, so an append in between is not missed.
            let mut notified: Vec<_> = waiters.iter().map(|w| Box::pin(w.notified())).collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            let reply = self.execute(cmd.clone()).await?;
            if !stream_reply_empty(&reply) || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(reply);
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = futures_util::future::select_all(notified) => {}
                _ = sleep => {}
                _ = self.stopped() => return Ok(reply),
            }
        }
    }

    /// A blocking pop (BLPOP, BZPOPMIN, BLMOVE, ...): answers at once when one of `keys` has an element,
    /// else waits (up to `wait`; `None`: until the server stops) in line behind the clients that blocked
    /// on the same key before it (first come, first served). Answers nil on timeout.
    pub async fn coll_wait(
        &self,
        cmd: CollCmd,
        args: Vec<bytes::Bytes>,
        keys: Vec<bytes::Bytes>,
        wait: Option<Duration>,
    ) -> Result<Reply, CommandError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let blockers = self.engine.kv().blockers();
        let notifies = blockers.register(id, &keys);
        // Leaves the line however this ends (reply, timeout, error, or the client going away).
        struct Leave<'a>(&'a synap_core::kv::Blockers, u64, &'a [bytes::Bytes]);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.unregister(self.1, self.2);
            }
        }
        let _leave = Leave(blockers, id, &keys);
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let mut notified: Vec<_> = notifies.iter().map(|n| Box::pin(n.notified())).collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            let heads = blockers.heads(id, &keys);
            if !heads.is_empty() {
                let try_args = match cmd {
                    CollCmd::BLMove | CollCmd::BRPopLPush => args.clone(),
                    _ => heads,
                };
                let reply = self.execute(Command::Coll { cmd, args: try_args }).await?;
                if reply != Reply::Nil {
                    return Ok(reply);
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(Reply::Nil);
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = futures_util::future::select_all(notified) => {}
                _ = sleep => return Ok(Reply::Nil),
                _ = self.stopped() => return Ok(Reply::Nil),
            }
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Whether a stream read found nothing (REST read: no events; group read: empty; XREAD/XREADGROUP: nil).
pub fn stream_reply_empty(reply: &Reply) -> bool {
    match reply {
        Reply::Nil => true,
        Reply::Array(items) => items.is_empty(),
        Reply::Map(fields) => fields.iter().any(|(k, v)| {
            matches!(k, Reply::Bulk(b) if &b[..] == b"events") && matches!(v, Reply::Array(e) if e.is_empty())
        }),
        _ => false,
    }
}

fn is_empty(reply: &Reply) -> bool {
    matches!(reply, Reply::Array(items) if items.is_empty())
}
