//! `zookeeper-shell`: reads the command line and runs [`sluice_cli::zookeeper_shell`] on a
//! single-threaded runtime (the session and the prompt need no more).

use std::process::ExitCode;

use anyhow::Context;
use sluice_cli::zookeeper_shell::{self, Console, Input, Invocation, USAGE};

fn main() -> anyhow::Result<ExitCode> {
    // Arguments that are not UTF-8 become znode paths and data anyway; keep what can be read.
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let options = match zookeeper_shell::parse_invocation(args) {
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Invocation::Run(options)) => options,
        Err(e) => {
            eprintln!("zookeeper-shell: {e}\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(zookeeper_shell::run(
        options,
        Console::stdio(),
        Input::stdin(),
    ));
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}
