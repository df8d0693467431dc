//! One RESP connection: send commands (one at a time or pipelined), read replies.

use bytes::{Buf, BytesMut};
use synap_resp::{Value, decode, encode_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ClientError, Result};

/// Largest reply a connection buffers (a bound against a runaway server).
const MAX_REPLY: usize = 1 << 30;

pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Connection> {
        let stream =
            TcpStream::connect(addr).await.map_err(|e| ClientError::Connect { addr: addr.to_string(), source: e })?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: BytesMut::with_capacity(16 * 1024), out: Vec::with_capacity(4096) })
    }

    /// Sends one command and returns its reply (error replies included, as `Value::Error`).
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value> {
        self.out.clear();
        encode_command(args, &mut self.out);
        self.stream.write_all(&self.out).await?;
        self.read_value().await
    }

    /// Sends every command in one write and reads all replies, in order.
    pub async fn pipeline<A: AsRef<[u8]>>(&mut self, cmds: &[Vec<A>]) -> Result<Vec<Value>> {
        self.out.clear();
        for c in cmds {
            encode_command(c, &mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            replies.push(self.read_value().await?);
        }
        Ok(replies)
    }

    /// Sends raw, already encoded bytes (benchmarks pre-encode their requests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads the next reply.
    pub async fn read_value(&mut self) -> Result<Value> {
        loop {
            if !self.buf.is_empty() {
                match decode(&self.buf).map_err(|e| ClientError::Protocol(e.to_string()))? {
                    Some((v, n)) => {
                        self.buf.advance(n);
                        return Ok(v);
                    }
                    None if self.buf.len() > MAX_REPLY => {
                        return Err(ClientError::Protocol("reply larger than 1 GiB".into()));
                    }
                    None => {}
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}
