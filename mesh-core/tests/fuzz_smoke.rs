//! The fuzz targets of `fuzz/`, run on the stable toolchain with seeded random inputs so
//! they cannot rot: the same harness (`mesh_core::harness`), the same input types and
//! their `Arbitrary` impls, the same invariants, a few thousand cases per target.
//!
//! Random bytes handed whole to `Arbitrary` make poor cases (the first list swallows
//! most of them), so each op is drawn from a short random chunk of its own: many small
//! ops per case, as a coverage-guided fuzzer ends up producing. A failure names the
//! target and the case's seed.

use arbitrary::{Arbitrary, Unstructured};
use mesh_core::harness::{
    self, EngineCase, EngineOp, IncSpec, ReassemblyCase, ReassemblyOp, WireCase,
};

/// A value drawn from `max_len` random bytes at most.
fn draw<T: for<'a> Arbitrary<'a>>(rng: &mut fastrand::Rng, max_len: usize) -> Option<T> {
    let mut bytes = vec![0u8; rng.usize(0..=max_len)];
    rng.fill(&mut bytes);
    T::arbitrary(&mut Unstructured::new(&bytes)).ok()
}

/// `count` values drawn from chunks of up to `max_len` bytes each.
fn draw_many<T: for<'a> Arbitrary<'a>>(
    rng: &mut fastrand::Rng,
    count: usize,
    max_len: usize,
) -> Vec<T> {
    (0..count).filter_map(|_| draw(rng, max_len)).collect()
}

/// Runs `cases` cases built by `make` from seeded generators, failing with the first
/// broken invariant and the seed that broke it.
fn run<T: std::fmt::Debug>(
    name: &str,
    cases: u64,
    make: impl Fn(&mut fastrand::Rng) -> Option<T>,
    target: impl Fn(&T) -> Result<(), String>,
) {
    // Each target its own seeds (FNV-1a of its name), the same on every run.
    let base = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    for i in 0..cases {
        let seed = base.wrapping_add(i);
        let Some(case) = make(&mut fastrand::Rng::with_seed(seed)) else {
            continue;
        };
        if let Err(failure) = target(&case) {
            panic!("{name}: seed {seed:#x}: {failure}\ncase: {case:?}");
        }
    }
}

#[test]
fn wire_decode() {
    run(
        "wire_decode",
        4_000,
        |rng| draw::<WireCase>(rng, 512),
        harness::wire_case,
    );
}

#[test]
fn reassembly() {
    run(
        "reassembly",
        3_000,
        |rng| {
            Some(ReassemblyCase {
                budget: rng.u8(..),
                channels: rng.u8(..),
                ops: {
                    let n = rng.usize(0..64);
                    draw_many::<ReassemblyOp>(rng, n, 24)
                },
            })
        },
        harness::reassembly_case,
    );
}

#[test]
fn engine() {
    let reached = std::cell::Cell::new((0usize, 0usize, 0usize));
    run(
        "engine",
        1_500,
        |rng| {
            Some(EngineCase {
                seed: rng.u64(..),
                // Half the cases start with two sources past the address check, which
                // a fuzzer learns by itself but random draws reach only now and then.
                ops: {
                    let mut ops = Vec::new();
                    if rng.bool() {
                        for src in 0..2 {
                            ops.push(EngineOp::Introduce {
                                src,
                                inc: IncSpec::Current,
                            });
                        }
                    }
                    let n = rng.usize(0..40);
                    ops.extend(draw_many::<EngineOp>(rng, n, 64));
                    ops
                },
            })
        },
        |case| {
            let engine = harness::engine_case(case)?;
            let (with_peer, applied, total) = reached.get();
            reached.set((
                with_peer + usize::from(engine.memory().peers > 0),
                applied + usize::from(engine.counters().entries_applied > 0),
                total + 1,
            ));
            Ok(())
        },
    );
    let (with_peer, applied, total) = reached.get();
    eprintln!("engine: {total} cases, {with_peer} with a member, {applied} applied remote writes");
    // The cases must get past the address check and into the replica, or the target
    // only exercises the front door.
    assert!(
        with_peer * 4 >= total,
        "{with_peer} of {total} cases had a member"
    );
    assert!(
        applied * 25 >= total,
        "{applied} of {total} cases applied a write"
    );
}

/// The raw-bytes entry points the fuzz targets call, on a few random inputs.
#[test]
fn raw_entry_points() {
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..200 {
        let mut bytes = vec![0u8; rng.usize(0..2048)];
        rng.fill(&mut bytes);
        harness::wire_from_bytes(&bytes).unwrap();
        harness::reassembly_from_bytes(&bytes).unwrap();
        harness::engine_from_bytes(&bytes).unwrap();
    }
}

/// Inputs the fuzzers found, kept so the bugs they show stay fixed; each runs through
/// its target like any other case.
#[test]
fn regressions() {
    type Target = fn(&[u8]) -> Result<(), String>;
    let cases: &[(&str, Target, &[u8])] = &[
        (
            // A 4,080-byte message in one fragment into a 256-byte budget; see
            // `a_message_in_one_fragment_is_held_to_the_budget`.
            "reassembly/single-fragment-past-budget",
            harness::reassembly_from_bytes,
            include_bytes!("fuzz_regressions/reassembly-single-fragment-past-budget"),
        ),
        (
            // A refused entry numbered 0: the range below it underflowed.
            "engine/refused-entry-at-seq-zero",
            harness::engine_from_bytes,
            include_bytes!("fuzz_regressions/engine-refused-entry-at-seq-zero"),
        ),
    ];
    for (name, target, input) in cases {
        if let Err(failure) = target(input) {
            panic!("{name} regression: {failure}");
        }
    }
}

/// Structured cases that must reach the engine's deeper paths: a source passes the
/// address check, then sends a write the engine applies.
#[test]
fn an_introduced_source_delivers_a_write() {
    use harness::{
        EngineCase, EngineOp, EntrySpec, GroupSpec, HlcSpec, IncSpec, KeySpec, MessageSpec, Num,
        OriginSpec, ScalarSpec, ValueSpec,
    };
    let write = MessageSpec::Delta(vec![GroupSpec {
        origin: OriginSpec::Sender,
        lo: Num::Small(1),
        hi: Num::Small(1),
        entries: vec![EntrySpec {
            seq: Num::Small(1),
            hlc: HlcSpec::Near(0, 0),
            key: KeySpec::Few(1),
            value: Some(ValueSpec::Scalar(ScalarSpec::Int(5))),
        }],
    }]);
    let case = EngineCase {
        seed: 7,
        ops: vec![
            EngineOp::Introduce {
                src: 0,
                inc: IncSpec::Current,
            },
            EngineOp::Fragmented {
                src: 0,
                message: write,
                fragment: 0,
                skip: 0,
            },
            EngineOp::Advance(3_000),
        ],
    };
    let engine = harness::engine_case(&case).unwrap();
    assert_eq!(engine.get("k1"), Some(&mesh_core::Value::Int(5)));
    assert_eq!(engine.memory().peers, 1);
}

/// Found by the `reassembly` target: `ChannelLimits::reassembly` is also the largest
/// message accepted, and fragmented messages were held to it, but a message in a single
/// fragment was delivered whatever its size (up to a datagram, 64 KiB), so a node with a
/// smaller budget accepted messages larger than its limit.
#[test]
fn a_message_in_one_fragment_is_held_to_the_budget() {
    use mesh_core::transport::{Channel, ChannelLimits, ReassemblyBudget, Received};
    use mesh_core::wire::Data;
    let limits = ChannelLimits {
        initial_rto_us: 500_000,
        min_rto_us: 10_000,
        max_rto_us: 8_000_000,
        max_retries: 5,
        min_give_up_us: 15_000_000,
        max_fragment: 1_000,
        datagram_sizes: (1_200, 1_200),
        max_in_flight: 128 * 1024,
        max_queued: 128 * 1024,
        reassembly: ReassemblyBudget::new(256),
        reassembly_timeout_us: 30_000_000,
    };
    let mut channel = Channel::new(limits);
    let data = Data {
        seq: 1,
        msg_id: 1,
        frag: 0,
        frags: 1,
        bytes: vec![0; 4_080],
    };
    match channel.on_data(data, 0) {
        Received::Refused => {}
        Received::Message(m) => panic!("a {}-byte message accepted by a 256-byte budget", m.len()),
        other => panic!("{other:?}"),
    }
}
