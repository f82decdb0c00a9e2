//! `kafka-console-producer`: see [`sluice_cli::kafka::producer`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::producer::{run, ProducerArgs};

fn main() -> ExitCode {
    run(ProducerArgs::parse())
}
