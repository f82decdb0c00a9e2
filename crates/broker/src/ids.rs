//! Cluster and topic ids as Kafka writes them: UUIDs in URL-safe base64 without padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use uuid::Uuid;

pub fn encode_uuid(u: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(u.as_bytes())
}

pub fn parse_uuid(s: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
    Uuid::from_slice(&bytes).ok()
}

pub fn new_cluster_id() -> String {
    encode_uuid(&Uuid::new_v4())
}

/// FNV-1a, for spreading partitions deterministically.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stable id for a topic whose znode carries none (written by Kafka before 2.8).
pub fn uuid_from_name(topic: &str) -> Uuid {
    let h1 = hash_str(topic);
    let h2 = hash_str(&format!("{topic}\u{0}topic-id"));
    Uuid::from_u64_pair(h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_kafkas_text_form() {
        let u = Uuid::new_v4();
        let s = encode_uuid(&u);
        assert_eq!(s.len(), 22);
        assert_eq!(parse_uuid(&s), Some(u));
        assert_eq!(uuid_from_name("logs"), uuid_from_name("logs"));
        assert_ne!(uuid_from_name("logs"), uuid_from_name("logs2"));
    }
}
