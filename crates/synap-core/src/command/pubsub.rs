//! Pub/sub commands the engine answers ([`PubSubCmd`]); subscribing belongs to a connection
//! ([`super::ServerCmd::Subscribe`]).

use bytes::Bytes;

use super::args::{Args, is, unknown_subcommand};
use super::{Command, ServerCmd};
use crate::error::Result;

/// What a subscription names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubKind {
    /// An exact channel (RESP SUBSCRIBE, or a topic without wildcards).
    Channel,
    /// A dot-separated topic pattern with `*` / `#`.
    Topic,
    /// A Redis glob pattern (PSUBSCRIBE).
    Glob,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PubSubCmd {
    /// Publishes to a channel/topic; answers the number of receivers.
    Publish { channel: Bytes, payload: Bytes },
    /// PUBSUB CHANNELS [pattern]
    Channels { pattern: Option<Bytes> },
    /// PUBSUB NUMSUB channel...
    NumSub { channels: Vec<Bytes> },
    /// PUBSUB NUMPAT
    NumPat,
}

impl PubSubCmd {
    pub fn name(&self) -> &'static str {
        match self {
            PubSubCmd::Publish { .. } => "publish",
            PubSubCmd::Channels { .. } => "pubsub|channels",
            PubSubCmd::NumSub { .. } => "pubsub|numsub",
            PubSubCmd::NumPat => "pubsub|numpat",
        }
    }
}

fn ps(c: PubSubCmd) -> Result<Command> {
    Ok(Command::PubSub(c))
}

pub(super) fn publish(a: &mut Args<'_>) -> Result<Command> {
    ps(PubSubCmd::Publish { channel: a.next_bytes()?, payload: a.next_bytes()? })
}

pub(super) fn pubsub(a: &mut Args<'_>) -> Result<Command> {
    let sub = a.next_bytes()?;
    if is(&sub, "channels") && a.remaining() <= 1 {
        ps(PubSubCmd::Channels { pattern: if a.is_empty() { None } else { Some(a.next_bytes()?) } })
    } else if is(&sub, "numsub") {
        ps(PubSubCmd::NumSub { channels: a.rest() })
    } else if is(&sub, "numpat") {
        ps(PubSubCmd::NumPat)
    } else {
        Err(unknown_subcommand(&sub, "pubsub"))
    }
}

fn subscription(a: &mut Args<'_>, kind: SubKind, on: bool) -> Result<Command> {
    let names = a.rest();
    Ok(Command::Server(if on { ServerCmd::Subscribe { kind, names } } else { ServerCmd::Unsubscribe { kind, names } }))
}

pub(super) fn subscribe(a: &mut Args<'_>) -> Result<Command> {
    subscription(a, SubKind::Channel, true)
}

pub(super) fn unsubscribe(a: &mut Args<'_>) -> Result<Command> {
    subscription(a, SubKind::Channel, false)
}

pub(super) fn psubscribe(a: &mut Args<'_>) -> Result<Command> {
    subscription(a, SubKind::Glob, true)
}

pub(super) fn punsubscribe(a: &mut Args<'_>) -> Result<Command> {
    subscription(a, SubKind::Glob, false)
}
