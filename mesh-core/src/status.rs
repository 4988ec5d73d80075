//! Snapshots of a node's state and counters, shared by every binding.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::wire::DropReason;

/// How a peer is currently seen by the failure detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// A bootstrap address never heard from yet.
    Unknown,
    /// Answering probes (directly or through other members), or refuted a suspicion.
    Alive,
    /// Missed a probe and its indirect probes (here or at another member): declared
    /// dead unless it refutes within the suspicion timeout.
    Suspect,
    /// Declared failed; still probed, in turn with the other dead members.
    Dead,
    /// Announced that it left on purpose (its node stopped); probed like a dead member,
    /// so a restart is noticed.
    Left,
}

impl PeerState {
    /// Lower-case name (`"alive"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Alive => "alive",
            PeerState::Suspect => "suspect",
            PeerState::Dead => "dead",
            PeerState::Left => "left",
        }
    }
}

/// One peer as this node sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its node id; `None` for a bootstrap address not heard from yet.
    pub node_id: Option<String>,
    /// Its address: where this node hears from it and answers it.
    pub addr: SocketAddr,
    /// The address it advertises (its `advertise_addr`), which this node gossips instead
    /// of `addr`; `None` if it advertises none.
    #[serde(default)]
    pub advertised_addr: Option<SocketAddr>,
    /// Failure detector state.
    pub state: PeerState,
    /// Whether it was given with `add_bootstrap_peer`.
    pub bootstrap: bool,
    /// Smoothed round-trip time, once measured.
    pub rtt_ms: Option<f64>,
    /// Milliseconds since it was last heard from.
    pub last_seen_ms: Option<u64>,
    /// Datagrams sent to it and not yet acknowledged.
    pub pending_acks: usize,
    /// The largest datagram this node sends it, in bytes: `max_datagram_size` until a
    /// probe showed the path carries more (datagram size per path, ARCHITECTURE.md).
    #[serde(default)]
    pub datagram_size: usize,
}

/// Peer counts, in the prototype's shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounts {
    /// Every known peer, bootstrap addresses included.
    pub total_peers: usize,
    /// Peers alive.
    pub alive_peers: usize,
    /// Peers suspected, not yet failed.
    pub suspect_peers: usize,
    /// Failed peers, and peers that left (still probed).
    pub dead_peers: usize,
    /// Peers given with `add_bootstrap_peer`.
    pub bootstrap_peers: usize,
}

/// Why received datagrams were dropped, one counter per reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounters {
    /// Shorter than the header or than the length it declares.
    pub truncated: u64,
    /// Wrong magic number: not a mesh-sync datagram.
    pub bad_magic: u64,
    /// A protocol version this node does not speak.
    pub bad_version: u64,
    /// CRC-32 mismatch: corrupted in transit.
    pub bad_checksum: u64,
    /// From another cluster.
    pub wrong_cluster: u64,
    /// Header fine, payload undecodable.
    pub malformed: u64,
    /// Not sealed by a keyholder: plaintext to a node with a keyring, sealed to a node
    /// without one, or opening under none of the installed keys. Dropped before any
    /// payload decoding.
    pub unauthenticated: u64,
    /// Addressed to an earlier incarnation of this node.
    pub stale: u64,
    /// Already received (retransmission or network duplicate), or a replayed sealed
    /// datagram.
    pub duplicate: u64,
    /// Reassembly limits exceeded or timed out.
    pub reassembly: u64,
    /// From a source that has not proved it receives at its address, or claiming an
    /// incarnation too far ahead of this node's clock: answered with a challenge at most.
    pub unverified: u64,
    /// Requests beyond what one peer may ask for in a given time.
    pub rate_limited: u64,
    /// Heartbeats whose node id was not taken: the receiver's own id or another id than
    /// the one the sender's run gave before, from a member that named itself; or an id a
    /// live member at another address holds (taken once that one is dead). Plaintext
    /// heartbeats can be spoofed: an id claim takes no live member away.
    #[serde(default)]
    pub conflicts: u64,
    /// Entries rejected because their timestamp was too far in the future.
    pub clock_drift: u64,
    /// Entries rejected because the key or value broke the size limits.
    pub oversized: u64,
    /// Delta groups refused because they named an origin beyond `max_origins`.
    #[serde(default)]
    pub origins: u64,
    /// User messages dropped: received too far out of order or past the memory budget,
    /// lost in a gap that was skipped, from an unidentified sender, or past the
    /// callback backlog.
    pub messages: u64,
}

impl DropCounters {
    /// Counts one datagram dropped by the codec.
    pub(crate) fn count(&mut self, reason: DropReason) {
        match reason {
            DropReason::Truncated => self.truncated += 1,
            DropReason::BadMagic => self.bad_magic += 1,
            DropReason::BadVersion => self.bad_version += 1,
            DropReason::BadChecksum => self.bad_checksum += 1,
            DropReason::WrongCluster => self.wrong_cluster += 1,
            DropReason::Malformed => self.malformed += 1,
            DropReason::Unauthenticated => self.unauthenticated += 1,
            // A replayed sealed datagram is indistinguishable from a network duplicate.
            DropReason::Replayed => self.duplicate += 1,
        }
    }

    /// Every counter with its name (the field's), in a stable order.
    pub fn by_reason(&self) -> [(&'static str, u64); 17] {
        [
            ("duplicate", self.duplicate),
            ("truncated", self.truncated),
            ("bad_magic", self.bad_magic),
            ("bad_version", self.bad_version),
            ("bad_checksum", self.bad_checksum),
            ("unauthenticated", self.unauthenticated),
            ("wrong_cluster", self.wrong_cluster),
            ("malformed", self.malformed),
            ("stale", self.stale),
            ("reassembly", self.reassembly),
            ("unverified", self.unverified),
            ("rate_limited", self.rate_limited),
            ("conflicts", self.conflicts),
            ("clock_drift", self.clock_drift),
            ("oversized", self.oversized),
            ("origins", self.origins),
            ("messages", self.messages),
        ]
    }

    /// Sum of datagram drops (entry rejections excluded).
    pub fn datagrams(&self) -> u64 {
        self.truncated
            + self.bad_magic
            + self.bad_version
            + self.bad_checksum
            + self.wrong_cluster
            + self.malformed
            + self.unauthenticated
            + self.stale
            + self.duplicate
            + self.reassembly
            + self.unverified
            + self.rate_limited
    }
}

/// Traffic and protocol counters since the node was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams handed to the socket (after fault injection decided to send them).
    pub datagrams_sent: u64,
    /// Bytes handed to the socket.
    pub bytes_sent: u64,
    /// Datagrams read from the socket.
    pub datagrams_received: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Datagrams sent again after a timeout or a selective ack gap.
    pub retransmits: u64,
    /// Datagrams abandoned after `max_retries`.
    pub given_up: u64,
    /// Messages of writes due for retransmission that were sent again as they are now,
    /// without the values superseded since they first went out.
    pub superseded_not_resent: u64,
    /// Deletes sent to peers that may hold a value they superseded while accounting for
    /// them: the peer that offered the value, or, for a collected delete the value brought
    /// back, every reachable peer (see `collected`).
    pub deletes_returned: u64,
    /// Losses taken as congestion (with a growing round trip, or timeouts in a row):
    /// each halved a peer's send window or reset it.
    pub congestion_events: u64,
    /// Entries received from peers.
    pub entries_received: u64,
    /// Received entries that changed this replica.
    pub entries_applied: u64,
    /// Anti-entropy rounds started by this node.
    pub sync_rounds: u64,
    /// Ping-reqs sent: members asked to probe a member that missed a direct probe.
    #[serde(default)]
    pub indirect_probes: u64,
    /// Direct probes sent again because the first went unanswered.
    #[serde(default)]
    pub probe_retries: u64,
    /// Dead members probed at once, outside their turn, because another dead member
    /// came back (a healing partition).
    #[serde(default)]
    pub heal_probes: u64,
    /// Suspicions of this node it refuted (Lifeguard counts them against its health).
    #[serde(default)]
    pub refutations: u64,
    /// Peers this node reported failed (declared by itself or by another member).
    #[serde(default)]
    pub peers_failed: u64,
    /// Peers this node reported left.
    #[serde(default)]
    pub peers_left: u64,
    /// Messages of writes queued for peers by pushes and by the broadcast tree (one per
    /// peer; a message may span datagrams). Anti-entropy streams are not counted.
    #[serde(default)]
    pub write_messages_sent: u64,
    /// Grafts sent: announced writes still missing asked of their announcer.
    #[serde(default)]
    pub grafts_sent: u64,
    /// Prunes sent: neighbors that sent writes already held taken off the tree.
    #[serde(default)]
    pub prunes_sent: u64,
    /// User messages queued for peers (a broadcast counts once per peer).
    pub messages_sent: u64,
    /// User messages from peers handed to the application.
    pub messages_received: u64,
    /// Drops by reason.
    pub dropped: DropCounters,
}

/// A node's status, in the prototype's shape plus the core's counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node's id.
    pub node_id: String,
    /// The bound UDP port.
    pub port: u16,
    /// Whether the network thread is running.
    pub running: bool,
    /// Number of changes applied to this replica (local and remote).
    pub state_version: u64,
    /// Live (not deleted) keys.
    pub data_keys: usize,
    /// Deleted keys still remembered as tombstones.
    pub tombstones: usize,
    /// Tombstones collected less than `tombstone_grace` ago, still remembered outside the
    /// replica to beat an older value a peer that missed the delete may offer.
    pub collected_deletes: usize,
    /// Peer counts.
    pub peers: PeerCounts,
    /// Datagrams sent and not yet acknowledged, all peers together.
    pub pending_acks: usize,
    /// This node's hybrid logical clock (physical ms << 16 | logical).
    pub hlc: u64,
    /// Counters.
    pub counters: Counters,
    /// The store, when the node has a `data_dir` (`None` otherwise).
    pub storage: Option<crate::store::StorageStatus>,
}

impl Status {
    /// The status as a JSON object (the shape the C and Python bindings return).
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
