//! File descriptors: every connection, open segment file and log file takes one, and running out must
//! never cost durability (a log that cannot open a file must not fail, and nothing a client does should
//! make it so). At start the soft `RLIMIT_NOFILE` is raised to the hard limit, and the connection caps
//! and the stream file cache are fitted under it with room to spare for the log, snapshots and listeners;
//! clients past a cap get a clear refusal instead of starving the server of descriptors.

use crate::config::Config;

/// Descriptors kept for everything that is not a connection or a stream segment: WAL segment and the
/// next one, snapshot files, listeners, directory syncs, the runtime.
pub const RESERVED: u64 = 64;

/// Raises the soft limit on open files to the hard limit; returns the soft limit now in force (`None`
/// when it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            None
        }
    }
}

/// Lowers the connection caps and the stream file cache so that together they fit under `limit`
/// descriptors with [`RESERVED`] to spare; returns the notes on what was lowered.
pub fn fit(config: &mut Config, limit: u64) -> Vec<String> {
    let mut notes = Vec::new();
    let usable = limit.saturating_sub(RESERVED).max(32);
    // Stream segment files: at most a quarter of what is left.
    let files = (config.stream.max_open_files as u64).min(usable / 4).max(16);
    if files < config.stream.max_open_files as u64 {
        notes.push(format!("stream.max_open_files {} -> {files}", config.stream.max_open_files));
        config.stream.max_open_files = files as usize;
    }
    let for_conns = usable.saturating_sub(files).max(2);
    let resp = if config.resp.enabled { config.resp.max_connections as u64 } else { 0 };
    let http = config.http.max_connections as u64;
    if resp + http > for_conns {
        // Shared in proportion to what was configured, each at least 1.
        let new_resp = if resp == 0 { 0 } else { (for_conns * resp / (resp + http)).max(1) };
        let new_http = for_conns.saturating_sub(new_resp).max(1);
        if resp > 0 {
            notes.push(format!("resp.max_connections {resp} -> {new_resp}"));
            config.resp.max_connections = new_resp as usize;
        }
        notes.push(format!("http.max_connections {http} -> {new_http}"));
        config.http.max_connections = new_http as usize;
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_limit() {
        let mut c = Config::default();
        let notes = fit(&mut c, 1024);
        let used = RESERVED + c.stream.max_open_files as u64 + (c.resp.max_connections + c.http.max_connections) as u64;
        assert!(used <= 1024, "{used}: {notes:?}");
        assert!(c.resp.max_connections >= 300 && c.http.max_connections >= 300, "{notes:?}");
        let mut big = Config::default();
        assert!(fit(&mut big, 1 << 20).is_empty(), "a large limit changes nothing");
        assert_eq!(big.resp.max_connections, 10_000);
    }
}
