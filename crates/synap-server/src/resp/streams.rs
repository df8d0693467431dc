//! Parsers of Redis's stream commands (XADD ... XINFO) into engine stream commands, with Redis's ID rules
//! and error strings.

use bytes::Bytes;
use synap_core::stream::{
    ClaimArgs, GroupStart, IdBound, PendingRange, ReadFrom, StreamCmd, StreamId, TrimSpec, TrimStrategy, XAddId, XInfo,
};
use synap_core::{Command, CommandError};

use super::commands::{Action, Args, Shape, int};

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn eng(cmd: StreamCmd) -> Result<Action, CommandError> {
    Ok(Action::Engine(Command::Stream(cmd), Shape::AsIs))
}

fn invalid_id() -> CommandError {
    CommandError::Invalid("Invalid stream ID specified as stream command argument".into())
}

fn id(arg: &[u8], seq_default: u64) -> Result<StreamId, CommandError> {
    StreamId::parse(arg, seq_default).ok_or_else(invalid_id)
}

fn nonneg(arg: &[u8]) -> Result<u64, CommandError> {
    let n = int(arg)?;
    u64::try_from(n).map_err(|_| CommandError::Invalid("value is out of range, must be positive".into()))
}

fn timeout(arg: &[u8]) -> Result<u64, CommandError> {
    let n = int(arg).map_err(|_| CommandError::Invalid("timeout is not an integer or out of range".into()))?;
    u64::try_from(n).map_err(|_| CommandError::Invalid("timeout is negative".into()))
}

/// One end of XRANGE: `-`, `+`, `(id` or `id` (an `ms` alone means `ms-0` as start, `ms-max` as end).
fn bound(arg: &[u8], is_start: bool) -> Result<IdBound, CommandError> {
    match arg {
        b"-" => Ok(IdBound::Incl(StreamId::MIN)),
        b"+" => Ok(IdBound::Incl(StreamId::MAX)),
        [b'(', rest @ ..] => {
            if rest == b"-" || rest == b"+" {
                return Err(invalid_id());
            }
            Ok(IdBound::Excl(id(rest, if is_start { 0 } else { u64::MAX })?))
        }
        _ => Ok(IdBound::Incl(id(arg, if is_start { 0 } else { u64::MAX })?)),
    }
}

/// `MAXLEN|MINID [=|~] threshold [LIMIT n]` at `a[i]`; returns the spec and the index after it.
fn trim_spec(a: Args<'_>, mut i: usize) -> Result<(TrimSpec, usize), CommandError> {
    let maxlen = is(&a[i], "maxlen");
    i += 1;
    let mut approx = false;
    match a.get(i).map(|b| &b[..]) {
        Some(b"~") => {
            approx = true;
            i += 1;
        }
        Some(b"=") => i += 1,
        _ => {}
    }
    let threshold = a.get(i).ok_or(CommandError::Syntax)?;
    let strategy = if maxlen {
        let n = int(threshold)?;
        TrimStrategy::MaxLen(
            u64::try_from(n).map_err(|_| CommandError::Invalid("The MAXLEN argument must be >= 0.".into()))?,
        )
    } else {
        TrimStrategy::MinId(id(threshold, 0)?)
    };
    i += 1;
    if a.get(i).is_some_and(|w| is(w, "limit")) {
        if !approx {
            return Err(CommandError::Invalid(
                "syntax error, LIMIT cannot be used without the special ~ option".into(),
            ));
        }
        nonneg(a.get(i + 1).ok_or(CommandError::Syntax)?)?;
        i += 2;
    }
    Ok((TrimSpec { strategy, approx }, i))
}

pub fn parse_xadd(a: Args<'_>) -> Result<Action, CommandError> {
    let mut i = 2;
    let mut nomkstream = false;
    let mut trim = None;
    while i < a.len() {
        if is(&a[i], "nomkstream") {
            nomkstream = true;
            i += 1;
        } else if is(&a[i], "maxlen") || is(&a[i], "minid") {
            let (spec, next) = trim_spec(a, i)?;
            trim = Some(spec);
            i = next;
        } else {
            break;
        }
    }
    let raw = a.get(i).ok_or(CommandError::Syntax)?;
    let xid = if &raw[..] == b"*" {
        XAddId::Auto
    } else if let Some(ms) = raw.strip_suffix(b"-*") {
        XAddId::AutoSeq(id(ms, 0)?.ms)
    } else {
        XAddId::Explicit(id(raw, 0)?)
    };
    let rest = &a[i + 1..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(super::commands::arity_error("xadd"));
    }
    let fields = rest.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
    eng(StreamCmd::XAdd { key: a[1].clone(), id: xid, fields, nomkstream, trim })
}

pub fn parse_xrange(a: Args<'_>, rev: bool) -> Result<Action, CommandError> {
    let (lo, hi) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let count = match a.len() {
        4 => None,
        6 if is(&a[4], "count") => Some(usize::try_from(int(&a[5])?).unwrap_or(0)),
        _ => return Err(CommandError::Syntax),
    };
    eng(StreamCmd::XRange { key: a[1].clone(), start: bound(lo, true)?, end: bound(hi, false)?, count, rev })
}

pub fn parse_xtrim(a: Args<'_>) -> Result<Action, CommandError> {
    if !(is(&a[2], "maxlen") || is(&a[2], "minid")) {
        return Err(CommandError::Syntax);
    }
    let (trim, next) = trim_spec(a, 2)?;
    if next != a.len() {
        return Err(CommandError::Syntax);
    }
    eng(StreamCmd::XTrim { key: a[1].clone(), trim })
}

pub fn parse_xdel(a: Args<'_>) -> Result<Action, CommandError> {
    let ids = a[2..].iter().map(|x| id(x, 0)).collect::<Result<_, _>>()?;
    eng(StreamCmd::XDel { key: a[1].clone(), ids })
}

/// Splits `STREAMS k1 k2 id1 id2` starting at `a[i]` (the word after STREAMS).
fn streams_list<'a>(a: Args<'a>, i: usize, cmd: &str) -> Result<(&'a [Bytes], &'a [Bytes]), CommandError> {
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::Invalid(format!(
            "Unbalanced '{cmd}' list of streams: for each stream key an ID or '$' must be specified."
        )));
    }
    Ok(rest.split_at(rest.len() / 2))
}

/// `[COUNT n] [BLOCK ms] [NOACK] STREAMS` options; returns (count, block, noack, index after STREAMS).
fn read_options(
    a: Args<'_>,
    mut i: usize,
    group: bool,
) -> Result<(Option<usize>, Option<u64>, bool, usize), CommandError> {
    let (mut count, mut block, mut noack) = (None, None, false);
    loop {
        let w = a.get(i).ok_or(CommandError::Syntax)?;
        if is(w, "count") {
            let n = int(a.get(i + 1).ok_or(CommandError::Syntax)?)?;
            count = if n > 0 { Some(n as usize) } else { None };
            i += 2;
        } else if is(w, "block") {
            block = Some(timeout(a.get(i + 1).ok_or(CommandError::Syntax)?)?);
            i += 2;
        } else if group && is(w, "noack") {
            noack = true;
            i += 1;
        } else if is(w, "streams") {
            return Ok((count, block, noack, i + 1));
        } else {
            return Err(CommandError::Syntax);
        }
    }
}

fn with_block(cmd: StreamCmd, keys: &[Bytes], block: Option<u64>) -> Result<Action, CommandError> {
    match block {
        Some(ms) => Ok(Action::StreamBlock(Command::Stream(cmd), keys.to_vec(), ms)),
        None => eng(cmd),
    }
}

pub fn parse_xread(a: Args<'_>) -> Result<Action, CommandError> {
    let (count, block, _, i) = read_options(a, 1, false)?;
    let (keys, ids) = streams_list(a, i, "xread")?;
    let streams = keys
        .iter()
        .zip(ids)
        .map(|(k, x)| {
            let from = match &x[..] {
                b"$" => ReadFrom::Last,
                b"+" => ReadFrom::LastEntry,
                _ => ReadFrom::After(id(x, 0)?),
            };
            Ok((k.clone(), from))
        })
        .collect::<Result<Vec<_>, CommandError>>()?;
    with_block(StreamCmd::XRead { streams, count }, keys, block)
}

pub fn parse_xreadgroup(a: Args<'_>) -> Result<Action, CommandError> {
    if !is(&a[1], "group") {
        return Err(CommandError::Syntax);
    }
    let (group, consumer) = (a[2].clone(), a[3].clone());
    let (count, block, noack, i) = read_options(a, 4, true)?;
    let (keys, ids) = streams_list(a, i, "xreadgroup")?;
    let streams = keys
        .iter()
        .zip(ids)
        .map(|(k, x)| {
            let from = match &x[..] {
                b">" => None,
                b"$" => {
                    return Err(CommandError::Invalid(
                        "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of \
                         this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID \
                         would just return an empty result set."
                            .into(),
                    ));
                }
                _ => Some(id(x, 0)?),
            };
            Ok((k.clone(), from))
        })
        .collect::<Result<Vec<_>, CommandError>>()?;
    // Only reads of new events block; a history read answers at once.
    let block = if streams.iter().any(|(_, f)| f.is_some()) { None } else { block };
    with_block(StreamCmd::XReadGroup { group, consumer, count, noack, streams }, keys, block)
}

fn group_start(arg: &[u8]) -> Result<GroupStart, CommandError> {
    match arg {
        b"$" => Ok(GroupStart::Latest),
        b"0" | b"0-0" | b"-" => Ok(GroupStart::Earliest),
        _ => Ok(GroupStart::AfterId(id(arg, 0)?)),
    }
}

pub fn parse_xgroup(a: Args<'_>) -> Result<Action, CommandError> {
    let sub = &a[1];
    let need = |n: usize| {
        if a.len() < n {
            Err(CommandError::Invalid(format!(
                "wrong number of arguments for 'xgroup|{}' command",
                String::from_utf8_lossy(sub).to_lowercase()
            )))
        } else {
            Ok(())
        }
    };
    // `[ENTRIESREAD n]` is accepted and checked (entries-read is derived from the position here).
    let tail_ok = |from: usize, allow_mkstream: bool| -> Result<bool, CommandError> {
        let (mut mk, mut i) = (false, from);
        while i < a.len() {
            if allow_mkstream && is(&a[i], "mkstream") {
                mk = true;
                i += 1;
            } else if is(&a[i], "entriesread") && i + 1 < a.len() {
                int(&a[i + 1])?;
                i += 2;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(mk)
    };
    if is(sub, "create") {
        need(5)?;
        let mkstream = tail_ok(5, true)?;
        eng(StreamCmd::XGroupCreate { key: a[2].clone(), group: a[3].clone(), start: group_start(&a[4])?, mkstream })
    } else if is(sub, "setid") {
        need(5)?;
        tail_ok(5, false)?;
        eng(StreamCmd::XGroupSetId { key: a[2].clone(), group: a[3].clone(), start: group_start(&a[4])? })
    } else if is(sub, "destroy") {
        need(4)?;
        if a.len() != 4 {
            return Err(CommandError::Syntax);
        }
        eng(StreamCmd::XGroupDestroy { key: a[2].clone(), group: a[3].clone() })
    } else if is(sub, "createconsumer") || is(sub, "delconsumer") {
        need(5)?;
        if a.len() != 5 {
            return Err(CommandError::Syntax);
        }
        let (key, group, consumer) = (a[2].clone(), a[3].clone(), a[4].clone());
        if is(sub, "createconsumer") {
            eng(StreamCmd::XGroupCreateConsumer { key, group, consumer })
        } else {
            eng(StreamCmd::XGroupDelConsumer { key, group, consumer })
        }
    } else {
        Err(CommandError::Invalid(format!("unknown subcommand '{}'. Try XGROUP HELP.", String::from_utf8_lossy(sub))))
    }
}

pub fn parse_xack(a: Args<'_>) -> Result<Action, CommandError> {
    let ids = a[3..].iter().map(|x| id(x, 0)).collect::<Result<_, _>>()?;
    eng(StreamCmd::XAck { key: a[1].clone(), group: a[2].clone(), ids })
}

pub fn parse_xpending(a: Args<'_>) -> Result<Action, CommandError> {
    let (key, group) = (a[1].clone(), a[2].clone());
    if a.len() == 3 {
        return eng(StreamCmd::XPending { key, group, range: None });
    }
    let mut i = 3;
    let mut min_idle_ms = 0;
    if is(&a[i], "idle") {
        min_idle_ms = nonneg(a.get(i + 1).ok_or(CommandError::Syntax)?)?;
        i += 2;
    }
    if a.len() < i + 3 || a.len() > i + 4 {
        return Err(CommandError::Syntax);
    }
    let start = bound(&a[i], true)?;
    let end = bound(&a[i + 1], false)?;
    let count = usize::try_from(int(&a[i + 2])?).unwrap_or(0);
    let consumer = a.get(i + 3).cloned();
    eng(StreamCmd::XPending { key, group, range: Some(PendingRange { min_idle_ms, start, end, count, consumer }) })
}

pub fn parse_xclaim(a: Args<'_>) -> Result<Action, CommandError> {
    let min_idle_ms =
        nonneg(&a[4]).map_err(|_| CommandError::Invalid("Invalid min-idle-time argument for XCLAIM".into()))?;
    let mut args = ClaimArgs {
        key: a[1].clone(),
        group: a[2].clone(),
        consumer: a[3].clone(),
        min_idle_ms,
        ids: Vec::new(),
        idle_ms: None,
        delivered_at: None,
        retry_count: None,
        force: false,
        just_id: false,
    };
    let mut i = 5;
    while i < a.len() {
        match StreamId::parse(&a[i], 0) {
            Some(x) => args.ids.push(x),
            None => break,
        }
        i += 1;
    }
    if args.ids.is_empty() {
        return Err(invalid_id());
    }
    while i < a.len() {
        let w = &a[i];
        let val = || a.get(i + 1).ok_or(CommandError::Syntax).and_then(|v| nonneg(v));
        if is(w, "idle") {
            args.idle_ms = Some(val()?);
            i += 2;
        } else if is(w, "time") {
            args.delivered_at = Some(val()?);
            i += 2;
        } else if is(w, "retrycount") {
            args.retry_count = Some(u32::try_from(val()?).unwrap_or(u32::MAX));
            i += 2;
        } else if is(w, "force") {
            args.force = true;
            i += 1;
        } else if is(w, "justid") {
            args.just_id = true;
            i += 1;
        } else if is(w, "lastid") {
            id(a.get(i + 1).ok_or(CommandError::Syntax)?, 0)?;
            i += 2;
        } else {
            return Err(CommandError::Invalid(format!("Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(w))));
        }
    }
    eng(StreamCmd::XClaim(args))
}

pub fn parse_xautoclaim(a: Args<'_>) -> Result<Action, CommandError> {
    let min_idle_ms =
        nonneg(&a[4]).map_err(|_| CommandError::Invalid("Invalid min-idle-time argument for XAUTOCLAIM".into()))?;
    let start = match &a[5][..] {
        b"-" => StreamId::MIN,
        x => id(x, 0)?,
    };
    let (mut count, mut just_id, mut i) = (100usize, false, 6);
    while i < a.len() {
        if is(&a[i], "count") {
            let n = int(a.get(i + 1).ok_or(CommandError::Syntax)?)?;
            if !(1..=(i64::MAX / 10)).contains(&n) {
                return Err(CommandError::Invalid("COUNT must be > 0".into()));
            }
            count = (n as usize).min(100_000);
            i += 2;
        } else if is(&a[i], "justid") {
            just_id = true;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    eng(StreamCmd::XAutoClaim {
        key: a[1].clone(),
        group: a[2].clone(),
        consumer: a[3].clone(),
        min_idle_ms,
        start,
        count,
        just_id,
    })
}

pub fn parse_xinfo(a: Args<'_>) -> Result<Action, CommandError> {
    let sub = &a[1];
    let wrong = || {
        CommandError::Invalid(format!(
            "wrong number of arguments for 'xinfo|{}' command",
            String::from_utf8_lossy(sub).to_lowercase()
        ))
    };
    if is(sub, "stream") {
        let key = a.get(2).ok_or_else(wrong)?.clone();
        let (full, count) = match a.len() {
            3 => (false, 0),
            4 if is(&a[3], "full") => (true, 10),
            6 if is(&a[3], "full") && is(&a[4], "count") => (true, usize::try_from(int(&a[5])?).unwrap_or(0)),
            _ => return Err(CommandError::Syntax),
        };
        eng(StreamCmd::XInfo(XInfo::Stream { key, full, count }))
    } else if is(sub, "groups") {
        if a.len() != 3 {
            return Err(wrong());
        }
        eng(StreamCmd::XInfo(XInfo::Groups { key: a[2].clone() }))
    } else if is(sub, "consumers") {
        if a.len() != 4 {
            return Err(wrong());
        }
        eng(StreamCmd::XInfo(XInfo::Consumers { key: a[2].clone(), group: a[3].clone() }))
    } else {
        Err(CommandError::Invalid(format!("unknown subcommand '{}'. Try XINFO HELP.", String::from_utf8_lossy(sub))))
    }
}
