//! Admin command-line tools for Sluice, one module per tool, each driven by a thin binary under
//! `src/bin/`.
//!
//! - [`zookeeper_shell`]: the coordinator's shell, command- and output-compatible with ZooKeeper's
//!   `zkCli.sh` (3.8) and Kafka's `bin/zookeeper-shell.sh`.
//!
//! The Kafka-style tools (`kafka-topics` and friends) will live beside it as further modules.
//! Tools take their arguments and their output streams from the binary, so they never read
//! environment variables or touch the process's exit status themselves.

pub mod zookeeper_shell;
