use clap::Parser;
use synap_server::RunningServer;
use synap_server::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let config = match Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synap-server: configuration error: {e:#}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log.level)
        .map_err(|e| anyhow::anyhow!("log.level: invalid filter '{}': {e}", config.log.level))?;
    match config.log.format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = RunningServer::start(config).await?;
        // A machine-readable line for scripts and tests that start the server on port 0.
        let mut line = format!("synap-server listening http={}", server.http_addr);
        if let Some(resp) = server.resp_addr {
            line.push_str(&format!(" resp={resp}"));
        }
        if let Some(tls) = server.tls_resp_addr {
            line.push_str(&format!(" tls={tls}"));
        }
        if let Some(metrics) = server.metrics_addr {
            line.push_str(&format!(" metrics={metrics}"));
        }
        if let Some(cluster) = &server.cluster_addr {
            line.push_str(&format!(" cluster={cluster}"));
        }
        println!("{line}");
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
