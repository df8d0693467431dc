//! A `synap-server` child process on ephemeral ports, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub http_addr: String,
    pub resp_addr: Option<String>,
    /// The cluster port, when `cluster.enabled`.
    pub cluster_addr: Option<String>,
    /// The TLS RESP port, when `tls.resp_addr` is set.
    pub tls_addr: Option<String>,
    /// What the server printed after its "listening" line (its log; the newest 100,000 lines).
    pub log: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts the binary with `args` on loopback port 0 and waits for its "listening" line.
    pub fn start(data_dir: &Path, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(Command::new(env!("CARGO_BIN_EXE_synap-server")), data_dir, args)
    }

    /// Like [`ServerProcess::start`], on given HTTP and RESP addresses (a restart on the ports it had).
    pub fn start_at(data_dir: &Path, http: &str, resp: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_at(Command::new(env!("CARGO_BIN_EXE_synap-server")), data_dir, http, resp, args)
    }

    /// Like [`ServerProcess::start`], with the soft and hard open-file limits set to `nofile` (`ulimit -n`).
    pub fn start_with_nofile(data_dir: &Path, args: &[&str], nofile: u64) -> ServerProcess {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_synap-server")]);
        ServerProcess::spawn(sh, data_dir, args)
    }

    /// Like [`ServerProcess::start`], logging at `level` (kept in `log`).
    pub fn start_logged(data_dir: &Path, args: &[&str], level: &str) -> ServerProcess {
        let command = Command::new(env!("CARGO_BIN_EXE_synap-server"));
        ServerProcess::spawn_with(command, data_dir, "127.0.0.1:0", "127.0.0.1:0", args, level)
    }

    fn spawn(command: Command, data_dir: &Path, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_at(command, data_dir, "127.0.0.1:0", "127.0.0.1:0", args)
    }

    fn spawn_at(command: Command, data_dir: &Path, http: &str, resp: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_with(command, data_dir, http, resp, args, "warn")
    }

    fn spawn_with(
        mut command: Command,
        data_dir: &Path,
        http: &str,
        resp: &str,
        args: &[&str],
        level: &str,
    ) -> ServerProcess {
        let mut child = command
            .args(["--http-addr", http, "--resp-addr", resp, "--log-level", level])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn synap-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if line.starts_with("synap-server listening") {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for line in lines.map_while(Result::ok) {
                let mut kept = kept.lock().unwrap();
                if kept.len() >= 100_000 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let line = loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                break line;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("synap-server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "synap-server did not start in time");
        };
        let field =
            |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).map(str::to_string);
        ServerProcess {
            http_addr: field("http").expect("http address"),
            resp_addr: field("resp"),
            cluster_addr: field("cluster"),
            tls_addr: field("tls"),
            log,
            child,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("synap-server ignored SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}
