//! Synap against a real `redis-server`, side by side: the same command lines go to both, in RESP2 and in
//! RESP3, and their replies (parsed into values, not compared as text) and keyspace notifications must be
//! equal. Covers what the command layer promises: streams are keys like any other (TYPE, EXISTS, KEYS,
//! SCAN, DBSIZE, EXPIRE, RENAME, OBJECT, DEL, FLUSHALL), notifications raised at the point of change for
//! every type, and GETEX.
//!
//! Needs `redis-server` on the PATH (CI installs it); without it the test says so and passes, unless
//! `CI` is set.

mod common;

use common::redis_server::Redis;

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply, as either server sends it.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<V>>),
    Null,
    Double(String),
    Bool(bool),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Push(Vec<V>),
}

impl V {
    /// Element order that neither server promises (KEYS, SCAN, SMEMBERS, a set reply): sorted.
    fn sorted(self) -> V {
        let sort = |mut v: Vec<V>| {
            v.sort_by_key(|x| format!("{x:?}"));
            v
        };
        match self {
            // A SCAN page: [cursor, keys].
            V::Array(Some(v)) if matches!(&v[..], [V::Bulk(_), V::Array(_)]) => {
                let mut v = v;
                let keys = v.pop().expect("two items").sorted();
                v.push(keys);
                V::Array(Some(v))
            }
            V::Array(Some(v)) => V::Array(Some(sort(v))),
            V::Set(v) => V::Set(sort(v)),
            other => other,
        }
    }
}

struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = s.into_split();
        Conn { r: BufReader::new(r), w }
    }

    async fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.w.write_all(&out).await.unwrap();
    }

    async fn read(&mut self) -> V {
        tokio::time::timeout(Duration::from_secs(5), read_value(&mut self.r)).await.expect("a reply within 5 s")
    }

    async fn call(&mut self, line: &str) -> V {
        let args: Vec<&str> = line.split(' ').collect();
        self.send(&args).await;
        self.read().await
    }
}

fn read_value<'a>(
    r: &'a mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = V> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().unwrap();
        match kind {
            "+" => V::Simple(rest.into()),
            "-" => V::Error(rest.into()),
            ":" => V::Int(n()),
            "_" => V::Null,
            "," => V::Double(rest.into()),
            "#" => V::Bool(rest == "t"),
            "$" | "=" if n() < 0 => V::Bulk(None),
            "$" | "=" => {
                let mut buf = vec![0; n() as usize + 2];
                r.read_exact(&mut buf).await.unwrap();
                buf.truncate(buf.len() - 2);
                V::Bulk(Some(buf))
            }
            "*" if n() < 0 => V::Array(None),
            "*" | "~" | ">" => {
                let mut items = Vec::new();
                for _ in 0..n() {
                    items.push(read_value(r).await);
                }
                match kind {
                    "*" => V::Array(Some(items)),
                    "~" => V::Set(items),
                    _ => V::Push(items),
                }
            }
            "%" => {
                let mut pairs = Vec::new();
                for _ in 0..n() {
                    let k = read_value(r).await;
                    pairs.push((k, read_value(r).await));
                }
                V::Map(pairs)
            }
            _ => panic!("unexpected reply line {line:?}"),
        }
    })
}

/// `~` before a line: compare its reply with element order ignored. `sleep N`: wait N ms on both.
const SCRIPT: &[&str] = &[
    // Streams are keys.
    "XADD s 1-1 f v",
    "XADD s 2-1 g w",
    "SET str x",
    "TYPE s",
    "EXISTS s str nosuch",
    "~KEYS *",
    "DBSIZE",
    "~SCAN 0 COUNT 100",
    "~SCAN 0 TYPE stream",
    "OBJECT ENCODING s",
    "TTL s",
    "EXPIRE s 100",
    "TTL s",
    "PERSIST s",
    "TTL s",
    "RENAME s s2",
    "EXISTS s",
    "XRANGE s2 - +",
    "TYPE s2",
    "XLEN s2",
    "SET s2 replaced",
    "TYPE s2",
    "XADD s 3-1 f v",
    "RENAME str s",
    "TYPE s",
    "XADD s 4-1 f v",
    "XADD t 1-1 f v",
    "PEXPIRE t 50",
    "sleep 150",
    "EXISTS t",
    "XLEN t",
    "XADD t 1-1 f v",
    "DEL t",
    "EXISTS t",
    "XADD u 1-1 f v",
    "XGROUP CREATE u g 0",
    "XREADGROUP GROUP g c COUNT 1 STREAMS u >",
    "XREAD STREAMS u 0",
    "XREAD STREAMS u nosuch 0 0",
    "XDEL u 1-1",
    "XADD u 2-1 f v",
    "XTRIM u MAXLEN 0",
    "~KEYS *",
    "FLUSHALL",
    "DBSIZE",
    "EXISTS u",
    // Notifications from every type, at the point of change.
    "HSET h a 1 b 2",
    "~SMEMBERS h",
    "HGETALL h",
    "~HRANDFIELD h 2 WITHVALUES",
    "~HRANDFIELD h 2",
    "HINCRBY h a 5",
    "HDEL h a b",
    "EXISTS h",
    "RPUSH l a b c",
    "LPOP l",
    "RPOPLPUSH l l2",
    "LSET l2 0 z",
    "LTRIM l 1 0",
    "EXISTS l",
    "SADD s1 a b",
    "SADD s2 b c",
    "~SMEMBERS s1",
    "~SINTER s1 s2",
    "~SUNION s1 s2",
    "~SDIFF s1 s2",
    "SMEMBERS nosuch",
    "SINTERSTORE s3 s1 s2",
    "SREM s1 a b",
    "~SPOP s2 2",
    "SADD s2 c",
    "SMOVE s2 s3 c",
    "ZADD z 1 a 2 b",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZREVRANGE z 0 -1 WITHSCORES",
    "ZRANGEBYSCORE z -inf +inf WITHSCORES",
    "ZRANGE z 0 -1",
    "ZSCORE z a",
    "ZMSCORE z a nosuch",
    "ZINCRBY z 2 a",
    "ZREM z a",
    "ZPOPMIN z",
    "ZADD z 1 a 2 b 3 c",
    "ZPOPMIN z 1",
    "ZPOPMAX z 5",
    "ZPOPMIN z 1",
    "ZADD z 1 a",
    "ZREMRANGEBYSCORE z 0 5",
    "SET k 10",
    "INCRBY k 5",
    "APPEND k x",
    "GETEX k EX 100",
    "TTL k",
    "GETEX k PERSIST",
    "TTL k",
    "GETEX k",
    "GETEX nosuch EX 10",
    "GETDEL k",
    "SET k v PX 50",
    "sleep 150",
    "EXISTS k",
    "MSET a 1 b 2",
    "RENAME a c",
    "DEL b c",
    "SET end 1",
];

/// Runs the script on one server: the replies, and the keyspace events a second connection saw.
async fn run(port: u16, resp3: bool) -> (Vec<V>, Vec<(String, String)>) {
    let mut c = Conn::open(port).await;
    let mut sub = Conn::open(port).await;
    if resp3 {
        c.call("HELLO 3").await;
        sub.call("HELLO 3").await;
    }
    assert!(matches!(c.call("FLUSHALL").await, V::Simple(_)));
    sub.send(&["PSUBSCRIBE", "__keyevent@0__:*"]).await;
    sub.read().await;
    let mut replies = Vec::new();
    for line in SCRIPT {
        if let Some(ms) = line.strip_prefix("sleep ") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            continue;
        }
        let (sorted, line) = match line.strip_prefix('~') {
            Some(l) => (true, l),
            None => (false, *line),
        };
        let v = c.call(line).await;
        replies.push(if sorted { v.sorted() } else { v });
    }
    // The events up to the last command's (SET end: `set` on `end`).
    let mut events = Vec::new();
    loop {
        let m = sub.read().await;
        let (V::Array(Some(items)) | V::Push(items)) = &m else { panic!("{m:?}") };
        let [_, _, channel, key] = &items[..] else { panic!("{m:?}") };
        let text = |v: &V| match v {
            V::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        };
        events.push((text(channel).trim_start_matches("__keyevent@0__:").to_string(), text(key)));
        if *key == V::Bulk(Some(b"end".to_vec())) {
            break;
        }
    }
    (replies, events)
}

#[tokio::test]
async fn streams_are_keys_and_notifications_match_redis() {
    let Some(redis) = Redis::start(&["--notify-keyspace-events", "KEA"]) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is needed in CI");
        eprintln!("redis-server not found: the differential test does not run");
        return;
    };
    let synap = common::start_with(|c| c.pubsub.notify_keyspace_events = "KEA".into()).await;
    let synap_port = synap.server.as_ref().unwrap().resp_addr.unwrap().port();
    for resp3 in [false, true] {
        let (want, want_events) = run(redis.port, resp3).await;
        let (got, got_events) = run(synap_port, resp3).await;
        let lines = SCRIPT.iter().filter(|l| !l.starts_with("sleep"));
        let diff: Vec<String> = lines
            .zip(&want)
            .zip(&got)
            .filter(|((_, w), g)| w != g)
            .map(|((line, w), g)| format!("{line}\n  redis: {w:?}\n  synap: {g:?}"))
            .collect();
        assert!(diff.is_empty(), "RESP{}:\n{}", if resp3 { 3 } else { 2 }, diff.join("\n"));
        assert_eq!(got_events, want_events, "RESP{}: keyspace events", if resp3 { 3 } else { 2 });
    }
    synap.stop().await;
}

/// Seeded random sequences of every family (`synap-diff`), in lockstep on redis-server and Synap, in
/// RESP2 and RESP3: every reply and the final keyspace must be equal. CI runs a short run; long runs
/// take `SYNAP_DIFF_COMMANDS` and `SYNAP_DIFF_SEED` (or the `synap-diff` binary against running servers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_match_redis() {
    let Some(redis) = Redis::start(&["--notify-keyspace-events", "KEA"]) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is needed in CI");
        eprintln!("redis-server not found: the differential test does not run");
        return;
    };
    let synap = common::start().await;
    let synap_addr = synap.server.as_ref().unwrap().resp_addr.unwrap().to_string();
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (commands, seed) = (env("SYNAP_DIFF_COMMANDS", 10000), env("SYNAP_DIFF_SEED", 20261203));
    for resp3 in [false, true] {
        let opts = synap_diff::Options {
            redis: format!("127.0.0.1:{}", redis.port),
            synap: synap_addr.clone(),
            seed,
            commands,
            resp3,
            families: synap_diff::FAMILIES.to_vec(),
            segment: 300,
            max_shrink_trials: 500,
        };
        let outcome = tokio::task::spawn_blocking(move || synap_diff::run(&opts)).await.unwrap().unwrap();
        if let Err(m) = outcome {
            panic!("RESP{}, seed {seed}: {m}", if resp3 { 3 } else { 2 });
        }
    }
    synap.stop().await;
}
