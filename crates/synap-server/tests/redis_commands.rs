//! The commands added for Redis 7 compatibility, driven by the `redis` crate as an application would,
//! once in RESP2 and once in RESP3: strings and bitmaps, key copies, multi-key pops, sorted-set algebra,
//! lex ranges, and MULTI's queue-time errors. Their byte-level agreement with redis-server is
//! `differential.rs`'s job; this test checks the values a client library gets back.

mod common;

use std::time::Duration;

use common::{conn, err, q};
use redis::aio::ConnectionLike;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value as RV};

#[tokio::test]
async fn new_commands_through_a_client_library_in_both_protocols() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;

        // Strings: SETRANGE pads with zeros, GETRANGE/SUBSTR take negative indexes, LCS three ways.
        assert_eq!(q::<i64>(&mut c, "SETRANGE s 3 abc").await, 6);
        assert_eq!(c.get::<_, Vec<u8>>("s").await.unwrap(), b"\0\0\0abc");
        assert_eq!(q::<String>(&mut c, "GETRANGE s -3 -1").await, "abc");
        assert_eq!(q::<String>(&mut c, "SUBSTR s 4 100").await, "bc");
        let _: () = c.set("a", "ohmytext").await.unwrap();
        let _: () = c.set("b", "mynewtext").await.unwrap();
        assert_eq!(q::<String>(&mut c, "LCS a b").await, "mytext");
        assert_eq!(q::<i64>(&mut c, "LCS a b LEN").await, 6);
        // IDX: a map (RESP3) or flat pairs (RESP2) of matches and length, as Redis answers it.
        let idx: std::collections::HashMap<String, RV> = q(&mut c, "LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN").await;
        type Match = ((i64, i64), (i64, i64), i64);
        let matches: Vec<Match> = redis::from_redis_value(idx["matches"].clone()).unwrap();
        assert_eq!(matches, vec![((4, 7), (5, 8), 4)]);
        assert_eq!(redis::from_redis_value::<i64>(idx["len"].clone()).unwrap(), 6);
        assert!(err(&mut c, "LCS a b IDX LEN").await.contains("please just use IDX"));

        // INCRBYFLOAT in long double, as Redis: 0.1 + 0.2 is 0.3.
        let _: () = c.set("f", "0.1").await.unwrap();
        assert_eq!(q::<String>(&mut c, "INCRBYFLOAT f 0.2").await, "0.3");
        assert_eq!(q::<String>(&mut c, "HINCRBYFLOAT hf x 0.1").await, "0.1");
        assert_eq!(q::<String>(&mut c, "HINCRBYFLOAT hf x 0.2").await, "0.3");

        // Bitmaps.
        assert_eq!(q::<i64>(&mut c, "SETBIT bm 7 1").await, 0);
        assert_eq!(q::<i64>(&mut c, "SETBIT bm 7 1").await, 1);
        assert_eq!(q::<i64>(&mut c, "GETBIT bm 7").await, 1);
        assert_eq!(q::<i64>(&mut c, "GETBIT bm 100").await, 0);
        let _: () = c.set("bits", "foobar").await.unwrap();
        assert_eq!(q::<i64>(&mut c, "BITCOUNT bits").await, 26);
        assert_eq!(q::<i64>(&mut c, "BITCOUNT bits 1 1").await, 6);
        assert_eq!(q::<i64>(&mut c, "BITCOUNT bits 5 30 BIT").await, 17);
        assert_eq!(q::<i64>(&mut c, "BITPOS bits 1").await, 1);
        assert_eq!(q::<i64>(&mut c, "BITPOS bits 0 2 -1 BIT").await, 3);
        assert_eq!(q::<i64>(&mut c, "BITPOS nosuch 0").await, 0);
        assert_eq!(q::<i64>(&mut c, "BITOP AND dest bits bm").await, 6);
        assert_eq!(c.get::<_, Vec<u8>>("dest").await.unwrap(), vec![0x01 & b'f', 0, 0, 0, 0, 0]);
        assert_eq!(q::<i64>(&mut c, "BITOP NOT dest nosuch").await, 0);
        assert!(!c.exists::<_, bool>("dest").await.unwrap(), "an empty result deletes the target");

        // COPY and TOUCH.
        let _: i64 = c.rpush("list", &["x", "y"]).await.unwrap();
        let _: bool = c.expire("list", 1000).await.unwrap();
        assert_eq!(q::<i64>(&mut c, "COPY list list2").await, 1);
        assert_eq!(q::<i64>(&mut c, "COPY list list2").await, 0, "no REPLACE: the target stays");
        assert_eq!(c.lrange::<_, Vec<String>>("list2", 0, -1).await.unwrap(), vec!["x", "y"]);
        assert!(c.ttl::<_, i64>("list2").await.unwrap() > 990, "the expiry is copied");
        assert_eq!(q::<i64>(&mut c, "COPY a list2 REPLACE").await, 1);
        assert_eq!(c.get::<_, String>("list2").await.unwrap(), "ohmytext");
        assert!(err(&mut c, "COPY a a").await.contains("source and destination objects are the same"));
        assert_eq!(q::<i64>(&mut c, "TOUCH a b nosuch").await, 2);

        // LMPOP / BLMPOP: the key and its elements; nil when nothing is there.
        let _: i64 = c.rpush("l2", &["1", "2", "3"]).await.unwrap();
        let got: (String, Vec<String>) = q(&mut c, "LMPOP 2 l1 l2 RIGHT COUNT 2").await;
        assert_eq!(got, ("l2".to_string(), vec!["3".to_string(), "2".to_string()]));
        assert_eq!(q::<Option<(String, Vec<String>)>>(&mut c, "LMPOP 1 l1 LEFT").await, None);
        assert_eq!(q::<Option<(String, Vec<String>)>>(&mut c, "BLMPOP 0.05 1 l1 LEFT").await, None);

        // Sorted sets: ZMPOP pairs, algebra without a destination, ZINTERCARD, lex ranges, ZRANDMEMBER.
        let _: i64 = c.zadd_multiple("z1", &[(1, "a"), (2, "b"), (3, "c")]).await.unwrap();
        let _: i64 = c.zadd_multiple("z2", &[(10, "b"), (20, "c"), (30, "d")]).await.unwrap();
        let popped: (String, Vec<(String, f64)>) = q(&mut c, "ZMPOP 1 z1 MIN COUNT 1").await;
        assert_eq!(popped, ("z1".to_string(), vec![("a".to_string(), 1.0)]));
        let union: Vec<(String, f64)> = q(&mut c, "ZUNION 2 z1 z2 WEIGHTS 1 2 WITHSCORES").await;
        assert_eq!(union, vec![("b".into(), 22.0), ("c".into(), 43.0), ("d".into(), 60.0)]);
        let inter: Vec<String> = q(&mut c, "ZINTER 2 z1 z2 AGGREGATE MIN").await;
        assert_eq!(inter, vec!["b", "c"]);
        let diff: Vec<String> = q(&mut c, "ZDIFF 2 z2 z1").await;
        assert_eq!(diff, vec!["d"]);
        assert_eq!(q::<i64>(&mut c, "ZDIFFSTORE zd 2 z2 z1").await, 1);
        assert_eq!(q::<i64>(&mut c, "ZINTERCARD 2 z1 z2").await, 2);
        assert_eq!(q::<i64>(&mut c, "ZINTERCARD 2 z1 z2 LIMIT 1").await, 1);
        let _: i64 = c.zadd_multiple("lex", &[(0, "a"), (0, "b"), (0, "c"), (0, "d")]).await.unwrap();
        assert_eq!(q::<i64>(&mut c, "ZLEXCOUNT lex [b +").await, 3);
        assert_eq!(q::<Vec<String>>(&mut c, "ZREVRANGEBYLEX lex (d - LIMIT 0 2").await, vec!["c", "b"]);
        assert_eq!(q::<i64>(&mut c, "ZREMRANGEBYLEX lex - (b").await, 1);
        let picks: Vec<(String, f64)> = q(&mut c, "ZRANDMEMBER z2 -5 WITHSCORES").await;
        assert_eq!(picks.len(), 5, "a negative count may repeat");
        assert!(picks.iter().all(|(m, s)| [("b", 10.0), ("c", 20.0), ("d", 30.0)].contains(&(m.as_str(), *s))));
        assert_eq!(q::<Vec<String>>(&mut c, "ZRANDMEMBER z2 10").await.len(), 3);

        // MULTI: an unknown command aborts EXEC; a bad argument is EXEC's reply in its place.
        let _: () = q(&mut c, "MULTI").await;
        assert!(err(&mut c, "NOSUCH x").await.contains("unknown command"));
        let _: String = q(&mut c, "SET k v").await;
        assert!(err(&mut c, "EXEC").await.starts_with("EXECABORT"));
        let _: () = q(&mut c, "MULTI").await;
        let _: String = q(&mut c, "SET k v NX XX").await;
        let _: String = q(&mut c, "SET k v").await;
        // The reply holds an error, so it is read as a raw value.
        let mut exec = redis::Cmd::new();
        exec.arg("EXEC");
        let replies = c.req_packed_command(&exec).await.unwrap();
        let RV::Array(replies) = replies else { panic!("EXEC answered {replies:?}") };
        assert!(matches!(&replies[0], RV::ServerError(e) if e.details() == Some("syntax error")), "{replies:?}");
        assert_eq!(replies[1], RV::Okay);
    }
    s.stop().await;
}

/// A script that runs long: other clients wait, then (past the busy threshold) get BUSY; SCRIPT KILL
/// stops a script that has not written, and a script that has written cannot be killed (UNKILLABLE)
/// and runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_script_answers_busy_and_is_killed() {
    let s = common::start().await;
    let mut a = conn(&s, false).await;
    let mut b = conn(&s, true).await;
    let spin = "local x = 0 while true do x = x + 1 end";
    let runner = tokio::spawn(async move {
        let r: redis::RedisResult<RV> = redis::cmd("EVAL").arg(spin).arg(0).query_async(&mut a).await;
        let e = r.expect_err("the script is killed");
        format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let busy = err(&mut b, "GET k").await;
    assert!(busy.starts_with("BUSY"), "{busy}");
    assert!(started.elapsed() >= Duration::from_secs(4), "BUSY only past the threshold");
    let _: () = q(&mut b, "SCRIPT KILL").await;
    let killed = runner.await.unwrap();
    assert!(killed.contains("Script killed by user with SCRIPT KILL"), "{killed}");
    assert_eq!(q::<Option<String>>(&mut b, "GET k").await, None, "the server answers again");
    assert!(err(&mut b, "SCRIPT KILL").await.starts_with("NOTBUSY"));

    // A script that wrote runs to its end: SCRIPT KILL is refused.
    let mut a = conn(&s, false).await;
    let writer = "redis.call('set','w','1') local t0 = redis.call('time')[1] \
                  while redis.call('time')[1] - t0 < 6 do end return 'done'";
    let runner = tokio::spawn(async move {
        let mut c = redis::cmd("EVAL");
        c.arg(writer).arg(0);
        c.query_async::<String>(&mut a).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(err(&mut b, "GET k").await.starts_with("BUSY"));
    assert!(err(&mut b, "SCRIPT KILL").await.starts_with("UNKILLABLE"));
    assert_eq!(runner.await.unwrap().unwrap(), "done");
    assert_eq!(q::<String>(&mut b, "GET w").await, "1");
    s.stop().await;
}

/// CONFIG SET changes the settings it names at run time, all or none, with Redis's texts (checked
/// against redis-server 7.0.15): the memory limit and policy, keyspace notifications, the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_changes_settings_at_run_time() {
    let s = common::start().await;
    let mut c = conn(&s, false).await;
    let get = |v: Vec<String>| v.get(1).cloned().unwrap_or_default();
    assert_eq!(
        err(&mut c, "CONFIG SET nosuch 1").await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        err(&mut c, "CONFIG SET daemonize yes").await,
        "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"
    );
    assert_eq!(
        err(&mut c, "CONFIG SET maxmemory 1mb maxmemory abc").await,
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter"
    );
    // One refused pair: nothing applied.
    assert!(err(&mut c, "CONFIG SET maxmemory 1mb maxmemory-samples 0").await.contains("between 1 and"));
    assert_eq!(get(q(&mut c, "CONFIG GET maxmemory").await), "0");

    // The memory limit: refused writes under noeviction, evictions under allkeys-random.
    for i in 0..200 {
        let _: () = c.set(format!("k{i}"), "x".repeat(1000)).await.unwrap();
    }
    let _: () = q(&mut c, "CONFIG SET maxmemory 100kb maxmemory-policy noeviction").await;
    assert_eq!(get(q(&mut c, "CONFIG GET maxmemory").await), "102400");
    assert!(err(&mut c, "SET big value").await.starts_with("OOM"));
    let _: () = q(&mut c, "CONFIG SET maxmemory-policy allkeys-random").await;
    let _: () = c.set("big", "value").await.unwrap();
    assert!(q::<i64>(&mut c, "DBSIZE").await < 200, "keys were evicted");
    let _: () = q(&mut c, "CONFIG SET maxmemory 0 maxmemory-policy noeviction").await;

    // Keyspace notifications turned on at run time, in Redis's spelling.
    let _: () = q(&mut c, "CONFIG SET notify-keyspace-events KEA").await;
    assert_eq!(get(q(&mut c, "CONFIG GET notify-keyspace-events").await), "AKE");
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("__keyevent@0__:set").await.unwrap();
    let _: () = c.set("watched", "1").await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut pubsub.on_message()))
        .await
        .expect("an event within 5 s")
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "watched");

    // The idle timeout applies to connections already open.
    let _: () = q(&mut c, "CONFIG SET timeout 1").await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut idle, &mut buf))
        .await
        .expect("closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "an idle client is closed");
    s.stop().await;
}

/// A server on `dir` (a second start on the same directory recovers what the first logged).
async fn start_in(dir: &tempfile::TempDir) -> common::TestServer {
    let server = synap_server::RunningServer::start(common::test_config(dir)).await.expect("server starts");
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    common::TestServer { server: Some(server), base, http, _dir: tempfile::tempdir().unwrap() }
}

#[tokio::test]
async fn hyperloglogs_count_merge_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(&dir).await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        assert_eq!(q::<i64>(&mut c, "PFADD h a b c").await, 1);
        assert_eq!(q::<i64>(&mut c, "PFADD h a").await, 0);
        assert_eq!(q::<i64>(&mut c, "PFCOUNT h").await, 3);
        // Byte for byte what redis-server 7.0 holds after the same commands: the count cached by
        // PFCOUNT, then marked stale by a PFADD that changed a register.
        let mut expect = b"HYLL\x01\0\0\0\x03\0\0\0\0\0\0\0`\xf3\x80P\xb1\x84K\xfb\x80BZ".to_vec();
        assert_eq!(c.get::<_, Vec<u8>>("h").await.unwrap(), expect);
        assert_eq!(q::<i64>(&mut c, "PFADD h d").await, 1);
        expect.splice(15..19, *b"\x80\\{\x80Dv\x80");
        assert_eq!(c.get::<_, Vec<u8>>("h").await.unwrap(), expect);
        assert_eq!(q::<i64>(&mut c, "PFADD h2 c d").await, 1);
        assert_eq!(q::<i64>(&mut c, "PFCOUNT h h2").await, 4);
        let _: () = q(&mut c, "PFMERGE m h h2").await;
        assert_eq!(q::<i64>(&mut c, "PFCOUNT m").await, 4);
        assert_eq!(q::<String>(&mut c, "PFDEBUG ENCODING m").await, "sparse");
        // Enough elements make the value dense; the estimate stays within HLL's error.
        let mut add = redis::cmd("PFADD");
        add.arg("big");
        for i in 0..20_000 {
            add.arg(format!("element:{i}"));
        }
        let _: i64 = add.query_async(&mut c).await.unwrap();
        assert_eq!(q::<String>(&mut c, "PFDEBUG ENCODING big").await, "dense");
        let n: i64 = q(&mut c, "PFCOUNT big").await;
        assert!((19_600..=20_400).contains(&n), "PFCOUNT big = {n}");
        let value: Vec<u8> = c.get("big").await.unwrap();
        assert_eq!((&value[..4], value.len()), (&b"HYLL"[..], 12304));
        let _: () = c.set("plain", "text").await.unwrap();
        assert_eq!(err(&mut c, "PFADD plain a").await, "WRONGTYPE Key is not a valid HyperLogLog string value.");
        assert_eq!(err(&mut c, "PFCOUNT h plain").await, "WRONGTYPE Key is not a valid HyperLogLog string value.");
    }
    let mut c = conn(&s, false).await;
    let before: Vec<u8> = c.get("big").await.unwrap();
    let merged: Vec<u8> = c.get("m").await.unwrap();
    s.stop().await;
    let s = start_in(&dir).await;
    let mut c = conn(&s, true).await;
    assert_eq!(c.get::<_, Vec<u8>>("big").await.unwrap(), before);
    assert_eq!(c.get::<_, Vec<u8>>("m").await.unwrap(), merged);
    assert_eq!(q::<i64>(&mut c, "PFCOUNT m").await, 4);
    s.stop().await;
}

#[tokio::test]
async fn sort_by_other_keys_gets_and_stores() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        let _: () = q(&mut c, "RPUSH l 3 1 2 10").await;
        assert_eq!(q::<Vec<String>>(&mut c, "SORT l").await, ["1", "2", "3", "10"]);
        assert_eq!(q::<Vec<String>>(&mut c, "SORT l ALPHA DESC").await, ["3", "2", "10", "1"]);
        assert_eq!(q::<Vec<String>>(&mut c, "SORT_RO l LIMIT 1 2").await, ["2", "3"]);
        // BY weights in other keys and hash fields; GET the element and other keys.
        let _: () = q(&mut c, "MSET w_1 30 w_2 20 w_3 10").await;
        let _: () = q(&mut c, "HSET o_1 name one").await;
        let _: () = q(&mut c, "HSET o_3 name three").await;
        assert_eq!(q::<Vec<String>>(&mut c, "SORT l BY w_*").await, ["10", "3", "2", "1"]);
        let got: Vec<Option<String>> = q(&mut c, "SORT l BY w_* GET # GET o_*->name").await;
        let s = |x: &str| Some(x.to_string());
        assert_eq!(got, [s("10"), None, s("3"), s("three"), s("2"), None, s("1"), s("one")]);
        // BY without `*` keeps the list's order.
        assert_eq!(q::<Vec<String>>(&mut c, "SORT l BY nosort DESC").await, ["10", "2", "1", "3"]);
        assert_eq!(q::<i64>(&mut c, "SORT l BY w_* GET o_*->name STORE dst").await, 4);
        assert_eq!(q::<Vec<String>>(&mut c, "LRANGE dst 0 -1").await, ["", "three", "", "one"]);
        let _: () = q(&mut c, "SADD letters b a").await;
        assert_eq!(err(&mut c, "SORT letters").await, "ERR One or more scores can't be converted into double");
        assert_eq!(err(&mut c, "SORT_RO l STORE x").await, "ERR syntax error");
        let _: () = c.set("str", "x").await.unwrap();
        assert!(err(&mut c, "SORT str").await.starts_with("WRONGTYPE"));
    }
    s.stop().await;
}

#[tokio::test]
async fn bitfield_integers_with_each_overflow_rule() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        // Redis's documented examples: two u8 counters, then overflow of a u2 three ways.
        assert_eq!(q::<Vec<i64>>(&mut c, "BITFIELD k INCRBY u8 #0 10 INCRBY u8 #1 20 GET u16 0").await, [10, 20, 2580]);
        assert_eq!(c.get::<_, Vec<u8>>("k").await.unwrap(), [10, 20]);
        assert_eq!(q::<Vec<i64>>(&mut c, "BITFIELD w SET u2 100 3 INCRBY u2 100 1").await, [0, 0]);
        assert_eq!(q::<Vec<i64>>(&mut c, "BITFIELD w OVERFLOW SAT INCRBY u2 100 5").await, [3]);
        let failed: Vec<Option<i64>> = q(&mut c, "BITFIELD w OVERFLOW FAIL INCRBY u2 100 1 GET u2 100").await;
        assert_eq!(failed, [None, Some(3)]);
        assert_eq!(q::<Vec<i64>>(&mut c, "BITFIELD s SET i8 0 -100 INCRBY i8 0 -100").await, [0, 56]);
        assert_eq!(q::<Vec<i64>>(&mut c, "BITFIELD_RO s GET i8 0 GET u4 0").await, [56, 3]);
        assert_eq!(err(&mut c, "BITFIELD_RO s SET i8 0 1").await, "ERR BITFIELD_RO only supports the GET subcommand");
        assert!(err(&mut c, "BITFIELD s GET u64 0").await.starts_with("ERR Invalid bitfield type"));
    }
    s.stop().await;
}

#[tokio::test]
async fn geo_points_positions_distances_and_searches() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        // Redis's documented example, with the figures redis-server 7.0 answers.
        assert_eq!(q::<i64>(&mut c, "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania").await, 2);
        assert_eq!(q::<String>(&mut c, "GEODIST Sicily Palermo Catania km").await, "166.2742");
        let pos: Vec<Option<(f64, f64)>> = q(&mut c, "GEOPOS Sicily Palermo nowhere").await;
        assert_eq!(pos, [Some((13.361389338970184, 38.1155563954963)), None]);
        assert_eq!(q::<Vec<String>>(&mut c, "GEOHASH Sicily Palermo Catania").await, ["sqc8b49rny0", "sqdtr74hyu0"]);
        let near: Vec<(String, String)> = q(&mut c, "GEORADIUS Sicily 15 37 200 km WITHDIST ASC").await;
        assert_eq!(
            near,
            [("Catania".to_string(), "56.4413".to_string()), ("Palermo".to_string(), "190.4424".to_string())]
        );
        let boxed: Vec<String> = q(&mut c, "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC").await;
        assert_eq!(boxed, ["Catania", "Palermo"]);
        assert_eq!(
            q::<i64>(&mut c, "GEOSEARCHSTORE near Sicily FROMMEMBER Palermo BYRADIUS 100 km STOREDIST").await,
            1
        );
        assert_eq!(q::<Vec<String>>(&mut c, "ZRANGE near 0 -1").await, ["Palermo"]);
        assert_eq!(
            err(&mut c, "GEOADD Sicily 200 100 x").await,
            "ERR invalid longitude,latitude pair 200.000000,100.000000"
        );
        assert_eq!(
            err(&mut c, "GEOSEARCH Sicily FROMMEMBER nowhere BYRADIUS 1 km").await,
            "ERR could not decode requested zset member"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn function_libraries_are_durable_through_the_log_and_snapshots() {
    let lib = "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";
    let other = "#!lua name=gone\nredis.register_function('gone', function() return 1 end)";
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(&dir).await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FUNCTION FLUSH").await;
        let loaded: String = redis::cmd("FUNCTION").arg("LOAD").arg(lib).query_async(&mut c).await.unwrap();
        assert_eq!(loaded, "counters");
        let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(other).query_async(&mut c).await.unwrap();
        let _: () = q(&mut c, "DEL n").await;
        assert_eq!(q::<i64>(&mut c, "FCALL bump 1 n 5").await, 5);
        assert_eq!(q::<String>(&mut c, "FCALL_RO peek 1 n").await, "5");
        assert!(err(&mut c, "FCALL_RO bump 1 n 1").await.contains("Can not execute a script with write flag"));
        assert_eq!(err(&mut c, "FCALL nosuch 0").await, "ERR Function not found");
        let list: Vec<std::collections::HashMap<String, RV>> = q(&mut c, "FUNCTION LIST LIBRARYNAME counters").await;
        assert_eq!(list.len(), 1);
        assert_eq!(redis::from_redis_value::<String>(list[0]["library_name"].clone()).unwrap(), "counters");
        let _: () = q(&mut c, "FUNCTION DELETE gone").await;
        assert_eq!(err(&mut c, "FCALL gone 0").await, "ERR Function not found");
    }
    // Recovered from the log: the library is there, the deleted one is not.
    s.stop().await;
    let s = start_in(&dir).await;
    let mut c = conn(&s, false).await;
    assert_eq!(q::<i64>(&mut c, "FCALL bump 1 n 1").await, 6);
    assert_eq!(err(&mut c, "FCALL gone 0").await, "ERR Function not found");
    // And from a snapshot (the log before it is gone), with a DUMP/RESTORE round trip on the way.
    let dump: Vec<u8> = q(&mut c, "FUNCTION DUMP").await;
    let _: () = q(&mut c, "FUNCTION FLUSH").await;
    assert_eq!(err(&mut c, "FCALL bump 1 n 1").await, "ERR Function not found");
    let _: () = redis::cmd("FUNCTION").arg("RESTORE").arg(&dump).query_async(&mut c).await.unwrap();
    assert!(redis::cmd("FUNCTION").arg("RESTORE").arg(&dump).query_async::<()>(&mut c).await.is_err());
    let (status, _) = s.post("/snapshot", serde_json::json!({})).await;
    assert_eq!(status, 200);
    s.stop().await;
    let s = start_in(&dir).await;
    let mut c = conn(&s, true).await;
    assert_eq!(q::<i64>(&mut c, "FCALL bump 1 n 1").await, 7);
    let stats: std::collections::HashMap<String, RV> = q(&mut c, "FUNCTION STATS").await;
    let engines: std::collections::HashMap<String, std::collections::HashMap<String, i64>> =
        redis::from_redis_value(stats["engines"].clone()).unwrap();
    assert_eq!(engines["LUA"]["libraries_count"], 1);
    assert_eq!(engines["LUA"]["functions_count"], 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_commands_save_debug_memory_client_and_command_keys() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        let _: () = q(&mut c, "RPUSH l a b").await;
        // SAVE writes a snapshot now; LASTSAVE moves to its time; BGSAVE starts one in the background.
        let before: i64 = q(&mut c, "LASTSAVE").await;
        let _: () = q(&mut c, "SAVE").await;
        let after: i64 = q(&mut c, "LASTSAVE").await;
        assert!(after >= before && after > 1_700_000_000, "{before} {after}");
        let started: String = q(&mut c, "BGSAVE").await;
        assert!(started == "Background saving started", "{started}");
        for _ in 0..100 {
            if !err_or_ok(&mut c, "SAVE").await.contains("in progress") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(q::<i64>(&mut c, "WAIT 0 0").await, 0);
        // DEBUG from a loopback client (the default `local`), MEMORY.
        let d1: String = q(&mut c, "DEBUG DIGEST").await;
        let _: () = q(&mut c, "RPUSH l c").await;
        let d2: String = q(&mut c, "DEBUG DIGEST").await;
        assert_eq!(d1.len(), 40);
        assert_ne!(d1, d2, "the digest follows the data");
        let values: Vec<String> = q(&mut c, "DEBUG DIGEST-VALUE l nosuch").await;
        assert_eq!(values[1], "0".repeat(40));
        assert!(q::<String>(&mut c, "DEBUG OBJECT l").await.contains("encoding:listpack"));
        assert_eq!(err(&mut c, "DEBUG OBJECT nosuch").await, "ERR no such key");
        let usage: i64 = q(&mut c, "MEMORY USAGE l").await;
        assert!(usage > 0);
        assert_eq!(q::<Option<i64>>(&mut c, "MEMORY USAGE nosuch").await, None);
        // COMMAND GETKEYS, from the table's positions and from the arguments.
        assert_eq!(q::<Vec<String>>(&mut c, "COMMAND GETKEYS MSET a 1 b 2").await, ["a", "b"]);
        assert_eq!(q::<Vec<String>>(&mut c, "COMMAND GETKEYS EVAL x 2 k1 k2 arg").await, ["k1", "k2"]);
        assert_eq!(q::<Vec<String>>(&mut c, "COMMAND GETKEYS SORT l BY w_* STORE dst").await, ["l", "dst"]);
        assert_eq!(err(&mut c, "COMMAND GETKEYS PING").await, "ERR The command has no key arguments");
        let hll: Vec<String> = q(&mut c, "COMMAND LIST FILTERBY ACLCAT hyperloglog").await;
        assert!(hll.contains(&"pfadd".to_string()) && !hll.contains(&"get".to_string()));
    }
    // CLIENT KILL closes another connection; CLIENT REPLY SKIP/OFF/ON as Redis.
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut victim = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    victim.write_all(b"CLIENT ID\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = victim.read(&mut buf).await.unwrap();
    let id: u64 = std::str::from_utf8(&buf[1..n - 2]).unwrap().parse().unwrap();
    let mut c = conn(&s, false).await;
    assert_eq!(q::<i64>(&mut c, &format!("CLIENT KILL ID {id}")).await, 1);
    let n = tokio::time::timeout(Duration::from_secs(5), victim.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the killed client is closed");
    assert_eq!(err(&mut c, "CLIENT KILL 1.2.3.4:5").await, "ERR No such client");
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"CLIENT REPLY SKIP\r\nPING\r\nECHO a\r\nCLIENT REPLY OFF\r\nPING\r\nCLIENT REPLY ON\r\nECHO b\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 19 {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"$1\r\na\r\n+OK\r\n$1\r\nb\r\n");
    s.stop().await;
}

async fn err_or_ok(c: &mut MultiplexedConnection, line: &str) -> String {
    let mut command = redis::Cmd::new();
    for a in line.split(' ') {
        command.arg(a);
    }
    match command.query_async::<RV>(c).await {
        Ok(_) => "OK".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn dump_and_restore_every_type() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        let _: () = q(&mut c, "SET s hello").await;
        let _: () = q(&mut c, "HSET h f v g w").await;
        let _: () = q(&mut c, "RPUSH l a b c").await;
        let _: () = q(&mut c, "SADD set x y").await;
        let _: () = q(&mut c, "ZADD z 1 a 2.5 b").await;
        let _: () = q(&mut c, "PEXPIRE l 100000").await;
        for key in ["s", "h", "l", "set", "z"] {
            let payload: Vec<u8> = q(&mut c, &format!("DUMP {key}")).await;
            let copy = format!("{key}:copy");
            let _: () = redis::cmd("RESTORE").arg(&copy).arg(0).arg(&payload).query_async(&mut c).await.unwrap();
            let a: Vec<u8> = q(&mut c, &format!("DUMP {key}")).await;
            let b: Vec<u8> = q(&mut c, &format!("DUMP {copy}")).await;
            assert_eq!(a, b, "{key} round trips");
            let busy = redis::cmd("RESTORE").arg(&copy).arg(0).arg(&payload).query_async::<()>(&mut c).await;
            assert_eq!(busy.unwrap_err().code(), Some("BUSYKEY"));
            let _: () = redis::cmd("RESTORE")
                .arg(&copy)
                .arg(5000)
                .arg(&payload)
                .arg("REPLACE")
                .query_async(&mut c)
                .await
                .unwrap();
            let ttl: i64 = q(&mut c, &format!("PTTL {copy}")).await;
            assert!((1..=5000).contains(&ttl), "{ttl}");
        }
        assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l:copy 0 -1").await, ["a", "b", "c"]);
        assert_eq!(q::<Option<Vec<u8>>>(&mut c, "DUMP nosuch").await, None);
        let mut bad: Vec<u8> = q(&mut c, "DUMP s").await;
        bad[1] ^= 1;
        let e = redis::cmd("RESTORE").arg("x").arg(0).arg(&bad).query_async::<()>(&mut c).await.unwrap_err();
        assert_eq!(e.detail(), Some("DUMP payload version or checksum are wrong"));
        let good: Vec<u8> = q(&mut c, "DUMP s").await;
        let e = redis::cmd("RESTORE").arg("x").arg(-1).arg(&good).query_async::<()>(&mut c).await.unwrap_err();
        assert_eq!(e.detail(), Some("Invalid TTL value, must be >= 0"));
        // An absolute TTL in the past creates nothing.
        let _: () = redis::cmd("RESTORE").arg("x").arg(1).arg(&good).arg("ABSTTL").query_async(&mut c).await.unwrap();
        assert_eq!(q::<i64>(&mut c, "EXISTS x").await, 0);
    }
    s.stop().await;
}

#[tokio::test]
async fn monitor_sees_other_clients_commands() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::start().await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut mon = tokio::net::TcpStream::connect(addr).await.unwrap();
    mon.write_all(b"MONITOR\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = mon.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"+OK\r\n");
    let mut c = conn(&s, false).await;
    let _: () = q(&mut c, "SET k a\"b").await;
    let _: () = q(&mut c, "CONFIG SET maxmemory 0").await;
    // Neither an unknown command nor one with a wrong argument count is shown; a transaction's commands
    // are shown when EXEC runs them, before EXEC.
    let _ = err(&mut c, "NOSUCH x").await;
    let _ = err(&mut c, "GET").await;
    let _: RV = q(&mut c, "MULTI").await;
    let _: RV = q(&mut c, "INCR n").await;
    let _: RV = q(&mut c, "EXEC").await;
    let _: RV = q(&mut c, "MULTI").await;
    let _: RV = q(&mut c, "INCR never").await;
    let _: RV = q(&mut c, "DISCARD").await;
    let script = "redis.call('select', 3) return redis.call('get', 'k')";
    let _: Option<String> = redis::cmd("EVAL").arg(script).arg(0).query_async(&mut c).await.unwrap();
    let _: Option<String> = q(&mut c, "GET k").await;
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"GET\" \"k\"") {
        let n = tokio::time::timeout(Duration::from_secs(5), mon.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the monitor stays open");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    // The client library's own CLIENT SETINFO lines come first.
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("SETINFO")).collect();
    assert!(lines[0].starts_with('+') && lines[0].ends_with(r#"] "SET" "k" "a\"b""#), "{text}");
    // CONFIG (an admin command) is not shown.
    let rest: Vec<&str> = lines[1..].iter().map(|l| l.split_once("] ").unwrap().1).collect();
    let eval = format!(r#""EVAL" "{script}" "0""#);
    let want = [
        r#""MULTI""#,
        r#""INCR" "n""#,
        r#""EXEC""#,
        r#""MULTI""#,
        r#""DISCARD""#,
        &eval,
        r#""select" "3""#,
        r#""get" "k""#,
        r#""GET" "k""#,
    ];
    assert_eq!(rest, want, "{text}");
    // A script's calls are shown as `lua`, with the database each left the script in.
    assert!(lines.iter().any(|l| l.ends_with(r#"[3 lua] "get" "k""#)), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_holds_writes_or_everything_until_it_ends() {
    let s = common::start().await;
    let mut admin = conn(&s, false).await;
    let mut c = conn(&s, true).await;
    // WRITE: reads go on, writes wait for the pause to end.
    let t = std::time::Instant::now();
    let _: () = q(&mut admin, "CLIENT PAUSE 2000 WRITE").await;
    let _: Option<String> = q(&mut c, "GET k").await;
    assert!(t.elapsed() < Duration::from_millis(1500), "a read does not wait");
    let _: () = q(&mut c, "SET k v").await;
    assert!(t.elapsed() >= Duration::from_millis(1900), "a write waits: {:?}", t.elapsed());
    // ALL: everything waits, until CLIENT UNPAUSE.
    let _: () = q(&mut admin, "CLIENT PAUSE 100000 ALL").await;
    let t = std::time::Instant::now();
    let waiting = tokio::spawn(async move {
        let v: String = q(&mut c, "GET k").await;
        v
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "a read waits under ALL");
    let _: () = q(&mut admin, "CLIENT UNPAUSE").await;
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap(), "v");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(err(&mut admin, "CLIENT PAUSE -1").await, "ERR timeout is negative");
    // A pipeline meeting a pause: the replies before the held write come at once, the write's after.
    use tokio::io::AsyncWriteExt;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _: () = q(&mut admin, "CLIENT PAUSE 100000 WRITE").await;
    raw.write_all(b"GET k\r\nSET k w\r\nGET k\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut raw, 7).await, b"$1\r\nv\r\n", "the read before the write is answered");
    let _: () = q(&mut admin, "CLIENT UNPAUSE").await;
    assert_eq!(read_exact_within(&mut raw, 12).await, b"+OK\r\n$1\r\nw\r\n");
    s.stop().await;
}

/// FUNCTION RESTORE changes nothing unless every library of the payload loads.
#[tokio::test]
async fn function_restore_is_all_or_nothing() {
    let s = common::start().await;
    let mut c = conn(&s, false).await;
    let _: () = q(&mut c, "FUNCTION FLUSH").await;
    let keep = "#!lua name=keep\nredis.register_function('kept', function() return 1 end)";
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(keep).query_async(&mut c).await.unwrap();
    let payload = |codes: &[&str]| {
        let mut p = b"SYNAPFN1".to_vec();
        p.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        for code in codes {
            p.extend_from_slice(&(code.len() as u32).to_le_bytes());
            p.extend_from_slice(code.as_bytes());
        }
        p
    };
    let good = "#!lua name=good\nredis.register_function('g', function() return 2 end)";
    let broken = "#!lua name=broken\nredis.register_function('b', function() return 3 end) +";
    for policy in ["FLUSH", "REPLACE", "APPEND"] {
        let r = redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(payload(&[good, broken]))
            .arg(policy)
            .query_async::<()>(&mut c)
            .await;
        assert!(r.is_err(), "{policy}: a library that does not compile fails the restore");
        assert_eq!(q::<i64>(&mut c, "FCALL kept 0").await, 1, "{policy}: nothing was flushed");
        assert_eq!(err(&mut c, "FCALL g 0").await, "ERR Function not found", "{policy}: nothing was loaded");
    }
    // Two libraries of one name in a payload, or a function a staying library has: refused.
    assert!(redis::cmd("FUNCTION").arg("RESTORE").arg(payload(&[good, good])).query_async::<()>(&mut c).await.is_err());
    let clash = "#!lua name=clash\nredis.register_function('kept', function() return 9 end)";
    assert!(redis::cmd("FUNCTION").arg("RESTORE").arg(payload(&[clash])).query_async::<()>(&mut c).await.is_err());
    let _: () =
        redis::cmd("FUNCTION").arg("RESTORE").arg(payload(&[clash])).arg("FLUSH").query_async(&mut c).await.unwrap();
    assert_eq!(q::<i64>(&mut c, "FCALL kept 0").await, 9);
    s.stop().await;
}

/// Reads until `want` bytes came (or 5 s passed).
async fn read_exact_within(s: &mut tokio::net::TcpStream, want: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

fn resp_array(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

#[tokio::test]
async fn client_tracking_pushes_invalidations_in_resp3() {
    use tokio::io::AsyncWriteExt;
    let s = common::start().await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
    // RESP2 without REDIRECT: accepted (as Redis does), with no invalidations to send.
    t.write_all(b"CLIENT TRACKING ON\r\nCLIENT TRACKING ON REDIRECT 99999\r\nCLIENT TRACKING OFF\r\n").await.unwrap();
    let replies = b"+OK\r\n-ERR The client ID you want redirect to does not exist\r\n+OK\r\n";
    assert_eq!(read_exact_within(&mut t, replies.len()).await, replies);
    t.write_all(b"HELLO 3\r\n").await.unwrap();
    let hello = read_exact_within(&mut t, 1).await;
    assert!(hello.starts_with(b"%"));
    t.write_all(b"CLIENT TRACKING ON\r\nGET k1\r\nGET k2\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut t, 11).await, b"+OK\r\n_\r\n_\r\n");
    let mut c = conn(&s, false).await;
    let _: () = q(&mut c, "SET k1 x").await;
    let _: () = q(&mut c, "SET other y").await;
    let push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk1\r\n";
    assert_eq!(read_exact_within(&mut t, push.len()).await, push, "a read key's change is pushed, once");
    let _: () = q(&mut c, "SET k1 z").await;
    let _: () = q(&mut c, "FLUSHALL").await;
    // k1 was not read again: only the flush (a null) comes.
    let flush = b">2\r\n$10\r\ninvalidate\r\n_\r\n";
    assert_eq!(read_exact_within(&mut t, flush.len()).await, flush);
    // Reads inside MULTI and inside a script are tracked too.
    let script = resp_array(&["EVAL", "return redis.call('get', KEYS[1])", "1", "e1"]);
    t.write_all(b"MULTI\r\nGET m1\r\nEXEC\r\n").await.unwrap();
    t.write_all(&script).await.unwrap();
    let replies = b"+OK\r\n+QUEUED\r\n*1\r\n_\r\n_\r\n";
    assert_eq!(read_exact_within(&mut t, replies.len()).await, replies);
    let _: () = q(&mut c, "SET m1 1").await;
    let _: () = q(&mut c, "SET e1 1").await;
    let pushes = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nm1\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\ne1\r\n";
    assert_eq!(read_exact_within(&mut t, pushes.len()).await, pushes);
    // A key changed between its queued read and EXEC is tracked again by EXEC's read.
    t.write_all(b"MULTI\r\nGET r1\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut t, 14).await, b"+OK\r\n+QUEUED\r\n");
    let _: () = q(&mut c, "SET r1 1").await;
    let push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nr1\r\n";
    assert_eq!(read_exact_within(&mut t, push.len()).await, push);
    t.write_all(b"EXEC\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut t, 11).await, b"*1\r\n$1\r\n1\r\n");
    let _: () = q(&mut c, "SET r1 2").await;
    assert_eq!(read_exact_within(&mut t, push.len()).await, push, "EXEC's read is tracked");
    // BCAST with a prefix and NOLOOP: others' changes under the prefix, not this client's own (in EXEC
    // too).
    t.write_all(b"CLIENT TRACKING OFF\r\nCLIENT TRACKING ON BCAST PREFIX p: NOLOOP\r\nSET p:mine 1\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut t, 15).await, b"+OK\r\n+OK\r\n+OK\r\n");
    t.write_all(b"MULTI\r\nSET p:mine2 1\r\nEXEC\r\n").await.unwrap();
    let replies = b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n";
    assert_eq!(read_exact_within(&mut t, replies.len()).await, replies);
    let _: () = q(&mut c, "SET p:theirs 1").await;
    let _: () = q(&mut c, "SET q:theirs 1").await;
    let push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$8\r\np:theirs\r\n";
    assert_eq!(read_exact_within(&mut t, push.len()).await, push);
    // Back on RESP2 the client cannot take pushes: none comes (Redis drops them too).
    t.write_all(b"HELLO 2\r\n").await.unwrap();
    let hello = read_exact_within(&mut t, 1).await;
    assert!(hello.starts_with(b"*"), "{}", String::from_utf8_lossy(&hello));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = q(&mut c, "SET p:later 1").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.write_all(b"PING\r\n").await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"+PONG\r\n") {
        let more = read_exact_within(&mut t, 1).await;
        assert!(!more.is_empty(), "PING answered");
        got.extend(more);
    }
    assert!(!got.windows(10).any(|w| w == b"invalidate"), "{}", String::from_utf8_lossy(&got));
    s.stop().await;
}

/// The `INFO keyspace` lines (`db1:keys=2,expires=0,avg_ttl=0`), by database, with `avg_ttl` (a sampled
/// estimate) as `avg_ttl=0` when no key expires and `avg_ttl=set` otherwise.
async fn keyspace_info(c: &mut MultiplexedConnection) -> std::collections::BTreeMap<String, String> {
    let info: String = q(c, "INFO keyspace").await;
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(db, _)| db.starts_with("db"))
        .map(|(db, v)| {
            let (head, ttl) = v.trim_end().split_once(",avg_ttl=").expect("an avg_ttl field");
            let ttl = if ttl == "0" { "0" } else { "set" };
            (db.to_string(), format!("{head},avg_ttl={ttl}"))
        })
        .collect()
}

/// A server on `dir` that takes no snapshot when it stops: a restart replays the log.
async fn start_without_shutdown_snapshot(dir: &tempfile::TempDir) -> common::TestServer {
    let mut config = common::test_config(dir);
    config.persistence.snapshot.on_shutdown = false;
    let server = synap_server::RunningServer::start(config).await.expect("server starts");
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    common::TestServer { server: Some(server), base, http, _dir: tempfile::tempdir().unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_select_move_swap_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_without_shutdown_snapshot(&dir).await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        let _: () = q(&mut c, "SET k0 zero").await;
        let _: () = q(&mut c, "SELECT 1").await;
        assert_eq!(c.get::<_, Option<String>>("k0").await.unwrap(), None);
        let _: () = q(&mut c, "SET a 1 EX 100").await;
        assert_eq!(q::<i64>(&mut c, "RPUSH l x y").await, 2);
        assert_eq!(q::<i64>(&mut c, "DBSIZE").await, 2);
        assert_eq!(q::<i64>(&mut c, "MOVE a 0").await, 1);
        assert_eq!(q::<i64>(&mut c, "MOVE a 0").await, 0);
        assert_eq!(err(&mut c, "MOVE l 1").await, "ERR source and destination objects are the same");
        assert_eq!(err(&mut c, "MOVE l 16").await, "ERR DB index is out of range");
        assert_eq!(err(&mut c, "SELECT 16").await, "ERR DB index is out of range");
        assert_eq!(err(&mut c, "SELECT x").await, "ERR value is not an integer or out of range");
        assert_eq!(err(&mut c, "SWAPDB x 1").await, "ERR invalid first DB index");
        assert_eq!(err(&mut c, "SWAPDB 1 -1").await, "ERR DB index is out of range");
        // Streams live in database 0.
        assert!(err(&mut c, "XADD s * f v").await.contains("database 0"));
        let _: () = q(&mut c, "SELECT 0").await;
        assert_eq!(c.get::<_, String>("a").await.unwrap(), "1");
        let ttl: i64 = q(&mut c, "TTL a").await;
        assert!((1..=100).contains(&ttl), "the expiry moved with the key: {ttl}");
        assert_eq!(q::<i64>(&mut c, "COPY a a DB 2").await, 1);
        assert_eq!(q::<i64>(&mut c, "COPY a a DB 2").await, 0);
        assert_eq!(err(&mut c, "COPY a a DB 0").await, "ERR source and destination objects are the same");
        // SWAPDB: database 1 (the list) and 2 (the copy) trade places.
        let _: () = q(&mut c, "SWAPDB 1 2").await;
        let _: () = q(&mut c, "SELECT 1").await;
        assert_eq!(c.get::<_, String>("a").await.unwrap(), "1");
        assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l 0 -1").await, Vec::<String>::new());
        let _: () = q(&mut c, "SELECT 2").await;
        assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l 0 -1").await, ["x", "y"]);
        // A SELECT inside MULTI lasts after EXEC; one inside a script ends with it.
        let _: RV = q(&mut c, "MULTI").await;
        let _: RV = q(&mut c, "SELECT 3").await;
        let _: RV = q(&mut c, "SET t 1").await;
        let _: RV = q(&mut c, "EXEC").await;
        assert_eq!(c.get::<_, String>("t").await.unwrap(), "1");
        let script = "redis.call('select', 4) redis.call('set', KEYS[1], 'four') return redis.call('dbsize')";
        let n: i64 = redis::cmd("EVAL").arg(script).arg(1).arg("in4").query_async(&mut c).await.unwrap();
        assert_eq!(n, 1);
        assert_eq!(c.get::<_, Option<String>>("in4").await.unwrap(), None, "still in database 3");
        assert_eq!(
            keyspace_info(&mut c).await,
            [
                ("db0", "keys=2,expires=1,avg_ttl=set"),
                ("db1", "keys=1,expires=1,avg_ttl=set"),
                ("db2", "keys=1,expires=0,avg_ttl=0"),
                ("db3", "keys=1,expires=0,avg_ttl=0"),
                ("db4", "keys=1,expires=0,avg_ttl=0"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
        );
        let _: () = q(&mut c, "FLUSHDB").await;
        assert_eq!(q::<i64>(&mut c, "DBSIZE").await, 0);
        assert_eq!(keyspace_info(&mut c).await.len(), 4, "FLUSHDB empties database 3 only");
        let _: () = q(&mut c, "SELECT 0").await;
    }

    // WATCH and blocking pops are per database.
    let mut watcher = conn(&s, false).await;
    let mut other = conn(&s, false).await;
    let _: () = q(&mut watcher, "SELECT 5").await;
    let _: () = q(&mut watcher, "WATCH w").await;
    let _: () = q(&mut other, "SET w same-name-other-database").await;
    let _: RV = q(&mut watcher, "MULTI").await;
    let _: RV = q(&mut watcher, "SET x 1").await;
    assert_eq!(q::<RV>(&mut watcher, "EXEC").await, RV::Array(vec![RV::Okay]));
    let _: () = q(&mut watcher, "WATCH w").await;
    let _: () = q(&mut other, "SELECT 5").await;
    let _: () = q(&mut other, "SET w changed").await;
    let _: RV = q(&mut watcher, "MULTI").await;
    let _: RV = q(&mut watcher, "SET x 2").await;
    assert_eq!(q::<RV>(&mut watcher, "EXEC").await, RV::Nil);
    // A flush changes the watched keys that existed, as in Redis: a watched missing key survives it, and
    // a flush of another database touches nothing here.
    let _: () = q(&mut watcher, "WATCH absent").await;
    let _: () = q(&mut watcher, "FLUSHDB").await;
    let _: RV = q(&mut watcher, "MULTI").await;
    let _: RV = q(&mut watcher, "SET x 3").await;
    assert_eq!(q::<RV>(&mut watcher, "EXEC").await, RV::Array(vec![RV::Okay]));
    let _: () = q(&mut watcher, "WATCH x").await;
    let _: () = q(&mut other, "SELECT 0").await;
    let _: () = q(&mut other, "FLUSHDB").await;
    let _: RV = q(&mut watcher, "MULTI").await;
    let _: RV = q(&mut watcher, "SET y 1").await;
    assert_eq!(q::<RV>(&mut watcher, "EXEC").await, RV::Array(vec![RV::Okay]));
    let _: () = q(&mut watcher, "WATCH x").await;
    let _: () = q(&mut other, "SELECT 5").await;
    let _: () = q(&mut other, "FLUSHDB").await;
    let _: () = q(&mut other, "SELECT 0").await;
    let _: RV = q(&mut watcher, "MULTI").await;
    let _: RV = q(&mut watcher, "SET y 2").await;
    assert_eq!(q::<RV>(&mut watcher, "EXEC").await, RV::Nil);
    let waiting = tokio::spawn(async move {
        let r: Option<(String, String)> = q(&mut watcher, "BLPOP jobs 20").await;
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q::<i64>(&mut other, "RPUSH jobs in-db-0").await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "a push to database 0 does not serve a client blocked in 5");
    let _: () = q(&mut other, "SELECT 5").await;
    assert_eq!(q::<i64>(&mut other, "RPUSH jobs in-db-5").await, 1);
    // Served when the push wakes it, long before its timeout.
    let served = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken by the push").unwrap();
    assert_eq!(served, Some(("jobs".to_string(), "in-db-5".to_string())));

    // Everything is there after a restart from the log, and after one from a snapshot followed by a
    // SWAPDB and a MOVE in the log.
    let mut c = conn(&s, false).await;
    let before = keyspace_info(&mut c).await;
    let digest: String = q(&mut c, "DEBUG DIGEST").await;
    s.stop().await;
    let s = start_without_shutdown_snapshot(&dir).await;
    let mut c = conn(&s, true).await;
    assert_eq!(keyspace_info(&mut c).await, before);
    assert_eq!(q::<String>(&mut c, "DEBUG DIGEST").await, digest);
    let _: () = q(&mut c, "SELECT 2").await;
    assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l 0 -1").await, ["x", "y"]);
    let (status, _) = s.post("/snapshot", serde_json::json!({})).await;
    assert_eq!(status, 200);
    let _: () = q(&mut c, "SWAPDB 2 6").await;
    let _: () = q(&mut c, "SELECT 6").await;
    assert_eq!(q::<i64>(&mut c, "MOVE l 7").await, 1);
    let after = keyspace_info(&mut c).await;
    let digest: String = q(&mut c, "DEBUG DIGEST").await;
    s.stop().await;
    let s = start_without_shutdown_snapshot(&dir).await;
    let mut c = conn(&s, false).await;
    assert_eq!(keyspace_info(&mut c).await, after);
    assert_eq!(q::<String>(&mut c, "DEBUG DIGEST").await, digest);
    let _: () = q(&mut c, "SELECT 7").await;
    assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l 0 -1").await, ["x", "y"]);
    // The HTTP API reaches other databases with `db` (query or body).
    let (status, _) = s.post("/kv/set", serde_json::json!({"key": "h", "value": "nine", "db": 9})).await;
    assert_eq!(status, 200);
    assert_eq!(s.get("/kv/get/h?db=9").await, (200, serde_json::json!({"key": "h", "value": "nine"})));
    assert_eq!(s.get("/kv/get/h").await.0, 404, "not in database 0");
    let _: () = q(&mut c, "SELECT 9").await;
    assert_eq!(c.get::<_, String>("h").await.unwrap(), "nine");
    let (status, body) = s.get("/kv/get/h?db=16").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("database 16 does not exist"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_reload_reads_every_key_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(&dir).await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        // A hash made large, then small again: the general encoding stays until a reload re-encodes it.
        let mut hset = redis::cmd("HSET");
        hset.arg("h");
        for i in 0..200 {
            hset.arg(format!("f{i}")).arg(i);
        }
        let _: i64 = hset.query_async(&mut c).await.unwrap();
        let mut hdel = redis::cmd("HDEL");
        hdel.arg("h");
        for i in 2..200 {
            hdel.arg(format!("f{i}"));
        }
        let _: i64 = hdel.query_async(&mut c).await.unwrap();
        assert_eq!(q::<String>(&mut c, "OBJECT ENCODING h").await, "hashtable");
        let _: () = q(&mut c, "SET s v PX 100000").await;
        let _: String = q(&mut c, "XADD x 1-1 f v").await;
        let _: () = q(&mut c, "SELECT 3").await;
        let _: i64 = q(&mut c, "RPUSH l a b").await;
        let _: () = q(&mut c, "SELECT 0").await;
        let digest: String = q(&mut c, "DEBUG DIGEST").await;
        let _: () = q(&mut c, "DEBUG RELOAD").await;
        assert_eq!(q::<String>(&mut c, "DEBUG DIGEST").await, digest);
        assert_eq!(q::<String>(&mut c, "OBJECT ENCODING h").await, "listpack");
        assert_eq!(q::<String>(&mut c, "HGET h f1").await, "1");
        let ttl: i64 = q(&mut c, "PTTL s").await;
        assert!((1..=100_000).contains(&ttl), "{ttl}");
        assert_eq!(q::<i64>(&mut c, "XLEN x").await, 1);
        let _: () = q(&mut c, "DEBUG RELOAD MERGE NOFLUSH NOSAVE").await;
        let _: () = q(&mut c, "SELECT 3").await;
        assert_eq!(q::<Vec<String>>(&mut c, "LRANGE l 0 -1").await, ["a", "b"]);
        let _: () = q(&mut c, "SELECT 0").await;
        assert!(err(&mut c, "DEBUG RELOAD NOFLUSH").await.contains("add MERGE"));
    }
    s.stop().await;
}

#[tokio::test]
async fn client_tracking_redirects_to_another_client() {
    use tokio::io::AsyncWriteExt;
    let s = common::start().await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    // The target: RESP2, subscribed to __redis__:invalidate.
    let mut target = tokio::net::TcpStream::connect(addr).await.unwrap();
    target.write_all(b"CLIENT ID\r\nSUBSCRIBE __redis__:invalidate\r\n").await.unwrap();
    let id_line = read_exact_within(&mut target, 3).await;
    let mut first = id_line.clone();
    while !first.ends_with(b":1\r\n") {
        let more = read_exact_within(&mut target, 1).await;
        assert!(!more.is_empty());
        first.extend(more);
    }
    let text = String::from_utf8(first).unwrap();
    let id: u64 = text[1..text.find('\r').unwrap()].parse().unwrap();
    // The tracking client, RESP2 too.
    let mut src = tokio::net::TcpStream::connect(addr).await.unwrap();
    let on = format!("CLIENT TRACKING ON REDIRECT {id}\r\nCLIENT GETREDIR\r\nGET rk\r\n");
    src.write_all(on.as_bytes()).await.unwrap();
    let want = format!("+OK\r\n:{id}\r\n$-1\r\n");
    assert_eq!(read_exact_within(&mut src, want.len()).await, want.as_bytes());
    let mut c = conn(&s, false).await;
    let _: () = q(&mut c, "SET rk 1").await;
    let _: () = q(&mut c, "FLUSHALL").await;
    let msgs = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\nrk\r\n*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n";
    assert_eq!(read_exact_within(&mut target, msgs.len()).await, msgs, "the target gets them as pub/sub messages");
    // The tracking client itself gets nothing.
    src.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_exact_within(&mut src, 7).await, b"+PONG\r\n");
    s.stop().await;
}
