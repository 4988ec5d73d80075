//! Lifeguard's local health awareness (memberlist's `awareness.go`): a node that misses
//! acks or finds itself suspected is probably the slow or badly connected one, so it
//! stretches its own probe timeouts instead of suspecting healthy members.

/// Highest score: timeouts stretch at most this many times plus one.
pub(crate) const MAX_SCORE: u32 = 8;

/// This node's health score: 0 is healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Awareness {
    score: u32,
}

impl Awareness {
    /// A probe went unanswered, or this node had to refute a suspicion of itself.
    pub fn worse(&mut self) {
        self.score = (self.score + 1).min(MAX_SCORE);
    }

    /// A probe was answered.
    pub fn better(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// The score, 0 (healthy) to [`MAX_SCORE`].
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `timeout_us` stretched by the score.
    pub fn scale(&self, timeout_us: u64) -> u64 {
        timeout_us.saturating_mul(u64::from(self.score) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_acks_stretch_timeouts_up_to_a_bound_and_answers_shrink_them() {
        let mut a = Awareness::default();
        assert_eq!(a.scale(100), 100);
        a.worse();
        a.worse();
        assert_eq!(a.scale(100), 300);
        for _ in 0..20 {
            a.worse();
        }
        assert_eq!(a.score(), MAX_SCORE);
        for _ in 0..20 {
            a.better();
        }
        assert_eq!(a.scale(100), 100);
    }
}
