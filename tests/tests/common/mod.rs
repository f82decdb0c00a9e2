//! Shared by the failover suites: a producer that remembers what was acknowledged, and checks
//! that compare it with what the brokers hold.

pub mod ledger;
pub mod replication;
