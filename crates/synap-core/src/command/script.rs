//! Scripting commands ([`ScriptCmd`]): EVAL, EVALSHA, their read-only forms, and SCRIPT's subcommands.

use bytes::Bytes;

use super::Command;
use super::args::{Args, is, unknown_subcommand};
use crate::error::{CommandError, Result};

/// The script an EVAL runs: its text, or the SHA1 of a cached one (EVALSHA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRef {
    Body(Bytes),
    Sha(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptCmd {
    /// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO (`read_only`: write commands are refused).
    Eval { script: ScriptRef, keys: Vec<Bytes>, args: Vec<Bytes>, read_only: bool },
    /// SCRIPT LOAD: compiles and caches; answers the SHA1.
    Load(Bytes),
    /// SCRIPT EXISTS: 1 or 0 per SHA1.
    Exists(Vec<Bytes>),
    /// SCRIPT FLUSH: empties the cache (and starts a fresh Lua state).
    Flush,
    /// SCRIPT KILL: stops the running script if it has not written.
    Kill,
}

impl ScriptCmd {
    pub fn name(&self) -> &'static str {
        match self {
            ScriptCmd::Eval { script: ScriptRef::Body(_), read_only: false, .. } => "eval",
            ScriptCmd::Eval { script: ScriptRef::Sha(_), read_only: false, .. } => "evalsha",
            ScriptCmd::Eval { script: ScriptRef::Body(_), read_only: true, .. } => "eval_ro",
            ScriptCmd::Eval { script: ScriptRef::Sha(_), read_only: true, .. } => "evalsha_ro",
            ScriptCmd::Load(_) => "script|load",
            ScriptCmd::Exists(_) => "script|exists",
            ScriptCmd::Flush => "script|flush",
            ScriptCmd::Kill => "script|kill",
        }
    }
}

fn script(c: ScriptCmd) -> Result<Command> {
    Ok(Command::Script(c))
}

/// `script numkeys key... arg...` with Redis's checks of numkeys.
fn eval_form(a: &mut Args<'_>, sha: bool, read_only: bool) -> Result<Command> {
    let body = a.next_bytes()?;
    let n = a.next_int()?;
    if n < 0 {
        return Err(CommandError::Invalid("Number of keys can't be negative".into()));
    }
    if n as u64 > a.remaining() as u64 {
        return Err(CommandError::Invalid("Number of keys can't be greater than number of args".into()));
    }
    let keys = a.take(n as usize)?;
    let args = a.rest();
    let script_ref = if sha { ScriptRef::Sha(body) } else { ScriptRef::Body(body) };
    script(ScriptCmd::Eval { script: script_ref, keys, args, read_only })
}

pub(super) fn eval(a: &mut Args<'_>) -> Result<Command> {
    eval_form(a, false, false)
}

pub(super) fn evalsha(a: &mut Args<'_>) -> Result<Command> {
    eval_form(a, true, false)
}

pub(super) fn eval_ro(a: &mut Args<'_>) -> Result<Command> {
    eval_form(a, false, true)
}

pub(super) fn evalsha_ro(a: &mut Args<'_>) -> Result<Command> {
    eval_form(a, true, true)
}

pub(super) fn script_cmd(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let cmd = if is(&sub, "load") {
        ScriptCmd::Load(a.next_bytes()?)
    } else if is(&sub, "exists") {
        ScriptCmd::Exists(a.rest())
    } else if is(&sub, "flush") {
        if !a.is_empty() && !a.eat("async") && !a.eat("sync") {
            return Err(CommandError::Invalid("SCRIPT FLUSH only support SYNC|ASYNC option".into()));
        }
        ScriptCmd::Flush
    } else if is(&sub, "kill") {
        ScriptCmd::Kill
    } else {
        return Err(unknown_subcommand(&sub, "script"));
    };
    a.finish()?;
    script(cmd)
}
