//! Time as the engine sees it: always passed in, never read.

/// The current time, given to every engine call by the driver (the node runtime reads the
/// system clocks; the simulator makes them up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Now {
    /// Monotonic microseconds since an arbitrary origin. Drives every timer.
    pub mono_us: u64,
    /// Wall-clock milliseconds since the Unix epoch. Feeds the hybrid logical clock only.
    pub wall_ms: u64,
}

impl Now {
    /// A time `us` microseconds later, wall clock moved by the same amount.
    pub fn after_us(self, us: u64) -> Now {
        Now {
            mono_us: self.mono_us + us,
            wall_ms: self.wall_ms + us / 1000,
        }
    }
}

/// Microseconds in a `Duration`, saturating.
pub(crate) fn us(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
