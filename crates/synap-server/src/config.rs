//! Configuration: embedded defaults, then an optional YAML file, then `SYNAP_*` environment variables and
//! command-line flags (clap reads both). Unknown keys and bad values in the file fail start-up with a
//! message naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Deserializer, Serialize};
use synap_core::stream::StreamBackend;
use synap_core::{EngineConfig, EvictionPolicy, KvConfig};

/// A byte count written as a number or with a unit: `1024`, `64kb`, `512mb`, `2gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size '{s}': expected a number with an optional unit (b, kb, mb, gb)"))?;
        let mult: u64 = match unit.trim() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => {
                return Err(format!("invalid size unit '{other}' in '{s}': expected b, kb, mb or gb"));
            }
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("size '{s}' is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// The eviction policy as written in config (`allkeys-lru`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy(pub EvictionPolicy);

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Policy).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `synap_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: ByteSize,
    /// Most commands in one envelope pipeline.
    pub max_pipeline: usize,
    /// Most simultaneous HTTP connections (WebSocket and SSE included); more are answered 503 and closed.
    pub max_connections: usize,
    /// Longest a client may take to send a request's head, and longest a keep-alive connection may sit
    /// idle between requests (slowloris), in seconds.
    pub header_timeout_secs: u64,
    /// Longest a request body may pause between two reads, in seconds.
    pub body_timeout_secs: u64,
    /// Origins (`https://app.example.com`, or `*`) whose browser pages may call the API: cross-origin
    /// requests and WebSocket upgrades from any other origin are refused (403).
    pub cors_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback ones, when the listener is bound to
    /// loopback (a defence against DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: ByteSize(16 << 20),
            max_pipeline: 10_000,
            max_connections: 10_000,
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvSection {
    pub shards: usize,
    /// Number of databases (Redis's `databases`: SELECT 0 to databases - 1).
    pub databases: usize,
    /// Memory limit for the keyspace; 0 = none.
    pub max_memory: ByteSize,
    pub eviction_policy: Policy,
    pub eviction_samples: usize,
    pub max_key_bytes: ByteSize,
    pub max_value_bytes: ByteSize,
    /// Active expiry passes per second.
    pub active_expiry_hz: u32,
    /// Time budget of one active expiry pass, in milliseconds.
    pub active_expiry_budget_ms: u64,
    /// The compact encodings' thresholds (Redis's `*-max-listpack-*`, `set-max-intset-entries`).
    pub encodings: EncodingsSection,
}

/// The compact encodings' thresholds, under Redis's names with `_` for `-` (CONFIG SET changes them).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EncodingsSection {
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub list_max_listpack_size: i32,
}

impl Default for EncodingsSection {
    fn default() -> Self {
        EncodingsSection {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            list_max_listpack_size: -2,
        }
    }
}

impl EncodingsSection {
    /// Puts these thresholds in force (they hold for the whole process).
    pub fn apply(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &synap_core::kv::ENCODINGS;
        let size = |n: u64| n.min(i64::MAX as u64) as usize;
        e.hash_max_listpack_entries.store(size(self.hash_max_listpack_entries), Relaxed);
        e.hash_max_listpack_value.store(size(self.hash_max_listpack_value), Relaxed);
        e.zset_max_listpack_entries.store(size(self.zset_max_listpack_entries), Relaxed);
        e.zset_max_listpack_value.store(size(self.zset_max_listpack_value), Relaxed);
        e.set_max_intset_entries.store(size(self.set_max_intset_entries), Relaxed);
        e.set_max_listpack_entries.store(size(self.set_max_listpack_entries), Relaxed);
        e.set_max_listpack_value.store(size(self.set_max_listpack_value), Relaxed);
        e.list_max_listpack_size.store(self.list_max_listpack_size as i64, Relaxed);
    }

    /// The thresholds in force now.
    pub fn current() -> EncodingsSection {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &synap_core::kv::ENCODINGS;
        EncodingsSection {
            hash_max_listpack_entries: e.hash_max_listpack_entries.load(Relaxed) as u64,
            hash_max_listpack_value: e.hash_max_listpack_value.load(Relaxed) as u64,
            zset_max_listpack_entries: e.zset_max_listpack_entries.load(Relaxed) as u64,
            zset_max_listpack_value: e.zset_max_listpack_value.load(Relaxed) as u64,
            set_max_intset_entries: e.set_max_intset_entries.load(Relaxed) as u64,
            set_max_listpack_entries: e.set_max_listpack_entries.load(Relaxed) as u64,
            set_max_listpack_value: e.set_max_listpack_value.load(Relaxed) as u64,
            list_max_listpack_size: e.list_max_listpack_size.load(Relaxed) as i32,
        }
    }
}

impl Default for KvSection {
    fn default() -> Self {
        let kv = KvConfig::default();
        KvSection {
            shards: kv.shards,
            databases: kv.databases,
            max_memory: ByteSize(0),
            eviction_policy: Policy::default(),
            eviction_samples: kv.eviction_samples,
            max_key_bytes: ByteSize(kv.max_key_bytes as u64),
            max_value_bytes: ByteSize(kv.max_value_bytes as u64),
            active_expiry_hz: 10,
            active_expiry_budget_ms: 25,
            encodings: EncodingsSection::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    Always,
    #[default]
    Periodic,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecoverSetting {
    #[default]
    Strict,
    Truncate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSection {
    /// Seconds between scheduled snapshots (when anything was written); 0 = no timer.
    pub interval_secs: u64,
    /// Take a snapshot after this many writes; 0 = never by count.
    pub after_writes: u64,
    /// Snapshots kept on disk.
    pub keep: usize,
    /// Take a snapshot on graceful shutdown.
    pub on_shutdown: bool,
}

impl Default for SnapshotSection {
    fn default() -> Self {
        SnapshotSection { interval_secs: 300, after_writes: 1_000_000, keep: 2, on_shutdown: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceSection {
    pub enabled: bool,
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    /// WAL segment size before rotation.
    pub segment_bytes: ByteSize,
    /// What a corrupt record in the middle of the WAL does at start: stop (`strict`) or cut the log there.
    pub recover: RecoverSetting,
    pub snapshot: SnapshotSection,
}

impl Default for PersistenceSection {
    fn default() -> Self {
        PersistenceSection {
            enabled: true,
            fsync: FsyncMode::Periodic,
            fsync_interval_ms: 10,
            segment_bytes: ByteSize(64 << 20),
            recover: RecoverSetting::Strict,
            snapshot: SnapshotSection::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespSection {
    /// Serve RESP at all.
    pub enabled: bool,
    /// Most simultaneous RESP clients; more are refused with `-ERR max number of clients reached`.
    pub max_connections: usize,
    /// Close a client idle this long (0 = never, as Redis's `timeout 0`).
    pub idle_timeout_secs: u64,
    /// Largest single argument (Redis `proto-max-bulk-len`).
    pub max_bulk_bytes: ByteSize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline_bytes: ByteSize,
    /// Most unparsed bytes buffered for one client (Redis `client-query-buffer-limit`).
    pub max_pending_bytes: ByteSize,
    /// Most reply bytes pending for one client before it is disconnected.
    pub max_output_bytes: ByteSize,
    /// Most commands one MULTI may queue (their bytes count toward `max_pending_bytes`).
    pub max_multi_commands: usize,
    /// Most keys one client may WATCH at once.
    pub max_watched_keys: usize,
    /// Redis's `enable-debug-command`: DEBUG for every client (`yes`), none (`no`), or those on a
    /// loopback address (`local`, the default).
    pub enable_debug_command: DebugAccess,
    /// Redis's `busy-reply-threshold`: a script running this long makes other clients' commands answer
    /// BUSY (and SCRIPT KILL possible).
    pub busy_reply_threshold_ms: u64,
}

/// Who may run DEBUG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DebugAccess {
    No,
    Yes,
    Local,
}

impl Default for RespSection {
    fn default() -> Self {
        RespSection {
            enabled: true,
            max_connections: 10_000,
            idle_timeout_secs: 0,
            max_bulk_bytes: ByteSize(512 << 20),
            max_args: 1024 * 1024,
            max_inline_bytes: ByteSize(64 << 10),
            max_pending_bytes: ByteSize(1 << 30),
            max_output_bytes: ByteSize(1 << 30),
            max_multi_commands: 1_000_000,
            max_watched_keys: 1_000_000,
            enable_debug_command: DebugAccess::Local,
            busy_reply_threshold_ms: synap_core::script::BUSY_MS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Publishing to a missing queue creates it instead of answering 404.
    pub auto_create: bool,
    pub max_queues: usize,
    /// Defaults for queues created without these options.
    pub max_depth: u64,
    pub ack_deadline_ms: u64,
    pub max_retries: u32,
    pub max_message_bytes: ByteSize,
    pub prefetch: u32,
    /// How often delayed messages, ack deadlines and TTLs are checked.
    pub sweep_interval_ms: u64,
    /// Longest long-poll a consumer may ask for.
    pub max_wait_ms: u64,
}

impl Default for QueueSection {
    fn default() -> Self {
        let d = synap_core::queue::QueueConfig::default();
        QueueSection {
            auto_create: false,
            max_queues: 10_000,
            max_depth: d.max_depth,
            ack_deadline_ms: d.ack_deadline_ms,
            max_retries: d.max_retries,
            max_message_bytes: ByteSize(d.max_message_bytes),
            prefetch: d.prefetch,
            sweep_interval_ms: 50,
            max_wait_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSection {
    /// `host:port` of the primary's RESP listener: start as its replica (REPLICAOF changes it at run
    /// time). Empty: a primary.
    pub replica_of: String,
    /// The backlog of newest records kept for partial resyncs (Redis's `repl-backlog-size`).
    pub backlog_bytes: ByteSize,
    /// A write's reply waits until this many replicas hold its record (0: replication is asynchronous);
    /// with fewer replicas connected, writes are refused (NOREPLICAS).
    pub min_replicas_to_ack: usize,
    /// How long a write waits for those acknowledgements before it answers NOREPLICAS (it is applied
    /// here, but not known to be on enough replicas).
    pub ack_timeout_ms: u64,
    /// In a cluster: a replica this far behind the primary's log leaves the in-sync set (Kafka's
    /// `replica.lag.time.max.ms`); one back within it rejoins.
    pub max_lag_ms: u64,
    /// The user and password a replica authenticates with at its primary (Redis's `masteruser` and
    /// `masterauth`); empty password: none sent.
    pub primary_user: String,
    pub primary_password: Secret,
}

/// A password in the configuration: never printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "(set)" })
    }
}

impl Default for ReplicationSection {
    fn default() -> Self {
        ReplicationSection {
            replica_of: String::new(),
            backlog_bytes: ByteSize(64 << 20),
            min_replicas_to_ack: 0,
            ack_timeout_ms: 10_000,
            max_lag_ms: 1_000,
            primary_user: "default".into(),
            primary_password: Secret::default(),
        }
    }
}

impl ReplicationSection {
    /// The primary to follow at start, parsed.
    pub fn primary(&self) -> anyhow::Result<Option<(String, u16)>> {
        let s = self.replica_of.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("replication.replica_of: expected host:port, got {s:?}"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow::anyhow!("replication.replica_of: bad port in {s:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        anyhow::ensure!(!host.is_empty(), "replication.replica_of: empty host in {s:?}");
        Ok(Some((host.to_string(), port)))
    }
}

/// Automatic failover: the metadata quorum among the cluster's nodes (docs/cluster.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    pub enabled: bool,
    /// This node's id, unique in the cluster (not 0).
    pub node_id: u64,
    /// The cluster port (Raft and the nodes' reports).
    pub addr: SocketAddr,
    /// The addresses the other nodes and clients use for this node, when not the bound ones.
    pub announce_addr: String,
    pub announce_resp: String,
    pub announce_http: String,
    /// Form a one-node cluster at the first start (one node does; the others are added to it with
    /// CLUSTER ADDNODE).
    pub bootstrap: bool,
    /// The local IP address outbound cluster and replication connections bind (Redis's
    /// `bind-source-addr`).
    pub source_addr: String,
    /// The name Sentinel clients ask for.
    pub name: String,
    pub heartbeat_ms: u64,
    /// Raft's election timeout (a random value between this and twice this).
    pub election_timeout_ms: u64,
    /// How long a primary takes writes after the quorum's leader last confirmed it.
    pub lease_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            enabled: false,
            node_id: 0,
            addr: "127.0.0.1:16379".parse().expect("valid"),
            announce_addr: String::new(),
            announce_resp: String::new(),
            announce_http: String::new(),
            bootstrap: false,
            source_addr: String::new(),
            name: "synap".into(),
            heartbeat_ms: 50,
            election_timeout_ms: 150,
            lease_ms: 600,
        }
    }
}

impl ClusterSection {
    pub fn source_ip(&self) -> anyhow::Result<Option<std::net::IpAddr>> {
        let s = self.source_addr.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| anyhow::anyhow!("cluster.source_addr: not an IP address: {s:?}"))
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.source_ip()?;
        if !self.enabled {
            return Ok(());
        }
        anyhow::ensure!(self.node_id > 0, "cluster.node_id: must be set (1 or more) when the cluster is enabled");
        anyhow::ensure!(
            (10..=10_000).contains(&self.heartbeat_ms),
            "cluster.heartbeat_ms: must be between 10 and 10000"
        );
        anyhow::ensure!(
            self.election_timeout_ms >= 2 * self.heartbeat_ms && self.election_timeout_ms <= 60_000,
            "cluster.election_timeout_ms: must be at least twice heartbeat_ms (and at most 60000)"
        );
        anyhow::ensure!(
            self.lease_ms >= 2 * self.heartbeat_ms && self.lease_ms <= 60_000,
            "cluster.lease_ms: must be at least twice heartbeat_ms (and at most 60000)"
        );
        anyhow::ensure!(!self.name.is_empty() && self.name.len() <= 128, "cluster.name: 1 to 128 characters");
        for (key, v) in [
            ("announce_addr", &self.announce_addr),
            ("announce_resp", &self.announce_resp),
            ("announce_http", &self.announce_http),
        ] {
            anyhow::ensure!(
                v.is_empty() || crate::cluster::split_addr(v).is_some(),
                "cluster.{key}: expected host:port, got {v:?}"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSection {
    /// Publishing to a missing stream creates it (with the defaults below) instead of answering 404.
    pub auto_create: bool,
    pub max_streams: usize,
    pub max_partitions: u32,
    /// Defaults for streams created without these options (per partition; 0 = no limit).
    pub partitions: u32,
    pub max_events: u64,
    pub max_bytes: ByteSize,
    pub max_age_ms: u64,
    /// Largest event (fields, key and a small header).
    pub max_event_bytes: ByteSize,
    /// Size at which a partition's active segment file is sealed and a new one started.
    pub segment_bytes: ByteSize,
    /// Newest events kept in memory per partition, so that readers near the tail do not touch disk.
    pub tail_cache_bytes: ByteSize,
    /// Most events one read returns.
    pub max_read: usize,
    /// Redelivery delay of idle pending events for groups created through the REST/envelope API.
    pub group_redeliver_ms: u64,
    /// Longest long-poll a reader may ask for.
    pub max_wait_ms: u64,
    /// How often retention by age and size runs.
    pub retention_interval_ms: u64,
    /// Most stream segment files open at once (files are opened when read or written and closed when
    /// this many are open).
    pub max_open_files: usize,
    /// Most consumer groups one stream has.
    pub max_groups_per_stream: usize,
    /// Most consumers one group remembers.
    pub max_consumers_per_group: usize,
}

impl Default for StreamSection {
    fn default() -> Self {
        let s = synap_core::stream::StreamSettings::default();
        StreamSection {
            auto_create: s.auto_create,
            max_streams: s.max_rooms,
            max_partitions: s.max_partitions,
            partitions: s.defaults.partitions,
            max_events: s.defaults.max_events,
            max_bytes: ByteSize(s.defaults.max_bytes),
            max_age_ms: s.defaults.max_age_ms,
            max_event_bytes: ByteSize(s.max_event_bytes as u64),
            segment_bytes: ByteSize(64 << 20),
            tail_cache_bytes: ByteSize(s.tail_cache_bytes as u64),
            max_read: s.max_read,
            group_redeliver_ms: s.group_redeliver_ms,
            max_wait_ms: 60_000,
            retention_interval_ms: 1000,
            max_open_files: 256,
            max_groups_per_stream: s.max_groups,
            max_consumers_per_group: s.max_consumers,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubSubSection {
    /// Messages queued for one RESP subscriber before it is disconnected (Redis's pubsub output limit).
    pub resp_max_pending_messages: usize,
    /// Messages queued for one WebSocket/SSE subscriber; beyond, the oldest are dropped and counted.
    pub web_max_pending_messages: usize,
    /// Bytes queued for one RESP subscriber before it is disconnected (Redis's pubsub hard limit).
    pub resp_max_pending_bytes: ByteSize,
    /// Bytes queued for one WebSocket/SSE subscriber; beyond, the oldest are dropped and counted.
    pub web_max_pending_bytes: ByteSize,
    /// Most topics one WebSocket/SSE subscriber holds (in its request and later subscribe frames).
    pub max_topics_per_subscriber: usize,
    /// Most channels and patterns one RESP client subscribes to.
    pub max_subscriptions_per_client: usize,
    /// Keyspace notifications, as Redis's `notify-keyspace-events` (`KEA`, `Kx`, ...; empty = off).
    pub notify_keyspace_events: String,
}

impl Default for PubSubSection {
    fn default() -> Self {
        PubSubSection {
            resp_max_pending_messages: 65_536,
            web_max_pending_messages: 1024,
            resp_max_pending_bytes: ByteSize(32 << 20),
            web_max_pending_bytes: ByteSize(8 << 20),
            max_topics_per_subscriber: 1000,
            max_subscriptions_per_client: 100_000,
            notify_keyspace_events: String::new(),
        }
    }
}

/// Whether TLS clients must show a certificate (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    No,
    Optional,
    Yes,
}

/// TLS (docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain and private key; TLS is on when `cert` is set.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// PEM CA certificates: client certificates are checked against them, and so are the primary's on a
    /// replication link.
    pub ca: Option<PathBuf>,
    /// Client certificates: `no`, `optional`, `yes`; unset: `yes` with a CA, `no` without (Redis's
    /// default is `yes`).
    pub auth_clients: Option<AuthClients>,
    /// The TLS RESP listener, beside the plain `resp_addr` (Redis's `tls-port`).
    pub resp_addr: Option<SocketAddr>,
    /// HTTPS on `http_addr` (when `cert` is set).
    pub http: bool,
    /// RESP on the TLS port only: the plain `resp_addr` is not served (Redis's `port 0`).
    pub resp_only: bool,
    /// Replicas connect to their primary over TLS (Redis's `tls-replication`).
    pub replication: bool,
    /// The cluster port (Raft and the nodes' reports) over TLS, both ways (Redis's `tls-cluster`); with
    /// `auth_clients: yes` only nodes with a certificate of the CA get in.
    pub cluster: bool,
    /// How often the certificate files are checked for changes.
    pub reload_secs: u64,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert: None,
            key: None,
            ca: None,
            auth_clients: None,
            resp_addr: None,
            http: true,
            resp_only: false,
            replication: false,
            cluster: false,
            reload_secs: 10,
        }
    }
}

impl TlsSection {
    pub fn auth_clients(&self) -> AuthClients {
        self.auth_clients.unwrap_or(if self.ca.is_some() { AuthClients::Yes } else { AuthClients::No })
    }
}

/// Users and access (docs/security.md).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The `default` user's password, set at start on this node (Redis's `requirepass`); empty: none.
    pub requirepass: String,
    /// The file ACL SAVE writes and ACL LOAD reads (Redis's `aclfile`); users live in the data directory
    /// either way.
    pub aclfile: Option<PathBuf>,
    /// With no password on the `default` user, serve loopback clients only (Redis's `protected-mode`).
    pub protected_mode: bool,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { requirepass: String::new(), aclfile: None, protected_mode: true }
    }
}

impl std::fmt::Debug for AuthSection {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("requirepass", &if self.requirepass.is_empty() { "" } else { "(set)" })
            .field("aclfile", &self.aclfile)
            .field("protected_mode", &self.protected_mode)
            .finish()
    }
}

/// What the server reports about itself (docs/observability.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `/metrics` on its own address as well (the HTTP port serves it either way); none by default.
    pub addr: Option<SocketAddr>,
    /// Time every command (INFO commandstats and latencystats, histograms, SLOWLOG, LATENCY). Off: counts
    /// only.
    pub command_timing: bool,
    /// Per-queue, per-stream and per-replica series in `/metrics`: at most this many of each (by name);
    /// the rest are added up under the label value `_other`.
    pub max_label_values: usize,
    /// Redis's `slowlog-log-slower-than` (microseconds; negative: off, 0: every command).
    pub slowlog_log_slower_than: i64,
    /// Redis's `slowlog-max-len`.
    pub slowlog_max_len: u64,
    /// Redis's `latency-monitor-threshold` (milliseconds; 0: off).
    pub latency_monitor_threshold: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            addr: None,
            command_timing: true,
            max_label_values: 100,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub resp_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub kv: KvSection,
    pub persistence: PersistenceSection,
    pub resp: RespSection,
    pub queue: QueueSection,
    pub stream: StreamSection,
    pub pubsub: PubSubSection,
    pub replication: ReplicationSection,
    pub cluster: ClusterSection,
    pub auth: AuthSection,
    pub tls: TlsSection,
    pub metrics: MetricsSection,
    /// The YAML file the configuration came from (CONFIG REWRITE writes the run-time settings back to it).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: "127.0.0.1:15500".parse().expect("valid"),
            resp_addr: "127.0.0.1:6379".parse().expect("valid"),
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            kv: KvSection::default(),
            persistence: PersistenceSection::default(),
            resp: RespSection::default(),
            queue: QueueSection::default(),
            stream: StreamSection::default(),
            pubsub: PubSubSection::default(),
            replication: ReplicationSection::default(),
            cluster: ClusterSection::default(),
            auth: AuthSection::default(),
            tls: TlsSection::default(),
            metrics: MetricsSection::default(),
            config_file: None,
        }
    }
}

impl Config {
    /// Reads a YAML file; every key is optional, unknown keys are errors.
    pub fn from_yaml_file(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::from_yaml(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn from_yaml(text: &str) -> anyhow::Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let de = serde_norway::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("{path}: {}", e.into_inner())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.kv.shards >= 1 && self.kv.shards <= 4096, "kv.shards: must be between 1 and 4096");
        self.replication.primary()?;
        self.cluster.validate()?;
        anyhow::ensure!(
            !self.cluster.enabled || self.replication.replica_of.trim().is_empty(),
            "replication.replica_of: not with cluster.enabled (the cluster decides who is primary)"
        );
        anyhow::ensure!(
            self.replication.max_lag_ms >= 10 && self.replication.max_lag_ms <= 3_600_000,
            "replication.max_lag_ms: must be between 10 and 3600000"
        );
        anyhow::ensure!(
            self.replication.backlog_bytes.0 >= 1 << 16 && self.replication.backlog_bytes.0 <= 1 << 34,
            "replication.backlog_bytes: must be between 64kb and 16gb"
        );
        anyhow::ensure!(self.replication.min_replicas_to_ack <= 64, "replication.min_replicas_to_ack: at most 64");
        anyhow::ensure!(self.replication.ack_timeout_ms >= 1, "replication.ack_timeout_ms: must be at least 1");
        anyhow::ensure!(self.metrics.max_label_values <= 10_000, "metrics.max_label_values: at most 10000");
        anyhow::ensure!(
            self.metrics.slowlog_max_len <= crate::stats::SLOWLOG_MAX_LEN,
            "metrics.slowlog_max_len: at most {}",
            crate::stats::SLOWLOG_MAX_LEN
        );
        anyhow::ensure!(self.kv.eviction_samples >= 1, "kv.eviction_samples: must be at least 1");
        anyhow::ensure!(
            self.kv.databases >= 1 && self.kv.databases <= synap_core::kv::MAX_DATABASES,
            "kv.databases: must be between 1 and {}",
            synap_core::kv::MAX_DATABASES
        );
        anyhow::ensure!(self.kv.max_key_bytes.0 >= 1, "kv.max_key_bytes: must be at least 1");
        anyhow::ensure!(
            self.kv.max_value_bytes.0 >= 1 && self.kv.max_value_bytes.0 <= synap_core::mutation::MAX_VALUE_BYTES as u64,
            "kv.max_value_bytes: must be between 1 and 512mb"
        );
        anyhow::ensure!(self.http.max_body_bytes.0 >= 1024, "http.max_body_bytes: must be at least 1kb");
        anyhow::ensure!(self.http.max_connections >= 1, "http.max_connections: must be at least 1");
        anyhow::ensure!(self.resp.max_connections >= 1, "resp.max_connections: must be at least 1");
        anyhow::ensure!(
            (1..=3600).contains(&self.http.header_timeout_secs) && (1..=3600).contains(&self.http.body_timeout_secs),
            "http.header_timeout_secs and http.body_timeout_secs: must be between 1 and 3600"
        );
        for o in &self.http.cors_origins {
            anyhow::ensure!(
                o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/')),
                "http.cors_origins: '{o}' is not an origin (scheme://host[:port], no path) or '*'"
            );
        }
        anyhow::ensure!(
            self.persistence.fsync_interval_ms >= 1 && self.persistence.fsync_interval_ms <= 60_000,
            "persistence.fsync_interval_ms: must be between 1 and 60000"
        );
        anyhow::ensure!(self.persistence.segment_bytes.0 >= 4096, "persistence.segment_bytes: must be at least 4kb");
        anyhow::ensure!(self.persistence.snapshot.keep >= 1, "persistence.snapshot.keep: must be at least 1");
        anyhow::ensure!(
            self.queue.sweep_interval_ms >= 1 && self.queue.sweep_interval_ms <= 10_000,
            "queue.sweep_interval_ms: must be between 1 and 10000"
        );
        self.queue_defaults().validate().map_err(|e| anyhow::anyhow!("queue: {}", e.message()))?;
        synap_core::notify::NotifyFlags::parse(&self.pubsub.notify_keyspace_events)
            .map_err(|e| anyhow::anyhow!("pubsub.notify_keyspace_events: {e}"))?;
        anyhow::ensure!(
            self.pubsub.resp_max_pending_messages >= 1 && self.pubsub.web_max_pending_messages >= 1,
            "pubsub: pending message limits must be at least 1"
        );
        anyhow::ensure!(
            self.pubsub.resp_max_pending_bytes.0 >= 1024 && self.pubsub.web_max_pending_bytes.0 >= 1024,
            "pubsub: pending byte limits must be at least 1kb"
        );
        anyhow::ensure!(
            self.pubsub.max_topics_per_subscriber >= 1 && self.pubsub.max_subscriptions_per_client >= 1,
            "pubsub: subscription limits must be at least 1"
        );
        let st = &self.stream;
        anyhow::ensure!(
            st.max_partitions >= 1 && st.max_partitions <= 4096,
            "stream.max_partitions: must be between 1 and 4096"
        );
        anyhow::ensure!(
            st.partitions >= 1 && st.partitions <= st.max_partitions,
            "stream.partitions: must be between 1 and stream.max_partitions"
        );
        anyhow::ensure!(
            st.max_event_bytes.0 >= 64 && st.max_event_bytes.0 <= 32 << 20,
            "stream.max_event_bytes: must be between 64b and 32mb"
        );
        anyhow::ensure!(
            st.segment_bytes.0 >= 4096 && st.segment_bytes.0 <= 1 << 31,
            "stream.segment_bytes: must be between 4kb and 2gb"
        );
        anyhow::ensure!(
            st.max_open_files >= 16 && st.max_open_files <= 1_000_000,
            "stream.max_open_files: must be between 16 and 1000000"
        );
        anyhow::ensure!(
            st.max_groups_per_stream >= 1 && st.max_consumers_per_group >= 1,
            "stream.max_groups_per_stream and stream.max_consumers_per_group: must be at least 1"
        );
        anyhow::ensure!(st.max_read >= 1 && st.max_read <= 1_000_000, "stream.max_read: must be between 1 and 1000000");
        anyhow::ensure!(
            st.retention_interval_ms >= 10 && st.retention_interval_ms <= 3_600_000,
            "stream.retention_interval_ms: must be between 10 and 3600000"
        );
        anyhow::ensure!(self.resp.max_connections >= 1, "resp.max_connections: must be at least 1");
        anyhow::ensure!(self.resp.max_args >= 1, "resp.max_args: must be at least 1");
        anyhow::ensure!(self.resp.max_inline_bytes.0 >= 64, "resp.max_inline_bytes: must be at least 64");
        anyhow::ensure!(
            self.resp.max_pending_bytes.0 >= self.resp.max_bulk_bytes.0.min(1 << 20),
            "resp.max_pending_bytes: must be at least 1mb or resp.max_bulk_bytes"
        );
        anyhow::ensure!(self.http.max_pipeline >= 1, "http.max_pipeline: must be at least 1");
        anyhow::ensure!(
            self.kv.active_expiry_hz >= 1 && self.kv.active_expiry_hz <= 500,
            "kv.active_expiry_hz: must be between 1 and 500"
        );
        Ok(())
    }

    pub fn persistence_config(&self) -> synap_storage::PersistenceConfig {
        let p = &self.persistence;
        synap_storage::PersistenceConfig {
            data_dir: self.data_dir.clone(),
            fsync: match p.fsync {
                FsyncMode::Always => synap_storage::FsyncPolicy::Always,
                FsyncMode::Periodic => synap_storage::FsyncPolicy::Periodic,
                FsyncMode::Never => synap_storage::FsyncPolicy::Never,
            },
            fsync_interval: std::time::Duration::from_millis(p.fsync_interval_ms),
            segment_bytes: p.segment_bytes.0,
            snapshot_keep: p.snapshot.keep,
            recover: match p.recover {
                RecoverSetting::Strict => synap_storage::RecoverMode::Strict,
                RecoverSetting::Truncate => synap_storage::RecoverMode::Truncate,
            },
        }
    }

    pub fn queue_defaults(&self) -> synap_core::queue::QueueConfig {
        let q = &self.queue;
        synap_core::queue::QueueConfig {
            max_depth: q.max_depth,
            ack_deadline_ms: q.ack_deadline_ms,
            max_retries: q.max_retries,
            dead_letter_queue: None,
            max_message_bytes: q.max_message_bytes.0,
            prefetch: q.prefetch,
        }
    }

    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            notify: synap_core::notify::NotifyFlags::parse(&self.pubsub.notify_keyspace_events).unwrap_or_default(),
            queues: synap_core::queue::QueueSettings {
                auto_create: self.queue.auto_create,
                defaults: self.queue_defaults(),
                max_queues: self.queue.max_queues,
            },
            streams: synap_core::stream::StreamSettings {
                defaults: synap_core::stream::RoomConfig {
                    partitions: self.stream.partitions,
                    max_events: self.stream.max_events,
                    max_bytes: self.stream.max_bytes.0,
                    max_age_ms: self.stream.max_age_ms,
                },
                max_partitions: self.stream.max_partitions,
                max_rooms: self.stream.max_streams,
                max_event_bytes: self.stream.max_event_bytes.0 as usize,
                tail_cache_bytes: self.stream.tail_cache_bytes.0 as usize,
                max_read: self.stream.max_read,
                auto_create: self.stream.auto_create,
                group_redeliver_ms: self.stream.group_redeliver_ms,
                max_groups: self.stream.max_groups_per_stream,
                max_consumers: self.stream.max_consumers_per_group,
            },
            stream_storage: if self.persistence.enabled {
                let dir = self.data_dir.join("streams");
                StreamBackend(Arc::new(synap_storage::FileStreamStorage::new(
                    dir,
                    self.stream.segment_bytes.0,
                    self.stream.max_open_files,
                )))
            } else {
                StreamBackend(Arc::new(synap_core::stream::MemoryStorage::new(
                    self.stream.segment_bytes.0.min(4 << 20),
                )))
            },
            kv: KvConfig {
                shards: self.kv.shards,
                databases: self.kv.databases,
                max_memory: self.kv.max_memory.0 as usize,
                eviction: self.kv.eviction_policy.0,
                eviction_samples: self.kv.eviction_samples,
                max_key_bytes: self.kv.max_key_bytes.0 as usize,
                max_value_bytes: self.kv.max_value_bytes.0 as usize,
                // A reply the RESP front end would close the connection for is refused before it is built.
                max_reply_bytes: self.resp.max_output_bytes.0 as usize,
            },
        }
    }
}

/// Command-line flags; each is also read from its `SYNAP_*` environment variable.
#[derive(Debug, Parser, Default)]
#[command(name = "synap-server", version, about = "Synap: key-value store, queues, streams and pub/sub in one server")]
pub struct Cli {
    /// YAML configuration file (every key optional).
    #[arg(long, env = "SYNAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "SYNAP_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// RESP (Redis protocol) listen address.
    #[arg(long, env = "SYNAP_RESP_ADDR")]
    pub resp_addr: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "SYNAP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "SYNAP_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter (`info`, `debug`, `synap_server=debug`).
    #[arg(long, env = "SYNAP_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Keyspace memory limit (`512mb`; 0 = none).
    #[arg(long, env = "SYNAP_MAX_MEMORY")]
    pub max_memory: Option<ByteSize>,
    /// Eviction policy at the memory limit (`noeviction`, `allkeys-lru`, ...).
    #[arg(long, env = "SYNAP_EVICTION_POLICY")]
    pub eviction_policy: Option<EvictionPolicy>,
    /// Persist to the data directory (WAL and snapshots).
    #[arg(long, env = "SYNAP_PERSISTENCE")]
    pub persistence: Option<bool>,
    /// When the WAL is fsynced: `always` (before every acknowledgement), `periodic`, `never`.
    #[arg(long, env = "SYNAP_FSYNC", value_enum)]
    pub fsync: Option<FsyncMode>,
}

impl Cli {
    /// Defaults, then the file, then flags and environment.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => Config { config_file: Some(path.clone()), ..Config::from_yaml_file(path)? },
            None => Config::default(),
        };
        if let Some(a) = self.http_addr {
            cfg.http_addr = a;
        }
        if let Some(a) = self.resp_addr {
            cfg.resp_addr = a;
        }
        if let Some(d) = self.data_dir {
            cfg.data_dir = d;
        }
        if let Some(f) = self.log_format {
            cfg.log.format = f;
        }
        if let Some(l) = self.log_level {
            cfg.log.level = l;
        }
        if let Some(m) = self.max_memory {
            cfg.kv.max_memory = m;
        }
        if let Some(p) = self.eviction_policy {
            cfg.kv.eviction_policy = Policy(p);
        }
        if let Some(p) = self.persistence {
            cfg.persistence.enabled = p;
        }
        if let Some(f) = self.fsync {
            cfg.persistence.fsync = f;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!("512mb".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("64KB".parse::<ByteSize>().unwrap().0, 64 << 10);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert!("12xb".parse::<ByteSize>().unwrap_err().contains("unit"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::from_yaml("kv:\n  max_memroy: 1mb\n").unwrap_err().to_string();
        assert!(e.contains("max_memroy"), "{e}");
        let e = Config::from_yaml("kv:\n  eviction_policy: sometimes\n").unwrap_err().to_string();
        assert!(e.contains("eviction_policy") && e.contains("sometimes"), "{e}");
        let e = Config::from_yaml("http_addr: nowhere\n").unwrap_err().to_string();
        assert!(e.contains("http_addr"), "{e}");
        let e = Config::from_yaml("kv:\n  max_memory: lots\n").unwrap_err().to_string();
        assert!(e.contains("max_memory"), "{e}");
    }

    #[test]
    fn file_values_apply_and_flags_override() {
        let cfg = Config::from_yaml("kv:\n  max_memory: 2mb\n  eviction_policy: allkeys-lru\nlog:\n  format: json\n")
            .unwrap();
        assert_eq!(cfg.kv.max_memory.0, 2 << 20);
        assert_eq!(cfg.kv.eviction_policy.0, EvictionPolicy::AllKeysLru);
        assert_eq!(cfg.log.format, LogFormat::Json);
        let cli = Cli { http_addr: Some("127.0.0.1:0".parse().unwrap()), ..Cli::default() };
        let cfg = cli.into_config().unwrap();
        assert_eq!(cfg.http_addr.port(), 0);
        assert_eq!(cfg.resp_addr.port(), 6379);
    }

    #[test]
    fn cluster_settings_are_checked() {
        let ok = Config::from_yaml("cluster:\n  enabled: true\n  node_id: 2\n  source_addr: 127.0.0.12\n").unwrap();
        assert_eq!(ok.cluster.source_ip().unwrap(), Some("127.0.0.12".parse().unwrap()));
        assert_eq!((ok.cluster.heartbeat_ms, ok.cluster.election_timeout_ms, ok.cluster.lease_ms), (50, 150, 600));
        for (yaml, key) in [
            ("cluster:\n  enabled: true\n", "cluster.node_id"),
            ("cluster:\n  enabled: true\n  node_id: 1\n  lease_ms: 60\n", "cluster.lease_ms"),
            ("cluster:\n  enabled: true\n  node_id: 1\n  election_timeout_ms: 50\n", "cluster.election_timeout_ms"),
            ("cluster:\n  enabled: true\n  node_id: 1\n  heartbeat_ms: 1\n", "cluster.heartbeat_ms"),
            ("cluster:\n  enabled: true\n  node_id: 1\n  announce_resp: nowhere\n", "cluster.announce_resp"),
            ("cluster:\n  source_addr: not-an-ip\n", "cluster.source_addr"),
            ("cluster:\n  enabled: true\n  node_id: 1\nreplication:\n  replica_of: 127.0.0.1:6380\n", "replica_of"),
            ("replication:\n  max_lag_ms: 1\n", "replication.max_lag_ms"),
        ] {
            let e = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }
}
