//! The handle every front end holds: the engine plus what makes a reply safe to send (durability).

use std::sync::Arc;
use std::time::Instant;

use synap_core::{Command, CommandError, Engine, ExecCtx, Reply};
use synap_storage::Persistence;

use crate::config::Config;

pub struct Service {
    pub engine: Arc<Engine>,
    pub config: Arc<Config>,
    pub persistence: Option<Arc<Persistence>>,
    pub started: Instant,
}

impl Service {
    pub fn new(engine: Arc<Engine>, config: Arc<Config>, persistence: Option<Arc<Persistence>>) -> Service {
        Service { engine, config, persistence, started: Instant::now() }
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

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
