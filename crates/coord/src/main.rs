use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

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
    eprintln!(
        "coord: the daemon is not built yet; use --check to validate {}",
        args.file.display()
    );
    ExitCode::from(2)
}
