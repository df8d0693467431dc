//! TLS: the RESP TLS port beside the plain one (redis-cli --tls, the redis crate with rustls), HTTPS
//! (reqwest), client certificates when required, certificates reloaded without a restart, replication
//! over TLS. Certificates are made for each test with rcgen.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |san: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(san).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "synap");
    let (client_pem, client_key) = leaf(vec!["client".into()], "client");
    let write = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        cert: write("cert.pem", &server_pem),
        key: write("key.pem", &server_key),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client-key.pem", &client_key),
    }
}

fn config(dir: &Path, p: &Pki, auth_clients: &str, extra: &str) -> PathBuf {
    let path = dir.join("synap.yaml");
    let text = format!(
        "tls:\n  cert: {}\n  key: {}\n  ca: {}\n  auth_clients: {auth_clients}\n  resp_addr: \"127.0.0.1:0\"\n  reload_secs: 1\n{extra}",
        p.cert.display(),
        p.key.display(),
        p.ca.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn redis_cli(args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("redis-cli").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

fn port(addr: &str) -> String {
    addr.rsplit_once(':').unwrap().1.to_string()
}

async fn rustls_ping(addr: &str, ca: &Path, client: Option<(&Path, &Path)>) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = redis::TlsCertificates {
        client_tls: client.map(|(c, k)| redis::ClientTlsConfig {
            client_cert: std::fs::read(c).unwrap(),
            client_key: std::fs::read(k).unwrap(),
        }),
        root_cert: Some(std::fs::read(ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(format!("rediss://{addr}/"), certs).map_err(|e| e.to_string())?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut c = client.get_multiplexed_async_connection_with_config(&cfg).await.map_err(|e| e.to_string())?;
    redis::cmd("PING").query_async::<String>(&mut c).await.map_err(|e| e.to_string())
}

/// Both RESP ports, HTTPS, and a plain-text client refused cleanly on the TLS port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_port_https_and_plain_clients() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "a");
    let conf = config(dir.path(), &p, "optional", "");
    let server = ServerProcess::start(&dir.path().join("data"), &["--config", conf.to_str().unwrap()]);
    let tls = server.tls_addr.clone().expect("a TLS port");
    let plain = server.resp_addr.clone().unwrap();
    // The redis crate over rustls.
    assert_eq!(rustls_ping(&tls, &p.ca, None).await, Ok("PONG".into()));
    // redis-cli --tls (OpenSSL), when installed.
    let ca = p.ca.to_str().unwrap();
    if let Some((ok, out)) = redis_cli(&["--tls", "--cacert", ca, "-h", "127.0.0.1", "-p", &port(&tls), "PING"]) {
        assert!(ok && out.starts_with("PONG"), "{out}");
        // A certificate the client does not trust: refused.
        let other = pki(dir.path(), "other");
        let (_, out) =
            redis_cli(&["--tls", "--cacert", other.ca.to_str().unwrap(), "-h", "127.0.0.1", "-p", &port(&tls), "PING"])
                .unwrap();
        assert!(!out.starts_with("PONG"), "{out}");
    }
    // A plain-text client on the TLS port: the connection closes, no reply, and the server goes on.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&tls).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(!buf[..n].starts_with(b"+PONG"), "a plain client got a reply");
    }
    assert_eq!(rustls_ping(&tls, &p.ca, None).await, Ok("PONG".into()));
    // Large replies arrive whole over TLS (its records are flushed, not left in its buffer).
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(std::fs::read(&p.ca).unwrap()) };
        let client = redis::Client::build_with_tls(format!("rediss://{tls}/"), certs).unwrap();
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        let mut c = client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap();
        for size in [1usize, 16_383, 65_537, 3 << 20] {
            let value = "v".repeat(size);
            let _: () = redis::cmd("SET").arg("big").arg(&value).query_async(&mut c).await.unwrap();
            let got: String = redis::cmd("GET").arg("big").query_async(&mut c).await.unwrap();
            assert_eq!(got.len(), size);
        }
    }
    // The plain port is still plain.
    let mut c =
        redis::Client::open(format!("redis://{plain}/")).unwrap().get_multiplexed_async_connection().await.unwrap();
    assert_eq!(redis::cmd("PING").query_async::<String>(&mut c).await.unwrap(), "PONG");
    // HTTPS with the CA; plain HTTP on that port fails.
    let ca_cert = reqwest::Certificate::from_pem(&std::fs::read(&p.ca).unwrap()).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(ca_cert).build().unwrap();
    let r = https.get(format!("https://{}/health", server.http_addr)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let plain_http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    assert!(plain_http.get(format!("http://{}/health", server.http_addr)).send().await.is_err());
}

/// `tls.auth_clients: yes`: no certificate, no connection; the CA's client certificate gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "b");
    let conf = config(dir.path(), &p, "yes", "");
    let server = ServerProcess::start(&dir.path().join("data"), &["--config", conf.to_str().unwrap()]);
    let tls = server.tls_addr.clone().unwrap();
    assert!(rustls_ping(&tls, &p.ca, None).await.is_err(), "no client certificate got in");
    assert_eq!(rustls_ping(&tls, &p.ca, Some((&p.client_cert, &p.client_key))).await, Ok("PONG".into()));
    // A client certificate of another CA: refused.
    let other = pki(dir.path(), "other");
    assert!(rustls_ping(&tls, &p.ca, Some((&other.client_cert, &other.client_key))).await.is_err());
    let ca = p.ca.to_str().unwrap();
    if let Some((ok, out)) = redis_cli(&[
        "--tls",
        "--cacert",
        ca,
        "--cert",
        p.client_cert.to_str().unwrap(),
        "--key",
        p.client_key.to_str().unwrap(),
        "-h",
        "127.0.0.1",
        "-p",
        &port(&tls),
        "PING",
    ]) {
        assert!(ok && out.starts_with("PONG"), "{out}");
    }
}

/// New certificate files are picked up without a restart: a client that trusts only the new CA gets
/// in once the files change, one that trusts only the old CA no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = pki(dir.path(), "old");
    let conf = config(dir.path(), &old, "no", "");
    let server = ServerProcess::start(&dir.path().join("data"), &["--config", conf.to_str().unwrap()]);
    let tls = server.tls_addr.clone().unwrap();
    assert_eq!(rustls_ping(&tls, &old.ca, None).await, Ok("PONG".into()));
    let new = pki(dir.path(), "new");
    assert!(rustls_ping(&tls, &new.ca, None).await.is_err());
    // Replace the files the configuration names (key first: a check between the two sees a mismatch and
    // keeps the old pair).
    std::fs::copy(&new.key, &old.key).unwrap();
    std::fs::copy(&new.cert, &old.cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rustls_ping(&tls, &new.ca, None).await.is_err() {
        assert!(Instant::now() < deadline, "the new certificate was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rustls_ping(&tls, &old.ca, None).await.is_err());
}

/// A replica follows its primary over TLS (`tls.replication`), showing its own certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "r");
    let pdir = dir.path().join("p");
    std::fs::create_dir_all(&pdir).unwrap();
    let pconf = config(&pdir, &p, "yes", "");
    let primary = ServerProcess::start(&pdir.join("data"), &["--config", pconf.to_str().unwrap()]);
    let rdir = dir.path().join("r");
    std::fs::create_dir_all(&rdir).unwrap();
    let rconf = config(&rdir, &p, "yes", "  replication: true\n");
    let replica = ServerProcess::start(&rdir.join("data"), &["--config", rconf.to_str().unwrap()]);
    let mut pc = redis::Client::open(format!("redis://{}/", primary.resp_addr.as_ref().unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut rc = redis::Client::open(format!("redis://{}/", replica.resp_addr.as_ref().unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET").arg("before").arg("1").query_async(&mut pc).await.unwrap();
    let tls = primary.tls_addr.clone().unwrap();
    let (host, port) = tls.rsplit_once(':').unwrap();
    let _: String = redis::cmd("REPLICAOF").arg(host).arg(port).query_async(&mut rc).await.unwrap();
    let _: () = redis::cmd("SET").arg("after").arg("2").query_async(&mut pc).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: (Option<String>, Option<String>) =
            redis::pipe().get("before").get("after").query_async(&mut rc).await.unwrap();
        if v == (Some("1".into()), Some("2".into())) {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not catch up over TLS: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info: String = redis::cmd("INFO").arg("replication").query_async(&mut rc).await.unwrap();
    assert!(info.contains("master_link_status:up"), "{info}");
}

/// The cluster port over TLS with client certificates required (`tls.cluster`, `auth_clients: yes`):
/// two nodes form a cluster and the second comes in sync; a client without TLS gets nothing from the
/// port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_port_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "c");
    let mut nodes = Vec::new();
    for id in 1..=2u64 {
        let ndir = dir.path().join(format!("n{id}"));
        std::fs::create_dir_all(&ndir).unwrap();
        let extra = format!(
            "  cluster: true\ncluster:\n  enabled: true\n  node_id: {id}\n  addr: \"127.0.0.1:0\"\n  bootstrap: {}\n",
            id == 1
        );
        let conf = config(&ndir, &p, "yes", &extra);
        nodes.push(ServerProcess::start(&ndir.join("data"), &["--config", conf.to_str().unwrap()]));
    }
    let mut c = redis::Client::open(format!("redis://{}/", nodes[0].resp_addr.as_ref().unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move { redis::cmd("CLUSTER").arg("INFO").query_async::<String>(&mut c).await.unwrap() }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !info(&mut c).await.contains("cluster_writable:1") {
        assert!(Instant::now() < deadline, "node 1 did not become writable: {}", info(&mut c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = nodes[1].cluster_addr.clone().unwrap();
    let r: redis::RedisResult<String> =
        redis::cmd("CLUSTER").arg("ADDNODE").arg(2).arg(&second).query_async(&mut c).await;
    assert!(r.is_ok(), "{r:?}");
    while !info(&mut c).await.contains("cluster_isr:1,2") {
        assert!(Instant::now() < deadline, "node 2 did not come in sync: {}", info(&mut c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A plain frame to the cluster port: no answer, the connection closes.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(nodes[0].cluster_addr.as_ref().unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let body = br#"{"Hello":null}"#;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        s.write_all(&frame).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || buf[0] == 0x15, "the cluster port answered a plain client: {:?}", &buf[..n]);
    }
}

/// `tls.resp_only`: RESP is served on the TLS port alone, which becomes the RESP address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_resp() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "o");
    let conf = config(dir.path(), &p, "no", "  resp_only: true\n");
    let server = ServerProcess::start(&dir.path().join("data"), &["--config", conf.to_str().unwrap()]);
    let tls = server.tls_addr.clone().unwrap();
    assert_eq!(server.resp_addr.as_deref(), Some(tls.as_str()));
    assert_eq!(rustls_ping(&tls, &p.ca, None).await, Ok("PONG".into()));
}

/// A client that reads slowly still gets a large reply whole over TLS: the end of the reply is flushed
/// out of the TLS buffer, not left there while the server waits for the next command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_the_whole_reply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "s");
    let conf = config(dir.path(), &p, "no", "");
    let server = ServerProcess::start(&dir.path().join("data"), &["--config", conf.to_str().unwrap()]);
    let tls = server.tls_addr.clone().unwrap();
    let size = 3 << 20;
    let mut plain = redis::Client::open(format!("redis://{}/", server.resp_addr.as_ref().unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET").arg("big").arg("v".repeat(size)).query_async(&mut plain).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&p.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(&tls).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n").await.unwrap();
    s.flush().await.unwrap();
    // Read nothing for a while: the server's socket buffer fills and its writes wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let want = format!("${size}\r\n").len() + size + 2;
    let mut got = Vec::with_capacity(want);
    let mut buf = vec![0u8; 1 << 16];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < want {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the reply stopped at {} of {want} bytes", got.len());
    assert_eq!(got.len(), want);
}
