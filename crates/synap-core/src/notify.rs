//! Keyspace notifications, as Redis's `notify-keyspace-events`: on `__keyspace@0__:<key>` (the event
//! name as payload) and `__keyevent@0__:<event>` (the key as payload), through pub/sub.

use bytes::Bytes;

use crate::command::{Command, Reply, SetCond};

/// Which notifications are on. Parsed from Redis's flag string: `K` keyspace channel, `E` keyevent
/// channel, `g` generic (del, expire, persist, rename), `$` string commands, `x` expired, `e` evicted,
/// `A` = `g$xe`. Empty: off (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyFlags {
    pub keyspace: bool,
    pub keyevent: bool,
    pub generic: bool,
    pub string: bool,
    pub expired: bool,
    pub evicted: bool,
}

impl NotifyFlags {
    pub fn parse(s: &str) -> Result<NotifyFlags, String> {
        let mut f = NotifyFlags::default();
        for c in s.chars() {
            match c {
                'K' => f.keyspace = true,
                'E' => f.keyevent = true,
                'g' => f.generic = true,
                '$' => f.string = true,
                'x' => f.expired = true,
                'e' => f.evicted = true,
                'A' => {
                    f.generic = true;
                    f.string = true;
                    f.expired = true;
                    f.evicted = true;
                }
                // Types Synap's keyspace does not hold yet: accepted, nothing to notify.
                'l' | 's' | 'h' | 'z' | 't' | 'm' | 'd' | 'n' => {}
                other => return Err(format!("unknown keyspace event flag '{other}' (use K, E, g, $, x, e, A)")),
            }
        }
        Ok(f)
    }

    /// Whether anything can be sent at all.
    pub fn active(&self) -> bool {
        (self.keyspace || self.keyevent) && (self.generic || self.string || self.expired || self.evicted)
    }

    pub(crate) fn wants(&self, event: &str) -> bool {
        match event {
            "expired" => self.expired,
            "evicted" => self.evicted,
            "set" | "incrby" | "incrbyfloat" | "append" => self.string,
            _ => self.generic,
        }
    }
}

/// What a command may notify, noted before it runs (the command itself is consumed by execution).
pub(crate) enum Plan {
    /// One event per key, when the reply says the command acted.
    Keys(&'static str, Vec<Bytes>),
    Del(Vec<Bytes>),
    Rename(Bytes, Bytes),
}

pub(crate) fn plan(cmd: &Command) -> Option<Plan> {
    Some(match cmd {
        Command::Set(a) => Plan::Keys(
            match (a.get, a.cond) {
                (false, _) => "set",
                (true, SetCond::Always) => "set!",
                (true, _) => "set?",
            },
            vec![a.key.clone()],
        ),
        Command::MSet { pairs, .. } => Plan::Keys("set", pairs.iter().map(|(k, _)| k.clone()).collect()),
        Command::IncrBy { key, .. } => Plan::Keys("incrby", vec![key.clone()]),
        Command::IncrByFloat { key, .. } => Plan::Keys("incrbyfloat", vec![key.clone()]),
        Command::Append { key, .. } => Plan::Keys("append", vec![key.clone()]),
        Command::GetDel { key } => Plan::Keys("del", vec![key.clone()]),
        Command::Del { .. } => Plan::Del(Vec::new()),
        Command::Expire { key, .. } => Plan::Keys("expire", vec![key.clone()]),
        Command::Persist { key } => Plan::Keys("persist", vec![key.clone()]),
        Command::Rename { from, to, .. } => Plan::Rename(from.clone(), to.clone()),
        _ => return None,
    })
}

/// Whether the reply says the command changed something.
pub(crate) fn acted(reply: &Reply) -> bool {
    match reply {
        Reply::Ok | Reply::Bulk(_) | Reply::Double(_) => true,
        Reply::Int(n) => *n != 0,
        _ => false,
    }
}
