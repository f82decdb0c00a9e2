//! `kafka-configs` (client and user quotas): see [`sluice_cli::kafka::configs`].

use std::process::ExitCode;

fn main() -> ExitCode {
    sluice_cli::kafka::configs::main()
}
