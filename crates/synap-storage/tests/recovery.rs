//! Recovery on hand-made broken files, the round trip through WAL and snapshots, and injected I/O failures.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use synap_core::command::{KeysCmd, KvCmd, QueueCmd};
use synap_core::{Command, Engine, EngineConfig, ExecCtx, MutationLog, Reply, SetArgs};
use synap_storage::wal::{SEGMENT_HEADER_LEN, list_segments};
use synap_storage::{
    FaultPlan, FaultyStorage, FsStorage, FsyncPolicy, Persistence, PersistenceConfig, RecoverMode, Storage,
    StorageError,
};

/// Records a snapshot holds besides the data: the `default` user's.
const USER_RECORDS: u64 = 1;

fn config(dir: &Path, fsync: FsyncPolicy) -> PersistenceConfig {
    PersistenceConfig {
        data_dir: dir.to_path_buf(),
        fsync,
        fsync_interval: Duration::from_millis(5),
        segment_bytes: 64 * 1024 * 1024,
        snapshot_keep: 2,
        recover: RecoverMode::Strict,
    }
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::in_memory(EngineConfig::default()))
}

fn open(cfg: PersistenceConfig) -> Result<(Persistence, Arc<Engine>, synap_storage::RecoveryReport), StorageError> {
    let e = engine();
    let (p, report) = Persistence::open(cfg, Arc::new(FsStorage), e.clone())?;
    Ok((p, e, report))
}

async fn set(p: &Persistence, e: &Engine, k: &str, v: &str) {
    let mut ctx = ExecCtx::default();
    e.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new(Bytes::from(k.to_string()), Bytes::from(v.to_string())))))
        .unwrap();
    p.wal().wait(ctx.lsn).await.unwrap();
}

fn get(e: &Engine, k: &str) -> Option<Bytes> {
    match e.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Get { key: Bytes::from(k.to_string()) })).unwrap() {
        Reply::Bulk(b) => Some(b),
        _ => None,
    }
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let segs = list_segments(&FsStorage, &dir.join("wal")).unwrap();
    segs.into_iter()
        .filter(|(_, p)| std::fs::metadata(p).unwrap().len() > SEGMENT_HEADER_LEN as u64)
        .map(|(_, p)| p)
        .next()
        .unwrap()
}

#[tokio::test]
async fn round_trip_through_wal_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        for i in 0..100 {
            set(&p, &e, &format!("k{i}"), &format!("v{i}")).await;
        }
        let info = p.snapshot().unwrap();
        assert_eq!(info.entries, 100 + USER_RECORDS);
        for i in 100..150 {
            set(&p, &e, &format!("k{i}"), &format!("v{i}")).await;
        }
        e.execute(&mut ExecCtx::default(), Command::Keys(KeysCmd::Del { keys: vec![Bytes::from("k3")] })).unwrap();
        p.shutdown();
        e.digest()
    };
    let (_p, e, report) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert_eq!(report.snapshot_entries, 100 + USER_RECORDS);
    assert_eq!(report.records_replayed, 51);
    assert_eq!(e.digest(), digest);
    assert_eq!(get(&e, "k3"), None);
    assert_eq!(get(&e, "k149").as_deref(), Some(&b"v149"[..]));
}

#[tokio::test]
async fn torn_last_record_is_truncated_and_startup_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        for i in 0..10 {
            set(&p, &e, &format!("k{i}"), "value").await;
        }
        p.shutdown();
    }
    let seg = only_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // Cut the last record short by a few bytes, as a crash mid-write would.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();
    let (_p, e, report) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert_eq!(report.records_replayed, 9);
    assert!(report.truncated_bytes > 0);
    assert!(get(&e, "k8").is_some());
    assert!(get(&e, "k9").is_none());
}

#[tokio::test]
async fn flipped_byte_mid_log_stops_startup_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        for i in 0..10 {
            set(&p, &e, &format!("k{i}"), "value").await;
        }
        p.shutdown();
    }
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let record_len = (bytes.len() - SEGMENT_HEADER_LEN) / 10;
    let third = SEGMENT_HEADER_LEN + 2 * record_len;
    bytes[third + 20] ^= 0x40; // inside the third record's payload
    std::fs::write(&seg, &bytes).unwrap();
    let err = match open(config(dir.path(), FsyncPolicy::Always)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("corruption must stop start-up"),
    };
    assert!(err.contains(seg.file_name().unwrap().to_str().unwrap()), "{err}");
    assert!(err.contains(&format!("byte {third}")), "{err}");
    // With recover: truncate, the log is cut at the bad record and start-up goes on.
    let mut cfg = config(dir.path(), FsyncPolicy::Always);
    cfg.recover = RecoverMode::Truncate;
    let (_p, e, report) = open(cfg).unwrap();
    assert_eq!(report.records_replayed, 2);
    assert!(get(&e, "k1").is_some() && get(&e, "k2").is_none());
}

#[tokio::test]
async fn empty_segment_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        set(&p, &e, "a", "1").await;
        p.shutdown();
    }
    std::fs::write(dir.path().join("wal").join(format!("{:020}.wal", 999)), b"").unwrap();
    let (_p, e, report) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert_eq!(get(&e, "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(report.records_replayed, 1);
}

#[tokio::test]
async fn bad_snapshot_checksum_falls_back_to_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncPolicy::Always);
    cfg.segment_bytes = 1024; // rotate often, so that snapshots let old segments go
    let digest = {
        let (p, e, _) = open(cfg.clone()).unwrap();
        for i in 0..50 {
            set(&p, &e, &format!("a{i}"), "x").await;
        }
        p.snapshot().unwrap();
        for i in 0..50 {
            set(&p, &e, &format!("b{i}"), "y").await;
        }
        let newest = p.snapshot().unwrap();
        for i in 0..10 {
            set(&p, &e, &format!("c{i}"), "z").await;
        }
        p.shutdown();
        let mut bytes = std::fs::read(&newest.path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&newest.path, bytes).unwrap();
        e.digest()
    };
    let (_p, e, report) = open(cfg).unwrap();
    assert_eq!(report.snapshots_skipped.len(), 1, "{report:?}");
    assert!(report.snapshots_skipped[0].contains("checksum mismatch"));
    assert_eq!(report.snapshot_entries, 50 + USER_RECORDS);
    assert_eq!(e.digest(), digest, "older snapshot + the WAL kept for it rebuild everything");
}

#[tokio::test]
async fn missing_snapshot_with_wal_present_replays_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Periodic)).unwrap();
        for i in 0..20 {
            set(&p, &e, &format!("k{i}"), "v").await;
        }
        p.shutdown();
    }
    assert!(std::fs::read_dir(dir.path().join("snapshots")).unwrap().next().is_none());
    let (_p, e, report) = open(config(dir.path(), FsyncPolicy::Periodic)).unwrap();
    assert_eq!(report.snapshot, None);
    assert_eq!(report.records_replayed, 20);
    assert_eq!(e.kv().len(), 20);
}

#[tokio::test]
async fn wal_gap_after_losing_every_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncPolicy::Always);
    cfg.segment_bytes = 512;
    cfg.snapshot_keep = 1;
    {
        let (p, e, _) = open(cfg.clone()).unwrap();
        for i in 0..40 {
            set(&p, &e, &format!("k{i}"), "v").await;
        }
        let info = p.snapshot().unwrap();
        p.shutdown();
        std::fs::remove_file(info.path).unwrap();
    }
    match open(cfg) {
        Err(StorageError::Gap { .. }) => {}
        Err(other) => panic!("expected a gap error, got {other}"),
        Ok(_) => panic!("expected a gap error"),
    }
}

#[tokio::test]
async fn snapshots_remove_covered_segments_and_old_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncPolicy::Never);
    cfg.segment_bytes = 2048;
    let (p, e, _) = open(cfg.clone()).unwrap();
    for round in 0..5 {
        for i in 0..100 {
            set(&p, &e, &format!("k{i}"), &format!("round{round}")).await;
        }
        p.snapshot().unwrap();
    }
    let snaps = std::fs::read_dir(dir.path().join("snapshots")).unwrap().count();
    assert_eq!(snaps, 2, "only the last two snapshots are kept");
    let segments = list_segments(&FsStorage, &dir.path().join("wal")).unwrap();
    assert!(segments.len() <= 12, "covered segments were removed: {}", segments.len());
    p.shutdown();
    let (_p, e2, _) = open(cfg).unwrap();
    assert_eq!(e2.digest(), e.digest());
}

#[tokio::test]
async fn fsync_failure_refuses_writes_and_never_acknowledges_the_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage { plan: plan.clone() });
    let e = engine();
    let (p, _) = Persistence::open(config(dir.path(), FsyncPolicy::Always), storage, e.clone()).unwrap();
    set(&p, &e, "before", "ok").await;
    plan.fail_sync_after(1);
    let mut ctx = ExecCtx::default();
    e.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("lost", "x")))).unwrap();
    let err = p.wal().wait(ctx.lsn).await.unwrap_err();
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    // Sticky: the next write is refused before it touches memory; reads go on.
    let err = e.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Set(SetArgs::new("after", "x")))).unwrap_err();
    assert!(err.to_string().starts_with("MISCONF"), "{err}");
    assert!(p.wal().check_writable().is_err());
    assert_eq!(get(&e, "before").as_deref(), Some(&b"ok"[..]));
    assert!(get(&e, "after").is_none());
    assert!(p.snapshot().is_err(), "no snapshot from a failed store");
}

#[tokio::test]
async fn write_failure_is_sticky_too() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage { plan: plan.clone() });
    let e = engine();
    let (p, _) = Persistence::open(config(dir.path(), FsyncPolicy::Periodic), storage, e.clone()).unwrap();
    plan.fail_write_after(1);
    let mut ctx = ExecCtx::default();
    e.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("k", "v")))).unwrap();
    assert!(p.wal().wait(ctx.lsn).await.is_err());
    assert!(e.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::IncrBy { key: Bytes::from("n"), by: 1 })).is_err());
}

#[tokio::test]
async fn periodic_mode_writes_and_fsyncs_on_its_own_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (p, e, _) = open(config(dir.path(), FsyncPolicy::Periodic)).unwrap();
    // A write nobody waits for (as an eviction is): the timer must still write and fsync it.
    let mut ctx = ExecCtx::default();
    e.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("idle", "v")))).unwrap();
    let mut synced = 0;
    for _ in 0..200 {
        synced = p.wal().progress().synced;
        if synced >= ctx.lsn {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(synced >= ctx.lsn, "the periodic timer fsynced the idle tail");
    assert!(p.wal().stats().fsyncs.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn concurrent_waiters_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    for policy in [FsyncPolicy::Always, FsyncPolicy::Periodic, FsyncPolicy::Never] {
        let sub = dir.path().join(format!("{policy:?}"));
        let (p, e, _) = open(config(&sub, policy)).unwrap();
        let p = Arc::new(p);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (p, e) = (p.clone(), e.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    set(&p, &e, &format!("t{t}:{i}"), "v").await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = p.wal().stats();
        let records = stats.records.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(records, 1600);
        let progress = p.wal().progress();
        assert!(progress.written >= 1600, "{policy:?}: every acknowledged record was written");
        if policy == FsyncPolicy::Always {
            assert!(progress.synced >= 1600, "always: every acknowledged record was fsynced");
        }
        p.shutdown();
        let digest = e.digest();
        let (_p2, e2, report) = open(config(&sub, policy)).unwrap();
        assert_eq!(report.records_replayed, 1600);
        assert_eq!(e2.digest(), digest);
    }
}

#[tokio::test]
async fn queue_message_ids_are_never_reused_after_a_restart() {
    use synap_core::queue::{ConsumeArgs, PublishArgs, QueueOptions};
    let dir = tempfile::tempdir().unwrap();
    let publish = |e: &Engine| match e
        .execute(
            &mut ExecCtx::default(),
            Command::Queue(QueueCmd::Publish(PublishArgs {
                queue: Bytes::from("q"),
                payload: Bytes::from("x"),
                ..Default::default()
            })),
        )
        .unwrap()
    {
        Reply::Bulk(id) => std::str::from_utf8(&id).unwrap().parse::<u64>().unwrap(),
        other => panic!("{other:?}"),
    };
    let first = {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        e.execute(
            &mut ExecCtx::default(),
            Command::Queue(QueueCmd::Create { name: Bytes::from("q"), options: QueueOptions::default() }),
        )
        .unwrap();
        let id = publish(&e);
        e.execute(
            &mut ExecCtx::default(),
            Command::Queue(QueueCmd::Consume {
                args: ConsumeArgs { queue: Bytes::from("q"), consumer: Bytes::from("c"), max: 1 },
                wait_ms: None,
            }),
        )
        .unwrap();
        e.execute(&mut ExecCtx::default(), Command::Queue(QueueCmd::Ack { queue: Bytes::from("q"), ids: vec![id] }))
            .unwrap();
        // The snapshot covers everything and the log behind it is gone: only the snapshot remembers ids.
        p.snapshot().unwrap();
        p.shutdown();
        id
    };
    let (_p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert!(publish(&e) > first, "a new message never takes an old id");
}

#[tokio::test]
async fn a_damaged_length_with_good_records_behind_it_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, e, _) = open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        for i in 0..10 {
            set(&p, &e, &format!("k{i}"), "value").await;
        }
        p.shutdown();
    }
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let record_len = (bytes.len() - SEGMENT_HEADER_LEN) / 10;
    let fourth = SEGMENT_HEADER_LEN + 3 * record_len;
    bytes[fourth..fourth + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // claims more than the file holds
    std::fs::write(&seg, &bytes).unwrap();
    let err = match open(config(dir.path(), FsyncPolicy::Always)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("acknowledged records after the damage must not be cut silently"),
    };
    assert!(err.contains("valid records follow") && err.contains(&format!("byte {fourth}")), "{err}");
}

/// A next segment that cannot be created (out of file descriptors) is not a durability failure: the log
/// keeps taking writes in the current segment, rotates once it can, and recovery finds every record.
#[tokio::test]
async fn a_rotation_that_cannot_create_its_file_does_not_fail_the_log() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::Periodic] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let storage: Arc<dyn Storage> = Arc::new(FaultyStorage { plan: plan.clone() });
        let e = engine();
        let mut cfg = config(dir.path(), policy);
        cfg.segment_bytes = 2048;
        let (p, _) = Persistence::open(cfg.clone(), storage, e.clone()).unwrap();
        let segments = || list_segments(&FsStorage, &dir.path().join("wal")).unwrap().len();
        plan.fail_creates.store(true, std::sync::atomic::Ordering::SeqCst);
        for i in 0..200 {
            set(&p, &e, &format!("k{i}"), &"v".repeat(40)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(p.wal().check_writable().is_ok(), "{policy:?}: the log still takes writes");
        assert_eq!(segments(), 1, "{policy:?}: no half-made segment was left behind");
        plan.fail_creates.store(false, std::sync::atomic::Ordering::SeqCst);
        for i in 200..400 {
            set(&p, &e, &format!("k{i}"), &"v".repeat(40)).await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while segments() < 3 {
            assert!(std::time::Instant::now() < deadline, "{policy:?}: rotation resumed");
            set(&p, &e, "more", "x").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let digest = e.digest();
        p.shutdown();
        drop(p);
        let (_p, e2, _) = open(cfg).unwrap();
        assert_eq!(e2.digest(), digest, "{policy:?}");
    }
}

/// One snapshot at a time: a second one asked for while the first is written is refused at once, and
/// reading the snapshot state (INFO, the scheduler) never waits for the running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_snapshot_is_refused_and_nobody_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage { plan: plan.clone() });
    let e = engine();
    let (p, _) = Persistence::open(config(dir.path(), FsyncPolicy::Periodic), storage, e.clone()).unwrap();
    for i in 0..100 {
        set(&p, &e, &format!("k{i}"), "v").await;
    }
    let p = Arc::new(p);
    plan.sync_delay_ms.store(600, std::sync::atomic::Ordering::SeqCst);
    let first = {
        let p = p.clone();
        std::thread::spawn(move || p.snapshot())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !p.snapshot_in_progress() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    assert!(matches!(p.snapshot(), Err(StorageError::SnapshotInProgress)));
    assert!(p.writes_since_snapshot() > 0);
    assert!(started.elapsed() < Duration::from_millis(200), "answered without waiting: {:?}", started.elapsed());
    let info = first.join().unwrap().unwrap();
    assert_eq!(info.entries, 100 + USER_RECORDS);
    assert!(!p.snapshot_in_progress());
    plan.sync_delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    assert!(p.snapshot().is_ok(), "the next one runs");
}

fn stream_engine(dir: &Path) -> Arc<Engine> {
    let files = synap_storage::FileStreamStorage::new(dir.join("streams"), 4096, 64);
    let cfg =
        EngineConfig { stream_storage: synap_core::stream::StreamBackend(Arc::new(files)), ..EngineConfig::default() };
    Arc::new(Engine::new(cfg, Arc::new(synap_core::SystemClock), None))
}

fn xadd(e: &Engine, key: &str, v: &str) -> u64 {
    let mut ctx = ExecCtx::default();
    let cmd = synap_core::stream::StreamCmd::XAdd {
        key: Bytes::from(key.to_string()),
        id: synap_core::stream::XAddId::Auto,
        fields: vec![(Bytes::from("v"), Bytes::from(v.to_string()))],
        nomkstream: false,
        trim: None,
    };
    e.execute(&mut ctx, Command::Stream(cmd)).unwrap();
    ctx.lsn
}

fn xrange(e: &Engine, key: &str) -> Vec<String> {
    use synap_core::stream::{IdBound, StreamCmd, StreamId};
    let cmd = StreamCmd::XRange {
        key: Bytes::from(key.to_string()),
        start: IdBound::Incl(StreamId::MIN),
        end: IdBound::Incl(StreamId::MAX),
        count: None,
        rev: false,
    };
    match e.execute(&mut ExecCtx::default(), Command::Stream(cmd)).unwrap() {
        Reply::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Reply::Array(mut parts) => match parts.remove(1) {
                    Reply::Array(f) => match &f[1] {
                        Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                        o => panic!("{o:?}"),
                    },
                    o => panic!("{o:?}"),
                },
                o => panic!("{o:?}"),
            })
            .collect(),
        o => panic!("{o:?}"),
    }
}

fn stream_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("streams")).map(|d| d.count()).unwrap_or(0)
}

/// DEL of a stream inside MULTI/EXEC: its files wait until the transaction's record is durable (the
/// deletion's LSN is known only when the transaction is logged).
#[tokio::test]
async fn a_stream_deleted_inside_a_transaction_keeps_its_files_until_that_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let e = stream_engine(dir.path());
    let plan = FaultPlan::new();
    let storage = Arc::new(FaultyStorage { plan: plan.clone() });
    let (p, _) = Persistence::open(config(dir.path(), FsyncPolicy::Always), storage, e.clone()).unwrap();
    let lsn = xadd(&e, "s", "1");
    p.wal().wait(lsn).await.unwrap();
    assert_eq!(stream_dirs(dir.path()), 1);
    // A slow disk from here on: the transaction's record is not durable for a while, whatever the
    // scheduling (with a fast fsync it could be durable before the purge below looks).
    plan.sync_delay_ms.store(2_000, std::sync::atomic::Ordering::SeqCst);
    let mut ctx = ExecCtx::default();
    let replies = e
        .exec_transaction(&mut ctx, vec![Command::Keys(KeysCmd::Del { keys: vec![Bytes::from("s")] })], None)
        .unwrap()
        .unwrap();
    assert_eq!(replies, vec![Ok(Reply::Int(1))]);
    assert_eq!(stream_dirs(dir.path()), 1, "not removed before the transaction's record is durable");
    assert_eq!(p.purge_stream_files(), 0, "nor by a purge before then");
    p.wal().wait(ctx.lsn).await.unwrap();
    assert_eq!(p.purge_stream_files(), 1);
    assert_eq!(stream_dirs(dir.path()), 0);
}

/// A snapshot whose LSN was taken before a stream was deleted and created again (a fuzzy snapshot that
/// walked the streams after that): recovery must not replay the old stream's records onto the new one.
#[tokio::test]
async fn a_stream_recreated_during_a_snapshot_is_not_mixed_with_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = stream_engine(dir.path());
        let (p, _) =
            Persistence::open(config(dir.path(), FsyncPolicy::Always), Arc::new(FsStorage), e.clone()).unwrap();
        let mut last = 0;
        for i in 0..6 {
            last = xadd(&e, "s", &format!("old{i}"));
        }
        p.wal().wait(last).await.unwrap();
        let snapshot_lsn = p.wal().last_lsn() - 3; // taken after the first three appends
        e.execute(&mut ExecCtx::default(), Command::Keys(KeysCmd::Del { keys: vec![Bytes::from("s")] })).unwrap();
        for i in 0..2 {
            last = xadd(&e, "s", &format!("new{i}"));
        }
        p.wal().wait(last).await.unwrap();
        e.sync_streams().unwrap();
        let cursor = synap_core::EngineCursor::at_lsn(snapshot_lsn);
        synap_storage::snapshot::write_snapshot(&FsStorage, &dir.path().join("snapshots"), &e, snapshot_lsn, cursor)
            .unwrap();
        assert_eq!(xrange(&e, "s"), vec!["new0", "new1"]);
        p.shutdown();
    }
    let e = stream_engine(dir.path());
    let (_p, report) =
        Persistence::open(config(dir.path(), FsyncPolicy::Always), Arc::new(FsStorage), e.clone()).unwrap();
    assert!(report.snapshot.is_some());
    assert_eq!(xrange(&e, "s"), vec!["new0", "new1"]);
}
