//! `synap-diff --redis 127.0.0.1:6380 --synap 127.0.0.1:6379 --commands 1000000 --resp 3`: random
//! command sequences in lockstep on both servers; exits 1 with a shrunk sequence on the first difference.

use anyhow::Result;
use clap::Parser;
use synap_diff::{FAMILIES, Options, run};

#[derive(Parser)]
#[command(about = "Differential test of Synap against redis-server")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:6380")]
    redis: String,
    #[arg(long, default_value = "127.0.0.1:6379")]
    synap: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 100_000)]
    commands: u64,
    /// 2, 3 or both.
    #[arg(long, default_value = "both")]
    resp: String,
    /// Comma-separated families (default all): strings,bits,keys,hashes,lists,sets,zsets,streams,transactions,pubsub.
    #[arg(long)]
    families: Option<String>,
    #[arg(long, default_value_t = 400)]
    segment: usize,
    #[arg(long, default_value_t = 3000)]
    max_shrink_trials: usize,
    /// Replay the command lines of FILE (one per line, as a run prints them) instead of generating.
    #[arg(long)]
    replay: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let families: Vec<&'static str> = match &a.families {
        None => FAMILIES.to_vec(),
        Some(list) => list
            .split(',')
            .map(|f| FAMILIES.iter().copied().find(|x| *x == f).ok_or_else(|| anyhow::anyhow!("unknown family {f}")))
            .collect::<Result<_>>()?,
    };
    let protocols: &[bool] = match a.resp.as_str() {
        "2" => &[false],
        "3" => &[true],
        _ => &[false, true],
    };
    for &resp3 in protocols {
        let opts = Options {
            redis: a.redis.clone(),
            synap: a.synap.clone(),
            seed: a.seed,
            commands: a.commands,
            resp3,
            families: families.clone(),
            segment: a.segment,
            max_shrink_trials: a.max_shrink_trials,
        };
        let proto = if resp3 { 3 } else { 2 };
        if let Some(path) = &a.replay {
            let text = std::fs::read_to_string(path)?;
            let steps: Vec<Vec<synap_diff::Cmd>> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(synap_diff::Cmd::parse_line)
                .map(|c| vec![c])
                .collect();
            match synap_diff::run_steps(&opts, &steps)? {
                None => println!("RESP{proto}: {} commands replayed, no difference", steps.len()),
                Some(m) => {
                    println!("RESP{proto}: difference found\n{m}");
                    std::process::exit(1);
                }
            }
            continue;
        }
        match run(&opts)? {
            Ok(r) => println!(
                "RESP{proto}: {} commands in {} segments, {:.1} s, no difference (seed {})",
                r.commands,
                r.segments,
                r.elapsed_ms as f64 / 1000.0,
                a.seed
            ),
            Err(m) => {
                println!("RESP{proto}: seed {}: difference found\n{m}", a.seed);
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
