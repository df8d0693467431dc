//! A real `redis-server` for tests that compare against it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` on a free loopback port, stopped when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    /// Its working directory (a replica saves the copy it receives there).
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one with `args` after the port and bind settings; `None` when `redis-server` is not
    /// installed. A port picked by binding port 0 may be taken again before redis-server binds it (by
    /// another test's server): a server that exits at start is retried on a new port, and readiness is a
    /// PING answered while the child is still alive.
    pub fn start(args: &[&str]) -> Option<Redis> {
        Redis::spawn(|port, dir| {
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
    }

    /// A Sentinel (`redis-server <conf> --sentinel`) watching the primary on `primary_port` under `name`.
    pub fn start_sentinel(primary_port: u16, name: &str) -> Option<Redis> {
        Redis::spawn(|port, dir| {
            let conf = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {primary_port} 1\n",
                dir.display()
            );
            std::fs::write(&conf, text).ok()?;
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
    }

    /// Starts what `command` spawns on a free port in a fresh directory, until it answers PING.
    fn spawn(mut command: impl FnMut(u16, &std::path::Path) -> Option<Child>) -> Option<Redis> {
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let dir = tempfile::tempdir().ok()?;
            let child = command(port, dir.path())?;
            let mut redis = Redis { child, port, _dir: dir };
            for _ in 0..100 {
                if redis.child.try_wait().ok().flatten().is_some() {
                    break; // exited: the port was taken
                }
                if redis_pong(port) {
                    return Some(redis);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("redis-server did not start");
    }
}

/// Whether a PING on `port` is answered `+PONG` (a Synap on that port would answer too, but then the
/// child has exited, which `start` checks first).
fn redis_pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
