//! `kafka-load`: parses the command line and runs one subcommand. Everything else lives in the
//! library (`sluice_bench::kafka`).

use std::process::ExitCode;

use clap::Parser;
use sluice_bench::kafka::{self, KafkaOptions};

fn main() -> ExitCode {
    let opts = KafkaOptions::parse();
    match kafka::run(&opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kafka-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
