//! Transactions on a RESP connection: MULTI queues commands (bounded), EXEC runs them as one transaction
//! of the engine (one log record, nothing interleaved), WATCH registers keys whose change aborts EXEC.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use synap_core::command::table::Spec;
use synap_core::command::{Command, ServerCmd};
use synap_core::{ExecCtx, Reply};
use synap_resp::{Protocol, encode, error, error_line};

use super::connection::Conn;

/// A command queued inside MULTI.
pub(super) enum Queued {
    Engine(Command),
    /// A reply known at queue time (PING, ECHO).
    Static(Reply),
    /// A command whose arguments were refused: EXEC answers this error in its place.
    Failed(synap_core::CommandError),
}

impl Conn {
    /// Inside MULTI: queues a command (+QUEUED; `size`: the bytes it holds), or runs EXEC / DISCARD.
    /// Blocking commands are queued too: inside a transaction they run once, without blocking (as in
    /// Redis).
    pub(super) fn queue_in_multi(
        &mut self,
        _spec: &'static Spec,
        cmd: Command,
        size: usize,
        ctx: &mut ExecCtx,
        out: &mut Vec<u8>,
    ) {
        let queued = match cmd {
            Command::Server(ServerCmd::Exec) => return self.exec(ctx, out),
            Command::Server(ServerCmd::Discard) => {
                self.multi = None;
                self.multi_reads.clear();
                self.multi_shown.clear();
                self.multi_bytes = 0;
                self.multi_failed = false;
                self.unwatch_all();
                out.extend_from_slice(b"+OK\r\n");
                return;
            }
            Command::Server(ServerCmd::Multi) => return error_line(out, "ERR MULTI calls can not be nested"),
            Command::Server(ServerCmd::Watch(_)) => return error_line(out, "ERR WATCH inside MULTI is not allowed"),
            Command::Server(ServerCmd::Ping(None)) => Queued::Static(Reply::Status("PONG")),
            Command::Server(ServerCmd::Ping(Some(m)) | ServerCmd::Echo(m)) => Queued::Static(Reply::Bulk(m)),
            Command::Server(ServerCmd::Unwatch) => Queued::Static(Reply::Ok),
            Command::Server(_) => {
                error_line(out, "ERR Command not allowed inside a transaction");
                self.multi_failed = true;
                return;
            }
            cmd => Queued::Engine(cmd),
        };
        self.push_queued(queued, size, out);
    }

    fn push_queued(&mut self, queued: Queued, size: usize, out: &mut Vec<u8>) {
        let max = self.shared.service.config.resp.max_multi_commands;
        let queue = self.multi.as_mut().expect("in MULTI");
        if queue.len() >= max {
            error_line(out, &format!("ERR too many commands in MULTI (resp.max_multi_commands is {max})"));
            self.multi_failed = true;
            return;
        }
        queue.push((self.stat.map(|s| s.0), queued));
        self.queued_now = true;
        self.multi_bytes += size;
        out.extend_from_slice(b"+QUEUED\r\n");
    }

    /// Queues a command whose arguments were refused (a syntax error, a bad number): Redis finds those
    /// when EXEC runs the command, so EXEC answers the error in the command's place.
    pub(super) fn queue_error(&mut self, e: synap_core::CommandError, out: &mut Vec<u8>) {
        self.push_queued(Queued::Failed(e), 64, out);
    }

    fn exec(&mut self, ctx: &mut ExecCtx, out: &mut Vec<u8>) {
        let queued = self.multi.take().unwrap_or_default();
        self.multi_bytes = 0;
        let shown = std::mem::take(&mut self.multi_shown);
        if std::mem::take(&mut self.multi_failed) {
            self.unwatch_all();
            error_line(out, "EXECABORT Transaction discarded because of previous errors.");
            return;
        }
        // The commands were checked when queued, against the rules of then: if the user's rules changed
        // since, nothing runs.
        if self.multi_user.take().is_some_and(|u| *u != *self.user) {
            self.unwatch_all();
            error_line(out, "EXECABORT Transaction discarded because the user's permissions changed since MULTI.");
            return;
        }
        let cmds: Vec<Command> = queued
            .iter()
            .filter_map(|(_, q)| match q {
                Queued::Engine(cmd) => Some(cmd.clone()),
                Queued::Static(_) | Queued::Failed(_) => None,
            })
            .collect();
        let cmds_len = cmds.len();
        let watch = (!self.watched.is_empty()).then(|| self.watch_flag.clone());
        let engine = &self.shared.service.engine;
        // A script inside may run long: the worker hands its other tasks over meanwhile.
        let scripted = cmds.iter().any(|c| matches!(c, Command::Script(_)));
        // The user's rules reach the commands scripts inside call.
        ctx.user = (scripted && !self.user.unrestricted()).then(|| self.user.clone());
        ctx.db = self.entry.db.load(Ordering::Relaxed);
        // NOLOOP knows whose changes these are; a tracked client's scripts inside remember their reads.
        synap_core::tracking::set_current_client(self.entry.id);
        synap_core::tracking::track_reads(
            self.tracking.as_ref().is_some_and(|t| !t.args.bcast && !t.args.optin) && scripted,
        );
        let began = std::time::Instant::now();
        let result = if scripted && super::dispatch::multi_thread() {
            tokio::task::block_in_place(|| engine.exec_transaction(ctx, cmds, watch.as_deref()))
        } else {
            engine.exec_transaction(ctx, cmds, watch.as_deref())
        };
        // The commands inside share the transaction's time evenly (it runs them as one).
        let share = began.elapsed() / u32::try_from(cmds_len.max(1)).unwrap_or(u32::MAX);
        synap_core::tracking::set_current_client(0);
        synap_core::tracking::track_reads(false);
        let reads = std::mem::take(&mut self.multi_reads);
        if !reads.is_empty() {
            engine.watches().tracking.remember(self.entry.id, reads);
        }
        // A SELECT inside lasts.
        self.entry.db.store(ctx.db, Ordering::Relaxed);
        self.unwatch_all();
        let result = match result {
            Ok(r) => r,
            Err(e) => return error(out, &e),
        };
        let Some(replies) = result else {
            out.extend_from_slice(if self.proto == Protocol::Resp3 { b"_\r\n" } else { b"*-1\r\n" });
            return;
        };
        // MONITOR sees the transaction's commands, as they ran (EXEC itself follows them).
        if !shown.is_empty() && self.shared.monitors.active() {
            let db = self.entry.db.load(Ordering::Relaxed);
            for args in &shown {
                self.shared.monitors.feed(self.entry.id, db, self.entry.addr, args);
            }
        }
        out.extend_from_slice(format!("*{}\r\n", queued.len()).as_bytes());
        let mut replies = replies.into_iter();
        let stats = self.shared.service.stats.clone();
        for (row, q) in queued {
            let start = out.len();
            let took = match q {
                Queued::Static(r) => {
                    encode(out, &r, self.proto);
                    std::time::Duration::ZERO
                }
                Queued::Failed(e) => {
                    error(out, &e);
                    std::time::Duration::ZERO
                }
                Queued::Engine(_) => {
                    match replies.next().expect("one reply per command") {
                        Ok(r) => encode(out, &r, self.proto),
                        Err(e) => error(out, &e),
                    }
                    share
                }
            };
            // Counted as Redis counts the commands EXEC runs: each a call, failed when it answered an
            // error.
            let failed = out.get(start) == Some(&b'-');
            if failed {
                stats.errors.record(&out[start..]);
            }
            if let Some(row) = row {
                let outcome = if failed { crate::stats::Outcome::Failed } else { crate::stats::Outcome::Ok };
                stats.resp.record(row, outcome, Some(took));
            }
        }
    }

    /// WATCH: the keys not watched yet join the client's set, up to `resp.max_watched_keys`.
    pub(super) fn watch(&mut self, keys: Vec<Bytes>, out: &mut Vec<u8>) {
        let limit = self.shared.service.config.resp.max_watched_keys;
        let db = self.entry.db.load(Ordering::Relaxed);
        let new: Vec<(u32, Bytes)> = keys.into_iter().map(|k| (db, k)).filter(|k| !self.watched.contains(k)).collect();
        if self.watched.len() + new.len() > limit {
            error_line(out, &format!("ERR too many watched keys (resp.max_watched_keys is {limit})"));
            return;
        }
        let keys: Vec<Bytes> = new.iter().map(|(_, k)| k.clone()).collect();
        self.shared.service.engine.watches().watch_many(&self.watch_flag, db, &keys);
        self.held_bytes += keys.iter().map(|k| k.len() + 32).sum::<usize>();
        self.watched.extend(new);
        out.extend_from_slice(b"+OK\r\n");
    }

    pub(super) fn unwatch_all(&mut self) {
        let reg = self.shared.service.engine.watches();
        for (_, k) in &self.watched {
            self.held_bytes = self.held_bytes.saturating_sub(k.len() + 32);
        }
        reg.unwatch_many(&self.watch_flag, self.watched.drain());
        self.watch_flag.store(false, Ordering::Release);
    }
}
