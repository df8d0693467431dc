//! INFO: the server's state in Redis's `key:value` sections (RESP `INFO`, HTTP `GET /info` as JSON), and
//! the per-queue and per-stream statistics INFO and `/metrics` share.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Map, Value};
use synap_core::command::table::COMMANDS;
use synap_core::command::{QueueCmd, StreamCmd};
use synap_core::{Command, ExecCtx, Reply};

use crate::service::Service;

/// The Redis version reported to clients that gate features on it.
pub const COMPAT_REDIS_VERSION: &str = "7.2.0";

/// The sections INFO gives with no argument (and `default`), in Redis's order.
const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// `all` adds these (`everything` too; Synap has no module sections of its own): Redis's, then Synap's
/// (which walk queues and streams, so are not in the default a monitoring tool asks for every second).
const MORE: &[&str] = &["commandstats", "latencystats", "queues", "streams"];

/// A queue's or stream's name as an INFO field name: bytes outside `[A-Za-z0-9._-]` percent-encoded,
/// so that no name can end a line, start a section or forge a field.
fn field_name(name: &[u8]) -> String {
    let mut s = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{bytes}B") } else { format!("{v:.2}{}", units[i]) }
}

/// Bytes the allocator handed out, its active pages, and what it holds resident.
pub fn allocator_bytes() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    (
        stats::allocated::read().unwrap_or(0) as u64,
        stats::active::read().unwrap_or(0) as u64,
        stats::resident::read().unwrap_or(0) as u64,
    )
}

/// The machine's memory (`/proc/meminfo`'s MemTotal), 0 when unknown.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).map(|kb| kb * 1024))
        })
        .unwrap_or(0)
}

/// CPU time of the process and of its waited-for children, in seconds: (sys, user, sys children,
/// user children), from `/proc/self/stat` (in clock ticks, which Linux fixes at 100 a second for user
/// space); zeros where there is no such file.
pub fn cpu_seconds() -> (f64, f64, f64, f64) {
    const TICKS: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return (0.0, 0.0, 0.0, 0.0) };
    // The command name (field 2) may hold spaces: the fields after it follow its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else { return (0.0, 0.0, 0.0, 0.0) };
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let at = |field: usize| f.get(field - 3).copied().unwrap_or(0.0) / TICKS;
    (at(15), at(14), at(17), at(16))
}

/// A map reply's integer fields by name (nested maps and arrays are left out).
fn int_fields(r: &Reply) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if let Reply::Map(pairs) = r {
        for (k, v) in pairs {
            if let (Reply::Bulk(k), Reply::Int(v)) = (k, v) {
                out.insert(String::from_utf8_lossy(k).into_owned(), *v);
            }
        }
    }
    out
}

fn run(svc: &Service, cmd: Command) -> Option<Reply> {
    svc.engine.execute(&mut ExecCtx::default(), cmd).ok()
}

fn names(r: Option<Reply>) -> Vec<Bytes> {
    match r {
        Some(Reply::Array(items)) => items
            .into_iter()
            .filter_map(|i| match i {
                Reply::Bulk(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A queue's (or a group's) name and its numbers by field.
pub type Named = (Bytes, BTreeMap<String, i64>);

/// Every queue's QSTATS numbers (depth, ready, delayed, in_flight, consumers, published, acked, ...), by
/// name; at most `max` queues (the first by name), and how many there are in all.
pub fn queue_stats(svc: &Service, max: usize) -> (Vec<Named>, usize) {
    let mut all = names(run(svc, Command::Queue(QueueCmd::List)));
    all.sort();
    let total = all.len();
    let rows = all
        .into_iter()
        .take(max)
        .filter_map(|q| {
            let r = run(svc, Command::Queue(QueueCmd::Stats { queue: q.clone() }))?;
            Some((q, int_fields(&r)))
        })
        .collect();
    (rows, total)
}

/// One stream's numbers and its consumer groups' (name, consumers, pending, lag).
pub struct StreamRow {
    pub name: Bytes,
    pub fields: BTreeMap<String, i64>,
    pub groups: Vec<Named>,
}

/// Every stream's stats (events, bytes, segments, published, partitions, and per group consumers,
/// pending, lag), at most `max` streams (the first by name), and how many there are in all.
pub fn stream_stats(svc: &Service, max: usize) -> (Vec<StreamRow>, usize) {
    let mut all = names(run(svc, Command::Stream(StreamCmd::List)));
    all.sort();
    let total = all.len();
    let rows = all
        .into_iter()
        .take(max)
        .filter_map(|room| {
            let r = run(svc, Command::Stream(StreamCmd::Stats { room: room.clone() }))?;
            let mut groups = Vec::new();
            if let Reply::Map(pairs) = &r {
                for (k, v) in pairs {
                    if let (Reply::Bulk(k), Reply::Array(items)) = (k, v)
                        && &k[..] == b"groups"
                    {
                        for g in items {
                            let name = match g {
                                Reply::Map(p) => p.iter().find_map(|(k, v)| match (k, v) {
                                    (Reply::Bulk(k), Reply::Bulk(v)) if &k[..] == b"name" => Some(v.clone()),
                                    _ => None,
                                }),
                                _ => None,
                            };
                            groups.push((name.unwrap_or_default(), int_fields(g)));
                        }
                    }
                }
            }
            Some(StreamRow { name: room, fields: int_fields(&r), groups })
        })
        .collect();
    (rows, total)
}

/// INFO's text for the sections asked (none: the default ones).
pub fn info(svc: &Service, sections: &[String]) -> String {
    let asked: Vec<String> = sections.iter().map(|s| s.to_ascii_lowercase()).collect();
    let want = |name: &str| {
        if asked.is_empty() {
            return DEFAULT.contains(&name);
        }
        asked.iter().any(|s| {
            s == name
                || (s == "default" && DEFAULT.contains(&name))
                || ((s == "all" || s == "everything") && (DEFAULT.contains(&name) || MORE.contains(&name)))
        })
    };
    let mut s = String::new();
    let resp = svc.resp.get().and_then(|w| w.upgrade());
    let kv = svc.engine.kv_stats();
    let stats = &svc.stats;
    if want("server") {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let port = resp.as_ref().map_or(0, |r| r.bound.port());
        let _ = write!(
            s,
            "# Server\r\nredis_version:{COMPAT_REDIS_VERSION}\r\nsynap_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{port}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            svc.replication.replid().0,
            now.as_micros(),
            svc.uptime_secs(),
            svc.uptime_secs() / 86400,
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            svc.config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        );
    }
    if want("clients") {
        let (connected, blocked, tracking) = match &resp {
            Some(r) => (
                r.connected(),
                r.stats.blocked_clients.load(Ordering::Relaxed),
                svc.engine.watches().tracking.clients(),
            ),
            None => (0, 0, 0),
        };
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{connected}\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\ntracking_clients:{tracking}\r\nhttp_connections:{}\r\n\r\n",
            svc.config.resp.max_connections,
            svc.http_stats.open(),
        );
    }
    if want("memory") {
        let (allocated, active, resident) = allocator_bytes();
        let used = svc.engine.used_memory() as u64;
        let peak = stats.memory_peak.fetch_max(used, Ordering::Relaxed).max(used);
        let system = total_system_memory();
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{resident}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_dataset:{used}\r\nused_memory_keys:{}\r\nused_memory_queues:{}\r\nused_memory_streams:{}\r\nallocator_allocated:{allocated}\r\nallocator_active:{active}\r\nallocator_resident:{resident}\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_allocator:jemalloc\r\n\r\n",
            human(used),
            human(resident),
            human(peak),
            if peak == 0 { 100.0 } else { used as f64 * 100.0 / peak as f64 },
            kv.used_memory,
            svc.engine.queues().used_memory(),
            svc.engine.streams().used_memory(),
            human(system),
            human(kv.max_memory as u64),
            kv.eviction.name(),
            if allocated == 0 { 0.0 } else { active as f64 / allocated as f64 },
            if used == 0 { 0.0 } else { resident as f64 / used as f64 },
            resident as i64 - used as i64,
            max = kv.max_memory,
        );
    }
    if want("persistence") {
        let _ = write!(s, "# Persistence\r\nloading:0\r\nasync_loading:0\r\n");
        let _ = write!(s, "recovery_time_ms:{}\r\n", stats.recovery_ms.load(Ordering::Relaxed));
        match &svc.persistence {
            Some(p) => {
                let wal = p.wal();
                let progress = wal.progress();
                let st = wal.stats();
                let snap = &p.snapshot_stats;
                let _ = write!(
                    s,
                    "rdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_save_bytes:{}\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_last_write_status:{}\r\nwal_fsync:{:?}\r\nwal_last_lsn:{}\r\nwal_written_lsn:{}\r\nwal_synced_lsn:{}\r\nwal_records:{}\r\nwal_bytes:{}\r\nwal_batches:{}\r\nwal_fsyncs:{}\r\nwal_fsync_usec:{}\r\nwal_last_fsync_time_ms:{}\r\n",
                    p.writes_since_snapshot(),
                    p.snapshot_in_progress() as u8,
                    p.last_save_unix(),
                    if snap.last_failed.load(Ordering::Relaxed) { "err" } else { "ok" },
                    if snap.written.load(Ordering::Relaxed) == 0 {
                        -1
                    } else {
                        (snap.last_millis.load(Ordering::Relaxed) / 1000) as i64
                    },
                    snap.written.load(Ordering::Relaxed),
                    snap.last_bytes.load(Ordering::Relaxed),
                    if progress.failed.is_some() { "err" } else { "ok" },
                    wal.policy(),
                    wal.last_lsn(),
                    progress.written,
                    progress.synced,
                    st.records.load(Ordering::Relaxed),
                    st.bytes.load(Ordering::Relaxed),
                    st.batches.load(Ordering::Relaxed),
                    st.fsyncs.load(Ordering::Relaxed),
                    st.fsync_time.sum_nanos.load(Ordering::Relaxed) / 1000,
                    st.last_fsync_unix_ms.load(Ordering::Relaxed),
                );
            }
            None => s.push_str("aof_enabled:0\r\n"),
        }
        s.push_str("\r\n");
    }
    if want("stats") {
        let repl = &svc.replication;
        let ps = svc.engine.pubsub().stats();
        let (conns, rejected, out_limit) = match &resp {
            Some(r) => (
                r.stats.connections_received.load(Ordering::Relaxed),
                r.stats.rejected_connections.load(Ordering::Relaxed),
                r.stats.output_limit_disconnects.load(Ordering::Relaxed),
            ),
            None => (0, 0, 0),
        };
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{conns}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{rejected}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_forks:0\r\ntotal_error_replies:{}\r\nclient_output_buffer_limit_disconnections:{out_limit}\r\nauth_failures:{}\r\nhttp_requests:{}\r\n\r\n",
            stats.commands_processed(),
            stats.ops_rate.value().round() as u64,
            stats.net_in[0].load(Ordering::Relaxed),
            stats.net_out[0].load(Ordering::Relaxed),
            stats.in_rate.value() / 1024.0,
            stats.out_rate.value() / 1024.0,
            repl.full_syncs.load(Ordering::Relaxed),
            repl.partial_syncs.load(Ordering::Relaxed),
            repl.partial_refused.load(Ordering::Relaxed),
            kv.expired,
            kv.evicted,
            kv.hits,
            kv.misses,
            ps.channels,
            ps.glob_patterns + ps.topic_patterns,
            stats.errors.total(),
            stats.auth_failures.load(Ordering::Relaxed),
            stats.http.totals().iter().map(|t| t.calls + t.rejected).sum::<u64>(),
        );
    }
    if want("replication") {
        replication_info(&svc.replication, &mut s);
    }
    if want("cpu") {
        let (sys, user, csys, cuser) = cpu_seconds();
        let _ = write!(
            s,
            "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:{csys:.6}\r\nused_cpu_user_children:{cuser:.6}\r\n\r\n"
        );
    }
    if want("modules") {
        s.push_str("# Modules\r\n\r\n");
    }
    if want("commandstats") {
        s.push_str("# Commandstats\r\n");
        for (i, t) in stats.resp.totals().iter().enumerate() {
            if t.calls + t.rejected + t.failed == 0 {
                continue;
            }
            let usec = t.nanos / 1000;
            let _ = write!(
                s,
                "cmdstat_{}:calls={},usec={usec},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                COMMANDS[i].name,
                t.calls,
                if t.calls == 0 { 0.0 } else { t.nanos as f64 / 1000.0 / t.calls as f64 },
                t.rejected,
                t.failed
            );
        }
        s.push_str("\r\n");
    }
    if want("errorstats") {
        s.push_str("# Errorstats\r\n");
        for (code, n) in stats.errors.counts() {
            let _ = write!(s, "errorstat_{code}:count={n}\r\n");
        }
        s.push_str("\r\n");
    }
    if want("latencystats") {
        s.push_str("# Latencystats\r\n");
        for (i, t) in stats.resp.totals().iter().enumerate() {
            let (Some(p50), Some(p99), Some(p999)) =
                (t.percentile_usec(0.5), t.percentile_usec(0.99), t.percentile_usec(0.999))
            else {
                continue;
            };
            let _ = write!(
                s,
                "latency_percentiles_usec_{}:p50={p50:.3},p99={p99:.3},p99.9={p999:.3}\r\n",
                COMMANDS[i].name
            );
        }
        s.push_str("\r\n");
    }
    if want("cluster") {
        crate::resp::cluster_info_section(svc, &mut s);
    }
    if want("keyspace") {
        s.push_str("# Keyspace\r\n");
        for (db, keys, expires) in svc.engine.keyspace_sizes() {
            let avg_ttl = svc.engine.avg_ttl_ms(db);
            let _ = write!(s, "db{db}:keys={keys},expires={expires},avg_ttl={avg_ttl}\r\n");
        }
        s.push_str("\r\n");
    }
    if want("queues") {
        let max = svc.config.metrics.max_label_values;
        let (rows, total) = queue_stats(svc, max);
        let _ = write!(s, "# Queues\r\nqueues:{total}\r\n");
        for (name, f) in rows {
            let g = |k: &str| f.get(k).copied().unwrap_or(0);
            let _ = write!(
                s,
                "queue_{}:depth={},ready={},delayed={},in_flight={},consumers={},published={},acked={},nacked={},redelivered={},dead_lettered={},oldest_message_age_ms={}\r\n",
                field_name(&name),
                g("depth"),
                g("ready"),
                g("delayed"),
                g("in_flight"),
                g("consumers"),
                g("published"),
                g("acked"),
                g("nacked"),
                g("redelivered"),
                g("dead_lettered"),
                g("oldest_message_age_ms"),
            );
        }
        s.push_str("\r\n");
    }
    if want("streams") {
        let max = svc.config.metrics.max_label_values;
        let (rows, total) = stream_stats(svc, max);
        let _ = write!(s, "# Streams\r\nstreams:{total}\r\n");
        for r in rows {
            let g = |k: &str| r.fields.get(k).copied().unwrap_or(0);
            let lag: i64 = r.groups.iter().map(|(_, f)| f.get("lag").copied().unwrap_or(0)).sum();
            let _ = write!(
                s,
                "stream_{}:events={},bytes={},segments={},published={},partitions={},groups={},lag={lag}\r\n",
                field_name(&r.name),
                g("events"),
                g("bytes"),
                g("segments"),
                g("published"),
                g("partitions"),
                r.groups.len(),
            );
        }
        s.push_str("\r\n");
    }
    while s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    s
}

/// INFO's replication section, with Redis's fields (offsets are LSNs) and each replica's lag in records,
/// bytes and milliseconds.
fn replication_info(repl: &crate::replication::Replication, s: &mut String) {
    let last = repl.log.last_lsn();
    let links = repl.links();
    s.push_str("# Replication\r\n");
    if repl.is_replica() {
        let (host, port, _, up, ago, syncing) = repl.upstream();
        let _ = write!(
            s,
            "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{last}\r\nslave_repl_offset:{last}\r\nslave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nmaster_repl_lsn:{}\r\n",
            if up { "up" } else { "down" },
            if up { ago as i64 } else { -1 },
            u8::from(syncing),
            repl.primary_lsn(),
        );
    } else {
        s.push_str("role:master\r\n");
    }
    let _ = write!(s, "connected_slaves:{}\r\n", links.len());
    for (i, l) in links.iter().enumerate() {
        let (records, bytes, ms) = repl.lag(l);
        let state = if l.is_online() { "online" } else { "send_bulk" };
        let _ = write!(
            s,
            "slave{i}:ip={},port={},state={state},offset={},lag={},lag_records={records},lag_bytes={bytes},lag_ms={ms}\r\n",
            l.addr.ip(),
            l.port,
            l.acked.load(Ordering::Acquire),
            l.ack_age_secs(),
        );
    }
    let (replid, replid2, offset2) = repl.replid();
    let backlog = repl.log.backlog();
    let (first, _, held) = backlog.extent();
    let _ = write!(
        s,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{last}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{first}\r\nrepl_backlog_histlen:{held}\r\n\r\n",
        if replid.is_empty() { "0".repeat(40) } else { replid },
        if replid2.is_empty() { "0".repeat(40) } else { replid2 },
        if offset2 == 0 { -1 } else { offset2 as i64 + 1 },
        u8::from(backlog.enabled()),
        backlog.limit(),
    );
}

/// INFO's text as JSON (`GET /info`): `{section: {field: value}}`, numbers as numbers, `a=1,b=2` values
/// (keyspace, commandstats, replicas, queues) as objects.
pub fn info_json(text: &str) -> Value {
    let mut root = Map::new();
    let mut section: Option<(String, Map<String, Value>)> = None;
    for line in text.split("\r\n") {
        if let Some(name) = line.strip_prefix("# ") {
            if let Some((n, m)) = section.take() {
                // A section once: a repeated name never replaces the first.
                root.entry(n).or_insert(Value::Object(m));
            }
            section = Some((name.to_ascii_lowercase(), Map::new()));
            continue;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let Some((_, m)) = section.as_mut() else { continue };
        m.insert(k.to_string(), field_value(v));
    }
    if let Some((n, m)) = section.take() {
        root.entry(n).or_insert(Value::Object(m));
    }
    Value::Object(root)
}

fn scalar(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    Value::from(v)
}

fn field_value(v: &str) -> Value {
    // `keys=1,expires=0` (no spaces, every part k=v): an object.
    if v.contains('=')
        && !v.contains(' ')
        && v.split(',').all(|p| p.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
    {
        let mut m = Map::new();
        for p in v.split(',') {
            let (k, x) = p.split_once('=').expect("checked");
            m.insert(k.to_string(), scalar(x));
        }
        return Value::Object(m);
    }
    scalar(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_becomes_json_sections() {
        let text = "# Server\r\nredis_version:7.2.0\r\nuptime_in_seconds:12\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n\r\n# Commandstats\r\ncmdstat_get:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n# CPU\r\nused_cpu_sys:0.5\r\nused_memory_peak_perc:100.00%";
        let v = info_json(text);
        assert_eq!(v["server"]["redis_version"], "7.2.0");
        assert_eq!(v["server"]["uptime_in_seconds"], 12);
        assert_eq!(v["keyspace"]["db0"]["keys"], 3);
        assert_eq!(v["keyspace"]["db0"]["expires"], 1);
        assert_eq!(v["commandstats"]["cmdstat_get"]["usec_per_call"], 1.5);
        assert_eq!(v["cpu"]["used_cpu_sys"], 0.5);
        assert_eq!(v["cpu"]["used_memory_peak_perc"], "100.00%");
        let v = info_json("# Replication\r\nrole:master\r\n# Replication\r\nrole:slave\r\n");
        assert_eq!(v["replication"]["role"], "master");
    }

    #[test]
    fn names_cannot_forge_fields() {
        assert_eq!(field_name(b"jobs.eu-1_x"), "jobs.eu-1_x");
        assert_eq!(field_name(b"a\r\n# Replication\r\nrole:slave"), "a%0D%0A%23%20Replication%0D%0Arole%3Aslave");
        assert_eq!(field_name(b"q=1,x"), "q%3D1%2Cx");
    }
}
