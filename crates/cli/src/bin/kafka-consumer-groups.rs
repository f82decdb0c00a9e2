//! `kafka-consumer-groups`: see [`sluice_cli::kafka::groups`].

use std::process::ExitCode;

use clap::Parser;
use sluice_cli::kafka::groups::{run, GroupsArgs};

fn main() -> ExitCode {
    run(GroupsArgs::parse())
}
