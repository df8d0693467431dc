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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOp {
    Count,
    Docs(Vec<Bytes>),
    Info(Vec<Bytes>),
    List,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Get(Vec<Bytes>),
    /// Parameter-value pairs, applied all or none.
    Set(Vec<(Bytes, Bytes)>),
    ResetStat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCmd {
    Ping(Option<Bytes>),
    Echo(Bytes),
    Hello { proto: Option<i64>, auth: Option<(Bytes, Bytes)>, setname: Option<Bytes> },
    Auth,
    Select(i64),
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
    Subscribe { kind: SubKind, names: Vec<Bytes> },
    Unsubscribe { kind: SubKind, names: Vec<Bytes> },
}

impl ServerCmd {
    pub fn name(&self) -> &'static str {
        match self {
            ServerCmd::Ping(_) => "ping",
            ServerCmd::Echo(_) => "echo",
            ServerCmd::Hello { .. } => "hello",
            ServerCmd::Auth => "auth",
            ServerCmd::Select(_) => "select",
            ServerCmd::Quit => "quit",
            ServerCmd::Reset => "reset",
            ServerCmd::Info(_) => "info",
            ServerCmd::Config(ConfigOp::Get(_)) => "config|get",
            ServerCmd::Config(ConfigOp::Set(_)) => "config|set",
            ServerCmd::Config(ConfigOp::ResetStat) => "config|resetstat",
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
            ServerCmd::Command(CommandOp::List) => "command",
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
    a.rest();
    server(ServerCmd::Auth)
}

pub(super) fn select(a: &mut Args<'_>) -> Result<Command> {
    server(ServerCmd::Select(a.next_int()?))
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
    } else {
        return Err(unknown_subcommand(&sub, "client"));
    };
    server(ServerCmd::Client(op))
}

pub(super) fn command(a: &mut Args<'_>) -> Result<Command> {
    let Some(sub) = a.peek().cloned() else { return server(ServerCmd::Command(CommandOp::List)) };
    a.next_bytes()?;
    let op = if is(&sub, "count") {
        CommandOp::Count
    } else if is(&sub, "docs") {
        CommandOp::Docs(a.rest())
    } else if is(&sub, "info") {
        CommandOp::Info(a.rest())
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
