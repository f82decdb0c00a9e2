use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice_broker::BrokerServer;
use sluice_config::BrokerConfig;

/// A Kafka-compatible broker, configured by a server.properties file.
#[derive(Parser, Debug)]
#[command(name = "broker", version)]
struct Args {
    /// Validate FILE, print the effective settings and exit.
    #[arg(long)]
    check: bool,
    /// The server.properties file.
    file: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check {
        let report = sluice_broker::check(&args.file);
        print!("{}", report.stdout);
        eprint!("{}", report.stderr);
        return if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,zookeeper_client=warn")
            }),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let loaded = match BrokerConfig::load(&args.file) {
        Ok(l) => l,
        Err(e) => {
            eprint!("{}", e.report());
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        // Handlers first: a SIGTERM during start-up must still mean a clean stop.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut server = match BrokerServer::start(loaded.config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let code = tokio::select! {
            _ = term.recv() => ExitCode::SUCCESS,
            _ = int.recv() => ExitCode::SUCCESS,
            reason = server.fatal() => {
                tracing::error!("{reason}");
                ExitCode::from(1)
            }
        };
        tracing::info!("shutting down");
        server.shutdown().await;
        code
    })
}
