//! Kafka's rack-unaware replica assignment (`AdminUtils.assignReplicasToBrokers`): partition
//! `p`'s first replica is broker `(p + start) % n`; the followers follow at a shift that grows
//! by one every `n` partitions, so leaders and followers both spread evenly over the brokers.
//! Used for new topics and partitions, and by `kafka-reassign-partitions --generate`.

/// Replicas of partitions `first_partition..first_partition + count` over `brokers` (sorted by
/// the caller as it likes); `start` and `shift` are Kafka's random start index and replica
/// shift (any value; they are taken modulo the broker count).
pub fn assign_replicas(
    brokers: &[i32],
    first_partition: i32,
    count: i32,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    if n == 0 || replication_factor == 0 || replication_factor > n {
        return Vec::new();
    }
    let start = start % n;
    let mut next_shift = shift % n;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for p in first_partition.max(0)..first_partition.max(0) + count.max(0) {
        let p = p as usize;
        if p > 0 && p.is_multiple_of(n) {
            next_shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..replication_factor - 1 {
            let s = if n > 1 {
                1 + (next_shift + j) % (n - 1)
            } else {
                0
            };
            replicas.push(brokers[(first + s) % n]);
        }
        out.push(replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own example (AdminUtils' comment): 5 brokers, 10 partitions, 3 replicas, start 0,
    /// shift 0.
    #[test]
    fn matches_kafkas_documented_layout() {
        let a = assign_replicas(&[0, 1, 2, 3, 4], 0, 10, 3, 0, 0);
        assert_eq!(
            a,
            vec![
                vec![0, 1, 2],
                vec![1, 2, 3],
                vec![2, 3, 4],
                vec![3, 4, 0],
                vec![4, 0, 1],
                vec![0, 2, 3],
                vec![1, 3, 4],
                vec![2, 4, 0],
                vec![3, 0, 1],
                vec![4, 1, 2],
            ]
        );
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let a = assign_replicas(&[1, 2, 3], 0, 6, 3, 1, 2);
        for b in [1, 2, 3] {
            assert_eq!(a.iter().filter(|r| r[0] == b).count(), 2, "leaders of {b}");
            assert_eq!(a.iter().filter(|r| r.contains(&b)).count(), 6);
        }
        assert!(a.iter().all(|r| {
            let mut s = r.clone();
            s.sort_unstable();
            s.dedup();
            s.len() == 3
        }));
        assert!(assign_replicas(&[1, 2], 0, 3, 3, 0, 0).is_empty());
    }
}
