//! The Kafka-style admin tools, command- and output-compatible with Apache Kafka 3.x's
//! `bin/kafka-*.sh` scripts, driving the broker through librdkafka (the `rdkafka` crate):
//!
//! - [`topics`]: `kafka-topics` (create, list, describe, alter, delete topics);
//! - [`producer`]: `kafka-console-producer` (stdin lines to records);
//! - [`consumer`]: `kafka-console-consumer` (records to stdout lines);
//! - [`groups`]: `kafka-consumer-groups` (list, describe, reset offsets, delete groups);
//! - [`leader_election`]: `kafka-leader-election` (preferred or unclean elections);
//! - [`reassign`]: `kafka-reassign-partitions` (generate, execute, verify, cancel, list);
//! - [`configs`]: `kafka-configs` for client and user quotas (alter, describe).
//!
//! The last three send their requests through the project's own Kafka client module (the
//! first two to the controller, [`controller`]); librdkafka has no call for them.
//!
//! Each tool exposes a clap `Args` struct and a `run` function that returns the process exit
//! status; [`props`] holds what they share (`k=v` properties, properties files, client config).

pub mod configs;
pub mod consumer;
pub mod controller;
pub mod groups;
pub mod leader_election;
pub mod producer;
pub mod props;
pub mod reassign;
pub mod topics;

/// The one action whose flag is set among `flags`, or `usage` when none or several are.
pub(crate) fn exactly_one<A: Copy>(flags: &[(bool, A)], usage: &str) -> Result<A, String> {
    let mut chosen = flags.iter().filter(|(on, _)| *on).map(|(_, a)| *a);
    match (chosen.next(), chosen.next()) {
        (Some(a), None) => Ok(a),
        _ => Err(usage.to_string()),
    }
}
