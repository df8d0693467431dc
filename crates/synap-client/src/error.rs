use thiserror::Error;

/// Everything a client call can fail with.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An error reply from the server: its code (`ERR`, `WRONGTYPE`, ...) and message.
    #[error("{code} {message}")]
    Server { code: String, message: String },
    /// An HTTP error answer: status and the body's code and message.
    #[error("HTTP {status} {code}: {message}")]
    Http { status: u16, code: String, message: String },
    #[error("HTTP transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    #[error("the connection was closed by the server")]
    Closed,
}

impl ClientError {
    /// Builds a server error from an error reply line (`ERR message`).
    pub(crate) fn from_reply(line: &str) -> ClientError {
        let (code, message) = line.split_once(' ').unwrap_or((line, ""));
        ClientError::Server { code: code.to_string(), message: message.to_string() }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
