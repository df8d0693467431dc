//! Hash, list, set and sorted-set routes over HTTP: REST paths and envelope commands, with their errors.

mod common;

use common::start_with;
use serde_json::json;

#[tokio::test]
async fn type_routes_and_envelope_commands() {
    let s = start_with(|_| {}).await;
    let (st, r) = s.post("/hash/set/user:1", json!({"fields": {"name": "ada", "age": "36"}})).await;
    assert_eq!((st, r), (200, json!({"result": 2})));
    assert_eq!(s.get("/hash/get/user:1?field=name").await, (200, json!({"result": "ada"})));
    assert_eq!(s.get("/hash/getall/user:1").await.1["result"], json!({"name": "ada", "age": "36"}));
    assert_eq!(s.post("/hash/incrby/user:1", json!({"field": "age", "by": 1})).await.1, json!({"result": 37}));

    assert_eq!(s.post("/list/rpush/jobs", json!({"values": ["a", "b", "c"]})).await.1, json!({"result": 3}));
    assert_eq!(s.get("/list/range/jobs?start=0&stop=-1").await.1, json!({"result": ["a", "b", "c"]}));
    assert_eq!(s.post("/list/lpop/jobs", json!({"count": 2})).await.1, json!({"result": ["a", "b"]}));

    assert_eq!(s.post("/set/add/tags", json!({"members": ["x", "y", "x"]})).await.1, json!({"result": 2}));
    assert_eq!(s.get("/set/ismember/tags?member=y").await.1, json!({"result": 1}));
    assert_eq!(s.post("/set/intercard", json!({"keys": ["tags"], "limit": 1})).await.1, json!({"result": 1}));

    let members = json!([{"member": "alice", "score": 10}, {"member": "bob", "score": 5.5}]);
    assert_eq!(s.post("/zset/add/board", json!({"members": members})).await.1, json!({"result": 2}));
    let r = s.post("/zset/range/board", json!({"start": 0, "stop": -1, "withscores": true})).await.1;
    assert_eq!(r, json!({"result": ["bob", 5.5, "alice", 10.0]}));
    let r = s.post("/zset/range/board", json!({"start": "(6", "stop": "+inf", "byscore": true})).await.1;
    assert_eq!(r, json!({"result": ["alice"]}));

    // The envelope speaks the same names, pipelined.
    let (_, r) = s
        .post(
            "/api/v1/command",
            json!([
                {"command": "zset.score", "payload": {"key": "board", "member": "bob"}},
                {"command": "list.len", "payload": {"key": "jobs"}},
                {"command": "hash.get", "payload": {"key": "board", "field": "x"}}
            ]),
        )
        .await;
    assert_eq!(r[0]["payload"], json!({"result": 5.5}));
    assert_eq!(r[1]["payload"], json!({"result": 1}));
    assert_eq!(r[2]["success"], json!(false));
    assert_eq!(r[2]["error"]["code"], "WRONG_TYPE");

    // Errors: wrong type is 409, bad input 400, unknown op 404.
    assert_eq!(s.post("/list/lpush/user:1", json!({"values": ["v"]})).await.0, 409);
    assert_eq!(s.post("/hash/set/user:1", json!({"fields": {}})).await.0, 400);
    assert_eq!(s.post("/zset/add/board", json!({"members": [{"member": "m"}]})).await.0, 400);
    assert_eq!(s.post("/zset/add/board", json!({"members": [{"member": "m", "score": "abc"}]})).await.0, 400);
    assert_eq!(s.get("/list/nope/x").await.0, 404);
    assert_eq!(s.delete("/list/len/jobs").await.0, 405);
    s.stop().await;
}
