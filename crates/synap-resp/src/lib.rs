//! The Redis protocol codec, shared by the server and the tools. No I/O here.
//! - [`parser`] the server's resumable, bounded request parser
//! - [`encode`] the server's RESP2/RESP3 reply encoder
//! - [`decode`] the clients' reply decoder and command encoder

pub mod decode;
pub mod encode;
pub mod parser;

pub use decode::{DecodeError, Value, decode, encode_command};
pub use encode::{Protocol, encode, error, error_line};
pub use parser::{Limits, Parser, ProtocolError, split_args};
