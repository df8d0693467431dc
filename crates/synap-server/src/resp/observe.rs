//! SLOWLOG and LATENCY: the slow commands and latency events the server recorded (see `crate::stats`),
//! in Redis's reply shapes.

use bytes::Bytes;
use synap_core::Reply;
use synap_core::command::table::{self, COMMANDS};
use synap_core::command::{LatencyOp, SlowlogOp};
use synap_resp::Protocol;

use crate::service::Service;
use crate::stats::{BUCKETS, Totals};

fn help(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple((*l).into())).collect())
}

pub(super) fn slowlog(svc: &Service, op: SlowlogOp) -> Reply {
    let log = &svc.stats.slowlog;
    match op {
        SlowlogOp::Get(count) => {
            let entries = log.get(usize::try_from(count).ok());
            Reply::Array(
                entries
                    .into_iter()
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Int(e.id as i64),
                            Reply::Int(e.time as i64),
                            Reply::Int(e.micros as i64),
                            Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                            Reply::Bulk(e.client.into()),
                            Reply::Bulk(e.name),
                        ])
                    })
                    .collect(),
            )
        }
        SlowlogOp::Len => Reply::Int(log.len() as i64),
        SlowlogOp::Reset => {
            log.reset();
            Reply::Ok
        }
        SlowlogOp::Help => help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help.",
        ]),
    }
}

pub(super) fn latency(svc: &Service, op: LatencyOp, proto: Protocol) -> Result<Reply, String> {
    let m = &svc.stats.latency;
    Ok(match op {
        LatencyOp::Latest => Reply::Array(
            m.events()
                .into_iter()
                .filter_map(|(name, e)| {
                    let &(time, ms) = e.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::Bulk(Bytes::from_static(name.as_bytes())),
                        Reply::Int(time as i64),
                        Reply::Int(ms as i64),
                        Reply::Int(e.max_ms as i64),
                    ]))
                })
                .collect(),
        ),
        LatencyOp::History(event) => Reply::Array(
            m.event(&event)
                .map(|e| {
                    e.samples
                        .iter()
                        .map(|&(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        LatencyOp::Reset(events) => Reply::Int(m.reset(&events) as i64),
        LatencyOp::Doctor => Reply::Bulk(doctor(svc).into()),
        LatencyOp::Graph(event) => {
            let Some(e) = m.event(&event).filter(|e| !e.samples.is_empty()) else {
                return Err(format!("ERR No samples available for event '{}'", String::from_utf8_lossy(&event)));
            };
            Reply::Bulk(graph(&String::from_utf8_lossy(&event), &e).into())
        }
        LatencyOp::Histogram(names) => histogram(svc, &names, proto),
        LatencyOp::Help => help(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
            "HELP",
            "    Print this help.",
        ]),
    })
}

/// LATENCY HISTOGRAM: per command called, its calls and the cumulative count of calls at or below each
/// power-of-two bound. Redis's bounds are 1024 × 2^k ns rounded up to its histogram's resolution (two
/// significant figures: 256 sub-buckets), and it labels each with that bound in whole microseconds (1,
/// 2, 4, 8, 16, 33, 66, 132, ...); Synap's bounds are 2^k µs, labelled as Redis labels its k-th.
fn histogram(svc: &Service, names: &[Bytes], _proto: Protocol) -> Reply {
    let totals = svc.stats.resp.totals();
    let mut wanted: Vec<usize> = Vec::new();
    if names.is_empty() {
        wanted.extend((0..totals.len()).filter(|&i| totals[i].timed() > 0));
    } else {
        for n in names {
            let lower = String::from_utf8_lossy(n).to_ascii_lowercase();
            let Some(i) = table::index(&lower) else { continue };
            // A container stands for its subcommands, as in Redis.
            let subs: Vec<usize> = table::subcommands(COMMANDS[i].name).filter_map(|s| table::index(s.name)).collect();
            for j in std::iter::once(i).chain(subs) {
                if totals[j].timed() > 0 && !wanted.contains(&j) {
                    wanted.push(j);
                }
            }
        }
    }
    Reply::Map(
        wanted
            .into_iter()
            .map(|i| (Reply::Bulk(Bytes::from_static(COMMANDS[i].name.as_bytes())), command_cdf(&totals[i])))
            .collect(),
    )
}

fn command_cdf(t: &Totals) -> Reply {
    let mut points = Vec::new();
    let mut cumulative = 0u64;
    let mut previous = 0u64;
    // Four buckets per doubling: the bound of every fourth is a power of two microseconds.
    for i in 0..BUCKETS {
        cumulative += t.hist.get(i).copied().unwrap_or(0);
        let at_power = i % 4 == 0 && i < BUCKETS - 1;
        if !at_power && i != BUCKETS - 1 {
            continue;
        }
        if cumulative > previous {
            let k = if i == BUCKETS - 1 { (BUCKETS - 2) / 4 + 1 } else { i / 4 } as u32;
            points.push((Reply::Int(redis_label(k) as i64), Reply::Int(cumulative as i64)));
        }
        previous = cumulative;
    }
    Reply::Map(vec![
        (Reply::Bulk(Bytes::from_static(b"calls")), Reply::Int(t.timed() as i64)),
        (Reply::Bulk(Bytes::from_static(b"histogram_usec")), Reply::Map(points)),
    ])
}

/// Redis's label of its k-th power-of-two bucket: the highest value 1024 × 2^k ns stands for at two
/// significant figures (2^(k+3) ns wide there), in microseconds.
fn redis_label(k: u32) -> u64 {
    ((1u64 << (k + 10)) + (1u64 << (k + 3)) - 1) / 1000
}

fn doctor(svc: &Service) -> String {
    let m = &svc.stats.latency;
    let threshold = m.threshold_ms.load(std::sync::atomic::Ordering::Relaxed);
    if threshold == 0 {
        return "Latency monitoring is off. Turn it on with CONFIG SET latency-monitor-threshold <milliseconds> \
                (events that take at least that long are recorded), then ask again.\n"
            .into();
    }
    let events = m.events();
    if events.is_empty() {
        return format!("No event took {threshold} ms or more since the monitor was turned on or reset.\n");
    }
    let mut s = format!("Events that took at least {threshold} ms:\n\n");
    for (i, (name, e)) in events.iter().enumerate() {
        let n = e.samples.len().max(1) as u64;
        let avg = e.samples.iter().map(|s| s.1).sum::<u64>() / n;
        let (first, last) = (e.samples.front().map_or(0, |s| s.0), e.samples.back().map_or(0, |s| s.0));
        s.push_str(&format!(
            "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {}ms, period {} sec). Worst all time event {}ms.\n",
            i + 1,
            e.samples.len(),
            mean_deviation(e, avg),
            if e.samples.len() > 1 { last.saturating_sub(first) / (e.samples.len() as u64 - 1) } else { 0 },
            e.max_ms
        ));
    }
    s.push_str("\nAdvice:\n");
    for (name, _) in &events {
        let advice = match *name {
            "command" => {
                "- command: commands that are not O(1) took long. Look at SLOWLOG GET for which ones and their \
                 arguments; prefer SCAN to KEYS, and smaller ranges for LRANGE, ZRANGE and their kin."
            }
            "fast-command" => {
                "- fast-command: O(1) commands took long, which points at the machine (CPU starved, swapping) \
                 rather than at the commands."
            }
            "wal-fsync" => {
                "- wal-fsync: the disk was slow to sync the write-ahead log; with persistence.fsync always every \
                 write waits for it. A faster disk or fsync: periodic helps."
            }
            _ => continue,
        };
        s.push_str(advice);
        s.push('\n');
    }
    s
}

fn mean_deviation(e: &crate::stats::LatencyEvent, avg: u64) -> u64 {
    let n = e.samples.len().max(1) as u64;
    e.samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / n
}

/// LATENCY GRAPH: one column per sample (oldest first), its height scaled between the lowest and highest.
fn graph(name: &str, e: &crate::stats::LatencyEvent) -> String {
    let hi = e.samples.iter().map(|s| s.1).max().unwrap_or(0);
    let lo = e.samples.iter().map(|s| s.1).min().unwrap_or(0);
    let mut s = format!("{name} - high {hi} ms, low {lo} ms (all time high {} ms)\n", e.max_ms);
    s.push_str(&"-".repeat(80));
    s.push('\n');
    const ROWS: u64 = 4;
    for row in (1..=ROWS).rev() {
        for &(_, ms) in &e.samples {
            let h = if hi == lo { ROWS } else { 1 + (ms - lo) * (ROWS - 1) / (hi - lo) };
            s.push(if h >= row { '#' } else { ' ' });
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_redis_labels() {
        let labels: Vec<u64> = (0..8).map(super::redis_label).collect();
        assert_eq!(labels, [1, 2, 4, 8, 16, 33, 66, 132]);
        assert_eq!(super::redis_label(17), 135266);
    }
}
