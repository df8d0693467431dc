//! Pub/Sub: fire-and-forget messages routed to subscribers of every protocol through one router.
//!
//! Three kinds of subscription share the router:
//! - exact channels (RESP `SUBSCRIBE`, and topics without wildcards): a hash map
//! - topic patterns with `*` (one level) and `#` (zero or more levels, last): the `trie`
//! - Redis glob patterns (RESP `PSUBSCRIBE`): a list, with a bounded cache of the patterns matching
//!   each recent channel, invalidated when the pattern set changes
//!
//! Each subscriber owns a bounded [`Sink`]. A slow subscriber never slows a publisher: with
//! `Overflow::DropOldest` (WebSocket, SSE) the oldest message goes and the subscriber is told how many it
//! missed; with `Overflow::Disconnect` (RESP, as Redis's pubsub output limit) the sink is closed and the
//! connection dropped. Messages are not written to the WAL: pub/sub is fire-and-forget.
//!
//! Lock rule: `PubSub::state` (one `RwLock`) is held only to change or read the routing tables; sinks
//! have their own small mutex; a publish takes the read lock, collects the matching sinks, releases it,
//! then pushes.

pub mod trie;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::glob::glob_match;
use trie::Trie;

pub type SubId = u64;

/// What happens when a subscriber's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    DropOldest,
    Disconnect,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubMessage {
    pub channel: Bytes,
    /// The pattern that matched, for pattern subscriptions (RESP `pmessage`).
    pub pattern: Option<Bytes>,
    pub payload: Bytes,
}

impl PubMessage {
    /// Bytes the message holds (what a subscriber's queue is charged for it).
    fn size(&self) -> usize {
        self.channel.len() + self.payload.len() + self.pattern.as_ref().map_or(0, |p| p.len()) + 48
    }
}

/// A subscriber's queue, bounded by messages and by bytes.
pub struct Sink {
    pub id: SubId,
    /// Queued messages and the bytes they hold.
    queue: Mutex<(VecDeque<PubMessage>, usize)>,
    notify: Notify,
    cap: usize,
    max_bytes: usize,
    overflow: Overflow,
    closed: AtomicBool,
    close_notify: Notify,
    dropped: AtomicU64,
    /// Dropped messages not yet reported to the subscriber.
    missed: AtomicU64,
}

impl Sink {
    fn push(&self, m: PubMessage, stats: &Counters) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let size = m.size();
        let mut q = self.queue.lock();
        while !q.0.is_empty() && (q.0.len() >= self.cap || q.1 + size > self.max_bytes) {
            match self.overflow {
                Overflow::DropOldest => {
                    if let Some(old) = q.0.pop_front() {
                        q.1 -= old.size();
                    }
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.missed.fetch_add(1, Ordering::Relaxed);
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Overflow::Disconnect => {
                    drop(q);
                    self.closed.store(true, Ordering::Relaxed);
                    stats.disconnected.fetch_add(1, Ordering::Relaxed);
                    self.notify.notify_one();
                    self.close_notify.notify_waiters();
                    return false;
                }
            }
        }
        q.0.push_back(m);
        q.1 += size;
        drop(q);
        self.notify.notify_one();
        true
    }

    /// Takes up to `max` queued messages.
    pub fn drain(&self, max: usize) -> Vec<PubMessage> {
        let mut q = self.queue.lock();
        let n = q.0.len().min(max);
        let out: Vec<PubMessage> = q.0.drain(..n).collect();
        q.1 -= out.iter().map(PubMessage::size).sum::<usize>();
        out
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().1
    }

    /// Messages dropped since the last call (reported to WebSocket/SSE clients).
    pub fn take_missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }

    /// Closed because it overflowed (`Overflow::Disconnect`).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Resolves once the sink is closed for overflowing (a connection blocked writing to a slow client
    /// selects on it, to drop the client at once).
    pub async fn closed(&self) {
        let notified = self.close_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closed() {
            return;
        }
        notified.await;
    }

    /// Waits until a message may be waiting (or the sink closed).
    pub async fn ready(&self) {
        let notified = self.notify.notified();
        if !self.queue.lock().0.is_empty() || self.is_closed() {
            return;
        }
        notified.await;
    }
}

/// Counters for `/pubsub/stats` and INFO.
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub disconnected: AtomicU64,
}

#[derive(Default)]
struct State {
    channels: HashMap<Bytes, HashSet<SubId>>,
    topics: Trie,
    /// Glob patterns and their subscribers.
    globs: HashMap<Bytes, HashSet<SubId>>,
    /// Glob subscriptions in all (a pattern counts once per subscriber).
    glob_count: usize,
    sinks: HashMap<SubId, Arc<Sink>>,
    /// What each subscriber is subscribed to: (kind, name).
    subs: HashMap<SubId, HashSet<(Kind, Bytes)>>,
    generation: u64,
}

/// What a subscription names (the command layer's [`crate::command::SubKind`]).
pub use crate::command::SubKind as Kind;

impl State {
    /// Removes one subscription from the routing tables (not from `subs`).
    fn remove(&mut self, id: SubId, kind: Kind, name: &[u8]) {
        match kind {
            Kind::Channel => {
                if let Some(set) = self.channels.get_mut(name) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.channels.remove(name);
                    }
                }
            }
            Kind::Topic => {
                self.topics.remove(std::str::from_utf8(name).unwrap_or_default(), id);
                self.generation += 1;
            }
            Kind::Glob => {
                if let Some(set) = self.globs.get_mut(name) {
                    if set.remove(&id) {
                        self.glob_count -= 1;
                    }
                    if set.is_empty() {
                        self.globs.remove(name);
                    }
                }
                self.generation += 1;
            }
        }
    }
}

const CACHE_CAP: usize = 4096;
/// Channels longer than this are matched against the glob patterns without being cached (a cache of
/// huge names would hold their bytes).
const CACHE_MAX_CHANNEL: usize = 256;

/// The glob subscriptions (pattern, subscriber) matching one channel.
type GlobHits = Arc<Vec<(Bytes, SubId)>>;

pub struct PubSub {
    state: RwLock<State>,
    /// channel -> (generation, matching glob subscriptions) for the most recent channels.
    cache: Mutex<HashMap<Bytes, (u64, GlobHits)>>,
    next_id: AtomicU64,
    pub counters: Counters,
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            state: RwLock::default(),
            cache: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }
}

/// A snapshot of the routing tables' size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubStats {
    pub subscribers: usize,
    pub channels: usize,
    pub topic_patterns: usize,
    pub glob_patterns: usize,
    pub published: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub disconnected: u64,
}

impl PubSub {
    /// A new subscriber with a queue of at most `cap` messages and `max_bytes` bytes (a message larger
    /// than that alone is still queued when the queue is empty).
    pub fn register(&self, cap: usize, max_bytes: usize, overflow: Overflow) -> Arc<Sink> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sink = Arc::new(Sink {
            id,
            queue: Mutex::new((VecDeque::new(), 0)),
            notify: Notify::new(),
            cap: cap.max(1),
            max_bytes: max_bytes.max(1),
            overflow,
            closed: AtomicBool::new(false),
            close_notify: Notify::new(),
            dropped: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        });
        let mut st = self.state.write();
        st.sinks.insert(id, sink.clone());
        st.subs.insert(id, HashSet::new());
        sink
    }

    /// Removes a subscriber and all its subscriptions (one pass under the lock, each removal O(1)).
    pub fn unregister(&self, id: SubId) {
        let mut st = self.state.write();
        let subs = st.subs.remove(&id).unwrap_or_default();
        for (kind, name) in &subs {
            st.remove(id, *kind, name);
        }
        st.sinks.remove(&id);
    }

    /// How many subscriptions a subscriber has.
    pub fn subscription_count(&self, id: SubId) -> usize {
        self.state.read().subs.get(&id).map_or(0, |s| s.len())
    }

    /// Subscribes; returns the subscriber's subscription count afterwards. A topic without wildcards is
    /// an exact channel.
    pub fn subscribe(&self, id: SubId, kind: Kind, name: &[u8]) -> usize {
        let name = Bytes::copy_from_slice(name);
        let kind = match (kind, std::str::from_utf8(&name)) {
            (Kind::Topic, Ok(t)) if !trie::is_wildcard(t) => Kind::Channel,
            (k, _) => k,
        };
        let topic = match kind {
            // Only valid patterns enter the trie (its depth bounds its walks).
            Kind::Topic => match std::str::from_utf8(&name) {
                Ok(t) if trie::valid_pattern(t) => Some(t.to_string()),
                _ => return self.subscription_count(id),
            },
            _ => None,
        };
        let mut st = self.state.write();
        let Some(subs) = st.subs.get_mut(&id) else { return 0 };
        if subs.insert((kind, name.clone())) {
            match kind {
                Kind::Channel => {
                    st.channels.entry(name).or_default().insert(id);
                }
                Kind::Topic => {
                    st.topics.insert(topic.as_deref().unwrap_or_default(), id);
                    st.generation += 1;
                }
                Kind::Glob => {
                    if st.globs.entry(name).or_default().insert(id) {
                        st.glob_count += 1;
                    }
                    st.generation += 1;
                }
            }
        }
        st.subs.get(&id).map(|s| s.len()).unwrap_or(0)
    }

    /// Unsubscribes; returns the remaining subscription count.
    pub fn unsubscribe(&self, id: SubId, kind: Kind, name: &[u8]) -> usize {
        let kind = match (kind, std::str::from_utf8(name)) {
            (Kind::Topic, Ok(t)) if !trie::is_wildcard(t) => Kind::Channel,
            (k, _) => k,
        };
        let mut st = self.state.write();
        let removed = st.subs.get_mut(&id).map(|s| s.remove(&(kind, Bytes::copy_from_slice(name)))).unwrap_or(false);
        if removed {
            st.remove(id, kind, name);
        }
        st.subs.get(&id).map(|s| s.len()).unwrap_or(0)
    }

    /// The subscriber's subscriptions of one kind (for UNSUBSCRIBE without arguments).
    pub fn subscriptions(&self, id: SubId, kind: Kind) -> Vec<Bytes> {
        let st = self.state.read();
        let mut v: Vec<Bytes> = st
            .subs
            .get(&id)
            .map(|s| s.iter().filter(|(k, _)| *k == kind).map(|(_, n)| n.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn glob_matches(&self, st: &State, channel: &Bytes) -> GlobHits {
        if st.globs.is_empty() {
            return Arc::new(Vec::new());
        }
        if let Some((generation, hit)) = self.cache.lock().get(channel)
            && *generation == st.generation
        {
            return hit.clone();
        }
        let found: GlobHits = Arc::new(
            st.globs
                .iter()
                .filter(|(p, _)| glob_match(p, channel))
                .flat_map(|(p, ids)| ids.iter().map(move |id| (p.clone(), *id)))
                .collect(),
        );
        if channel.len() > CACHE_MAX_CHANNEL {
            return found;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(channel.clone(), (st.generation, found.clone()));
        found
    }

    /// Publishes to every matching subscriber; returns how many received it (as Redis's PUBLISH).
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let channel = Bytes::copy_from_slice(channel);
        let payload = Bytes::copy_from_slice(payload);
        let mut targets: Vec<(Arc<Sink>, Option<Bytes>)> = Vec::new();
        {
            let st = self.state.read();
            let mut seen = HashSet::new();
            if let Some(ids) = st.channels.get(&channel) {
                for id in ids {
                    if seen.insert(*id)
                        && let Some(s) = st.sinks.get(id)
                    {
                        targets.push((s.clone(), None));
                    }
                }
            }
            if !st.topics.is_empty()
                && let Ok(topic) = std::str::from_utf8(&channel)
            {
                let mut ids = Vec::new();
                st.topics.matches(topic, &mut ids);
                for id in ids {
                    if seen.insert(id)
                        && let Some(s) = st.sinks.get(&id)
                    {
                        targets.push((s.clone(), None));
                    }
                }
            }
            // A glob subscriber gets one `pmessage` per matching pattern, as in Redis.
            for (pattern, id) in self.glob_matches(&st, &channel).iter() {
                if let Some(s) = st.sinks.get(id) {
                    targets.push((s.clone(), Some(pattern.clone())));
                }
            }
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let mut n = 0;
        for (sink, pattern) in targets {
            if sink.push(PubMessage { channel: channel.clone(), pattern, payload: payload.clone() }, &self.counters) {
                n += 1;
            }
        }
        self.counters.delivered.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// PUBSUB CHANNELS [pattern]: channels with at least one exact subscriber.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let st = self.state.read();
        let mut v: Vec<Bytes> =
            st.channels.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c))).cloned().collect();
        v.sort();
        v
    }

    /// PUBSUB NUMSUB: exact subscribers of a channel.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.state.read().channels.get(channel).map(|s| s.len()).unwrap_or(0)
    }

    /// PUBSUB NUMPAT: pattern subscriptions (globs and topic patterns).
    pub fn numpat(&self) -> usize {
        let st = self.state.read();
        st.glob_count + st.topics.len()
    }

    pub fn stats(&self) -> PubSubStats {
        let st = self.state.read();
        PubSubStats {
            subscribers: st.sinks.len(),
            channels: st.channels.len(),
            topic_patterns: st.topics.len(),
            glob_patterns: st.glob_count,
            published: self.counters.published.load(Ordering::Relaxed),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            disconnected: self.counters.disconnected.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::trie::{Trie, naive_match, valid_pattern};
    use super::*;

    #[test]
    fn routes_exact_topic_and_glob_subscriptions() {
        let ps = PubSub::default();
        let a = ps.register(10, 1 << 20, Overflow::DropOldest);
        let b = ps.register(10, 1 << 20, Overflow::DropOldest);
        let c = ps.register(10, 1 << 20, Overflow::Disconnect);
        ps.subscribe(a.id, Kind::Topic, b"orders.*.created");
        ps.subscribe(b.id, Kind::Topic, b"orders.#");
        ps.subscribe(c.id, Kind::Channel, b"orders.eu.created");
        ps.subscribe(c.id, Kind::Glob, b"orders.*");
        assert_eq!(ps.publish(b"orders.eu.created", b"1"), 4);
        assert_eq!(ps.publish(b"orders", b"2"), 1, "# matches zero levels");
        assert_eq!(a.drain(10).len(), 1);
        assert_eq!(b.drain(10).len(), 2);
        let got = c.drain(10);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].pattern.as_deref(), Some(&b"orders.*"[..]));
        ps.unregister(b.id);
        assert_eq!(ps.publish(b"orders.eu.created", b"3"), 3);
        assert_eq!(ps.numsub(b"orders.eu.created"), 1);
        assert_eq!(ps.numpat(), 2);
    }

    #[test]
    fn slow_subscribers_drop_oldest_or_disconnect() {
        let ps = PubSub::default();
        let web = ps.register(3, 1 << 20, Overflow::DropOldest);
        let resp = ps.register(3, 1 << 20, Overflow::Disconnect);
        ps.subscribe(web.id, Kind::Channel, b"t");
        ps.subscribe(resp.id, Kind::Channel, b"t");
        for i in 0..5 {
            ps.publish(b"t", i.to_string().as_bytes());
        }
        let kept: Vec<Bytes> = web.drain(10).into_iter().map(|m| m.payload).collect();
        assert_eq!(kept, vec![Bytes::from("2"), Bytes::from("3"), Bytes::from("4")]);
        assert_eq!(web.take_missed(), 2);
        assert!(resp.is_closed());
        assert_eq!(ps.stats().disconnected, 1);
    }

    /// Queues are bounded by bytes as well as by messages: a web subscriber drops its oldest messages to
    /// stay under the byte cap, a RESP one is disconnected.
    #[test]
    fn subscriber_queues_are_bounded_by_bytes() {
        let ps = PubSub::default();
        let web = ps.register(1000, 10_000, Overflow::DropOldest);
        let resp = ps.register(1000, 10_000, Overflow::Disconnect);
        ps.subscribe(web.id, Kind::Channel, b"t");
        ps.subscribe(resp.id, Kind::Channel, b"t");
        let big = vec![b'x'; 3000];
        for _ in 0..3 {
            ps.publish(b"t", &big);
        }
        assert!(!resp.is_closed());
        ps.publish(b"t", &big);
        assert!(resp.is_closed(), "over 10,000 bytes queued");
        assert!(web.queued_bytes() <= 10_000);
        assert_eq!(web.drain(100).len(), 3);
        assert_eq!(web.take_missed(), 1);
        assert_eq!(web.queued_bytes(), 0);
    }

    /// A topic of any depth is matched without recursing once per level, and patterns deeper than the
    /// limit are refused (they would make the trie that deep).
    #[test]
    fn deep_topics_and_patterns_are_bounded() {
        let ps = PubSub::default();
        let s = ps.register(10, 1 << 20, Overflow::DropOldest);
        assert_eq!(ps.subscribe(s.id, Kind::Topic, b"a.#"), 1);
        let deep = format!("a{}", ".a".repeat(500_000));
        assert_eq!(ps.publish(deep.as_bytes(), b"x"), 1);
        assert!(!valid_pattern(&format!("a{}", ".*".repeat(40))));
        assert!(!valid_pattern(&"a".repeat(2000)));
        assert_eq!(ps.subscribe(s.id, Kind::Topic, format!("a{}.#", ".*".repeat(40)).as_bytes()), 1, "refused");
        ps.unregister(s.id);
        assert_eq!(ps.stats().topic_patterns, 0);
    }

    /// Unsubscribing patterns one by one, and dropping a subscriber with many, leaves no trace.
    #[test]
    fn glob_unsubscribe_and_unregister_clean_up() {
        let ps = PubSub::default();
        let a = ps.register(10, 1 << 20, Overflow::DropOldest);
        let b = ps.register(10, 1 << 20, Overflow::DropOldest);
        for i in 0..100 {
            ps.subscribe(a.id, Kind::Glob, format!("p{i}*").as_bytes());
            ps.subscribe(b.id, Kind::Glob, format!("p{i}*").as_bytes());
        }
        assert_eq!(ps.numpat(), 200);
        assert_eq!(ps.publish(b"p7x", b"m"), 2);
        for i in 0..100 {
            ps.unsubscribe(a.id, Kind::Glob, format!("p{i}*").as_bytes());
        }
        assert_eq!(ps.numpat(), 100);
        assert_eq!(ps.publish(b"p7x", b"m"), 1);
        ps.unregister(b.id);
        assert_eq!((ps.numpat(), ps.stats().glob_patterns), (0, 0));
        assert_eq!(ps.publish(b"p7x", b"m"), 0);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string())]
    }

    proptest! {
        #[test]
        fn trie_agrees_with_the_naive_matcher(
            patterns in prop::collection::vec(prop::collection::vec(prop_oneof![level(), Just("*".to_string()), Just("#".to_string())], 1..4), 1..20),
            topics in prop::collection::vec(prop::collection::vec(level(), 1..5), 1..20),
        ) {
            let patterns: Vec<String> = patterns.into_iter().map(|p| p.join(".")).filter(|p| valid_pattern(p)).collect();
            let mut trie = Trie::default();
            for (i, p) in patterns.iter().enumerate() {
                trie.insert(p, i as u64);
            }
            for t in topics.into_iter().map(|t| t.join(".")) {
                let mut got = Vec::new();
                trie.matches(&t, &mut got);
                got.sort();
                got.dedup();
                let want: Vec<u64> = patterns.iter().enumerate().filter(|(_, p)| naive_match(p, &t)).map(|(i, _)| i as u64).collect();
                prop_assert_eq!(got, want, "topic {}", t);
            }
        }
    }
}
