//! The one error vocabulary of the engine.
//!
//! Every variant has a stable code (`code()`), the word a RESP client sees after `-` and the `code` field of
//! the JSON error body, and an HTTP status class (`kind()`), so each front end renders it without its own
//! mapping table. Messages follow Redis's wording where Redis has the same error.

use thiserror::Error;

/// How a front end should classify an error (HTTP status, mostly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or names an impossible operation.
    BadRequest,
    /// 404: the target does not exist.
    NotFound,
    /// 409: the target is in a state that forbids the operation.
    Conflict,
    /// 413: a size limit was exceeded.
    TooLarge,
    /// 429/503: a capacity limit (memory, depth) was reached.
    Limit,
    /// 503: the server cannot accept writes (persistence failure).
    Unavailable,
    /// 500: an internal fault.
    Internal,
}

/// An error returned by [`crate::Engine::execute`].
#[derive(Debug, Clone, Error, PartialEq)]
pub enum CommandError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("ERR {0}")]
    Invalid(String),
    /// The command's argument count is outside its arity (the table's check, made before parsing:
    /// inside MULTI it refuses the command at once, as Redis does).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// An error line given whole, its first word the code (a script's error, BUSY, NOSCRIPT, ...).
    #[error("{0}")]
    Raw(String),
    #[error("ERR string exceeds maximum allowed size ({limit} bytes)")]
    ValueTooLarge { limit: usize },
    #[error("ERR key exceeds maximum allowed size ({limit} bytes)")]
    KeyTooLarge { limit: usize },
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    #[error("MISCONF persistence failed, writes are refused: {0}")]
    Persistence(String),
    #[error("ERR internal error: {0}")]
    Internal(String),
    /// A named object (queue, stream, ...) does not exist.
    #[error("ERR {0}")]
    NotFound(String),
    #[error("ERR {0}")]
    AlreadyExists(String),
    #[error("QUEUEFULL queue '{0}' is at its max_depth")]
    QueueFull(String),
    /// A consumer group (or its stream) is missing; the message is Redis's, per command.
    #[error("NOGROUP {0}")]
    NoGroup(String),
    #[error("BUSYGROUP Consumer Group name already exists")]
    BusyGroup,
    #[error("ERR offset {requested} is not retained: the oldest retained offset is {oldest}")]
    OffsetOutOfRange { requested: u64, oldest: u64 },
    #[error("ERR event exceeds the maximum event size ({limit} bytes)")]
    EventTooLarge { limit: usize },
    /// A write sent to a replica.
    #[error("READONLY You can't write against a read only replica.")]
    ReadOnly {
        /// The primary's address (`host:port`), for HTTP's error body.
        primary: String,
    },
    /// A cluster member that acts as primary without a lease (cut off from the quorum): another node may
    /// be primary already, so it answers neither reads nor writes as the primary.
    #[error("CLUSTERDOWN {0}")]
    ClusterDown(String),
    /// Fewer replicas are connected than `replication.min_replicas_to_ack` asks to hold each write.
    #[error("NOREPLICAS Not enough good replicas to write.")]
    NoReplicas,
    /// The replicas did not acknowledge a write in time under `replication.min_replicas_to_ack`: it is
    /// applied here but may be lost with this server.
    #[error("NOREPLICAS the write is applied but {acked} of the {needed} replicas required acknowledged it in time")]
    NotReplicated { acked: usize, needed: usize },
    #[error(
        "ERR the reply would be about {bytes} bytes, more than the output limit of {limit}; ask for less (a range, SCAN)"
    )]
    ReplyTooLarge { bytes: usize, limit: usize },
}

impl CommandError {
    /// The stable code: the first word of the RESP error line and the JSON `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::WrongType => "WRONGTYPE",
            CommandError::NotInteger | CommandError::NotFloat => "ERR",
            CommandError::Overflow | CommandError::NanOrInfinity => "ERR",
            CommandError::Syntax | CommandError::Invalid(_) | CommandError::InvalidExpire(_) => "ERR",
            CommandError::WrongArity(_) => "ERR",
            CommandError::NoSuchKey => "ERR",
            CommandError::ValueTooLarge { .. } | CommandError::KeyTooLarge { .. } => "ERR",
            CommandError::OutOfMemory => "OOM",
            CommandError::Persistence(_) => "MISCONF",
            CommandError::Internal(_) => "ERR",
            CommandError::NotFound(_) | CommandError::AlreadyExists(_) => "ERR",
            CommandError::QueueFull(_) => "QUEUEFULL",
            CommandError::NoGroup(_) => "NOGROUP",
            CommandError::BusyGroup => "BUSYGROUP",
            CommandError::OffsetOutOfRange { .. } | CommandError::EventTooLarge { .. } => "ERR",
            CommandError::ReplyTooLarge { .. } => "ERR",
            CommandError::ReadOnly { .. } => "READONLY",
            CommandError::ClusterDown(_) => "CLUSTERDOWN",
            CommandError::NoReplicas | CommandError::NotReplicated { .. } => "NOREPLICAS",
            CommandError::Raw(m) => match m.split(' ').next() {
                Some("BUSY") => "BUSY",
                Some("NOSCRIPT") => "NOSCRIPT",
                Some("NOTBUSY") => "NOTBUSY",
                Some("UNKILLABLE") => "UNKILLABLE",
                Some("WRONGTYPE") => "WRONGTYPE",
                Some("OOM") => "OOM",
                _ => "ERR",
            },
        }
    }

    /// A finer code for JSON bodies, where `ERR` alone says little.
    pub fn json_code(&self) -> &'static str {
        match self {
            CommandError::WrongType => "WRONG_TYPE",
            CommandError::NotInteger => "NOT_INTEGER",
            CommandError::NotFloat => "NOT_FLOAT",
            CommandError::Overflow | CommandError::NanOrInfinity => "OVERFLOW",
            CommandError::Syntax | CommandError::Invalid(_) | CommandError::InvalidExpire(_) => "BAD_REQUEST",
            CommandError::WrongArity(_) => "BAD_REQUEST",
            CommandError::NoSuchKey => "NOT_FOUND",
            CommandError::ValueTooLarge { .. } | CommandError::KeyTooLarge { .. } => "TOO_LARGE",
            CommandError::OutOfMemory => "OUT_OF_MEMORY",
            CommandError::Persistence(_) => "PERSISTENCE_FAILED",
            CommandError::Internal(_) => "INTERNAL",
            CommandError::NotFound(_) => "NOT_FOUND",
            CommandError::AlreadyExists(_) => "CONFLICT",
            CommandError::QueueFull(_) => "QUEUE_FULL",
            CommandError::NoGroup(_) => "NOT_FOUND",
            CommandError::BusyGroup => "CONFLICT",
            CommandError::OffsetOutOfRange { .. } => "OFFSET_OUT_OF_RANGE",
            CommandError::EventTooLarge { .. } | CommandError::ReplyTooLarge { .. } => "TOO_LARGE",
            CommandError::ReadOnly { .. } => "READONLY",
            CommandError::ClusterDown(_) => "CLUSTER_DOWN",
            CommandError::NoReplicas | CommandError::NotReplicated { .. } => "NO_REPLICAS",
            CommandError::Raw(_) => "SCRIPT_ERROR",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::WrongType => ErrorKind::Conflict,
            CommandError::NoSuchKey | CommandError::NotFound(_) => ErrorKind::NotFound,
            CommandError::AlreadyExists(_) => ErrorKind::Conflict,
            CommandError::QueueFull(_) => ErrorKind::Limit,
            CommandError::NoGroup(_) => ErrorKind::NotFound,
            CommandError::BusyGroup => ErrorKind::Conflict,
            CommandError::EventTooLarge { .. } | CommandError::ReplyTooLarge { .. } => ErrorKind::TooLarge,
            CommandError::ValueTooLarge { .. } | CommandError::KeyTooLarge { .. } => ErrorKind::TooLarge,
            CommandError::OutOfMemory => ErrorKind::Limit,
            CommandError::Persistence(_) => ErrorKind::Unavailable,
            CommandError::ReadOnly { .. } => ErrorKind::Conflict,
            CommandError::NoReplicas | CommandError::NotReplicated { .. } => ErrorKind::Unavailable,
            CommandError::ClusterDown(_) => ErrorKind::Unavailable,
            CommandError::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::BadRequest,
        }
    }

    /// The message without the leading code word (for JSON bodies).
    pub fn message(&self) -> String {
        let full = self.to_string();
        match full.split_once(' ') {
            Some((first, rest)) if first == self.code() => rest.to_string(),
            _ => full,
        }
    }
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;
