//! `GET /metrics`: the server's state in the Prometheus text format.
//!
//! Counters and gauges are read from the engine and the front ends at scrape time and written through
//! the `metrics` facade into a recorder of `metrics-exporter-prometheus` made for this scrape alone
//! (which formats and escapes them; no series outlives what it describes: a deleted queue's lines go with
//! it). The latency histograms are kept by the server itself (per-thread counters on the command path,
//! see `crate::stats`) and written here in the same format with the exporter's formatting helpers, since
//! the exporter only builds histograms from samples it records itself.
//!
//! Cardinality is bounded: per-queue, per-stream and per-replica series for at most
//! `metrics.max_label_values` of each (by name); the rest are added up under the label value `_other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_exporter_prometheus::formatting::{sanitize_label_value, write_help_line, write_type_line};
use synap_core::command::table::COMMANDS;
use synap_core::histogram::{BUCKETS, bucket_bound};

use crate::info::{allocator_bytes, cpu_seconds, queue_stats, stream_stats};
use crate::service::Service;
use crate::stats::Totals;

/// The label value for everything past `metrics.max_label_values`.
pub const OTHER: &str = "_other";

/// The component a command belongs to (`component` label): its command group, strings and generic key
/// commands as `kv`.
pub fn component(index: usize) -> &'static str {
    match COMMANDS[index].group {
        "string" | "generic" | "bitmap" | "hyperloglog" => "kv",
        "sorted-set" => "zset",
        g => g,
    }
}

/// Renders every metric (call on a blocking thread: it walks every queue and stream).
pub fn render(svc: &Service) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || record(svc));
    let mut out = handle.render();
    histograms(svc, &mut out);
    out
}

fn record(svc: &Service) {
    let st = &svc.stats;
    let max = svc.config.metrics.max_label_values;
    describe_gauge!("synap_uptime_seconds", "Seconds since the server started.");
    gauge!("synap_uptime_seconds").set(svc.uptime_secs() as f64);
    describe_gauge!("synap_info", "Always 1; the labels name the version and role.");
    let role = if svc.replication.is_replica() { "replica" } else { "primary" };
    gauge!("synap_info", "version" => env!("CARGO_PKG_VERSION"), "role" => role).set(1.0);

    // Front ends.
    describe_gauge!("synap_connections_active", "Open client connections, by protocol.");
    describe_counter!("synap_connections_total", "Client connections accepted, by protocol.");
    describe_counter!(
        "synap_connections_rejected_total",
        "Client connections refused (connection limit, protected mode), by protocol."
    );
    let resp = svc.resp.get().and_then(|w| w.upgrade());
    if let Some(r) = &resp {
        gauge!("synap_connections_active", "protocol" => "resp").set(r.connected() as f64);
        counter!("synap_connections_total", "protocol" => "resp")
            .absolute(r.stats.connections_received.load(Ordering::Relaxed));
        counter!("synap_connections_rejected_total", "protocol" => "resp")
            .absolute(r.stats.rejected_connections.load(Ordering::Relaxed));
        describe_gauge!("synap_blocked_clients", "RESP clients waiting in a blocking command.");
        gauge!("synap_blocked_clients").set(r.stats.blocked_clients.load(Ordering::Relaxed) as f64);
        describe_counter!(
            "synap_client_output_limit_disconnections_total",
            "RESP clients closed for exceeding an output limit (slow subscribers included)."
        );
        counter!("synap_client_output_limit_disconnections_total")
            .absolute(r.stats.output_limit_disconnects.load(Ordering::Relaxed));
    }
    let http = &svc.http_stats;
    gauge!("synap_connections_active", "protocol" => "http").set(http.open() as f64);
    counter!("synap_connections_total", "protocol" => "http")
        .absolute(http.connections_received.load(Ordering::Relaxed));
    counter!("synap_connections_rejected_total", "protocol" => "http")
        .absolute(http.rejected_connections.load(Ordering::Relaxed));
    describe_counter!(
        "synap_net_input_bytes_total",
        "Bytes read from clients (RESP: everything; HTTP: request bodies of known size)."
    );
    describe_counter!(
        "synap_net_output_bytes_total",
        "Bytes written to clients (RESP: everything; HTTP: response bodies of known size)."
    );
    for (i, protocol) in ["resp", "http"].into_iter().enumerate() {
        counter!("synap_net_input_bytes_total", "protocol" => protocol).absolute(st.net_in[i].load(Ordering::Relaxed));
        counter!("synap_net_output_bytes_total", "protocol" => protocol)
            .absolute(st.net_out[i].load(Ordering::Relaxed));
    }
    describe_counter!("synap_auth_failures_total", "Failed logins (RESP AUTH, HTTP credentials and API keys).");
    counter!("synap_auth_failures_total").absolute(st.auth_failures.load(Ordering::Relaxed));
    describe_counter!("synap_errors_total", "Error replies, by protocol and error code (RESP: INFO errorstats).");
    for (protocol, errors) in [("resp", &st.errors), ("http", &st.http_errors)] {
        for (code, n) in errors.counts() {
            counter!("synap_errors_total", "protocol" => protocol, "code" => code).absolute(n);
        }
    }

    // Operations, by front end, component and command.
    describe_counter!(
        "synap_operations_total",
        "Commands by protocol, component, operation and result (ok, error: ran and failed, rejected: refused before running)."
    );
    for (protocol, totals) in [("resp", st.resp.totals()), ("http", st.http.totals())] {
        for (i, t) in totals.iter().enumerate() {
            if t.calls + t.rejected == 0 {
                continue;
            }
            let (c, op) = (component(i), COMMANDS[i].name);
            for (result, n) in [("ok", t.calls - t.failed.min(t.calls)), ("error", t.failed), ("rejected", t.rejected)]
            {
                if n > 0 {
                    counter!("synap_operations_total", "protocol" => protocol, "component" => c, "operation" => op, "result" => result)
                        .absolute(n);
                }
            }
        }
    }
    describe_gauge!("synap_slowlog_length", "Entries in SLOWLOG.");
    gauge!("synap_slowlog_length").set(st.slowlog.len() as f64);

    // Keyspace and memory.
    let kv = svc.engine.kv_stats();
    describe_gauge!("synap_keys", "Keys, by database.");
    describe_gauge!("synap_keys_expiring", "Keys with an expiry, by database.");
    for (db, keys, expires) in svc.engine.keyspace_sizes() {
        let db = db.to_string();
        gauge!("synap_keys", "db" => db.clone()).set(keys as f64);
        gauge!("synap_keys_expiring", "db" => db).set(expires as f64);
    }
    describe_counter!("synap_keyspace_hits_total", "Reads that found their key.");
    describe_counter!("synap_keyspace_misses_total", "Reads that did not find their key.");
    describe_counter!("synap_expired_keys_total", "Keys removed because they expired.");
    describe_counter!("synap_evicted_keys_total", "Keys removed to stay under the memory limit.");
    counter!("synap_keyspace_hits_total").absolute(kv.hits);
    counter!("synap_keyspace_misses_total").absolute(kv.misses);
    counter!("synap_expired_keys_total").absolute(kv.expired);
    counter!("synap_evicted_keys_total").absolute(kv.evicted);
    let (allocated, _, resident) = allocator_bytes();
    describe_gauge!("synap_memory_used_bytes", "Memory the data uses (INFO used_memory).");
    gauge!("synap_memory_used_bytes").set(svc.engine.used_memory() as f64);
    describe_gauge!("synap_memory_bytes", "Memory the data uses, by service.");
    gauge!("synap_memory_bytes", "service" => "kv").set(kv.used_memory as f64);
    gauge!("synap_memory_bytes", "service" => "queue").set(svc.engine.queues().used_memory() as f64);
    gauge!("synap_memory_bytes", "service" => "stream").set(svc.engine.streams().used_memory() as f64);
    describe_gauge!("synap_memory_max_bytes", "The memory limit (kv.max_memory; 0: none).");
    gauge!("synap_memory_max_bytes").set(kv.max_memory as f64);
    describe_gauge!("synap_memory_allocated_bytes", "Bytes the allocator handed out.");
    gauge!("synap_memory_allocated_bytes").set(allocated as f64);
    describe_gauge!("synap_memory_resident_bytes", "Bytes the allocator holds resident.");
    gauge!("synap_memory_resident_bytes").set(resident as f64);

    persistence(svc);
    queues(svc, max);
    streams(svc, max);
    pubsub(svc);
    replication(svc, max);
}

fn persistence(svc: &Service) {
    describe_gauge!("synap_persistence_enabled", "1 when writes go to the write-ahead log.");
    gauge!("synap_persistence_enabled").set(if svc.persistence.is_some() { 1.0 } else { 0.0 });
    describe_gauge!("synap_recovery_duration_seconds", "How long recovery took at start.");
    gauge!("synap_recovery_duration_seconds").set(svc.stats.recovery_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    let Some(p) = &svc.persistence else { return };
    let wal = p.wal();
    let ws = wal.stats();
    describe_gauge!(
        "synap_persistence_failed",
        "1 once the log failed (a write or fsync error): writes are refused until restart."
    );
    gauge!("synap_persistence_failed").set(if wal.failure().is_some() { 1.0 } else { 0.0 });
    describe_counter!("synap_wal_records_total", "Records written to the write-ahead log.");
    describe_counter!("synap_wal_bytes_total", "Bytes written to the write-ahead log.");
    describe_counter!("synap_wal_fsyncs_total", "fsyncs of the write-ahead log.");
    counter!("synap_wal_records_total").absolute(ws.records.load(Ordering::Relaxed));
    counter!("synap_wal_bytes_total").absolute(ws.bytes.load(Ordering::Relaxed));
    counter!("synap_wal_fsyncs_total").absolute(ws.fsyncs.load(Ordering::Relaxed));
    describe_gauge!("synap_wal_last_fsync_timestamp_seconds", "When the last fsync of the log finished (Unix time).");
    gauge!("synap_wal_last_fsync_timestamp_seconds").set(ws.last_fsync_unix_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    describe_gauge!("synap_wal_last_lsn", "The last log sequence number written.");
    gauge!("synap_wal_last_lsn").set(wal.last_lsn() as f64);
    describe_gauge!("synap_changes_since_snapshot", "Log records since the last snapshot.");
    gauge!("synap_changes_since_snapshot").set(p.writes_since_snapshot() as f64);
    let snap = &p.snapshot_stats;
    describe_counter!("synap_snapshots_total", "Snapshots written.");
    describe_counter!("synap_snapshot_failures_total", "Snapshots that failed.");
    counter!("synap_snapshots_total").absolute(snap.written.load(Ordering::Relaxed));
    counter!("synap_snapshot_failures_total").absolute(snap.failed.load(Ordering::Relaxed));
    describe_gauge!("synap_snapshot_last_duration_seconds", "How long the last snapshot took.");
    gauge!("synap_snapshot_last_duration_seconds").set(snap.last_millis.load(Ordering::Relaxed) as f64 / 1000.0);
    describe_gauge!("synap_snapshot_last_size_bytes", "The size of the last snapshot.");
    gauge!("synap_snapshot_last_size_bytes").set(snap.last_bytes.load(Ordering::Relaxed) as f64);
    describe_gauge!("synap_snapshot_last_timestamp_seconds", "When the last snapshot was written (Unix time).");
    gauge!("synap_snapshot_last_timestamp_seconds").set(p.last_save_unix() as f64);
}

/// Adds `b` into `a`, field by field.
fn add_into(a: &mut BTreeMap<String, i64>, b: &BTreeMap<String, i64>) {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += v;
    }
}

fn queues(svc: &Service, max: usize) {
    let (rows, total) = queue_stats(svc, usize::MAX);
    describe_gauge!("synap_queues", "Queues.");
    gauge!("synap_queues").set(total as f64);
    let mut shown: Vec<(String, BTreeMap<String, i64>)> = Vec::new();
    let mut other: Option<BTreeMap<String, i64>> = None;
    for (i, (name, f)) in rows.into_iter().enumerate() {
        if i < max {
            shown.push((String::from_utf8_lossy(&name).into_owned(), f));
        } else {
            // The oldest message of the rest is the oldest of any of them; the other numbers add up.
            let o = other.get_or_insert_with(BTreeMap::new);
            let oldest = o.get("oldest_message_age_ms").copied().unwrap_or(0);
            add_into(o, &f);
            o.insert("oldest_message_age_ms".into(), oldest.max(f.get("oldest_message_age_ms").copied().unwrap_or(0)));
        }
    }
    if let Some(o) = other {
        shown.push((OTHER.into(), o));
    }
    let gauges = [
        ("synap_queue_depth", "depth", "Messages in the queue (ready, delayed and in flight)."),
        ("synap_queue_ready", "ready", "Messages ready for delivery."),
        ("synap_queue_delayed", "delayed", "Messages waiting for their delay."),
        ("synap_queue_in_flight", "in_flight", "Messages delivered and not yet acknowledged."),
        ("synap_queue_consumers", "consumers", "Consumers seen recently."),
    ];
    let counters = [
        ("synap_queue_published_total", "published", "Messages published."),
        ("synap_queue_delivered_total", "delivered", "Deliveries."),
        ("synap_queue_acked_total", "acked", "Messages acknowledged."),
        ("synap_queue_nacked_total", "nacked", "Messages refused by a consumer."),
        ("synap_queue_redelivered_total", "redelivered", "Messages delivered again (nack or deadline)."),
        ("synap_queue_dead_lettered_total", "dead_lettered", "Messages moved to the dead-letter queue."),
    ];
    for (name, _, help) in gauges {
        describe_gauge!(name, help);
    }
    for (name, _, help) in counters {
        describe_counter!(name, help);
    }
    describe_gauge!("synap_queue_oldest_message_age_seconds", "Age of the oldest message in the queue.");
    for (queue, f) in shown {
        let g = |k: &str| f.get(k).copied().unwrap_or(0);
        for (name, field, _) in gauges {
            gauge!(name, "queue" => queue.clone()).set(g(field) as f64);
        }
        for (name, field, _) in counters {
            counter!(name, "queue" => queue.clone()).absolute(g(field).max(0) as u64);
        }
        gauge!("synap_queue_oldest_message_age_seconds", "queue" => queue.clone())
            .set(g("oldest_message_age_ms") as f64 / 1000.0);
    }
}

fn streams(svc: &Service, max: usize) {
    let (rows, total) = stream_stats(svc, usize::MAX);
    describe_gauge!("synap_streams", "Streams.");
    gauge!("synap_streams").set(total as f64);
    describe_gauge!("synap_stream_events", "Events a stream holds.");
    describe_gauge!("synap_stream_bytes", "Bytes of the events a stream holds.");
    describe_gauge!("synap_stream_segments", "Segment files of a stream.");
    describe_counter!("synap_stream_published_total", "Events published to a stream.");
    describe_counter!(
        "synap_stream_removed_total",
        "Events no longer held: removed by retention or trimming (published minus held)."
    );
    describe_gauge!(
        "synap_stream_group_lag",
        "Events a consumer group has not acknowledged (undelivered and pending)."
    );
    describe_gauge!("synap_stream_group_pending", "Events delivered to a consumer group and not acknowledged.");
    describe_gauge!("synap_stream_group_consumers", "Consumers of a consumer group.");
    let mut other: Option<BTreeMap<String, i64>> = None;
    let mut other_groups: Option<BTreeMap<String, i64>> = None;
    // Groups share one budget of series across every stream.
    let mut groups_shown = 0;
    for (i, r) in rows.into_iter().enumerate() {
        if i >= max {
            add_into(other.get_or_insert_with(BTreeMap::new), &r.fields);
            for (_, f) in &r.groups {
                add_into(other_groups.get_or_insert_with(BTreeMap::new), f);
            }
            continue;
        }
        let name = String::from_utf8_lossy(&r.name).into_owned();
        stream_lines(&name, &r.fields);
        for (group, f) in &r.groups {
            if groups_shown >= max {
                add_into(other_groups.get_or_insert_with(BTreeMap::new), f);
                continue;
            }
            groups_shown += 1;
            let g = |k: &str| f.get(k).copied().unwrap_or(0) as f64;
            let group = String::from_utf8_lossy(group).into_owned();
            gauge!("synap_stream_group_lag", "stream" => name.clone(), "group" => group.clone()).set(g("lag"));
            gauge!("synap_stream_group_pending", "stream" => name.clone(), "group" => group.clone()).set(g("pending"));
            gauge!("synap_stream_group_consumers", "stream" => name.clone(), "group" => group).set(g("consumers"));
        }
    }
    if let Some(o) = other {
        stream_lines(OTHER, &o);
    }
    if let Some(f) = other_groups {
        let g = |k: &str| f.get(k).copied().unwrap_or(0) as f64;
        gauge!("synap_stream_group_lag", "stream" => OTHER, "group" => OTHER).set(g("lag"));
        gauge!("synap_stream_group_pending", "stream" => OTHER, "group" => OTHER).set(g("pending"));
        gauge!("synap_stream_group_consumers", "stream" => OTHER, "group" => OTHER).set(g("consumers"));
    }
}

fn stream_lines(name: &str, f: &BTreeMap<String, i64>) {
    let g = |k: &str| f.get(k).copied().unwrap_or(0);
    gauge!("synap_stream_events", "stream" => name.to_string()).set(g("events") as f64);
    gauge!("synap_stream_bytes", "stream" => name.to_string()).set(g("bytes") as f64);
    gauge!("synap_stream_segments", "stream" => name.to_string()).set(g("segments") as f64);
    counter!("synap_stream_published_total", "stream" => name.to_string()).absolute(g("published").max(0) as u64);
    counter!("synap_stream_removed_total", "stream" => name.to_string())
        .absolute((g("published") - g("events")).max(0) as u64);
}

fn pubsub(svc: &Service) {
    let ps = svc.engine.pubsub().stats();
    describe_gauge!("synap_pubsub_channels", "Channels with at least one subscriber.");
    describe_gauge!("synap_pubsub_patterns", "Pattern subscriptions (glob and topic patterns).");
    describe_gauge!("synap_pubsub_subscribers", "Subscribers (RESP clients, WebSocket and SSE sessions).");
    describe_counter!("synap_pubsub_published_total", "Messages published.");
    describe_counter!("synap_pubsub_delivered_total", "Messages handed to subscribers.");
    describe_counter!("synap_pubsub_dropped_total", "Messages dropped for subscribers too slow to take them.");
    describe_counter!("synap_pubsub_slow_disconnects_total", "Subscribers disconnected for being too slow.");
    gauge!("synap_pubsub_channels").set(ps.channels as f64);
    gauge!("synap_pubsub_patterns").set((ps.glob_patterns + ps.topic_patterns) as f64);
    gauge!("synap_pubsub_subscribers").set(ps.subscribers as f64);
    counter!("synap_pubsub_published_total").absolute(ps.published);
    counter!("synap_pubsub_delivered_total").absolute(ps.delivered);
    counter!("synap_pubsub_dropped_total").absolute(ps.dropped);
    counter!("synap_pubsub_slow_disconnects_total").absolute(ps.disconnected);
}

fn replication(svc: &Service, max: usize) {
    let repl = &svc.replication;
    describe_gauge!("synap_replication_connected_replicas", "Replicas connected to this node.");
    describe_gauge!("synap_replication_offset", "This node's log position (LSN).");
    describe_gauge!("synap_replication_link_up", "On a replica: 1 while the link to its primary is up.");
    describe_gauge!("synap_replication_lag_ms", "How far a replica is behind, in milliseconds.");
    describe_gauge!("synap_replication_lag_records", "How far a replica is behind, in log records.");
    describe_gauge!("synap_replication_lag_bytes", "How far a replica is behind, in bytes.");
    describe_gauge!("synap_replication_replica_online", "1 once a replica streams (0 while it copies).");
    gauge!("synap_replication_offset").set(repl.log.last_lsn() as f64);
    if repl.is_replica() {
        let (_, _, _, up, _, _) = repl.upstream();
        gauge!("synap_replication_link_up").set(if up { 1.0 } else { 0.0 });
    }
    let links = repl.links();
    gauge!("synap_replication_connected_replicas").set(links.len() as f64);
    let mut other: Option<(u64, u64, u64)> = None;
    for (i, l) in links.iter().enumerate() {
        let (records, bytes, ms) = repl.lag(l);
        if i >= max {
            let o = other.get_or_insert((0, 0, 0));
            *o = (o.0.max(records), o.1.max(bytes), o.2.max(ms));
            continue;
        }
        let replica = format!("{}:{}", l.addr.ip(), l.port);
        gauge!("synap_replication_lag_ms", "replica" => replica.clone()).set(ms as f64);
        gauge!("synap_replication_lag_records", "replica" => replica.clone()).set(records as f64);
        gauge!("synap_replication_lag_bytes", "replica" => replica.clone()).set(bytes as f64);
        gauge!("synap_replication_replica_online", "replica" => replica).set(if l.is_online() { 1.0 } else { 0.0 });
    }
    // The rest: the worst of them.
    if let Some((records, bytes, ms)) = other {
        gauge!("synap_replication_lag_ms", "replica" => OTHER).set(ms as f64);
        gauge!("synap_replication_lag_records", "replica" => OTHER).set(records as f64);
        gauge!("synap_replication_lag_bytes", "replica" => OTHER).set(bytes as f64);
    }
}

/// `le` of every fourth bucket (powers of two microseconds), in seconds.
fn le(i: usize) -> String {
    format!("{}", bucket_bound(i) as f64 / 1e9)
}

/// Writes one histogram series: cumulative buckets at each power of two microseconds, `+Inf`, sum and
/// count.
fn histogram_series(out: &mut String, name: &str, labels: &str, hist: &[u64], sum_nanos: u64) {
    let mut cumulative = 0u64;
    for (i, n) in hist.iter().enumerate().take(BUCKETS - 1) {
        cumulative += n;
        if i % 4 == 0 {
            let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"{}\"}} {cumulative}", sep(labels), le(i));
        }
    }
    cumulative += hist.get(BUCKETS - 1).copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"+Inf\"}} {cumulative}", sep(labels));
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {}", sum_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

fn sep(labels: &str) -> &'static str {
    if labels.is_empty() { "" } else { "," }
}

fn histograms(svc: &Service, out: &mut String) {
    // CPU time is a fraction of seconds (the facade's counters are integers): written here.
    const CPU: &str = "synap_cpu_seconds_total";
    let (sys, user, _, _) = cpu_seconds();
    write_help_line(out, CPU, None, None, "CPU time the process used, by mode.");
    write_type_line(out, CPU, None, None, "counter");
    let _ = writeln!(out, "{CPU}{{mode=\"user\"}} {user}");
    let _ = writeln!(out, "{CPU}{{mode=\"system\"}} {sys}");
    const OPS: &str = "synap_operation_duration_seconds";
    write_help_line(
        out,
        OPS,
        None,
        None,
        "How long commands took to run, by protocol, component and operation (refused commands are not timed).",
    );
    write_type_line(out, OPS, None, None, "histogram");
    let st = &svc.stats;
    for (protocol, totals) in [("resp", st.resp.totals()), ("http", st.http.totals())] {
        for (i, t) in totals.iter().enumerate() {
            let Totals { hist, nanos, .. } = t;
            if t.timed() == 0 {
                continue;
            }
            let labels = format!(
                "protocol=\"{protocol}\",component=\"{}\",operation=\"{}\"",
                sanitize_label_value(component(i)),
                sanitize_label_value(COMMANDS[i].name)
            );
            histogram_series(out, OPS, &labels, hist, *nanos);
        }
    }
    if let Some(p) = &svc.persistence {
        const FSYNC: &str = "synap_wal_fsync_duration_seconds";
        write_help_line(out, FSYNC, None, None, "How long each fsync of the write-ahead log took.");
        write_type_line(out, FSYNC, None, None, "histogram");
        let h = &p.wal().stats().fsync_time;
        histogram_series(out, FSYNC, "", &h.counts(), h.sum_nanos.load(Ordering::Relaxed));
    }
}
