//! Congestion control of one peer's channel: how many bytes it may have in flight.
//!
//! NewReno, as QUIC states it (RFC 9002 §7): a window that starts at ten datagrams,
//! doubles every round trip in slow start, then grows by one datagram per window
//! acknowledged; a congestion event halves it, at most once per round trip (a recovery
//! period ends with the first acknowledgement of a datagram sent after it began), and
//! persistent congestion drops it to two datagrams. The configured `max_in_flight` is its
//! ceiling.
//!
//! A mesh often runs over lossy radio links where loss says nothing about load, and
//! halving the window for every lost datagram would starve a stream at 10% loss. So a
//! loss counts as congestion only when it comes with queueing: the latest round trip
//! clearly above the smallest seen. An overloaded receiver (incast, a starved process)
//! shows exactly that before its socket buffer overflows. A retransmission timeout that
//! repeats for the same datagram is persistent congestion whatever the round trip says:
//! with nothing acknowledged there is no round trip to go by.

/// Datagrams in the initial window (RFC 9002 §7.2).
pub(crate) const INITIAL_WINDOW_DATAGRAMS: usize = 10;
/// Datagrams in the smallest window.
const MIN_WINDOW_DATAGRAMS: usize = 2;
/// Queueing that makes a loss count as congestion: the latest round trip at least this
/// many eighths of the smallest...
const QUEUEING_RATIO_EIGHTHS: u64 = 12;
/// ...and at least this much above it, so scheduler noise on a sub-millisecond link is
/// not taken for a queue.
const QUEUEING_MIN_US: u64 = 1_000;
/// Timeouts of one datagram in a row that make persistent congestion.
const PERSISTENT_TIMEOUTS: u32 = 3;

/// One channel's congestion window.
#[derive(Clone, Debug)]
pub struct Congestion {
    window: usize,
    slow_start_threshold: usize,
    min_window: usize,
    max_window: usize,
    datagram: usize,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    acked_in_avoidance: usize,
    /// When the current recovery period began: datagrams sent before it cannot start
    /// another one, nor grow the window.
    recovery_start_us: Option<u64>,
    min_rtt_us: Option<u64>,
    latest_rtt_us: u64,
    events: u64,
}

impl Congestion {
    /// A window for datagrams of up to `datagram` bytes, never above `max_window`.
    pub fn new(datagram: usize, max_window: usize) -> Congestion {
        let datagram = datagram.max(1);
        let max_window = max_window.max(datagram);
        let min_window = (MIN_WINDOW_DATAGRAMS * datagram).min(max_window);
        Congestion {
            window: (INITIAL_WINDOW_DATAGRAMS * datagram).clamp(min_window, max_window),
            slow_start_threshold: usize::MAX,
            min_window,
            max_window,
            datagram,
            acked_in_avoidance: 0,
            recovery_start_us: None,
            min_rtt_us: None,
            latest_rtt_us: 0,
            events: 0,
        }
    }

    /// Datagrams of up to `datagram` bytes from now on: the path to the peer was found
    /// to carry larger ones (or fewer). The floor stays two datagrams and the step of
    /// congestion avoidance one, in the new size (RFC 9002 §7.2); a window below the new
    /// floor rises to it.
    pub fn set_datagram(&mut self, datagram: usize) {
        self.datagram = datagram.max(1);
        self.min_window = (MIN_WINDOW_DATAGRAMS * self.datagram).min(self.max_window);
        self.window = self.window.max(self.min_window);
        self.slow_start_threshold = self.slow_start_threshold.max(self.min_window);
    }

    /// Bytes that may be in flight now.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Congestion events so far (each halved the window or reset it).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Feeds a round-trip sample (an unambiguous one: Karn's rule is the caller's).
    pub fn on_rtt_sample(&mut self, rtt_us: u64) {
        self.latest_rtt_us = rtt_us;
        self.min_rtt_us = Some(self.min_rtt_us.map_or(rtt_us, |m| m.min(rtt_us)));
    }

    /// `bytes` of a datagram sent at `sent_us` were acknowledged.
    pub fn on_ack(&mut self, bytes: usize, sent_us: u64) {
        if self.in_recovery(sent_us) {
            return;
        }
        self.recovery_start_us = None;
        if self.window < self.slow_start_threshold {
            self.window = (self.window + bytes).min(self.max_window);
            return;
        }
        self.acked_in_avoidance += bytes;
        if self.acked_in_avoidance >= self.window {
            self.acked_in_avoidance -= self.window;
            self.window = (self.window + self.datagram).min(self.max_window);
        }
    }

    /// A datagram sent at `sent_us` was found lost at `now_us` (fast retransmit, or its
    /// `timeouts`-th timeout in a row; 0 for a loss found by later acknowledgements).
    pub fn on_loss(&mut self, sent_us: u64, timeouts: u32, now_us: u64) {
        if timeouts >= PERSISTENT_TIMEOUTS {
            if self.window > self.min_window {
                self.slow_start_threshold = (self.window / 2).max(self.min_window);
                self.window = self.min_window;
                self.recovery_start_us = Some(now_us);
                self.acked_in_avoidance = 0;
                self.events += 1;
            }
            return;
        }
        if self.in_recovery(sent_us) || !self.queueing() {
            return;
        }
        self.recovery_start_us = Some(now_us);
        self.window = (self.window / 2).max(self.min_window);
        self.slow_start_threshold = self.window;
        self.acked_in_avoidance = 0;
        self.events += 1;
    }

    fn in_recovery(&self, sent_us: u64) -> bool {
        self.recovery_start_us.is_some_and(|start| sent_us <= start)
    }

    /// Whether the latest round trip shows a queue building on the path or at the peer.
    fn queueing(&self) -> bool {
        let Some(min) = self.min_rtt_us else {
            return false;
        };
        let latest = self.latest_rtt_us;
        latest >= min.saturating_mul(QUEUEING_RATIO_EIGHTHS) / 8
            && latest >= min.saturating_add(QUEUEING_MIN_US)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1_000;

    fn cc() -> Congestion {
        Congestion::new(MSS, 128 * MSS)
    }

    #[test]
    fn slow_start_doubles_per_window_and_stops_at_the_ceiling() {
        let mut c = cc();
        assert_eq!(c.window(), 10 * MSS);
        for _ in 0..10 {
            c.on_ack(MSS, 1);
        }
        assert_eq!(c.window(), 20 * MSS);
        for _ in 0..1_000 {
            c.on_ack(MSS, 1);
        }
        assert_eq!(c.window(), 128 * MSS);
    }

    #[test]
    fn loss_without_queueing_keeps_the_window() {
        let mut c = cc();
        for _ in 0..100 {
            c.on_rtt_sample(500);
        }
        c.on_loss(10, 0, 20);
        c.on_loss(30, 1, 40);
        assert_eq!(c.window(), 10 * MSS);
        assert_eq!(c.events(), 0);
    }

    #[test]
    fn loss_with_queueing_halves_once_per_round_trip() {
        let mut c = cc();
        c.on_rtt_sample(500);
        c.on_rtt_sample(5_000);
        c.on_loss(100, 0, 1_000);
        assert_eq!(c.window(), 5 * MSS);
        // Another loss of a datagram sent before the recovery began changes nothing...
        c.on_loss(900, 0, 1_100);
        assert_eq!(c.window(), 5 * MSS);
        // ...nor do acknowledgements of such datagrams grow the window.
        c.on_ack(MSS, 999);
        assert_eq!(c.window(), 5 * MSS);
        // A datagram sent after it ends the recovery; the next loss halves again.
        c.on_ack(MSS, 1_001);
        c.on_loss(1_500, 0, 2_000);
        assert_eq!(c.window(), 2 * MSS + MSS / 2);
        assert_eq!(c.events(), 2);
    }

    #[test]
    fn congestion_avoidance_grows_one_datagram_per_window() {
        let mut c = cc();
        c.on_rtt_sample(500);
        c.on_rtt_sample(5_000);
        c.on_loss(0, 0, 10);
        let w = c.window();
        for _ in 0..(w / MSS - 1) {
            c.on_ack(MSS, 11);
        }
        assert_eq!(c.window(), w);
        c.on_ack(MSS, 11);
        assert_eq!(c.window(), w + MSS);
    }

    #[test]
    fn repeated_timeouts_collapse_the_window_whatever_the_round_trip() {
        let mut c = cc();
        c.on_rtt_sample(500);
        c.on_loss(0, 1, 10);
        c.on_loss(0, 2, 20);
        assert_eq!(c.window(), 10 * MSS);
        c.on_loss(0, 3, 30);
        assert_eq!(c.window(), 2 * MSS);
        // Slow start brings it back once acknowledgements of newer datagrams arrive.
        for _ in 0..2 {
            c.on_ack(MSS, 31);
        }
        assert_eq!(c.window(), 4 * MSS);
    }

    #[test]
    fn a_larger_datagram_raises_the_floor_and_the_step() {
        let mut c = cc();
        c.set_datagram(8 * MSS);
        // Two of the new datagrams must fit, or a link whose path grew could send only
        // one at a time after a collapse.
        assert_eq!(c.window(), 16 * MSS);
        c.on_rtt_sample(500);
        c.on_rtt_sample(5_000);
        c.on_loss(0, 0, 10);
        assert_eq!(c.window(), 16 * MSS, "the floor is two of the new datagrams");
        // Congestion avoidance grows by one of the new datagrams per window.
        for _ in 0..16 {
            c.on_ack(MSS, 11);
        }
        assert_eq!(c.window(), 24 * MSS);
    }

    #[test]
    fn a_larger_datagram_never_lifts_the_window_past_its_ceiling() {
        let mut c = Congestion::new(MSS, 10 * MSS);
        c.set_datagram(8 * MSS);
        assert_eq!(c.window(), 10 * MSS);
    }

    #[test]
    fn a_tiny_ceiling_bounds_every_window() {
        let c = Congestion::new(MSS, MSS);
        assert_eq!(c.window(), MSS);
    }
}
