//! Node configuration, its defaults and its validation.

use std::time::Duration;

use crate::error::ConfigError;
use crate::link::fragment_size;
use crate::store::Durability;
use crate::transport::reassembly_cost;

/// Everything a node can be tuned with. Build it with [`Config::new`] and adjust fields;
/// [`Config::validate`] (called by [`crate::Node::new`]) rejects nonsense with an error
/// naming the field.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name in the mesh. Non-empty, at most [`MAX_NODE_ID_LEN`] bytes.
    pub node_id: String,
    /// Address to bind. Default `0.0.0.0` (all IPv4 interfaces). `::` binds every IPv6
    /// and, where the host allows dual-stack sockets, every IPv4 interface too (IPv4 peers
    /// are then known by their IPv4 address, never the v4-mapped form); `::1` or another
    /// IPv6 address binds IPv6 only. A host name is resolved once, at bind time.
    pub host: String,
    /// UDP port to bind; 0 picks a free port (read it back with `Node::port`).
    pub port: u16,
    /// The address other nodes should use to reach this one, when it differs from the
    /// bound one: bound to `0.0.0.0` on a machine with several addresses, or behind a NAT
    /// port mapping (serf's `-advertise`). Port 0 means the bound port. `None` (the
    /// default): peers learn this node's address from the source of its datagrams.
    ///
    /// It changes what this node tells others about itself, not how they talk to it:
    /// a peer that hears from this node still answers the source address of its
    /// datagrams (that is the address the challenge in address verification proves), but
    /// when it gossips this node to third parties it names the advertised address, and
    /// those probe it (and verify it) before anything they hear there counts.
    pub advertise_addr: Option<std::net::SocketAddr>,
    /// Name of the mesh. Nodes only talk to nodes of the same cluster. Default `"default"`.
    pub cluster: String,
    /// Period of anti-entropy rounds with a random peer. Default 10 s.
    pub sync_interval: Duration,
    /// Period of heartbeats to each peer. Default 5 s.
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is suspected; after twice this it is declared failed.
    /// Default 15 s.
    pub peer_timeout: Duration,
    /// Retransmissions of one datagram before it is given up (anti-entropy then repairs
    /// whatever it carried); a datagram is retried for at least `peer_timeout` in any
    /// case, so a receiver that pauses briefly does not cost a resync. Default 5.
    pub max_retries: u32,
    /// Retransmission timeout before any round trip has been measured. Default 0.5 s.
    pub initial_rto: Duration,
    /// Floor of the retransmission timeout. Default 10 ms.
    pub min_rto: Duration,
    /// Ceiling of the retransmission timeout, backoff included. Default 8 s.
    pub max_rto: Duration,
    /// Shortest time between two pushes of local writes. A write after a quiet spell is
    /// pushed at once; writes arriving faster are gathered into one push per interval,
    /// so a burst costs a few full datagrams instead of one per write. Default 1 ms.
    pub push_delay: Duration,
    /// Most reachable peers a writer pushes each write to itself. In a larger mesh,
    /// writes travel an epidemic broadcast tree instead (see the `broadcast` module): a
    /// write then costs its writer a few datagrams and every node about one copy,
    /// whatever the mesh size, at the price of a few hops. Default 32: a direct push
    /// also brings every node one copy, in one hop, and sends nothing else, so below a
    /// few dozen peers the writer's n − 1 datagrams are the cheaper price: a burst of
    /// 1,000 writes from every node of a 20-node mesh took half the bytes and half the
    /// time it took through the tree, whose first writes flood its overlay.
    pub push_fanout: usize,
    /// Largest UDP payload sent. Default 1200 bytes: safe on any path MTU, IPv6's
    /// included (1,200 bytes plus 40 of IPv6 header and 8 of UDP header fit the 1,280-byte
    /// minimum MTU every IPv6 link carries).
    pub max_datagram_size: usize,
    /// Largest UDP payload a link grows to once a probe shows its path carries it
    /// (DPLPMTUD, RFC 8899): every link starts at `max_datagram_size` and climbs through
    /// 1,452 bytes (an Ethernet path) and 8,952 (a jumbo-frame one) as far as its path
    /// carries; datagrams are never IP-fragmented. Default 16,384 bytes, which only a
    /// host's loopback interface (a mesh on one machine) carries among common paths. At
    /// or below `max_datagram_size`, links never probe.
    pub max_probed_datagram_size: usize,
    /// Largest key, in bytes of UTF-8. Default 1 KiB.
    pub max_key_len: usize,
    /// Largest value, in encoded bytes. Default 16 MiB.
    pub max_value_size: usize,
    /// Most bytes of unacknowledged datagrams in flight to one peer: the ceiling of its
    /// congestion window, which starts at ten datagrams and shrinks when a loss comes
    /// with a growing round trip. Default 128 KiB: on loopback and LANs larger windows
    /// only queue up in the receiver and cause spurious retransmissions.
    pub max_in_flight: usize,
    /// Whether this node compresses datagrams (zstd) to peers that read them, and reads
    /// them itself. Only payloads it shrinks are sent compressed: deltas are, probes and
    /// acks are not. Default on; off costs bytes, not compatibility.
    pub compression: bool,
    /// Bytes of partially received messages the node keeps, all peers together: one
    /// budget for the node, charged with everything reassembly allocates (each message's
    /// bookkeeping and fragment table as well as its bytes). A new message is refused
    /// while it is spent; completed, timed-out and abandoned messages give their bytes
    /// back. It is also the largest message accepted, and must hold a message carrying
    /// the largest key and value (see [`Config::fit_reassembly`]). Default 64 MiB.
    pub max_reassembly: usize,
    /// A partially received message idle for this long is dropped. Default 30 s.
    pub reassembly_timeout: Duration,
    /// Remote timestamps further than this ahead of the local clock are rejected.
    /// Default 60 s.
    pub max_clock_drift: Duration,
    /// Tombstones older than this are collected even if a peer has not confirmed them.
    /// Default 24 h.
    pub tombstone_grace: Duration,
    /// Most collected tombstones remembered until `tombstone_grace`, so that an older value
    /// offered by a node that missed the delete still loses to it (see the architecture's
    /// "Collected deletes"). Past it the oldest are forgotten first: a workload deleting
    /// many keys keeps bounded memory, at the price of that protection for its oldest
    /// deletes. Each costs about 200 bytes and its key. 0 remembers none. Default 100,000.
    pub max_collected_deletes: usize,
    /// Most origins (runs of nodes) the version vector accounts for at once. A delta
    /// naming a new origin beyond it is refused and counted (`dropped.origins`); origins
    /// whose writes are superseded everywhere are retired and stop counting. Default
    /// 4,096.
    pub max_origins: usize,
    /// Longest pause between probes of one peer that never answered (probes back off up
    /// to this). Failed peers are not backed off: they are probed in turn, all together
    /// about once per heartbeat interval however many there are. Default 30 s.
    pub max_probe_interval: Duration,
    /// Most members (peers) the node remembers: datagrams from further addresses are
    /// ignored and gossip naming more is not taken. Each member costs a few hundred
    /// bytes of bookkeeping when idle (see `MemoryReport::member_bytes`), so the default
    /// bounds that at a few megabytes. Members not verified yet (gossiped, or heard from
    /// without proving their address) are bounded separately at 64. Default 16,384.
    pub max_peers: usize,
    /// How long `stop` waits for local writes to be acknowledged by reachable peers before
    /// closing the socket. Default 500 ms.
    pub stop_flush_timeout: Duration,
    /// Seed of the node's random choices (peer selection, jitter). `None` draws one.
    pub seed: Option<u64>,
    /// Pre-shared keys. Empty (the default): datagrams travel in plaintext, for trusted
    /// networks only. Otherwise every datagram is sealed (authenticated encryption) under
    /// the first key, the primary, and accepted only if it opens under one of them; the
    /// others serve key rotation (see [`crate::Node::install_key`]).
    pub keyring: Vec<crate::seal::Key>,
    /// Directory of the node's store. `None` (the default): the state lives in memory
    /// only and no file is touched. Otherwise the replica is kept on disk there (one
    /// node per directory), reloaded at the next start, and caught up by delta.
    pub data_dir: Option<std::path::PathBuf>,
    /// When writes are durable, with a `data_dir`. Default [`Durability::Batched`].
    pub durability: Durability,
    /// With [`Durability::Batched`], the longest a change waits before it is committed
    /// to disk. Default 10 ms.
    pub flush_interval: Duration,
}

/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_LEN: usize = 255;
/// Smallest datagram size accepted: room for the header and a useful payload.
pub const MIN_DATAGRAM_SIZE: usize = 256;
/// Largest datagram size accepted: the UDP payload limit over IPv4 (65,535 bytes less
/// 20 of IPv4 and 8 of UDP header), which IPv6 without jumbograms also carries.
pub const MAX_DATAGRAM_SIZE: usize = 65_507;

/// Heartbeats a peer may miss before it is suspected, when its timeout is left to follow
/// the heartbeat interval: the prototype's rule, which its users already tune by.
const MISSED_HEARTBEATS: u32 = 3;
/// Room [`Config::fit_reassembly`] keeps beside the largest key and value, for the rest
/// of the message carrying them; generous, since `validate` insists on only 1 KiB.
const REASSEMBLY_HEADROOM: usize = 64 * 1024;

impl Config {
    /// A configuration with the defaults and the given node id and port.
    pub fn new(node_id: impl Into<String>, port: u16) -> Config {
        Config {
            node_id: node_id.into(),
            port,
            ..Config::default()
        }
    }

    /// The peer timeout that goes with `heartbeat_interval` when the application sets
    /// none: three missed heartbeats make a peer suspect. The defaults follow it (5 s
    /// heartbeats, 15 s timeout), so a front end that offers only the heartbeat interval
    /// can derive the timeout from it and still start from the core's defaults.
    pub fn peer_timeout_for(heartbeat_interval: Duration) -> Duration {
        heartbeat_interval.saturating_mul(MISSED_HEARTBEATS)
    }

    /// Grows `max_reassembly`, never shrinks it, until a message carrying the largest key
    /// and the largest value fits, with headroom and with its reassembly bookkeeping for
    /// fragments of `max_datagram_size`. Call it after raising `max_value_size`
    /// or `max_key_len` for users who never chose a reassembly budget (the C and Python
    /// front ends do), so that raising a size limit alone never makes the config invalid.
    pub fn fit_reassembly(&mut self) {
        let message = self
            .max_value_size
            .saturating_add(self.max_key_len)
            .saturating_add(REASSEMBLY_HEADROOM);
        let needed = reassembly_cost(message, fragment_size(self.max_datagram_size));
        self.max_reassembly = self.max_reassembly.max(needed);
    }

    /// Checks every field; the error names the first field out of bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
            Ok(())
        }
        if self.node_id.is_empty() {
            return Err(ConfigError::new("node_id", "must not be empty"));
        }
        if self.node_id.len() > MAX_NODE_ID_LEN {
            return Err(ConfigError::new(
                "node_id",
                format!("must be at most {MAX_NODE_ID_LEN} bytes"),
            ));
        }
        if self.cluster.is_empty() {
            return Err(ConfigError::new("cluster", "must not be empty"));
        }
        positive("sync_interval", self.sync_interval)?;
        positive("flush_interval", self.flush_interval)?;
        positive("heartbeat_interval", self.heartbeat_interval)?;
        positive("peer_timeout", self.peer_timeout)?;
        positive("initial_rto", self.initial_rto)?;
        positive("min_rto", self.min_rto)?;
        positive("max_rto", self.max_rto)?;
        positive("reassembly_timeout", self.reassembly_timeout)?;
        positive("max_clock_drift", self.max_clock_drift)?;
        positive("tombstone_grace", self.tombstone_grace)?;
        positive("max_probe_interval", self.max_probe_interval)?;
        if self.peer_timeout < self.heartbeat_interval {
            return Err(ConfigError::new(
                "peer_timeout",
                "must be at least heartbeat_interval",
            ));
        }
        if self.min_rto > self.max_rto {
            return Err(ConfigError::new("min_rto", "must not exceed max_rto"));
        }
        if self.initial_rto > self.max_rto {
            return Err(ConfigError::new("initial_rto", "must not exceed max_rto"));
        }
        if self.max_retries > 30 {
            return Err(ConfigError::new("max_retries", "must be at most 30"));
        }
        if !(MIN_DATAGRAM_SIZE..=MAX_DATAGRAM_SIZE).contains(&self.max_datagram_size) {
            return Err(ConfigError::new(
                "max_datagram_size",
                format!("must be between {MIN_DATAGRAM_SIZE} and {MAX_DATAGRAM_SIZE}"),
            ));
        }
        if self.max_probed_datagram_size > MAX_DATAGRAM_SIZE {
            return Err(ConfigError::new(
                "max_probed_datagram_size",
                format!("must be at most {MAX_DATAGRAM_SIZE}"),
            ));
        }
        if self.max_key_len == 0 || self.max_key_len > 64 * 1024 {
            return Err(ConfigError::new(
                "max_key_len",
                "must be between 1 and 65536",
            ));
        }
        if self.max_value_size == 0 {
            return Err(ConfigError::new(
                "max_value_size",
                "must be greater than zero",
            ));
        }
        if self.max_in_flight < self.max_datagram_size {
            return Err(ConfigError::new(
                "max_in_flight",
                "must be at least max_datagram_size",
            ));
        }
        if self.max_origins < 2 {
            // This node's own origin and at least one other.
            return Err(ConfigError::new("max_origins", "must be at least 2"));
        }
        if self.max_peers == 0 {
            return Err(ConfigError::new("max_peers", "must be greater than zero"));
        }
        if let Some(addr) = self.advertise_addr {
            let with_port = std::net::SocketAddr::new(addr.ip(), addr.port().max(1));
            if !crate::addr::is_peer_addr(&with_port) {
                return Err(ConfigError::new(
                    "advertise_addr",
                    "must be a unicast IP address (not unspecified, multicast or broadcast)",
                ));
            }
        }
        let largest_message = self
            .max_value_size
            .saturating_add(self.max_key_len)
            .saturating_add(1024);
        if self.max_reassembly
            < reassembly_cost(largest_message, fragment_size(self.max_datagram_size))
        {
            return Err(ConfigError::new(
                "max_reassembly",
                "must exceed max_value_size + max_key_len with reassembly overhead (a message carrying the largest entry must fit)",
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: String::new(),
            host: "0.0.0.0".to_owned(),
            port: 0,
            advertise_addr: None,
            cluster: "default".to_owned(),
            sync_interval: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(15),
            max_retries: 5,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(10),
            max_rto: Duration::from_secs(8),
            push_delay: Duration::from_millis(1),
            push_fanout: 32,
            max_datagram_size: 1200,
            max_probed_datagram_size: 16_384,
            max_key_len: 1024,
            max_value_size: 16 * 1024 * 1024,
            max_in_flight: 128 * 1024,
            compression: true,
            max_reassembly: 64 * 1024 * 1024,
            reassembly_timeout: Duration::from_secs(30),
            max_clock_drift: Duration::from_secs(60),
            tombstone_grace: Duration::from_secs(24 * 3600),
            max_collected_deletes: 100_000,
            max_origins: 4_096,
            max_probe_interval: Duration::from_secs(30),
            max_peers: 16_384,
            stop_flush_timeout: Duration::from_millis(500),
            seed: None,
            keyring: Vec::new(),
            data_dir: None,
            durability: Durability::Batched,
            flush_interval: Duration::from_millis(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_once_named() {
        Config::new("n1", 0).validate().unwrap();
        assert_eq!(Config::default().validate().unwrap_err().field, "node_id");
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = Config::new("n1", 0);
        c.sync_interval = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field, "sync_interval");
        let mut c = Config::new("n1", 0);
        c.max_datagram_size = 10;
        assert_eq!(c.validate().unwrap_err().field, "max_datagram_size");
        let mut c = Config::new("n1", 0);
        c.peer_timeout = Duration::from_secs(1);
        assert_eq!(c.validate().unwrap_err().field, "peer_timeout");
    }

    #[test]
    fn advertised_addresses_are_unicast() {
        let mut c = Config::new("n1", 0);
        for good in ["10.0.0.5:7000", "[fd00::2]:7000", "10.0.0.5:0"] {
            c.advertise_addr = Some(good.parse().unwrap());
            c.validate().unwrap();
        }
        for bad in ["0.0.0.0:7000", "[::]:7000", "239.1.2.3:7000"] {
            c.advertise_addr = Some(bad.parse().unwrap());
            assert_eq!(c.validate().unwrap_err().field, "advertise_addr", "{bad}");
        }
    }

    #[test]
    fn default_datagrams_fit_the_ipv6_minimum_mtu() {
        use crate::addr::{IPV6_HEADER, IPV6_MIN_MTU, UDP_HEADER};
        let c = Config::default();
        assert!(c.max_datagram_size + IPV6_HEADER + UDP_HEADER <= IPV6_MIN_MTU);
        // The largest accepted payload is one IPv6 (non-jumbo) carries as well.
        const { assert!(MAX_DATAGRAM_SIZE <= 65_535 - UDP_HEADER) };
    }

    #[test]
    fn peer_timeout_follows_three_heartbeats() {
        assert_eq!(
            Config::peer_timeout_for(Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        assert_eq!(Config::peer_timeout_for(Duration::MAX), Duration::MAX);
        // A front end deriving the timeout from the default heartbeat gets the default.
        let c = Config::default();
        assert_eq!(
            Config::peer_timeout_for(c.heartbeat_interval),
            c.peer_timeout
        );
    }

    #[test]
    fn reassembly_grows_to_fit_the_largest_entry() {
        let mut c = Config::new("n1", 0);
        let default_budget = c.max_reassembly;
        c.fit_reassembly();
        assert_eq!(c.max_reassembly, default_budget, "the default already fits");

        c.max_value_size = 100 << 20;
        c.max_key_len = 4096;
        assert_eq!(c.validate().unwrap_err().field, "max_reassembly");
        c.fit_reassembly();
        let message = (100 << 20) + 4096 + 64 * 1024;
        let fitted = c.max_reassembly;
        // The message itself, one table slot per fragment and a little bookkeeping.
        let frags = message / fragment_size(c.max_datagram_size) + 1;
        assert!(fitted >= message + frags * 24, "{fitted}");
        assert!(fitted <= message + frags * 24 + 1024, "{fitted}");
        c.validate().unwrap();

        c.max_value_size = 1;
        c.fit_reassembly();
        assert_eq!(c.max_reassembly, fitted, "never shrinks");

        c.max_value_size = usize::MAX;
        c.fit_reassembly();
        assert_eq!(c.max_reassembly, usize::MAX);
    }
}
