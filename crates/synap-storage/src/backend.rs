//! The file system behind a small trait: the real one, and one that fails on purpose (tests).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A file open for appending. Shared (`&self`): the WAL fsyncs through the writer's own handle from
/// another thread while the writer goes on, without a second file descriptor.
pub trait WriteFile: Send + Sync {
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
}

/// The file operations persistence needs.
pub trait Storage: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file to append to it.
    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    fn len(&self, path: &Path) -> io::Result<u64>;
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

struct FsFile(File);

impl WriteFile for FsFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().write(true).create(true).truncate(true).open(path)?)))
    }
    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().append(true).open(path)?)))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, File::open(path)?)))
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// When [`FaultyStorage`] fails: the Nth write or fsync (1-based) and every later one.
#[derive(Debug)]
pub struct FaultPlan {
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
    /// While set, creating a file fails as when the process is out of file descriptors (EMFILE).
    pub fail_creates: std::sync::atomic::AtomicBool,
    /// Every fsync takes at least this long (a slow disk).
    pub sync_delay_ms: AtomicU64,
    pub fail_write_at: AtomicU64,
    pub fail_sync_at: AtomicU64,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan {
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            fail_creates: std::sync::atomic::AtomicBool::new(false),
            sync_delay_ms: AtomicU64::new(0),
            fail_write_at: AtomicU64::new(u64::MAX),
            fail_sync_at: AtomicU64::new(u64::MAX),
        })
    }
    /// Fail the `n`th write from now on (counting from the writes already made).
    pub fn fail_write_after(&self, n: u64) {
        self.fail_write_at.store(self.writes.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }
    pub fn fail_sync_after(&self, n: u64) {
        self.fail_sync_at.store(self.syncs.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }
}

/// The real file system, except that writes and fsyncs fail as the [`FaultPlan`] says.
pub struct FaultyStorage {
    pub plan: Arc<FaultPlan>,
}

struct FaultyFile {
    inner: Box<dyn WriteFile>,
    plan: Arc<FaultPlan>,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl WriteFile for FaultyFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let n = self.plan.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.plan.fail_write_at.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.inner.write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        let n = self.plan.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.plan.fail_sync_at.load(Ordering::SeqCst) {
            return Err(injected("fsync"));
        }
        let delay = self.plan.sync_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        self.inner.sync()
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        if self.plan.fail_creates.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        Ok(Box::new(FaultyFile { inner: FsStorage.create(path)?, plan: self.plan.clone() }))
    }
    fn append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(FaultyFile { inner: FsStorage.append(path)?, plan: self.plan.clone() }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        FsStorage.open_read(path)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        FsStorage.len(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsStorage.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
}
