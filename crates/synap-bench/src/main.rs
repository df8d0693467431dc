//! `synap-bench`: the load generator of the performance spec, built for honest numbers: HDR latency
//! histograms, errors counted, a fixed-rate mode that corrects for coordinated omission, and the same
//! workload against Synap or Redis (`--target`, `--compare`).
//!
//! ```text
//! synap-bench kv --operations 100000 --read-ratio 0.8 --key-size 20 --value-size 100 --connections 10
//! synap-bench --compare 127.0.0.1:6380 kv --operations 100000
//! synap-bench --compare 127.0.0.1:5672 --compare-target rabbitmq queue --messages 50000 --workers 5
//! synap-bench --port 7000 --compare 127.0.0.1:6380 replication --replicas 127.0.0.1:7001,127.0.0.1:7002 \
//!     --compare-replicas 127.0.0.1:6381,127.0.0.1:6382 --rate 20000 --duration 10
//! synap-bench --compare 127.0.0.1:6380 stream --rooms 100 --events-per-room 1000 --subscribers-per-room 50
//! ```

mod kv;
mod pubsub;
mod queue;
mod replication;
mod report;
mod stream;

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Report, markdown, ratios};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Synap,
    Redis,
    Rabbitmq,
}

#[derive(Debug, Parser)]
#[command(name = "synap-bench", version, about = "Load generator for Synap (and Redis, side by side)")]
struct Cli {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Server RESP port.
    #[arg(long, default_value_t = 6379, global = true)]
    port: u16,
    /// What the server at host:port is (a label; the workload is the same RESP commands).
    #[arg(long, value_enum, default_value = "synap", global = true)]
    target: Target,
    /// A second server (`host:port`) to run the same workload against, in alternation, with ratios.
    #[arg(long, global = true)]
    compare: Option<String>,
    /// Label of the --compare server.
    #[arg(long, value_enum, default_value = "redis", global = true)]
    compare_target: Target,
    /// Alternating rounds with --compare.
    #[arg(long, default_value_t = 1, global = true)]
    rounds: usize,
    /// Write the reports as JSON to this file.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
    /// Print a markdown table of the reports.
    #[arg(long, global = true)]
    markdown: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Key-value: GET/SET mix over a key space.
    Kv(kv::KvArgs),
    /// Work queue: producers publish, workers consume and acknowledge (Synap or RabbitMQ).
    Queue(queue::QueueArgs),
    /// Pub/Sub fan-out: exact and pattern subscribers, publishers over many topics (Synap or Redis).
    Pubsub(pubsub::PubSubArgs),
    /// Replication: writes on a primary, reads on its replicas, replication lag (Synap or Redis).
    Replication(replication::ReplicationArgs),
    /// Streams: fan-out to XREAD readers per room, or consumer groups reading and acknowledging (Synap or
    /// Redis).
    Stream(stream::StreamArgs),
}

fn label(t: Target) -> &'static str {
    match t {
        Target::Synap => "synap",
        Target::Redis => "redis",
        Target::Rabbitmq => "rabbitmq",
    }
}

fn progress_bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len}") {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    }
}

async fn run_scenario(cli: &Cli, addr: &str, target: Target) -> anyhow::Result<Vec<Report>> {
    match &cli.scenario {
        Scenario::Replication(a) => {
            if target == Target::Rabbitmq {
                anyhow::bail!("the replication scenario runs against synap or redis");
            }
            let main = format!("{}:{}", cli.host, cli.port);
            let replicas = if addr == main { &a.replicas } else { &a.compare_replicas };
            let r = replication::run(addr, label(target), replicas, a, &progress_bar()).await?;
            if let Some([p50, p95, p99, max]) = r.offset_lag {
                let unit = if target == Target::Redis { "bytes" } else { "records" };
                println!(
                    "replication offset lag {} ({addr}, {unit}): p50 {p50} p95 {p95} p99 {p99} max {max}",
                    label(target)
                );
            }
            let mut out = vec![r.writes];
            out.extend(r.lag);
            out.extend(r.reads);
            Ok(out)
        }
        Scenario::Kv(a) => {
            if target == Target::Rabbitmq {
                anyhow::bail!("the kv scenario runs against synap or redis");
            }
            Ok(vec![kv::run(addr, label(target), a, &progress_bar()).await?])
        }
        Scenario::Queue(a) => {
            let r = match target {
                Target::Synap => queue::run_synap(addr, a, &progress_bar()).await?,
                Target::Rabbitmq => {
                    let url = if addr.starts_with("amqp://") { addr.to_string() } else { format!("amqp://{addr}/%2f") };
                    queue::run_rabbitmq(&url, a, &progress_bar()).await?
                }
                Target::Redis => anyhow::bail!("Redis has no acknowledged queues; use --target synap or rabbitmq"),
            };
            Ok(vec![r.publish, r.end_to_end])
        }
        Scenario::Pubsub(a) => {
            if target == Target::Rabbitmq {
                anyhow::bail!("the pubsub scenario runs against synap or redis");
            }
            let r = pubsub::run(addr, label(target), a, &progress_bar()).await?;
            Ok(vec![r.publish, r.delivery])
        }
        Scenario::Stream(a) => {
            if target == Target::Rabbitmq {
                anyhow::bail!("the stream scenario runs against synap or redis");
            }
            let r = stream::run(addr, label(target), a, &progress_bar()).await?;
            Ok(vec![r.publish, r.delivery])
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synap-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synap-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let main_addr = format!("{}:{}", cli.host, cli.port);
    let mut reports = Vec::new();
    // Each run's reports, by side (0: --host/--port, 1: --compare), in the order the scenario gives them.
    let mut runs: Vec<(usize, Vec<Report>)> = Vec::new();
    let rounds = if cli.compare.is_some() { cli.rounds.max(1) } else { 1 };
    for round in 0..rounds {
        let mut order = vec![(0, main_addr.clone(), cli.target)];
        if let Some(other) = &cli.compare {
            order.push((1, other.clone(), cli.compare_target));
            if round % 2 == 1 {
                order.reverse();
            }
        }
        for (side, addr, target) in order {
            let run = run_scenario(&cli, &addr, target).await?;
            for r in &run {
                println!("{}", r.text());
            }
            reports.extend(run.iter().cloned());
            runs.push((side, run));
        }
    }
    if cli.compare.is_some() {
        let mine = runs.iter().filter(|(side, _)| *side == 0).flat_map(|(_, r)| r);
        let theirs = runs.iter().filter(|(side, _)| *side == 1).flat_map(|(_, r)| r);
        for (a, b) in mine.zip(theirs) {
            println!("{}", ratios(a, b));
        }
    }
    if cli.markdown {
        print!("{}", markdown(&reports));
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    if reports.iter().any(|r| r.errors > 0) {
        eprintln!("synap-bench: some requests failed (see the error counts)");
    }
    Ok(())
}
