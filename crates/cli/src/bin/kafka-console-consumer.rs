//! `kafka-console-consumer`: see [`sluice_cli::kafka::consumer`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::consumer::{run, ConsumerArgs};

fn main() -> ExitCode {
    run(ConsumerArgs::parse())
}
