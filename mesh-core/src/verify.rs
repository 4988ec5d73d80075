//! Address verification: a source becomes a peer only after proving that it receives
//! what is sent to its address.
//!
//! Anyone can put any source address on a UDP datagram. So a datagram from an address
//! this node has not verified, or one announcing a new incarnation of a known peer,
//! changes nothing: it is answered with a `Challenge` carrying a random nonce, and only a
//! datagram that echoes the nonce in a `Response`, from the same address and with the
//! incarnation the challenge was bound to, admits the sender. A spoofer never sees the
//! nonce (it goes to the real owner of the address), so it can neither create a peer nor
//! bump a peer's incarnation. Until an address is verified this node sends it at most
//! [`AMPLIFICATION_FACTOR`] times the bytes it received from it (the rule of RFC 9000
//! §8.1), so a spoofed datagram cannot turn the node into an amplifier.
//!
//! Nonces come from the engine's seeded generator: they stop blind spoofing, not an
//! attacker who can see the traffic or predict the generator; a keyed mesh authenticates
//! every datagram instead.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Bytes sent to an unverified address, at most, per byte received from it.
pub const AMPLIFICATION_FACTOR: u64 = 3;
/// Unverified addresses remembered at once; the oldest is forgotten first.
pub(crate) const MAX_PENDING: usize = 1024;

/// One outstanding challenge.
#[derive(Debug)]
struct Pending {
    nonce: u64,
    /// The incarnation the answer must come with; 0 accepts any (a probe of a bootstrap
    /// or gossiped address, whose incarnation is not known yet).
    incarnation: u64,
    received: u64,
    sent: u64,
    created_us: u64,
}

/// Outstanding challenges and the amplification budget of unverified addresses.
#[derive(Debug)]
pub(crate) struct Verifier {
    pending: HashMap<SocketAddr, Pending>,
    /// Creation order, oldest first (entries may be stale after a re-challenge).
    order: VecDeque<(SocketAddr, u64)>,
    lifetime_us: u64,
}

impl Verifier {
    /// No challenge outstanding; each lives `lifetime_us` unanswered.
    pub fn new(lifetime_us: u64) -> Verifier {
        Verifier {
            pending: HashMap::new(),
            order: VecDeque::new(),
            lifetime_us,
        }
    }

    /// The nonce to challenge `addr` with, bound to `incarnation` (0: any). An
    /// outstanding challenge is reused unless it was bound to another incarnation, so
    /// repeated probes and a late answer to an earlier one all work.
    pub fn challenge(
        &mut self,
        addr: SocketAddr,
        incarnation: u64,
        now_us: u64,
        rng: &mut fastrand::Rng,
    ) -> u64 {
        self.expire(now_us);
        if let Some(p) = self.pending.get_mut(&addr) {
            // 0 means "any": narrowing it to the incarnation that answered keeps the
            // nonce, so two nodes probing each other at once still meet.
            if incarnation == 0 || p.incarnation == incarnation {
                return p.nonce;
            }
            if p.incarnation != 0 {
                p.nonce = rng.u64(1..);
            }
            p.incarnation = incarnation;
            return p.nonce;
        }
        if self.pending.len() >= MAX_PENDING {
            self.evict_oldest();
        }
        let nonce = rng.u64(1..);
        self.pending.insert(
            addr,
            Pending {
                nonce,
                incarnation,
                received: 0,
                sent: 0,
                created_us: now_us,
            },
        );
        self.order.push_back((addr, now_us));
        nonce
    }

    /// Withdraws the challenge to `addr` that `nonce` answers, if one is pending: the run
    /// this node holds at `addr` answered it, so the claim it was made for (another
    /// incarnation from that address) was not that run's.
    pub fn withdraw(&mut self, addr: SocketAddr, nonce: u64) {
        if self.pending.get(&addr).is_some_and(|p| p.nonce == nonce) {
            self.pending.remove(&addr);
        }
    }

    /// Whether `nonce`, received at `now_us` from `addr` with `incarnation`, answers its
    /// challenge: if so, the time since the challenge was first sent. A match settles
    /// the challenge.
    ///
    /// The answer may be to any copy of the challenge sent since the first, so that
    /// time is at least a round trip to `addr`, and exactly one when the first copy was
    /// answered.
    pub fn verify(
        &mut self,
        addr: SocketAddr,
        incarnation: u64,
        nonce: u64,
        now_us: u64,
    ) -> Option<u64> {
        let matches = self.pending.get(&addr).is_some_and(|p| {
            p.nonce == nonce && (p.incarnation == 0 || p.incarnation == incarnation)
        });
        if !matches {
            return None;
        }
        let p = self.pending.remove(&addr)?;
        Some(now_us.saturating_sub(p.created_us))
    }

    /// Counts `bytes` received from the unverified `addr`.
    pub fn on_received(&mut self, addr: SocketAddr, bytes: usize) {
        if let Some(p) = self.pending.get_mut(&addr) {
            p.received += bytes as u64;
        }
    }

    /// Whether `bytes` more may be sent to the unverified `addr` in answer to what it
    /// sent; if so they are counted.
    pub fn may_send(&mut self, addr: SocketAddr, bytes: usize) -> bool {
        let Some(p) = self.pending.get_mut(&addr) else {
            return false;
        };
        let allowed = p.sent + bytes as u64 <= AMPLIFICATION_FACTOR * p.received;
        if allowed {
            p.sent += bytes as u64;
        }
        allowed
    }

    /// Challenges outstanding.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now_us: u64) {
        while let Some(&(addr, created)) = self.order.front() {
            if created + self.lifetime_us > now_us {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&addr).is_some_and(|p| p.created_us == created) {
                self.pending.remove(&addr);
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((addr, created)) = self.order.pop_front() {
            if self.pending.get(&addr).is_some_and(|p| p.created_us == created) {
                self.pending.remove(&addr);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn only_the_nonce_from_the_same_address_and_incarnation_verifies() {
        let mut v = Verifier::new(1_000_000);
        let mut rng = fastrand::Rng::with_seed(1);
        let n = v.challenge(addr(1), 7, 0, &mut rng);
        assert_eq!(v.challenge(addr(1), 7, 10, &mut rng), n, "reused while outstanding");
        assert!(v.verify(addr(2), 7, n, 0).is_none(), "another address");
        assert!(v.verify(addr(1), 8, n, 0).is_none(), "another incarnation");
        assert!(v.verify(addr(1), 7, n ^ 1, 0).is_none(), "another nonce");
        // Answered 25 µs after the first challenge: the answer may be to either copy.
        assert_eq!(v.verify(addr(1), 7, n, 25), Some(25));
        assert!(v.verify(addr(1), 7, n, 30).is_none(), "settled once");
    }

    #[test]
    fn a_probe_challenge_accepts_any_incarnation_and_narrows_without_a_new_nonce() {
        let mut v = Verifier::new(1_000_000);
        let mut rng = fastrand::Rng::with_seed(1);
        let n = v.challenge(addr(1), 0, 0, &mut rng);
        assert!(v.verify(addr(1), 12345, n, 0).is_some());
        let n = v.challenge(addr(1), 0, 0, &mut rng);
        assert_eq!(v.challenge(addr(1), 5, 0, &mut rng), n);
        assert_eq!(v.challenge(addr(1), 0, 0, &mut rng), n);
        assert!(v.verify(addr(1), 6, n, 0).is_none(), "narrowed to incarnation 5");
        assert!(v.verify(addr(1), 5, n, 0).is_some());
    }

    #[test]
    fn rebinding_to_another_incarnation_invalidates_the_old_nonce() {
        let mut v = Verifier::new(1_000_000);
        let mut rng = fastrand::Rng::with_seed(1);
        let old = v.challenge(addr(1), 7, 0, &mut rng);
        let new = v.challenge(addr(1), 9, 0, &mut rng);
        assert_ne!(old, new);
        assert!(v.verify(addr(1), 7, old, 0).is_none());
        assert!(v.verify(addr(1), 9, new, 0).is_some());
    }

    #[test]
    fn at_most_three_times_what_was_received_is_sent() {
        let mut v = Verifier::new(1_000_000);
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(!v.may_send(addr(1), 1), "nothing received, nothing sent");
        v.challenge(addr(1), 7, 0, &mut rng);
        v.on_received(addr(1), 30);
        assert!(v.may_send(addr(1), 60));
        assert!(!v.may_send(addr(1), 31));
        assert!(v.may_send(addr(1), 30));
        v.on_received(addr(1), 10);
        assert!(v.may_send(addr(1), 30));
        assert!(!v.may_send(addr(1), 1));
    }

    #[test]
    fn challenges_expire_and_are_bounded() {
        let mut v = Verifier::new(100);
        let mut rng = fastrand::Rng::with_seed(1);
        let n = v.challenge(addr(1), 7, 0, &mut rng);
        v.challenge(addr(2), 7, 150, &mut rng);
        assert!(v.verify(addr(1), 7, n, 0).is_none(), "expired");
        for port in 0..(MAX_PENDING as u16 + 10) {
            v.challenge(addr(1000 + port), 1, 150, &mut rng);
        }
        assert_eq!(v.len(), MAX_PENDING);
    }
}
