//! Redis data types over RESP with the `redis` crate: hashes, lists, sets, sorted sets, blocking pops
//! (timeouts, wake-up order, a client leaving while blocked) and transactions (MULTI/EXEC, WATCH).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::start_with;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value as RV, cmd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn conn(s: &common::TestServer) -> MultiplexedConnection {
    let addr = s.server.as_ref().unwrap().resp_addr.expect("RESP enabled");
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

async fn err(c: &mut MultiplexedConnection, command: &mut redis::Cmd) -> String {
    let r: redis::RedisResult<RV> = command.query_async(c).await;
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

#[tokio::test]
async fn hashes_lists_sets_and_sorted_sets() {
    let s = start_with(|_| {}).await;
    let mut c = conn(&s).await;

    // Hashes.
    let n: i64 = c.hset_multiple("h", &[("a", "1"), ("b", "2")]).await.map(|_: ()| 2).unwrap();
    assert_eq!(n, 2);
    let all: HashMap<String, String> = c.hgetall("h").await.unwrap();
    assert_eq!(all, HashMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
    assert_eq!(c.hincr::<_, _, _, i64>("h", "a", 41).await.unwrap(), 42);
    assert_eq!(c.hget::<_, _, Option<String>>("h", "zz").await.unwrap(), None);
    assert!(err(&mut c, cmd("HINCRBY").arg("h").arg("a").arg("x")).await.contains("not an integer"));
    let hs: i64 = cmd("HSETNX").arg("h").arg("a").arg("9").query_async(&mut c).await.unwrap();
    assert_eq!(hs, 0);
    let mget: Vec<Option<String>> = cmd("HMGET").arg("h").arg("a").arg("nope").query_async(&mut c).await.unwrap();
    assert_eq!(mget, vec![Some("42".to_string()), None]);
    assert_eq!(c.hdel::<_, _, i64>("h", &["a", "a", "zz"]).await.unwrap(), 1);
    let scan: (String, Vec<String>) = cmd("HSCAN").arg("h").arg(0).query_async(&mut c).await.unwrap();
    assert_eq!(scan, ("0".to_string(), vec!["b".to_string(), "2".to_string()]));

    // Lists.
    let len: i64 = c.rpush("l", &["a", "b", "c"]).await.unwrap();
    assert_eq!(len, 3);
    let _: i64 = c.lpush("l", "z").await.unwrap();
    assert_eq!(c.lrange::<_, Vec<String>>("l", 0, -1).await.unwrap(), vec!["z", "a", "b", "c"]);
    let popped: Vec<String> = cmd("LPOP").arg("l").arg(2).query_async(&mut c).await.unwrap();
    assert_eq!(popped, vec!["z", "a"]);
    let ins: i64 = cmd("LINSERT").arg("l").arg("BEFORE").arg("c").arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(ins, 3);
    let pos: Option<i64> = cmd("LPOS").arg("l").arg("c").query_async(&mut c).await.unwrap();
    assert_eq!(pos, Some(2));
    let moved: String = cmd("LMOVE").arg("l").arg("l2").arg("RIGHT").arg("LEFT").query_async(&mut c).await.unwrap();
    assert_eq!(moved, "c");
    assert_eq!(err(&mut c, cmd("LSET").arg("l").arg(99).arg("v")).await, "ERR index out of range");
    assert_eq!(err(&mut c, cmd("LSET").arg("nolist").arg(0).arg("v")).await, "ERR no such key");
    let _: () = c.ltrim("l", 0, 0).await.unwrap();
    assert_eq!(c.lrange::<_, Vec<String>>("l", 0, -1).await.unwrap(), vec!["b"]);

    // Sets.
    let added: i64 = c.sadd("s1", &["a", "b", "c"]).await.unwrap();
    assert_eq!(added, 3);
    let _: i64 = c.sadd("s2", &["b", "c", "d"]).await.unwrap();
    let inter: HashSet<String> = c.sinter(&["s1", "s2"]).await.unwrap();
    assert_eq!(inter, HashSet::from(["b".to_string(), "c".to_string()]));
    let stored: i64 = cmd("SUNIONSTORE").arg("s3").arg("s1").arg("s2").query_async(&mut c).await.unwrap();
    assert_eq!(stored, 4);
    let card: i64 = cmd("SINTERCARD").arg(2).arg("s1").arg("s2").arg("LIMIT").arg(1).query_async(&mut c).await.unwrap();
    assert_eq!(card, 1);
    let mis: Vec<i64> = cmd("SMISMEMBER").arg("s1").arg("a").arg("d").query_async(&mut c).await.unwrap();
    assert_eq!(mis, vec![1, 0]);
    assert!(c.smove::<_, _, _, bool>("s1", "s2", "a").await.unwrap());
    let diff: HashSet<String> = c.sdiff(&["s2", "s1"]).await.unwrap();
    assert_eq!(diff, HashSet::from(["a".to_string(), "d".to_string()]));
    let popped: Vec<String> = cmd("SPOP").arg("s3").arg(10).query_async(&mut c).await.unwrap();
    assert_eq!(popped.len(), 4);
    assert!(!c.exists::<_, bool>("s3").await.unwrap(), "an emptied set is removed");

    // Sorted sets.
    let _: i64 = c.zadd_multiple("z", &[(1.0, "a"), (2.0, "b"), (3.0, "c")]).await.unwrap();
    let ch: i64 =
        cmd("ZADD").arg("z").arg("GT").arg("CH").arg(0.5).arg("a").arg(5).arg("b").query_async(&mut c).await.unwrap();
    assert_eq!(ch, 1, "GT: a's lower score is ignored, b's higher one counts");
    let incr: f64 = cmd("ZADD").arg("z").arg("INCR").arg(1.5).arg("a").query_async(&mut c).await.unwrap();
    assert_eq!(incr, 2.5);
    let nx: Option<f64> = cmd("ZADD").arg("z").arg("NX").arg("INCR").arg(1).arg("a").query_async(&mut c).await.unwrap();
    assert_eq!(nx, None);
    assert_eq!(
        err(&mut c, cmd("ZADD").arg("z").arg("NX").arg("XX").arg(1).arg("a")).await,
        "ERR XX and NX options at the same time are not compatible"
    );
    let r: Vec<(String, f64)> = c.zrange_withscores("z", 0, -1).await.unwrap();
    assert_eq!(r, vec![("a".into(), 2.5), ("c".into(), 3.0), ("b".into(), 5.0)]);
    let by: Vec<String> = cmd("ZRANGE")
        .arg("z")
        .arg("+inf")
        .arg("(2.5")
        .arg("BYSCORE")
        .arg("REV")
        .arg("LIMIT")
        .arg(0)
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(by, vec!["b"]);
    let rank: (i64, f64) = cmd("ZRANK").arg("z").arg("c").arg("WITHSCORE").query_async(&mut c).await.unwrap();
    assert_eq!(rank, (1, 3.0));
    let _: i64 = c.zadd("w", "a", 10).await.unwrap();
    let n: i64 = cmd("ZUNIONSTORE")
        .arg("u")
        .arg(2)
        .arg("z")
        .arg("w")
        .arg("WEIGHTS")
        .arg(2)
        .arg(1)
        .arg("AGGREGATE")
        .arg("MAX")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(c.zscore::<_, _, f64>("u", "a").await.unwrap(), 10.0);
    let top: Vec<(String, f64)> = cmd("ZPOPMAX").arg("u").arg(2).query_async(&mut c).await.unwrap();
    assert_eq!(top, vec![("b".to_string(), 10.0), ("a".to_string(), 10.0)], "ties go by member, highest first");
    let stored: i64 = cmd("ZRANGESTORE").arg("zs").arg("z").arg(0).arg(1).query_async(&mut c).await.unwrap();
    assert_eq!(stored, 2);
    let lex: i64 = c.zadd_multiple("lex", &[(0, "a"), (0, "b"), (0, "c"), (0, "d")]).await.unwrap();
    assert_eq!(lex, 4);
    let r: Vec<String> = cmd("ZRANGE").arg("lex").arg("[b").arg("(d").arg("BYLEX").query_async(&mut c).await.unwrap();
    assert_eq!(r, vec!["b", "c"]);

    // Types and errors across them.
    assert_eq!(cmd("TYPE").arg("z").query_async::<String>(&mut c).await.unwrap(), "zset");
    assert_eq!(cmd("TYPE").arg("h").query_async::<String>(&mut c).await.unwrap(), "hash");
    assert!(err(&mut c, cmd("GET").arg("l")).await.starts_with("WRONGTYPE"));
    assert!(err(&mut c, cmd("LPUSH").arg("h").arg("x")).await.starts_with("WRONGTYPE"));
    let keys: (String, Vec<String>) =
        cmd("SCAN").arg(0).arg("TYPE").arg("list").arg("COUNT").arg(100000).query_async(&mut c).await.unwrap();
    let mut lists = keys.1;
    lists.sort();
    assert_eq!(lists, vec!["l", "l2"]);
    s.stop().await;
}

#[tokio::test]
async fn blocking_pops_time_out_serve_in_order_and_survive_leavers() {
    let s = start_with(|_| {}).await;
    let mut c = conn(&s).await;
    // Timeout: nil after about the timeout.
    let started = Instant::now();
    let r: Option<(String, String)> = c.blpop("empty", 0.3).await.unwrap();
    assert!(r.is_none());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(280) && took < Duration::from_secs(3), "{took:?}");
    assert!(err(&mut c, cmd("BLPOP").arg("k").arg("-1")).await.contains("timeout is negative"));
    assert!(err(&mut c, cmd("BLPOP").arg("k").arg("x")).await.contains("timeout is not a float"));

    // Three clients block on one key in order; pushes serve them first come, first served.
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut ci = conn(&s).await;
        waiters.push(tokio::spawn(async move {
            let r: Option<(String, String)> = ci.blpop(&["q"], 10.0).await.unwrap();
            (i, r.map(|(_, v)| v))
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for v in ["first", "second", "third"] {
        let _: i64 = c.rpush("q", v).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got = Vec::new();
    for w in waiters {
        got.push(tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap());
    }
    assert_eq!(
        got,
        vec![(0, Some("first".to_string())), (1, Some("second".to_string())), (2, Some("third".to_string()))]
    );

    // A client that leaves while blocked takes nothing: the element waits for the next reader.
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"BLPOP gone 0\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: i64 = c.rpush("gone", "kept").await.unwrap();
    assert_eq!(c.llen::<_, i64>("gone").await.unwrap(), 1);

    // BZPOPMIN wakes on ZADD; BLMOVE moves when the source fills.
    let mut c2 = conn(&s).await;
    let z = tokio::spawn(async move {
        let r: Option<(String, String, f64)> = cmd("BZPOPMIN").arg("zq").arg(5).query_async(&mut c2).await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: i64 = c.zadd("zq", "m", 7).await.unwrap();
    assert_eq!(z.await.unwrap(), Some(("zq".to_string(), "m".to_string(), 7.0)));
    let mut c3 = conn(&s).await;
    let mv = tokio::spawn(async move {
        let r: Option<String> =
            cmd("BLMOVE").arg("src").arg("dst").arg("LEFT").arg("RIGHT").arg(5).query_async(&mut c3).await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: i64 = c.rpush("src", "item").await.unwrap();
    assert_eq!(mv.await.unwrap().as_deref(), Some("item"));
    assert_eq!(c.lrange::<_, Vec<String>>("dst", 0, -1).await.unwrap(), vec!["item"]);
    // A raw client sees RESP's reply shape.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"RPUSH x 1\r\nBRPOP x 1\r\n").await.unwrap();
    let mut buf = vec![0u8; 256];
    let mut acc = String::new();
    while !acc.contains("$1\r\n1\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        acc.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(acc, ":1\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n");
    s.stop().await;
}

#[tokio::test]
async fn transactions_are_atomic_and_watch_aborts() {
    let s = start_with(|_| {}).await;
    let mut c = conn(&s).await;
    let mut other = conn(&s).await;
    let (a, b, l): (i64, i64, i64) =
        redis::pipe().atomic().incr("a", 1).incr("b", 2).rpush("tx-list", "x").query_async(&mut c).await.unwrap();
    assert_eq!((a, b, l), (1, 2, 1));

    // WATCH: a change by another client aborts EXEC (nil); an untouched watch lets it run.
    let _: () = cmd("WATCH").arg("a").query_async(&mut c).await.unwrap();
    let _: i64 = other.incr("a", 10).await.unwrap();
    let r: Option<(i64,)> = redis::pipe().atomic().incr("a", 1).query_async(&mut c).await.unwrap();
    assert_eq!(r, None, "the watched key changed");
    assert_eq!(c.get::<_, i64>("a").await.unwrap(), 11);
    let _: () = cmd("WATCH").arg("a").query_async(&mut c).await.unwrap();
    let _: i64 = other.incr("unrelated", 1).await.unwrap();
    let r: Option<(i64,)> = redis::pipe().atomic().incr("a", 1).query_async(&mut c).await.unwrap();
    assert_eq!(r, Some((12,)));

    // Raw protocol: QUEUED, errors inside EXEC, EXECABORT, DISCARD, nesting.
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut talk = async |send: &str, want_end: &str| {
        raw.write_all(send.as_bytes()).await.unwrap();
        let mut acc = String::new();
        let mut buf = vec![0u8; 4096];
        while !acc.ends_with(want_end) {
            let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "{acc}");
            acc.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        acc
    };
    let out = talk("MULTI\r\nSET k v\r\nLPUSH k x\r\nGET k\r\nEXEC\r\n", "$1\r\nv\r\n").await;
    assert_eq!(
        out,
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\nv\r\n"
    );
    let out = talk("MULTI\r\nSET k\r\nINCR n\r\nEXEC\r\nGET n\r\n", "$-1\r\n").await;
    assert_eq!(
        out,
        "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n"
    );
    let out = talk("MULTI\r\nMULTI\r\nINCR n\r\nDISCARD\r\nEXEC\r\nDISCARD\r\n", "DISCARD without MULTI\r\n").await;
    assert_eq!(
        out,
        "+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n+OK\r\n-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
    );

    // Isolation: concurrent transactions moving units between two keys never expose a torn sum.
    let _: () = c.set("x", 500).await.unwrap();
    let _: () = c.set("y", 500).await.unwrap();
    let mut movers = Vec::new();
    for _ in 0..4 {
        let mut m = conn(&s).await;
        movers.push(tokio::spawn(async move {
            for _ in 0..200 {
                let _: (i64, i64) = redis::pipe().atomic().decr("x", 1).incr("y", 1).query_async(&mut m).await.unwrap();
            }
        }));
    }
    let mut reader = conn(&s).await;
    for _ in 0..200 {
        let (x, y): (i64, i64) = redis::pipe().atomic().get("x").get("y").query_async(&mut reader).await.unwrap();
        assert_eq!(x + y, 1000);
    }
    for m in movers {
        m.await.unwrap();
    }
    let (x, y): (i64, i64) = redis::pipe().get("x").get("y").query_async(&mut c).await.unwrap();
    assert_eq!((x, y), (-300, 1300));
    s.stop().await;
}
