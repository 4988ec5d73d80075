//! Fault injection: what an unreliable network does to datagrams.
//!
//! [`FaultInjector`] is pure (randomness from its own seeded generator, time passed in),
//! so the node runtime uses it at its socket edge and the simulator uses the very same
//! rules for its virtual network.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

/// How to mistreat datagrams. The default is a perfect network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability in [0, 1] that an outgoing datagram is dropped.
    pub loss_rate: f64,
    /// Fixed delay added to every outgoing datagram.
    pub delay: Duration,
    /// Random extra delay, uniform in [0, jitter].
    pub jitter: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate_rate: f64,
    /// Probability that a datagram is held back so that later ones overtake it.
    pub reorder_rate: f64,
    /// Probability that one byte of a datagram is flipped.
    pub corrupt_rate: f64,
    /// Peers cut off in both directions: nothing is sent to or accepted from them.
    pub partitioned: BTreeSet<SocketAddr>,
    /// Longest datagram the path carries, if limited: a longer one is dropped (counted
    /// as lost), as a hop with a smaller MTU drops a datagram with the don't-fragment bit.
    pub max_datagram: Option<usize>,
}

impl FaultConfig {
    /// A network that only loses datagrams, with the given probability.
    pub fn lossy(loss_rate: f64) -> FaultConfig {
        FaultConfig {
            loss_rate,
            ..FaultConfig::default()
        }
    }

    /// Checks that every rate is a probability.
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        for (field, rate) in [
            ("loss_rate", self.loss_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
            ("corrupt_rate", self.corrupt_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(crate::ConfigError::new(field, "must be between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Whether traffic to or from `addr` is cut.
    pub fn is_partitioned(&self, addr: &SocketAddr) -> bool {
        self.partitioned.contains(addr)
    }
}

/// What fault injection did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultStats {
    /// Datagrams offered to the injector (outgoing).
    pub packets_sent: u64,
    /// Datagrams dropped by the loss rate.
    pub packets_dropped: u64,
    /// Datagrams dropped because of a partition (both directions).
    pub packets_partitioned: u64,
    /// Datagrams sent with a delay.
    pub packets_delayed: u64,
    /// Extra copies sent.
    pub packets_duplicated: u64,
    /// Datagrams held back to be reordered.
    pub packets_reordered: u64,
    /// Datagrams with a flipped byte.
    pub packets_corrupted: u64,
}

impl FaultStats {
    /// Fraction of offered datagrams that were dropped (loss and partition).
    pub fn drop_rate(&self) -> f64 {
        if self.packets_sent == 0 {
            0.0
        } else {
            (self.packets_dropped + self.packets_partitioned) as f64 / self.packets_sent as f64
        }
    }
}

/// One copy of a datagram that survived the injector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Extra delay before it leaves, in microseconds.
    pub delay_us: u64,
    /// The bytes to send (corrupted if the injector decided so).
    pub payload: Vec<u8>,
}

/// Applies a [`FaultConfig`] to datagrams with a seeded generator.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    rng: fastrand::Rng,
    stats: FaultStats,
}

/// Extra hold applied to a datagram chosen for reordering, on top of delay and jitter.
const REORDER_HOLD_US: u64 = 3_000;

impl FaultInjector {
    /// An injector with the given rules and seed.
    pub fn new(config: FaultConfig, seed: u64) -> FaultInjector {
        FaultInjector {
            config,
            rng: fastrand::Rng::with_seed(seed),
            stats: FaultStats::default(),
        }
    }

    /// The rules in force.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Replaces the rules; counters are kept.
    pub fn set_config(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// Counters so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// Whether the perfect-network fast path applies (no rule set).
    pub fn is_transparent(&self) -> bool {
        self.config == FaultConfig::default()
    }

    /// Decides whether a datagram arriving from `from` is accepted (partitions only).
    pub fn accept_incoming(&mut self, from: &SocketAddr) -> bool {
        if self.config.is_partitioned(from) {
            self.stats.packets_partitioned += 1;
            return false;
        }
        true
    }

    /// Decides the fate of an outgoing datagram: zero, one or two deliveries.
    pub fn outgoing(&mut self, to: &SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        self.stats.packets_sent += 1;
        if self.config.is_partitioned(to) {
            self.stats.packets_partitioned += 1;
            return Vec::new();
        }
        let too_long = self
            .config
            .max_datagram
            .is_some_and(|max| payload.len() > max);
        if too_long || self.chance(self.config.loss_rate) {
            self.stats.packets_dropped += 1;
            return Vec::new();
        }
        let copies = if self.chance(self.config.duplicate_rate) {
            self.stats.packets_duplicated += 1;
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut delay_us = self.config.delay.as_micros() as u64;
            let jitter_us = self.config.jitter.as_micros() as u64;
            if jitter_us > 0 {
                delay_us += self.rng.u64(0..=jitter_us);
            }
            if self.chance(self.config.reorder_rate) {
                self.stats.packets_reordered += 1;
                delay_us += REORDER_HOLD_US + self.rng.u64(0..=REORDER_HOLD_US);
            }
            if delay_us > 0 {
                self.stats.packets_delayed += 1;
            }
            let mut bytes = payload.to_vec();
            if !bytes.is_empty() && self.chance(self.config.corrupt_rate) {
                self.stats.packets_corrupted += 1;
                let at = self.rng.usize(0..bytes.len());
                bytes[at] ^= 1 << self.rng.u8(0..8);
            }
            out.push(Delivery {
                delay_us,
                payload: bytes,
            });
        }
        out
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn loss_rate_is_roughly_honoured_and_counted() {
        let mut inj = FaultInjector::new(FaultConfig::lossy(0.3), 7);
        let delivered: usize = (0..10_000)
            .map(|_| inj.outgoing(&addr(1), b"x").len())
            .sum();
        let stats = inj.stats();
        assert_eq!(stats.packets_sent, 10_000);
        assert_eq!(stats.packets_dropped as usize, 10_000 - delivered);
        assert!((0.27..0.33).contains(&stats.drop_rate()), "{stats:?}");
    }

    #[test]
    fn partition_cuts_both_directions() {
        let mut cfg = FaultConfig::default();
        cfg.partitioned.insert(addr(2));
        let mut inj = FaultInjector::new(cfg, 1);
        assert!(inj.outgoing(&addr(2), b"x").is_empty());
        assert!(!inj.accept_incoming(&addr(2)));
        assert_eq!(inj.outgoing(&addr(3), b"x").len(), 1);
        assert!(inj.accept_incoming(&addr(3)));
        assert_eq!(inj.stats().packets_partitioned, 2);
    }

    #[test]
    fn duplication_delay_and_corruption_apply() {
        let cfg = FaultConfig {
            duplicate_rate: 1.0,
            corrupt_rate: 1.0,
            delay: Duration::from_millis(5),
            ..FaultConfig::default()
        };
        let mut inj = FaultInjector::new(cfg, 3);
        let out = inj.outgoing(&addr(1), &[0u8; 16]);
        assert_eq!(out.len(), 2);
        for d in &out {
            assert!(d.delay_us >= 5_000);
            assert_ne!(d.payload, vec![0u8; 16]);
        }
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(
            FaultConfig::lossy(1.5).validate().unwrap_err().field,
            "loss_rate"
        );
        FaultConfig::lossy(0.3).validate().unwrap();
    }
}
