//! The Redis protocol codec: a resumable, bounded request [`parser`] and the reply [`encode`]r, shared by
//! the server and the tools. No I/O here.

pub mod encode;
pub mod parser;

pub use encode::{Protocol, encode, error, error_line};
pub use parser::{Limits, Parser, ProtocolError, split_args};
