//! Hybrid logical clock: physical milliseconds in the high 48 bits, a logical counter in
//! the low 16.
//!
//! A timestamp issued after observing another is always greater than it, whatever the
//! wall clocks say, so a write made after a node has seen a write wins over it. Remote
//! timestamps further ahead of the local wall clock than the allowed drift are refused,
//! so one node with a wild clock cannot drag the mesh into the future.

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 16;

/// The physical milliseconds of a timestamp.
pub fn physical_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

/// A remote timestamp was too far ahead of the local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockDrift {
    /// How far ahead of the local wall clock it was, in milliseconds.
    pub ahead_ms: u64,
}

/// A node's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct HlcClock {
    last: u64,
    max_drift_ms: u64,
}

impl HlcClock {
    /// A clock that refuses remote timestamps more than `max_drift_ms` ahead.
    pub fn new(max_drift_ms: u64) -> HlcClock {
        HlcClock {
            last: 0,
            max_drift_ms,
        }
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The clock's reading at `wall_ms` without issuing a timestamp: the wall clock, or
    /// the latest timestamp issued or observed if that is ahead. An expiry at or below it
    /// has passed.
    pub fn now(&self, wall_ms: u64) -> u64 {
        self.last.max(wall_ms << LOGICAL_BITS)
    }

    /// Moves the clock up to `floor` (a high-water mark from before a restart), so it
    /// never issues a timestamp at or below one issued in an earlier run.
    pub fn raise_to(&mut self, floor: u64) {
        self.last = self.last.max(floor);
    }

    /// Issues a timestamp for a local event: above every timestamp seen so far.
    pub fn tick(&mut self, wall_ms: u64) -> u64 {
        let physical = wall_ms << LOGICAL_BITS;
        self.last = physical.max(self.last + 1);
        self.last
    }

    /// Checks a remote timestamp against the drift bound and, if accepted, moves the
    /// clock past it.
    pub fn observe(&mut self, remote: u64, wall_ms: u64) -> Result<(), ClockDrift> {
        self.check(remote, wall_ms)?;
        self.last = self.last.max(remote);
        Ok(())
    }

    /// Checks a remote timestamp against the drift bound without moving the clock.
    pub fn check(&self, remote: u64, wall_ms: u64) -> Result<(), ClockDrift> {
        let remote_ms = physical_ms(remote);
        if remote_ms > wall_ms.saturating_add(self.max_drift_ms) {
            return Err(ClockDrift {
                ahead_ms: remote_ms - wall_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_after_observing_wins_even_with_a_slow_clock() {
        let mut fast = HlcClock::new(60_000);
        let mut slow = HlcClock::new(60_000);
        let t_fast = fast.tick(1_000_000 + 30_000);
        slow.observe(t_fast, 1_000_000).unwrap();
        let t_slow = slow.tick(1_000_000);
        assert!(t_slow > t_fast);
    }

    #[test]
    fn far_future_timestamps_are_refused() {
        let mut clock = HlcClock::new(1_000);
        let remote = (10_000u64) << LOGICAL_BITS;
        assert_eq!(
            clock.observe(remote, 5_000),
            Err(ClockDrift { ahead_ms: 5_000 })
        );
        assert_eq!(clock.last(), 0);
        clock.observe(remote, 9_500).unwrap();
        assert_eq!(clock.last(), remote);
    }

    proptest! {
        #[test]
        fn ticks_are_strictly_increasing(walls in proptest::collection::vec(0u64..1_000_000, 1..200)) {
            let mut clock = HlcClock::new(u64::MAX / 2);
            let mut prev = 0;
            for w in walls {
                let t = clock.tick(w);
                prop_assert!(t > prev);
                prev = t;
            }
        }
    }
}
