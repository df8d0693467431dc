//! MONITOR: every command the server runs, as a line `+<secs>.<micros> [0 <client addr>] "arg" ...`,
//! sent to the clients that asked. Each monitor has a bounded feed; one that falls behind by more than
//! its limit is closed (as Redis closes a client past its output buffer limit). Commands of the
//! `admin` kind are not shown, as in Redis.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// One monitor's queue of lines.
pub struct Feed {
    lines: Mutex<(VecDeque<Bytes>, usize)>,
    limit: usize,
    pub notify: Notify,
    closed: AtomicBool,
}

impl Feed {
    /// The lines queued so far; `None` once the feed overflowed (the monitor is closed).
    pub fn drain(&self) -> Option<Vec<Bytes>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.lines.lock();
        q.1 = 0;
        Some(q.0.drain(..).collect())
    }

    fn push(&self, line: Bytes) {
        let mut q = self.lines.lock();
        if q.1 + line.len() > self.limit {
            q.0.clear();
            self.closed.store(true, Ordering::Release);
        } else {
            q.1 += line.len();
            q.0.push_back(line);
        }
        drop(q);
        self.notify.notify_one();
    }
}

/// The server's monitors.
#[derive(Default)]
pub struct Monitors {
    feeds: Mutex<Vec<(u64, Arc<Feed>)>>,
    count: AtomicUsize,
}

impl Monitors {
    pub fn add(&self, client: u64, limit: usize) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            lines: Mutex::new((VecDeque::new(), 0)),
            limit,
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let mut feeds = self.feeds.lock();
        feeds.push((client, feed.clone()));
        self.count.store(feeds.len(), Ordering::Release);
        feed
    }

    pub fn remove(&self, client: u64) {
        let mut feeds = self.feeds.lock();
        feeds.retain(|(id, _)| *id != client);
        self.count.store(feeds.len(), Ordering::Release);
    }

    /// Whether anyone monitors (checked before a line is formatted).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Sends one command line to every monitor but the client that sent it; `origin` is the client's
    /// address (`lua` for a command a script called).
    pub fn feed(&self, from: u64, db: u32, origin: impl std::fmt::Display, args: &[Bytes]) {
        let line = Bytes::from(format_line(db, origin, args));
        for (id, feed) in self.feeds.lock().iter() {
            if *id != from {
                feed.push(line.clone());
            }
        }
    }
}

/// `+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"` with arguments quoted as Redis quotes them.
fn format_line(db: u32, origin: impl std::fmt::Display, args: &[Bytes]) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("+{}.{:06} [{db} {origin}]", now.as_secs(), now.subsec_micros()).into_bytes();
    for a in args {
        out.extend_from_slice(b" \"");
        for &b in a.iter() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'"' => out.extend_from_slice(b"\\\""),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                7 => out.extend_from_slice(b"\\a"),
                8 => out.extend_from_slice(b"\\b"),
                b if b.is_ascii_graphic() || b == b' ' => out.push(b),
                b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn lines_quote_as_redis_does() {
        let addr: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let line = format_line(3, addr, &[Bytes::from("set"), Bytes::from("a \"b\"\n\u{1}")]);
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with(" [3 127.0.0.1:5] \"set\" \"a \\\"b\\\"\\n\\x01\"\r\n"), "{text}");
    }
}
