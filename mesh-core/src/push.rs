//! Pushing local writes to peers as they happen, paced like Nagle's algorithm: a write
//! after a quiet spell goes out at once; writes in a burst are gathered into one push per
//! `push_delay`, so a burst costs a few full datagrams rather than one per write.

use crate::sync::SeqRange;
use crate::version::OriginId;

/// Which local writes have been pushed, and when the last push went out.
#[derive(Debug)]
pub(crate) struct Pushes {
    delay_us: u64,
    last_push_us: Option<u64>,
    pushed_upto: u64,
}

impl Pushes {
    /// Nothing pushed yet; pushes at most one per `delay_us` in a burst.
    pub fn new(delay_us: u64) -> Pushes {
        Pushes {
            delay_us,
            last_push_us: None,
            pushed_upto: 0,
        }
    }

    /// When a push of a write made at `now_us` may go out.
    pub fn next_slot(&self, now_us: u64) -> u64 {
        let next_slot = self.last_push_us.map_or(0, |t| t + self.delay_us);
        now_us.max(next_slot)
    }

    /// Whether local writes up to `own_seq` include some not pushed yet.
    pub fn is_pending(&self, own_seq: u64) -> bool {
        own_seq > self.pushed_upto
    }

    /// The last local write pushed (0: none yet).
    pub fn pushed_upto(&self) -> u64 {
        self.pushed_upto
    }

    /// The writes to push now, up to `own_seq`, marked pushed.
    pub fn take(&mut self, now_us: u64, own_origin: OriginId, own_seq: u64) -> Option<SeqRange> {
        self.last_push_us = Some(now_us);
        if !self.is_pending(own_seq) {
            return None;
        }
        let range = (own_origin, self.pushed_upto + 1, own_seq);
        self.pushed_upto = own_seq;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_after_a_quiet_spell_goes_at_once_a_burst_waits_for_the_slot() {
        let mut p = Pushes::new(1000);
        assert_eq!(p.next_slot(5), 5);
        assert_eq!(p.take(5, 9, 1), Some((9, 1, 1)));
        assert_eq!(p.next_slot(300), 1005, "a burst: wait for the next slot");
        assert_eq!(p.next_slot(5000), 5000, "after a quiet spell: at once");
        assert!(p.is_pending(3));
        assert_eq!(p.take(1005, 9, 3), Some((9, 2, 3)));
        assert!(!p.is_pending(3));
        assert_eq!(p.take(2005, 9, 3), None);
    }
}
