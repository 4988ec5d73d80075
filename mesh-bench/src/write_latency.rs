//! How long a local write takes while its node catches up with a large state.
//!
//! A write takes the engine, which the network thread holds while it merges what arrives:
//! the write waits for whatever the network thread is doing with it at the time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mesh_core::Node;

use crate::mesh::{self, value_100};
use crate::report::{count, fmt, percentile, Report, Table};

/// Pause between two timed writes: a steady trickle, as an application would write.
const PAUSE: Duration = Duration::from_micros(200);
/// How long the idle node is timed.
const IDLE_FOR: Duration = Duration::from_secs(1);

/// Latencies of the writes one thread made, sorted, in microseconds.
struct Timed {
    sorted_us: Vec<f64>,
}

/// Writes `<prefix>/<n>` on `node` every [`PAUSE`] until `done(writes made)`, timing
/// each.
fn time_writes(node: &Node, prefix: &str, done: impl Fn(u64) -> bool) -> Timed {
    let mut latencies = Vec::new();
    let mut i = 0u64;
    while !done(i) {
        let t = Instant::now();
        node.set(&format!("{prefix}/{i}"), i as i64).ok();
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
        std::thread::sleep(PAUSE);
    }
    latencies.sort_by(f64::total_cmp);
    Timed {
        sorted_us: latencies,
    }
}

pub fn run(report: &mut Report, smoke: bool) {
    let keys: u64 = if smoke { 2_000 } else { 200_000 };
    let holder = Node::new(mesh::config("wl-holder")).expect("node");
    holder.start().expect("start");
    let mut rng = fastrand::Rng::with_seed(11);
    for k in 0..keys {
        holder.set(&format!("k/{k:08}"), value_100(&mut rng)).ok();
    }
    let idle_start = Instant::now();
    let idle = time_writes(&holder, "idle", |_| idle_start.elapsed() >= IDLE_FOR);

    let joiner = Node::new(mesh::config("wl-joiner")).expect("node");
    joiner.add_bootstrap_addr(holder.local_addr());
    let written = AtomicU64::new(0);
    let caught_up = AtomicBool::new(false);
    let start = Instant::now();
    joiner.start().expect("start");
    let joining = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            time_writes(&joiner, "joining", |n| {
                written.store(n, Ordering::Release);
                caught_up.load(Ordering::Acquire)
            })
        });
        // The joiner holds the holder's keys, the idle phase's writes and its own.
        let idle_writes = idle.sorted_us.len() as u64;
        let ok = mesh::wait_for(Duration::from_secs(120), || {
            joiner.len() as u64 >= keys + idle_writes + written.load(Ordering::Acquire)
        });
        caught_up.store(true, Ordering::Release);
        let timed = writer.join().expect("writer");
        ok.then(|| (timed, start.elapsed()))
    });
    let mut t = Table::new(
        "Local write latency while the node catches up",
        &[
            "node",
            "writes timed",
            "p50 µs",
            "p99 µs",
            "max µs",
            "catch-up ms",
        ],
    );
    let row = |t: &mut Table, name: String, timed: &Timed, catch_up: String| {
        t.row(vec![
            name,
            count(timed.sorted_us.len() as u64),
            fmt(percentile(&timed.sorted_us, 50.0)),
            fmt(percentile(&timed.sorted_us, 99.0)),
            fmt(timed.sorted_us.last().copied().unwrap_or(f64::NAN)),
            catch_up,
        ]);
    };
    row(&mut t, "idle, holding the keys".into(), &idle, "-".into());
    match &joining {
        Some((timed, took)) => row(
            &mut t,
            format!("joining, receiving {} keys", count(keys)),
            timed,
            fmt(took.as_secs_f64() * 1000.0),
        ),
        None => t.row(vec![
            format!("joining, receiving {} keys", count(keys)),
            "did not catch up".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]),
    }
    t.note(format!(
        "Two nodes on 127.0.0.1, library defaults. One thread writes a new small key every {} µs and \
         times each `set`: first on the holder of {} keys of 100 B, idle, for {} s; then on a node joining \
         it, from its start until it holds every key. Writes stay local (no data directory).",
        PAUSE.as_micros(),
        count(keys),
        IDLE_FOR.as_secs()
    ));
    report.add(t);
}
