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
    Eval {
        script: ScriptRef,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
        read_only: bool,
    },
    /// SCRIPT LOAD: compiles and caches; answers the SHA1.
    Load(Bytes),
    /// SCRIPT EXISTS: 1 or 0 per SHA1.
    Exists(Vec<Bytes>),
    /// SCRIPT FLUSH: empties the cache (and starts a fresh Lua state).
    Flush,
    /// SCRIPT KILL: stops the running script if it has not written.
    Kill,
    /// FCALL and FCALL_RO.
    FCall {
        name: Bytes,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
        read_only: bool,
    },
    FunctionLoad {
        code: Bytes,
        replace: bool,
    },
    FunctionDelete(Bytes),
    FunctionFlush,
    FunctionList {
        pattern: Option<Bytes>,
        with_code: bool,
    },
    FunctionStats,
    FunctionKill,
    FunctionDump,
    FunctionRestore {
        payload: Bytes,
        policy: RestorePolicy,
    },
}

/// What FUNCTION RESTORE does with the libraries already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Refused when a library of the payload exists (the default).
    Append,
    /// Libraries of the payload replace those of their names.
    Replace,
    /// Every library goes first.
    Flush,
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
            ScriptCmd::FCall { read_only: false, .. } => "fcall",
            ScriptCmd::FCall { read_only: true, .. } => "fcall_ro",
            ScriptCmd::FunctionLoad { .. } => "function|load",
            ScriptCmd::FunctionDelete(_) => "function|delete",
            ScriptCmd::FunctionFlush => "function|flush",
            ScriptCmd::FunctionList { .. } => "function|list",
            ScriptCmd::FunctionStats => "function|stats",
            ScriptCmd::FunctionKill => "function|kill",
            ScriptCmd::FunctionDump => "function|dump",
            ScriptCmd::FunctionRestore { .. } => "function|restore",
        }
    }
}

fn script(c: ScriptCmd) -> Result<Command> {
    Ok(Command::Script(c))
}

/// `numkeys key... arg...` with Redis's checks of numkeys (`bad`: the error for one that is not a
/// number).
fn keys_and_args(a: &mut Args<'_>, bad: fn() -> CommandError) -> Result<(Vec<Bytes>, Vec<Bytes>)> {
    let n = a.next_int_or(bad)?;
    if n < 0 {
        return Err(CommandError::Invalid("Number of keys can't be negative".into()));
    }
    if n as u64 > a.remaining() as u64 {
        return Err(CommandError::Invalid("Number of keys can't be greater than number of args".into()));
    }
    let keys = a.take(n as usize)?;
    Ok((keys, a.rest()))
}

/// `script numkeys key... arg...`.
fn eval_form(a: &mut Args<'_>, sha: bool, read_only: bool) -> Result<Command> {
    let body = a.next_bytes()?;
    let (keys, args) = keys_and_args(a, || CommandError::NotInteger)?;
    let script_ref = if sha { ScriptRef::Sha(body) } else { ScriptRef::Body(body) };
    script(ScriptCmd::Eval { script: script_ref, keys, args, read_only })
}

fn bad_numkeys() -> CommandError {
    CommandError::Invalid("Bad number of keys provided".into())
}

pub(super) fn fcall(a: &mut Args<'_>) -> Result<Command> {
    let name = a.next_bytes()?;
    let (keys, args) = keys_and_args(a, bad_numkeys)?;
    script(ScriptCmd::FCall { name, keys, args, read_only: false })
}

pub(super) fn fcall_ro(a: &mut Args<'_>) -> Result<Command> {
    let name = a.next_bytes()?;
    let (keys, args) = keys_and_args(a, bad_numkeys)?;
    script(ScriptCmd::FCall { name, keys, args, read_only: true })
}

pub(super) fn function_cmd(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    let cmd = if is(&sub, "load") {
        let mut replace = false;
        while a.remaining() > 1 {
            let opt = a.next_bytes()?;
            if is(&opt, "replace") {
                replace = true;
            } else {
                return Err(CommandError::Invalid(format!("Unknown option given: {}", String::from_utf8_lossy(&opt))));
            }
        }
        ScriptCmd::FunctionLoad { code: a.next_bytes()?, replace }
    } else if is(&sub, "delete") {
        ScriptCmd::FunctionDelete(a.next_bytes()?)
    } else if is(&sub, "flush") {
        if !a.is_empty() && !a.eat("async") && !a.eat("sync") {
            return Err(CommandError::Invalid("FUNCTION FLUSH only supports SYNC|ASYNC option".into()));
        }
        ScriptCmd::FunctionFlush
    } else if is(&sub, "list") {
        let (mut pattern, mut with_code) = (None, false);
        while let Some(opt) = a.peek() {
            if is(opt, "withcode") && !with_code {
                with_code = true;
                a.next_bytes()?;
            } else if is(opt, "libraryname") && pattern.is_none() {
                a.next_bytes()?;
                pattern = Some(
                    a.next_bytes().map_err(|_| CommandError::Invalid("library name argument was not given".into()))?,
                );
            } else {
                return Err(CommandError::Invalid(format!("Unknown argument {}", String::from_utf8_lossy(opt))));
            }
        }
        ScriptCmd::FunctionList { pattern, with_code }
    } else if is(&sub, "stats") {
        ScriptCmd::FunctionStats
    } else if is(&sub, "kill") {
        ScriptCmd::FunctionKill
    } else if is(&sub, "dump") {
        ScriptCmd::FunctionDump
    } else if is(&sub, "restore") {
        let payload = a.next_bytes()?;
        let policy = if a.is_empty() || a.eat("append") {
            RestorePolicy::Append
        } else if a.eat("replace") {
            RestorePolicy::Replace
        } else if a.eat("flush") {
            RestorePolicy::Flush
        } else {
            return Err(CommandError::Invalid(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.".into(),
            ));
        };
        ScriptCmd::FunctionRestore { payload, policy }
    } else {
        return Err(unknown_subcommand(&sub, "function"));
    };
    a.finish()?;
    script(cmd)
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
