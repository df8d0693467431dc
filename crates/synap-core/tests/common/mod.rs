//! Shared by the core test files.

use parking_lot::Mutex;
use synap_core::{CommandError, Mutation, MutationLog, encode_batch};

/// A log that keeps every encoded batch in memory, for replay tests.
#[derive(Default)]
pub struct RecordingLog {
    pub batches: Mutex<Vec<Vec<u8>>>,
}

impl MutationLog for RecordingLog {
    fn check_writable(&self) -> Result<(), CommandError> {
        Ok(())
    }
    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        let mut buf = Vec::new();
        encode_batch(batch, &mut buf);
        let mut b = self.batches.lock();
        b.push(buf);
        b.len() as u64
    }
}

/// A command from its Redis name and arguments, through the command table's parser (as RESP parses it).
#[allow(dead_code)]
pub fn parse(name: &str, args: &[&str]) -> Result<synap_core::Command, CommandError> {
    let mut argv = vec![bytes::Bytes::from(name.to_string())];
    argv.extend(args.iter().map(|a| bytes::Bytes::from(a.to_string())));
    match synap_core::command::table::parse(&argv)? {
        Some((_, cmd)) => Ok(cmd),
        None => panic!("unknown command {name}"),
    }
}
