//! Lifeguard's dynamic suspicion timeout (Dadgar et al. 2017, memberlist's
//! `suspicion.go`): a suspicion starts with a long timeout that shrinks, on a log scale,
//! as independent members confirm it, down to a floor. A member suspected by one node
//! with a bad link gets the long timeout (time to refute); one that many find silent is
//! declared dead sooner.

/// Independent confirmations (other suspecting members) that bring the timeout to its
/// floor.
pub(crate) const CONFIRMATIONS: usize = 3;

/// Direct probes of the suspect in the last periods before its deadline, one period
/// apart, while the suspicion holds. Each carries the suspicion (the buddy system), so a
/// live suspect answers with its refutation straight to the node about to declare it
/// dead: piggybacked rumors reach every member only with high probability, and a member
/// the refutation missed would otherwise declare a live one dead.
pub(crate) const CHECKS: u32 = 3;

/// One suspicion of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Suspicion {
    start_us: u64,
    min_us: u64,
    max_us: u64,
    /// Confirmations expected: [`CONFIRMATIONS`], or 0 in a mesh too small to give them
    /// (the timeout is then the floor at once).
    expected: usize,
    /// Node ids of the members that suspect, the first one included; bounded by
    /// `expected + 1`.
    by: Vec<String>,
    /// Direct probes before the deadline not sent yet (see [`CHECKS`]).
    checks: u32,
    /// The deadline comes no sooner than this: a confirmation that shortens the timeout
    /// leaves time for the direct probes still owed (the deadline may already be past).
    not_before_us: u64,
}

impl Suspicion {
    /// A suspicion raised at `start_us` by `by`, in a mesh of `members` other members,
    /// with timeouts between `min_us` and `max_us`.
    pub fn new(start_us: u64, by: &str, members: usize, min_us: u64, max_us: u64) -> Suspicion {
        // Confirmations come from members other than the suspect and the first suspecter.
        let expected = if members.saturating_sub(2) < CONFIRMATIONS {
            0
        } else {
            CONFIRMATIONS
        };
        Suspicion {
            start_us,
            min_us,
            max_us: max_us.max(min_us),
            expected,
            by: vec![by.to_owned()],
            checks: CHECKS,
            not_before_us: 0,
        }
    }

    /// Counts `by`'s suspicion, heard at `now_us` with probe periods of `period_us`;
    /// returns whether it was a new, independent confirmation (worth passing on).
    pub fn confirm(&mut self, by: &str, now_us: u64, period_us: u64) -> bool {
        if by.is_empty() || self.by.len() > self.expected || self.by.iter().any(|b| b == by) {
            return false;
        }
        self.by.push(by.to_owned());
        let owed = period_us.saturating_mul(u64::from(self.checks));
        self.not_before_us = self.not_before_us.max(now_us.saturating_add(owed));
        true
    }

    /// Independent confirmations so far.
    pub fn confirmations(&self) -> usize {
        self.by.len() - 1
    }

    /// How long the suspicion lasts with the confirmations so far.
    pub fn timeout_us(&self) -> u64 {
        if self.expected == 0 {
            return self.min_us;
        }
        let c = self.confirmations() as f64;
        let fraction = (c + 1.0).ln() / (self.expected as f64 + 1.0).ln();
        let span = (self.max_us - self.min_us) as f64;
        let timeout = self.max_us as f64 - fraction * span;
        (timeout as u64).clamp(self.min_us, self.max_us)
    }

    /// When the suspected member is declared dead, unless refuted first.
    pub fn deadline_us(&self) -> u64 {
        self.start_us
            .saturating_add(self.timeout_us())
            .max(self.not_before_us)
    }

    /// When the next direct probe of the suspect is due, with probe periods of
    /// `period_us`: `checks` periods before the deadline (at once if the timeout is
    /// shorter), `None` once all are sent.
    pub fn next_check_us(&self, period_us: u64) -> Option<u64> {
        (self.checks > 0).then(|| {
            self.deadline_us()
                .saturating_sub(period_us.saturating_mul(u64::from(self.checks)))
                .max(self.start_us)
        })
    }

    /// Whether a direct probe of the suspect is due at `now_us`; if so, it counts as sent,
    /// with those that would fall within a period of it (a short timeout gets one).
    pub fn take_check(&mut self, now_us: u64, period_us: u64) -> bool {
        let due = self.next_check_us(period_us).is_some_and(|at| at <= now_us);
        if due {
            let periods_left = self.deadline_us().saturating_sub(now_us) / period_us.max(1);
            self.checks = (self.checks - 1).min(u32::try_from(periods_left).unwrap_or(u32::MAX));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_shrinks_with_independent_confirmations_to_the_floor() {
        let mut s = Suspicion::new(1_000, "a", 10, 100, 400);
        assert_eq!(s.deadline_us(), 1_400, "starts at the maximum");
        let mut last = s.timeout_us();
        for by in ["b", "c", "d"] {
            assert!(s.confirm(by, 1_000, 1));
            assert!(s.timeout_us() < last, "each confirmation shortens it");
            last = s.timeout_us();
        }
        assert_eq!(s.timeout_us(), 100, "three confirmations reach the floor");
        assert!(!s.confirm("e", 1_000, 1), "no confirmation past the expected ones");
        assert_eq!(s.timeout_us(), 100);
    }

    #[test]
    fn the_same_suspecter_confirms_nothing() {
        let mut s = Suspicion::new(0, "a", 10, 100, 400);
        assert!(!s.confirm("a", 0, 1));
        assert!(s.confirm("b", 0, 1));
        assert!(!s.confirm("b", 0, 1));
        assert!(!s.confirm("", 0, 1), "an anonymous suspicion is no confirmation");
        assert_eq!(s.confirmations(), 1);
    }

    #[test]
    fn the_suspect_is_probed_in_each_of_the_last_periods_before_the_deadline() {
        let mut s = Suspicion::new(1_000, "a", 10, 100, 400);
        let deadline = s.deadline_us();
        let period = 50;
        let mut sent = Vec::new();
        for now in 1_000..deadline {
            if s.take_check(now, period) {
                sent.push(now);
            }
        }
        assert_eq!(
            sent,
            vec![deadline - 3 * period, deadline - 2 * period, deadline - period]
        );
        assert_eq!(s.next_check_us(period), None);
    }

    #[test]
    fn a_short_suspicion_probes_the_suspect_at_once() {
        let mut s = Suspicion::new(1_000, "a", 4, 100, 400);
        assert_eq!(s.next_check_us(1_000), Some(1_000));
        assert!(s.take_check(1_000, 1_000));
        assert_eq!(s.next_check_us(1_000), None, "one probe, not three at once");
    }

    #[test]
    fn a_late_confirmation_leaves_time_for_the_direct_probes() {
        let mut s = Suspicion::new(1_000, "a", 10, 100, 400);
        let period = 20;
        // Confirmed three times at 1_300: the floor (deadline 1_100) is already past.
        for by in ["b", "c", "d"] {
            assert!(s.confirm(by, 1_300, period));
        }
        assert_eq!(s.deadline_us(), 1_300 + 3 * period);
        let mut sent = Vec::new();
        for now in 1_300..s.deadline_us() {
            if s.take_check(now, period) {
                sent.push(now);
            }
        }
        assert_eq!(sent, vec![1_300, 1_320, 1_340], "every probe owed is sent");
    }

    #[test]
    fn a_small_mesh_uses_the_floor_at_once() {
        let s = Suspicion::new(0, "a", 4, 100, 400);
        assert_eq!(s.timeout_us(), 100);
    }
}
