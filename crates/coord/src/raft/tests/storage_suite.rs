//! openraft's own storage test suite against the sled log store and the file-snapshot state
//! machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use crate::raft::engine::{LogEngine, SledEngine};
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::stats::RaftStats;
use crate::raft::types::{Application, SnapshotWriter, StorageResult, TypeConfig};

/// Keeps nothing: the suite only checks the Raft bookkeeping around the application.
#[derive(Debug)]
struct NullApp;

impl Application for NullApp {
    fn apply(&self, _term: u64, _index: u64, _payload: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> SnapshotWriter {
        Box::new(|| b"null".to_vec())
    }
    fn restore(&self, _data: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> StorageResult<(tempfile::TempDir, LogStore, StateMachine)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = SledEngine::open(&dir.path().join("log"), 4 * 1024 * 1024).expect("sled");
        let stats = Arc::new(RaftStats::default());
        let log = LogStore::new(Arc::new(engine) as Arc<dyn LogEngine>, stats.clone())
            .expect("sync thread");
        let sm = StateMachine::open(&dir.path().join("snapshots"), Arc::new(NullApp), stats)
            .expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_sled_store() {
    Suite::test_all(Builder).expect("storage suite");
}
