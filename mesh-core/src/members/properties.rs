//! Property tests of the rules membership stands on, over arbitrary sequences of what
//! the network can deliver: Lifeguard's suspicion timeout, incarnations that only move
//! forward, and refutations that no older rumor undoes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use proptest::prelude::*;

use super::suspicion::Suspicion;
use super::{Admission, Members, RumorOutcome, Timing};
use crate::status::PeerState;
use crate::wire::{Rumor, RumorState};

const TIMING: Timing = Timing {
    heartbeat_us: 10,
    timeout_us: 100,
    max_probe_us: 4_000_000,
    forget_dead_us: 1_000_000,
};

fn members() -> Members {
    Members::new("me", TIMING, 1_024)
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(i)))
}

/// A suspecter's node id: a few names, so that repeats happen, and now and then none.
fn suspecter(i: u8) -> String {
    if i == 0 {
        String::new()
    } else {
        format!("m{}", i % 6)
    }
}

fn state(i: u8) -> RumorState {
    match i % 4 {
        0 => RumorState::Alive,
        1 => RumorState::Suspect,
        2 => RumorState::Dead,
        _ => RumorState::Left,
    }
}

proptest! {
    /// The timeout stays between its floor and its ceiling, never grows, shrinks only
    /// for a new, named, independent confirmation, and reaches the floor once the
    /// expected confirmations are in.
    #[test]
    fn the_suspicion_timeout_only_shrinks_and_only_for_independent_confirmations(
        start in 0u64..1_000_000_000,
        min in 1u64..1_000_000,
        extra in 0u64..10_000_000,
        others in 0usize..40,
        confirmers in proptest::collection::vec(0u8..12, 0..20),
    ) {
        let max = min + extra;
        let mut s = Suspicion::new(start, "first", others, min, max);
        let mut seen: BTreeSet<String> = BTreeSet::from(["first".to_owned()]);
        let mut last = s.timeout_us();
        prop_assert!((min..=max).contains(&last));
        for c in confirmers {
            let by = suspecter(c);
            let before = s.confirmations();
            let counted = s.confirm(&by, start, 0);
            let independent = !by.is_empty() && !seen.contains(&by);
            if counted {
                prop_assert!(independent, "{by:?} counted twice or unnamed");
                seen.insert(by);
                prop_assert_eq!(s.confirmations(), before + 1);
            } else {
                prop_assert_eq!(s.confirmations(), before);
            }
            let now = s.timeout_us();
            prop_assert!((min..=max).contains(&now));
            prop_assert!(now <= last, "the timeout grew from {} to {}", last, now);
            prop_assert_eq!(s.deadline_us(), start + now);
            last = now;
        }
        if s.confirmations() >= super::suspicion::CONFIRMATIONS {
            prop_assert_eq!(s.timeout_us(), min);
        }
    }

    /// Whatever order datagrams arrive in, a member's incarnation is the highest one it
    /// was admitted with: an older one is stale, the same one current, a higher one a
    /// new session.
    #[test]
    fn incarnations_only_move_forward(
        datagrams in proptest::collection::vec((0u8..4, 1u64..12), 1..60),
    ) {
        let mut m = members();
        let mut highest: BTreeMap<u8, u64> = BTreeMap::new();
        for (i, (from, inc)) in datagrams.into_iter().enumerate() {
            let outcome = m.admit(addr(from), inc, i as u64);
            let known = highest.get(&from).copied();
            match known {
                Some(h) if inc < h => prop_assert_eq!(outcome, Admission::Stale),
                Some(h) if inc == h => prop_assert_eq!(outcome, Admission::Current),
                _ => {
                    prop_assert!(matches!(outcome, Admission::NewSession { .. }), "{:?}", outcome);
                    highest.insert(from, inc);
                }
            }
            prop_assert_eq!(m.incarnation(&addr(from)), highest.get(&from).copied());
        }
    }

    /// Rumors about a member, in any order and from any run: only rumors about its
    /// current run change it, its refutation count never goes down, and an `Alive` with
    /// a newer refutation always brings it back to alive.
    #[test]
    fn no_older_rumor_undoes_a_refutation(
        rumors in proptest::collection::vec((0u8..4, 0u32..6, 0u8..3, 0u8..12), 1..60),
    ) {
        const INC: u64 = 50;
        let mut m = members();
        let peer = addr(1);
        m.admit(peer, INC, 0);
        m.identify(peer, "peer");
        m.mark_heard(peer, 0);
        for (i, (s, refutation, run, by)) in rumors.into_iter().enumerate() {
            let incarnation = [INC - 1, INC, INC + 1][usize::from(run)];
            let rumor = Rumor {
                node_id: "peer".into(),
                addr: peer,
                incarnation,
                refutation,
                state: state(s),
                by: suspecter(by),
            };
            let before = {
                let member = m.get(&peer).expect("still a member");
                (member.state, member.refutation)
            };
            let outcome = m.apply_rumor(rumor.clone(), 1, 10 + i as u64);
            let member = m.get(&peer).expect("still a member");
            let after = (member.state, member.refutation);
            if incarnation != INC {
                prop_assert_eq!(&outcome, &RumorOutcome::Ignored);
            }
            if !matches!(outcome, RumorOutcome::Changed { .. }) {
                prop_assert_eq!(after, before, "{:?} changed the member without saying so", rumor);
            }
            prop_assert!(after.1 >= before.1, "refutation count went down");
            if incarnation == INC && rumor.state == RumorState::Alive
                && refutation > before.1 && refutation <= before.1 + super::MAX_REFUTATION_STEP
            {
                prop_assert_eq!(after.0, PeerState::Alive);
                prop_assert_eq!(after.1, refutation);
            }
        }
    }

    /// A rumor that this node's own run is suspected, dead or gone is refuted, with a
    /// refutation count above the rumor's; others about it are ignored.
    #[test]
    fn this_node_refutes_every_rumor_of_its_own_failure(
        rumors in proptest::collection::vec((0u8..4, 0u32..12, any::<bool>()), 1..40),
    ) {
        const OWN: u64 = 9;
        let mut m = members();
        for (s, refutation, this_run) in rumors {
            let own = m.own_rumor(OWN, None, RumorState::Alive).refutation;
            let rumor = Rumor {
                node_id: "me".into(),
                addr: addr(0),
                incarnation: if this_run { OWN } else { OWN - 1 },
                refutation,
                state: state(s),
                by: "m1".into(),
            };
            let outcome = m.apply_rumor(rumor.clone(), OWN, 0);
            let now = m.own_rumor(OWN, None, RumorState::Alive).refutation;
            let plausible = refutation <= own + super::MAX_REFUTATION_STEP;
            if this_run && rumor.state != RumorState::Alive && plausible {
                prop_assert_eq!(outcome, RumorOutcome::Refute);
                prop_assert!(now > refutation, "refuted with {} against {}", now, refutation);
            } else {
                prop_assert_eq!(outcome, RumorOutcome::Ignored);
                prop_assert_eq!(now, own);
            }
            prop_assert!(now >= own);
        }
    }
}
