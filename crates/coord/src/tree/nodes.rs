//! The map from full path to node, split into shards that are copied on write, so that a
//! snapshot can be taken without stopping the tree.
//!
//! ```text
//!   Tree.nodes        ─► [ shard 0 | shard 1 | ... | shard 255 ]   each an Arc<HashMap>
//!   FrozenTree.nodes  ─► [ shard 0 | shard 1 | ... | shard 255 ]   freeze(): 256 pointer copies
//!
//!   after a freeze, the first change to a shard copies that shard (1/256 of the tree) and
//!   goes on in the copy; the frozen copy keeps the old one until its snapshot is written
//! ```
//!
//! A path is hashed once; the hash picks its shard and its place in the shard's table. [`Nodes::clone`] copies the shard pointers
//! only; while no copy is alive every change happens in place, at the speed of a plain hash
//! map (a persistent trie was measured first: its reads and writes cost 1.5–2× more all the
//! time, while the shard copies here are paid once per snapshot, a fraction of a millisecond
//! each on a million-node tree). The state machine freezes the map for each snapshot and
//! encodes the frozen copy on another thread while applying goes on (ZooKeeper takes its
//! snapshots in the background too, there fuzzily; the copy here is exact as of the last
//! applied entry).
//!
//! The methods mirror the part of `std::collections::HashMap` the tree uses.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::hash_table::{Entry, HashTable};

use super::Node;

/// Shards of a map; a power of two.
const SHARDS: usize = 256;

/// Paths are shared (`Arc<str>`) so that copying a shard copies pointers, not strings.
type Shard = HashTable<(Arc<str>, Node)>;

/// A path's hash picks its shard with bits 32..40, which the shard's table uses for neither
/// the bucket (the low bits, for tables under 2^32 buckets) nor the control byte (the top 7).
fn shard_index(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

#[derive(Clone)]
pub(super) struct Nodes {
    shards: Vec<Arc<Shard>>,
    /// One hasher for every shard, so that a lookup hashes the path once.
    hasher: RandomState,
    len: usize,
}

impl Default for Nodes {
    fn default() -> Self {
        // One empty table shared by every shard until it gets its first node.
        let empty = Arc::new(Shard::new());
        Nodes {
            shards: vec![empty; SHARDS],
            hasher: RandomState::new(),
            len: 0,
        }
    }
}

fn key_is(path: &str) -> impl Fn(&(Arc<str>, Node)) -> bool + '_ {
    move |(k, _)| &**k == path
}

impl Nodes {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    pub(super) fn get(&self, path: &str) -> Option<&Node> {
        self.get_key_value(path).map(|(_, n)| n)
    }

    pub(super) fn get_key_value(&self, path: &str) -> Option<(&str, &Node)> {
        let hash = self.hash(path);
        self.shards[shard_index(hash)]
            .find(hash, key_is(path))
            .map(|(k, n)| (&**k, n))
    }

    pub(super) fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The shard of `hash`, copied first if a frozen copy still shares it; `None` if the
    /// shard is shared and `path` is not in it (a miss must not copy a shard).
    fn shard_for_change(&mut self, hash: u64, path: &str) -> Option<&mut Shard> {
        let shard = &mut self.shards[shard_index(hash)];
        if Arc::get_mut(shard).is_none() && shard.find(hash, key_is(path)).is_none() {
            return None;
        }
        Some(Arc::make_mut(shard))
    }

    pub(super) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let hash = self.hash(path);
        self.shard_for_change(hash, path)?
            .find_mut(hash, key_is(path))
            .map(|(_, n)| n)
    }

    pub(super) fn insert(&mut self, path: &str, node: Node) {
        let hash = self.hash(path);
        let hasher = &self.hasher;
        let shard = Arc::make_mut(&mut self.shards[shard_index(hash)]);
        match shard.entry(hash, key_is(path), |(k, _)| hasher.hash_one(&**k)) {
            Entry::Occupied(mut e) => e.get_mut().1 = node,
            Entry::Vacant(e) => {
                e.insert((Arc::from(path), node));
                self.len += 1;
            }
        }
    }

    /// Removes `path` and gives back its key and node.
    pub(super) fn remove_entry(&mut self, path: &str) -> Option<(Arc<str>, Node)> {
        let hash = self.hash(path);
        let shard = self.shard_for_change(hash, path)?;
        let (entry, _) = shard.find_entry(hash, key_is(path)).ok()?.remove();
        self.len -= 1;
        Some(entry)
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        self.remove_entry(path).map(|(_, node)| node)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, n)| (&**k, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_spread_over_the_shards() {
        let nodes = Nodes::default();
        let mut counts = vec![0usize; SHARDS];
        for i in 0..SHARDS * 100 {
            let path = format!("/brokers/topics/t{}/partitions/{i}", i % 7);
            counts[shard_index(nodes.hash(&path))] += 1;
        }
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(
            min >= Some(&50) && max <= Some(&160),
            "{min:?}..{max:?} paths per shard"
        );
    }
}
