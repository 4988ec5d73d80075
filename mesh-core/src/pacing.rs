//! Pacing of one peer's datagrams: a burst the congestion window allows goes out spread
//! over the round trip, not at once.
//!
//! A window of 128 KiB sent at once on a path with a 50 ms round trip arrives as a
//! train that a router's or the peer's socket buffer has to absorb whole; paced, it
//! arrives as the path drains it. A token bucket, as QUIC recommends (RFC 9002 §7.7) and
//! quinn does: it refills at 5/4 of a window per round trip and holds what two
//! milliseconds of that rate send (at least 10 datagrams, at most 256), so a short
//! round trip (a LAN, loopback) never waits and a long one sends a burst every 2 ms or
//! so. Once the bucket is short of a datagram, the next one waits until it is full
//! again, so a paced stream wakes its sender once per burst, not once per datagram.
//!
//! Time is the caller's: the channel says when it may send again, and the engine
//! arms its peer timer for then.

/// The rate a window is sent at, over a round trip: 5/4 (RFC 9002 §7.7's N).
const RATE_NUMERATOR: u128 = 5;
const RATE_DENOMINATOR: u128 = 4;
/// The burst the bucket holds, as time at the paced rate.
const BURST_INTERVAL_US: u128 = 2_000;
/// Fewest datagrams in a burst.
const MIN_BURST_DATAGRAMS: u64 = 10;
/// Most datagrams in a burst.
const MAX_BURST_DATAGRAMS: u64 = 256;

/// One channel's token bucket.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Bytes the bucket holds at most, for the window and round trip it was sized for.
    capacity: u64,
    /// The window, round trip and datagram size `capacity` was sized for: a path
    /// probed to carry larger datagrams needs a bucket that holds them.
    sized_for: (u64, u64, u64),
    tokens: u64,
    /// When `tokens` was last brought up to date.
    updated_us: u64,
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer {
            capacity: u64::MAX,
            sized_for: (0, 0, 0),
            tokens: u64::MAX,
            updated_us: 0,
        }
    }
}

impl Pacer {
    /// When a datagram of `bytes` may go, if not now: for a congestion window of
    /// `window` bytes, a smoothed round trip of `srtt_us` (none measured yet: no
    /// pacing) and datagrams of up to `datagram` bytes.
    pub fn delay(
        &mut self,
        now_us: u64,
        bytes: usize,
        window: usize,
        srtt_us: Option<u64>,
        datagram: usize,
    ) -> Option<u64> {
        let srtt_us = srtt_us?.max(1);
        let (window, bytes, datagram) = (window as u64, bytes as u64, datagram.max(1) as u64);
        if self.sized_for != (window, srtt_us, datagram) {
            self.capacity = capacity(window, srtt_us, datagram);
            self.tokens = self.tokens.min(self.capacity);
            self.sized_for = (window, srtt_us, datagram);
        }
        // A datagram larger than the bucket (cut for a smaller path) goes from a full
        // one: the bucket never holds more, and waiting for more would be forever.
        let needed = bytes.min(self.capacity);
        if self.tokens >= needed {
            return None;
        }
        let elapsed = now_us.saturating_sub(self.updated_us);
        let refill = (window as u128 * elapsed as u128 * RATE_NUMERATOR)
            / (srtt_us as u128 * RATE_DENOMINATOR);
        // Only the time the bytes earned took is spent: a fraction of a byte dropped on
        // each call would starve a slow path that is asked every millisecond.
        let refilled = self
            .tokens
            .saturating_add(refill.min(u64::MAX as u128) as u64);
        if refilled >= self.capacity {
            self.tokens = self.capacity;
            self.updated_us = now_us;
        } else {
            // The time the bytes earned took; what is left counts on.
            self.tokens = refilled;
            let spent = (refill * srtt_us as u128 * RATE_DENOMINATOR)
                / (window.max(1) as u128 * RATE_NUMERATOR);
            self.updated_us += spent.min(elapsed as u128) as u64;
        }
        if self.tokens >= needed {
            return None;
        }
        // Wait for a full bucket, to send a burst then.
        let missing = (self.capacity - self.tokens) as u128;
        let wait = (missing * srtt_us as u128 * RATE_DENOMINATOR)
            .div_ceil(window.max(1) as u128 * RATE_NUMERATOR);
        Some(now_us.saturating_add(wait.clamp(1, u64::MAX as u128) as u64))
    }

    /// A datagram of `bytes` went out.
    pub fn on_sent(&mut self, bytes: usize) {
        self.tokens = self.tokens.saturating_sub(bytes as u64);
    }
}

/// What the bucket holds: two milliseconds at the paced rate, from 10 to 256 datagrams.
fn capacity(window: u64, srtt_us: u64, datagram: u64) -> u64 {
    let burst = (window as u128 * BURST_INTERVAL_US * RATE_NUMERATOR)
        / (srtt_us as u128 * RATE_DENOMINATOR);
    let burst = burst.min(u64::MAX as u128) as u64;
    burst.clamp(
        MIN_BURST_DATAGRAMS * datagram,
        MAX_BURST_DATAGRAMS * datagram,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1_000;
    const WINDOW: usize = 128 * MSS;

    /// Sends datagrams from `now` for as long as the pacer lets them go; how many went.
    fn burst(p: &mut Pacer, now: u64, srtt: u64) -> (usize, Option<u64>) {
        let mut sent = 0;
        loop {
            match p.delay(now, MSS, WINDOW, Some(srtt), MSS) {
                None => {
                    p.on_sent(MSS);
                    sent += 1;
                }
                wait => return (sent, wait),
            }
            assert!(sent < 10_000, "never paced");
        }
    }

    #[test]
    fn a_short_round_trip_is_not_paced_within_a_window() {
        let mut p = Pacer::default();
        // 200 µs: two milliseconds send 12.5 windows, more than 256 datagrams.
        let (sent, _) = burst(&mut p, 0, 200);
        assert_eq!(sent, 256);
    }

    #[test]
    fn a_long_round_trip_sends_a_window_in_bursts_spread_over_it() {
        let mut p = Pacer::default();
        // 50 ms: the window is 128 datagrams, 2 ms at 5/4 of it per round trip is 6.4,
        // so bursts of the 10 datagram minimum.
        let (sent, wait) = burst(&mut p, 0, 50_000);
        assert_eq!(sent, 10);
        let at = wait.expect("paced");
        // Ten datagrams at 128 per 40 ms take 3.125 ms to earn again.
        assert_eq!(at, 3_125);
        // 100 µs earn 320 bytes, not a datagram.
        assert_eq!(burst(&mut p, 100, 50_000).0, 0);
        assert_eq!(burst(&mut p, at, 50_000).0, 10);
        // A window takes about 4/5 of the round trip.
        let mut now = at;
        let mut sent = 20;
        while sent < 128 {
            let (n, wait) = burst(&mut p, now, 50_000);
            sent += n;
            now = wait.unwrap();
        }
        assert!((38_000..=41_000).contains(&now), "{now}");
    }

    #[test]
    fn a_slow_path_asked_often_still_earns_its_datagram() {
        let mut p = Pacer::default();
        // 2 datagrams a window and 8 s a round trip: 0.31 bytes a millisecond.
        let (window, srtt) = (2 * MSS, 8_000_000);
        while p.delay(0, MSS, window, Some(srtt), MSS).is_none() {
            p.on_sent(MSS);
        }
        let mut now = 0;
        let sent_at = loop {
            now += 1_000;
            assert!(now < 60_000_000, "never sent");
            if p.delay(now, MSS, window, Some(srtt), MSS).is_none() {
                break now;
            }
        };
        // 1,000 bytes at 5/4 of 2,000 per 8 s.
        assert_eq!(sent_at, 3_200_000);
    }

    #[test]
    fn nothing_is_paced_before_a_round_trip_is_measured() {
        let mut p = Pacer::default();
        for _ in 0..1_000 {
            assert_eq!(p.delay(0, MSS, WINDOW, None, MSS), None);
            p.on_sent(MSS);
        }
    }

    #[test]
    fn a_smaller_window_shrinks_the_bucket() {
        let mut p = Pacer::default();
        assert_eq!(p.delay(0, MSS, WINDOW, Some(1_000), MSS), None);
        assert_eq!(p.tokens, 256 * MSS as u64);
        assert_eq!(p.delay(0, MSS, 10 * MSS, Some(50_000), MSS), None);
        assert_eq!(p.tokens, 10 * MSS as u64);
    }

    /// When the paced datagram of `bytes` first goes, asked every millisecond from 0.
    fn first_sent_at(p: &mut Pacer, bytes: usize, window: usize, datagram: usize) -> u64 {
        let mut now = 0;
        loop {
            if p.delay(now, bytes, window, Some(50_000), datagram).is_none() {
                return now;
            }
            now += 1_000;
            assert!(now < 10_000_000, "a datagram of {bytes} bytes never went");
        }
    }

    #[test]
    fn larger_datagrams_on_the_same_path_get_a_bucket_that_holds_them() {
        let mut p = Pacer::default();
        // Sized for 1,000-byte datagrams: 10 of them.
        assert_eq!(p.delay(0, MSS, 10 * MSS, Some(50_000), MSS), None);
        p.on_sent(MSS);
        // The path now carries 16 KB: the bucket holds 10 of those, not 10,000 bytes.
        let at = first_sent_at(&mut p, 16 * MSS, 10 * MSS, 16 * MSS);
        assert!(at < 100_000, "sent at {at} us");
    }

    #[test]
    fn a_datagram_larger_than_the_bucket_goes_once_it_is_full() {
        let mut p = Pacer::default();
        // A bucket of 10,000 bytes and a datagram of 16,000 (one sized for an earlier,
        // smaller path): it goes when the bucket is full, rather than never.
        assert_eq!(p.delay(0, MSS, 10 * MSS, Some(50_000), MSS), None);
        p.on_sent(10 * MSS);
        let at = first_sent_at(&mut p, 16 * MSS, 10 * MSS, MSS);
        // 10,000 bytes at 5/4 of 10,000 per 50 ms: 40 ms.
        assert_eq!(at, 40_000);
    }
}
