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
///
/// `runnel healthcheck [same arguments]` exits 0 when the broker so configured
/// answers ApiVersions on its first listener (for a `FROM scratch` image's
/// HEALTHCHECK, which has no shell or curl).
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
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let healthcheck = argv.get(1).is_some_and(|a| a == "healthcheck");
    // A healthcheck runs every few seconds and logs nothing: the config's
    // log lines would only fill the container's health log.
    if healthcheck {
        argv.remove(1);
    } else {
        use std::io::IsTerminal;
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            // No colour codes in `docker logs` or files.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = Args::parse_from(argv);
    let config =
        match runnel::BrokerConfig::load(args.config.as_deref(), std::env::vars(), &args.overrides)
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("runnel: configuration error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    if healthcheck {
        return health::check(&config);
    }
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

mod health {
    use std::process::ExitCode;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CORRELATION_ID: i32 = 0x5275_6e6e;

    /// Sends ApiVersions v0 to the first listener and expects error code 0.
    pub fn check(config: &runnel::BrokerConfig) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("runnel healthcheck: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(ep) = config.listeners.first() else {
            eprintln!("runnel healthcheck: no listener configured");
            return ExitCode::FAILURE;
        };
        let result = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), probe(ep)).await });
        match result {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("runnel healthcheck: {ep}: {e:#}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("runnel healthcheck: {ep}: no answer within 5s");
                ExitCode::FAILURE
            }
        }
    }

    async fn probe(ep: &runnel::config::Endpoint) -> anyhow::Result<()> {
        let mut addr = runnel::config::bind_addr(ep).await?;
        // A wildcard bind is reached through loopback.
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let client_id = b"runnel-healthcheck";
        let mut request = Vec::with_capacity(32);
        request.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
        request.extend_from_slice(&0i16.to_be_bytes()); // v0
        request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
        request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        request.extend_from_slice(client_id);
        stream
            .write_all(&(request.len() as i32).to_be_bytes())
            .await?;
        stream.write_all(&request).await?;
        let size = stream.read_i32().await?;
        anyhow::ensure!((6..1 << 20).contains(&size), "bad response size {size}");
        let correlation = stream.read_i32().await?;
        anyhow::ensure!(correlation == CORRELATION_ID, "wrong correlation id");
        let code = stream.read_i16().await?;
        anyhow::ensure!(code == 0, "ApiVersions error code {code}");
        Ok(())
    }
}
