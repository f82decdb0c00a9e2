//! `kafka-topics`: see [`sluice_cli::kafka::topics`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::topics::{run, TopicsArgs};

fn main() -> ExitCode {
    run(TopicsArgs::parse())
}
