//! A node's status as metrics in the Prometheus text exposition format (version 0.0.4),
//! encoded by the `prometheus-client` crate.
//!
//! The node's counters live in the engine, not in metric objects: each scrape builds a
//! fresh registry from one [`MetricsSnapshot`], so the figures of one scrape are
//! consistent with each other and nothing is kept between scrapes.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::MemoryReport;
use crate::propagation::PropagationLag;
use crate::status::{PeerInfo, PeerState, Status};

/// The `Content-Type` of [`MetricsSnapshot::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Prefix of every metric name.
const PREFIX: &str = "mesh_sync";

/// Bucket bounds of the peers' round-trip-time histogram, in seconds.
const RTT_BUCKETS_S: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// What a node reports at one moment, the input of one scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSnapshot {
    /// Status and counters.
    pub status: Status,
    /// Every known peer.
    pub peers: Vec<PeerInfo>,
    /// Protocol memory in use.
    pub memory: MemoryReport,
    /// Propagation lag of the remote writes applied.
    pub propagation: PropagationLag,
}

type Labels = Vec<(&'static str, &'static str)>;

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text exposition format, every series labelled with
    /// `node="<node id>"`.
    pub fn encode(&self) -> String {
        let registry = self.registry();
        let mut text = String::new();
        // Writing into a String cannot fail, and every name registered here is valid.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }

    fn registry(&self) -> Registry {
        let node = std::iter::once((
            Cow::Borrowed("node"),
            Cow::Owned(self.status.node_id.clone()),
        ));
        let mut registry = Registry::with_prefix_and_labels(PREFIX, node);
        self.register_traffic(&mut registry);
        self.register_replica(&mut registry);
        self.register_peers(&mut registry);
        self.register_memory(&mut registry);
        self.register_storage(&mut registry);
        registry.register_with_unit(
            "propagation_lag",
            "Time from a remote write's timestamp to its application on this node",
            Unit::Seconds,
            LagHistogram(self.propagation),
        );
        registry
    }

    fn register_traffic(&self, registry: &mut Registry) {
        let c = &self.status.counters;
        let counters: [(&str, &str, u64); 13] = [
            (
                "datagrams_sent",
                "Datagrams handed to the socket",
                c.datagrams_sent,
            ),
            ("sent_bytes", "Bytes handed to the socket", c.bytes_sent),
            (
                "datagrams_received",
                "Datagrams read from the socket",
                c.datagrams_received,
            ),
            (
                "received_bytes",
                "Bytes read from the socket",
                c.bytes_received,
            ),
            (
                "retransmits",
                "Datagrams sent again after a timeout or an acknowledgement gap",
                c.retransmits,
            ),
            (
                "given_up",
                "Datagrams abandoned after the retry limit",
                c.given_up,
            ),
            (
                "superseded_not_resent",
                "Messages of writes due again, sent as they are now without superseded values",
                c.superseded_not_resent,
            ),
            (
                "deletes_returned",
                "Deletes sent to peers that may hold a value they superseded",
                c.deletes_returned,
            ),
            (
                "congestion_events",
                "Losses taken as congestion, each halving or resetting a send window",
                c.congestion_events,
            ),
            (
                "entries_received",
                "Entries received from peers",
                c.entries_received,
            ),
            (
                "entries_applied",
                "Received entries that changed this replica",
                c.entries_applied,
            ),
            (
                "sync_rounds",
                "Anti-entropy rounds started by this node",
                c.sync_rounds,
            ),
            (
                "state_changes",
                "Changes applied to this replica, local and remote",
                self.status.state_version,
            ),
        ];
        for (name, help, value) in counters {
            registry.register(name, help, counter(value));
        }
        let drops = Family::<Labels, Counter>::default();
        for (reason, count) in c.dropped.by_reason() {
            drops.get_or_create(&vec![("reason", reason)]).inc_by(count);
        }
        registry.register("dropped", "Datagrams or entries dropped, by reason", drops);
    }

    fn register_replica(&self, registry: &mut Registry) {
        let s = &self.status;
        registry.register("keys", "Live keys", gauge(s.data_keys));
        registry.register(
            "tombstones",
            "Deleted keys still remembered",
            gauge(s.tombstones),
        );
        registry.register(
            "collected_deletes",
            "Collected tombstones remembered until their grace runs out",
            gauge(s.collected_deletes),
        );
        registry.register(
            "pending_acks",
            "Datagrams sent and not yet acknowledged, all peers",
            gauge(s.pending_acks),
        );
        registry.register(
            "up",
            "Whether the node's network thread runs (1) or not (0)",
            gauge(usize::from(s.running)),
        );
    }

    /// The store's figures, when the node keeps one (`Config::data_dir`).
    fn register_storage(&self, registry: &mut Registry) {
        let Some(s) = &self.status.storage else {
            return;
        };
        let counters: [(&str, &str, u64); 3] = [
            ("storage_commits", "Store transactions committed", s.commits),
            (
                "storage_keys_written",
                "Keys written to or removed from the store",
                s.keys_written,
            ),
            (
                "storage_failed_commits",
                "Store commits that failed",
                s.failed_commits,
            ),
        ];
        for (name, help, value) in counters {
            registry.register(name, help, counter(value));
        }
        registry.register(
            "storage_healthy",
            "Whether the store accepts writes (1) or refuses them after a failed commit (0)",
            gauge(usize::from(s.error.is_none())),
        );
        let latencies = [
            (
                "storage_commit_mean",
                "Mean commit latency since open, fsync included",
                s.commit_mean_us,
            ),
            (
                "storage_commit_max",
                "Slowest commit since open, fsync included",
                s.commit_max_us,
            ),
        ];
        for (name, help, us) in latencies {
            let seconds = Gauge::<f64, AtomicU64>::default();
            seconds.set(us as f64 / 1e6);
            registry.register_with_unit(name, help, Unit::Seconds, seconds);
        }
    }

    fn register_peers(&self, registry: &mut Registry) {
        let by_state = Family::<Labels, Gauge>::default();
        for state in [
            PeerState::Unknown,
            PeerState::Alive,
            PeerState::Suspect,
            PeerState::Dead,
            PeerState::Left,
        ] {
            let n = self.peers.iter().filter(|p| p.state == state).count();
            by_state
                .get_or_create(&vec![("state", state.as_str())])
                .set(n as i64);
        }
        registry.register("peers", "Known peers, by failure detector state", by_state);
        // A count per size, not a gauge per peer: a path's size takes a handful of values
        // (the base, the fallback, the ladder's rungs), and a mesh may have a thousand peers.
        let by_size = Family::<Vec<(&str, String)>, Gauge>::default();
        for peer in &self.peers {
            by_size
                .get_or_create(&vec![("bytes", peer.datagram_size.to_string())])
                .inc();
        }
        registry.register(
            "peers_by_datagram_size",
            "Known peers with a link, by the largest datagram sent to them (its path's probed size)",
            by_size,
        );
        let rtt = Histogram::new(RTT_BUCKETS_S);
        for ms in self.peers.iter().filter_map(|p| p.rtt_ms) {
            rtt.observe(ms / 1000.0);
        }
        registry.register_with_unit(
            "peer_rtt",
            "Smoothed round-trip time of each peer with a measurement, at scrape time",
            Unit::Seconds,
            rtt,
        );
    }

    fn register_memory(&self, registry: &mut Registry) {
        let m = &self.memory;
        let bytes = Family::<Labels, Gauge>::default();
        for (part, value) in [
            ("send_queue", m.queued_bytes),
            ("reassembly", m.reassembly_bytes),
            ("members", m.member_bytes),
        ] {
            bytes.get_or_create(&vec![("part", part)]).set(value as i64);
        }
        registry.register_with_unit(
            "buffered",
            "Bytes held for protocol state, by part",
            Unit::Bytes,
            bytes,
        );
        let items = Family::<Labels, Gauge>::default();
        for (part, value) in [
            ("peers", m.peers),
            ("in_flight_datagrams", m.in_flight),
            ("stream_ranges", m.stream_ranges),
            ("pending_outputs", m.pending_outputs),
        ] {
            items.get_or_create(&vec![("part", part)]).set(value as i64);
        }
        registry.register(
            "protocol_items",
            "Entries held for protocol state, by part",
            items,
        );
    }
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: usize) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// The engine's fixed-bucket lag histogram, already counted: encoded as it is rather than
/// replayed into a `prometheus-client` histogram one observation at a time.
#[derive(Debug)]
struct LagHistogram(PropagationLag);

impl EncodeMetric for LagHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .0
            .by_bucket()
            .map(|(bound, n)| (bound.map_or(f64::INFINITY, |ms| ms as f64 / 1000.0), n))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_ms as f64 / 1000.0,
            self.0.count,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Counters, PeerCounts};

    fn snapshot() -> MetricsSnapshot {
        let mut counters = Counters {
            bytes_sent: 1234,
            datagrams_sent: 5,
            ..Counters::default()
        };
        counters.dropped.bad_checksum = 3;
        let mut propagation = PropagationLag::default();
        propagation.record(1_000 << 16, 1_003);
        propagation.record(1_000 << 16, 1_200);
        MetricsSnapshot {
            status: Status {
                node_id: "n\"1".to_owned(),
                port: 7,
                running: true,
                state_version: 9,
                data_keys: 4,
                tombstones: 1,
                collected_deletes: 0,
                peers: PeerCounts::default(),
                pending_acks: 2,
                hlc: 0,
                counters,
                storage: None,
            },
            peers: vec![PeerInfo {
                node_id: Some("p".to_owned()),
                addr: "127.0.0.1:9".parse().unwrap(),
                advertised_addr: None,
                state: PeerState::Alive,
                bootstrap: false,
                rtt_ms: Some(0.7),
                last_seen_ms: Some(10),
                pending_acks: 2,
                datagram_size: 1_452,
            }],
            memory: MemoryReport {
                queued_bytes: 100,
                ..MemoryReport::default()
            },
            propagation,
        }
    }

    /// Every line is a comment or `name{labels} value`, and every sample carries the
    /// node label; returns the samples as (name with labels, value).
    fn samples(text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect(line),
            };
            let name_end = series.find('{').expect(line);
            let name = &series[..name_end];
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            assert!(series.contains(r#"node="n\"1""#), "{line}");
            out.push((series.to_owned(), value));
        }
        out
    }

    #[test]
    fn a_store_adds_its_figures_and_none_without_one() {
        let mut snap = snapshot();
        assert!(
            !snap.encode().contains("storage"),
            "no store, no storage series"
        );
        snap.status.storage = Some(crate::store::StorageStatus {
            commits: 12,
            failed_commits: 1,
            commit_mean_us: 2_500,
            error: Some("disk full".into()),
            ..Default::default()
        });
        let samples = samples(&snap.encode());
        assert_eq!(value(&samples, "mesh_sync_storage_commits_total{"), 12.0);
        assert_eq!(
            value(&samples, "mesh_sync_storage_failed_commits_total{"),
            1.0
        );
        assert_eq!(value(&samples, "mesh_sync_storage_healthy{"), 0.0);
        assert_eq!(
            value(&samples, "mesh_sync_storage_commit_mean_seconds{"),
            0.0025
        );
    }

    fn value(samples: &[(String, f64)], prefix: &str) -> f64 {
        samples
            .iter()
            .find(|(s, _)| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no sample {prefix}"))
            .1
    }

    #[test]
    fn every_line_parses_and_carries_the_node_label() {
        let text = snapshot().encode();
        let samples = samples(&text);
        assert!(samples.len() > 40, "{text}");
        assert_eq!(value(&samples, "mesh_sync_sent_bytes_total{"), 1234.0);
        assert_eq!(value(&samples, "mesh_sync_keys{"), 4.0);
        assert_eq!(value(&samples, "mesh_sync_state_changes_total{"), 9.0);
    }

    #[test]
    fn drops_and_peers_are_labelled_by_reason_and_state() {
        let samples = samples(&snapshot().encode());
        let drop = |reason: &str| {
            samples
                .iter()
                .find(|(s, _)| {
                    s.starts_with("mesh_sync_dropped_total{")
                        && s.contains(&format!("reason=\"{reason}\""))
                })
                .map(|(_, v)| *v)
        };
        assert_eq!(drop("bad_checksum"), Some(3.0));
        assert_eq!(drop("oversized"), Some(0.0));
        assert_eq!(drop("origins"), Some(0.0));
        let alive = samples
            .iter()
            .find(|(s, _)| s.starts_with("mesh_sync_peers{") && s.contains("state=\"alive\""));
        assert_eq!(alive.map(|(_, v)| *v), Some(1.0));
        let probed = samples.iter().find(|(s, _)| {
            s.starts_with("mesh_sync_peers_by_datagram_size{") && s.contains("bytes=\"1452\"")
        });
        assert_eq!(probed.map(|(_, v)| *v), Some(1.0));
    }

    #[test]
    fn histograms_are_cumulative_and_end_at_infinity() {
        let samples = samples(&snapshot().encode());
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(s, _)| s.starts_with("mesh_sync_propagation_lag_seconds_bucket{"))
            .map(|(_, v)| *v)
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(buckets.last(), Some(&2.0));
        assert_eq!(
            value(&samples, "mesh_sync_propagation_lag_seconds_count{"),
            2.0
        );
        assert!((value(&samples, "mesh_sync_propagation_lag_seconds_sum{") - 0.203).abs() < 1e-9);
        assert_eq!(value(&samples, "mesh_sync_peer_rtt_seconds_count{"), 1.0);
        let le_1ms = samples.iter().find(|(s, _)| {
            s.starts_with("mesh_sync_peer_rtt_seconds_bucket{") && s.contains("le=\"0.001\"")
        });
        assert_eq!(le_1ms.map(|(_, v)| *v), Some(1.0));
    }
}
