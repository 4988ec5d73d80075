//! Origin ids: which run of which node wrote an entry.
//!
//! Every run of a node writes under an origin of its own, so that no (origin, seq) ever
//! names two writes: not across restarts (each run has a new incarnation) and not across
//! nodes. The incarnation alone cannot promise the second. It orders a node's runs by
//! the wall clock (milliseconds in its high bits), and only its 16 random low bits tell
//! apart two nodes that start in the same millisecond: a fleet booted at once would,
//! now and then, have two nodes writing under one origin, and one node's writes would
//! be dropped as the other's duplicates.
//!
//! So the origin hashes the node id with the incarnation. Two runs collide only if
//! both their node ids and incarnations match, or if 64 bits of SHA-256 do. Every node
//! computes a member's origin from the node id and incarnation that member announces,
//! so the wire carries nothing more.

use sha2::{Digest, Sha256};

use crate::version::OriginId;

/// Separates this use of SHA-256 from any other.
const DOMAIN: &[u8] = b"mesh-sync origin id v1\0";

/// The origin id of the run `incarnation` of the node `node_id` (never 0, which means
/// "none" on the wire).
pub fn origin_id(node_id: &str, incarnation: u64) -> OriginId {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    // The length first, so no (id, incarnation) pair reads as another.
    hasher.update((node_id.len() as u64).to_be_bytes());
    hasher.update(node_id.as_bytes());
    hasher.update(incarnation.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_nodes_starting_in_the_same_millisecond_get_different_origins() {
        // The same incarnation, drawn by two nodes: the collision this module removes.
        let incarnation = (1_780_000_000_000 << 16) | 0x1234;
        assert_ne!(origin_id("node-a", incarnation), origin_id("node-b", incarnation));
    }

    #[test]
    fn each_run_of_a_node_has_its_own_origin() {
        assert_ne!(origin_id("node-a", 5 << 16), origin_id("node-a", (5 << 16) + 1));
    }

    #[test]
    fn the_origin_is_the_same_on_every_node() {
        // Fixed, so that nodes of one protocol version agree on it.
        assert_eq!(origin_id("node-a", 42), origin_id("node-a", 42));
        assert_ne!(origin_id("node-a", 42), 0);
        assert_ne!(origin_id("ab", 0x63_00), origin_id("abc", 0));
    }
}
