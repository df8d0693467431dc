//! The compact encodings follow Redis's thresholds, changed at run time by CONFIG SET under Redis's
//! names (and their `ziplist` aliases). The thresholds hold for the whole process, so this file is a
//! test binary of its own: no other test's OBJECT ENCODING sees them change.

mod common;

use common::{conn, err, q};
use redis::aio::MultiplexedConnection;

async fn encoding(c: &mut MultiplexedConnection, key: &str) -> String {
    q(c, &format!("OBJECT ENCODING {key}")).await
}

/// One test (the thresholds are the process's): the encodings, then CONFIG REWRITE.
#[tokio::test]
async fn encoding_thresholds_and_config_rewrite() {
    encodings_follow_the_thresholds_config_set_changes().await;
    config_rewrite_writes_the_settings_in_force_back_to_the_file().await;
}

async fn encodings_follow_the_thresholds_config_set_changes() {
    let s = common::start().await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "FLUSHALL").await;
        let _: () = q(&mut c, "CONFIG SET hash-max-ziplist-entries 2 hash-max-listpack-value 4").await;
        let got: std::collections::HashMap<String, String> = q(&mut c, "CONFIG GET hash-max-*").await;
        assert_eq!(got["hash-max-listpack-entries"], "2");
        assert_eq!(got["hash-max-ziplist-entries"], "2");
        assert_eq!(got["hash-max-listpack-value"], "4");
        let _: i64 = q(&mut c, "HSET h a 1 b 2").await;
        assert_eq!(encoding(&mut c, "h").await, "listpack");
        let _: i64 = q(&mut c, "HSET h c 3").await;
        assert_eq!(encoding(&mut c, "h").await, "hashtable");
        let _: i64 = q(&mut c, "HSET h2 a 12345").await;
        assert_eq!(encoding(&mut c, "h2").await, "hashtable", "a value past hash-max-listpack-value");
        let all: std::collections::HashMap<String, String> = q(&mut c, "HGETALL h").await;
        assert_eq!(all.len(), 3, "the values converted whole");
        assert_eq!(all["c"], "3");

        let _: () = q(&mut c, "CONFIG SET zset-max-listpack-entries 3 zset-max-ziplist-value 3").await;
        let _: i64 = q(&mut c, "ZADD z 1 a 2 b 3 c").await;
        assert_eq!(encoding(&mut c, "z").await, "listpack");
        let _: i64 = q(&mut c, "ZADD z 4 abcd").await;
        assert_eq!(encoding(&mut c, "z").await, "skiplist");
        assert_eq!(q::<Vec<String>>(&mut c, "ZRANGE z 0 -1").await, ["a", "b", "c", "abcd"]);

        let _: () = q(&mut c, "CONFIG SET set-max-intset-entries 3 set-max-listpack-entries 4").await;
        let _: i64 = q(&mut c, "SADD ints 1 2 3").await;
        assert_eq!(encoding(&mut c, "ints").await, "intset");
        let _: i64 = q(&mut c, "SADD ints 4").await;
        assert_eq!(encoding(&mut c, "ints").await, "hashtable", "past set-max-intset-entries");
        let _: i64 = q(&mut c, "SADD mixed 1 x").await;
        assert_eq!(encoding(&mut c, "mixed").await, "listpack");
        let _: i64 = q(&mut c, "SADD mixed y z w").await;
        assert_eq!(encoding(&mut c, "mixed").await, "hashtable", "past set-max-listpack-entries");
        assert_eq!(q::<i64>(&mut c, "SCARD mixed").await, 5);

        let _: () = q(&mut c, "CONFIG SET list-max-ziplist-size 3").await;
        let _: i64 = q(&mut c, "RPUSH l a b c").await;
        assert_eq!(encoding(&mut c, "l").await, "listpack");
        let _: i64 = q(&mut c, "RPUSH l d").await;
        assert_eq!(encoding(&mut c, "l").await, "quicklist");
        // A negative size is a byte budget: -1 is 4 KB.
        let _: () = q(&mut c, "CONFIG SET list-max-listpack-size -1").await;
        let big = "x".repeat(1500);
        let mut rpush = redis::cmd("RPUSH");
        rpush.arg("lb").arg(&big).arg(&big);
        let _: i64 = rpush.query_async(&mut c).await.unwrap();
        assert_eq!(encoding(&mut c, "lb").await, "listpack");
        let _: i64 = redis::cmd("RPUSH").arg("lb").arg(&big).query_async(&mut c).await.unwrap();
        assert_eq!(encoding(&mut c, "lb").await, "quicklist");
        assert_eq!(q::<i64>(&mut c, "LLEN lb").await, 3);

        assert_eq!(
            err(&mut c, "CONFIG SET hash-max-listpack-entries abc").await,
            "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-entries') - argument couldn't be parsed into an integer"
        );
        assert_eq!(
            err(&mut c, "CONFIG SET set-max-intset-entries -1").await,
            "ERR CONFIG SET failed (possibly related to argument 'set-max-intset-entries') - argument must be between 0 and 9223372036854775807 inclusive"
        );
        // Redis's defaults again.
        let _: () = q(
            &mut c,
            "CONFIG SET hash-max-listpack-entries 128 hash-max-listpack-value 64 zset-max-listpack-entries 128 zset-max-listpack-value 64 set-max-intset-entries 512 set-max-listpack-entries 128 list-max-listpack-size -2",
        )
        .await;
    }
    s.stop().await;
}

async fn config_rewrite_writes_the_settings_in_force_back_to_the_file() {
    // Without a file: Redis's error.
    let s = common::start().await;
    let mut c = conn(&s, false).await;
    assert_eq!(err(&mut c, "CONFIG REWRITE").await, "ERR The server is running without a config file");
    s.stop().await;

    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("synap.yaml");
    std::fs::write(&path, "# a comment\nkv:\n  shards: 64\nresp:\n  max_watched_keys: 99\n").unwrap();
    let s = common::start_with(|cfg| cfg.config_file = Some(path.clone())).await;
    for resp3 in [false, true] {
        let mut c = conn(&s, resp3).await;
        let _: () = q(&mut c, "CONFIG SET maxmemory-policy allkeys-lru maxmemory 10mb timeout 30").await;
        let _: () = q(&mut c, "CONFIG SET hash-max-ziplist-entries 7 list-max-listpack-size 5").await;
        let _: () = q(&mut c, "CONFIG SET notify-keyspace-events Kx busy-reply-threshold 700").await;
        let _: () = q(&mut c, "CONFIG REWRITE").await;
        let cfg = synap_server::Config::from_yaml_file(&path).expect("the rewritten file loads");
        assert_eq!(cfg.kv.eviction_policy.0, synap_core::EvictionPolicy::AllKeysLru);
        assert_eq!(cfg.kv.max_memory.0, 10 * 1024 * 1024);
        assert_eq!(cfg.resp.idle_timeout_secs, 30);
        assert_eq!(cfg.resp.busy_reply_threshold_ms, 700);
        assert_eq!(cfg.kv.encodings.hash_max_listpack_entries, 7);
        assert_eq!(cfg.kv.encodings.list_max_listpack_size, 5);
        assert_eq!(cfg.pubsub.notify_keyspace_events, "xK");
        // What the file held besides stays.
        assert_eq!((cfg.kv.shards, cfg.resp.max_watched_keys), (64, 99));
        // A server started from it has the settings in force.
        cfg.kv.encodings.apply();
        let _: () = q(&mut c, "CONFIG SET hash-max-ziplist-entries 128 list-max-listpack-size -2 maxmemory 0").await;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("")
            .arg("timeout")
            .arg(0)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut c = conn(&s, false).await;
    let _: () = q(&mut c, "CONFIG REWRITE").await;
    let cfg = synap_server::Config::from_yaml_file(&path).unwrap();
    assert_eq!(cfg.kv.encodings, synap_server::config::EncodingsSection::default());
    assert_eq!(cfg.kv.max_memory.0, 0);
    s.stop().await;
}
