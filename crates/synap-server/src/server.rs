//! Starting and stopping a server: binds the listeners, spawns the background tasks, and shuts down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use synap_core::{Engine, SystemClock};
use synap_storage::{Backlog, FsStorage, MemoryLog, Persistence, ReplicatedLog, Storage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::Config;
use crate::http;
use crate::replication::{Gate, Replication, Roles, Store};
use crate::resp::{self, RespShared};
use crate::service::Service;

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    /// The RESP address, when RESP is enabled.
    pub resp_addr: Option<SocketAddr>,
    /// The cluster port's address, when `cluster.enabled`.
    pub cluster_addr: Option<String>,
    /// The TLS RESP port's address, when `tls.resp_addr` is set.
    pub tls_resp_addr: Option<SocketAddr>,
    /// The metrics listener's address, when `metrics.addr` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub service: Arc<Service>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Binds every listener (port 0 picks a free port) and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
        RunningServer::start_with_storage(config, Arc::new(FsStorage)).await
    }

    /// Like [`RunningServer::start`], persisting through `storage` (tests inject failures this way).
    pub async fn start_with_storage(config: Config, storage: Arc<dyn Storage>) -> anyhow::Result<RunningServer> {
        RunningServer::start_with_clock(config, storage, Arc::new(SystemClock)).await
    }

    /// Like [`RunningServer::start_with_storage`], on `clock` (tests skew a replica's clock this way).
    pub async fn start_with_clock(
        mut config: Config,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn synap_core::Clock>,
    ) -> anyhow::Result<RunningServer> {
        if let Some(limit) = crate::fdlimit::raise_nofile_limit() {
            let notes = crate::fdlimit::fit(&mut config, limit);
            if !notes.is_empty() {
                tracing::warn!(limit, lowered = ?notes, "open-file limit too low for the configured caps; lowered them");
            }
        }
        let config = Arc::new(config);
        let engine = Arc::new(Engine::new(config.engine_config(), clock, None));
        engine.scripts().set_busy_ms(config.resp.busy_reply_threshold_ms);
        config.kv.encodings.apply();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let primary = config.replication.primary()?;
        let roles = Arc::new(if config.cluster.enabled {
            Roles::cluster_member(config.cluster.node_id, config.replication.min_replicas_to_ack)
        } else {
            Roles::new(primary.as_ref().map(|(h, p)| format!("{h}:{p}")), config.replication.min_replicas_to_ack)
        });
        let backlog = Arc::new(Backlog::new(config.replication.backlog_bytes.0 as usize, 1));
        let mut recovery_ms = 0;
        let (persistence, log, store): (_, Arc<dyn ReplicatedLog>, _) = if config.persistence.enabled {
            let (cfg, e) = (config.persistence_config(), engine.clone());
            let (gate_roles, gate_backlog) = (roles.clone(), backlog.clone());
            let attach = move |wal: Arc<synap_storage::Wal>| -> Arc<dyn synap_core::MutationLog> {
                wal.attach_backlog(gate_backlog);
                Arc::new(Gate { log: wal, roles: gate_roles })
            };
            let (p, report) = tokio::task::spawn_blocking(move || Persistence::open_with(cfg, storage, e, attach))
                .await?
                .with_context(|| format!("cannot recover from data directory {}", config.data_dir.display()))?;
            info!(
                snapshot = ?report.snapshot,
                snapshot_entries = report.snapshot_entries,
                records_replayed = report.records_replayed,
                truncated_bytes = report.truncated_bytes,
                last_lsn = report.last_lsn,
                keys = engine.kv_stats().keys,
                millis = report.millis,
                "recovery complete"
            );
            recovery_ms = report.millis;
            let p = Arc::new(p);
            (Some(p.clone()), p.wal().clone() as Arc<dyn ReplicatedLog>, Store::Disk(p))
        } else {
            let mem = Arc::new(MemoryLog::new(backlog));
            if engine.attach_log(Arc::new(Gate { log: mem.clone(), roles: roles.clone() })).is_err() {
                anyhow::bail!("the engine already has a mutation log");
            }
            (None, mem.clone() as Arc<dyn ReplicatedLog>, Store::Memory(mem))
        };
        let state_path = config.persistence.enabled.then(|| config.data_dir.join("replication.state"));
        let ack_timeout = Duration::from_millis(config.replication.ack_timeout_ms);
        let replication =
            Replication::new(engine.clone(), roles.clone(), log, store, state_path, ack_timeout, shutdown_rx.clone());
        replication.persist_ids().await.map_err(anyhow::Error::msg)?;
        if !config.replication.primary_password.0.is_empty() {
            *replication.primary_auth.lock() =
                Some((config.replication.primary_user.clone(), config.replication.primary_password.0.clone()));
        }
        // requirepass: this node's default user takes the password (hashed once, off the runtime).
        if !config.auth.requirepass.is_empty() {
            let pass = config.auth.requirepass.clone();
            let hash = tokio::task::spawn_blocking(move || synap_core::acl::hash_password(pass.as_bytes())).await?;
            engine.acl().pin_default_password(Some(hash));
        }
        let service = Arc::new(Service::new(
            engine.clone(),
            config.clone(),
            persistence.clone(),
            replication.clone(),
            shutdown_rx.clone(),
        ));
        service.stats.recovery_ms.store(recovery_ms, std::sync::atomic::Ordering::Relaxed);
        let mut tasks = Vec::new();
        tasks.push(spawn_stats_sampler(service.clone(), shutdown_rx.clone()));
        let tls_cfg = config.tls.clone();
        let tls = tokio::task::spawn_blocking(move || crate::tls::Tls::load(&tls_cfg)).await??;
        if let Some(t) = &tls {
            tasks.push(tokio::spawn(t.clone().watch(shutdown_rx.clone())));
            if config.tls.replication {
                *replication.tls.lock() = Some(t.clone());
            }
        }

        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot bind HTTP listener on {}", config.http_addr))?;
        let http_addr = listener.local_addr()?;
        let app = http::router(service.clone());
        let limits = http::serve::Limits {
            max_connections: config.http.max_connections,
            header_timeout: Duration::from_secs(config.http.header_timeout_secs),
        };
        tasks.push(tokio::spawn(http::serve::serve(
            listener,
            app,
            limits,
            service.http_stats.clone(),
            shutdown_rx.clone(),
            tls.clone().filter(|t| t.http()),
        )));

        // `metrics.addr`: `/metrics` on an address of its own (for a scraper on another network).
        let metrics_addr = match config.metrics.addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot bind the metrics listener on {addr}"))?;
                let bound = listener.local_addr()?;
                tasks.push(tokio::spawn(http::serve::serve(
                    listener,
                    http::metrics_router(service.clone()),
                    http::serve::Limits { max_connections: 64, header_timeout: Duration::from_secs(10) },
                    Arc::new(http::serve::HttpStats::default()),
                    shutdown_rx.clone(),
                    None,
                )));
                Some(bound)
            }
            None => None,
        };

        let mut tls_resp_addr = None;
        let resp_addr = if config.resp.enabled {
            let listener = TcpListener::bind(config.resp_addr)
                .await
                .with_context(|| format!("cannot bind RESP listener on {}", config.resp_addr))?;
            let bound = listener.local_addr()?;
            let shared = Arc::new(RespShared {
                service: service.clone(),
                clients: Default::default(),
                next_id: Default::default(),
                stats: Default::default(),
                started: std::time::Instant::now(),
                bound,
                idle_timeout_secs: config.resp.idle_timeout_secs.into(),
                monitors: Default::default(),
                paused_until_ms: 0.into(),
                pause_writes_only: false.into(),
                unpaused: Default::default(),
                conn_limit: Arc::new(tokio::sync::Semaphore::new(config.resp.max_connections)),
            });
            let _ = service.resp.set(Arc::downgrade(&shared));
            // MONITOR shows what scripts call, as `[db lua]` lines (the monitors alone: no cycle through
            // the engine).
            let monitors = shared.monitors.clone();
            engine.set_script_monitor(Box::new(move |db, args| {
                if monitors.active() {
                    monitors.feed(0, db, "lua", args);
                }
            }));
            // The TLS port (Redis's `tls-port`), beside the plain one, with the same clients.
            if let (Some(t), Some(addr)) = (&tls, config.tls.resp_addr) {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot bind the TLS RESP listener on {addr}"))?;
                tls_resp_addr = Some(listener.local_addr()?);
                tasks.push(tokio::spawn(resp::serve(listener, shared.clone(), shutdown_rx.clone(), Some(t.clone()))));
            }
            // `tls.resp_only`: the plain port is closed (Redis's `port 0` beside a `tls-port`); the TLS
            // port is then the RESP address.
            let served = match tls_resp_addr {
                Some(t) if config.tls.resp_only => {
                    drop(listener);
                    t
                }
                _ => {
                    tasks.push(tokio::spawn(resp::serve(listener, shared, shutdown_rx.clone(), None)));
                    bound
                }
            };
            replication.announce_port.store(served.port().into(), std::sync::atomic::Ordering::Relaxed);
            Some(served)
        } else {
            None
        };
        // On a replica these passes change nothing (its log refuses local writes): expiry, queue deadlines
        // and stream retention come from its primary's records.
        tasks.push(spawn_active_expiry(engine.clone(), &config, shutdown_rx.clone()));
        tasks.push(spawn_queue_sweep(engine.clone(), &config, shutdown_rx.clone()));
        tasks.push(spawn_stream_retention(engine.clone(), persistence.clone(), &config, shutdown_rx.clone()));
        if let Some((host, port)) = primary {
            replication.replicate_from(host, port).await.map_err(anyhow::Error::msg)?;
        }
        if let Some(p) = &persistence {
            tasks.push(spawn_snapshots(p.clone(), &config, shutdown_rx.clone()));
        }
        let cluster_addr = if config.cluster.enabled {
            let resp = resp_addr.ok_or_else(|| anyhow::anyhow!("cluster.enabled needs resp.enabled"))?;
            *replication.source_ip.lock() = config.cluster.source_ip()?;
            let dir = config.data_dir.join("cluster");
            let (cluster, cluster_tasks) = crate::cluster::Cluster::start(
                &config,
                &dir,
                replication.clone(),
                // Replicas follow this address: the TLS port when replication goes over TLS.
                match tls_resp_addr {
                    Some(t) if config.tls.replication => t.to_string(),
                    _ => resp.to_string(),
                },
                http_addr.to_string(),
                shutdown_rx.clone(),
                tls.clone().filter(|_| config.tls.cluster),
            )
            .await?;
            tasks.extend(cluster_tasks);
            let addr = cluster.addr();
            let _ = service.cluster.set(cluster);
            Some(addr)
        } else {
            None
        };
        info!(http = %http_addr, resp = ?resp_addr, data_dir = %config.data_dir.display(), "synap-server listening");
        Ok(RunningServer { http_addr, resp_addr, tls_resp_addr, cluster_addr, metrics_addr, service, shutdown, tasks })
    }

    /// Stops accepting, lets in-flight requests finish, waits for the background tasks, then takes the
    /// shutdown snapshot (if configured) and flushes and fsyncs the WAL.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(p) = self.service.persistence.clone() {
            let on_shutdown = self.service.config.persistence.snapshot.on_shutdown;
            let _ = tokio::task::spawn_blocking(move || {
                if on_shutdown
                    && p.writes_since_snapshot() > 0
                    && let Err(e) = p.snapshot()
                {
                    tracing::error!(error = %e, "shutdown snapshot failed");
                }
                p.shutdown();
            })
            .await;
        }
    }
}

/// Snapshots on a schedule: every `interval_secs` when anything was written, and after `after_writes` writes.
fn spawn_snapshots(p: Arc<Persistence>, config: &Config, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let cfg = config.persistence.snapshot.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let writes = p.writes_since_snapshot();
                    let by_time = cfg.interval_secs > 0 && last.elapsed().as_secs() >= cfg.interval_secs && writes > 0;
                    let by_count = cfg.after_writes > 0 && writes >= cfg.after_writes;
                    if by_time || by_count {
                        let p = p.clone();
                        match tokio::task::spawn_blocking(move || p.snapshot()).await {
                            Ok(Err(synap_storage::StorageError::SnapshotInProgress)) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "scheduled snapshot failed"),
                            Err(e) => tracing::error!(error = %e, "snapshot task panicked"),
                            Ok(Ok(_)) => {}
                        }
                        last = tokio::time::Instant::now();
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// The queue sweep: delayed messages become ready, expired deadlines redeliver, expired TTLs dead-letter.
fn spawn_queue_sweep(engine: Arc<Engine>, config: &Config, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let period = Duration::from_millis(config.queue.sweep_interval_ms);
    spawn_periodic(period, stop, move || {
        engine.queue_sweep();
    })
}

/// Stream retention by age and size, and removal of deleted streams' files once their deletion is durable.
fn spawn_stream_retention(
    engine: Arc<Engine>,
    persistence: Option<Arc<Persistence>>,
    config: &Config,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let period = Duration::from_millis(config.stream.retention_interval_ms);
    spawn_periodic(period, stop, move || {
        engine.stream_sweep();
        if let Some(p) = &persistence {
            p.purge_stream_files();
        }
    })
}

/// Active expiry: `hz` passes per second, each within its time budget.
fn spawn_active_expiry(engine: Arc<Engine>, config: &Config, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let period = Duration::from_millis(1000 / config.kv.active_expiry_hz.max(1) as u64);
    let budget = Duration::from_millis(config.kv.active_expiry_budget_ms);
    spawn_periodic(period, stop, move || {
        engine.maintenance(budget);
    })
}

/// Every 100 ms, as Redis's cron: the rates INFO reports (operations, bytes in and out per second), the
/// memory peak, and the longest WAL fsync since the last tick for LATENCY's `wal-fsync` event.
fn spawn_stats_sampler(service: Arc<Service>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let st = &service.stats;
            // Adding up every thread's command counters costs more than the rest: every 4th tick.
            if n.is_multiple_of(4) {
                st.ops_rate.sample(st.commands_processed());
            }
            n += 1;
            st.in_rate.sample(st.net_in[0].load(Ordering::Relaxed));
            st.out_rate.sample(st.net_out[0].load(Ordering::Relaxed));
            st.memory_peak.fetch_max(service.engine.used_memory() as u64, Ordering::Relaxed);
            if let Some(p) = &service.persistence {
                let longest = p.wal().stats().fsync_time.take_max();
                st.latency.sample("wal-fsync", longest.as_millis() as u64);
            }
        }
    })
}

/// Runs `job` every `period` until `stop`, on a blocking thread (jobs take shard or queue locks briefly and
/// must not occupy an async worker), never two runs at once.
fn spawn_periodic<F>(period: Duration, mut stop: watch::Receiver<bool>, job: F) -> JoinHandle<()>
where
    F: Fn() + Send + Sync + 'static,
{
    let job = Arc::new(job);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let job = job.clone();
                    let _ = tokio::task::spawn_blocking(move || job()).await;
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// What a client outside loopback is told while protected mode holds.
pub const PROTECTED_MESSAGE: &str = "Synap is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. To accept clients from other hosts, do one of: 1) set a password for the default user (`auth.requirepass` in the configuration, or CONFIG SET requirepass / ACL SETUSER default from a loopback client); 2) disable protected mode (`auth.protected_mode: false`) if the network is trusted.";

/// Whether a client at `ip` is refused by protected mode: on, the default user open (no password), and
/// the client not on loopback.
pub fn protected(service: &crate::service::Service, ip: std::net::IpAddr) -> bool {
    refused_by_protected_mode(service.config.auth.protected_mode, service.engine.acl().auth_required(), ip)
}

fn refused_by_protected_mode(protected_mode: bool, auth_required: bool, ip: std::net::IpAddr) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    protected_mode && !ip.is_loopback() && !auth_required
}

#[cfg(test)]
mod tests {
    use super::refused_by_protected_mode as refused;

    /// Protected mode refuses other hosts only while it is on and no password is set; loopback always
    /// gets in (IPv4, IPv6, and IPv4 mapped into IPv6).
    #[test]
    fn protected_mode_refuses_other_hosts_without_a_password() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for lo in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(!refused(true, false, ip(lo)), "{lo}");
        }
        for other in ["10.0.0.5", "192.168.1.2", "2001:db8::1", "::ffff:10.0.0.5"] {
            assert!(refused(true, false, ip(other)), "{other}");
            assert!(!refused(true, true, ip(other)), "{other} with a password");
            assert!(!refused(false, false, ip(other)), "{other} with protected mode off");
        }
    }
}
