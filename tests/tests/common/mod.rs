//! Shared by the failover and metrics suites: a producer that remembers what was acknowledged, checks
//! that compare it with what the brokers hold, and the metrics suites' clients.

pub mod ledger;
pub mod metrics;
pub mod replication;
