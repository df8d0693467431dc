//! One RESP client: read, parse every complete command in the buffer, execute them in order, wait once
//! for the durability of the batch's writes, answer with one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use synap_core::kv::types::CollCmd;
use synap_core::pubsub::{Kind, Overflow, PubMessage, Sink};
use synap_core::stream::{ReadFrom, StreamCmd, StreamId};
use synap_core::{Command, CommandError, ExecCtx, Reply};
use synap_resp::encode::bulk;
use synap_resp::{Parser, Protocol, encode, error, error_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use synap_core::queue::ConsumeArgs;

use super::commands::{self, Action, Shape};
use super::{ClientEntry, RespShared};

/// Most commands executed before the replies are flushed (keeps latency and memory bounded on deep
/// pipelines; the rest of the buffer is parsed right after the flush).
const BATCH_COMMANDS: usize = 1024;
/// Flush early once this much output is pending.
const BATCH_OUTPUT: usize = 256 * 1024;

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
    pub multi: Option<Vec<Queued>>,
    /// Bytes the queued commands hold (counted with the query buffer against `resp.max_pending_bytes`).
    pub multi_bytes: usize,
    /// A command queued in MULTI was rejected: EXEC aborts.
    pub multi_failed: bool,
    /// Set when a WATCHed key changes.
    pub watch_flag: Arc<AtomicBool>,
    pub watched: std::collections::HashSet<Bytes>,
    /// Bytes the client's watched keys and subscription names hold; with `multi_bytes` they count toward
    /// `resp.max_pending_bytes`, as the query buffer does.
    pub held_bytes: usize,
}

impl Conn {
    /// Everything the client holds in the server besides its query buffer.
    fn held(&self) -> usize {
        self.multi_bytes + self.held_bytes
    }
}

/// A command queued inside MULTI.
pub(super) enum Queued {
    Engine(Command, Shape),
    /// A reply known at queue time (PING, ECHO).
    Static(Reply),
}

enum Wake {
    Read(Option<std::io::Result<usize>>),
    Messages,
}

/// Writes an array (RESP2) or push (RESP3) header.
fn push_header(out: &mut Vec<u8>, proto: Protocol, n: usize) {
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

/// A subscribe/unsubscribe confirmation: `[kind, name or nil, count]`.
fn push_confirmation(out: &mut Vec<u8>, proto: Protocol, kind: &[u8], name: Option<&[u8]>, count: usize) {
    push_header(out, proto, 3);
    bulk(out, kind);
    match name {
        Some(n) => bulk(out, n),
        None => encode(out, &Reply::Nil, proto),
    }
    encode(out, &Reply::Int(count as i64), proto);
}

/// Commands a RESP2 client may send while subscribed.
const SUBSCRIBED_ALLOWED: &[&str] =
    &["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping", "quit", "reset"];

/// A reply range in the output buffer that belongs to a write; rewritten to an error if the batch's
/// durability wait fails.
struct WriteReply {
    start: usize,
    end: usize,
}

pub(super) async fn run(
    mut socket: TcpStream,
    addr: SocketAddr,
    shared: Arc<RespShared>,
    mut stop: watch::Receiver<bool>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let laddr = socket.local_addr().unwrap_or(shared.bound);
    let entry = Arc::new(ClientEntry {
        id,
        addr,
        laddr,
        name: Default::default(),
        created: Instant::now(),
        last_active_ms: Default::default(),
        last_cmd: u64::MAX.into(),
        resp: 2.into(),
    });
    shared.clients.lock().insert(id, entry.clone());
    let cfg = shared.service.config.resp.clone();
    let mut conn = Conn {
        shared: shared.clone(),
        entry,
        proto: Protocol::Resp2,
        quit: false,
        sub: None,
        sub_count: 0,
        multi: None,
        multi_bytes: 0,
        multi_failed: false,
        watch_flag: Arc::new(AtomicBool::new(false)),
        watched: std::collections::HashSet::new(),
        held_bytes: 0,
    };
    let mut parser = Parser::new(synap_resp::Limits {
        max_args: cfg.max_args,
        max_bulk: cfg.max_bulk_bytes.0 as usize,
        max_inline: cfg.max_inline_bytes.0 as usize,
    });
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let idle = (cfg.idle_timeout_secs > 0).then(|| Duration::from_secs(cfg.idle_timeout_secs));
    let max_pending = cfg.max_pending_bytes.0 as usize;
    let max_output = cfg.max_output_bytes.0 as usize;

    'conn: loop {
        // Execute everything complete in the buffer, in bounded batches.
        loop {
            let mut ctx = ExecCtx { now_ms: shared.service.engine.now_ms(), ..ExecCtx::default() };
            let mut writes: Vec<WriteReply> = Vec::new();
            let mut n = 0;
            let mut fatal: Option<String> = None;
            let mut blocking = None;
            while n < BATCH_COMMANDS && out.len() < BATCH_OUTPUT && !conn.quit && blocking.is_none() {
                match parser.parse(&mut buf) {
                    Ok(Some(args)) => {
                        n += 1;
                        let before = ctx.lsn;
                        let start = out.len();
                        blocking = conn.execute(&args, &mut ctx, &mut out);
                        if ctx.lsn > before {
                            writes.push(WriteReply { start, end: out.len() });
                        }
                        if out.len() > max_output {
                            shared.stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                            debug!(client = id, bytes = out.len(), "output buffer limit exceeded; closing");
                            break 'conn;
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
                shared.stats.commands_processed.fetch_add(n as u64, Ordering::Relaxed);
                conn.entry.last_active_ms.store(conn.entry.created.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            if ctx.lsn > 0
                && let Err(e) = shared.service.wait_durable(ctx.lsn).await
            {
                out = rewrite_failed_writes(&out, &writes, &e);
            }
            if let Some(msg) = &fatal {
                error_line(&mut out, &format!("ERR {msg}"));
            }
            if !out.is_empty() {
                if socket.write_all(&out).await.is_err() {
                    break 'conn;
                }
                out.clear();
                if out.capacity() > 1 << 20 {
                    out = Vec::with_capacity(16 * 1024);
                }
            }
            if fatal.is_some() || conn.quit {
                break 'conn;
            }
            if let Some((args, ms)) = blocking {
                // A blocking consume: everything before it is answered; now wait, then answer it.
                let wait = if ms == 0 {
                    Duration::from_millis(shared.service.config.queue.max_wait_ms)
                } else {
                    Duration::from_millis(ms)
                };
                // While it waits, keep reading (a client that goes away must not be handed messages it
                // will never ack) and keep delivering pub/sub pushes to a RESP3 subscriber.
                let waiting: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> = match args {
                    Blocked::Queue(args) => Box::pin(shared.service.consume_wait(args, wait)),
                    Blocked::Coll(cmd, args, keys) => {
                        let wait = (ms > 0).then(|| Duration::from_millis(ms));
                        let svc = shared.service.clone();
                        Box::pin(async move { svc.coll_wait(cmd, args, keys, wait).await })
                    }
                    Blocked::Stream(cmd, rooms) => {
                        let wait = (ms > 0).then(|| Duration::from_millis(ms));
                        let svc = shared.service.clone();
                        Box::pin(async move {
                            match svc.stream_wait(cmd, &rooms, wait).await {
                                // A timed-out stream read answers nil (an empty array means "nothing" too).
                                Ok(Reply::Array(items)) if items.is_empty() => Ok(Reply::Nil),
                                other => other,
                            }
                        })
                    }
                };
                let mut waiting = waiting;
                let reply = loop {
                    let sink = conn.sub.clone();
                    tokio::select! {
                        r = &mut waiting => break r,
                        _ = stop.changed() => break 'conn,
                        r = socket.read_buf(&mut buf) => match r {
                            Ok(0) | Err(_) => break 'conn,
                            Ok(_) if buf.len() + parser.held_bytes() + conn.held() > max_pending => break 'conn,
                            Ok(_) => {}
                        },
                        _ = async {
                            match &sink {
                                Some(s) => s.ready().await,
                                None => std::future::pending().await,
                            }
                        } => {
                            let Some(sink) = sink else { continue };
                            if sink.is_closed() {
                                break 'conn;
                            }
                            for m in sink.drain(256) {
                                push_message(&mut out, conn.proto, &m);
                            }
                            if socket.write_all(&out).await.is_err() {
                                break 'conn;
                            }
                            out.clear();
                        }
                    }
                };
                match reply {
                    Ok(Reply::Array(items)) if items.is_empty() => encode(&mut out, &Reply::Nil, conn.proto),
                    Ok(r) => encode(&mut out, &r, conn.proto),
                    Err(e) => error(&mut out, &e),
                }
                if socket.write_all(&out).await.is_err() {
                    break 'conn;
                }
                out.clear();
                continue;
            }
            if n == 0 {
                break;
            }
        }
        if buf.len() + parser.held_bytes() + conn.held() > max_pending {
            debug!(client = id, bytes = buf.len(), "query buffer limit exceeded; closing");
            let mut msg = Vec::new();
            error_line(&mut msg, "ERR Protocol error: query buffer limit exceeded");
            let _ = socket.write_all(&msg).await;
            break;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let sink = conn.sub.clone();
        // A subscribed client is not idle while messages flow to it.
        let idle = if sink.is_some() { None } else { idle };
        let read = socket.read_buf(&mut buf);
        let result = tokio::select! {
            r = async {
                match idle {
                    Some(t) => tokio::time::timeout(t, read).await.ok(),
                    None => Some(read.await),
                }
            } => Wake::Read(r),
            _ = async {
                match &sink {
                    Some(s) => s.ready().await,
                    None => std::future::pending().await,
                }
            } => Wake::Messages,
            _ = stop.changed() => Wake::Read(None),
        };
        match result {
            Wake::Read(Some(Ok(0)) | Some(Err(_)) | None) => break, // closed, failed, idle too long, or shutting down
            Wake::Read(Some(Ok(_))) => {}
            Wake::Messages => {
                let Some(sink) = sink else { continue };
                if sink.is_closed() {
                    // Over its pub/sub output limit, as Redis's client-output-buffer-limit pubsub.
                    shared.stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                    debug!(client = id, "pub/sub subscriber too slow; closing");
                    break;
                }
                loop {
                    let msgs = sink.drain(256);
                    if msgs.is_empty() {
                        break;
                    }
                    for m in &msgs {
                        push_message(&mut out, conn.proto, m);
                    }
                    // A client too slow to take its messages is dropped as soon as its queue overflows,
                    // even while this write waits on it.
                    let written = tokio::select! {
                        r = socket.write_all(&out) => r.is_ok(),
                        _ = sink.closed() => false,
                    };
                    if !written {
                        if sink.is_closed() {
                            shared.stats.output_limit_disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        break 'conn;
                    }
                    out.clear();
                }
            }
        }
    }
    if let Some(sink) = conn.sub.take() {
        shared.service.engine.pubsub().unregister(sink.id);
    }
    let _ = socket.shutdown().await;
    shared.clients.lock().remove(&id);
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

/// A command that waits before it answers.
enum Blocked {
    Queue(ConsumeArgs),
    /// A stream read and the streams it waits on.
    Stream(Command, Vec<Bytes>),
    /// A blocking pop: the command, its arguments (no timeout), the keys it waits on.
    Coll(CollCmd, Vec<Bytes>, Vec<Bytes>),
}

impl Drop for Conn {
    /// A client that goes away stops watching its keys.
    fn drop(&mut self) {
        self.unwatch_all();
    }
}

impl Conn {
    fn unwatch_all(&mut self) {
        let reg = self.shared.service.engine.kv().watches();
        for k in &self.watched {
            self.held_bytes = self.held_bytes.saturating_sub(k.len() + 32);
        }
        reg.unwatch_many(&self.watch_flag, self.watched.drain());
        self.watch_flag.store(false, Ordering::Release);
    }

    /// Inside MULTI: queues a command (+QUEUED; `size`: the bytes it holds), or runs EXEC / DISCARD.
    fn queue_in_multi(&mut self, action: Action, size: usize, ctx: &mut ExecCtx, out: &mut Vec<u8>) {
        let queued = match action {
            Action::Exec => return self.exec(ctx, out),
            Action::Discard => {
                self.multi = None;
                self.multi_bytes = 0;
                self.multi_failed = false;
                self.unwatch_all();
                out.extend_from_slice(b"+OK\r\n");
                return;
            }
            Action::Multi => {
                error_line(out, "ERR MULTI calls can not be nested");
                return;
            }
            Action::Watch(_) => {
                error_line(out, "ERR WATCH inside MULTI is not allowed");
                return;
            }
            Action::Engine(cmd, shape) => Queued::Engine(cmd, shape),
            // Blocking commands run once, without blocking, inside a transaction (as in Redis).
            Action::CollBlock(cmd, args, _) => Queued::Engine(Command::Coll { cmd, args }, Shape::AsIs),
            Action::StreamBlock(cmd, _, _) => Queued::Engine(cmd, Shape::AsIs),
            Action::QueueConsumeBlock(args, _) => Queued::Engine(Command::QueueConsume(args), Shape::AsIs),
            Action::Ping(None) => Queued::Static(Reply::Status("PONG")),
            Action::Ping(Some(m)) | Action::Echo(m) => Queued::Static(Reply::Bulk(m)),
            Action::Unwatch => Queued::Static(Reply::Ok),
            _ => {
                error_line(out, "ERR this command is not allowed inside a transaction");
                self.multi_failed = true;
                return;
            }
        };
        let max = self.shared.service.config.resp.max_multi_commands;
        let queue = self.multi.as_mut().expect("in MULTI");
        if queue.len() >= max {
            error_line(out, &format!("ERR too many commands in MULTI (resp.max_multi_commands is {max})"));
            self.multi_failed = true;
            return;
        }
        queue.push(queued);
        self.multi_bytes += size;
        out.extend_from_slice(b"+QUEUED\r\n");
    }

    fn exec(&mut self, ctx: &mut ExecCtx, out: &mut Vec<u8>) {
        let queued = self.multi.take().unwrap_or_default();
        self.multi_bytes = 0;
        if std::mem::take(&mut self.multi_failed) {
            self.unwatch_all();
            error_line(out, "EXECABORT Transaction discarded because of previous errors.");
            return;
        }
        let mut cmds = Vec::new();
        let mut shapes = Vec::new();
        for q in &queued {
            if let Queued::Engine(cmd, shape) = q {
                cmds.push(cmd.clone());
                shapes.push(*shape);
            }
        }
        let watch = (!self.watched.is_empty()).then(|| self.watch_flag.clone());
        let result = self.shared.service.engine.exec_transaction(ctx, cmds, watch.as_deref());
        self.unwatch_all();
        let Some(replies) = result else {
            out.extend_from_slice(if self.proto == Protocol::Resp3 { b"_\r\n" } else { b"*-1\r\n" });
            return;
        };
        out.extend_from_slice(format!("*{}\r\n", queued.len()).as_bytes());
        let mut replies = replies.into_iter().zip(shapes);
        for q in queued {
            match q {
                Queued::Static(r) => encode(out, &r, self.proto),
                Queued::Engine(..) => match replies.next().expect("one reply per command") {
                    (Ok(r), shape) => {
                        let r = match (shape, r) {
                            (Shape::OkAsOne, Reply::Ok) => Reply::Int(1),
                            (Shape::OkAsOne, Reply::Nil) => Reply::Int(0),
                            (_, r) => r,
                        };
                        encode(out, &r, self.proto);
                    }
                    (Err(e), _) => error(out, &e),
                },
            }
        }
    }
}

impl Conn {
    /// Executes one command into `out`, or hands back a blocking one for the caller to await.
    fn execute(&mut self, args: &[Bytes], ctx: &mut ExecCtx, out: &mut Vec<u8>) -> Option<(Blocked, u64)> {
        let shared = &self.shared;
        if args[0].eq_ignore_ascii_case(b"post") || args[0].eq_ignore_ascii_case(b"host:") {
            // HTTP sent to the RESP port, as a web page can (cross-protocol scripting): close without a
            // reply, as Redis does.
            tracing::warn!(client = %self.entry.addr, "possible security attack: HTTP sent to the RESP port; connection closed");
            self.quit = true;
            return None;
        }
        let Some(index) = commands::lookup_index(&args[0]) else {
            error_line(out, &unknown_command(args));
            return None;
        };
        let spec = &commands::COMMANDS[index];
        self.entry.last_cmd.store(index as u64, Ordering::Relaxed);
        if self.sub_count > 0 && self.proto == Protocol::Resp2 && !SUBSCRIBED_ALLOWED.contains(&spec.name) {
            error_line(
                out,
                &format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    spec.name
                ),
            );
            return None;
        }
        if self.sub_count > 0 && self.proto == Protocol::Resp2 && spec.name == "ping" && args.len() <= 2 {
            // In subscribed mode RESP2 answers PING as a push-style array.
            push_header(out, self.proto, 2);
            bulk(out, b"pong");
            bulk(out, args.get(1).map(|a| &a[..]).unwrap_or(b""));
            return None;
        }
        if !spec.arity_ok(args.len()) {
            error(out, &commands::arity_error(spec.name));
            self.multi_failed |= self.multi.is_some();
            return None;
        }
        let action = match (spec.parse)(args) {
            Ok(a) => a,
            Err(e) => {
                error(out, &e);
                self.multi_failed |= self.multi.is_some();
                return None;
            }
        };
        if self.multi.is_some() {
            let size = args.iter().map(|a| a.len() + 32).sum();
            self.queue_in_multi(action, size, ctx, out);
            return None;
        }
        match action {
            Action::Engine(cmd, shape) => match shared.service.engine.execute(ctx, cmd) {
                Ok(reply) => {
                    let reply = match (shape, reply) {
                        (Shape::OkAsOne, Reply::Ok) => Reply::Int(1),
                        (Shape::OkAsOne, Reply::Nil) => Reply::Int(0),
                        (_, r) => r,
                    };
                    encode(out, &reply, self.proto);
                }
                Err(e) => error(out, &e),
            },
            Action::QueueConsumeBlock(args, ms) => return Some((Blocked::Queue(args), ms)),
            Action::CollBlock(cmd, args, ms) => {
                let keys = match cmd {
                    CollCmd::BLMove | CollCmd::BRPopLPush => args[..1].to_vec(),
                    _ => args.clone(),
                };
                return Some((Blocked::Coll(cmd, args, keys), ms));
            }
            Action::Multi => {
                self.multi = Some(Vec::new());
                self.multi_bytes = 0;
                self.multi_failed = false;
                out.extend_from_slice(b"+OK\r\n");
            }
            Action::Exec => error_line(out, "ERR EXEC without MULTI"),
            Action::Discard => error_line(out, "ERR DISCARD without MULTI"),
            Action::Watch(keys) => {
                let limit = shared.service.config.resp.max_watched_keys;
                let new: Vec<Bytes> = keys.into_iter().filter(|k| !self.watched.contains(k)).collect();
                if self.watched.len() + new.len() > limit {
                    error_line(out, &format!("ERR too many watched keys (resp.max_watched_keys is {limit})"));
                    return None;
                }
                shared.service.engine.kv().watches().watch_many(&self.watch_flag, &new);
                self.held_bytes += new.iter().map(|k| k.len() + 32).sum::<usize>();
                self.watched.extend(new);
                out.extend_from_slice(b"+OK\r\n");
            }
            Action::Unwatch => {
                self.unwatch_all();
                out.extend_from_slice(b"+OK\r\n");
            }
            Action::StreamBlock(mut cmd, rooms, ms) => {
                // `$` means "after the newest event now", fixed before waiting.
                if let Command::Stream(StreamCmd::XRead { streams, .. }) = &mut cmd {
                    for (key, from) in streams.iter_mut() {
                        if *from == ReadFrom::Last {
                            let last = shared.service.engine.streams().last_id(key).unwrap_or(StreamId::MIN);
                            *from = ReadFrom::After(last);
                        }
                    }
                }
                // The wait reads first (after registering for wake-ups) and answers at once when there is
                // something to read.
                return Some((Blocked::Stream(cmd, rooms), ms));
            }
            Action::Subscription(kind, on, names) => self.subscription(kind, on, names, out),
            Action::Reset => {
                if let Some(sink) = self.sub.take() {
                    shared.service.engine.pubsub().unregister(sink.id);
                }
                // As Redis's RESET: out of MULTI, nothing watched, nothing subscribed.
                self.multi = None;
                self.multi_bytes = 0;
                self.multi_failed = false;
                self.unwatch_all();
                self.held_bytes = 0;
                self.sub_count = 0;
                self.proto = Protocol::Resp2;
                self.entry.resp.store(2, Ordering::Relaxed);
                *self.entry.name.lock() = None;
                out.extend_from_slice(b"+RESET\r\n");
            }
            other => self.admin(other, out),
        }
        None
    }
}

impl Conn {
    fn subscription(&mut self, kind: Kind, on: bool, names: Vec<Bytes>, out: &mut Vec<u8>) {
        let pubsub = self.shared.service.engine.pubsub();
        let word: &[u8] = match (kind, on) {
            (Kind::Glob, true) => b"psubscribe",
            (Kind::Glob, false) => b"punsubscribe",
            (_, true) => b"subscribe",
            (_, false) => b"unsubscribe",
        };
        let cfg = &self.shared.service.config.pubsub;
        if on && self.sub.is_none() {
            let bytes = cfg.resp_max_pending_bytes.0 as usize;
            self.sub = Some(pubsub.register(cfg.resp_max_pending_messages, bytes, Overflow::Disconnect));
        }
        let Some(sink) = self.sub.clone() else {
            // Unsubscribing without ever subscribing: Redis confirms with a nil name and count 0.
            push_confirmation(out, self.proto, word, None, 0);
            return;
        };
        let names = if !on && names.is_empty() { pubsub.subscriptions(sink.id, kind) } else { names };
        if names.is_empty() {
            push_confirmation(out, self.proto, word, None, self.sub_count);
            return;
        }
        for name in names {
            if on && self.sub_count >= cfg.max_subscriptions_per_client {
                error_line(
                    out,
                    &format!(
                        "ERR too many subscriptions (pubsub.max_subscriptions_per_client is {})",
                        cfg.max_subscriptions_per_client
                    ),
                );
                return;
            }
            let before = self.sub_count;
            self.sub_count =
                if on { pubsub.subscribe(sink.id, kind, &name) } else { pubsub.unsubscribe(sink.id, kind, &name) };
            // Names held by the router count toward the client's pending bytes.
            if self.sub_count > before {
                self.held_bytes += name.len() + 64;
            } else if self.sub_count < before {
                self.held_bytes = self.held_bytes.saturating_sub(name.len() + 64);
            }
            push_confirmation(out, self.proto, word, Some(&name), self.sub_count);
        }
    }
}

/// Redis's wording: `ERR unknown command 'x', with args beginning with: 'a' 'b' `.
fn unknown_command(args: &[Bytes]) -> String {
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", String::from_utf8_lossy(&args[0]));
    for a in args[1..].iter().take(16) {
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(128).collect();
        msg.push_str(&format!("'{s}' "));
    }
    msg
}
