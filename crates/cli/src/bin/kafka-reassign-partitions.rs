//! `kafka-reassign-partitions`: see [`sluice_cli::kafka::reassign`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::reassign::{run, ReassignArgs};

fn main() -> ExitCode {
    run(ReassignArgs::parse())
}
