use std::path::PathBuf;

use clap::Parser;

/// Fetch responses are built in fresh multi-megabyte buffers; glibc's malloc
/// hands those back to the kernel and page-faults them in again on every
/// fetch, while mimalloc reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runnel: a broker that speaks Apache Kafka's wire protocol.
///
/// With no arguments: a single node on localhost:9092 with data in
/// ./runnel-data. Configuration uses Kafka's property names, from a
/// server.properties file, KAFKA_* environment variables (as the apache/kafka
/// image maps them) and --override flags; flags win over env over file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A server.properties file, as kafka-server-start.sh takes it.
    config: Option<PathBuf>,
    /// key=value, overriding the file and the environment.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config =
        match runnel::BrokerConfig::load(args.config.as_deref(), std::env::vars(), &args.overrides)
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("runnel: configuration error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runnel: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config));
    // Everything durable is done by now; do not wait on idle worker threads.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: runnel::BrokerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers first: the listener is bound inside `start`, and a signal
    // arriving before they exist would kill the process uncleanly.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let handle = runnel::broker::start(config).await?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    handle.shutdown().await
}
