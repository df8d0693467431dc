//! One command of a RESP client: looked up and parsed through the command table, queued when the client
//! is in MULTI, answered by the connection when it is a server command, run by the engine otherwise (a
//! blocking one is handed back for the connection to wait on).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use synap_core::command::{Block, Command, KeysCmd, ScriptCmd, ServerCmd, SubKind, table};
use synap_core::pubsub::Overflow;
use synap_core::{ExecCtx, Reply};
use synap_resp::encode::bulk;
use synap_resp::{Protocol, encode, error, error_line};

use super::connection::{Conn, push_header};

/// Commands a RESP2 client may send while subscribed.
const SUBSCRIBED_ALLOWED: &[&str] =
    &["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping", "quit", "reset"];

impl Conn {
    /// Executes one command into `out`, or hands back a blocking one (and its wait) for the caller.
    pub(super) fn execute(&mut self, args: &[Bytes], ctx: &mut ExecCtx, out: &mut Vec<u8>) -> Option<(Command, Block)> {
        let mut feed = false;
        // A span per command (DEBUG level: `--log-level synap_server=debug` shows it; off, it costs a
        // level check): log lines of the command carry the client and the command name.
        let _span = tracing::debug_span!("command", client = self.entry.id, name = %String::from_utf8_lossy(&args[0]))
            .entered();
        let blocked = self.run_command(args, ctx, out, &mut feed);
        // MONITOR sees a command once it ran (as Redis's `call` feeds it): with the database it left the
        // client in, never an unknown or malformed one, a command queued in MULTI when EXEC runs it.
        if feed && self.shared.monitors.active() {
            let db = self.entry.db.load(Ordering::Relaxed);
            self.shared.monitors.feed(self.entry.id, db, self.entry.addr, &redacted(args));
        }
        blocked
    }

    /// Counts a command that ran or was refused (`reply`: what it wrote), in INFO commandstats and
    /// errorstats, SLOWLOG and LATENCY. A command queued in MULTI counts when EXEC runs it; one whose
    /// reply comes later (a blocking command, AUTH, WAIT, REPLICAOF, ...) counts with that reply
    /// ([`Conn::account_pending`]). Returns whether it did slow work (a SLOWLOG entry).
    pub(super) fn account(&mut self, args: &[Bytes], reply: &[u8], took: Option<std::time::Duration>) -> bool {
        let stats = &self.shared.service.stats;
        if std::mem::take(&mut self.queued_now) {
            self.stat = None;
            return false;
        }
        let Some((index, ran)) = self.stat.take() else {
            if reply.first() == Some(&b'-') {
                stats.errors.record(reply);
            }
            return false;
        };
        if self.replies_later() && reply.is_empty() {
            self.pending_stat = Some((index, args.to_vec(), took, std::time::Instant::now()));
            return false;
        }
        self.record_reply(index, ran, args, reply, took)
    }

    /// Counts a command whose reply came after its batch (see [`Conn::account`]): `reply` is what was
    /// written for it.
    pub(super) fn account_pending(&mut self, reply: &[u8]) {
        let Some((index, args, took, handed)) = self.pending_stat.take() else { return };
        // A blocking command's time is its own, not its wait; the others' include their work after
        // the batch (a password hash, a replica's acknowledgement).
        let took = if table::COMMANDS[index].flags.contains(synap_core::command::Flags::BLOCKING) {
            took
        } else {
            took.map(|t| t + handed.elapsed())
        };
        self.record_reply(index, true, &args, reply, took);
    }

    /// Whether the command just run answers after its batch.
    fn replies_later(&self) -> bool {
        self.deferred.is_some()
            || self.wait.is_some()
            || self.replicaof.is_some()
            || self.cluster_op.is_some()
            || self.blocked_pending
    }

    fn record_reply(
        &mut self,
        index: usize,
        ran: bool,
        args: &[Bytes],
        reply: &[u8],
        took: Option<std::time::Duration>,
    ) -> bool {
        use crate::stats::Outcome;
        let stats = &self.shared.service.stats;
        let error = reply.first() == Some(&b'-');
        if error {
            stats.errors.record(reply);
        }
        let outcome = match error {
            false => Outcome::Ok,
            true if !ran || crate::stats::is_rejection(crate::stats::error_code(reply)) => Outcome::Rejected,
            true => Outcome::Failed,
        };
        stats.resp.record(index, outcome, took);
        let Some(took) = took.filter(|_| outcome != Outcome::Rejected) else { return false };
        let micros = took.as_micros().min(u64::MAX as u128) as u64;
        let spec = &table::COMMANDS[index];
        let fast = spec.flags.contains(synap_core::command::Flags::FAST);
        stats.latency.sample(if fast { "fast-command" } else { "command" }, micros / 1000);
        if !stats.slowlog.wants(micros) || spec.flags.contains(synap_core::command::Flags::SKIP_SLOWLOG) {
            return false;
        }
        let shown = redacted(args);
        let name = self.entry.name.lock().clone().unwrap_or_default();
        if stats.slowlog.may_log() {
            // The command and how long it took; its arguments only in SLOWLOG (they are user data).
            tracing::info!(
                client = self.entry.id,
                micros,
                command = %String::from_utf8_lossy(&shown[0][..shown[0].len().min(64)]),
                args = shown.len() - 1,
                "slow command"
            );
        }
        stats.slowlog.push(&shown, micros, self.entry.addr.to_string(), name);
        true
    }

    /// Whether MULTI's queue takes another command (`resp.max_multi_commands`).
    fn multi_has_room(&self) -> bool {
        self.multi.as_ref().is_some_and(|q| q.len() < self.shared.service.config.resp.max_multi_commands)
    }

    fn run_command(
        &mut self,
        args: &[Bytes],
        ctx: &mut ExecCtx,
        out: &mut Vec<u8>,
        feed: &mut bool,
    ) -> Option<(Command, Block)> {
        if args[0].eq_ignore_ascii_case(b"post") || args[0].eq_ignore_ascii_case(b"host:") {
            // HTTP sent to the RESP port, as a web page can (cross-protocol scripting): close without a
            // reply, as Redis does.
            tracing::warn!(client = %self.entry.addr, "possible security attack: HTTP sent to the RESP port; connection closed");
            self.quit = true;
            return None;
        }
        let Some(row) = table::row(&args[0]) else {
            error_line(out, &unknown_command(args));
            self.multi_failed |= self.multi.is_some();
            return None;
        };
        let spec = row.spec;
        self.stat = row.effective(args).map(|i| (i, false));
        // CLIENT LIST's `cmd=`: the subcommand's row when it has one (`client|list`).
        self.entry.last_cmd.store(self.stat.map_or(row.index, |s| s.0) as u64, Ordering::Relaxed);
        let shown = !spec.flags.contains(synap_core::command::Flags::ADMIN) && spec.name != "auth";
        // Authentication, then permissions (after the arity check, as Redis orders them).
        let acl = self.shared.service.engine.acl();
        if acl.version() != self.acl_version {
            self.refresh_user();
            if self.quit {
                return None;
            }
        }
        if !self.authenticated && spec.name != "auth" && spec.name != "hello" && spec.arity_ok(args.len()) {
            error_line(out, "NOAUTH Authentication required.");
            self.multi_failed |= self.multi.is_some();
            return None;
        }
        if !self.user.unrestricted()
            && spec.arity_ok(args.len())
            && let Err(denial) = self.user.check(row.index, args)
        {
            self.acl_denied(&denial, if self.multi.is_some() { "multi" } else { "toplevel" });
            error_line(out, &denial.error_line());
            self.multi_failed |= self.multi.is_some();
            return None;
        }
        let subscribed = self.sub_count > 0 && self.proto == Protocol::Resp2;
        if subscribed && !SUBSCRIBED_ALLOWED.contains(&spec.name) {
            let msg = format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            );
            error_line(out, &msg);
            return None;
        }
        if subscribed && spec.name == "ping" && args.len() <= 2 {
            // In subscribed mode RESP2 answers PING as a push-style array.
            push_header(out, self.proto, 2);
            bulk(out, b"pong");
            bulk(out, args.get(1).map(|a| &a[..]).unwrap_or(b""));
            return None;
        }
        // CLIENT CACHING applies to the command right after it.
        let caching_cmd = spec.name == "client" && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"caching"));
        let caching = if caching_cmd { None } else { self.caching_next.take() };
        let cmd = match row.parse(args) {
            Ok(cmd) => cmd,
            // As in Redis, inside MULTI only an unknown command, a wrong argument count or an unknown
            // subcommand is refused at once (and aborts EXEC); any other error is EXEC's reply for it.
            Err(e) if self.multi.is_some() && !table::refused_at_queue_time(&e) => {
                if shown && self.shared.monitors.active() && self.multi_has_room() {
                    self.multi_shown.push(args.to_vec());
                }
                self.queue_error(e, out);
                return None;
            }
            Err(e) => {
                // Redis's command runs and finds the error itself (it is shown), unless the table refused it.
                let ran = !table::refused_at_queue_time(&e);
                *feed = shown && ran;
                // An unknown subcommand is no command at all (Redis counts the error only).
                if matches!(&e, synap_core::CommandError::Invalid(m) if m.starts_with("unknown subcommand")) {
                    self.stat = None;
                } else if let Some(s) = &mut self.stat {
                    s.1 = ran;
                }
                error(out, &e);
                self.multi_failed |= self.multi.is_some();
                return None;
            }
        };
        // CLIENT TRACKING (default mode): this command's reads are remembered for the client.
        let tracks_reads = self.tracking.as_ref().is_some_and(|t| {
            !t.args.bcast
                && match (t.args.optin, t.args.optout) {
                    (true, _) => caching == Some(true),
                    (_, true) => caching != Some(false),
                    _ => true,
                }
        });
        let readonly = spec.flags.contains(synap_core::command::Flags::READONLY);
        let roles = &self.shared.service.replication.roles;
        if readonly && roles.fenced() {
            error(out, &roles.fenced_error());
            self.multi_failed |= self.multi.is_some();
            return None;
        }
        // Remembered before the read runs (a write that lands between the read and this would otherwise
        // find no tracker to invalidate) and again after it (a write in between took the first one);
        // inside MULTI, when it is queued and once EXEC ran it.
        let read_keys: Vec<Bytes> = if tracks_reads && readonly {
            synap_core::command::table::command_keys(args)
                .map_or_else(|_| Vec::new(), |keys| keys.into_iter().map(|(k, _)| k).collect())
        } else {
            Vec::new()
        };
        if !read_keys.is_empty() {
            self.shared.service.engine.watches().tracking.remember(self.entry.id, read_keys.iter().cloned());
        }
        if self.multi.is_some() {
            let size = args.iter().map(|a| a.len() + 32).sum();
            // Kept only for commands the queue takes (it is bounded; they count in its bytes).
            let room = self.multi_has_room();
            if room && !matches!(cmd, Command::Server(_)) {
                self.multi_reads.extend(read_keys);
            }
            let queued = !matches!(
                cmd,
                Command::Server(
                    ServerCmd::Exec | ServerCmd::Discard | ServerCmd::Multi | ServerCmd::Watch(_) | ServerCmd::Unwatch
                )
            );
            if room && queued && shown && self.shared.monitors.active() {
                self.multi_shown.push(args.to_vec());
            }
            // EXEC and DISCARD run now; the others wait for EXEC (which shows them).
            *feed = shown && matches!(cmd, Command::Server(ServerCmd::Exec | ServerCmd::Discard));
            // These run (and answer their own errors, as failures) rather than being queued.
            if !queued && let Some(s) = &mut self.stat {
                s.1 = true;
            }
            self.queue_in_multi(spec, cmd, size, ctx, out);
            return None;
        }
        *feed = shown;
        if let Some(s) = &mut self.stat {
            s.1 = true;
        }
        match cmd {
            Command::Server(c) => self.server(c, out),
            cmd => {
                if let Some(block) = cmd.block() {
                    return Some((cmd, block));
                }
                let engine = &self.shared.service.engine;
                // Scripts, SORT with BY/GET patterns (it holds every shard while it sorts), and commands
                // over several databases (they wait for every other command to finish, and MOVE copies a
                // value whole) may run long.
                let long = matches!(cmd, Command::Script(_) | Command::Kv(synap_core::command::KvCmd::PfSelfTest))
                    || matches!(&cmd, Command::Keys(KeysCmd::Sort(a)) if a.by.is_some() || !a.get.is_empty())
                    || matches!(
                        &cmd,
                        Command::Keys(
                            KeysCmd::FlushAll
                                | KeysCmd::Move { .. }
                                | KeysCmd::SwapDb { .. }
                                | KeysCmd::Copy { db: Some(_), .. }
                        )
                    );
                let waits = long || engine.scripts().running();
                // MONITOR shows a script before the commands it calls (as Redis does).
                if matches!(cmd, Command::Script(ScriptCmd::Eval { .. } | ScriptCmd::FCall { .. })) {
                    if *feed && self.shared.monitors.active() {
                        let db = self.entry.db.load(Ordering::Relaxed);
                        self.shared.monitors.feed(self.entry.id, db, self.entry.addr, args);
                    }
                    *feed = false;
                }
                // A script's reads are remembered as it makes them.
                synap_core::tracking::track_reads(tracks_reads && matches!(cmd, Command::Script(_)));
                synap_core::tracking::set_current_client(self.entry.id);
                ctx.db = self.entry.db.load(Ordering::Relaxed);
                // The user's rules reach the commands a script calls (set for scripts only: the clone is
                // a shared counter every command would touch).
                ctx.user = (matches!(cmd, Command::Script(_)) && !self.user.unrestricted()).then(|| self.user.clone());
                let reply = if waits && multi_thread() {
                    // A script may run long: its worker thread hands its other tasks over meanwhile.
                    tokio::task::block_in_place(|| engine.execute_as(ctx, spec, cmd))
                } else {
                    engine.execute_as(ctx, spec, cmd)
                };
                // SELECT changed it.
                self.entry.db.store(ctx.db, Ordering::Relaxed);
                synap_core::tracking::set_current_client(0);
                synap_core::tracking::track_reads(false);
                if !read_keys.is_empty() {
                    engine.watches().tracking.remember(self.entry.id, read_keys);
                }
                match reply {
                    Ok(reply) => encode(out, &reply, self.proto),
                    Err(e) => error(out, &e),
                }
            }
        }
        None
    }

    /// A command the connection answers itself.
    fn server(&mut self, cmd: ServerCmd, out: &mut Vec<u8>) {
        match cmd {
            ServerCmd::Multi => {
                self.multi = Some(Vec::new());
                self.multi_user = Some(self.user.clone());
                self.multi_reads.clear();
                self.multi_shown.clear();
                self.multi_bytes = 0;
                self.multi_failed = false;
                out.extend_from_slice(b"+OK\r\n");
            }
            ServerCmd::Exec => error_line(out, "ERR EXEC without MULTI"),
            ServerCmd::Discard => error_line(out, "ERR DISCARD without MULTI"),
            ServerCmd::Watch(keys) => self.watch(keys, out),
            ServerCmd::Unwatch => {
                self.unwatch_all();
                out.extend_from_slice(b"+OK\r\n");
            }
            ServerCmd::Subscribe { kind, names } => self.subscription(kind, true, names, out),
            ServerCmd::Unsubscribe { kind, names } => self.subscription(kind, false, names, out),
            ServerCmd::Reset => self.reset(out),
            // REPLICAOF and WAIT wait after the batch's replies are out (see `run_buffered`).
            ServerCmd::ReplicaOf(target) => self.replicaof = Some(target),
            ServerCmd::Cluster(args) if super::cluster::is_membership_change(&args) => self.cluster_op = Some(args),
            // AUTH, HELLO ... AUTH and the ACL changes hash passwords or touch files: after the batch, on
            // a blocking thread.
            ServerCmd::Auth { user, password } => {
                let named = user.is_some();
                let user = user.unwrap_or_else(|| bytes::Bytes::from_static(b"default"));
                self.deferred = Some(super::acl::Deferred::Auth { user, password, named, hello: None });
            }
            ServerCmd::Hello { proto, auth: Some((user, password)), setname } => {
                if let Some(p) = proto
                    && !(2..=3).contains(&p)
                {
                    return error_line(out, "NOPROTO unsupported protocol version");
                }
                self.deferred =
                    Some(super::acl::Deferred::Auth { user, password, named: true, hello: Some((proto, setname)) });
            }
            ServerCmd::Hello { .. } if !self.authenticated => error_line(
                out,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            ),
            ServerCmd::Acl { sub, args } if super::acl::is_deferred(sub) => {
                self.deferred = Some(super::acl::Deferred::Acl { sub, args });
            }
            ServerCmd::Acl { sub, args } => self.acl_now(sub, args, out),
            // CONFIG SET requirepass: the default user's password, through the same path as ACL SETUSER.
            ServerCmd::Config(synap_core::command::ConfigOp::Set(pairs))
                if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"requirepass")) =>
            {
                match &pairs[..] {
                    [(_, pass)] => self.deferred = Some(super::acl::Deferred::RequirePass(pass.clone())),
                    _ => error_line(out, "ERR CONFIG SET requirepass must be set on its own"),
                }
            }
            ServerCmd::Wait { replicas, timeout } if !self.shared.service.replication.is_replica() => {
                self.wait = Some((replicas, timeout));
            }
            other => self.admin(other, out),
        }
    }

    /// As Redis's RESET: out of MULTI, nothing watched, nothing subscribed, RESP2, no name.
    fn reset(&mut self, out: &mut Vec<u8>) {
        if let Some(sink) = self.sub.take() {
            self.shared.service.engine.pubsub().unregister(sink.id);
        }
        if self.monitor.take().is_some() {
            self.shared.monitors.remove(self.entry.id);
        }
        if self.tracking.take().is_some() {
            self.shared.service.engine.watches().tracking.unregister(self.entry.id);
        }
        self.multi = None;
        self.multi_reads.clear();
        self.multi_shown.clear();
        self.multi_bytes = 0;
        self.multi_failed = false;
        self.unwatch_all();
        self.held_bytes = 0;
        self.sub_count = 0;
        (self.sub_channels, self.sub_patterns) = (0, 0);
        self.entry.state.sub.store(0, Ordering::Relaxed);
        self.entry.state.psub.store(0, Ordering::Relaxed);
        self.proto = Protocol::Resp2;
        self.entry.resp.store(2, Ordering::Relaxed);
        *self.entry.name.lock() = None;
        self.entry.db.store(0, Ordering::Relaxed);
        // Back to the default user, authenticated only if it needs no password (as Redis's RESET).
        let acl = self.shared.service.engine.acl();
        if let Some(d) = acl.user(b"default") {
            *self.entry.user.lock() = d.name.clone();
            self.user = d;
        }
        self.authenticated = !acl.auth_required();
        self.acl_version = acl.version();
        out.extend_from_slice(b"+RESET\r\n");
    }

    /// SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE: a confirmation per name.
    fn subscription(&mut self, kind: SubKind, on: bool, names: Vec<Bytes>, out: &mut Vec<u8>) {
        let pubsub = self.shared.service.engine.pubsub();
        let word: &[u8] = match (kind, on) {
            (SubKind::Glob, true) => b"psubscribe",
            (SubKind::Glob, false) => b"punsubscribe",
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
            confirmation(out, self.proto, word, None, 0);
            return;
        };
        let names = if !on && names.is_empty() { pubsub.subscriptions(sink.id, kind) } else { names };
        if names.is_empty() {
            confirmation(out, self.proto, word, None, self.sub_count);
            return;
        }
        for name in names {
            if on && self.sub_count >= cfg.max_subscriptions_per_client {
                let limit = cfg.max_subscriptions_per_client;
                error_line(
                    out,
                    &format!("ERR too many subscriptions (pubsub.max_subscriptions_per_client is {limit})"),
                );
                return;
            }
            let before = self.sub_count;
            self.sub_count =
                if on { pubsub.subscribe(sink.id, kind, &name) } else { pubsub.unsubscribe(sink.id, kind, &name) };
            // Per kind, for CLIENT LIST.
            let kind_count = if kind == SubKind::Channel { &mut self.sub_channels } else { &mut self.sub_patterns };
            *kind_count = (*kind_count + self.sub_count).saturating_sub(before);
            // Names held by the router count toward the client's pending bytes.
            if self.sub_count > before {
                self.held_bytes += name.len() + 64;
            } else if self.sub_count < before {
                self.held_bytes = self.held_bytes.saturating_sub(name.len() + 64);
            }
            confirmation(out, self.proto, word, Some(&name), self.sub_count);
        }
        let st = &self.entry.state;
        st.sub.store(self.sub_channels as u32, Ordering::Relaxed);
        st.psub.store(self.sub_patterns as u32, Ordering::Relaxed);
    }
}

/// A subscribe/unsubscribe confirmation: `[kind, name or nil, count]`.
fn confirmation(out: &mut Vec<u8>, proto: Protocol, kind: &[u8], name: Option<&[u8]>, count: usize) {
    push_header(out, proto, 3);
    bulk(out, kind);
    match name {
        Some(n) => bulk(out, n),
        None => encode(out, &Reply::Nil, proto),
    }
    encode(out, &Reply::Int(count as i64), proto);
}

/// Whether this runtime can hand a worker's tasks over (`block_in_place`).
pub(crate) fn multi_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs blocking work from an async task: on a multi-threaded runtime the worker hands its other tasks
/// over first.
pub(crate) fn block_here<R>(f: impl FnOnce() -> R) -> R {
    if multi_thread() { tokio::task::block_in_place(f) } else { f() }
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

/// A command line as MONITOR shows it: HELLO's AUTH credentials redacted, as Redis shows them.
fn redacted(args: &[Bytes]) -> std::borrow::Cow<'_, [Bytes]> {
    // AUTH's arguments never show (MONITOR does not show AUTH at all; SLOWLOG shows it redacted).
    if args[0].eq_ignore_ascii_case(b"auth") {
        let mut out = args.to_vec();
        for a in out.iter_mut().skip(1) {
            *a = Bytes::from_static(b"(redacted)");
        }
        return std::borrow::Cow::Owned(out);
    }
    // ACL SETUSER's rules may hold passwords: shown without them.
    if args[0].eq_ignore_ascii_case(b"acl") && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"setuser")) {
        // The user name and every rule (passwords and their hashes among them), as Redis 7 redacts them.
        let mut out = args.to_vec();
        for a in out.iter_mut().skip(2) {
            *a = Bytes::from_static(b"(redacted)");
        }
        return std::borrow::Cow::Owned(out);
    }
    if args[0].eq_ignore_ascii_case(b"config")
        && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"set"))
        && args.iter().any(|a| a.eq_ignore_ascii_case(b"requirepass"))
    {
        let mut out = args.to_vec();
        for i in 2..out.len() {
            if i % 2 == 1 && out[i - 1].eq_ignore_ascii_case(b"requirepass") {
                out[i] = Bytes::from_static(b"(redacted)");
            }
        }
        return std::borrow::Cow::Owned(out);
    }
    if !args[0].eq_ignore_ascii_case(b"hello") {
        return std::borrow::Cow::Borrowed(args);
    }
    let mut out = args.to_vec();
    if let Some(at) = out.iter().position(|a| a.eq_ignore_ascii_case(b"auth")) {
        for a in out.iter_mut().skip(at + 1).take(2) {
            *a = Bytes::from_static(b"(redacted)");
        }
    }
    std::borrow::Cow::Owned(out)
}
