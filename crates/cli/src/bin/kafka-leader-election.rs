//! `kafka-leader-election`: see [`sluice_cli::kafka::leader_election`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::leader_election::{run, ElectionArgs};

fn main() -> ExitCode {
    run(ElectionArgs::parse())
}
