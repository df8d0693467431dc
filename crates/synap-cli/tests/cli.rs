//! Drives the `synap-cli` binary against an in-process server on an ephemeral port.

use std::io::Write;
use std::process::{Command, Stdio};

use synap_server::{Config, RunningServer};

async fn server() -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        resp_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    (RunningServer::start(cfg).await.unwrap(), dir)
}

fn cli(port: u16, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synap-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_and_exit_codes() {
    let (s, _dir) = server().await;
    let port = s.resp_addr.unwrap().port();
    let run = move |args: &'static [&'static str]| tokio::task::spawn_blocking(move || cli(port, args, None));
    assert_eq!(run(&["SET", "k", "hello world"]).await.unwrap(), (0, "OK\n".into(), String::new()));
    assert_eq!(run(&["GET", "k"]).await.unwrap().1, "\"hello world\"\n");
    assert_eq!(run(&["--raw", "GET", "k"]).await.unwrap().1, "hello world\n");
    assert_eq!(run(&["INCR", "n"]).await.unwrap().1, "(integer) 1\n");
    assert_eq!(run(&["GET", "missing"]).await.unwrap().1, "(nil)\n");
    run(&["MSET", "a", "1", "b", "2"]).await.unwrap();
    assert_eq!(run(&["MGET", "a", "b", "zz"]).await.unwrap().1, "1) \"1\"\n2) \"2\"\n3) (nil)\n");
    let (code, out, _) = run(&["INCR", "k"]).await.unwrap();
    assert_eq!((code, out.as_str()), (1, "(error) ERR value is not an integer or out of range\n"));
    let (code, out, _) = run(&["NOSUCH"]).await.unwrap();
    assert_eq!(code, 1);
    assert!(out.starts_with("(error) ERR unknown command 'NOSUCH'"), "{out}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_reads_lines_with_quotes() {
    let (s, _dir) = server().await;
    let port = s.resp_addr.unwrap().port();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(port, &[], Some("set greeting \"hi there\"\nget greeting\n\nbogus\nscan 0 count 100\nquit\nget greeting\n"))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "OK");
    assert_eq!(lines[1], "\"hi there\"");
    assert!(lines[2].starts_with("(error) ERR unknown command 'bogus'"));
    assert_eq!(&lines[3..], ["1) \"0\"", "2) 1) \"greeting\""], "quit stops before the last command");
    s.shutdown().await;
}

#[test]
fn unreachable_server_is_a_clear_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out, err) = cli(port, &["PING"], None);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.starts_with(&format!("Could not connect to Synap at 127.0.0.1:{port}")), "{err}");
}
