//! Connection and server commands: PING ECHO HELLO AUTH SELECT QUIT INFO CONFIG CLIENT COMMAND TIME.
//! They answer from server state, not from the engine's data, so they live in the front end; COMMAND
//! answers from the command table.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use synap_core::Reply;
use synap_core::command::table::{self, Spec};
use synap_core::command::{
    ClientOp, CommandOp, ConfigOp, DebugOp, KillFilter, MemoryOp, ObjectInfo, ReplyMode, ServerCmd,
};
use synap_core::glob::glob_match;
use synap_core::kv::EvictionPolicy;
use synap_core::notify::NotifyFlags;
use synap_resp::{encode, error_line};

use super::connection::Conn;
use super::{ClientEntry, RespShared};
use crate::config::{DebugAccess, FsyncMode};

pub use crate::info::COMPAT_REDIS_VERSION;

fn bulk(s: impl Into<Bytes>) -> Reply {
    Reply::Bulk(s.into())
}

impl Conn {
    /// A server or connection command that needs no more than its reply.
    pub(super) fn admin(&mut self, cmd: ServerCmd, out: &mut Vec<u8>) {
        let reply = match cmd {
            ServerCmd::Ping(None) => Reply::Status("PONG"),
            ServerCmd::Ping(Some(msg)) | ServerCmd::Echo(msg) => Reply::Bulk(msg),
            ServerCmd::Hello { proto, auth: None, setname } => {
                match proto {
                    None | Some(2) | Some(3) => {}
                    Some(_) => return error_line(out, "NOPROTO unsupported protocol version"),
                }
                self.hello_reply(proto, setname)
            }
            // Inside MULTI (elsewhere they run after their batch, on a blocking thread).
            ServerCmd::Hello { auth: Some(_), .. } | ServerCmd::Auth { .. } => {
                return error_line(out, "ERR AUTH and HELLO AUTH cannot run inside MULTI");
            }
            ServerCmd::Acl { .. } => return error_line(out, "ERR ACL cannot run inside MULTI"),
            ServerCmd::Quit => {
                self.quit = true;
                Reply::Ok
            }
            // It reads every database's shards and, asked for them, queues and streams: the worker hands
            // its other tasks over meanwhile.
            ServerCmd::Info(sections) => {
                let svc = &self.shared.service;
                bulk(super::dispatch::block_here(|| crate::info::info(svc, &sections)))
            }
            ServerCmd::Slowlog(op) => super::observe::slowlog(&self.shared.service, op),
            ServerCmd::Latency(op) => match super::observe::latency(&self.shared.service, op, self.proto) {
                Ok(r) => r,
                Err(msg) => return error_line(out, &msg),
            },
            ServerCmd::Config(ConfigOp::Get(patterns)) => {
                let params = config_params(&self.shared);
                let mut pairs = Vec::new();
                for (name, value) in params {
                    if patterns.iter().any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes())) {
                        pairs.push((bulk(name), bulk(value)));
                    }
                }
                Reply::Map(pairs)
            }
            ServerCmd::Config(ConfigOp::Set(pairs)) => match config_set(&self.shared, &pairs) {
                Ok(()) => Reply::Ok,
                Err(msg) => return error_line(out, &msg),
            },
            ServerCmd::Config(ConfigOp::ResetStat) => {
                self.shared.reset_stats();
                Reply::Ok
            }
            ServerCmd::Client(op) => match op {
                ClientOp::SetName(name) => {
                    *self.entry.name.lock() = if name.is_empty() { None } else { Some(name) };
                    Reply::Ok
                }
                ClientOp::GetName => self.entry.name.lock().clone().map(Reply::Bulk).unwrap_or(Reply::Nil),
                ClientOp::Id => Reply::Int(self.entry.id as i64),
                ClientOp::List => {
                    let clients: Vec<_> = self.shared.clients.lock().values().cloned().collect();
                    let mut s = String::new();
                    for c in clients {
                        s.push_str(&client_line(&c));
                        s.push('\n');
                    }
                    bulk(s)
                }
                ClientOp::Info => bulk(client_line(&self.entry) + "\n"),
                ClientOp::SetInfo | ClientOp::NoEvict => Reply::Ok,
                ClientOp::Reply(mode) => {
                    match mode {
                        ReplyMode::On => (self.replies_off, self.skip_replies) = (false, 0),
                        ReplyMode::Off => self.replies_off = true,
                        // This command's reply and the next one's.
                        ReplyMode::Skip => self.skip_replies = 2,
                    }
                    Reply::Ok
                }
                ClientOp::Pause { ms, writes } => {
                    let sh = &self.shared;
                    let until = sh.started.elapsed().as_millis() as u64 + ms;
                    // A longer pause, or one of more commands, wins over the one in force (as Redis).
                    let current = sh.paused_until_ms.load(Ordering::Acquire);
                    let now = sh.started.elapsed().as_millis() as u64;
                    let active = current > now;
                    if !active || !writes || until > current {
                        sh.paused_until_ms.store(until.max(if active { current } else { 0 }), Ordering::Release);
                        let writes_only = writes && (!active || sh.pause_writes_only.load(Ordering::Acquire));
                        sh.pause_writes_only.store(writes_only, Ordering::Release);
                    }
                    Reply::Ok
                }
                ClientOp::Tracking(args) => match self.set_tracking(args) {
                    Ok(()) => Reply::Ok,
                    Err(msg) => return error_line(out, &msg),
                },
                ClientOp::Caching(yes) => {
                    let mode = self.tracking.as_ref().map(|t| (t.args.optin, t.args.optout));
                    match mode {
                        Some((true, _)) if yes => self.caching_next = Some(true),
                        Some((_, true)) if !yes => self.caching_next = Some(false),
                        Some((true, _)) => {
                            return error_line(
                                out,
                                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                            );
                        }
                        Some((_, true)) => {
                            return error_line(
                                out,
                                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                            );
                        }
                        _ => {
                            return error_line(
                                out,
                                "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
                            );
                        }
                    }
                    Reply::Ok
                }
                ClientOp::GetRedir => Reply::Int(self.redirect_id()),
                ClientOp::TrackingInfo => {
                    let mut flags = Vec::new();
                    match &self.tracking {
                        None => flags.push("off"),
                        Some(t) => {
                            flags.push("on");
                            for (set, name) in [
                                (t.args.bcast, "bcast"),
                                (t.args.optin, "optin"),
                                (t.args.optout, "optout"),
                                (self.caching_next == Some(true), "caching-yes"),
                                (self.caching_next == Some(false), "caching-no"),
                                (t.args.noloop, "noloop"),
                            ] {
                                if set {
                                    flags.push(name);
                                }
                            }
                        }
                    }
                    let prefixes = self.tracking.as_ref().map(|t| t.args.prefixes.clone()).unwrap_or_default();
                    Reply::Map(vec![
                        (bulk("flags"), Reply::Set(flags.into_iter().map(bulk).collect())),
                        (bulk("redirect"), Reply::Int(self.redirect_id())),
                        (bulk("prefixes"), Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect())),
                    ])
                }
                ClientOp::Unpause => {
                    self.shared.paused_until_ms.store(0, Ordering::Release);
                    self.shared.unpaused.notify_waiters();
                    Reply::Ok
                }
                ClientOp::Kill(filter) => match self.kill_clients(&filter) {
                    Ok(r) => r,
                    Err(msg) => return error_line(out, &msg),
                },
            },
            ServerCmd::Command(op) => match op {
                CommandOp::Count => Reply::Int(table::resp_commands().count() as i64),
                CommandOp::All => Reply::Array(table::resp_commands().map(command_info).collect()),
                CommandOp::List(filter) => Reply::Array(
                    table::resp_commands()
                        .filter(|s| match &filter {
                            None => true,
                            Some((kind, v)) if kind == "aclcat" => {
                                let cat = format!("@{}", String::from_utf8_lossy(v).to_ascii_lowercase());
                                s.categories().contains(&cat.as_str())
                            }
                            Some((kind, v)) if kind == "pattern" => glob_match(v, s.name.as_bytes()),
                            // No modules.
                            Some(_) => false,
                        })
                        .map(|s| bulk(s.name))
                        .collect(),
                ),
                CommandOp::GetKeys { args, flags } => match table::command_keys(&args) {
                    Ok(keys) => Reply::Array(
                        keys.into_iter()
                            .map(|(k, write)| {
                                if !flags {
                                    return Reply::Bulk(k);
                                }
                                let f: &[&'static str] = if write { &["RW", "update"] } else { &["RO", "access"] };
                                Reply::Array(vec![Reply::Bulk(k), Reply::Array(f.iter().map(|f| bulk(*f)).collect())])
                            })
                            .collect(),
                    ),
                    Err(msg) => return error_line(out, &msg),
                },
                CommandOp::Info(names) => Reply::Array(
                    names.iter().map(|n| table::lookup(n).map(command_info).unwrap_or(Reply::Nil)).collect(),
                ),
                CommandOp::Docs(names) => {
                    let specs: Vec<&Spec> = if names.is_empty() {
                        table::resp_commands().collect()
                    } else {
                        names.iter().filter_map(|n| table::lookup(n)).collect()
                    };
                    Reply::Map(specs.into_iter().map(|s| (bulk(s.name), command_doc(s))).collect())
                }
            },
            ServerCmd::Time => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Reply::Array(vec![bulk(now.as_secs().to_string()), bulk(now.subsec_micros().to_string())])
            }
            ServerCmd::Monitor => {
                if self.monitor.is_none() {
                    let limit = self.shared.service.config.resp.max_output_bytes.0 as usize;
                    self.monitor = Some(self.shared.monitors.add(self.entry.id, limit));
                }
                Reply::Ok
            }
            ServerCmd::Config(ConfigOp::Rewrite) => {
                let shared = self.shared.clone();
                let write = move || config_rewrite(&shared);
                let done = super::dispatch::block_here(write);
                match done {
                    Ok(()) => Reply::Ok,
                    Err(e) => return error_line(out, &e),
                }
            }
            op @ (ServerCmd::Save
            | ServerCmd::BgSave
            | ServerCmd::BgRewriteAof
            | ServerCmd::LastSave
            | ServerCmd::Wait { .. }
            | ServerCmd::Debug(_)
            | ServerCmd::Memory(_)) => match self.server_op(op) {
                Ok(r) => r,
                Err(msg) => return error_line(out, &msg),
            },
            ServerCmd::Psync { replid, offset } => {
                // The connection becomes the replica's link once this batch's replies are out.
                self.psync = Some((replid, offset));
                return;
            }
            ServerCmd::Replconf(args) => {
                let mut pairs = args.chunks(2);
                for pair in pairs.by_ref() {
                    let (opt, val) = (&pair[0], &pair[1]);
                    if opt.eq_ignore_ascii_case(b"ack") || opt.eq_ignore_ascii_case(b"getack") {
                        // Acknowledgements get no reply (they come on a replica's link).
                        return;
                    }
                    if opt.eq_ignore_ascii_case(b"listening-port") {
                        match std::str::from_utf8(val).ok().and_then(|v| v.parse::<u16>().ok()) {
                            Some(p) => self.repl_port = p,
                            None => return error_line(out, "ERR value is not an integer or out of range"),
                        }
                    } else if opt.eq_ignore_ascii_case(b"node-id") || opt.eq_ignore_ascii_case(b"epoch") {
                        // A cluster member's replica: who it is and the epoch it follows in.
                        match std::str::from_utf8(val).ok().and_then(|v| v.parse::<u64>().ok()) {
                            Some(n) if opt.eq_ignore_ascii_case(b"epoch") => self.repl_epoch = n,
                            Some(n) => self.repl_node = n,
                            None => return error_line(out, "ERR value is not an integer or out of range"),
                        }
                    } else if !(opt.eq_ignore_ascii_case(b"capa")
                        || opt.eq_ignore_ascii_case(b"ip-address")
                        || opt.eq_ignore_ascii_case(b"rdb-only")
                        || opt.eq_ignore_ascii_case(b"rdb-filter-only"))
                    {
                        let msg = format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(opt));
                        return error_line(out, &msg);
                    }
                }
                Reply::Ok
            }
            // Inside MULTI or a script (outside, `run_buffered` answers it after its wait).
            ServerCmd::ReplicaOf(_) => {
                return error_line(out, "ERR REPLICAOF cannot run inside a transaction or a script");
            }
            ServerCmd::Role => self.role(),
            ServerCmd::Cluster(args) if super::cluster::is_membership_change(&args) => {
                return error_line(
                    out,
                    "ERR CLUSTER ADDNODE and REMOVENODE cannot run inside a transaction or a script",
                );
            }
            ServerCmd::Cluster(args) => match super::cluster::cluster(&self.shared.service, &args) {
                Ok(r) => r,
                Err(msg) => return error_line(out, &msg),
            },
            ServerCmd::Sentinel(args) => match super::cluster::sentinel(&self.shared.service, &args) {
                Ok(r) => r,
                Err(msg) => return error_line(out, &msg),
            },
            ServerCmd::Multi
            | ServerCmd::Exec
            | ServerCmd::Discard
            | ServerCmd::Watch(_)
            | ServerCmd::Unwatch
            | ServerCmd::Subscribe { .. }
            | ServerCmd::Unsubscribe { .. }
            | ServerCmd::Reset => unreachable!("session commands are answered by `dispatch`"),
        };
        encode(out, &reply, self.proto);
    }
}

impl Conn {
    /// ROLE: Redis's shape (offsets are LSNs).
    fn role(&self) -> Reply {
        let repl = &self.shared.service.replication;
        let last = repl.log.last_lsn() as i64;
        if repl.is_replica() {
            let (host, port, state, _, _, _) = repl.upstream();
            return Reply::Array(vec![
                bulk("slave"),
                bulk(host),
                Reply::Int(port.into()),
                bulk(state),
                Reply::Int(last),
            ]);
        }
        let replicas = repl
            .links()
            .iter()
            .map(|l| {
                Reply::Array(vec![
                    bulk(l.addr.ip().to_string()),
                    bulk(l.port.to_string()),
                    bulk(l.acked.load(Ordering::Acquire).to_string()),
                ])
            })
            .collect();
        Reply::Array(vec![bulk("master"), Reply::Int(last), Reply::Array(replicas)])
    }

    /// CLIENT TRACKING ON/OFF: invalidations are pushed on this connection, so it must speak RESP3.
    fn set_tracking(&mut self, args: synap_core::command::TrackingArgs) -> Result<(), String> {
        let tracking = &self.shared.service.engine.watches().tracking;
        if !args.on {
            if self.tracking.take().is_some() {
                tracking.unregister(self.entry.id);
            }
            self.caching_next = None;
            return Ok(());
        }
        // REDIRECT: another client delivers the invalidations (as pub/sub messages in RESP2). Without it a
        // RESP2 client gets none (Redis accepts that too).
        let target = match args.redirect {
            None => None,
            Some(id) => match u64::try_from(id).ok().and_then(|id| self.shared.clients.lock().get(&id).cloned()) {
                Some(entry) => Some(entry),
                None => return Err("ERR The client ID you want redirect to does not exist".into()),
            },
        };
        if let Some(t) = &self.tracking
            && t.args.bcast != args.bcast
        {
            return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
        let bcast = args.bcast.then(|| args.prefixes.clone());
        let tracker = match &target {
            Some(entry) => synap_core::tracking::Tracker::with_notify(
                self.entry.id,
                bcast,
                args.noloop,
                entry.redirect_ready.clone(),
            ),
            None => synap_core::tracking::Tracker::new(self.entry.id, bcast, args.noloop),
        };
        if let Some(entry) = &target {
            let mut list = entry.redirected.lock();
            list.retain(|w| w.strong_count() > 0);
            list.push(std::sync::Arc::downgrade(&tracker));
        }
        tracking.register(tracker.clone());
        self.tracking = Some(super::connection::Tracking { tracker, args });
        Ok(())
    }

    /// CLIENT GETREDIR: -1 without tracking, 0 without redirection, else the client redirected to.
    fn redirect_id(&self) -> i64 {
        match &self.tracking {
            None => -1,
            Some(t) => t.args.redirect.unwrap_or(0),
        }
    }

    /// CLIENT KILL: the clients the filter names are closed (the old form: exactly one address).
    fn kill_clients(&self, f: &KillFilter) -> Result<Reply, String> {
        let clients: Vec<_> = self.shared.clients.lock().values().cloned().collect();
        let mut n = 0;
        for c in clients {
            let matches = f.id.is_none_or(|id| c.id == id)
                && f.addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
                && f.laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
                && f.user.as_ref().is_none_or(|u| &u[..] == b"default")
                && f.kind.as_ref().is_none_or(|t| t == "normal")
                && !(f.skip_me && c.id == self.entry.id);
            if matches {
                c.killed.store(true, Ordering::Release);
                c.kill.notify_one();
                n += 1;
            }
        }
        if f.old_form {
            return if n == 0 { Err("ERR No such client".into()) } else { Ok(Reply::Ok) };
        }
        Ok(Reply::Int(n))
    }

    /// SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, WAIT, DEBUG, MEMORY.
    fn server_op(&mut self, cmd: ServerCmd) -> Result<Reply, String> {
        let db = self.entry.db.load(Ordering::Relaxed);
        let svc = self.shared.service.clone();
        let engine = &svc.engine;
        let persistence = || {
            svc.persistence
                .clone()
                .ok_or_else(|| "ERR persistence is disabled: there is no data directory to save to".to_string())
        };
        let in_progress = "ERR Background save already in progress".to_string();
        Ok(match cmd {
            ServerCmd::Save => {
                let p = persistence()?;
                let saved = if super::dispatch::multi_thread() {
                    tokio::task::block_in_place(|| p.snapshot())
                } else {
                    p.snapshot()
                };
                match saved {
                    Ok(_) => Reply::Ok,
                    Err(synap_storage::StorageError::SnapshotInProgress) => return Err(in_progress),
                    Err(e) => return Err(format!("ERR {e}")),
                }
            }
            ServerCmd::BgSave | ServerCmd::BgRewriteAof => {
                let p = persistence()?;
                if p.snapshot_in_progress() {
                    return Err(in_progress);
                }
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = p.snapshot() {
                        tracing::warn!(error = %e, "background snapshot failed");
                    }
                });
                if matches!(cmd, ServerCmd::BgSave) {
                    Reply::Simple("Background saving started".into())
                } else {
                    Reply::Simple("Background append only file rewriting started".into())
                }
            }
            ServerCmd::LastSave => {
                let started =
                    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() - svc.uptime_secs();
                Reply::Int(svc.persistence.as_ref().map_or(started, |p| p.last_save_unix()) as i64)
            }
            // Inside MULTI or a script: no waiting, the replicas that hold the client's writes now.
            ServerCmd::Wait { .. } => {
                if svc.replication.is_replica() {
                    return Err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.".into());
                }
                Reply::Int(svc.replication.acked_count(self.last_lsn) as i64)
            }
            ServerCmd::Debug(op) => {
                let allowed = match svc.config.resp.enable_debug_command {
                    DebugAccess::Yes => true,
                    DebugAccess::No => false,
                    DebugAccess::Local => self.entry.addr.ip().is_loopback(),
                };
                if !allowed {
                    return Err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.".into());
                }
                let now = engine.now_ms();
                match op {
                    DebugOp::Sleep(ms) => {
                        let sleep = || std::thread::sleep(std::time::Duration::from_millis(ms));
                        if super::dispatch::multi_thread() {
                            tokio::task::block_in_place(sleep)
                        } else {
                            sleep()
                        }
                        Reply::Ok
                    }
                    DebugOp::Digest => {
                        let walk = || engine.digest();
                        let d = super::dispatch::block_here(walk);
                        Reply::Simple(format!("{d:040x}"))
                    }
                    DebugOp::DigestValue(keys) => Reply::Array(
                        keys.iter()
                            .map(|k| Reply::Simple(format!("{:040x}", engine.db(db).key_digest(k, now).unwrap_or(0))))
                            .collect(),
                    ),
                    DebugOp::SetActiveExpire(on) => {
                        engine.kv().set_active_expiry(on);
                        Reply::Ok
                    }
                    DebugOp::Reload { save } => {
                        // Saved first as Redis saves its RDB (a server without persistence has nothing to
                        // save to), then every key read back from its records.
                        let run = || -> Result<(), String> {
                            if save && let Some(p) = &svc.persistence {
                                p.snapshot().map_err(|e| format!("ERR Error trying to save the DB: {e}"))?;
                            }
                            engine.reload().map_err(|e| e.to_string())
                        };
                        super::dispatch::block_here(run)?;
                        Reply::Ok
                    }
                    DebugOp::Object(key) => {
                        let Some(size) = engine.db(db).memory_usage(&key, now) else {
                            return Err("ERR no such key".into());
                        };
                        let ask = |info| {
                            let cmd = synap_core::Command::Keys(synap_core::command::KeysCmd::Object {
                                info,
                                key: key.clone(),
                            });
                            engine.execute(&mut synap_core::ExecCtx { db, ..Default::default() }, cmd)
                        };
                        let enc = match ask(ObjectInfo::Encoding) {
                            Ok(Reply::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
                            _ => "unknown".into(),
                        };
                        let idle = match ask(ObjectInfo::IdleTime) {
                            Ok(Reply::Int(n)) => n,
                            _ => 0,
                        };
                        Reply::Simple(format!(
                            "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{size} lru:0 lru_seconds_idle:{idle}"
                        ))
                    }
                    DebugOp::Help => Reply::Array(
                        [
                            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                            "DIGEST",
                            "    Output a hex signature representing the current dataset.",
                            "DIGEST-VALUE <key> [<key> ...]",
                            "    Output a hex signature of the values of the given keys.",
                            "OBJECT <key>",
                            "    Show low level info about the key and associated value.",
                            "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
                            "    Save a snapshot (not with NOSAVE) and read every key back from its records.",
                            "SET-ACTIVE-EXPIRE <0|1>",
                            "    Setting it to 0 disables expiring keys in the background when they are not accessed.",
                            "SLEEP <seconds>",
                            "    Stop the client for <seconds>. Decimals are allowed.",
                        ]
                        .into_iter()
                        .map(|l| Reply::Simple(l.into()))
                        .collect(),
                    ),
                }
            }
            ServerCmd::Memory(op) => {
                let used = engine.used_memory() as u64;
                let (allocated, _, resident) = crate::info::allocator_bytes();
                match op {
                    MemoryOp::Usage(key) => {
                        engine.db(db).memory_usage(&key, engine.now_ms()).map_or(Reply::Nil, |n| Reply::Int(n as i64))
                    }
                    MemoryOp::Stats => {
                        let keys = engine.kv_stats().keys as u64;
                        let max = engine.kv().stats().max_memory as u64;
                        Reply::Map(vec![
                            (bulk("peak.allocated"), Reply::Int(allocated.max(used) as i64)),
                            (bulk("total.allocated"), Reply::Int(allocated as i64)),
                            (bulk("dataset.bytes"), Reply::Int(used as i64)),
                            (bulk("keys.count"), Reply::Int(keys as i64)),
                            (bulk("keys.bytes-per-key"), Reply::Int(used.checked_div(keys).unwrap_or(0) as i64)),
                            (bulk("allocator.allocated"), Reply::Int(allocated as i64)),
                            (bulk("allocator.resident"), Reply::Int(resident as i64)),
                            (bulk("maxmemory"), Reply::Int(max as i64)),
                        ])
                    }
                    MemoryOp::Doctor => {
                        let max = engine.kv().stats().max_memory as u64;
                        let text = if max > 0 && used * 10 > max * 9 {
                            format!(
                                "The data uses {used} bytes, more than 90% of maxmemory ({max}): writes will soon evict keys or be refused (maxmemory-policy)."
                            )
                        } else if resident > 0
                            && allocated > 0
                            && resident > allocated.saturating_mul(3) / 2 + (64 << 20)
                        {
                            format!(
                                "The process holds {resident} bytes resident for {allocated} bytes allocated: memory is fragmented; MEMORY PURGE may return some of it."
                            )
                        } else {
                            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.".into()
                        };
                        Reply::Bulk(text.into())
                    }
                    MemoryOp::MallocStats => {
                        Reply::Bulk(format!("allocated: {allocated}\nresident: {resident}\ndataset: {used}\n").into())
                    }
                    MemoryOp::Purge => Reply::Ok,
                    MemoryOp::Help => Reply::Array(
                        [
                            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                            "DOCTOR",
                            "    Return memory problems reports.",
                            "MALLOC-STATS",
                            "    Return internal statistics report from the memory allocator.",
                            "PURGE",
                            "    Attempt to purge dirty pages for reclamation by the allocator.",
                            "STATS",
                            "    Return information about the memory usage of the server.",
                            "USAGE <key> [SAMPLES <count>]",
                            "    Return memory in bytes used by <key> and its value.",
                        ]
                        .into_iter()
                        .map(|l| Reply::Simple(l.into()))
                        .collect(),
                    ),
                }
            }
            other => return Err(format!("ERR {} is not a server operation", other.name())),
        })
    }
}

pub(super) fn client_line(c: &ClientEntry) -> String {
    let name = c.name.lock().clone().map(|n| String::from_utf8_lossy(&n).to_string()).unwrap_or_default();
    let age = c.created.elapsed().as_secs();
    let idle_ms = (c.created.elapsed().as_millis() as u64).saturating_sub(c.last_active_ms.load(Ordering::Relaxed));
    let cmd = table::COMMANDS.get(c.last_cmd.load(Ordering::Relaxed) as usize).map(|s| s.name).unwrap_or("NULL");
    let st = &c.state;
    let multi = st.multi.load(Ordering::Relaxed);
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={multi} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        name,
        age,
        idle_ms / 1000,
        st.flag_letters(),
        c.db.load(Ordering::Relaxed),
        st.sub.load(Ordering::Relaxed),
        st.psub.load(Ordering::Relaxed),
        st.qbuf.load(Ordering::Relaxed),
        st.omem.load(Ordering::Relaxed),
        cmd,
        String::from_utf8_lossy(&c.user.lock()),
        c.resp.load(Ordering::Relaxed)
    )
}

/// COMMAND INFO's entry: name, arity, flags, key positions, ACL categories, tips, key specs, subcommands.
fn command_info(s: &Spec) -> Reply {
    Reply::Array(vec![
        bulk(s.name),
        Reply::Int(s.arity as i64),
        Reply::Array(s.flags.names().map(Reply::Status).collect()),
        Reply::Int(s.keys.first as i64),
        Reply::Int(s.keys.last as i64),
        Reply::Int(s.keys.step as i64),
        Reply::Array(s.categories().into_iter().map(Reply::Status).collect()),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(table::subcommands(s.name).map(command_info).collect()),
    ])
}

fn command_doc(s: &Spec) -> Reply {
    let mut doc =
        vec![(bulk("summary"), bulk(s.summary)), (bulk("since"), bulk("1.0.0")), (bulk("group"), bulk(s.group))];
    let subs: Vec<(Reply, Reply)> = table::subcommands(s.name).map(|c| (bulk(c.name), command_doc(c))).collect();
    if !subs.is_empty() {
        doc.push((bulk("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(doc)
}

/// The CONFIG GET parameters a Redis client may ask for, with Synap's values.
/// The settings CONFIG SET changes at run time.
const MUTABLE: &[&str] = &[
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "notify-keyspace-events",
    "timeout",
    "busy-reply-threshold",
    "lua-time-limit",
    "hash-max-listpack-entries",
    "hash-max-ziplist-entries",
    "hash-max-listpack-value",
    "hash-max-ziplist-value",
    "zset-max-listpack-entries",
    "zset-max-ziplist-entries",
    "zset-max-listpack-value",
    "zset-max-ziplist-value",
    "set-max-intset-entries",
    "set-max-listpack-entries",
    "set-max-listpack-value",
    "list-max-listpack-size",
    "list-max-ziplist-size",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
];

/// The encoding thresholds: Redis's name, its older alias, and the setting.
fn encoding_settings() -> [(&'static str, Option<&'static str>, Threshold); 8] {
    let e = &synap_core::kv::ENCODINGS;
    [
        ("hash-max-listpack-entries", Some("hash-max-ziplist-entries"), Threshold::Size(&e.hash_max_listpack_entries)),
        ("hash-max-listpack-value", Some("hash-max-ziplist-value"), Threshold::Size(&e.hash_max_listpack_value)),
        ("zset-max-listpack-entries", Some("zset-max-ziplist-entries"), Threshold::Size(&e.zset_max_listpack_entries)),
        ("zset-max-listpack-value", Some("zset-max-ziplist-value"), Threshold::Size(&e.zset_max_listpack_value)),
        ("set-max-intset-entries", None, Threshold::Size(&e.set_max_intset_entries)),
        ("set-max-listpack-entries", None, Threshold::Size(&e.set_max_listpack_entries)),
        ("set-max-listpack-value", None, Threshold::Size(&e.set_max_listpack_value)),
        ("list-max-listpack-size", Some("list-max-ziplist-size"), Threshold::Int(&e.list_max_listpack_size)),
    ]
}

enum Threshold {
    Size(&'static std::sync::atomic::AtomicUsize),
    Int(&'static std::sync::atomic::AtomicI64),
}

impl Threshold {
    fn get(&self) -> String {
        match self {
            Threshold::Size(a) => a.load(Ordering::Relaxed).to_string(),
            Threshold::Int(a) => a.load(Ordering::Relaxed).to_string(),
        }
    }
}

/// Redis settings that exist but are fixed at start: CONFIG SET answers Redis's "immutable" error.
const IMMUTABLE: &[&str] = &[
    "daemonize",
    "databases",
    "io-threads",
    "supervised",
    "pidfile",
    "logfile",
    "syslog-enabled",
    "unixsocket",
    "aclfile",
    "appendfilename",
    "appenddirname",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
];

/// A Redis memory value: digits with an optional unit (`k`, `kb`, `m`, `mb`, `g`, `gb`; `k` is 1000,
/// `kb` 1024), as Redis's `memtoull` reads it.
fn memory_value(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// CONFIG SET: every pair is checked first, then all are applied (none when one is refused), with
/// Redis's error texts.
fn config_set(shared: &RespShared, pairs: &[(Bytes, Bytes)]) -> Result<(), String> {
    let failed =
        |name: &str, why: &str| format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
    let known: Vec<&'static str> = config_params(shared).into_iter().map(|(n, _)| n).collect();
    let mut seen = Vec::new();
    let mut apply: Vec<Box<dyn Fn() + '_>> = Vec::new();
    let engine = &shared.service.engine;
    for (name, value) in pairs {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).to_string();
        if !MUTABLE.contains(&name.as_str()) {
            if known.contains(&name.as_str()) || IMMUTABLE.contains(&name.as_str()) {
                return Err(failed(&name, "can't set immutable config"));
            }
            return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'"));
        }
        // lua-time-limit is busy-reply-threshold's old name, `*-ziplist-*` the thresholds' old names: the
        // same settings.
        let canonical = match name.as_str() {
            "lua-time-limit" => "busy-reply-threshold".to_string(),
            n => encoding_settings()
                .into_iter()
                .find(|(_, alias, _)| *alias == Some(n))
                .map_or(name.clone(), |(c, _, _)| c.to_string()),
        };
        if seen.contains(&canonical) {
            return Err(failed(&name, "duplicate parameter"));
        }
        seen.push(canonical.clone());
        let int = |lo: i64, hi: i64| -> Result<i64, String> {
            let n: i64 = value.parse().map_err(|_| failed(&name, "argument couldn't be parsed into an integer"))?;
            if !(lo..=hi).contains(&n) {
                return Err(failed(&name, &format!("argument must be between {lo} and {hi} inclusive")));
            }
            Ok(n)
        };
        let e = engine;
        match canonical.as_str() {
            "maxmemory" => {
                let bytes = memory_value(&value).ok_or_else(|| failed(&name, "argument must be a memory value"))?;
                apply.push(Box::new(move || e.kv().set_max_memory(bytes as usize)));
            }
            "maxmemory-policy" => {
                let policy: EvictionPolicy = value.parse().map_err(|_| {
                    failed(
                        &name,
                        "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, \
                         volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
                    )
                })?;
                apply.push(Box::new(move || e.kv().set_eviction_policy(policy)));
            }
            "maxmemory-samples" => {
                let n = int(1, i32::MAX as i64)? as usize;
                apply.push(Box::new(move || e.kv().set_eviction_samples(n)));
            }
            "notify-keyspace-events" => {
                let flags = NotifyFlags::parse(&value)
                    .map_err(|_| failed(&name, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."))?;
                apply.push(Box::new(move || e.set_notify_flags(flags)));
            }
            "slowlog-log-slower-than" => {
                let us = int(-1, i64::MAX)?;
                let log = &shared.service.stats.slowlog;
                apply.push(Box::new(move || log.slower_than_us.store(us, Ordering::Relaxed)));
            }
            "slowlog-max-len" => {
                let n = int(0, crate::stats::SLOWLOG_MAX_LEN as i64)?;
                let log = &shared.service.stats.slowlog;
                apply.push(Box::new(move || log.set_max_len(n as u64)));
            }
            "latency-monitor-threshold" => {
                let ms = int(0, i64::MAX)? as u64;
                let m = &shared.service.stats.latency;
                apply.push(Box::new(move || m.threshold_ms.store(ms, Ordering::Relaxed)));
            }
            "timeout" => {
                let secs = int(0, i32::MAX as i64)? as u64;
                apply.push(Box::new(move || shared.idle_timeout_secs.store(secs, Ordering::Relaxed)));
            }
            c if c.contains("-max-") => {
                let Some((_, _, setting)) = encoding_settings().into_iter().find(|(n, _, _)| *n == c) else {
                    return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'"));
                };
                match setting {
                    Threshold::Size(a) => {
                        let n = int(0, i64::MAX)? as usize;
                        apply.push(Box::new(move || a.store(n, Ordering::Relaxed)));
                    }
                    Threshold::Int(a) => {
                        let n = int(i32::MIN as i64, i32::MAX as i64)?;
                        apply.push(Box::new(move || a.store(n, Ordering::Relaxed)));
                    }
                }
            }
            _ => {
                let ms = int(0, i64::MAX)? as u64;
                apply.push(Box::new(move || e.scripts().set_busy_ms(ms)));
            }
        }
    }
    for f in apply {
        f();
    }
    Ok(())
}

/// CONFIG REWRITE: the settings CONFIG SET changes are written, with their values in force, into the
/// YAML file the server started from (its other keys kept; its comments are not). The new text must load
/// as a configuration before it replaces the file (written aside, synced, renamed, directory synced).
fn config_rewrite(shared: &RespShared) -> Result<(), String> {
    use serde_norway::Value;
    let Some(path) = shared.service.config.config_file.clone() else {
        return Err("ERR The server is running without a config file".into());
    };
    // One rewrite at a time: they share the file written aside.
    static REWRITING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one = REWRITING.lock();
    let fail = |e: &dyn std::fmt::Display| format!("ERR Rewriting config file: {e}");
    let text = std::fs::read_to_string(&path).map_err(|e| fail(&e))?;
    let mut doc: Value = if text.trim().is_empty() {
        Value::Mapping(Default::default())
    } else {
        serde_norway::from_str(&text).map_err(|e| fail(&e))?
    };
    let engine = &shared.service.engine;
    let stats = engine.kv().stats();
    let encodings = serde_norway::to_value(crate::config::EncodingsSection::current()).map_err(|e| fail(&e))?;
    let settings: [(&str, &str, Value); 7] = [
        ("kv", "max_memory", Value::from(stats.max_memory as u64)),
        ("kv", "eviction_policy", Value::from(stats.eviction.name())),
        ("kv", "eviction_samples", Value::from(engine.kv().eviction_samples() as u64)),
        ("kv", "encodings", encodings),
        ("pubsub", "notify_keyspace_events", Value::from(engine.notify_flags().to_redis_string())),
        ("resp", "idle_timeout_secs", Value::from(shared.idle_timeout_secs.load(Ordering::Relaxed))),
        ("resp", "busy_reply_threshold_ms", Value::from(engine.scripts().busy_ms())),
    ];
    let Value::Mapping(root) = &mut doc else { return Err(fail(&"the file is not a YAML mapping")) };
    for (section, key, value) in settings {
        let entry = root.entry(Value::from(section)).or_insert_with(|| Value::Mapping(Default::default()));
        let Value::Mapping(map) = entry else { return Err(fail(&format!("`{section}` is not a mapping"))) };
        map.insert(Value::from(key), value);
    }
    let new_text = serde_norway::to_string(&doc).map_err(|e| fail(&e))?;
    crate::config::Config::from_yaml(&new_text).map_err(|e| fail(&format!("{e:#}")))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.rewrite", path.file_name().and_then(|n| n.to_str()).unwrap_or("config")));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(new_text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(&e)
    })
}

fn config_params(shared: &RespShared) -> Vec<(&'static str, String)> {
    let cfg = &shared.service.config;
    let engine = &shared.service.engine;
    let stats = engine.kv().stats();
    let (host, port) = (shared.bound.ip().to_string(), shared.bound.port().to_string());
    let busy = engine.scripts().busy_ms().to_string();
    let mut params = vec![
        ("maxmemory", stats.max_memory.to_string()),
        ("maxmemory-policy", stats.eviction.name().to_string()),
        ("maxmemory-samples", engine.kv().eviction_samples().to_string()),
        ("busy-reply-threshold", busy.clone()),
        ("lua-time-limit", busy),
        ("appendonly", if cfg.persistence.enabled { "yes" } else { "no" }.to_string()),
        (
            "appendfsync",
            match cfg.persistence.fsync {
                FsyncMode::Always => "always",
                FsyncMode::Periodic => "everysec",
                FsyncMode::Never => "no",
            }
            .to_string(),
        ),
        ("save", String::new()),
        ("databases", engine.databases().to_string()),
        ("timeout", shared.idle_timeout_secs.load(Ordering::Relaxed).to_string()),
        ("maxclients", cfg.resp.max_connections.to_string()),
        ("bind", host),
        ("port", port),
        ("dir", cfg.data_dir.display().to_string()),
        ("proto-max-bulk-len", cfg.resp.max_bulk_bytes.0.to_string()),
        ("client-query-buffer-limit", cfg.resp.max_pending_bytes.0.to_string()),
        ("notify-keyspace-events", engine.notify_flags().to_redis_string()),
        ("cluster-enabled", "no".into()),
        ("slowlog-log-slower-than", shared.service.stats.slowlog.slower_than_us.load(Ordering::Relaxed).to_string()),
        ("slowlog-max-len", shared.service.stats.slowlog.max_len.load(Ordering::Relaxed).to_string()),
        ("latency-monitor-threshold", shared.service.stats.latency.threshold_ms.load(Ordering::Relaxed).to_string()),
        ("latency-tracking", if shared.service.stats.timing { "yes" } else { "no" }.into()),
        ("latency-tracking-info-percentiles", "50 99 99.9".into()),
        // Never the password: the hash the default user holds, or nothing.
        (
            "requirepass",
            engine
                .acl()
                .pinned_password()
                .or_else(|| {
                    engine.acl().user(b"default").filter(|d| !d.nopass).and_then(|d| d.passwords.first().cloned())
                })
                .unwrap_or_default(),
        ),
        ("protected-mode", if cfg.auth.protected_mode { "yes" } else { "no" }.into()),
        ("aclfile", cfg.auth.aclfile.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
    ];
    for (name, alias, setting) in encoding_settings() {
        params.push((name, setting.get()));
        if let Some(alias) = alias {
            params.push((alias, setting.get()));
        }
    }
    params
}
