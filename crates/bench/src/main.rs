//! `coord-load`: parses the command line and runs the load in a multi-threaded Tokio runtime.
//! Everything else lives in the library (`sluice_bench`) so that tests can drive it.

use std::process::ExitCode;

use clap::Parser;
use sluice_bench::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coord-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(sluice_bench::run(&opts)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("coord-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
