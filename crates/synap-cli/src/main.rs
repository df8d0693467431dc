//! `synap-cli [-h host] [-p port] [--raw] [COMMAND ...]`: with a command, runs it once and prints the reply
//! (exit code 1 on an error reply); without, an interactive shell with history and line editing.

mod format;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use synap_client::{ClientError, Connection};
use synap_resp::{Value, split_args};

#[derive(Debug, Parser)]
#[command(name = "synap-cli", version, about = "Command-line client for Synap (RESP)", disable_help_flag = true)]
struct Args {
    /// Server host.
    #[arg(short = 'h', long, default_value = "127.0.0.1", env = "SYNAP_HOST")]
    host: String,
    /// Server RESP port.
    #[arg(short = 'p', long, default_value_t = 6379, env = "SYNAP_PORT")]
    port: u16,
    /// Print replies raw (no quotes, no types), as `redis-cli --raw`.
    #[arg(long)]
    raw: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The command to run once; without one, an interactive shell starts.
    command: Vec<String>,
}

fn print_reply(v: &Value, raw: bool) {
    let mut stdout = std::io::stdout().lock();
    if raw {
        let _ = stdout.write_all(&format::raw(v));
        let _ = stdout.write_all(b"\n");
    } else {
        let _ = writeln!(stdout, "{}", format::human(v));
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synap-cli: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let addr = format!("{}:{}", args.host, args.port);
    let mut conn = match Connection::connect(&addr).await {
        Ok(c) => c,
        Err(ClientError::Connect { source, .. }) => {
            eprintln!("Could not connect to Synap at {addr}: {source}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("Could not connect to Synap at {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.command.is_empty() {
        return match conn.call(&args.command).await {
            Ok(v) => {
                print_reply(&v, args.raw);
                if matches!(v, Value::Error(_)) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    shell(conn, &addr, args.raw).await
}

async fn shell(mut conn: Connection, addr: &str, raw: bool) -> ExitCode {
    let mut editor = match DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("synap-cli: cannot open the terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".synap_cli_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let prompt = if std::io::stdin().is_terminal() { format!("{addr}> ") } else { String::new() };
    let mut status = ExitCode::SUCCESS;
    loop {
        let line = match editor.readline(&prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("synap-cli: {e}");
                status = ExitCode::FAILURE;
                break;
            }
        };
        let words = match split_args(line.as_bytes()) {
            Ok(w) => w,
            Err(_) => {
                println!("Invalid argument(s)");
                continue;
            }
        };
        if words.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        let first = String::from_utf8_lossy(&words[0]).to_lowercase();
        if first == "quit" || first == "exit" {
            break;
        }
        match conn.call(&words).await {
            Ok(v) => print_reply(&v, raw),
            Err(e) => {
                eprintln!("Error: {e}");
                // Reconnect once; the server may have closed an idle connection.
                match Connection::connect(addr).await {
                    Ok(c) => conn = c,
                    Err(e) => {
                        eprintln!("Could not connect to Synap at {addr}: {e}");
                        status = ExitCode::FAILURE;
                        break;
                    }
                }
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    status
}
