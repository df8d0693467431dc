//! TLS on the listeners and the links (rustls, ring provider): a RESP port of its own beside the plain
//! one (Redis's `tls-port`), HTTPS on the HTTP port, and encrypted replication links. Client
//! certificates per `tls.auth_clients`. Certificate files are re-read when they change, without a
//! restart: new connections get the new certificate, open ones keep theirs.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{AuthClients, TlsSection};

/// A connection, plain or encrypted.
pub enum Stream {
    Plain(TcpStream),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }
}

impl Stream {
    /// Writes all of `buf` and flushes it: TLS keeps the end of a record in its buffer until a flush.
    pub async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.write_all(buf).await?;
        self.flush().await
    }
}

/// The HTTP port's server configuration: the same, announcing HTTP/1.1.
fn with_http_alpn(server: &rustls::ServerConfig) -> rustls::ServerConfig {
    let mut http = server.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    http
}

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The loaded certificates, swapped whole when the files change.
pub struct Tls {
    cfg: TlsSection,
    server: RwLock<Arc<rustls::ServerConfig>>,
    /// The same, announcing HTTP/1.1 (ALPN) for the HTTP port.
    server_http: RwLock<Arc<rustls::ServerConfig>>,
    client: RwLock<Arc<rustls::ClientConfig>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad certificate in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("cannot read a private key from {}", path.display()))
}

impl Tls {
    /// The TLS setup the configuration asks for, or `None` (no `tls.cert`).
    pub fn load(cfg: &TlsSection) -> anyhow::Result<Option<Arc<Tls>>> {
        if cfg.cert.is_none() {
            anyhow::ensure!(
                cfg.key.is_none()
                    && cfg.resp_addr.is_none()
                    && cfg.ca.is_none()
                    && cfg.auth_clients.is_none()
                    && !cfg.replication
                    && !cfg.cluster
                    && !cfg.resp_only,
                "tls.key, tls.ca, tls.auth_clients, tls.resp_addr, tls.resp_only, tls.replication and tls.cluster need tls.cert"
            );
            return Ok(None);
        }
        anyhow::ensure!(!cfg.resp_only || cfg.resp_addr.is_some(), "tls.resp_only needs tls.resp_addr");
        // Links this node opens check the other end against the CA: without one they could not connect.
        anyhow::ensure!(
            cfg.ca.is_some() || !(cfg.replication || cfg.cluster),
            "tls.replication and tls.cluster need tls.ca (the CA the other nodes' certificates come from)"
        );
        let (server, client) = Tls::build(cfg)?;
        let tls = Tls {
            cfg: cfg.clone(),
            server_http: RwLock::new(Arc::new(with_http_alpn(&server))),
            server: RwLock::new(Arc::new(server)),
            client: RwLock::new(Arc::new(client)),
            stamps: Mutex::new(Tls::stamps_of(cfg)),
        };
        Ok(Some(Arc::new(tls)))
    }

    fn files(cfg: &TlsSection) -> Vec<PathBuf> {
        [&cfg.cert, &cfg.key, &cfg.ca].into_iter().flatten().cloned().collect()
    }

    fn stamps_of(cfg: &TlsSection) -> Vec<Option<SystemTime>> {
        Tls::files(cfg).iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }

    fn build(cfg: &TlsSection) -> anyhow::Result<(rustls::ServerConfig, rustls::ClientConfig)> {
        let cert_path = cfg.cert.as_ref().context("tls.cert is not set")?;
        let key_path = cfg.key.as_ref().context("tls.key is not set")?;
        let certs = read_certs(cert_path)?;
        let key = read_key(key_path)?;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &cfg.ca {
            for c in read_certs(ca)? {
                roots.add(c).with_context(|| format!("bad CA certificate in {}", ca.display()))?;
            }
        }
        let roots = Arc::new(roots);
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match cfg.auth_clients() {
            AuthClients::No => builder.with_no_client_auth(),
            mode => {
                anyhow::ensure!(cfg.ca.is_some(), "tls.auth_clients {mode:?} needs tls.ca (the clients' CA)");
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
                let v = if mode == AuthClients::Optional { v.allow_unauthenticated() } else { v };
                builder.with_client_cert_verifier(v.build().context("client certificate verifier")?)
            }
        };
        let server = builder.with_single_cert(certs.clone(), key.clone_key()).context("certificate and key")?;
        // Links this node opens (replication): the same CA, and this node's certificate as its own.
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .context("certificate and key for outgoing links")?;
        Ok((server, client))
    }

    /// Re-reads the files if any changed since they were loaded; `Ok(true)` when it took new ones.
    /// Blocking (file reads): call it on a blocking thread.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = Tls::stamps_of(&self.cfg);
        if *self.stamps.lock() == now {
            return Ok(false);
        }
        let (server, client) = Tls::build(&self.cfg)?;
        *self.server_http.write() = Arc::new(with_http_alpn(&server));
        *self.server.write() = Arc::new(server);
        *self.client.write() = Arc::new(client);
        *self.stamps.lock() = now;
        Ok(true)
    }

    /// Checks the files every `tls.reload_secs` until `stop`.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(self.cfg.reload_secs.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.reload_if_changed()).await {
                Ok(Ok(true)) => tracing::info!("TLS certificates reloaded"),
                Ok(Ok(false)) => {}
                // A half-written file: the old certificates stay; the next check tries again.
                Ok(Err(e)) => tracing::warn!("TLS certificates not reloaded: {e:#}"),
                Err(e) => tracing::warn!("TLS reload task failed: {e}"),
            }
        }
    }

    /// Accepts a client's handshake (bounded in time): RESP and the cluster port (no ALPN).
    pub async fn accept(&self, socket: TcpStream) -> io::Result<Stream> {
        let config = self.server.read().clone();
        Tls::accept_with(config, socket).await
    }

    /// Accepts an HTTPS client's handshake (ALPN `http/1.1`).
    pub async fn accept_http(&self, socket: TcpStream) -> io::Result<Stream> {
        let config = self.server_http.read().clone();
        Tls::accept_with(config, socket).await
    }

    async fn accept_with(config: Arc<rustls::ServerConfig>, socket: TcpStream) -> io::Result<Stream> {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
            Ok(Ok(s)) => Ok(Stream::Server(Box::new(s))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }

    /// Opens the TLS side of a link this node starts, to `host` (a name or an IP address the peer's
    /// certificate names).
    pub async fn connect(&self, host: &str, socket: TcpStream) -> io::Result<Stream> {
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.client.read().clone());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, socket)).await {
            Ok(Ok(s)) => Ok(Stream::Client(Box::new(s))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }

    /// HTTPS on the HTTP port.
    pub fn http(&self) -> bool {
        self.cfg.http
    }

    /// Replication links encrypted.
    pub fn replication(&self) -> bool {
        self.cfg.replication
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings that need a certificate, or a CA, refuse to start without one (never plain text in
    /// their place).
    #[test]
    fn settings_that_need_certificates() {
        let bad = |edit: fn(&mut TlsSection)| {
            let mut c = TlsSection::default();
            edit(&mut c);
            Tls::load(&c).err().map(|e| e.to_string())
        };
        assert!(bad(|c| c.cluster = true).is_some_and(|e| e.contains("need tls.cert")));
        assert!(bad(|c| c.replication = true).is_some_and(|e| e.contains("need tls.cert")));
        assert!(bad(|c| c.resp_only = true).is_some_and(|e| e.contains("need tls.cert")));
        assert!(bad(|c| c.ca = Some("ca.pem".into())).is_some());
        assert!(Tls::load(&TlsSection::default()).unwrap().is_none());
        let missing = |edit: fn(&mut TlsSection)| {
            let mut c = TlsSection { cert: Some("c.pem".into()), key: Some("k.pem".into()), ..Default::default() };
            edit(&mut c);
            Tls::load(&c).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(missing(|c| c.cluster = true).contains("need tls.ca"));
        assert!(missing(|c| c.resp_only = true).contains("needs tls.resp_addr"));
    }
}
