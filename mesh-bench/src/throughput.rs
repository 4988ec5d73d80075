//! Sustained write throughput on one node replicated to four peers, with replication lag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mesh::{self, Mesh};
use crate::report::{count, fmt, percentile, verdict, Report, Table};

/// Lag is sampled this often while the writer runs.
const SAMPLE: Duration = Duration::from_millis(5);
/// Lag target for a rate to count as sustained.
const LAG_TARGET_MS: f64 = 100.0;

pub struct Step {
    pub offered: Option<u64>,
    pub written: u64,
    pub secs: f64,
    pub lag_sorted_ms: Vec<f64>,
    pub drain: Option<Duration>,
    pub given_up: u64,
    pub bytes_per_write: f64,
}

/// Writes for `secs` at `rate` per second (`None`: as fast as the writer can) and samples,
/// every few milliseconds, how far the slowest peer is behind: the age of the newest
/// write it is sure to hold.
pub fn step(rate: Option<u64>, run_for: Duration, tweak: impl Fn(&mut mesh_core::Config)) -> Step {
    let mesh = Mesh::new(5, "tp-", tweak);
    mesh.wait_formed(Duration::from_secs(30));
    let writer = &mesh.nodes[0];
    let peers = &mesh.nodes[1..];
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // (time since start, writes made by then), kept by the sampler.
    let mut history: Vec<(f64, u64)> = vec![(0.0, 0)];
    let mut lags = Vec::new();
    let before = mesh.counters();
    std::thread::scope(|s| {
        let w = Arc::clone(&written);
        let st = Arc::clone(&stop);
        s.spawn(move || {
            let mut i = 0u64;
            while !st.load(Ordering::Relaxed) {
                let target = rate.map_or(u64::MAX, |r| {
                    (start.elapsed().as_secs_f64() * r as f64) as u64
                });
                if i >= target {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                // A batch at a time keeps the clock reads off the hot path.
                for _ in 0..64.min(target - i) {
                    writer.set(&format!("t/{i}"), i as i64).ok();
                    i += 1;
                }
                w.store(i, Ordering::Release);
            }
        });
        while start.elapsed() < run_for {
            std::thread::sleep(SAMPLE);
            let now = start.elapsed().as_secs_f64();
            let made = written.load(Ordering::Acquire);
            history.push((now, made));
            let held = peers.iter().map(|p| p.len() as u64).min().unwrap_or(0);
            // When did the writer reach `held` writes? Everything up to then is replicated.
            let idx = history.partition_point(|&(_, n)| n < held);
            let made_at = match (
                idx.checked_sub(1).and_then(|i| history.get(i)),
                history.get(idx),
            ) {
                // Between two samples the writer ran at a steady pace: interpolate.
                (Some(&(t0, n0)), Some(&(t1, n1))) if n1 > n0 => {
                    t0 + (t1 - t0) * (held - n0) as f64 / (n1 - n0) as f64
                }
                (_, Some(&(t, _))) => t,
                (_, None) => now,
            };
            lags.push((now - made_at) * 1000.0);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let total = written.load(Ordering::Acquire);
    let secs = start.elapsed().as_secs_f64();
    let drain_start = Instant::now();
    let drained = mesh::wait_for(Duration::from_secs(60), || {
        peers.iter().all(|p| p.len() as u64 >= total)
    });
    let after = mesh.counters();
    // The first samples run before any write could have travelled; keep them, they are
    // honest zeros only if the peers really were up to date.
    lags.sort_by(f64::total_cmp);
    Step {
        offered: rate,
        written: total,
        secs,
        lag_sorted_ms: lags,
        drain: drained.then(|| drain_start.elapsed()),
        given_up: after.given_up - before.given_up,
        bytes_per_write: (after.bytes_sent - before.bytes_sent) as f64 / total.max(1) as f64,
    }
}

pub fn run(report: &mut Report, smoke: bool) {
    let (rates, run_for): (Vec<Option<u64>>, Duration) = if smoke {
        (vec![Some(2_000), None], Duration::from_millis(500))
    } else {
        (
            vec![
                Some(10_000),
                Some(25_000),
                Some(50_000),
                Some(100_000),
                Some(150_000),
                None,
            ],
            Duration::from_secs(4),
        )
    };
    let mut t = Table::new(
        "Sustained writes on one node replicated to 4 peers",
        &[
            "offered/s",
            "achieved/s",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "drain after stop ms",
            "given up",
            "bytes sent/write (all nodes)",
        ],
    );
    let mut best: Option<f64> = None;
    for rate in rates {
        let s = step(rate, run_for, |_| {});
        let achieved = s.written as f64 / s.secs;
        let p99 = percentile(&s.lag_sorted_ms, 99.0);
        // An offered rate counts as sustained when the writer kept up with it (the last
        // partial batch aside) and the lag stayed within the target.
        let kept_up = s.offered.is_none_or(|r| achieved >= 0.98 * r as f64);
        if p99 < LAG_TARGET_MS && s.drain.is_some() && kept_up {
            let rate = s.offered.map_or(achieved, |r| r as f64);
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        }
        t.row(vec![
            s.offered.map_or_else(|| "unlimited".to_owned(), count),
            count(achieved as u64),
            fmt(percentile(&s.lag_sorted_ms, 50.0)),
            fmt(p99),
            fmt(s.lag_sorted_ms.last().copied().unwrap_or(f64::NAN)),
            s.drain.map_or_else(
                || "did not drain".to_owned(),
                |d| fmt(d.as_secs_f64() * 1000.0),
            ),
            count(s.given_up),
            fmt(s.bytes_per_write),
        ]);
    }
    t.note(format!(
        "Each row: a fresh 5-node mesh, {} s of writes of new keys (`t/<n>` = integer) from one thread. Lag \
         sampled every {} ms: the age of the newest write the slowest peer is sure to hold (its key count \
         mapped back, by interpolation, to when the writer had made that many writes). The writer and the \
         5 network threads share the machine's 2 cores.",
        run_for.as_secs_f64(),
        SAMPLE.as_millis()
    ));
    t.note(
        "A rate counts as sustained when the writer achieved at least 98% of it and the lag p99 stayed \
         under 100 ms.",
    );
    report.add(t);
    let mut tt = Table::new("Throughput target", &["target", "figure", "verdict"]);
    let b = best.unwrap_or(0.0);
    tt.row(vec![
        "≥ 100,000 writes/s replicated to 4 peers with lag p99 < 100 ms".into(),
        format!("{}/s", count(b as u64)),
        verdict(b >= 100_000.0),
    ]);
    report.add(tt);
}
