//! Queue commands ([`QueueCmd`]) and their parsers (QCREATE ... QREDRIVE over RESP).

use bytes::Bytes;

use super::Command;
use super::args::{Args, is};
use crate::error::{CommandError, Result};

/// Most messages one consume, dead-letter listing or redrive takes.
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishArgs {
    pub queue: Bytes,
    pub payload: Bytes,
    /// 0..=9, 9 highest.
    pub priority: u8,
    pub headers: Vec<(Bytes, Bytes)>,
    pub delay_ms: u64,
    /// Per-message time to live (0: none); an expired message is dead-lettered, not dropped.
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumeArgs {
    pub queue: Bytes,
    pub consumer: Bytes,
    pub max: usize,
}

/// Options as a client gives them: what is not given comes from the store's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueOptions {
    pub max_depth: Option<u64>,
    pub ack_deadline_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub dead_letter_queue: Option<Bytes>,
    pub max_message_bytes: Option<u64>,
    pub prefetch: Option<u32>,
}

/// Parses a message id as clients send it (decimal).
pub fn parse_id(id: &[u8]) -> Option<u64> {
    std::str::from_utf8(id).ok()?.parse().ok()
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueueCmd {
    /// Creates a queue (no change if it exists); options not given come from the defaults.
    Create {
        name: Bytes,
        options: QueueOptions,
    },
    Delete {
        name: Bytes,
    },
    List,
    Publish(PublishArgs),
    /// Takes up to `args.max` messages; with `wait_ms` (QCONSUME ... BLOCK), waits for some to arrive
    /// (0: as long as `queue.max_wait_ms` allows).
    Consume {
        args: ConsumeArgs,
        wait_ms: Option<u64>,
    },
    Ack {
        queue: Bytes,
        ids: Vec<u64>,
    },
    Nack {
        queue: Bytes,
        id: u64,
        requeue: bool,
    },
    Stats {
        queue: Bytes,
    },
    Purge {
        queue: Bytes,
    },
    /// Lists a queue's dead letters without delivering them.
    DlqList {
        queue: Bytes,
        max: usize,
    },
    /// Moves dead letters back to their queue.
    Redrive {
        queue: Bytes,
        max: usize,
    },
    DlqPurge {
        queue: Bytes,
    },
}

impl QueueCmd {
    pub fn name(&self) -> &'static str {
        match self {
            QueueCmd::Create { .. } => "qcreate",
            QueueCmd::Delete { .. } => "qdelete",
            QueueCmd::List => "qlist",
            QueueCmd::Publish(_) => "qpublish",
            QueueCmd::Consume { .. } => "qconsume",
            QueueCmd::Ack { .. } => "qack",
            QueueCmd::Nack { .. } => "qnack",
            QueueCmd::Stats { .. } => "qstats",
            QueueCmd::Purge { .. } => "qpurge",
            QueueCmd::DlqList { .. } => "qdlq",
            QueueCmd::Redrive { .. } => "qredrive",
            QueueCmd::DlqPurge { .. } => "qdlqpurge",
        }
    }

    /// A consume without a wait.
    pub fn consume(queue: impl Into<Bytes>, consumer: impl Into<Bytes>, max: usize) -> QueueCmd {
        QueueCmd::Consume { args: ConsumeArgs { queue: queue.into(), consumer: consumer.into(), max }, wait_ms: None }
    }
}

/// Checks a batch size (COUNT, `max`): 1 to [`MAX_BATCH`].
pub fn batch_size(n: u64) -> Result<usize> {
    if n == 0 || n > MAX_BATCH as u64 {
        return Err(CommandError::Invalid(format!("COUNT must be between 1 and {MAX_BATCH}")));
    }
    Ok(n as usize)
}

fn queue(c: QueueCmd) -> Result<Command> {
    Ok(Command::Queue(c))
}

fn bad_id() -> CommandError {
    CommandError::Invalid("invalid message id".into())
}

fn u32_arg(a: &mut Args<'_>) -> Result<u32> {
    u32::try_from(a.next_u64()?).map_err(|_| CommandError::NotInteger)
}

pub(super) fn qcreate(a: &mut Args<'_>) -> Result<Command> {
    let name = a.next_bytes()?;
    let mut o = QueueOptions::default();
    while !a.is_empty() {
        if a.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        if a.eat("maxdepth") {
            o.max_depth = Some(a.next_u64()?);
        } else if a.eat("ackdeadline") {
            o.ack_deadline_ms = Some(a.next_u64()?);
        } else if a.eat("maxretries") {
            o.max_retries = Some(u32_arg(a)?);
        } else if a.eat("dlq") {
            o.dead_letter_queue = Some(a.next_bytes()?);
        } else if a.eat("maxbytes") {
            o.max_message_bytes = Some(a.next_u64()?);
        } else if a.eat("prefetch") {
            o.prefetch = Some(u32_arg(a)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    queue(QueueCmd::Create { name, options: o })
}

pub(super) fn qdelete(a: &mut Args<'_>) -> Result<Command> {
    queue(QueueCmd::Delete { name: a.next_bytes()? })
}

pub(super) fn qlist(_: &mut Args<'_>) -> Result<Command> {
    queue(QueueCmd::List)
}

pub(super) fn qpublish(a: &mut Args<'_>) -> Result<Command> {
    let mut p = PublishArgs { queue: a.next_bytes()?, payload: a.next_bytes()?, ..PublishArgs::default() };
    while !a.is_empty() {
        if a.eat("headers") {
            p.headers = a.pairs().map_err(|_| CommandError::Syntax)?;
            break;
        }
        if a.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        if a.eat("priority") {
            let n = a.next_u64()?;
            if n > 9 {
                return Err(CommandError::Invalid("PRIORITY must be between 0 and 9".into()));
            }
            p.priority = n as u8;
        } else if a.eat("delay") {
            p.delay_ms = a.next_u64()?;
        } else if a.eat("ttl") {
            p.ttl_ms = a.next_u64()?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    queue(QueueCmd::Publish(p))
}

pub(super) fn qconsume(a: &mut Args<'_>) -> Result<Command> {
    let mut args = ConsumeArgs { queue: a.next_bytes()?, consumer: a.next_bytes()?, max: 1 };
    let mut wait_ms = None;
    while !a.is_empty() {
        if a.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        if a.eat("count") {
            args.max = batch_size(a.next_u64()?)?;
        } else if a.eat("block") {
            wait_ms = Some(a.next_u64()?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    queue(QueueCmd::Consume { args, wait_ms })
}

pub(super) fn qack(a: &mut Args<'_>) -> Result<Command> {
    let q = a.next_bytes()?;
    let ids = a.rest().iter().map(|id| parse_id(id).ok_or_else(bad_id)).collect::<Result<_>>()?;
    queue(QueueCmd::Ack { queue: q, ids })
}

pub(super) fn qnack(a: &mut Args<'_>) -> Result<Command> {
    let q = a.next_bytes()?;
    let id = parse_id(&a.next_bytes()?).ok_or_else(bad_id)?;
    let requeue = match a.peek() {
        None => false,
        Some(w) if is(w, "requeue") && a.remaining() == 1 => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    queue(QueueCmd::Nack { queue: q, id, requeue })
}

pub(super) fn qstats(a: &mut Args<'_>) -> Result<Command> {
    queue(QueueCmd::Stats { queue: a.next_bytes()? })
}

pub(super) fn qpurge(a: &mut Args<'_>) -> Result<Command> {
    queue(QueueCmd::Purge { queue: a.next_bytes()? })
}

/// `[COUNT n]`, or the default.
fn count_opt(a: &mut Args<'_>, default: usize) -> Result<usize> {
    if a.is_empty() {
        return Ok(default);
    }
    if a.remaining() != 2 || !a.eat("count") {
        return Err(CommandError::Syntax);
    }
    batch_size(a.next_u64()?)
}

pub(super) fn qdlq(a: &mut Args<'_>) -> Result<Command> {
    let q = a.next_bytes()?;
    queue(QueueCmd::DlqList { queue: q, max: count_opt(a, 100)? })
}

pub(super) fn qredrive(a: &mut Args<'_>) -> Result<Command> {
    let q = a.next_bytes()?;
    queue(QueueCmd::Redrive { queue: q, max: count_opt(a, 1000)? })
}

pub(super) fn qdlqpurge(a: &mut Args<'_>) -> Result<Command> {
    queue(QueueCmd::DlqPurge { queue: a.next_bytes()? })
}
