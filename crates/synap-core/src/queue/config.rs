//! Queue configuration and its record encoding.

use bytes::Bytes;

use crate::command::queue::QueueOptions;
use crate::error::CommandError;

/// Options a queue is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most messages the queue holds (ready, delayed and in flight); publishing beyond is refused.
    pub max_depth: u64,
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    pub ack_deadline_ms: u64,
    /// Redeliveries allowed after the first delivery; past them a failed message is dead-lettered.
    pub max_retries: u32,
    /// Where dead letters go. `None`: this queue is a dead-letter queue itself, and its failed messages
    /// stay in it (nothing is ever dropped).
    pub dead_letter_queue: Option<Bytes>,
    pub max_message_bytes: u64,
    /// Most messages in flight per consumer.
    pub prefetch: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_depth: 1_000_000,
            ack_deadline_ms: 30_000,
            max_retries: 3,
            dead_letter_queue: None,
            max_message_bytes: 1 << 20,
            prefetch: 1000,
        }
    }
}

impl QueueOptions {
    /// The full configuration, and whether the dead-letter queue was given explicitly.
    pub fn resolve(&self, d: &QueueConfig) -> (QueueConfig, bool) {
        let cfg = QueueConfig {
            max_depth: self.max_depth.unwrap_or(d.max_depth),
            ack_deadline_ms: self.ack_deadline_ms.unwrap_or(d.ack_deadline_ms),
            max_retries: self.max_retries.unwrap_or(d.max_retries),
            dead_letter_queue: self.dead_letter_queue.clone(),
            max_message_bytes: self.max_message_bytes.unwrap_or(d.max_message_bytes),
            prefetch: self.prefetch.unwrap_or(d.prefetch),
        };
        (cfg, self.dead_letter_queue.is_some())
    }
}

/// The default dead-letter queue of `name`.
pub fn default_dlq(name: &[u8]) -> Bytes {
    let mut n = name.to_vec();
    n.extend_from_slice(b".dlq");
    Bytes::from(n)
}

impl QueueConfig {
    /// `max_depth:u64 ack_deadline_ms:u64 max_retries:u32 has_dlq:u8 [dlq:bytes] max_message_bytes:u64 prefetch:u32`
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(&self.max_depth.to_le_bytes());
        out.extend_from_slice(&self.ack_deadline_ms.to_le_bytes());
        out.extend_from_slice(&self.max_retries.to_le_bytes());
        match &self.dead_letter_queue {
            Some(d) => {
                out.push(1);
                out.extend_from_slice(&(d.len() as u32).to_le_bytes());
                out.extend_from_slice(d);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.max_message_bytes.to_le_bytes());
        out.extend_from_slice(&self.prefetch.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<QueueConfig> {
        let mut pos = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(pos..pos.checked_add(n)?)?;
            pos += n;
            Some(s)
        };
        let max_depth = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let ack_deadline_ms = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let max_retries = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let dead_letter_queue = match take(1)?[0] {
            0 => None,
            _ => {
                let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                Some(Bytes::copy_from_slice(take(n)?))
            }
        };
        let max_message_bytes = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let prefetch = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let config =
            QueueConfig { max_depth, ack_deadline_ms, max_retries, dead_letter_queue, max_message_bytes, prefetch };
        // A record that no command could have written is corrupt.
        config.validate().ok()?;
        Some(config)
    }

    pub fn validate(&self) -> Result<(), CommandError> {
        let bad = |m: &str| Err(CommandError::Invalid(m.into()));
        if self.max_depth == 0 {
            return bad("max_depth must be at least 1");
        }
        if self.ack_deadline_ms == 0 || self.ack_deadline_ms > 24 * 3600 * 1000 {
            return bad("ack_deadline_ms must be between 1 and 86400000");
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > crate::mutation::MAX_VALUE_BYTES as u64 {
            return bad("max_message_bytes must be between 1 and 512 MB");
        }
        if self.prefetch == 0 {
            return bad("prefetch must be at least 1");
        }
        Ok(())
    }
}

/// Encodes message headers: `count:u32 (key:bytes value:bytes)*`.
pub fn encode_headers(headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

pub fn decode_headers(b: &[u8]) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(s)
    };
    let Some(count) = take(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))) else { return out };
    for _ in 0..count {
        let mut field = || -> Option<Bytes> {
            let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            Some(Bytes::copy_from_slice(take(n)?))
        };
        match (field(), field()) {
            (Some(k), Some(v)) => out.push((k, v)),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_headers_round_trip() {
        let c = QueueConfig { dead_letter_queue: Some(Bytes::from("dead")), prefetch: 7, ..QueueConfig::default() };
        assert_eq!(QueueConfig::decode(&c.encode()), Some(c));
        assert_eq!(QueueConfig::decode(&[1, 2, 3]), None);
        let h = vec![(Bytes::from("k"), Bytes::from("v")), (Bytes::from(""), Bytes::from("\0"))];
        assert_eq!(decode_headers(&encode_headers(&h)), h);
    }
}
