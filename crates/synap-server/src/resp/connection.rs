//! One RESP client: read, parse every complete command in the buffer, execute them in order, wait once
//! for the durability of the batch's writes, answer with one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use synap_core::{CommandError, ExecCtx, Reply};
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
}

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
    let mut conn = Conn { shared: shared.clone(), entry, proto: Protocol::Resp2, quit: false };
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
                let reply = tokio::select! {
                    r = shared.service.consume_wait(args, wait) => r,
                    _ = stop.changed() => break 'conn,
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
        if buf.len() > max_pending {
            debug!(client = id, bytes = buf.len(), "query buffer limit exceeded; closing");
            let mut msg = Vec::new();
            error_line(&mut msg, "ERR Protocol error: query buffer limit exceeded");
            let _ = socket.write_all(&msg).await;
            break;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let read = socket.read_buf(&mut buf);
        let result = tokio::select! {
            r = async {
                match idle {
                    Some(t) => tokio::time::timeout(t, read).await.ok(),
                    None => Some(read.await),
                }
            } => r,
            _ = stop.changed() => None,
        };
        match result {
            Some(Ok(0)) | Some(Err(_)) | None => break, // closed, failed, idle too long, or shutting down
            Some(Ok(_)) => {}
        }
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

impl Conn {
    /// Executes one command into `out`, or hands back a blocking one for the caller to await.
    fn execute(&mut self, args: &[Bytes], ctx: &mut ExecCtx, out: &mut Vec<u8>) -> Option<(ConsumeArgs, u64)> {
        let shared = &self.shared;
        let Some(index) = commands::lookup_index(&args[0]) else {
            error_line(out, &unknown_command(args));
            return None;
        };
        let spec = &commands::COMMANDS[index];
        self.entry.last_cmd.store(index as u64, Ordering::Relaxed);
        if !spec.arity_ok(args.len()) {
            error(out, &commands::arity_error(spec.name));
            return None;
        }
        let action = match (spec.parse)(args) {
            Ok(a) => a,
            Err(e) => {
                error(out, &e);
                return None;
            }
        };
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
            Action::QueueConsumeBlock(args, ms) => return Some((args, ms)),
            other => self.admin(other, out),
        }
        None
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
