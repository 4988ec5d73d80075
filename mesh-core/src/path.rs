//! How large the datagrams to one peer may be: Datagram Packetization Layer Path MTU
//! Discovery (DPLPMTUD, RFC 8899), reduced to what a mesh of UDP peers needs.
//!
//! Every link starts at `max_datagram_size` (1,200 bytes by default: it crosses any IPv6
//! path and nearly every IPv4 one; RFC 8899's BASE_PLPMTU). A probe is a datagram padded
//! to a candidate size, carrying a random number that the peer echoes in a small answer.
//! The node's socket sets the don't-fragment bit, so a datagram too large for some hop
//! is dropped, never fragmented: an answer proves the path carries that size, and the
//! link's new messages are cut for it. The candidates are `max_probed_datagram_size`
//! (1,452 by default: an Ethernet path, over IPv4 or IPv6) and then the midpoint between
//! it and the base, [`MAX_PROBES`] probes each. A search that ends below the largest
//! candidate starts again after [`RAISE_INTERVAL_US`] (RFC 8899's PMTU_RAISE_TIMER),
//! since paths change.
//!
//! A link is probed [`FIRST_PROBE_DELAY_US`] after it has carried a message larger than
//! one datagram and the peer has named its session back (only the peer can answer). Not
//! at once: a mesh that just formed is busy syncing, and extra datagrams then only shift
//! its timing. Not before bulk data: most links of a large mesh carry only probes and
//! pushes of one datagram, which a larger size would not shorten, and a probe of every
//! link costs each node 1.5 KB per member. A link that has carried
//! [`EARLY_PROBE_BULK_BYTES`] of bulk data is probed at once: it is in a long transfer
//! (a burst down the broadcast tree, a joiner's stream), whose rest a larger datagram
//! cuts into about a fifth fewer datagrams, and two probes are nothing beside it.
//!
//! A path may also stop carrying the size it was probed at (a route change, a tunnel):
//! its datagrams then vanish while the peer still answers small ones. When the engine
//! sees that ([`PathSize::suspect`]), the current size is probed up to
//! [`CONFIRM_PROBES`] times: one answer clears it (the losses were the path's ordinary
//! ones), none proves the black hole, and the link goes back to the base size. A false
//! alarm costs the link its session (what was in flight is lost; anti-entropy repairs
//! the writes), so the proof takes more probes than the search: a path losing 30% each
//! way loses a probe or its answer about half the time, and all of 12 once in 3,000.
//!
//! Only a peer that reads the link's session can answer a probe (the random number is
//! never sent elsewhere), so an off-path attacker cannot raise the size of a path it
//! does not see into a black hole.

/// How long after a link carried bulk data, its session confirmed, its path is first
/// probed (see [`PathSize::begin`]).
pub const FIRST_PROBE_DELAY_US: u64 = 1_000_000;
/// Bytes of messages larger than one datagram after which a link is probed without
/// waiting for [`FIRST_PROBE_DELAY_US`] (see [`PathSize::begin`]).
pub const EARLY_PROBE_BULK_BYTES: u64 = 64 * 1024;
/// Probes sent for one candidate size before trying the next (RFC 8899's MAX_PROBES).
pub const MAX_PROBES: u32 = 3;
/// Probes of the current size, all unanswered, that prove a suspected black hole.
pub const CONFIRM_PROBES: u32 = 12;
/// How long after a search that ended below the largest candidate the next one starts
/// (RFC 8899's PMTU_RAISE_TIMER).
pub const RAISE_INTERVAL_US: u64 = 600_000_000;
/// The least time a probe is given to be answered: the link's retransmission timeout,
/// or this if that is shorter.
pub const MIN_PROBE_TIMEOUT_US: u64 = 100_000;

/// A probe waiting for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outstanding {
    nonce: u64,
    deadline_us: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Probing `candidates[index]`, `sent` probes so far.
    Searching {
        index: usize,
        sent: u32,
        outstanding: Option<Outstanding>,
    },
    /// Settled at the current size; searching again from `again_us`, if set.
    Settled { again_us: Option<u64> },
    /// Probing the current size, suspected lost: `sent` probes so far.
    Confirming {
        sent: u32,
        outstanding: Option<Outstanding>,
    },
}

/// The datagram size of one link, and its search for a larger one.
#[derive(Clone, Debug)]
pub struct PathSize {
    base: usize,
    /// Larger sizes to try, largest first.
    candidates: Vec<usize>,
    size: usize,
    state: State,
    /// The probes sent since the search or confirmation began, and their sizes: an
    /// answer may come after the next probe went out (a slow path, a busy peer), and
    /// still proves its size.
    asked: Vec<(u64, usize)>,
    /// When the last suspicion was cleared: a datagram sent before then, still
    /// unanswered, is no new evidence.
    cleared_us: u64,
    /// When the first probe may go, once known (see [`PathSize::begin`]).
    first_probe_us: Option<u64>,
}

/// A probe to send: `nonce` to echo, in a datagram of exactly `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The number the answer must carry.
    pub nonce: u64,
    /// The datagram's length, in bytes.
    pub size: usize,
}

impl PathSize {
    /// A link's path at `base` bytes, to be probed up to `max` (no probing if `max` is
    /// not above `base`).
    pub fn new(base: usize, max: usize) -> PathSize {
        let mut candidates = vec![max, base + (max.saturating_sub(base)) / 2];
        candidates.retain(|&c| c > base);
        candidates.dedup();
        let state = if candidates.is_empty() {
            State::Settled { again_us: None }
        } else {
            State::Searching {
                index: 0,
                sent: 0,
                outstanding: None,
            }
        };
        PathSize {
            base,
            candidates,
            size: base,
            state,
            asked: Vec::new(),
            cleared_us: 0,
            first_probe_us: None,
        }
    }

    /// The largest datagram the path is known to carry.
    pub fn datagram_size(&self) -> usize {
        self.size
    }

    /// The size every link starts at.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The link is worth probing from `now_us` on (it carried `bulk_bytes` of bulk data)
    /// and can be (its session is confirmed): the first probe goes
    /// [`FIRST_PROBE_DELAY_US`] later, or now once `bulk_bytes` reaches
    /// [`EARLY_PROBE_BULK_BYTES`]. A later call only ever brings that time forward.
    pub fn begin(&mut self, now_us: u64, bulk_bytes: u64) {
        let delay_us = if bulk_bytes >= EARLY_PROBE_BULK_BYTES {
            0
        } else {
            FIRST_PROBE_DELAY_US
        };
        let at = now_us.saturating_add(delay_us);
        self.first_probe_us = Some(self.first_probe_us.map_or(at, |t| t.min(at)));
    }

    /// When [`PathSize::poll_probe`] or [`PathSize::on_timeout`] next has something to do
    /// (never before [`PathSize::begin`]).
    pub fn next_timeout(&self) -> Option<u64> {
        match &self.state {
            State::Searching {
                outstanding: Some(o),
                ..
            }
            | State::Confirming {
                outstanding: Some(o),
                ..
            } => Some(o.deadline_us),
            State::Searching { .. } => self.first_probe_us,
            State::Confirming { .. } => Some(0),
            State::Settled { again_us } => *again_us,
        }
    }

    /// The probe to send now, if one is due, its number drawn from `rng` (only then: a
    /// draw on every call would shift every later random choice of the node);
    /// `timeout_us` is the link's retransmission timeout.
    pub fn poll_probe(
        &mut self,
        now_us: u64,
        rng: &mut fastrand::Rng,
        timeout_us: u64,
    ) -> Option<Probe> {
        if let State::Settled {
            again_us: Some(at),
        } = self.state
        {
            if at <= now_us {
                self.state = State::Searching {
                    index: 0,
                    sent: 0,
                    outstanding: None,
                };
                self.asked.clear();
            }
        }
        if self.first_probe_us.is_none_or(|at| now_us < at) {
            return None;
        }
        let (size, sent, outstanding) = match &mut self.state {
            State::Searching {
                index,
                sent,
                outstanding: outstanding @ None,
            } => (self.candidates[*index], sent, outstanding),
            State::Confirming {
                sent,
                outstanding: outstanding @ None,
            } => (self.size, sent, outstanding),
            _ => return None,
        };
        let nonce = rng.u64(..);
        *sent += 1;
        *outstanding = Some(Outstanding {
            nonce,
            deadline_us: now_us + timeout_us.max(MIN_PROBE_TIMEOUT_US),
        });
        self.asked.push((nonce, size));
        Some(Probe { nonce, size })
    }

    /// Gives up on a probe unanswered past its deadline: the next one is due at once,
    /// for the same size or, after [`MAX_PROBES`], the next smaller one. `true` when
    /// that proves a suspected black hole: the size is then back to the base.
    pub fn on_timeout(&mut self, now_us: u64) -> bool {
        let (sent, outstanding, most) = match &mut self.state {
            State::Searching {
                sent, outstanding, ..
            } => (sent, outstanding, MAX_PROBES),
            State::Confirming { sent, outstanding } => (sent, outstanding, CONFIRM_PROBES),
            State::Settled { .. } => return false,
        };
        if outstanding.is_none_or(|o| o.deadline_us > now_us) {
            return false;
        }
        *outstanding = None;
        if *sent < most {
            return false;
        }
        match &mut self.state {
            State::Confirming { .. } => {
                self.size = self.base;
                self.state = State::Settled {
                    again_us: Some(now_us + RAISE_INTERVAL_US),
                };
                // Answers still on their way prove nothing about the path as it is now.
                self.asked.clear();
                true
            }
            State::Searching { index, sent, .. } => {
                *index += 1;
                *sent = 0;
                if *index == self.candidates.len() {
                    self.state = State::Settled {
                        again_us: Some(now_us + RAISE_INTERVAL_US),
                    };
                }
                false
            }
            State::Settled { .. } => false,
        }
    }

    /// The peer echoed `nonce`: `true` if that answers one of this search's probes
    /// with a size above the current one, which becomes the size. An answer during a
    /// confirmation clears the suspicion.
    pub fn on_answer(&mut self, nonce: u64, now_us: u64) -> bool {
        let Some(size) = self
            .asked
            .iter()
            .find(|(n, _)| *n == nonce)
            .map(|&(_, size)| size)
        else {
            return false;
        };
        let searching = !matches!(self.state, State::Settled { .. });
        let raised = size > self.size;
        if !raised && !searching {
            return false;
        }
        if self.is_confirming() {
            self.cleared_us = now_us;
        }
        self.size = self.size.max(size);
        let largest = self.candidates.first() == Some(&self.size);
        self.state = State::Settled {
            again_us: (!largest).then_some(now_us + RAISE_INTERVAL_US),
        };
        raised
    }

    /// A datagram of the current size, first sent at `sent_us`, went unanswered too
    /// long: the path may have stopped carrying that size. It is probed again, and falls
    /// back to the base if no probe gets through (see [`PathSize::on_timeout`]). Nothing
    /// to do at the base size, while already searching or confirming, or for a datagram
    /// sent before the last suspicion was cleared.
    pub fn suspect(&mut self, sent_us: u64) {
        let settled = matches!(self.state, State::Settled { .. });
        if self.size > self.base && settled && sent_us > self.cleared_us {
            self.state = State::Confirming {
                sent: 0,
                outstanding: None,
            };
            self.asked.clear();
        }
    }

    /// Whether the current size is being probed again (see [`PathSize::suspect`]).
    pub fn is_confirming(&self) -> bool {
        matches!(self.state, State::Confirming { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path whose session is confirmed, its first probe allowed from time 0.
    fn begun() -> PathSize {
        let mut path = PathSize::new(1_200, 1_452);
        path.first_probe_us = Some(0);
        path
    }

    /// [`PathSize::poll_probe`] with a seeded generator.
    fn poll(path: &mut PathSize, now_us: u64, timeout_us: u64) -> Option<Probe> {
        path.poll_probe(now_us, &mut fastrand::Rng::with_seed(now_us), timeout_us)
    }

    #[test]
    fn the_first_probe_waits_for_the_delay_after_the_link_carried_bulk_data() {
        let mut path = PathSize::new(1_200, 1_452);
        assert_eq!(path.next_timeout(), None, "not before it began");
        assert_eq!(poll(&mut path, 5, 0), None, "not before it began");
        path.begin(5, 2_000);
        path.begin(900, 4_000);
        assert_eq!(path.next_timeout(), Some(5 + FIRST_PROBE_DELAY_US));
        assert_eq!(poll(&mut path, 4 + FIRST_PROBE_DELAY_US, 0), None);
        assert!(poll(&mut path, 5 + FIRST_PROBE_DELAY_US, 0).is_some());
    }

    #[test]
    fn a_link_in_a_long_transfer_is_probed_without_the_delay() {
        let mut path = PathSize::new(1_200, 1_452);
        path.begin(5, 2_000);
        assert_eq!(poll(&mut path, 900, 0), None);
        path.begin(900, EARLY_PROBE_BULK_BYTES);
        assert_eq!(path.next_timeout(), Some(900));
        assert_eq!(poll(&mut path, 900, 0).map(|p| p.size), Some(1_452));
        path.begin(1_000, 2 * EARLY_PROBE_BULK_BYTES);
        assert_eq!(path.next_timeout(), Some(900 + MIN_PROBE_TIMEOUT_US));
    }

    #[test]
    fn no_random_number_is_drawn_unless_a_probe_goes() {
        let mut path = PathSize::new(1_200, 1_452);
        let mut rng = fastrand::Rng::with_seed(3);
        let before = rng.clone();
        assert_eq!(path.poll_probe(10, &mut rng, 0), None);
        assert_eq!(rng, before);
    }

    #[test]
    fn an_answered_probe_sets_the_size_for_good() {
        let mut path = begun();
        assert_eq!(path.datagram_size(), 1_200);
        assert_eq!(path.next_timeout(), Some(0));
        let probe = poll(&mut path, 10, 50_000).unwrap();
        assert_eq!(probe.size, 1_452);
        assert_eq!(poll(&mut path, 11, 50_000), None, "one probe at a time");
        assert_eq!(path.next_timeout(), Some(10 + MIN_PROBE_TIMEOUT_US));
        assert!(!path.on_answer(probe.nonce ^ 1, 20), "another number answers nothing");
        assert!(path.on_answer(probe.nonce, 20));
        assert_eq!(path.datagram_size(), 1_452);
        assert_eq!(path.next_timeout(), None, "the largest candidate: no search again");
        assert!(!path.on_answer(probe.nonce, 30), "answered once");
    }

    #[test]
    fn unanswered_probes_step_down_then_settle_at_the_base_until_the_raise_timer() {
        let mut path = begun();
        let mut now = 0;
        let mut sizes = Vec::new();
        while let Some(probe) = poll(&mut path, now, 0) {
            sizes.push(probe.size);
            now += MIN_PROBE_TIMEOUT_US;
            path.on_timeout(now - 1);
            assert_eq!(poll(&mut path, now - 1, 0), None, "not before its deadline");
            path.on_timeout(now);
        }
        assert_eq!(sizes, [1_452, 1_452, 1_452, 1_326, 1_326, 1_326]);
        assert_eq!(path.datagram_size(), 1_200);
        assert_eq!(path.next_timeout(), Some(now + RAISE_INTERVAL_US));
        let again = poll(&mut path, now + RAISE_INTERVAL_US, 0).unwrap();
        assert_eq!(again.size, 1_452, "the search starts over from the top");
    }

    #[test]
    fn a_late_answer_still_proves_its_size() {
        let mut path = begun();
        let first = poll(&mut path, 0, 0).unwrap();
        path.on_timeout(MIN_PROBE_TIMEOUT_US);
        let second = poll(&mut path, MIN_PROBE_TIMEOUT_US, 0).unwrap();
        assert_eq!(first.size, 1_452);
        assert!(path.on_answer(first.nonce, MIN_PROBE_TIMEOUT_US + 5), "the first's answer");
        assert_eq!(path.datagram_size(), 1_452);
        assert!(!path.on_answer(second.nonce, MIN_PROBE_TIMEOUT_US + 6), "nothing more");
        let never = first.nonce ^ second.nonce ^ 1;
        assert!(!path.on_answer(never, MIN_PROBE_TIMEOUT_US + 7), "never asked");
    }

    #[test]
    fn a_smaller_size_found_is_raised_later() {
        let mut path = begun();
        for now in [0, 1, 2] {
            poll(&mut path, now * MIN_PROBE_TIMEOUT_US, 0).unwrap();
            path.on_timeout((now + 1) * MIN_PROBE_TIMEOUT_US);
        }
        let probe = poll(&mut path, 3 * MIN_PROBE_TIMEOUT_US, 0).unwrap();
        assert_eq!(probe.size, 1_326);
        assert!(path.on_answer(probe.nonce, 400_000));
        assert_eq!(path.datagram_size(), 1_326);
        assert_eq!(path.next_timeout(), Some(400_000 + RAISE_INTERVAL_US));
    }

    #[test]
    fn a_suspected_size_probed_in_vain_falls_back_to_the_base() {
        let mut path = begun();
        let first = poll(&mut path, 0, 0).unwrap();
        assert!(path.on_answer(first.nonce, 10));
        path.suspect(500);
        assert!(path.is_confirming());
        assert_eq!(path.datagram_size(), 1_452, "kept while confirming");
        let mut now = 1_000;
        for n in 0..CONFIRM_PROBES {
            let probe = poll(&mut path, now, 0).unwrap();
            assert_eq!(probe.size, 1_452);
            now += MIN_PROBE_TIMEOUT_US;
            let proven = path.on_timeout(now);
            assert_eq!(proven, n + 1 == CONFIRM_PROBES);
        }
        assert_eq!(path.datagram_size(), 1_200);
        assert_eq!(path.next_timeout(), Some(now + RAISE_INTERVAL_US));
    }

    #[test]
    fn a_suspected_size_answered_once_stays() {
        let mut path = begun();
        let first = poll(&mut path, 0, 0).unwrap();
        assert!(path.on_answer(first.nonce, 10));
        path.suspect(50);
        poll(&mut path, 100, 0).unwrap();
        assert!(!path.on_timeout(100 + MIN_PROBE_TIMEOUT_US));
        let second = poll(&mut path, 100 + MIN_PROBE_TIMEOUT_US, 0).unwrap();
        assert!(!path.on_answer(second.nonce, 200_000), "the size stays as it was");
        assert!(!path.is_confirming());
        assert_eq!(path.datagram_size(), 1_452);
        assert_eq!(path.next_timeout(), None);
        path.suspect(150_000);
        assert!(!path.is_confirming(), "sent before the suspicion was cleared");
        path.suspect(200_001);
        assert!(path.is_confirming(), "a datagram sent since is new evidence");
    }

    #[test]
    fn no_probing_when_the_ceiling_is_not_above_the_base() {
        for max in [0, 1_000, 1_200] {
            let mut path = PathSize::new(1_200, max);
            path.begin(0, 0);
            assert_eq!(path.next_timeout(), None);
            assert_eq!(poll(&mut path, FIRST_PROBE_DELAY_US, 0), None);
            path.suspect(1);
            assert_eq!(path.next_timeout(), None, "nothing to suspect at the base");
        }
    }
}
