use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice_config::CoordConfig;
use sluice_coord::server::CoordServer;

/// A ZooKeeper-compatible coordinator, configured by a zookeeper.properties file.
#[derive(Parser, Debug)]
#[command(name = "coord", version)]
struct Args {
    /// Validate FILE, print the effective settings and exit.
    #[arg(long)]
    check: bool,
    /// The zookeeper.properties file.
    file: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check {
        let report = sluice_coord::check(&args.file);
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
                tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn")
            }),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let loaded = match CoordConfig::load(&args.file) {
        Ok(l) => l,
        Err(e) => {
            eprint!("{}", e.report());
            return ExitCode::from(1);
        }
    };
    sluice_coord::log_warnings(&loaded.warnings);
    let cfg = loaded.config;
    let myid = match cfg.read_myid() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
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
        let signals = Signals::install();
        let server = match CoordServer::start(&cfg, myid).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        tokio::select! {
            _ = signals.wait() => {}
            why = server.raft().failed() => {
                // As ZooKeeper does on a failed transaction-log write: stop, and let the
                // supervisor restart the node once the cause (a full disk, say) is fixed. What
                // was synced stays on disk; the restart recovers it.
                tracing::error!(error = %why, "the replicated log stopped on an error; exiting");
                eprintln!("error: the replicated log stopped: {why}");
                return ExitCode::from(2);
            }
        }
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
        }
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
