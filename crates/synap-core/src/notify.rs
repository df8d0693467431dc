//! Keyspace notifications, as Redis's `notify-keyspace-events`: on `__keyspace@0__:<key>` (the event
//! name as payload) and `__keyevent@0__:<event>` (the key as payload), through pub/sub. They are raised
//! where a change is committed (`Keyspace::log_batch`, the stream store's commits), for every type.

use std::sync::Arc;

use crate::pubsub::PubSub;

/// The class of an event: the flag that turns it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `g`: DEL, EXPIRE, RENAME, ... (commands on keys of any type).
    Generic,
    /// `$`
    String,
    /// `l`
    List,
    /// `s`
    Set,
    /// `h`
    Hash,
    /// `z`
    ZSet,
    /// `t`
    Stream,
    /// `x`: a key expired.
    Expired,
    /// `e`: a key was evicted.
    Evicted,
}

/// Which notifications are on. Parsed from Redis's flag string: `K` keyspace channel, `E` keyevent channel,
/// `g` generic, `$` string, `l` list, `s` set, `h` hash, `z` sorted set, `t` stream, `x` expired, `e`
/// evicted, `A` all of these classes. Empty: off (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyFlags {
    pub keyspace: bool,
    pub keyevent: bool,
    pub generic: bool,
    pub string: bool,
    pub list: bool,
    pub set: bool,
    pub hash: bool,
    pub zset: bool,
    pub stream: bool,
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
                'l' => f.list = true,
                's' => f.set = true,
                'h' => f.hash = true,
                'z' => f.zset = true,
                't' => f.stream = true,
                'x' => f.expired = true,
                'e' => f.evicted = true,
                'A' => {
                    f.generic = true;
                    f.string = true;
                    f.list = true;
                    f.set = true;
                    f.hash = true;
                    f.zset = true;
                    f.stream = true;
                    f.expired = true;
                    f.evicted = true;
                }
                // Classes Synap has no events of (module, key miss, new key): accepted, nothing to send.
                'd' | 'm' | 'n' => {}
                other => {
                    return Err(format!(
                        "unknown keyspace event flag '{other}' (use K, E, g, $, l, s, h, z, t, x, e, A)"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// Whether anything can be sent at all.
    pub fn active(&self) -> bool {
        (self.keyspace || self.keyevent)
            && (self.generic
                || self.string
                || self.list
                || self.set
                || self.hash
                || self.zset
                || self.stream
                || self.expired
                || self.evicted)
    }

    pub fn wants(&self, class: Class) -> bool {
        match class {
            Class::Generic => self.generic,
            Class::String => self.string,
            Class::List => self.list,
            Class::Set => self.set,
            Class::Hash => self.hash,
            Class::ZSet => self.zset,
            Class::Stream => self.stream,
            Class::Expired => self.expired,
            Class::Evicted => self.evicted,
        }
    }
}

/// Sends the notifications the flags ask for.
#[derive(Default)]
pub struct Notifier {
    flags: NotifyFlags,
    pubsub: Option<Arc<PubSub>>,
}

impl Notifier {
    pub fn new(flags: NotifyFlags, pubsub: Arc<PubSub>) -> Notifier {
        Notifier { flags, pubsub: flags.active().then_some(pubsub) }
    }

    /// Publishes one event about `key`, if its class is on (checked inline: every write calls this).
    #[inline]
    pub fn emit(&self, class: Class, event: &str, key: &[u8]) {
        if let Some(ps) = &self.pubsub
            && self.flags.wants(class)
        {
            self.publish(ps, event, key);
        }
    }

    #[cold]
    fn publish(&self, ps: &PubSub, event: &str, key: &[u8]) {
        if self.flags.keyspace {
            let mut ch = b"__keyspace@0__:".to_vec();
            ch.extend_from_slice(key);
            ps.publish(&ch, event.as_bytes());
        }
        if self.flags.keyevent {
            let ch = format!("__keyevent@0__:{event}");
            ps.publish(ch.as_bytes(), key);
        }
    }
}
