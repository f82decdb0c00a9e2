//! Admin command-line tools for Sluice, one module per tool, each driven by a thin binary under
//! `src/bin/`.
//!
//! - [`zookeeper_shell`]: the coordinator's shell, command- and output-compatible with ZooKeeper's
//!   `zkCli.sh` (3.8) and Kafka's `bin/zookeeper-shell.sh`.
//! - [`kafka`]: the Kafka-style tools (`kafka-topics`, `kafka-console-producer`,
//!   `kafka-console-consumer`, `kafka-consumer-groups`), option- and output-compatible with
//!   Apache Kafka 3.x's scripts, talking to the broker through librdkafka.
//!
//! Tools take their arguments from the binary and hand their exit status back to it, so they
//! never read environment variables or end the process themselves.

pub mod kafka;
pub mod zookeeper_shell;
