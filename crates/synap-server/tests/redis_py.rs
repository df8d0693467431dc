//! redis-py 8 with its default settings (RESP3) drives every data family against Synap
//! (`redis_py_smoke.py`), as the most used Python client would. Needs `python3` with redis-py 8 (CI
//! installs it); without it the test says so and passes, unless `CI` is set.

mod common;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_smoke_of_every_family() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis, sys; sys.exit(0 if int(redis.__version__.split('.')[0]) >= 8 else 1)"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(std::env::var_os("CI").is_none(), "python3 with redis-py 8 is needed in CI");
        eprintln!("python3 with redis-py 8 not found: the redis-py smoke does not run");
        return;
    }
    let s = common::start().await;
    let port = s.server.as_ref().unwrap().resp_addr.unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py_smoke.py");
    let out = tokio::process::Command::new("python3").arg(script).arg(port.to_string()).kill_on_drop(true).output();
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(120), out).await.expect("smoke within 2 min").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-py smoke failed:\n{text}");
    assert!(text.contains("redis-py smoke: ok"), "{text}");
    s.stop().await;
}
