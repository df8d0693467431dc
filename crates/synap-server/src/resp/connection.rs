//! One RESP client's I/O: read, parse every complete command in the buffer, execute them in order
//! (`dispatch`), wait once for the durability of the batch's writes, answer with one write; deliver
//! pub/sub pushes; hold a blocking command's wait while still reading and pushing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::tls::Stream;
use bytes::{Bytes, BytesMut};
use synap_core::command::{Block, Command};
use synap_core::pubsub::{PubMessage, Sink};
use synap_core::{CommandError, ExecCtx, Reply};
use synap_resp::encode::bulk;
use synap_resp::{Parser, Protocol, encode, error, error_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::debug;

use super::multi::Queued;
use super::{ClientEntry, RespShared};

/// Most commands executed before the replies are flushed (keeps latency and memory bounded on deep
/// pipelines; the rest of the buffer is parsed right after the flush).
const BATCH_COMMANDS: usize = 1024;
/// Flush early once this much output is pending.
const BATCH_OUTPUT: usize = 256 * 1024;
/// The parser's limits before a client authenticates (Redis's: 10 arguments, 16 KB an argument).
const UNAUTHENTICATED_LIMITS: synap_resp::Limits =
    synap_resp::Limits { max_args: 10, max_bulk: 16 * 1024, max_inline: 16 * 1024 };

/// Pushes taken from a subscriber's queue per write.
const PUSH_BATCH: usize = 256;

/// A client's session state.
pub(super) struct Conn {
    pub shared: Arc<RespShared>,
    pub entry: Arc<ClientEntry>,
    pub proto: Protocol,
    pub quit: bool,
    /// The pub/sub queue, once the client subscribed to anything.
    pub sub: Option<Arc<Sink>>,
    /// Channels and patterns subscribed to.
    pub sub_count: usize,
    /// Commands queued by MULTI, until EXEC or DISCARD.
    /// The commands MULTI queued, with their rows (for INFO commandstats when EXEC runs them).
    pub multi: Option<Vec<(Option<usize>, Queued)>>,
    /// Bytes the queued commands hold (counted with the query buffer against `resp.max_pending_bytes`).
    pub multi_bytes: usize,
    /// The keys the read-only commands queued in MULTI read, for CLIENT TRACKING (remembered again once
    /// EXEC ran them).
    pub multi_reads: Vec<bytes::Bytes>,
    /// The queued commands' arguments, while MONITOR clients listen: shown when EXEC runs them.
    pub multi_shown: Vec<Vec<bytes::Bytes>>,
    /// A command queued in MULTI was rejected: EXEC aborts.
    pub multi_failed: bool,
    /// Set when a WATCHed key changes.
    pub watch_flag: Arc<AtomicBool>,
    /// The keys watched, with their database.
    pub watched: std::collections::HashSet<(u32, Bytes)>,
    /// Bytes the client's watched keys and subscription names hold; with `multi_bytes` they count toward
    /// `resp.max_pending_bytes`, as the query buffer does.
    pub held_bytes: usize,
    /// CLIENT REPLY OFF.
    pub replies_off: bool,
    /// The MONITOR feed, once the client asked for one.
    pub monitor: Option<Arc<super::monitor::Feed>>,
    /// CLIENT TRACKING: the client's tracker and its options.
    pub tracking: Option<Tracking>,
    /// CLIENT CACHING YES/NO, for the next command only.
    pub caching_next: Option<bool>,
    /// CLIENT REPLY SKIP: replies still to drop (the SKIP's own and the next command's).
    pub skip_replies: u8,
    /// A command CLIENT PAUSE holds back, read but not yet run: the replies before it are sent first.
    pub held: Option<Vec<bytes::Bytes>>,
    /// PSYNC: the connection becomes a replica's link (replication id and offset asked for).
    pub psync: Option<(Bytes, i64)>,
    /// REPLCONF listening-port.
    pub repl_port: u16,
    /// REPLCONF node-id and epoch (a cluster member's replica).
    pub repl_node: u64,
    pub repl_epoch: u64,
    /// WAIT numreplicas timeout, answered once the batch before it is out.
    pub wait: Option<(i64, u64)>,
    /// LSN of this client's last write (WAIT waits for it).
    pub last_lsn: u64,
    /// REPLICAOF host port / NO ONE, run once the batch before it is out.
    pub replicaof: Option<Option<(Bytes, u16)>>,
    /// CLUSTER ADDNODE / REMOVENODE, run once the batch before it is out.
    pub cluster_op: Option<Vec<Bytes>>,
    /// The client's user, whether it authenticated (or needs not), and the users' version it read.
    pub user: Arc<synap_core::acl::User>,
    pub authenticated: bool,
    pub acl_version: u64,
    /// The user's rules when MULTI began (EXEC refuses to run if they changed).
    pub multi_user: Option<Arc<synap_core::acl::User>>,
    /// AUTH, HELLO AUTH or an ACL change, run once the batch before it is out.
    pub deferred: Option<super::acl::Deferred>,
    /// The command being run: its row (a subcommand's when it has one) and whether it got past the
    /// checks that refuse a command before it runs (INFO commandstats' calls against rejected_calls).
    pub stat: Option<(usize, bool)>,
    /// MULTI just queued the command (it counts when EXEC runs it).
    pub queued_now: bool,
    /// The command just run blocks: it answers after its wait.
    pub blocked_pending: bool,
    /// A command answered after its batch: its row, arguments, time so far and when it was handed over.
    pub pending_stat: Option<(usize, Vec<Bytes>, Option<Duration>, Instant)>,
    /// Channels and patterns subscribed (CLIENT LIST's `sub` and `psub`).
    pub sub_channels: usize,
    pub sub_patterns: usize,
}

impl Conn {
    /// What CLIENT LIST shows: the query buffer, the output waiting, MULTI, subscriptions, flags.
    fn publish_state(&self, io: &Io) {
        let st = &self.entry.state;
        st.qbuf.store(io.buf.len() as u64, Ordering::Relaxed);
        // Pushes waiting to be written (a reply is written at once, after this).
        st.omem.store(self.sub.as_ref().map_or(0, |s| s.queued_bytes()) as u64, Ordering::Relaxed);
        st.multi.store(self.multi.as_ref().map_or(-1, |q| q.len() as i64), Ordering::Relaxed);
        let mut f = st.flags.load(Ordering::Relaxed) & super::FLAG_BLOCKED;
        for (on, bit) in [
            (self.monitor.is_some(), super::FLAG_MONITOR),
            (self.sub_count > 0, super::FLAG_PUBSUB),
            (self.multi.is_some(), super::FLAG_MULTI),
            (self.tracking.is_some(), super::FLAG_TRACKING),
        ] {
            if on {
                f |= bit;
            }
        }
        st.flags.store(f, Ordering::Relaxed);
    }

    /// Everything the client holds in the server besides its query buffer.
    fn held(&self) -> usize {
        self.multi_bytes + self.held_bytes
    }
}

/// Why a connection ends.
enum End {
    Closed,
}

type Step = Result<(), End>;

/// The socket and the buffers around it.
struct Io {
    socket: Stream,
    buf: BytesMut,
    out: Vec<u8>,
    parser: Parser,
    /// The parser's limits once the client authenticated.
    limits: synap_resp::Limits,
    max_pending: usize,
    max_output: usize,
    stats: Arc<crate::stats::ServerStats>,
}

impl Io {
    async fn flush(&mut self) -> Step {
        if !self.out.is_empty() {
            self.socket.send(&self.out).await.map_err(|_| End::Closed)?;
            self.stats.add_out(crate::stats::Front::Resp, self.out.len());
            self.out.clear();
            if self.out.capacity() > 1 << 20 {
                self.out = Vec::with_capacity(16 * 1024);
            }
        }
        Ok(())
    }

    /// Bytes the client holds in the server: query buffer, parser state, and `held`.
    fn pending(&self, held: usize) -> usize {
        self.buf.len() + self.parser.held_bytes() + held
    }
}

/// Writes an array (RESP2) or push (RESP3) header.
pub(super) fn push_header(out: &mut Vec<u8>, proto: Protocol, n: usize) {
    out.push(if proto == Protocol::Resp3 { b'>' } else { b'*' });
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_message(out: &mut Vec<u8>, proto: Protocol, m: &PubMessage) {
    match &m.pattern {
        Some(p) => {
            push_header(out, proto, 4);
            bulk(out, b"pmessage");
            bulk(out, p);
        }
        None => {
            push_header(out, proto, 3);
            bulk(out, b"message");
        }
    }
    bulk(out, &m.channel);
    bulk(out, &m.payload);
}

/// A reply range in the output buffer that belongs to a write; rewritten to an error if the batch's
/// durability wait fails.
struct WriteReply {
    start: usize,
    end: usize,
}

pub(super) async fn run(
    socket: Stream,
    addr: SocketAddr,
    laddr: SocketAddr,
    shared: Arc<RespShared>,
    mut stop: watch::Receiver<bool>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let entry = Arc::new(ClientEntry {
        id,
        addr,
        laddr,
        name: Default::default(),
        user: parking_lot::Mutex::new(Bytes::from_static(b"default")),
        created: Instant::now(),
        last_active_ms: Default::default(),
        last_cmd: u64::MAX.into(),
        resp: 2.into(),
        db: 0.into(),
        redirected: Default::default(),
        state: super::ClientState { multi: (-1).into(), ..Default::default() },
        redirect_ready: Default::default(),
        killed: Default::default(),
        kill: Default::default(),
    });
    shared.clients.lock().insert(id, entry.clone());
    let cfg = shared.service.config.resp.clone();
    let acl = shared.service.engine.acl();
    let acl_version = acl.version();
    let mut conn = Conn {
        shared: shared.clone(),
        entry,
        proto: Protocol::Resp2,
        quit: false,
        sub: None,
        sub_count: 0,
        multi: None,
        multi_bytes: 0,
        multi_reads: Vec::new(),
        multi_shown: Vec::new(),
        multi_failed: false,
        watch_flag: Arc::new(AtomicBool::new(false)),
        watched: std::collections::HashSet::new(),
        held_bytes: 0,
        replies_off: false,
        skip_replies: 0,
        held: None,
        monitor: None,
        tracking: None,
        caching_next: None,
        psync: None,
        repl_port: 0,
        repl_node: 0,
        repl_epoch: 0,
        wait: None,
        last_lsn: 0,
        replicaof: None,
        cluster_op: None,
        user: acl
            .user(b"default")
            .unwrap_or_else(|| Arc::new(synap_core::acl::User::new(Bytes::from_static(b"default")))),
        authenticated: !acl.auth_required(),
        acl_version,
        multi_user: None,
        deferred: None,
        stat: None,
        queued_now: false,
        blocked_pending: false,
        pending_stat: None,
        sub_channels: 0,
        sub_patterns: 0,
    };
    let limits = synap_resp::Limits {
        max_args: cfg.max_args,
        max_bulk: cfg.max_bulk_bytes.0 as usize,
        max_inline: cfg.max_inline_bytes.0 as usize,
    };
    let mut io = Io {
        socket,
        buf: BytesMut::with_capacity(16 * 1024),
        out: Vec::with_capacity(16 * 1024),
        // A client that has not authenticated gets Redis's small limits (10 arguments, 16 KB each)
        // until it does: before AUTH nobody may make the server hold much.
        parser: Parser::new(if conn.authenticated { limits } else { UNAUTHENTICATED_LIMITS }),
        limits,
        max_pending: cfg.max_pending_bytes.0 as usize,
        max_output: cfg.max_output_bytes.0 as usize,
        stats: conn.shared.service.stats.clone(),
    };
    loop {
        let secs = conn.shared.idle_timeout_secs.load(std::sync::atomic::Ordering::Relaxed);
        let idle = (secs > 0).then(|| Duration::from_secs(secs));
        if conn.run_buffered(&mut io, &mut stop).await.is_err() {
            break;
        }
        if io.pending(conn.held()) > io.max_pending {
            debug!(client = id, bytes = io.buf.len(), "query buffer limit exceeded; closing");
            let mut msg = Vec::new();
            error_line(&mut msg, "ERR Protocol error: query buffer limit exceeded");
            let _ = io.socket.send(&msg).await;
            break;
        }
        if conn.wait_input(&mut io, &mut stop, idle).await.is_err() {
            break;
        }
    }
    if let Some(sink) = conn.sub.take() {
        shared.service.engine.pubsub().unregister(sink.id);
    }
    if conn.monitor.take().is_some() {
        shared.monitors.remove(id);
    }
    if conn.tracking.take().is_some() {
        shared.service.engine.watches().tracking.unregister(id);
    }
    shared.clients.lock().remove(&id);
    if let Some((replid, offset)) = conn.psync.take() {
        // From here on the socket carries the replication stream (with what the replica sent after
        // PSYNC, if anything).
        let repl = shared.service.replication.clone();
        let hello = crate::replication::ReplicaHello {
            addr,
            port: conn.repl_port,
            node: conn.repl_node,
            epoch: conn.repl_epoch,
            replid,
            offset,
        };
        repl.serve(io.socket, io.buf, hello).await;
        return;
    }
    let _ = io.socket.shutdown().await;
}

impl Conn {
    /// Executes everything complete in the buffer, in bounded batches; a blocking command is answered
    /// after its wait.
    async fn run_buffered(&mut self, io: &mut Io, stop: &mut watch::Receiver<bool>) -> Step {
        loop {
            let shared = self.shared.clone();
            let mut ctx = ExecCtx { now_ms: shared.service.engine.now_ms(), ..ExecCtx::default() };
            let mut writes: Vec<WriteReply> = Vec::new();
            let mut n = 0;
            let mut fatal: Option<String> = None;
            let mut blocked = None;
            let stats = shared.service.stats.clone();
            // Each command's time runs from the end of the one before (one clock read per command).
            let mut last = stats.timing.then(Instant::now);
            while n < BATCH_COMMANDS
                && io.out.len() < BATCH_OUTPUT
                && !self.quit
                && blocked.is_none()
                && self.wait.is_none()
                && self.replicaof.is_none()
                && self.cluster_op.is_none()
                && self.deferred.is_none()
                && self.psync.is_none()
            {
                let next = match self.held.take() {
                    Some(args) => Ok(Some(args)),
                    None => io.parser.parse(&mut io.buf),
                };
                match next {
                    Ok(Some(args)) => {
                        // CLIENT PAUSE: the command waits (writes only, under WRITE) until the pause
                        // ends or CLIENT UNPAUSE; the pause commands themselves never wait. The replies
                        // of the batch before it go out first.
                        if shared.paused_until_ms.load(Ordering::Acquire) > 0 {
                            if n > 0 && self.pause_holds(&args) {
                                self.held = Some(args);
                                break;
                            }
                            self.wait_pause(&args, stop).await?;
                            last = stats.timing.then(Instant::now);
                        }
                        n += 1;
                        let before = ctx.lsn;
                        let start = io.out.len();
                        self.stat = None;
                        blocked = self.execute(&args, &mut ctx, &mut io.out);
                        self.blocked_pending = blocked.is_some();
                        let now = last.map(|_| Instant::now());
                        let took = match (now, last) {
                            (Some(now), Some(last)) => Some(now.saturating_duration_since(last)),
                            _ => None,
                        };
                        last = now;
                        // Slow work of its own (a SLOWLOG entry) is not billed to the next command.
                        if self.account(&args, &io.out[start..], took) && last.is_some() {
                            last = Some(Instant::now());
                        }
                        // CLIENT REPLY OFF / SKIP: the reply is not sent.
                        if self.replies_off || self.skip_replies > 0 {
                            io.out.truncate(start);
                            self.skip_replies = self.skip_replies.saturating_sub(1);
                        }
                        if self.entry.killed.load(Ordering::Acquire) {
                            self.quit = true;
                        }
                        if ctx.lsn > before {
                            writes.push(WriteReply { start, end: io.out.len() });
                        }
                        if io.out.len() > io.max_output {
                            shared.stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                            debug!(
                                client = self.entry.id,
                                bytes = io.out.len(),
                                "output buffer limit exceeded; closing"
                            );
                            return Err(End::Closed);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        fatal = Some(e.to_string());
                        break;
                    }
                }
            }
            if n > 0 {
                self.entry.last_active_ms.store(self.entry.created.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            if ctx.lsn > 0
                && let Err(e) = shared.service.wait_durable(ctx.lsn).await
            {
                io.out = rewrite_failed_writes(&io.out, &writes, &e);
            }
            self.last_lsn = self.last_lsn.max(ctx.lsn);
            if let Some(msg) = &fatal {
                error_line(&mut io.out, &format!("ERR {msg}"));
            }
            self.publish_state(io);
            io.flush().await?;
            if fatal.is_some() || self.quit || self.psync.is_some() {
                return Err(End::Closed);
            }
            if let Some(target) = self.replicaof.take() {
                let repl = shared.service.replication.clone();
                let done = match target {
                    None => repl.promote().await.map(|()| Reply::Ok),
                    Some((host, port)) => {
                        let host = String::from_utf8_lossy(&host).into_owned();
                        repl.replicate_from(host, port).await.map(|new| {
                            if new {
                                Reply::Ok
                            } else {
                                Reply::Simple("OK Already connected to specified master".into())
                            }
                        })
                    }
                };
                let start = io.out.len();
                match done {
                    Ok(r) => encode(&mut io.out, &r, self.proto),
                    Err(msg) => error_line(&mut io.out, &msg),
                }
                self.account_pending(&io.out[start..]);
                io.flush().await?;
                continue;
            }
            if let Some(args) = self.cluster_op.take() {
                let svc = shared.service.clone();
                let done = tokio::select! {
                    r = super::cluster::membership_change(&svc, &args) => r,
                    _ = stop.changed() => return Err(End::Closed),
                };
                let start = io.out.len();
                match done {
                    Ok(r) => encode(&mut io.out, &r, self.proto),
                    Err(msg) => error_line(&mut io.out, &msg),
                }
                self.account_pending(&io.out[start..]);
                io.flush().await?;
                continue;
            }
            if let Some(d) = self.deferred.take() {
                let done = tokio::select! {
                    r = self.run_deferred(d) => r,
                    _ = stop.changed() => return Err(End::Closed),
                };
                if self.authenticated {
                    io.parser.set_limits(io.limits);
                }
                let start = io.out.len();
                match done {
                    Ok(r) => encode(&mut io.out, &r, self.proto),
                    Err(msg) => error_line(&mut io.out, &msg),
                }
                self.account_pending(&io.out[start..]);
                io.flush().await?;
                continue;
            }
            if let Some((replicas, timeout)) = self.wait.take() {
                let repl = shared.service.replication.clone();
                let timeout = (timeout > 0).then(|| Duration::from_millis(timeout));
                let want = replicas.max(0) as usize;
                let waiting = repl.wait_acks(self.last_lsn, want, timeout);
                let n = tokio::select! {
                    n = waiting => n,
                    _ = stop.changed() => return Err(End::Closed),
                    _ = self.entry.kill.notified() => return Err(End::Closed),
                };
                let start = io.out.len();
                encode(&mut io.out, &Reply::Int(n as i64), self.proto);
                self.account_pending(&io.out[start..]);
                io.flush().await?;
                continue;
            }
            if let Some((cmd, block)) = blocked {
                // Everything before it is answered; now wait, then answer it. A wait that found nothing
                // answers a null array, as Redis's blocking commands do (BLMOVE too).
                let nothing = if matches!(cmd, Command::Queue(_)) { Reply::Nil } else { Reply::NullArray };
                shared.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
                self.entry.state.flags.fetch_or(super::FLAG_BLOCKED, Ordering::Relaxed);
                let reply = self.wait_blocked(io, stop, cmd, block).await;
                self.entry.state.flags.fetch_and(!super::FLAG_BLOCKED, Ordering::Relaxed);
                shared.stats.blocked_clients.fetch_sub(1, Ordering::Relaxed);
                let start = io.out.len();
                match reply? {
                    Ok(r) if r.is_nothing() => encode(&mut io.out, &nothing, self.proto),
                    Ok(r) => encode(&mut io.out, &r, self.proto),
                    Err(e) => error(&mut io.out, &e),
                }
                self.account_pending(&io.out[start..]);
                io.flush().await?;
                continue;
            }
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// Waits for a blocking command, reading meanwhile (a client that goes away must not be handed
    /// messages it will never take) and delivering pub/sub pushes to a RESP3 subscriber.
    async fn wait_blocked(
        &mut self,
        io: &mut Io,
        stop: &mut watch::Receiver<bool>,
        cmd: Command,
        block: Block,
    ) -> Result<Result<Reply, CommandError>, End> {
        let svc = self.shared.service.clone();
        let waiting = svc.wait_in(self.entry.db.load(Ordering::Relaxed), cmd, block);
        tokio::pin!(waiting);
        loop {
            let sink = self.sub.clone();
            tokio::select! {
                r = &mut waiting => return Ok(r),
                _ = stop.changed() => return Err(End::Closed),
                _ = self.entry.kill.notified() => return Err(End::Closed),
                r = io.socket.read_buf(&mut io.buf) => match r {
                    Ok(0) | Err(_) => return Err(End::Closed),
                    Ok(n) => {
                        io.stats.add_in(crate::stats::Front::Resp, n);
                        if io.pending(self.held()) > io.max_pending {
                            return Err(End::Closed);
                        }
                    }
                },
                _ = ready(&sink) => self.deliver(io, sink).await?,
            }
        }
    }

    /// Waits for input, pub/sub pushes to deliver (which keep a subscriber from counting as idle), an idle
    /// timeout, or shutdown.
    async fn wait_input(&mut self, io: &mut Io, stop: &mut watch::Receiver<bool>, idle: Option<Duration>) -> Step {
        if io.buf.capacity() - io.buf.len() < 4096 {
            io.buf.reserve(16 * 1024);
        }
        let sink = self.sub.clone();
        let idle = if sink.is_some() { None } else { idle };
        let read = io.socket.read_buf(&mut io.buf);
        tokio::select! {
            r = async {
                match idle {
                    Some(t) => tokio::time::timeout(t, read).await.ok(),
                    None => Some(read.await),
                }
            } => match r {
                Some(Ok(n)) if n > 0 => {
                    io.stats.add_in(crate::stats::Front::Resp, n);
                    Ok(())
                }
                // Closed, failed, or idle too long.
                _ => Err(End::Closed),
            },
            _ = ready(&sink) => self.deliver(io, sink).await,
            _ = stop.changed() => Err(End::Closed),
            _ = self.entry.kill.notified() => Err(End::Closed),
            _ = self.entry.redirect_ready.notified() => {
                self.deliver_redirected(&mut io.out);
                io.flush().await
            }
            _ = tracking_ready(&self.tracking) => {
                let keys = self.tracking.as_ref().map(|t| t.tracker.drain()).unwrap_or_default();
                // A client back on RESP2 (HELLO 2) cannot take pushes: Redis drops them too.
                if self.proto == Protocol::Resp3 {
                    push_invalidations(&mut io.out, keys);
                }
                io.flush().await
            }
            _ = monitor_ready(&self.monitor) => {
                let Some(lines) = self.monitor.as_ref().and_then(|f| f.drain()) else {
                    self.shared.stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                    return Err(End::Closed);
                };
                for l in lines {
                    io.out.extend_from_slice(&l);
                }
                io.flush().await
            }
        }
    }

    /// Writes the subscriber's queued messages. A client over its pub/sub output limit is dropped (as
    /// Redis's client-output-buffer-limit pubsub), even while a write waits on it.
    async fn deliver(&mut self, io: &mut Io, sink: Option<Arc<Sink>>) -> Step {
        let Some(sink) = sink else { return Ok(()) };
        let stats = &self.shared.stats;
        if sink.is_closed() {
            stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
            debug!(client = self.entry.id, "pub/sub subscriber too slow; closing");
            return Err(End::Closed);
        }
        loop {
            let msgs = sink.drain(PUSH_BATCH);
            if msgs.is_empty() {
                return Ok(());
            }
            for m in &msgs {
                push_message(&mut io.out, self.proto, m);
            }
            let written = tokio::select! {
                r = io.socket.send(&io.out) => r.is_ok(),
                _ = sink.closed() => false,
            };
            if !written {
                if sink.is_closed() {
                    stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                }
                return Err(End::Closed);
            }
            io.out.clear();
        }
    }
}

/// Resolves when a subscriber has messages (never without a subscription).
/// A tracking client's state on its connection.
pub(super) struct Tracking {
    pub tracker: Arc<synap_core::tracking::Tracker>,
    pub args: synap_core::command::TrackingArgs,
}

/// Writes invalidation pushes (RESP3): one per key, or one with a null for "everything".
fn push_invalidations(out: &mut Vec<u8>, keys: Vec<Option<bytes::Bytes>>) {
    write_invalidations(out, keys, b">2\r\n$10\r\ninvalidate\r\n", b"_\r\n");
}

/// Writes one invalidation per entry: `head`, then the key as a one-element array, or `null`.
fn write_invalidations(out: &mut Vec<u8>, keys: Vec<Option<bytes::Bytes>>, head: &[u8], null: &[u8]) {
    for k in keys {
        out.extend_from_slice(head);
        match k {
            Some(k) => {
                out.extend_from_slice(b"*1\r\n");
                synap_resp::encode::bulk(out, &k);
            }
            None => out.extend_from_slice(null),
        }
    }
}

async fn tracking_ready(t: &Option<Tracking>) {
    match t {
        // A redirecting client's invalidations go to the other client (which waits on this notify).
        Some(t) if t.args.redirect.is_none() => t.tracker.notify.notified().await,
        _ => std::future::pending().await,
    }
}

impl Conn {
    /// The invalidations of the clients redirecting to this one: pushes in RESP3, messages on
    /// `__redis__:invalidate` in RESP2 while subscribed (none otherwise), as Redis sends them.
    fn deliver_redirected(&mut self, out: &mut Vec<u8>) {
        let trackers: Vec<_> = {
            let mut list = self.entry.redirected.lock();
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(|w| w.upgrade()).collect()
        };
        for t in trackers {
            let keys = t.drain();
            match self.proto {
                Protocol::Resp3 => push_invalidations(out, keys),
                Protocol::Resp2 if self.sub_count > 0 => {
                    let head = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n";
                    write_invalidations(out, keys, head, b"$-1\r\n");
                }
                Protocol::Resp2 => {}
            }
        }
    }
}

impl Conn {
    /// Whether CLIENT PAUSE holds this command now.
    fn pause_holds(&self, args: &[bytes::Bytes]) -> bool {
        pause_class(args).is_some_and(|writes| self.shared.pause_left(writes).is_some())
    }

    async fn wait_pause(&mut self, args: &[bytes::Bytes], stop: &mut watch::Receiver<bool>) -> Step {
        let Some(writes) = pause_class(args) else { return Ok(()) };
        loop {
            // Listening before the check: an UNPAUSE between the two is not missed.
            let unpaused = self.shared.unpaused.notified();
            tokio::pin!(unpaused);
            unpaused.as_mut().enable();
            let Some(left) = self.shared.pause_left(writes) else { return Ok(()) };
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = unpaused => {}
                _ = stop.changed() => return Err(End::Closed),
                _ = self.entry.kill.notified() => return Err(End::Closed),
            }
        }
    }
}

/// How CLIENT PAUSE sees a command: `Some(true)` when it may write (writes, and the commands that can
/// run writes: scripts, functions, EXEC, ...), `Some(false)` for a read, `None` for the pause commands
/// themselves and unknown commands (never held).
fn pause_class(args: &[bytes::Bytes]) -> Option<bool> {
    let row = synap_core::command::table::row(&args[0])?;
    let spec = row.spec;
    let pause_cmd = spec.name == "client"
        && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"unpause") || a.eq_ignore_ascii_case(b"pause"));
    if pause_cmd {
        return None;
    }
    Some(spec.is_write() || matches!(spec.name, "eval" | "evalsha" | "fcall" | "exec" | "publish" | "pfcount"))
}

async fn monitor_ready(feed: &Option<Arc<super::monitor::Feed>>) {
    match feed {
        Some(f) => f.notify.notified().await,
        None => std::future::pending().await,
    }
}

async fn ready(sink: &Option<Arc<Sink>>) {
    match sink {
        Some(s) => s.ready().await,
        None => std::future::pending().await,
    }
}

/// Replaces the replies of a batch's writes with the durability error (they were not made durable).
fn rewrite_failed_writes(out: &[u8], writes: &[WriteReply], e: &CommandError) -> Vec<u8> {
    let mut fixed = Vec::with_capacity(out.len());
    let mut at = 0;
    for w in writes {
        fixed.extend_from_slice(&out[at..w.start]);
        error(&mut fixed, e);
        at = w.end;
    }
    fixed.extend_from_slice(&out[at..]);
    fixed
}

impl Drop for Conn {
    /// A client that goes away stops watching its keys.
    fn drop(&mut self) {
        self.unwatch_all();
    }
}
