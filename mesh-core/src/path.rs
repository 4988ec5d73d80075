//! How large the datagrams to one peer may be: Datagram Packetization Layer Path MTU
//! Discovery (DPLPMTUD, RFC 8899), reduced to what a mesh of UDP peers needs.
//!
//! Every link starts at `max_datagram_size` (1,200 bytes by default: it crosses any IPv6
//! path and nearly every IPv4 one; RFC 8899's BASE_PLPMTU). A probe is a datagram padded
//! to a candidate size, carrying a random number that the peer echoes in a small answer.
//! The node's socket sets the don't-fragment bit, so a datagram too large for some hop
//! (or for the sending host's own interface) is dropped, never fragmented: an answer
//! proves the path carries that size, and the link's new messages are cut for it.
//!
//! The search climbs a ladder of the sizes paths commonly carry, smallest first, up to
//! `max_probed_datagram_size` (16,384 by default), [`MAX_PROBES`] probes per rung:
//! [`ETHERNET_DATAGRAM_SIZE`], then [`JUMBO_DATAGRAM_SIZE`], then the ceiling. Climbing
//! means the link uses each size as soon as it is proven, and a rung the path does not
//! carry costs only probes of that rung: on an Ethernet host, a jumbo probe does not
//! even leave it. The ceiling is the loopback interface's case (a mesh on one host,
//! whose interface carries 64 KiB), and, past 16 KiB, a larger datagram saves little
//! beside the per-byte costs while a loss costs more to repair. If the first rung is not
//! carried (a tunnel's smaller MTU), the midpoint between it and the base is probed
//! instead, as the last try. A search that stops below the ceiling starts again after
//! [`RAISE_INTERVAL_US`] (RFC 8899's PMTU_RAISE_TIMER), since paths change.
//!
//! A probe is all padding, and a larger datagram saves only a header and an ack's share
//! every few kilobytes: in bytes, a 16 KiB probe pays for itself over about a megabyte.
//! Fewer datagrams save far more CPU than bytes (each is a system call and a wakeup at
//! both ends), but a mesh where every node streams to every other a few hundred
//! kilobytes would spend a third more bytes on probes. So a rung above the first is
//! probed only once the link has carried [`RUNG_COST_RATIO`] times its size in bulk
//! data: a transfer that long is likely to go on, and the probes cost it a few percent.
//!
//! A link is probed [`FIRST_PROBE_DELAY_US`] after it has carried a message larger than
//! one datagram and the peer has named its session back (only the peer can answer). Not
//! at once: a mesh that just formed is busy syncing, and extra datagrams then only shift
//! its timing. Not before bulk data: most links of a large mesh carry only probes and
//! pushes of one datagram, which a larger size would not shorten, and a probe of every
//! link costs each node 1.5 KB per member. A link that has carried
//! [`EARLY_PROBE_BULK_BYTES`] of bulk data is probed at once: it is in a long transfer
//! (a burst down the broadcast tree, a joiner's stream), whose rest a larger datagram
//! cuts into fewer datagrams, and a few probes are nothing beside it.
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

/// The UDP payload an Ethernet path (1,500-byte MTU) carries over IPv4 or IPv6: the
/// search's first rung.
pub const ETHERNET_DATAGRAM_SIZE: usize = 1_452;
/// The UDP payload a jumbo-frame path (9,000-byte MTU) carries over IPv4 or IPv6.
pub const JUMBO_DATAGRAM_SIZE: usize = 8_952;
/// A rung above the first is probed once the link has carried this many times its size
/// in bulk data (see the module's documentation).
pub const RUNG_COST_RATIO: u64 = 16;
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
    /// Probing `size`, `sent` probes so far.
    Searching {
        size: usize,
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

impl State {
    /// A search about to send its first probe of `size`.
    fn searching(size: usize) -> State {
        State::Searching {
            size,
            sent: 0,
            outstanding: None,
        }
    }
}

/// The datagram size of one link, and its search for a larger one.
#[derive(Clone, Debug)]
pub struct PathSize {
    base: usize,
    /// The rungs above the base, smallest first; the last is the ceiling.
    rungs: Vec<usize>,
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
    /// Bytes of bulk data the link has carried, as last told to [`PathSize::begin`].
    carried: u64,
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
        let mut rungs = vec![ETHERNET_DATAGRAM_SIZE, JUMBO_DATAGRAM_SIZE, max];
        rungs.retain(|&r| r > base && r <= max);
        rungs.sort_unstable();
        rungs.dedup();
        let state = match rungs.first() {
            Some(&size) => State::searching(size),
            None => State::Settled { again_us: None },
        };
        PathSize {
            base,
            rungs,
            size: base,
            state,
            asked: Vec::new(),
            cleared_us: 0,
            first_probe_us: None,
            carried: 0,
        }
    }

    /// The smallest rung above the current size, if the size is below the ceiling.
    fn next_rung(&self) -> Option<usize> {
        self.rungs.iter().copied().find(|&r| r > self.size)
    }

    /// Whether the link has carried enough to be probed at `size` (see
    /// [`RUNG_COST_RATIO`]): always for the first rung and below.
    fn paid_for(&self, size: usize) -> bool {
        self.rungs.first().is_none_or(|&first| size <= first)
            || self.carried >= (size as u64).saturating_mul(RUNG_COST_RATIO)
    }

    /// The size probed as the last try when the first rung is not carried: halfway
    /// from the base to it (a tunnel's path, a little under Ethernet's), if that is
    /// above the base.
    fn fallback(&self) -> Option<usize> {
        let first = *self.rungs.first()?;
        let middle = self.base + (first - self.base) / 2;
        (middle > self.base).then_some(middle)
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
    /// [`EARLY_PROBE_BULK_BYTES`]. A later call only ever brings that time forward, and
    /// may let the search climb to a rung it waited for (see [`RUNG_COST_RATIO`]).
    pub fn begin(&mut self, now_us: u64, bulk_bytes: u64) {
        self.carried = bulk_bytes;
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
            State::Searching { size, .. } => self.first_probe_us.filter(|_| self.paid_for(*size)),
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
                self.state = match self.next_rung() {
                    Some(size) => State::searching(size),
                    None => State::Settled { again_us: None },
                };
                self.asked.clear();
            }
        }
        if self.first_probe_us.is_none_or(|at| now_us < at) {
            return None;
        }
        if let State::Searching { size, .. } = self.state {
            if !self.paid_for(size) {
                return None;
            }
        }
        let (size, sent, outstanding) = match &mut self.state {
            State::Searching {
                size,
                sent,
                outstanding: outstanding @ None,
            } => (*size, sent, outstanding),
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
    /// for the same size. After [`MAX_PROBES`], the search stops where it is (below the
    /// first rung, it tries the fallback first). `true` when that proves a suspected
    /// black hole: the size is then back to the base.
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
            State::Searching { size, .. } => {
                let probed = *size;
                let fallback = self.fallback().filter(|_| {
                    self.size == self.base && self.rungs.first() == Some(&probed)
                });
                self.state = match fallback {
                    Some(size) => State::searching(size),
                    None => State::Settled {
                        again_us: Some(now_us + RAISE_INTERVAL_US),
                    },
                };
                false
            }
            State::Settled { .. } => false,
        }
    }

    /// The peer echoed `nonce`: `true` if that answers one of this search's probes
    /// with a size above the current one, which becomes the size; a search then climbs
    /// on to the next rung. An answer during a confirmation clears the suspicion.
    pub fn on_answer(&mut self, nonce: u64, now_us: u64) -> bool {
        let Some(size) = self
            .asked
            .iter()
            .find(|(n, _)| *n == nonce)
            .map(|&(_, size)| size)
        else {
            return false;
        };
        let raised = size > self.size;
        if self.is_confirming() {
            self.cleared_us = now_us;
        } else if !raised {
            return false;
        }
        // The fallback's answer ends the search: the first rung above it was not carried.
        let climbing = matches!(self.state, State::Searching { .. }) && self.rungs.contains(&size);
        self.size = self.size.max(size);
        self.state = match self.next_rung() {
            Some(size) if climbing => State::searching(size),
            next => State::Settled {
                again_us: next.map(|_| now_us + RAISE_INTERVAL_US),
            },
        };
        raised
    }

    /// A datagram of the current size, first sent at `sent_us`, went unanswered too
    /// long: the path may have stopped carrying that size. It is probed again, and falls
    /// back to the base if no probe gets through (see [`PathSize::on_timeout`]). Nothing
    /// to do at the base size, while already confirming, or for a datagram sent before
    /// the last suspicion was cleared. A climb to a larger rung gives way: the link may
    /// wait long for it (see [`RUNG_COST_RATIO`]), and starts it again after
    /// [`RAISE_INTERVAL_US`].
    pub fn suspect(&mut self, sent_us: u64) {
        if self.size > self.base && !self.is_confirming() && sent_us > self.cleared_us {
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
        assert_eq!(again.size, 1_452, "the search starts over from the first rung");
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

    /// A path at a base of 1,200 bytes whose link has carried `bulk_bytes` (enough to
    /// be probed at once).
    fn carrying(max: usize, bulk_bytes: u64) -> PathSize {
        let mut path = PathSize::new(1_200, max);
        path.begin(0, bulk_bytes.max(EARLY_PROBE_BULK_BYTES));
        path
    }

    /// Answers every probe at once until the search stops; the sizes probed.
    fn climb(path: &mut PathSize, carried: usize) -> Vec<usize> {
        let mut now = 0;
        let mut sizes = Vec::new();
        while let Some(probe) = poll(path, now, 0) {
            sizes.push(probe.size);
            if probe.size <= carried {
                assert!(path.on_answer(probe.nonce, now + 1), "{probe:?}");
            }
            now += MIN_PROBE_TIMEOUT_US;
            path.on_timeout(now);
        }
        sizes
    }

    #[test]
    fn the_search_climbs_the_ladder_to_the_ceiling() {
        for (max, rungs) in [
            (16_384, vec![1_452, 8_952, 16_384]),
            (9_000, vec![1_452, 8_952, 9_000]),
            (8_952, vec![1_452, 8_952]),
            (4_000, vec![1_452, 4_000]),
            (1_300, vec![1_300]),
        ] {
            let mut path = carrying(max, u64::MAX);
            assert_eq!(climb(&mut path, usize::MAX), rungs, "ceiling {max}");
            assert_eq!(path.datagram_size(), max);
            assert_eq!(path.next_timeout(), None, "at the ceiling: no search again");
        }
    }

    #[test]
    fn a_rung_the_path_does_not_carry_ends_the_climb_until_the_raise_timer() {
        let mut path = carrying(16_384, u64::MAX);
        let sizes = climb(&mut path, 1_500);
        assert_eq!(sizes, [1_452, 8_952, 8_952, 8_952]);
        assert_eq!(path.datagram_size(), 1_452);
        let again_us = path.next_timeout().expect("a search again");
        assert_eq!(again_us, 4 * MIN_PROBE_TIMEOUT_US + RAISE_INTERVAL_US);
        let probe = poll(&mut path, again_us, 0).unwrap();
        assert_eq!(probe.size, 8_952, "the next rung up, not the ones below");
    }

    #[test]
    fn a_path_short_of_the_first_rung_is_tried_at_the_fallback_once() {
        let mut path = carrying(16_384, u64::MAX);
        let sizes = climb(&mut path, 1_400);
        assert_eq!(sizes, [1_452, 1_452, 1_452, 1_326]);
        assert_eq!(path.datagram_size(), 1_326, "not climbing past the rung it missed");
        assert!(path.next_timeout().is_some());
    }

    #[test]
    fn a_late_answer_of_a_lower_rung_changes_nothing_in_the_climb() {
        let mut path = carrying(16_384, u64::MAX);
        let first = poll(&mut path, 0, 0).unwrap();
        assert!(path.on_answer(first.nonce, 5));
        let second = poll(&mut path, 10, 0).unwrap();
        assert_eq!(second.size, 8_952);
        assert!(!path.on_answer(first.nonce, 20), "a repeated answer");
        assert_eq!(poll(&mut path, 30, 0), None, "the rung's probe is still out");
        assert!(path.on_answer(second.nonce, 40));
        assert_eq!(path.datagram_size(), 8_952);
    }

    #[test]
    fn a_rung_above_the_first_waits_until_the_link_has_carried_enough_to_pay_for_it() {
        let mut path = carrying(16_384, 0);
        let first = poll(&mut path, 0, 0).unwrap();
        assert_eq!(first.size, 1_452);
        assert!(path.on_answer(first.nonce, 5));
        assert_eq!(path.next_timeout(), None, "8,952 bytes not yet paid for");
        assert_eq!(poll(&mut path, 10, 0), None);
        path.begin(20, 8_952 * RUNG_COST_RATIO - 1);
        assert_eq!(poll(&mut path, 20, 0), None);
        path.begin(30, 8_952 * RUNG_COST_RATIO);
        assert_eq!(path.next_timeout(), Some(0), "due since the first probe's time");
        let second = poll(&mut path, 30, 0).unwrap();
        assert_eq!(second.size, 8_952);
        assert!(path.on_answer(second.nonce, 35));
        assert_eq!(path.next_timeout(), None, "16,384 bytes not yet paid for");
        path.begin(40, 16_384 * RUNG_COST_RATIO);
        assert_eq!(poll(&mut path, 40, 0).map(|p| p.size), Some(16_384));
    }

    #[test]
    fn a_link_waiting_to_climb_still_falls_back_from_a_black_hole() {
        let mut path = carrying(16_384, 0);
        let first = poll(&mut path, 0, 0).unwrap();
        assert!(path.on_answer(first.nonce, 5));
        assert_eq!(path.next_timeout(), None, "waiting for 8,952 to be paid for");
        path.suspect(10);
        assert!(path.is_confirming());
        let mut now = 20;
        for _ in 0..CONFIRM_PROBES {
            assert_eq!(poll(&mut path, now, 0).map(|p| p.size), Some(1_452));
            now += MIN_PROBE_TIMEOUT_US;
            path.on_timeout(now);
        }
        assert_eq!(path.datagram_size(), 1_200);
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
