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

impl NotifyFlags {
    /// The flags as Redis's CONFIG GET spells them: `A` for every class, else the classes in Redis's
    /// order, then `K` and `E`.
    pub fn to_redis_string(&self) -> String {
        let classes = [
            (self.generic, 'g'),
            (self.string, '$'),
            (self.list, 'l'),
            (self.set, 's'),
            (self.hash, 'h'),
            (self.zset, 'z'),
            (self.expired, 'x'),
            (self.evicted, 'e'),
            (self.stream, 't'),
        ];
        let mut s: String = if classes.iter().all(|(on, _)| *on) {
            "A".into()
        } else {
            classes.iter().filter(|(on, _)| *on).map(|(_, c)| *c).collect()
        };
        if self.keyspace {
            s.push('K');
        }
        if self.keyevent {
            s.push('E');
        }
        s
    }
}

/// Sends the notifications the flags ask for; the flags change at run time (CONFIG SET).
#[derive(Default)]
pub struct Notifier {
    flags: parking_lot::RwLock<NotifyFlags>,
    /// Whether any event can be sent: the inline check of every write.
    active: std::sync::atomic::AtomicBool,
    pubsub: Option<Arc<PubSub>>,
}

impl Notifier {
    pub fn new(flags: NotifyFlags, pubsub: Arc<PubSub>) -> Notifier {
        Notifier { active: flags.active().into(), flags: parking_lot::RwLock::new(flags), pubsub: Some(pubsub) }
    }

    pub fn flags(&self) -> NotifyFlags {
        *self.flags.read()
    }

    pub fn set_flags(&self, flags: NotifyFlags) {
        *self.flags.write() = flags;
        self.active.store(flags.active(), std::sync::atomic::Ordering::Release);
    }

    /// Publishes one event about `key` of database `db`, if its class is on (checked inline: every write
    /// calls this).
    #[inline]
    pub fn emit(&self, db: u32, class: Class, event: &str, key: &[u8]) {
        if self.active.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(ps) = &self.pubsub
        {
            let flags = *self.flags.read();
            if flags.wants(class) {
                self.publish(&flags, ps, db, event, key);
            }
        }
    }

    #[cold]
    fn publish(&self, flags: &NotifyFlags, ps: &PubSub, db: u32, event: &str, key: &[u8]) {
        if flags.keyspace {
            let mut ch = format!("__keyspace@{db}__:").into_bytes();
            ch.extend_from_slice(key);
            ps.publish(&ch, event.as_bytes());
        }
        if flags.keyevent {
            let ch = format!("__keyevent@{db}__:{event}");
            ps.publish(ch.as_bytes(), key);
        }
    }
}
