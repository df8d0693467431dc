//! Commands a front end answers itself, from connection and server state rather than from the data:
//! connection (PING, HELLO, CLIENT, ...), transactions (MULTI, WATCH, ...), subscriptions, introspection
//! (INFO, CONFIG, COMMAND, TIME).

use bytes::Bytes;

use super::Command;
use super::args::{Args, arity_error, is, unknown_subcommand};
use super::pubsub::SubKind;
use crate::error::{CommandError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    SetName(Bytes),
    GetName,
    Id,
    List,
    Info,
    SetInfo,
    NoEvict,
    /// CLIENT KILL: the old form (`addr`), or filters (ID, ADDR, LADDR, USER, SKIPME, TYPE).
    Kill(KillFilter),
    /// CLIENT REPLY ON|OFF|SKIP.
    Reply(ReplyMode),
    /// CLIENT PAUSE ms [WRITE|ALL] (`writes`: WRITE).
    Pause {
        ms: u64,
        writes: bool,
    },
    Unpause,
    /// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP].
    Tracking(TrackingArgs),
    /// CLIENT CACHING YES|NO.
    Caching(bool),
    GetRedir,
    TrackingInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackingArgs {
    pub on: bool,
    pub redirect: Option<i64>,
    pub prefixes: Vec<Bytes>,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// Which clients CLIENT KILL closes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<Bytes>,
    /// Only clients of this type (`normal`, `pubsub`, `master`, `replica`/`slave`).
    pub kind: Option<String>,
    /// The calling client is spared (the default of the filter form).
    pub skip_me: bool,
    /// The old form: one address, an error when no client has it.
    pub old_form: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebugOp {
    /// DEBUG SLEEP, in ms.
    Sleep(u64),
    Digest,
    DigestValue(Vec<Bytes>),
    SetActiveExpire(bool),
    Object(Bytes),
    /// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: `save` a snapshot first (not with NOSAVE).
    Reload {
        save: bool,
    },
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryOp {
    Usage(Bytes),
    Stats,
    Doctor,
    MallocStats,
    Purge,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlowlogOp {
    /// SLOWLOG GET [count]: the newest `count` entries (10 by default; -1: all).
    Get(i64),
    Len,
    Reset,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatencyOp {
    Latest,
    History(Bytes),
    /// LATENCY RESET [event ...] (none: every event).
    Reset(Vec<Bytes>),
    Doctor,
    Graph(Bytes),
    /// LATENCY HISTOGRAM [command ...] (none: every command called).
    Histogram(Vec<Bytes>),
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOp {
    Count,
    Docs(Vec<Bytes>),
    Info(Vec<Bytes>),
    /// COMMAND with no subcommand: every command's info.
    All,
    /// COMMAND LIST [FILTERBY MODULE name | ACLCAT cat | PATTERN glob]: names.
    List(Option<(String, Bytes)>),
    /// COMMAND GETKEYS and GETKEYSANDFLAGS: the keys of a command line.
    GetKeys {
        args: Vec<Bytes>,
        flags: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Get(Vec<Bytes>),
    /// Parameter-value pairs, applied all or none.
    Set(Vec<(Bytes, Bytes)>),
    ResetStat,
    Rewrite,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCmd {
    Ping(Option<Bytes>),
    Echo(Bytes),
    Hello {
        proto: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    /// AUTH [username] password.
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    /// ACL and its subcommand (`sub` is the row name, `acl|setuser`), with the arguments after it.
    Acl {
        sub: &'static str,
        args: Vec<Bytes>,
    },
    Quit,
    Reset,
    Info(Vec<String>),
    Config(ConfigOp),
    Client(ClientOp),
    Command(CommandOp),
    Time,
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
    Subscribe {
        kind: SubKind,
        names: Vec<Bytes>,
    },
    Unsubscribe {
        kind: SubKind,
        names: Vec<Bytes>,
    },
    /// SAVE (in the foreground), BGSAVE, BGREWRITEAOF (both snapshots in the background), LASTSAVE.
    Save,
    BgSave,
    BgRewriteAof,
    LastSave,
    /// WAIT numreplicas timeout (ms, 0: forever).
    Wait {
        replicas: i64,
        timeout: u64,
    },
    Debug(DebugOp),
    Memory(MemoryOp),
    Slowlog(SlowlogOp),
    Latency(LatencyOp),
    /// MONITOR: this connection receives every command the server runs from now on.
    Monitor,
    /// PSYNC replid offset (SYNC: `?` and -1): the connection becomes a replica's link.
    Psync {
        replid: Bytes,
        offset: i64,
    },
    /// REPLCONF option value ...: a replica's handshake and acknowledgements.
    Replconf(Vec<Bytes>),
    /// REPLICAOF host port (SLAVEOF), or NO ONE (`None`).
    ReplicaOf(Option<(Bytes, u16)>),
    Role,
    /// CLUSTER subcommand args...: this node's failover cluster (the server parses the rest).
    Cluster(Vec<Bytes>),
    /// SENTINEL subcommand args...: where the primary is, for Sentinel-aware clients.
    Sentinel(Vec<Bytes>),
}

impl ServerCmd {
    pub fn name(&self) -> &'static str {
        match self {
            ServerCmd::Ping(_) => "ping",
            ServerCmd::Echo(_) => "echo",
            ServerCmd::Hello { .. } => "hello",
            ServerCmd::Auth { .. } => "auth",
            ServerCmd::Acl { sub, .. } => sub,
            ServerCmd::Quit => "quit",
            ServerCmd::Reset => "reset",
            ServerCmd::Info(_) => "info",
            ServerCmd::Config(ConfigOp::Get(_)) => "config|get",
            ServerCmd::Config(ConfigOp::Set(_)) => "config|set",
            ServerCmd::Config(ConfigOp::ResetStat) => "config|resetstat",
            ServerCmd::Config(ConfigOp::Rewrite) => "config|rewrite",
            ServerCmd::Client(ClientOp::Kill(_)) => "client|kill",
            ServerCmd::Client(ClientOp::Reply(_)) => "client|reply",
            ServerCmd::Client(ClientOp::Pause { .. }) => "client|pause",
            ServerCmd::Client(ClientOp::Unpause) => "client|unpause",
            ServerCmd::Client(ClientOp::Tracking(_)) => "client|tracking",
            ServerCmd::Client(ClientOp::Caching(_)) => "client|caching",
            ServerCmd::Client(ClientOp::GetRedir) => "client|getredir",
            ServerCmd::Client(ClientOp::TrackingInfo) => "client|trackinginfo",
            ServerCmd::Command(CommandOp::All) => "command",
            ServerCmd::Command(CommandOp::GetKeys { flags: false, .. }) => "command|getkeys",
            ServerCmd::Command(CommandOp::GetKeys { flags: true, .. }) => "command|getkeysandflags",
            ServerCmd::Save => "save",
            ServerCmd::BgSave => "bgsave",
            ServerCmd::BgRewriteAof => "bgrewriteaof",
            ServerCmd::LastSave => "lastsave",
            ServerCmd::Wait { .. } => "wait",
            ServerCmd::Monitor => "monitor",
            ServerCmd::Psync { .. } => "psync",
            ServerCmd::Replconf(_) => "replconf",
            ServerCmd::ReplicaOf(_) => "replicaof",
            ServerCmd::Role => "role",
            ServerCmd::Cluster(_) => "cluster",
            ServerCmd::Sentinel(_) => "sentinel",
            ServerCmd::Debug(_) => "debug",
            ServerCmd::Memory(MemoryOp::Usage(_)) => "memory|usage",
            ServerCmd::Memory(MemoryOp::Stats) => "memory|stats",
            ServerCmd::Memory(MemoryOp::Doctor) => "memory|doctor",
            ServerCmd::Memory(MemoryOp::MallocStats) => "memory|malloc-stats",
            ServerCmd::Memory(MemoryOp::Purge) => "memory|purge",
            ServerCmd::Memory(MemoryOp::Help) => "memory|help",
            ServerCmd::Slowlog(SlowlogOp::Get(_)) => "slowlog|get",
            ServerCmd::Slowlog(SlowlogOp::Len) => "slowlog|len",
            ServerCmd::Slowlog(SlowlogOp::Reset) => "slowlog|reset",
            ServerCmd::Slowlog(SlowlogOp::Help) => "slowlog|help",
            ServerCmd::Latency(LatencyOp::Latest) => "latency|latest",
            ServerCmd::Latency(LatencyOp::History(_)) => "latency|history",
            ServerCmd::Latency(LatencyOp::Reset(_)) => "latency|reset",
            ServerCmd::Latency(LatencyOp::Doctor) => "latency|doctor",
            ServerCmd::Latency(LatencyOp::Graph(_)) => "latency|graph",
            ServerCmd::Latency(LatencyOp::Histogram(_)) => "latency|histogram",
            ServerCmd::Latency(LatencyOp::Help) => "latency|help",
            ServerCmd::Client(ClientOp::SetName(_)) => "client|setname",
            ServerCmd::Client(ClientOp::GetName) => "client|getname",
            ServerCmd::Client(ClientOp::Id) => "client|id",
            ServerCmd::Client(ClientOp::List) => "client|list",
            ServerCmd::Client(ClientOp::Info) => "client|info",
            ServerCmd::Client(ClientOp::SetInfo) => "client|setinfo",
            ServerCmd::Client(ClientOp::NoEvict) => "client|no-evict",
            ServerCmd::Command(CommandOp::Count) => "command|count",
            ServerCmd::Command(CommandOp::Docs(_)) => "command|docs",
            ServerCmd::Command(CommandOp::Info(_)) => "command|info",
            ServerCmd::Command(CommandOp::List(_)) => "command|list",
            ServerCmd::Time => "time",
            ServerCmd::Multi => "multi",
            ServerCmd::Exec => "exec",
            ServerCmd::Discard => "discard",
            ServerCmd::Watch(_) => "watch",
            ServerCmd::Unwatch => "unwatch",
            ServerCmd::Subscribe { kind: SubKind::Glob, .. } => "psubscribe",
            ServerCmd::Subscribe { .. } => "subscribe",
            ServerCmd::Unsubscribe { kind: SubKind::Glob, .. } => "punsubscribe",
            ServerCmd::Unsubscribe { .. } => "unsubscribe",
        }
    }
}

fn server(c: ServerCmd) -> Result<Command> {
    Ok(Command::Server(c))
}

pub(super) fn ping(a: &mut Args<'_>) -> Result<Command> {
    match a.remaining() {
        0 => server(ServerCmd::Ping(None)),
        1 => server(ServerCmd::Ping(Some(a.next_bytes()?))),
        _ => Err(arity_error("ping")),
    }
}

pub(super) fn echo(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Echo(a.next_bytes()?))
}

pub(super) fn hello(a: &mut Args<'_>) -> Result<Command> {
    let mut proto = None;
    let (mut auth, mut setname) = (None, None);
    if !a.is_empty() {
        let v = a.next_int_or(|| CommandError::Invalid("Protocol version is not an integer or out of range".into()))?;
        proto = Some(v);
    }
    while let Some(w) = a.peek() {
        if is(w, "auth") && a.remaining() >= 3 {
            a.next_bytes()?;
            auth = Some((a.next_bytes()?, a.next_bytes()?));
        } else if is(w, "setname") && a.remaining() >= 2 {
            a.next_bytes()?;
            setname = Some(a.next_bytes()?);
        } else {
            return Err(CommandError::Invalid(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(w)
            )));
        }
    }
    server(ServerCmd::Hello { proto, auth, setname })
}

pub(super) fn auth(a: &mut Args<'_>) -> Result<Command> {
    let mut rest = a.rest();
    match rest.len() {
        1 => server(ServerCmd::Auth { user: None, password: rest.remove(0) }),
        2 => {
            let password = rest.remove(1);
            server(ServerCmd::Auth { user: Some(rest.remove(0)), password })
        }
        _ => Err(CommandError::Syntax),
    }
}

/// ACL's subcommands (each has a row `acl|<name>`).
const ACL_SUBS: &[&str] = &[
    "acl|cat",
    "acl|deluser",
    "acl|dryrun",
    "acl|genpass",
    "acl|getuser",
    "acl|help",
    "acl|list",
    "acl|load",
    "acl|log",
    "acl|save",
    "acl|setuser",
    "acl|users",
    "acl|whoami",
];

pub(super) fn acl(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let name = format!("acl|{}", String::from_utf8_lossy(&sub).to_ascii_lowercase());
    let Some(sub) = ACL_SUBS.iter().find(|s| **s == name) else {
        return Err(CommandError::Invalid(format!(
            "unknown subcommand '{}'. Try ACL HELP.",
            String::from_utf8_lossy(&sub)
        )));
    };
    server(ServerCmd::Acl { sub, args: a.rest() })
}

pub(super) fn quit(a: &mut Args<'_>) -> Result<Command> {
    a.rest();
    server(ServerCmd::Quit)
}

pub(super) fn reset(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Reset)
}

pub(super) fn info(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Info(a.rest().iter().map(|s| String::from_utf8_lossy(s).to_lowercase()).collect()))
}

pub(super) fn config(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "get") {
        ConfigOp::Get(a.rest())
    } else if is(&sub, "set") {
        if !a.remaining().is_multiple_of(2) {
            return Err(CommandError::WrongArity("config|set"));
        }
        ConfigOp::Set(a.pairs()?)
    } else if is(&sub, "resetstat") {
        ConfigOp::ResetStat
    } else if is(&sub, "rewrite") {
        ConfigOp::Rewrite
    } else {
        return Err(unknown_subcommand(&sub, "config"));
    };
    server(ServerCmd::Config(op))
}

pub(super) fn client(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "setname") {
        let name = a.next_bytes()?;
        if name.iter().any(|&c| c <= b' ' || c > b'~') {
            return Err(CommandError::Invalid(
                "Client names cannot contain spaces, newlines or special characters.".into(),
            ));
        }
        ClientOp::SetName(name)
    } else if is(&sub, "getname") {
        ClientOp::GetName
    } else if is(&sub, "id") {
        ClientOp::Id
    } else if is(&sub, "list") {
        a.rest();
        ClientOp::List
    } else if is(&sub, "info") {
        ClientOp::Info
    } else if is(&sub, "setinfo") {
        a.rest();
        ClientOp::SetInfo
    } else if is(&sub, "no-evict") {
        a.rest();
        ClientOp::NoEvict
    } else if is(&sub, "reply") {
        let mode = a.next_bytes()?;
        let mode = if is(&mode, "on") {
            ReplyMode::On
        } else if is(&mode, "off") {
            ReplyMode::Off
        } else if is(&mode, "skip") {
            ReplyMode::Skip
        } else {
            return Err(CommandError::Syntax);
        };
        a.finish()?;
        ClientOp::Reply(mode)
    } else if is(&sub, "kill") {
        ClientOp::Kill(kill_filter(a)?)
    } else if is(&sub, "pause") {
        let ms = a.next_int_or(|| CommandError::Invalid("timeout is not an integer or out of range".into()))?;
        if ms < 0 {
            return Err(CommandError::Invalid("timeout is negative".into()));
        }
        let writes = if a.eat("write") {
            true
        } else if a.is_empty() || a.eat("all") {
            false
        } else {
            return Err(CommandError::Syntax);
        };
        a.finish()?;
        ClientOp::Pause { ms: ms as u64, writes }
    } else if is(&sub, "unpause") {
        a.finish()?;
        ClientOp::Unpause
    } else if is(&sub, "tracking") {
        ClientOp::Tracking(tracking_args(a)?)
    } else if is(&sub, "caching") {
        let v = a.next_bytes()?;
        let yes = if is(&v, "yes") {
            true
        } else if is(&v, "no") {
            false
        } else {
            return Err(CommandError::Syntax);
        };
        a.finish()?;
        ClientOp::Caching(yes)
    } else if is(&sub, "getredir") {
        a.finish()?;
        ClientOp::GetRedir
    } else if is(&sub, "trackinginfo") {
        a.finish()?;
        ClientOp::TrackingInfo
    } else {
        return Err(unknown_subcommand(&sub, "client"));
    };
    server(ServerCmd::Client(op))
}

/// CLIENT TRACKING's options, with Redis's errors.
fn tracking_args(a: &mut Args<'_>) -> Result<TrackingArgs> {
    let mode = a.next_bytes()?;
    let on = if is(&mode, "on") {
        true
    } else if is(&mode, "off") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let mut t = TrackingArgs { on, ..TrackingArgs::default() };
    while let Some(w) = a.peek().cloned() {
        a.next_bytes()?;
        if is(&w, "redirect") {
            let id = a.next_bytes()?;
            t.redirect = Some(super::args::parse_i64(&id).ok_or(CommandError::NotInteger)?);
        } else if is(&w, "prefix") {
            t.prefixes.push(a.next_bytes()?);
        } else if is(&w, "bcast") {
            t.bcast = true;
        } else if is(&w, "optin") {
            t.optin = true;
        } else if is(&w, "optout") {
            t.optout = true;
        } else if is(&w, "noloop") {
            t.noloop = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if t.on {
        if !t.bcast && !t.prefixes.is_empty() {
            return Err(CommandError::Invalid("PREFIX option requires BCAST mode to be enabled".into()));
        }
        if t.optin && t.optout {
            return Err(CommandError::Invalid("You can't specify both OPTIN mode and OPTOUT mode".into()));
        }
        if t.bcast && (t.optin || t.optout) {
            return Err(CommandError::Invalid("OPTIN and OPTOUT are not compatible with BCAST".into()));
        }
    }
    Ok(t)
}

/// CLIENT KILL's two forms, with Redis's errors.
fn kill_filter(a: &mut Args<'_>) -> Result<KillFilter> {
    if a.remaining() == 1 {
        let addr = String::from_utf8_lossy(&a.next_bytes()?).into_owned();
        return Ok(KillFilter { addr: Some(addr), old_form: true, ..KillFilter::default() });
    }
    let mut f = KillFilter { skip_me: true, ..KillFilter::default() };
    while !a.is_empty() {
        let word = a.next_bytes()?;
        let value = a.next_bytes()?;
        let text = String::from_utf8_lossy(&value).into_owned();
        if is(&word, "id") {
            let id = super::args::parse_i64(&value).filter(|&n| n > 0);
            f.id = Some(id.ok_or_else(|| CommandError::Invalid("client-id should be greater than 0".into()))? as u64);
        } else if is(&word, "addr") {
            f.addr = Some(text);
        } else if is(&word, "laddr") {
            f.laddr = Some(text);
        } else if is(&word, "user") {
            f.user = Some(value);
        } else if is(&word, "type") {
            let t = text.to_ascii_lowercase();
            if !["normal", "pubsub", "master", "replica", "slave"].contains(&t.as_str()) {
                return Err(CommandError::Invalid(format!("Unknown client type '{text}'")));
            }
            f.kind = Some(if t == "slave" { "replica".into() } else { t });
        } else if is(&word, "skipme") {
            f.skip_me = if is(&value, "yes") {
                true
            } else if is(&value, "no") {
                false
            } else {
                return Err(CommandError::Syntax);
            };
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(f)
}

pub(super) fn save(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::Save)
}

pub(super) fn bgsave(a: &mut Args<'_>) -> Result<Command> {
    if !a.is_empty() && !a.eat("schedule") {
        return Err(CommandError::Syntax);
    }
    a.finish()?;
    server(ServerCmd::BgSave)
}

pub(super) fn bgrewriteaof(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::BgRewriteAof)
}

pub(super) fn monitor(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::Monitor)
}

pub(super) fn psync(a: &mut Args<'_>) -> Result<Command> {
    let replid = a.next_bytes()?;
    let offset = a.next_int()?;
    a.finish()?;
    server(ServerCmd::Psync { replid, offset })
}

pub(super) fn sync(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::Psync { replid: Bytes::from_static(b"?"), offset: -1 })
}

pub(super) fn replconf(a: &mut Args<'_>) -> Result<Command> {
    if !a.remaining().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    server(ServerCmd::Replconf(a.rest()))
}

pub(super) fn replicaof(a: &mut Args<'_>) -> Result<Command> {
    let host = a.next_bytes()?;
    let port = a.next_bytes()?;
    a.finish()?;
    if is(&host, "no") && is(&port, "one") {
        return server(ServerCmd::ReplicaOf(None));
    }
    let port = std::str::from_utf8(&port)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| CommandError::Invalid("Invalid master port".into()))?;
    server(ServerCmd::ReplicaOf(Some((host, port))))
}

pub(super) fn cluster(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Cluster(a.rest()))
}

pub(super) fn sentinel(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Sentinel(a.rest()))
}

pub(super) fn role(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::Role)
}

pub(super) fn lastsave(a: &mut Args<'_>) -> Result<Command> {
    a.finish()?;
    server(ServerCmd::LastSave)
}

pub(super) fn wait(a: &mut Args<'_>) -> Result<Command> {
    let replicas = a.next_int()?;
    let timeout = a.next_int_or(|| CommandError::Invalid("timeout is not an integer or out of range".into()))?;
    if timeout < 0 {
        return Err(CommandError::Invalid("timeout is negative".into()));
    }
    server(ServerCmd::Wait { replicas, timeout: timeout as u64 })
}

pub(super) fn debug(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "sleep") {
        let secs = super::args::parse_f64(&a.next_bytes()?).ok_or(CommandError::NotFloat)?;
        DebugOp::Sleep((secs.max(0.0) * 1000.0).min(u64::MAX as f64) as u64)
    } else if is(&sub, "digest") {
        DebugOp::Digest
    } else if is(&sub, "digest-value") {
        DebugOp::DigestValue(a.rest())
    } else if is(&sub, "set-active-expire") {
        DebugOp::SetActiveExpire(a.next_int()? != 0)
    } else if is(&sub, "object") {
        DebugOp::Object(a.next_bytes()?)
    } else if is(&sub, "reload") {
        let (mut merge, mut noflush, mut save) = (false, false, true);
        while !a.is_empty() {
            let opt = a.next_bytes()?;
            if is(&opt, "merge") {
                merge = true;
            } else if is(&opt, "noflush") {
                noflush = true;
            } else if is(&opt, "nosave") {
                save = false;
            } else {
                return Err(CommandError::Invalid(
                    "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.".into(),
                ));
            }
        }
        // Loading over the keys in memory without MERGE meets every key twice (Redis stops on the first).
        if noflush && !merge {
            return Err(CommandError::Invalid(
                "DEBUG RELOAD NOFLUSH without MERGE would load every key over itself; add MERGE".into(),
            ));
        }
        DebugOp::Reload { save }
    } else if is(&sub, "help") {
        DebugOp::Help
    } else {
        return Err(CommandError::Invalid(format!(
            "Unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&sub)
        )));
    };
    a.finish()?;
    server(ServerCmd::Debug(op))
}

pub(super) fn memory(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "usage") {
        let key = a.next_bytes()?;
        if a.eat("samples") {
            a.next_int()?;
        }
        MemoryOp::Usage(key)
    } else if is(&sub, "stats") {
        MemoryOp::Stats
    } else if is(&sub, "doctor") {
        MemoryOp::Doctor
    } else if is(&sub, "malloc-stats") {
        MemoryOp::MallocStats
    } else if is(&sub, "purge") {
        MemoryOp::Purge
    } else if is(&sub, "help") {
        MemoryOp::Help
    } else {
        return Err(unknown_subcommand(&sub, "memory"));
    };
    a.finish()?;
    server(ServerCmd::Memory(op))
}

pub(super) fn slowlog(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "get") {
        let count = match a.peek() {
            None => 10,
            Some(_) => {
                let n = a.next_int_or(|| CommandError::Invalid("value is out of range, must be positive".into()))?;
                if n < -1 {
                    return Err(CommandError::Invalid("count should be greater than or equal to -1".into()));
                }
                n
            }
        };
        SlowlogOp::Get(count)
    } else if is(&sub, "len") {
        SlowlogOp::Len
    } else if is(&sub, "reset") {
        SlowlogOp::Reset
    } else if is(&sub, "help") {
        SlowlogOp::Help
    } else {
        return Err(unknown_subcommand(&sub, "slowlog"));
    };
    a.finish()?;
    server(ServerCmd::Slowlog(op))
}

pub(super) fn latency(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let op = if is(&sub, "latest") {
        LatencyOp::Latest
    } else if is(&sub, "history") {
        LatencyOp::History(a.next_bytes()?)
    } else if is(&sub, "reset") {
        LatencyOp::Reset(a.rest())
    } else if is(&sub, "doctor") {
        LatencyOp::Doctor
    } else if is(&sub, "graph") {
        LatencyOp::Graph(a.next_bytes()?)
    } else if is(&sub, "histogram") {
        LatencyOp::Histogram(a.rest())
    } else if is(&sub, "help") {
        LatencyOp::Help
    } else {
        return Err(unknown_subcommand(&sub, "latency"));
    };
    a.finish()?;
    server(ServerCmd::Latency(op))
}

pub(super) fn command(a: &mut Args<'_>) -> Result<Command> {
    let Some(sub) = a.peek().cloned() else { return server(ServerCmd::Command(CommandOp::All)) };
    a.next_bytes()?;
    let op = if is(&sub, "count") {
        CommandOp::Count
    } else if is(&sub, "docs") {
        CommandOp::Docs(a.rest())
    } else if is(&sub, "info") {
        CommandOp::Info(a.rest())
    } else if is(&sub, "getkeys") || is(&sub, "getkeysandflags") {
        CommandOp::GetKeys { args: a.rest(), flags: is(&sub, "getkeysandflags") }
    } else if is(&sub, "list") {
        let filter = if a.eat("filterby") {
            let kind = a.next_bytes()?;
            let kind = String::from_utf8_lossy(&kind).to_ascii_lowercase();
            if !["module", "aclcat", "pattern"].contains(&kind.as_str()) {
                return Err(CommandError::Syntax);
            }
            Some((kind, a.next_bytes()?))
        } else {
            None
        };
        a.finish()?;
        CommandOp::List(filter)
    } else {
        return Err(unknown_subcommand(&sub, "command"));
    };
    server(ServerCmd::Command(op))
}

pub(super) fn time(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Time)
}

pub(super) fn multi(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Multi)
}

pub(super) fn exec(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Exec)
}

pub(super) fn discard(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Discard)
}

pub(super) fn watch(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Watch(a.rest()))
}

pub(super) fn unwatch(_: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Unwatch)
}
